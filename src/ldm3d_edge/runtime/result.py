"""What a generation returns: RGB, depth, the settings that made them, and timings."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import statistics
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import constants as C
from .errors import InvalidArgumentError


@dataclass
class GenerationMetrics:
    """Seconds spent in each part of one generation (compile time counts in `load`/first calls)."""

    text_encoder_s: float = 0.0
    vae_encode_s: float = 0.0          # img2img only
    unet_step_s: list[float] = field(default_factory=list)
    scheduler_s: float = 0.0
    vae_decode_s: float = 0.0
    total_s: float = 0.0

    @property
    def mean_step_s(self) -> float:
        return statistics.fmean(self.unet_step_s) if self.unet_step_s else 0.0

    @property
    def median_step_s(self) -> float:
        """Median over the steps after the first (the first may include compilation)."""
        rest = self.unet_step_s[1:] or self.unet_step_s
        return statistics.median(rest) if rest else 0.0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["unet_step_s"] = [round(x, 5) for x in self.unet_step_s]
        d.update(mean_step_s=round(self.mean_step_s, 5), median_step_s=round(self.median_step_s, 5))
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in d.items()}


@dataclass
class RGBDResult:
    rgb: np.ndarray          # (H, W, 3) uint8
    depth: np.ndarray        # (H, W) float32 in [0, 1], relative inverse depth (near = high)
    rgb_float: np.ndarray    # (H, W, 3) float32 in [0, 1], before 8-bit rounding
    prompt: str
    negative_prompt: str | None
    seed: int | None
    steps: int
    guidance_scale: float
    scheduler: str
    model: str
    device: str
    height: int
    width: int
    metrics: GenerationMetrics
    strength: float | None = None   # img2img: how far up the schedule the input image was noised
    circular_padding: int = 0       # panoramas: latent columns wrapped around each side
    upscaled_from: tuple[int, int] | None = None   # upscaler: the low-res input's (height, width)
    noise_level: int | None = None                 # upscaler: the noise level (class label) it ran with
    guidance_cutoff: float | None = None           # the fraction of steps after which guidance stopped
    cache_interval: int | None = None              # DeepCache: the whole UNet every N-th step
    cache_branch: int | None = None                # DeepCache: the branch the shallow steps ran above
    inpaint: dict[str, Any] | None = None          # inpainting: mask share, feather, depth fit, border steps
    completed_prompt: str | None = None            # what the text encoder read, where the folder completed `prompt`

    def info(self) -> dict[str, Any]:
        return {"prompt": self.prompt,
                **({"completed_prompt": self.completed_prompt} if self.completed_prompt is not None else {}),
                "negative_prompt": self.negative_prompt, "seed": self.seed,
                "steps": self.steps, "guidance_scale": self.guidance_scale, "scheduler": self.scheduler,
                "height": self.height, "width": self.width, "model": self.model, "device": self.device,
                **({"img2img_strength": self.strength} if self.strength is not None else {}),
                **({"circular_padding": self.circular_padding} if self.circular_padding else {}),
                **({"guidance_cutoff": self.guidance_cutoff} if self.guidance_cutoff is not None else {}),
                **({"cache_interval": self.cache_interval, "cache_branch": self.cache_branch}
                   if self.cache_interval is not None else {}),
                **({"inpaint": self.inpaint} if self.inpaint is not None else {}),
                **({"upscaled_from": list(self.upscaled_from), "noise_level": self.noise_level}
                   if self.upscaled_from is not None else {}),
                "depth": {"file_encoding": "uint16 PNG = round(depth * 65535)",
                          "meaning": "relative inverse depth, near = high, in [0, 1]"},
                "timings": self.metrics.to_json()}

    def save(self, prefix: str | Path, extra: dict[str, Any] | None = None) -> list[Path]:
        """Write <prefix>_rgb.png, <prefix>_depth.png (16-bit) and <prefix>.json (info(), plus `extra`, e.g. the
        camera model and depth mapping for 3D use); returns the paths.

        Each file is written to a temporary name beside it and renamed, so no half-written file remains.
        """
        prefix = Path(prefix)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        rgb_path = prefix.with_name(prefix.name + C.RGB_SUFFIX)
        depth_path = prefix.with_name(prefix.name + C.DEPTH_SUFFIX)
        json_path = prefix.with_name(prefix.name + C.SIDECAR_SUFFIX)
        depth16 = np.round(np.clip(self.depth, 0, 1) * 65535).astype(np.uint16)
        atomic_write(rgb_path, lambda p: Image.fromarray(self.rgb).save(p, format="PNG"))
        atomic_write(depth_path, lambda p: Image.fromarray(depth16).save(p, format="PNG"))
        atomic_write(json_path, lambda p: Path(p).write_text(json.dumps({**self.info(), **(extra or {})}, indent=2)))
        return [rgb_path, depth_path, json_path]


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """write(tmp_path) into a temporary sibling, then rename: `path` is either complete or untouched."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)  # keeps the extension
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600; a finished file gets the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_folder(out: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; on success it replaces `out`, on any error it is deleted: `out` is
    either complete or as it was.

    Safe when processes export the same folder at once (two kiosk workers' first use, say): each fills its own
    temporary folder, and the swap, under an exclusive lock on a sibling lock file, renames the old `out` aside
    and the new one in before the old one is deleted. A process reading the old folder keeps the files it opened,
    and `out` is never a folder being deleted or half-written (it is missing only between the two renames)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        aside = out.parent / f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        with _folder_lock(out):
            if out.exists():
                os.replace(out, aside)
            os.replace(tmp, out)
        shutil.rmtree(aside, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def _folder_lock(out: Path) -> Iterator[None]:
    """An exclusive advisory lock on <parent>/.<name>.lock (POSIX flock; where there is none, no lock)."""
    try:
        import fcntl
    except ImportError:   # Windows: the renames alone
        yield
        return
    with open(out.parent / f".{out.name}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@dataclass
class RGBDFiles:
    """An RGB image and its depth as read from files (see read_rgbd_files)."""

    rgb: np.ndarray                  # (H, W, 3) uint8
    depth: np.ndarray | None         # (H, W) float32 in [0, 1], near = high; None when there was no depth file
    rgb_path: Path
    depth_path: Path | None
    sidecar: Path | None             # the result's JSON, when there is one


def result_prefix(path: str | Path) -> Path:
    """The prefix of a result file (<prefix>_rgb.png, _depth.png or .json); any other path as it is."""
    path = Path(path)
    for suffix in (C.RGB_SUFFIX, C.DEPTH_SUFFIX, C.SIDECAR_SUFFIX):
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path


def slug(text: str) -> str:
    """A file-name-safe form of a prompt: lower-case letters and digits joined by '-', at most 40 characters."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "ldm3d"


def read_rgbd_files(source: str | Path, depth: str | Path | None = None, need_depth: bool = True) -> RGBDFiles:
    """Read an RGBD result by its prefix, <prefix>_rgb.png, _depth.png or .json (depth = its _depth.png), or any
    RGB image with `depth` a depth image: a 16-bit PNG is depth * 65535, an 8-bit one depth * 255 (near = bright).
    Raises InvalidArgumentError naming what is missing or unreadable."""
    source = Path(source)
    name = result_prefix(source).name
    result_rgb = source.with_name(name + C.RGB_SUFFIX)
    rgb_path = result_rgb if result_rgb.is_file() else source
    if not rgb_path.is_file():
        raise InvalidArgumentError(f"{source} not found: give the prefix, _rgb.png or .json of an 'ldm3d generate' "
                                   "result, or an RGB image (with a depth image)")
    is_result = rgb_path == result_rgb
    if depth is None and is_result and source.with_name(name + C.DEPTH_SUFFIX).is_file():
        depth = source.with_name(name + C.DEPTH_SUFFIX)
    if depth is None and need_depth:
        raise InvalidArgumentError(f"no depth for {rgb_path}: expected {name + C.DEPTH_SUFFIX} beside it, or give "
                                   "a depth image")
    if depth is not None and not Path(depth).is_file():
        raise InvalidArgumentError(f"depth image {depth} not found")
    try:
        rgb = np.asarray(Image.open(rgb_path).convert("RGB"))
        d = None
        if depth is not None:
            raw = np.asarray(Image.open(depth))
            raw = raw[..., 0] if raw.ndim == 3 else raw
            scale = 65535.0 if raw.dtype == np.uint16 or raw.max() > 255 else 255.0
            d = np.clip(raw.astype(np.float32) / scale, 0, 1)
    except OSError as e:
        raise InvalidArgumentError(f"cannot read the images: {e}") from None
    sidecar = source.with_name(name + C.SIDECAR_SUFFIX)
    return RGBDFiles(rgb, d, rgb_path, None if depth is None else Path(depth),
                     sidecar if is_result and sidecar.is_file() else None)


def load_depth_png(path: str | Path) -> np.ndarray:
    """Read a depth PNG written by RGBDResult.save back to float32 in [0, 1]."""
    return np.asarray(Image.open(path), dtype=np.float32) / 65535.0
