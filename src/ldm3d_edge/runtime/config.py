"""The one validated set of generation parameters, with the release's defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import InvalidArgumentError

DEFAULT_STEPS = 49        # Intel/ldm3d-4c release default
DEFAULT_GUIDANCE = 5.0
DEFAULT_STRENGTH = 0.75    # img2img: diffusers' default
MAX_STEPS = 1000
MAX_SIDE = 4096
PAD_MULTIPLE = 8   # a padded latent width must pass the UNet's downsamplings (3 in the releases: 2**3)


def guided_steps(n: int, cutoff: float | None) -> int:
    """How many of n steps keep classifier-free guidance under a guidance cut-off `cutoff` (None: all):
    diffusers' SDCFGCutoffCallback(cutoff_step_ratio=f) drops guidance at the end of step int(n * f)."""
    return n if cutoff is None else min(n, int(n * cutoff) + 1)


@dataclass(kw_only=True)
class GenerationConfig:
    """Built by keyword only: GenerationConfig(prompt=..., num_inference_steps=..., ...); validate() checks it."""

    prompt: str
    negative_prompt: str | None = None
    num_inference_steps: int = DEFAULT_STEPS
    guidance_scale: float = DEFAULT_GUIDANCE
    height: int                    # Pipeline.make_config puts the export resolution here when none is asked
    width: int
    seed: int | None = None        # None: a fresh random seed, recorded in the result
    latents: np.ndarray | None = None
    scheduler: str | None = None   # None: the class named in scheduler_config.json
    circular_padding: int = 0      # panoramas: latent columns wrapped around each side (see Pipeline.__call__)
    guidance_cutoff: float | None = None   # fraction of the steps after which guidance stops (see cfg_steps)
    cache_interval: int = 1        # DeepCache: the whole UNet every N-th step, the shallow part in between
    cache_branch: int | None = None   # DeepCache branch; None: the folder's (checked by the pipeline)

    @property
    def do_cfg(self) -> bool:
        return self.guidance_scale > 1.0

    def cfg_steps(self, n: int) -> int:
        """How many of the n denoising steps run classifier-free guidance (batch 2); the rest run the UNet on the
        prompt alone (batch 1). diffusers' SDCFGCutoffCallback(cutoff_step_ratio=f) drops guidance at the end of
        step int(n * f), so steps 0..int(n * f) keep it: f = 0 guides the first step only, f = 1 every step."""
        return guided_steps(n, self.guidance_cutoff) if self.do_cfg else 0

    def has_unguided_steps(self) -> bool:
        """Whether some of the num_inference_steps run on the prompt alone (a guidance cut-off, guidance <= 1):
        the UNet is then compiled for batch 1 as well."""
        return self.cfg_steps(self.num_inference_steps) < self.num_inference_steps

    def validate(self, scale_factor: int, latent_channels: int) -> GenerationConfig:
        """Check every field; raise InvalidArgumentError naming the field, the value and what is allowed."""
        if not isinstance(self.prompt, str):
            raise InvalidArgumentError(f"prompt must be a string, got {type(self.prompt).__name__}")
        if self.negative_prompt is not None and not isinstance(self.negative_prompt, str):
            raise InvalidArgumentError("negative_prompt must be a string or None")
        steps = self.num_inference_steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= MAX_STEPS:
            raise InvalidArgumentError(f"steps must be an integer from 1 to {MAX_STEPS}, got {steps!r}")
        g = self.guidance_scale
        if isinstance(g, bool) or not isinstance(g, (int, float, np.floating)) or not math.isfinite(g) or g < 0:
            raise InvalidArgumentError(f"guidance scale must be a finite number >= 0, got {g!r}")
        for name in ("height", "width"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 < v <= MAX_SIDE or v % scale_factor:
                raise InvalidArgumentError(f"{name} must be a multiple of {scale_factor} from {scale_factor} to "
                                           f"{MAX_SIDE}, got {v!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer))
                                      or not 0 <= self.seed < 2**63):
            raise InvalidArgumentError(f"seed must be an integer from 0 to 2**63-1, got {self.seed!r}")
        p = self.circular_padding
        lw = self.width // scale_factor
        if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or not 0 <= p <= lw // 2 \
                or (p and (lw + 2 * p) % PAD_MULTIPLE):
            raise InvalidArgumentError(
                f"circular padding must be 0 or a number of latent columns up to {lw // 2} (half the latent width) "
                f"that keeps the padded latent width ({lw} + 2 x padding) a multiple of {PAD_MULTIPLE}, got {p!r}")
        f = self.guidance_cutoff
        if f is not None and (isinstance(f, bool) or not isinstance(f, (int, float, np.floating))
                              or not 0 <= f <= 1):
            raise InvalidArgumentError(f"guidance cut-off must be a fraction of the steps from 0 to 1 (or None for "
                                       f"guidance on every step), got {f!r}")
        n = self.cache_interval
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_STEPS:
            raise InvalidArgumentError(f"cache interval must be an integer from 1 (no caching) to {MAX_STEPS}, "
                                       f"got {n!r}")
        b = self.cache_branch
        if b is not None and (isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 0):
            raise InvalidArgumentError(f"cache branch must be an integer >= 0 or None, got {b!r}")
        if self.latents is not None:
            want = (1, latent_channels, self.height // scale_factor, self.width // scale_factor)
            a = self.latents
            if not isinstance(a, np.ndarray) or tuple(a.shape) != want:
                got = tuple(a.shape) if isinstance(a, np.ndarray) else type(a).__name__
                raise InvalidArgumentError(f"latents must be a numpy array of shape {want}, got {got}")
            if not np.isfinite(a).all():
                raise InvalidArgumentError("latents contain NaN or inf")
        return self
