"""Writing manifest.json: what was exported, from what, with which shapes, and a sha256 of every file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from .. import __version__
from ..runtime import constants as C
from ..runtime.verify import sha256_file
from .source import Source

_DTYPES = {1: "float32", 7: "int64", 10: "float16", 6: "int32", 11: "float64"}


def tensor_specs(onnx_path: Path, batch: int = 2) -> tuple[list[dict], list[dict]]:
    """Input and output names, static shapes and dtypes, read back from the exported ONNX graph; a symbolic
    batch dim (a --dynamic-batch UNet) is recorded as `batch`, the size the runtime runs guided steps at."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)

    def spec(v):
        t = v.type.tensor_type
        return {"name": v.name, "shape": [d.dim_value if d.HasField("dim_value") else batch for d in t.shape.dim],
                "dtype": _DTYPES.get(t.elem_type, str(t.elem_type))}

    inits = {i.name for i in model.graph.initializer}
    return [spec(v) for v in model.graph.input if v.name not in inits], [spec(v) for v in model.graph.output]


def file_table(folder: Path) -> dict[str, dict[str, Any]]:
    """The manifest's "files" (sha256) and "sizes" (bytes) of every file in `folder` but the manifest itself, which
    runtime.verify checks at load and `ldm3d verify` on demand."""
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != C.MANIFEST_FILE)
    rel = [p.relative_to(folder).as_posix() for p in paths]
    return {"files": {r: sha256_file(p) for r, p in zip(rel, paths)},
            "sizes": {r: p.stat().st_size for r, p in zip(rel, paths)}}


def library_versions() -> dict:
    import importlib.metadata as md

    out = {"ldm3d_edge": __version__}
    for name in ("torch", "diffusers", "transformers", "onnx", "openvino", "onnxruntime"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def write_manifest(out: Path, source: Source, height: int, width: int, precision: str, formats: list[str],
                   components: dict[str, dict], text_length: int, weights: str | None = None,
                   unet_batches: tuple[int, ...] = (2,), deepcache_branch: int | None = None,
                   lora: list[dict] | None = None, tome: dict | None = None) -> dict:
    """precision: what the graphs compute in; weights: what their weights are stored in ("fp16-lossless": an FP32
    IR's weights in float16 where float16 holds them exactly). The source's fingerprint says which checkpoint
    version this folder was made from."""
    from ..embedded import fingerprint

    manifest = {
        "format_version": C.MANIFEST_FORMAT_VERSION,
        "ldm3d_edge_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "source": {"path": str(source.path.resolve()), "pipeline": source.model_index.get("_class_name"),
                   "scheduler": source.scheduler_config.get("_class_name"), "fingerprint": fingerprint(source.path),
                   **({"hub": source.hub} if source.hub else {})},
        "height": height, "width": width,
        "precision": precision, "weights": weights or precision, "formats": formats,
        "vae_channels": source.vae_channels,
        "depth_encoding": C.DEPTH_ENCODING_1CH if source.vae_channels == 4 else C.DEPTH_ENCODING_PACKED16,
        "vae_scaling_factor": float(source.vae_config.get("scaling_factor", 0.18215)),
        "vae_scale_factor": source.vae_scale_factor,
        "latent_channels": int(source.vae_config.get("latent_channels", 4)),
        "pipeline": source.pipeline,
        **({"max_noise_level": source.max_noise_level} if source.max_noise_level is not None else {}),
        "unet_batch": 2,
        **({"unet_batches": list(unet_batches)} if tuple(unet_batches) != (2,) else {}),
        **({"deepcache": {"branch": deepcache_branch}} if deepcache_branch is not None else {}),
        **({"lora": lora} if lora else {}),
        **({"tome": tome} if tome else {}),
        "text_max_length": text_length,
        "components": components,
        "versions": library_versions(),
        **file_table(out),
    }
    (out / C.MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return manifest
