"""The embedded default model: a diffusers folder shipped in the package (models/), exported on first use.

Why export on first use rather than ship artifacts: the repo keeps one copy of the weights (fp16 safetensors,
under 40 MB), and the export goes through exactly the path a downloaded checkpoint takes. The artifacts land
in ~/.cache/ldm3d-edge/embedded/<name>-<fingerprint>/ (or $LDM3D_EDGE_CACHE), keyed by the weights' hash, so
a new model version is exported again. Exporting needs the [export] extra once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .extras import need_extra
from .runtime.constants import cache_base
from .runtime.errors import ModelFolderError

PERSPECTIVE_SIZE = (128, 128)   # height, width
PANORAMA_SIZE = (128, 256)


def default_model_dir() -> Path:
    from ldm3d_edge.models import DEFAULT_MODEL, MODELS_DIR

    path = MODELS_DIR / DEFAULT_MODEL
    if not (path / "model_index.json").is_file():
        raise ModelFolderError(f"no embedded model in {path} (a partial checkout? docs/embedded-model.md says how to "
                               "rebuild it); pass --model with a folder made by 'ldm3d export'")
    return path


def _fingerprint(model_dir: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(model_dir.rglob("*")):
        if p.is_file() and p.suffix in (".json", ".safetensors", ".txt") and "eval" not in p.parts:
            h.update(p.relative_to(model_dir).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


def embedded_artifacts(model_dir: str | Path | None = None, progress: bool = True) -> tuple[Path, Path, Path]:
    """(perspective artifacts, panorama artifacts, diffusers folder), exporting them first if needed."""
    model_dir = Path(model_dir) if model_dir else default_model_dir()
    root = cache_base() / "embedded" / f"{model_dir.name}-{_fingerprint(model_dir)}"
    out = []
    for name, (h, w) in (("perspective", PERSPECTIVE_SIZE), ("panorama", PANORAMA_SIZE)):
        art = root / f"{model_dir.name}-{name}-{w}x{h}"
        if not (art / "manifest.json").is_file():
            *_, export = need_extra("the embedded model is exported on first use (once), which", "export", "torch",
                                    "diffusers", "ldm3d_edge.export")
            print(f"exporting the embedded model {model_dir.name} ({name}, {w}x{h}) to {art} (first use only)",
                  flush=True)
            export.export_pipeline(model_dir, art, fmt="both", height=h, width=w, overwrite=True, progress=progress)
        out.append(art)
    return out[0], out[1], model_dir
