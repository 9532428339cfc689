"""Reading and checking an artifact folder's manifest.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import constants as C
from .errors import ModelFolderError


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TensorSpec:
        return cls(name=str(d["name"]), shape=tuple(int(s) for s in d["shape"]), dtype=str(d["dtype"]))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    formats: tuple[str, ...]

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise ModelFolderError(f"manifest: component {self.name!r} has no input {name!r}")


@dataclass(frozen=True)
class Manifest:
    """What the export wrote about an artifact folder; see export/manifest.py for the writer."""

    root: Path
    height: int
    width: int
    precision: str
    vae_channels: int
    depth_encoding: str
    vae_scaling_factor: float
    vae_scale_factor: int
    latent_channels: int
    unet_batch: int
    text_max_length: int
    components: dict[str, ComponentSpec]
    files: dict[str, str]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)
    pipeline: str = C.PIPELINE_TEXT2RGBD      # or C.PIPELINE_UPSCALE (ldm3d-sr)
    max_noise_level: int | None = None        # upscaler: the largest low-res noise level (class label) it takes

    @property
    def unet_batches(self) -> tuple[int, ...]:
        """The batches the ONNX UNet takes: (1, 2) when exported with a dynamic batch, else the static one."""
        return tuple(int(b) for b in self.raw.get("unet_batches", [self.unet_batch]))

    @property
    def tome(self) -> dict[str, Any] | None:
        """Token merging folded into the UNet at export (export/tome.py): its record, or None."""
        t = self.raw.get("tome")
        return dict(t) if isinstance(t, dict) else None

    @property
    def deepcache_branch(self) -> int | None:
        """The DeepCache branch the folder's feature-caching graphs split the UNet at; None without them."""
        dc = self.raw.get("deepcache")
        has_graphs = all(c in self.components for c in C.CACHE_COMPONENTS)
        return int(dc["branch"]) if isinstance(dc, dict) and has_graphs else None

    @property
    def formats(self) -> tuple[str, ...]:
        """Formats every required component is available in."""
        sets = [set(self.components[c].formats) for c in C.REQUIRED_COMPONENTS]
        return tuple(f for f in C.FORMATS if all(f in s for s in sets))

    def model_path(self, component: str, fmt: str) -> Path:
        return self.root / component / C.MODEL_FILES[fmt]

    def has(self, component: str) -> bool:
        return component in self.components


_REQUIRED_KEYS = ("format_version", "height", "width", "precision", "vae_channels", "depth_encoding",
                  "vae_scaling_factor", "vae_scale_factor", "latent_channels", "unet_batch",
                  "text_max_length", "components", "files")


def read_manifest(root: str | Path) -> Manifest:
    """Read ``root/manifest.json`` and check that every file it lists is there.

    Raises ModelFolderError naming the folder or the missing file, never a KeyError from deep inside.
    """
    root = Path(root)
    if not root.is_dir():
        raise ModelFolderError(f"model folder not found: {root}")
    path = root / C.MANIFEST_FILE
    if not path.is_file():
        raise ModelFolderError(f"{path} is missing: {root} is not an ldm3d-edge artifact folder "
                               f"(make one with 'ldm3d export SRC {root}')")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFolderError(f"corrupt manifest {path}: {e}") from None
    if not isinstance(raw, dict):
        raise ModelFolderError(f"corrupt manifest {path}: expected a JSON object")
    missing = [k for k in _REQUIRED_KEYS if k not in raw]
    if missing:
        raise ModelFolderError(f"corrupt manifest {path}: missing keys {', '.join(missing)}")
    if raw["format_version"] != C.MANIFEST_FORMAT_VERSION:
        raise ModelFolderError(f"manifest {path} has format_version {raw['format_version']!r}; "
                               f"this ldm3d-edge reads version {C.MANIFEST_FORMAT_VERSION}")
    try:
        components = {}
        for name, d in raw["components"].items():
            components[name] = ComponentSpec(
                name=name,
                inputs=tuple(TensorSpec.from_json(t) for t in d["inputs"]),
                outputs=tuple(TensorSpec.from_json(t) for t in d["outputs"]),
                formats=tuple(d["formats"]),
            )
        m = Manifest(
            root=root, height=int(raw["height"]), width=int(raw["width"]), precision=str(raw["precision"]),
            vae_channels=int(raw["vae_channels"]), depth_encoding=str(raw["depth_encoding"]),
            vae_scaling_factor=float(raw["vae_scaling_factor"]), vae_scale_factor=int(raw["vae_scale_factor"]),
            latent_channels=int(raw["latent_channels"]), unet_batch=int(raw["unet_batch"]),
            text_max_length=int(raw["text_max_length"]), components=components,
            files={str(k): str(v) for k, v in raw["files"].items()}, raw=raw,
            pipeline=str(raw.get("pipeline", C.PIPELINE_TEXT2RGBD)),
            max_noise_level=None if raw.get("max_noise_level") is None else int(raw["max_noise_level"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelFolderError(f"corrupt manifest {path}: {type(e).__name__}: {e}") from None
    if m.pipeline not in (C.PIPELINE_TEXT2RGBD, C.PIPELINE_UPSCALE):
        raise ModelFolderError(f"manifest {path}: unknown pipeline {m.pipeline!r}")
    required = C.REQUIRED_COMPONENTS + ((C.VAE_ENCODER,) if m.pipeline == C.PIPELINE_UPSCALE else ())
    for comp in required:
        if comp not in components:
            raise ModelFolderError(f"manifest {path} lists no {comp!r} component")
    for rel in m.files:
        if not (root / rel).is_file():
            raise ModelFolderError(f"model folder {root} is incomplete: {rel} is missing")
    if not m.formats:
        raise ModelFolderError(f"manifest {path}: no format has all of {', '.join(C.REQUIRED_COMPONENTS)}")
    return m
