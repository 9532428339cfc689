"""RGBD -> RGBD at a higher resolution with an exported ldm3d-sr upscaler. Orchestration only.

The ldm3d-sr recipe (StableDiffusionUpscaleLDM3DPipeline, the release configs): the low-res RGB and depth are
resized to the target size (Lanczos, as diffusers' VaeImageProcessorLDM3D.preprocess with target_res), encoded
by the VAE, and those latents are appended as 4 extra channels to the noisy latents at every UNet call; the
UNet also gets the noise level (0..max_noise_level, default 20) as its class label. Text and classifier-free
guidance work as in text-to-RGBD. The image latents are the mean of the encoder's Gaussian (diffusers samples
it; the two differ by the encoder's small std).
"""

from __future__ import annotations

import time

import numpy as np
from PIL import Image

from . import constants as C
from .base import DiffusionPipeline, StepCallback
from .depth import rgbd_to_image
from .errors import InvalidArgumentError
from .result import GenerationMetrics, RGBDResult
from .schedulers import Scheduler

UPSCALE_STEPS = 75           # the release's defaults
UPSCALE_GUIDANCE = 9.0
UPSCALE_NOISE_LEVEL = 20
UPSCALE_PROMPT = "high quality high resolution uhd 4k image"


def resize_rgbd(rgb: np.ndarray, depth: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Lanczos-resize an RGB (uint8) and a depth map (float [0, 1], via its 16-bit form, as diffusers reads a
    16-bit depth PNG) to height x width."""
    rgb_up = np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS))
    d16 = Image.fromarray(np.round(np.clip(depth, 0, 1) * 65535).astype(np.uint16))
    depth_up = np.asarray(d16.resize((width, height), Image.Resampling.LANCZOS), dtype=np.float32) / 65535.0
    return rgb_up, depth_up


class UpscalePipeline(DiffusionPipeline):
    """Load an ldm3d-sr artifact folder once, upscale many RGBD images. A sibling of Pipeline: it has no
    img2img (its image input is the low-res RGBD itself)."""

    kind = C.PIPELINE_UPSCALE

    def prepare(self, height: int, width: int, circular_padding: int = 0, unguided_steps: bool = False) -> None:
        """As the base class's, and the VAE encoder too (load with compile_now runs this)."""
        super().prepare(height, width, circular_padding, unguided_steps)
        self._vae_encoder().compiled(height, width)

    def __call__(self, rgb: np.ndarray, depth: np.ndarray, prompt: str = UPSCALE_PROMPT,
                 negative_prompt: str | None = None, num_inference_steps: int = UPSCALE_STEPS,
                 guidance_scale: float = UPSCALE_GUIDANCE, noise_level: int = UPSCALE_NOISE_LEVEL,
                 height: int | None = None, width: int | None = None, seed: int | None = None,
                 latents: np.ndarray | None = None, scheduler: str | Scheduler | None = None,
                 callback: StepCallback | None = None, progress: bool = False) -> RGBDResult:
        """Upscale `rgb` (H, W, 3) uint8 with `depth` (H, W) in [0, 1] to height x width (default: the export
        size, 1024x1024 for the release). `latents`: the initial noise (1, 4, height/8, width/8)."""
        t_start = time.perf_counter()
        metrics = GenerationMetrics()
        m = self.manifest
        # 1. validate
        cfg, sched = self.make_config(prompt, negative_prompt, num_inference_steps, guidance_scale, height, width,
                                      seed, latents, scheduler)
        top = m.max_noise_level if m.max_noise_level is not None else C.DEFAULT_MAX_NOISE_LEVEL
        if isinstance(noise_level, bool) or not isinstance(noise_level, (int, np.integer)) or \
                not 0 <= noise_level <= top:
            raise InvalidArgumentError(f"noise level must be an integer from 0 to {top}, got {noise_level!r}")
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InvalidArgumentError(f"rgb must be an (H, W, 3) uint8 image, got {rgb.dtype}{list(rgb.shape)}")
        if depth is None or np.shape(depth) != rgb.shape[:2]:
            raise InvalidArgumentError(f"depth must be (H, W) = {list(rgb.shape[:2])} like the RGB image, got "
                                       f"{None if depth is None else list(np.shape(depth))}")
        self.prepare(cfg.height, cfg.width, unguided_steps=cfg.has_unguided_steps())
        # 2. resize the low-res RGBD to the target size and encode it: the UNet's extra input channels
        t0 = time.perf_counter()
        image = rgbd_to_image(*resize_rgbd(rgb, np.asarray(depth, np.float32), cfg.height, cfg.width),
                              m.depth_encoding, m.vae_channels)
        moments = self._vae_encoder()(image, cfg.height, cfg.width)
        cond = (moments[:, : m.latent_channels] * np.float32(m.vae_scaling_factor)).astype(np.float32)
        metrics.vae_encode_s = time.perf_counter() - t0
        # 3. encode the prompt
        hidden = self._encode_prompt(cfg, metrics)
        # 4. timesteps and 5. initial latents
        sched.set_timesteps(cfg.num_inference_steps)
        latents = (self._noise(cfg) * np.float32(sched.init_noise_sigma)).astype(np.float32)
        # 6. denoise with the image latents and the noise level, 7. decode and split
        labels = np.full((2,), int(noise_level), dtype=np.int64)
        latents = self._denoise(latents, sched.timesteps, sched, hidden, cfg, metrics, callback, progress,
                                extra_channels=cond, class_labels=labels)
        result = self._decode(latents, cfg, sched, metrics, t_start)
        result.upscaled_from = (int(rgb.shape[0]), int(rgb.shape[1]))
        result.noise_level = int(noise_level)
        return result


__all__ = ["UpscalePipeline", "resize_rgbd", "UPSCALE_STEPS", "UPSCALE_GUIDANCE",
           "UPSCALE_NOISE_LEVEL", "UPSCALE_PROMPT"]
