"""The embedded default model: a diffusers folder and its ready OpenVINO IR, both shipped in the package (models/).

`ldm3d generate`, `ldm3d serve`, `ldm3d demo` and `Pipeline.load()` run the shipped IR
(models/<name>-openvino/): no torch, no export, no first-use wait. One IR set serves both sizes, 128x128 and
the 256x128 panorama (OpenVINO reshapes at load). Its weights are stored in float16, as the checkpoint's are, so
the compressed IR computes exactly what an FP32 export computes (tests/test_embedded.py re-exports and compares).

Exported on demand, into ~/.cache/ldm3d-edge/embedded/<name>-<fingerprint>/ (or $LDM3D_EDGE_CACHE), which needs
the [export] extra: ONNX artifacts (a static ONNX graph serves one size, so shipping them would take two more
copies of the weights), and the IR of a checkpoint that no shipped IR was made from (a developer retraining the
model before running `python -m training.ship_embedded`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from .extras import need_extra
from .runtime import constants as C
from .runtime.constants import cache_base
from .runtime.errors import ModelFolderError
from .runtime.verify import hash_into

log = logging.getLogger(__name__)

PERSPECTIVE_SIZE = (128, 128)   # height, width
PANORAMA_SIZE = (128, 256)
SHIPPED_SUFFIX = "-openvino"     # models/<name>-openvino/: the shipped IR of models/<name>/


def default_model_dir() -> Path:
    from ldm3d_edge.models import DEFAULT_MODEL, MODELS_DIR

    path = MODELS_DIR / DEFAULT_MODEL
    if not (path / "model_index.json").is_file():
        raise ModelFolderError(f"no embedded model in {path} (a partial checkout? docs/embedded-model.md says how to "
                               "rebuild it); pass --model with a folder made by 'ldm3d export'")
    return path


def fingerprint(model_dir: Path) -> str:
    """A short hash of a diffusers folder's configs, weights and tokenizer: which version of a checkpoint it is."""
    h = hashlib.sha256()
    for p in sorted(Path(model_dir).rglob("*")):
        if p.is_file() and p.suffix in (".json", ".safetensors", ".txt") and "eval" not in p.parts:
            h.update(p.relative_to(model_dir).as_posix().encode())
            hash_into(h, p)
    return h.hexdigest()[:12]


def shipped_dir(model_dir: Path | None = None) -> Path:
    """Where the shipped OpenVINO IR of `model_dir` (default: the embedded model) lives, whether or not it does."""
    model_dir = Path(model_dir) if model_dir else default_model_dir()
    return model_dir.parent / f"{model_dir.name}{SHIPPED_SUFFIX}"


def shipped_artifacts(model_dir: Path | None = None) -> Path | None:
    """The shipped IR folder when it exists and was made from this very checkpoint (same fingerprint), else None."""
    model_dir = Path(model_dir) if model_dir else default_model_dir()
    art = shipped_dir(model_dir)
    try:
        made_from = json.loads((art / C.MANIFEST_FILE).read_text())["source"]["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if made_from != fingerprint(model_dir):
        log.warning("the shipped IR %s was made from another version of %s (%s); exporting this one instead "
                    "(python -m training.ship_embedded refreshes it)", art, model_dir.name, made_from)
        return None
    return art


def needs_onnx(device: str) -> bool:
    """Whether a device string can only run on ONNX artifacts (which the package does not ship)."""
    d = device.strip().lower()
    return d == "cuda" or d.split(":", 1)[0] in (C.FORMAT_ONNX, "ort", "onnxruntime")


def embedded_artifacts(model_dir: str | Path | None = None, progress: bool = True,
                       device: str = "auto") -> tuple[Path, Path, Path]:
    """(perspective artifacts, panorama artifacts, diffusers folder) of the embedded model: the shipped IR (one
    folder for both), or for an ONNX device or a checkpoint without a matching shipped IR, the two exports in the
    cache folder, exported first if needed (the [export] extra)."""
    model_dir = Path(model_dir) if model_dir else default_model_dir()
    shipped = None if needs_onnx(device) else shipped_artifacts(model_dir)
    if shipped is not None:
        return shipped, shipped, model_dir
    root = cache_base() / "embedded" / f"{model_dir.name}-{fingerprint(model_dir)}"
    out = []
    for name, (h, w) in (("perspective", PERSPECTIVE_SIZE), ("panorama", PANORAMA_SIZE)):
        art = root / f"{model_dir.name}-{name}-{w}x{h}"
        if not (art / C.MANIFEST_FILE).is_file():
            why = ("ONNX artifacts of the embedded model are exported on first use (once), which" if needs_onnx(device)
                   else "the embedded model is exported on first use (once), which")
            *_, export = need_extra(why, "export", "torch", "diffusers", "ldm3d_edge.export")
            print(f"exporting the embedded model {model_dir.name} ({name}, {w}x{h}) to {art} (first use only)",
                  flush=True)
            export.export_pipeline(model_dir, art, fmt="both", height=h, width=w, overwrite=True, progress=progress)
        out.append(art)
    return out[0], out[1], model_dir
