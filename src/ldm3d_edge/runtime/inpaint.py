"""RGBD inpainting with an ordinary LDM3D checkpoint: blended latent diffusion, and the new depth aligned to the old.

No inpainting UNet exists for LDM3D, so the plain one is used as diffusers' StableDiffusionInpaintPipeline uses a
4-channel UNet: after every denoising step, the latents outside the hole are replaced by the input's VAE encoding
noised to the next step's level (the input's exact encoding after the last step), so the model fills the hole in
agreement with what surrounds it, colour and depth at once. With `feather` 0 and a mask aligned to the latent
grid this is diffusers' arithmetic step for step (tests/test_inpaint.py). Two differences by default: a latent
pixel is regenerated when any image pixel of its 8x8 cell is (diffusers takes the nearest one, which can leave a
hole's thin rim to the old latents), and the latent mask is feathered outward by a Gaussian of `feather` latent
pixels, so the seam is blended over a few latents instead of cut.

The model's depth is relative: the regenerated region can come out at its own scale. So the depth of the hole is
fitted to the input's by a scale and shift in inverse depth (the depth maps' own space: near = high) on a ring
of known pixels around it, and the fit is applied to the hole (faded over the feathered band). border_step
measures what that buys: the mean depth step between hole pixels and their known neighbours.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from .base import StepCallback
    from .config import GenerationConfig
    from .pipeline import Pipeline
    from .result import GenerationMetrics, RGBDResult
    from .schedulers import Scheduler

DEFAULT_FEATHER = 1.0   # latent pixels
DEFAULT_RING = 8        # image pixels of known depth around the hole that the depth fit reads


def check_mask(mask: object, height: int, width: int) -> np.ndarray:
    """(H, W) bool, True = regenerate: from bool, uint8 (white = regenerate) or float in [0, 1] (>= 0.5)."""
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[2] in (1, 3, 4):
        m = m[..., 0]
    if m.shape != (height, width):
        raise InvalidArgumentError(f"the mask must be (H, W) = {[height, width]} like the image, got {list(m.shape)}")
    if m.dtype == bool:
        hole = m
    elif m.dtype == np.uint8:
        hole = m >= 128
    elif np.issubdtype(m.dtype, np.floating) and np.isfinite(m).all() and 0 <= m.min() and m.max() <= 1:
        hole = m >= 0.5
    else:
        raise InvalidArgumentError("the mask must be bool, uint8 (white = regenerate) or float in [0, 1]")
    if not hole.any():
        raise InvalidArgumentError("the mask is empty: paint the region to regenerate white")
    return hole


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D array, edges extended, the kernel cut at 2 sigma (so the feathered band
    ends: a step's blur is about 0.31 one sigma out, 0.07 at two, 0 beyond)."""
    r = max(1, int(np.ceil(2 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    for axis in (0, 1):
        pad = [(r, r) if a == axis else (0, 0) for a in (0, 1)]
        xp = np.pad(x, pad, mode="edge")
        x = np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), axis, xp)
    return x


def latent_mask(hole: np.ndarray, factor: int, feather: float = DEFAULT_FEATHER) -> np.ndarray:
    """(1, 1, H/f, W/f) float32 in [0, 1], 1 = regenerate: a latent pixel is regenerated when any pixel of its cell
    is, then the mask fades outward over a Gaussian of `feather` latent pixels (0: hard)."""
    h, w = hole.shape
    cells = np.asarray(hole.reshape(h // factor, factor, w // factor, factor).any(axis=(1, 3)), dtype=np.float32)
    if feather > 0:
        cells = np.maximum(cells, _blur(cells, feather)).astype(np.float32)
    return cells[None, None]


def dilate(m: np.ndarray, steps: int) -> np.ndarray:
    """A boolean mask grown by `steps` pixels (4-neighbour steps)."""
    out = m.copy()
    for _ in range(steps):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def fit_depth(new: np.ndarray, known: np.ndarray, ring: np.ndarray) -> tuple[float, float]:
    """Scale and shift (a, b) that bring `new` onto `known` on the ring's pixels, least squares; a shift alone when
    the ring's depth is flat, identity when the ring is empty."""
    x, y = new[ring].astype(np.float64), known[ring].astype(np.float64)
    if x.size == 0:
        return 1.0, 0.0
    if x.size < 3 or x.std() < 1e-3:
        return 1.0, float((y - x).mean())
    a, b = np.polyfit(x, y, 1)
    if not 0.2 <= a <= 5:   # a wild scale from a ring that straddles an edge: keep the shift
        return 1.0, float((y - x).mean())
    return float(a), float(b)


def align_hole_depth(depth: np.ndarray, known: np.ndarray, hole: np.ndarray, ring: int, weight: np.ndarray,
                     before: float | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """(depth, record): `depth` with its hole fitted to `known` by scale + shift on a `ring` of known pixels (applied
    with `weight`: 1 in the hole, fading over the feathered band), and the fit's record. The fit is kept only when it
    lowers the step across the hole's border, which is what it is for: where the regenerated depth already meets the
    old one (a small hole at the same scale), the ring's least squares, which weighs pixels up to `ring` px away as
    much as the border's, can raise the step instead (panoramas on the embedded model: lowered in 8 of 20 held-out
    samples, mean 0.0448 -> 0.0455, before this check; benchmarks/results/inpaint-embedded.md). `before`: the
    unfitted depth's border step, when the caller has it already."""
    a, b = fit_depth(depth, known, dilate(hole, ring) & ~hole)
    fitted = np.clip(depth + weight * ((a - 1) * depth + b), 0, 1).astype(np.float32)
    if before is None:
        before = border_step(depth, known, hole)
    after = border_step(fitted, known, hole)
    applied = after <= before
    record = {"scale": a, "shift": b, "ring_px": ring, "applied": applied, "border_step": min(before, after)}
    return (fitted if applied else depth), record


def border_step(depth: np.ndarray, known: np.ndarray, hole: np.ndarray) -> float:
    """Mean |depth[p] - known[q]| over 4-neighbour pairs with p in the hole and q outside it: how far the
    regenerated depth sits from the old depth where they meet."""
    steps = []
    for axis in (0, 1):
        for shift in (1, -1):
            q_known = ~np.roll(hole, shift, axis=axis)
            pairs = hole & q_known
            edge = [slice(None), slice(None)]
            edge[axis] = slice(0, 1) if shift == 1 else slice(-1, None)
            pairs[tuple(edge)] = False    # np.roll wraps around: no pairs across the image edge
            steps.append(np.abs(depth - np.roll(known, shift, axis=axis))[pairs])
    s = np.concatenate(steps)
    return float(s.mean()) if s.size else 0.0


def check_options(feather: object, ring: object) -> None:
    if isinstance(feather, bool) or not isinstance(feather, (int, float)) or not 0 <= feather <= 16:
        raise InvalidArgumentError(f"feather must be from 0 to 16 latent pixels, got {feather!r}")
    if isinstance(ring, bool) or not isinstance(ring, int) or not 1 <= ring <= 256:
        raise InvalidArgumentError(f"ring must be an integer from 1 to 256 pixels, got {ring!r}")


def run_inpaint(pipe: Pipeline, image: np.ndarray, hole: np.ndarray, known_depth: np.ndarray | None,
                cfg: GenerationConfig, sched: Scheduler, strength: float, feather: float, align_depth: bool,
                ring: int, metrics: GenerationMetrics, t_start: float, callback: StepCallback | None,
                progress: bool) -> RGBDResult:
    """Pipeline.inpaint's steps 2-7 (the arguments validated there)."""
    from .pipeline import img2img_timesteps

    m = pipe.manifest
    h, w = image.shape[2:]
    pipe.prepare(h, w, unguided_steps=cfg.has_unguided_steps())
    # 2. encode the image and the prompt
    t0 = time.perf_counter()
    moments = pipe._vae_encoder()(image, h, w)
    init = (moments[:, : m.latent_channels] * np.float32(m.vae_scaling_factor)).astype(np.float32)
    metrics.vae_encode_s = time.perf_counter() - t0
    hidden = pipe._encode_prompt(cfg, metrics)
    # 3. timesteps (strength < 1: the tail of the schedule, as img2img)
    sched.set_timesteps(cfg.num_inference_steps)
    timesteps = img2img_timesteps(sched, cfg.num_inference_steps, strength)
    # 4. initial latents: pure noise at strength 1 (diffusers' is_strength_max), else the image's, noised
    noise = pipe._noise(cfg)
    if strength >= 1:
        latents = (noise * np.float32(sched.init_noise_sigma)).astype(np.float32)
    else:
        latents = sched.add_noise(init, noise, timesteps[0])
    keep = 1 - latent_mask(hole, m.vae_scale_factor, feather)

    def blend(i: int, x: np.ndarray) -> np.ndarray:
        # the known region at the next step's noise level (diffusers: add_noise(image_latents, noise, t[i + 1]))
        known = sched.add_noise(init, noise, timesteps[i + 1]) if i + 1 < len(timesteps) else init
        return (keep * known + (1 - keep) * x).astype(np.float32)

    # 5. denoise, blending the known region back after every step; 6. decode
    latents = pipe._denoise(latents, timesteps, sched, hidden, cfg, metrics, callback, progress, blend=blend)
    result = pipe._decode(latents, cfg, sched, metrics, t_start)
    result.strength = strength if strength < 1 else None
    # 7. the new depth onto the old one's scale, on a ring of known pixels around the hole
    info: dict[str, Any] = {"mask_share": float(hole.mean()), "feather": float(feather)}
    if known_depth is not None:
        info["border_step_unaligned"] = unaligned = border_step(result.depth, known_depth, hole)
        if align_depth:
            weight = np.where(hole, 1.0, _upsample(1 - keep[0, 0], m.vae_scale_factor))
            result.depth, fit = align_hole_depth(result.depth, known_depth, hole, ring, weight, unaligned)
            step = fit.pop("border_step")
            info.update(depth_fit=fit, border_step=step)
    result.inpaint = info
    return result


def _upsample(x: np.ndarray, factor: int) -> np.ndarray:
    """A latent-grid map to image pixels, bilinear (pixel centres)."""
    from PIL import Image

    h, w = x.shape
    img = Image.fromarray(x.astype(np.float32))   # float32: mode "F"
    return np.asarray(img.resize((w * factor, h * factor), Image.Resampling.BILINEAR), dtype=np.float32)
