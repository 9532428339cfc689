"""Text -> RGB + depth (and image-to-image) on exported LDM3D artifacts. Orchestration only: the work is in the
parts, the shared steps in base.DiffusionPipeline."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from . import constants as C
from .base import DiffusionPipeline, GenerationCancelled, StepCallback, read_scheduler_config
from .config import DEFAULT_GUIDANCE, DEFAULT_STEPS, DEFAULT_STRENGTH
from .depth import rgbd_to_image
from .errors import InvalidArgumentError
from .inpaint import DEFAULT_FEATHER, DEFAULT_RING, check_mask, check_options, run_inpaint
from .manifest import Manifest
from .presets import speed_settings
from .result import GenerationMetrics, RGBDResult
from .schedulers import Scheduler

log = logging.getLogger(__name__)


class Pipeline(DiffusionPipeline):
    """Text -> RGB + depth, and image-to-image, on an ldm3d / ldm3d-4c / ldm3d-pano artifact folder."""

    kind = C.PIPELINE_TEXT2RGBD

    def __call__(self, prompt: str, negative_prompt: str | None = None, num_inference_steps: int = DEFAULT_STEPS,
                 guidance_scale: float = DEFAULT_GUIDANCE, height: int | None = None, width: int | None = None,
                 seed: int | None = None, latents: np.ndarray | None = None, scheduler: str | Scheduler | None = None,
                 callback: StepCallback | None = None, progress: bool = False,
                 circular_padding: int = 0, guidance_cutoff: float | None = None, cache_interval: int = 1,
                 cache_branch: int | None = None) -> RGBDResult:
        """Text -> RGB + depth. `latents`: the initial noise (1, 4, H/8, W/8) instead of one drawn from `seed`.

        circular_padding (panoramas): before every UNet call and the decode, the latent gets the last
        `circular_padding` columns copied before its first and the first after its last, and the output is cropped
        back; the left and right edges are then generated (and decoded) as neighbours, so an equirectangular
        result closes at +-180 degrees without a seam. Costs (W/8 + 2p) / (W/8) in UNet and decoder time.

        guidance_cutoff f: classifier-free guidance stops after step int(steps * f) (diffusers'
        SDCFGCutoffCallback(cutoff_step_ratio=f)); the later steps run the UNet on the prompt alone, at batch 1,
        about half the work of a guided step. None (default) or 1 guides every step.

        cache_interval N > 1 (DeepCache; folders exported with --deepcache-branch): the whole UNet runs on steps
        0, N, 2N, ... and keeps one feature of its up path; the steps between run only the shallow layers above
        the folder's branch on it. cache_branch: the branch expected (None: the folder's; another is refused).
        """
        t_start = time.perf_counter()
        metrics = GenerationMetrics()
        # 1. validate
        cfg, sched = self.make_config(prompt, negative_prompt, num_inference_steps, guidance_scale, height, width,
                                      seed, latents, scheduler, circular_padding, guidance_cutoff, cache_interval,
                                      cache_branch)
        self.prepare(cfg.height, cfg.width, cfg.circular_padding, unguided_steps=cfg.has_unguided_steps())
        # 2. encode the prompt
        hidden = self._encode_prompt(cfg, metrics)
        # 3. timesteps
        sched.set_timesteps(cfg.num_inference_steps)
        # 4. initial latents: noise at the scheduler's starting sigma
        latents = (self._noise(cfg) * np.float32(sched.init_noise_sigma)).astype(np.float32)
        # 5. denoise, 6. decode and split RGB / depth
        latents = self._denoise(latents, sched.timesteps, sched, hidden, cfg, metrics, callback, progress)
        return self._decode(latents, cfg, sched, metrics, t_start)

    def speed_settings(self, speed: str, report: Callable[[str], None] | None = None) -> dict[str, Any]:
        """The keyword arguments of speed preset `speed` ("quality", "balanced", "fast"; runtime.presets) on this
        folder: pipe(prompt, **pipe.speed_settings("fast")). What the folder cannot do (feature caching without the
        DeepCache graphs) is left out and said through `report` (default: the log)."""
        settings, notes = speed_settings(speed, self.manifest)
        for note in notes:
            (report or log.info)(note)
        return settings

    def img2img(self, rgb: np.ndarray, depth: np.ndarray | None, prompt: str, strength: float = DEFAULT_STRENGTH,
                negative_prompt: str | None = None, num_inference_steps: int = DEFAULT_STEPS,
                guidance_scale: float = DEFAULT_GUIDANCE, seed: int | None = None, noise: np.ndarray | None = None,
                init_latents: np.ndarray | None = None, scheduler: str | Scheduler | None = None,
                callback: StepCallback | None = None, progress: bool = False,
                guidance_cutoff: float | None = None, cache_interval: int = 1,
                cache_branch: int | None = None) -> RGBDResult:
        """Re-generate an existing RGBD image guided by a new prompt ("modify a template").

        rgb: (H, W, 3) uint8 (or float in [0, 1]); depth: (H, W) relative inverse depth in [0, 1], or None for a
        flat 0.5. H and W set the output size (multiples of 8). The image goes through the VAE encoder (the mean
        of its latent Gaussian), is noised to the timestep `strength` of the way up the schedule and denoised
        from there; as diffusers' img2img pipelines, int(steps * strength) steps are run (strength 1 = from pure
        noise, small = close to the input). `noise`: (1, 4, H/8, W/8) instead of drawing it from `seed`;
        `init_latents`: already-encoded, scaled latents (skips the encoder; rgb and depth may then be None).
        guidance_cutoff, cache_interval, cache_branch: as in __call__, over the steps this run denoises.
        """
        t_start = time.perf_counter()
        metrics = GenerationMetrics()
        # 1. validate (image size sets the output size)
        image = None
        if init_latents is None:
            image = rgbd_to_image(rgb, depth, self.manifest.depth_encoding, self.manifest.vae_channels)
            h, w = image.shape[2:]
        else:
            init_latents = _check_latents(init_latents, self.manifest)
            h, w = (d * self.manifest.vae_scale_factor for d in init_latents.shape[2:])
        cfg, sched = self.make_config(prompt, negative_prompt, num_inference_steps, guidance_scale, h, w, seed,
                                      noise, scheduler, guidance_cutoff=guidance_cutoff,
                                      cache_interval=cache_interval, cache_branch=cache_branch)
        _check_strength(strength, cfg.num_inference_steps)
        self.prepare(h, w, unguided_steps=cfg.has_unguided_steps())
        # 2. encode the image and the prompt
        if init_latents is None:
            encoder = self._vae_encoder()
            assert image is not None   # made above whenever init_latents is None
            t0 = time.perf_counter()
            moments = encoder(image, h, w)
            init_latents = moments[:, : self.manifest.latent_channels] * np.float32(self.manifest.vae_scaling_factor)
            metrics.vae_encode_s = time.perf_counter() - t0
        hidden = self._encode_prompt(cfg, metrics)
        # 3. timesteps: the last int(steps * strength) of the schedule
        sched.set_timesteps(cfg.num_inference_steps)
        timesteps = img2img_timesteps(sched, cfg.num_inference_steps, float(strength))
        # 4. initial latents: the image's, noised to the first of those timesteps
        latents = sched.add_noise(init_latents.astype(np.float32), self._noise(cfg), timesteps[0])
        # 5. denoise, 6. decode and split RGB / depth
        latents = self._denoise(latents, timesteps, sched, hidden, cfg, metrics, callback, progress)
        result = self._decode(latents, cfg, sched, metrics, t_start)
        result.strength = float(strength)
        return result

    def inpaint(self, rgb: np.ndarray, depth: np.ndarray | None, mask: np.ndarray, prompt: str,
                negative_prompt: str | None = None, num_inference_steps: int = DEFAULT_STEPS,
                guidance_scale: float = DEFAULT_GUIDANCE, seed: int | None = None, noise: np.ndarray | None = None,
                scheduler: str | Scheduler | None = None, strength: float = 1.0, feather: float = DEFAULT_FEATHER,
                align_depth: bool = True, ring: int = DEFAULT_RING, callback: StepCallback | None = None,
                progress: bool = False, guidance_cutoff: float | None = None, cache_interval: int = 1,
                cache_branch: int | None = None) -> RGBDResult:
        """Regenerate the masked region of an RGBD image from `prompt`, in agreement with the rest (runtime/inpaint.py:
        blended latent diffusion with this ordinary checkpoint, the new depth fitted to the old).

        rgb, depth: as img2img (depth None: flat 0.5, and no depth fit); mask: (H, W), white / True / >= 0.5 =
        regenerate. strength 1 (default) regenerates the hole from pure noise; less starts from the image noised
        that far up the schedule. feather: latent pixels over which the hole's edge fades into the kept latents
        (0: a hard edge). align_depth: fit the hole's depth to the input's by scale + shift on a `ring` of known
        pixels around it, kept only where it lowers the depth step across the hole's border. result.inpaint records
        the mask share, the fit (and whether it was applied) and that step before and after it.
        """
        t_start = time.perf_counter()
        metrics = GenerationMetrics()
        # 1. validate (image size sets the output size)
        image = rgbd_to_image(rgb, depth, self.manifest.depth_encoding, self.manifest.vae_channels)
        h, w = image.shape[2:]
        hole = check_mask(mask, h, w)
        check_options(feather, ring)
        cfg, sched = self.make_config(prompt, negative_prompt, num_inference_steps, guidance_scale, h, w, seed,
                                      noise, scheduler, guidance_cutoff=guidance_cutoff,
                                      cache_interval=cache_interval, cache_branch=cache_branch)
        _check_strength(strength, cfg.num_inference_steps)
        known = None if depth is None else np.asarray(depth, dtype=np.float32)
        return run_inpaint(self, image, hole, known, cfg, sched, float(strength), float(feather), align_depth, ring,
                           metrics, t_start, callback, progress)


PANO_PREFIX = "360 view of"   # ldm3d-pano's prompt convention


def pano_prompt(prompt: str) -> str:
    """The prompt with the panorama models' "360 view of" prefix (added when missing)."""
    return prompt if prompt.lower().startswith(PANO_PREFIX) else f"{PANO_PREFIX} {prompt}"


def pano_settings(manifest: Manifest, height: int | None, width: int | None) -> tuple[int, int, int]:
    """(height, width, circular padding) for a panorama: 2:1 at the export height unless a size is given (or
    the export is 2:1 already); padding 1/8 of the latent width, a multiple of 4, at least 4 (16 at 1024 wide)."""
    if height is None and width is None:
        height, width = manifest.height, (manifest.width if manifest.width == 2 * manifest.height
                                          else 2 * manifest.height)
    height = manifest.height if height is None else height
    width = manifest.width if width is None else width
    return height, width, max(4, width // manifest.vae_scale_factor // 8 // 4 * 4)


def img2img_timesteps(sched: Scheduler, num_inference_steps: int, strength: float) -> np.ndarray:
    """The tail of the schedule an img2img run denoises, exactly as diffusers' StableDiffusionImg2ImgPipeline
    .get_timesteps: int(steps * strength) steps, and the scheduler told where it begins."""
    init_timestep = min(int(num_inference_steps * strength), num_inference_steps)
    t_start = max(num_inference_steps - init_timestep, 0)
    sched.set_begin_index(t_start * sched.order)
    return sched.timesteps[t_start * sched.order:]



def _check_strength(strength: object, steps: int) -> None:
    if isinstance(strength, bool) or not isinstance(strength, (int, float, np.floating)) or \
            not 0 < strength <= 1 or int(steps * strength) < 1:
        raise InvalidArgumentError(f"strength must be in (0, 1] with steps * strength >= 1, got strength "
                                   f"{strength!r} for {steps} steps")


def _check_latents(latents: object, manifest: Manifest) -> np.ndarray:
    if not isinstance(latents, np.ndarray) or latents.ndim != 4 or latents.shape[:2] != (1, manifest.latent_channels):
        got = list(latents.shape) if isinstance(latents, np.ndarray) else type(latents).__name__
        raise InvalidArgumentError(f"init_latents must be a numpy array (1, {manifest.latent_channels}, H/8, W/8), "
                                   f"got {got}")
    if not np.isfinite(latents).all():
        raise InvalidArgumentError("init_latents contain NaN or inf")
    return latents




__all__ = ["Pipeline", "GenerationCancelled", "StepCallback", "pano_prompt", "pano_settings", "img2img_timesteps",
           "read_scheduler_config"]
