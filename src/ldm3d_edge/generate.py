"""Prompt -> RGBD files -> 3D outputs: the one orchestration that `ldm3d generate`, `ldm3d demo`, the kiosk
server and `ldm3d batch` run.

Everything is validated before any work (a bad camera, padding or size never leaves a half-written set of
files), then: panorama settings, generate (text-to-RGBD or image-to-image), save RGB, 16-bit depth and the JSON
sidecar with the camera and depth mapping, then the requested 3D outputs (scene3d.write_3d). Messages for a
person go to `report` (the CLI prints them; the server passes nothing).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .runtime import constants as C
from .runtime.errors import InvalidArgumentError
from .runtime.pipeline import Pipeline, StepCallback, pano_prompt, pano_settings
from .runtime.result import RGBDResult, atomic_write, read_rgbd_files, slug
from .scene3d import DEFAULT_FAR, DEFAULT_HFOV_DEG, DEFAULT_NEAR, RGBD, Camera, DepthMapping, write_3d


@dataclass
class GeneratedFiles:
    result: RGBDResult
    rgbd: RGBD
    prefix: Path
    paths: list[Path]


def _silent(_message: str) -> None:
    pass


def generate_files(pipe: Pipeline, out: str | Path, prompt: str, *, name: str | None = None, pano: bool = False,
                   circular_padding: int | None = None, init: tuple[str, str | None] | None = None,
                   strength: float | None = None, mask: str | None = None, inpaint_options: dict | None = None,
                   projection: str | None = None, hfov: float | None = None,
                   near: float | None = None, far: float | None = None, outputs_3d: dict | None = None,
                   extra: dict | None = None, depth_f32: bool = False, callback: StepCallback | None = None,
                   progress: bool = False, report: Callable[[str], None] = _silent,
                   **kw: Any) -> GeneratedFiles:
    """Generate one result with `pipe` and write <out>/<name>_rgb.png, _depth.png, .json (+ _depth.f32 with
    `depth_f32`, + the scene3d.write_3d outputs named in `outputs_3d`); returns what was written.

    name: the file prefix (default: the prompt's slug and the seed). pano: 2:1 size, the "360 view of" prompt
    prefix and circular padding (the default padding; `circular_padding` overrides it). init: (image path,
    depth path or None) for image-to-image at `strength`; the image is resized to the output size. mask: with
    init, a mask image (white = regenerate): inpaint that region of it instead (Pipeline.inpaint, with
    `inpaint_options`: feather, align_depth, ring). kw: the
    Pipeline call's own arguments (negative_prompt, num_inference_steps, guidance_scale, seed, height, width,
    scheduler, guidance_cutoff). extra: more keys for the JSON sidecar.
    """
    # the camera and depth mapping the JSON records and 3D outputs use; bad values fail here, before any work
    projection = projection or ("equirectangular" if pano else "perspective")
    hfov = DEFAULT_HFOV_DEG if hfov is None else hfov
    mapping = DepthMapping(DEFAULT_NEAR if near is None else near, DEFAULT_FAR if far is None else far)
    Camera.for_image(8, 8, projection, hfov)
    pad = 0
    if pano:
        kw["height"], kw["width"], pad = pano_settings(pipe.manifest, kw.get("height"), kw.get("width"))
        if pano_prompt(prompt) != prompt:
            prompt = pano_prompt(prompt)
            report(f"prompt: {prompt!r} (the panorama models' convention)")
    if init is None:
        kw["circular_padding"] = pad if circular_padding is None else circular_padding
    elif circular_padding:
        raise InvalidArgumentError("--circular-padding applies to text-to-image, not to --init (image-to-image)")
    cfg, _ = pipe.make_config(prompt, **kw)
    kw["seed"] = cfg.seed
    if (encoded := pipe.model_prompt(prompt)) != prompt:
        report(f"prompt read as {encoded!r} (the model's caption grammar, "
               f"{C.PROMPT_COMPLETION_FILE}; --no-prompt-completion: as typed)")
    t0 = time.perf_counter()
    pipe.prepare(cfg.height, cfg.width, cfg.circular_padding)
    report(f"model {pipe.manifest.root} on {pipe.device} (ready in {time.perf_counter() - t0:.1f}s)")
    if init is None:
        result = pipe(prompt, callback=callback, progress=progress, **kw)
    else:
        rgb, depth, source = read_init(*init, cfg.height, cfg.width, report)
        kw = {k: v for k, v in kw.items() if k not in ("height", "width", "latents", "circular_padding")}
        if strength is not None:
            kw["strength"] = strength
        if mask is None:
            result = pipe.img2img(rgb, depth, prompt, callback=callback, progress=progress, **kw)
        else:
            hole = read_mask(mask, cfg.height, cfg.width)
            result = pipe.inpaint(rgb, depth, hole, prompt, callback=callback, progress=progress, **kw,
                                  **(inpaint_options or {}))
            assert result.inpaint is not None
            result.inpaint.update(source=str(source), mask=str(mask))
    mt = result.metrics
    report(f"{len(mt.unet_step_s)} steps, {mt.median_step_s:.3f} s/step (median), total {mt.total_s:.1f}s, "
           f"seed {result.seed}")
    prefix = Path(out) / (name or result_name(prompt, result.seed))
    rgbd = RGBD.from_result(result, projection, hfov, mapping)
    paths = result.save(prefix, extra={**rgbd.sidecar(), **(extra or {})})
    if depth_f32:
        f32 = prefix.with_name(prefix.name + C.DEPTH_F32_SUFFIX)
        atomic_write(f32, lambda p: Path(p).write_bytes(result.depth.astype("<f4").tobytes()))
        paths.append(f32)
    for p in paths:
        report(f"wrote {p}")
    if outputs_3d:
        paths += write_3d_files(rgbd, prefix, outputs_3d, progress, report)
    return GeneratedFiles(result, rgbd, prefix, paths)


def write_3d_files(rgbd: RGBD, prefix: Path, outputs: dict, progress: bool = False,
                   report: Callable[[str], None] = _silent) -> list[Path]:
    """scene3d.write_3d with its outputs reported, and the time they took."""
    t0 = time.perf_counter()
    paths = write_3d(rgbd, prefix, progress=progress, **outputs)
    for p in paths:
        report(f"wrote {p}")
    report(f"3D outputs in {time.perf_counter() - t0:.1f}s")
    return paths


def result_name(prompt: str, seed: int | None) -> str:
    """The default file prefix of a result: the prompt's slug, and the seed when there is one."""
    return f"{slug(prompt)}-{seed}" if seed is not None else slug(prompt)


def read_mask(path: str, height: int, width: int) -> np.ndarray:
    """A mask image (white = regenerate) as (height, width) uint8, resized (nearest) to the output size."""
    try:
        img = Image.open(path).convert("L")
    except OSError as e:
        raise InvalidArgumentError(f"cannot read the mask {path}: {e}") from None
    return np.asarray(img.resize((width, height), Image.Resampling.NEAREST))


def read_init(image: str, depth: str | None, height: int, width: int,
              report: Callable[[str], None] = _silent) -> tuple[np.ndarray, np.ndarray | None, Path]:
    """An init image (and its depth: given, or the result's own _depth.png, else None), resized to height x width,
    and the RGB file it was read from."""
    f = read_rgbd_files(image, depth, need_depth=False)
    rgb = np.asarray(Image.fromarray(f.rgb).resize((width, height), Image.Resampling.BICUBIC))
    d = None if f.depth is None else \
        np.asarray(Image.fromarray(f.depth).resize((width, height), Image.Resampling.BILINEAR),
                   dtype=np.float32).clip(0, 1)
    report(f"image-to-image from {f.rgb_path}" + (f" with depth {f.depth_path}" if d is not None else " (flat depth)"))
    return rgb, d, f.rgb_path
