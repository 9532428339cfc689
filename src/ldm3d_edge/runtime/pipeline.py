"""Text -> RGB + depth on exported LDM3D artifacts. Orchestration only: the work is in the parts."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np

from . import constants as C
from .backends import create_backend, resolve_device
from .config import DEFAULT_GUIDANCE, DEFAULT_STEPS, DEFAULT_STRENGTH, GenerationConfig
from .depth import rgbd_to_image, split_rgbd
from .errors import InvalidArgumentError, Ldm3dError, ModelFolderError
from .manifest import Manifest, read_manifest
from .models import TextEncoder, UNet, VaeDecoder, VaeEncoder
from .result import GenerationMetrics, RGBDResult
from .schedulers import Scheduler, create_scheduler
from .tokenizer import ClipTokenizer

log = logging.getLogger(__name__)

# callback(step_index, timestep, latents) -> False cancels the generation
StepCallback = Callable[[int, float, np.ndarray], "bool | None"]


class GenerationCancelled(Ldm3dError):
    """A step callback returned False."""


class Pipeline:
    """Load once, generate many times; compiled models are reused across calls."""

    kind = C.PIPELINE_TEXT2RGBD   # which artifact folders this class runs (manifest "pipeline")

    def __init__(self, manifest: Manifest, fmt: str, device: str, tokenizer: ClipTokenizer, scheduler_config: dict,
                 text_encoder: TextEncoder, unet: UNet, vae_decoder: VaeDecoder, vae_encoder: VaeEncoder | None):
        self.manifest, self.format, self.device = manifest, fmt, device
        self.tokenizer, self.scheduler_config = tokenizer, scheduler_config
        self.text_encoder, self.unet, self.vae_decoder, self.vae_encoder = text_encoder, unet, vae_decoder, vae_encoder
        self.load_seconds = 0.0  # set by load(): manifest to compiled models

    @classmethod
    def load(cls, artifact_dir: str | Path, device: str = "auto", precision: str | None = None,
             num_threads: int | None = None, cache_dir: str | Path | None = None,
             compile_now: bool = True) -> "Pipeline":
        """Open an artifact folder made by ``ldm3d export``.

        device: "auto", "CPU", "GPU", "CUDA" or "openvino:DEV" / "onnx:DEV" (see runtime.backends).
        precision: OpenVINO inference precision "f32", "bf16" or "f16"; None runs FP32 and INT8 artifacts in f32
            (exact outside the INT8 layers; OpenVINO would otherwise pick bf16 on CPUs that have it) and lets
            OpenVINO choose for FP16 ones.
        cache_dir: OpenVINO compile cache (default ~/.cache/ldm3d-edge/openvino; "" turns it off).
        """
        t0 = time.perf_counter()
        manifest = read_manifest(artifact_dir)
        if manifest.pipeline != cls.kind:
            raise ModelFolderError(
                f"{manifest.root} is an ldm3d-sr upscaler (RGBD in, RGBD out): load it with UpscalePipeline, or use "
                "'ldm3d upscale'" if manifest.pipeline == C.PIPELINE_UPSCALE else
                f"{manifest.root} is a text-to-RGBD model, not an upscaler: load it with Pipeline")
        fmt, dev = resolve_device(device, manifest.formats)
        if precision is None and manifest.precision != "fp16" and fmt == C.FORMAT_OPENVINO:
            precision = "f32"
        backend = create_backend(fmt, dev, precision=precision, num_threads=num_threads, cache_dir=cache_dir)
        root = manifest.root
        tokenizer = ClipTokenizer.from_folder(root / C.TOKENIZER_DIR)
        scheduler_config = read_scheduler_config(root)
        create_scheduler(scheduler_config)  # fail now, not mid-generation, on an unusable config
        vae_encoder = VaeEncoder(manifest, backend, fmt) if manifest.has(C.VAE_ENCODER) else None
        pipe = cls(manifest, fmt, backend.label, tokenizer, scheduler_config, TextEncoder(manifest, backend, fmt),
                   UNet(manifest, backend, fmt), VaeDecoder(manifest, backend, fmt), vae_encoder)
        if compile_now:
            for part in (pipe.text_encoder, pipe.unet, pipe.vae_decoder):
                part.compiled(manifest.height, manifest.width)
        pipe.load_seconds = time.perf_counter() - t0
        log.info("loaded %s on %s in %.2fs", root, pipe.device, pipe.load_seconds)
        return pipe

    def make_config(self, prompt: str, negative_prompt: str | None = None, num_inference_steps: int = DEFAULT_STEPS,
                    guidance_scale: float = DEFAULT_GUIDANCE, height: int | None = None, width: int | None = None,
                    seed: int | None = None, latents: np.ndarray | None = None,
                    scheduler: str | Scheduler | None = None,
                    circular_padding: int = 0) -> tuple[GenerationConfig, Scheduler]:
        """The validated generation config and its scheduler; raises InvalidArgumentError before any work."""
        m = self.manifest
        if seed is None and latents is None:
            seed = int(np.random.SeedSequence().entropy % 2**63)
        cfg = GenerationConfig(prompt, negative_prompt, num_inference_steps, guidance_scale,
                               m.height if height is None else height, m.width if width is None else width,
                               seed, latents, scheduler if isinstance(scheduler, (str, type(None))) else scheduler.name,
                               circular_padding)
        cfg.validate(m.vae_scale_factor, m.latent_channels)
        sched = scheduler if isinstance(scheduler, Scheduler) else create_scheduler(self.scheduler_config, scheduler)
        return cfg, sched

    def prepare(self, height: int, width: int, circular_padding: int = 0) -> None:
        """Compile the UNet and VAE decoder for this image size now (OpenVINO reshapes; ONNX is static).
        With circular padding they run 2 x padding latent columns wider."""
        m = self.manifest
        width = self._padded_width(width, circular_padding)
        if self.format == C.FORMAT_ONNX and (height, width) != (m.height, m.width):
            raise InvalidArgumentError(
                f"circular padding runs the UNet {width}x{height}, but ONNX artifacts serve only their export size "
                f"{m.width}x{m.height}: use an OpenVINO device, or turn padding off (--circular-padding 0)"
                if circular_padding else
                f"ONNX artifacts serve only their export size {m.width}x{m.height}, not {width}x{height}: re-export "
                "with --height/--width, or use an OpenVINO device, which reshapes at load time")
        for part in (self.unet, self.vae_decoder):
            part.compiled(height, width)

    def _padded_width(self, width: int, circular_padding: int) -> int:
        """The image width the UNet and decoder run at: `circular_padding` latent columns more on each side."""
        return width + 2 * circular_padding * self.manifest.vae_scale_factor

    @property
    def model_name(self) -> str:
        return self.manifest.root.name

    def __call__(self, prompt: str, negative_prompt: str | None = None, num_inference_steps: int = DEFAULT_STEPS,
                 guidance_scale: float = DEFAULT_GUIDANCE, height: int | None = None, width: int | None = None,
                 seed: int | None = None, latents: np.ndarray | None = None, scheduler: str | Scheduler | None = None,
                 callback: StepCallback | None = None, progress: bool = False,
                 circular_padding: int = 0) -> RGBDResult:
        """Text -> RGB + depth. `latents`: the initial noise (1, 4, H/8, W/8) instead of one drawn from `seed`.

        circular_padding (panoramas): before every UNet call and the decode, the latent gets the last
        `circular_padding` columns copied before its first and the first after its last, and the output is cropped
        back; the left and right edges are then generated (and decoded) as neighbours, so an equirectangular
        result closes at +-180 degrees without a seam. Costs (W/8 + 2p) / (W/8) in UNet and decoder time.
        """
        t_start = time.perf_counter()
        metrics = GenerationMetrics()
        # 1. validate
        cfg, sched = self.make_config(prompt, negative_prompt, num_inference_steps, guidance_scale, height, width,
                                      seed, latents, scheduler, circular_padding)
        self.prepare(cfg.height, cfg.width, cfg.circular_padding)
        # 2. encode the prompt
        hidden = self._encode_prompt(cfg, metrics)
        # 3. timesteps
        sched.set_timesteps(cfg.num_inference_steps)
        # 4. initial latents: noise at the scheduler's starting sigma
        latents = (self._noise(cfg) * np.float32(sched.init_noise_sigma)).astype(np.float32)
        # 5. denoise, 6. decode and split RGB / depth
        latents = self._denoise(latents, sched.timesteps, sched, hidden, cfg, metrics, callback, progress)
        return self._decode(latents, cfg, sched, metrics, t_start)

    def img2img(self, rgb: np.ndarray, depth: np.ndarray | None, prompt: str, strength: float = DEFAULT_STRENGTH,
                negative_prompt: str | None = None, num_inference_steps: int = DEFAULT_STEPS,
                guidance_scale: float = DEFAULT_GUIDANCE, seed: int | None = None, noise: np.ndarray | None = None,
                init_latents: np.ndarray | None = None, scheduler: str | Scheduler | None = None,
                callback: StepCallback | None = None, progress: bool = False) -> RGBDResult:
        """Re-generate an existing RGBD image guided by a new prompt ("modify a template").

        rgb: (H, W, 3) uint8 (or float in [0, 1]); depth: (H, W) relative inverse depth in [0, 1], or None for a
        flat 0.5. H and W set the output size (multiples of 8). The image goes through the VAE encoder (the mean
        of its latent Gaussian), is noised to the timestep `strength` of the way up the schedule and denoised
        from there; as diffusers' img2img pipelines, int(steps * strength) steps are run (strength 1 = from pure
        noise, small = close to the input). `noise`: (1, 4, H/8, W/8) instead of drawing it from `seed`;
        `init_latents`: already-encoded, scaled latents (skips the encoder; rgb and depth may then be None).
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
                                      noise, scheduler)
        if isinstance(strength, bool) or not isinstance(strength, (int, float, np.floating)) or \
                not 0 < strength <= 1 or int(cfg.num_inference_steps * strength) < 1:
            raise InvalidArgumentError(f"strength must be in (0, 1] with steps * strength >= 1, got strength "
                                       f"{strength!r} for {cfg.num_inference_steps} steps")
        self.prepare(h, w)
        # 2. encode the image and the prompt
        if init_latents is None:
            if self.vae_encoder is None:
                raise ModelFolderError(f"{self.manifest.root} has no {C.VAE_ENCODER}/: re-export the model with "
                                       "this version to use img2img")
            t0 = time.perf_counter()
            moments = self.vae_encoder(image, h, w)
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

    # -- the steps both entry points share -------------------------------------------------------------------

    def _encode_prompt(self, cfg: GenerationConfig, metrics: GenerationMetrics) -> np.ndarray:
        """The prompt and the negative prompt ("" when none), batch [negative, positive] for CFG."""
        t0 = time.perf_counter()
        cond = self.text_encoder(self.tokenizer.encode(cfg.prompt))
        uncond = self.text_encoder(self.tokenizer.encode(cfg.negative_prompt or "")) if cfg.do_cfg else cond
        metrics.text_encoder_s = time.perf_counter() - t0
        return np.concatenate([uncond, cond], axis=0).astype(np.float32)

    def _noise(self, cfg: GenerationConfig) -> np.ndarray:
        m = self.manifest
        shape = (1, m.latent_channels, cfg.height // m.vae_scale_factor, cfg.width // m.vae_scale_factor)
        if cfg.latents is not None:
            return cfg.latents.astype(np.float32)
        return np.random.default_rng(cfg.seed).standard_normal(shape, dtype=np.float32)

    def _denoise(self, latents: np.ndarray, timesteps: np.ndarray, sched: Scheduler, hidden: np.ndarray,
                 cfg: GenerationConfig, metrics: GenerationMetrics, callback: StepCallback | None,
                 progress: bool, extra_channels: np.ndarray | None = None,
                 class_labels: np.ndarray | None = None) -> np.ndarray:
        """The denoising loop with classifier-free guidance (the UNet is exported at batch 2). extra_channels
        (1, C, h, w) are appended to the scaled model input's channels (the upscaler's low-res latents)."""
        p = cfg.circular_padding
        h, w = cfg.height, self._padded_width(cfg.width, p)
        extra = None if extra_channels is None else np.concatenate([extra_channels] * 2)   # the same every step
        labels = {} if class_labels is None else {"class_labels": class_labels}
        steps = _progress(timesteps, progress)
        for i, t in enumerate(steps):
            model_in = sched.scale_model_input(np.concatenate([latents, latents], axis=0), t)
            if extra is not None:
                model_in = np.concatenate([model_in, extra], axis=1)
            t0 = time.perf_counter()
            noise_pred = _crop(self.unet(_wrap(model_in, p), np.full((2,), t, dtype=np.float32), hidden, h, w,
                                         **labels), p)
            metrics.unet_step_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            uncond_pred, text_pred = noise_pred[0:1], noise_pred[1:2]
            guided = uncond_pred + np.float32(cfg.guidance_scale) * (text_pred - uncond_pred) if cfg.do_cfg \
                else text_pred
            latents = sched.step(guided.astype(np.float32), t, latents).prev_sample
            metrics.scheduler_s += time.perf_counter() - t0
            if progress:
                steps.set_postfix_str(f"{metrics.unet_step_s[-1]:.2f}s/step", refresh=False)
            if callback is not None and callback(i, float(t), latents) is False:
                raise GenerationCancelled(f"generation cancelled by the callback at step {i + 1}")
        return latents

    def _decode(self, latents: np.ndarray, cfg: GenerationConfig, sched: Scheduler, metrics: GenerationMetrics,
                t_start: float) -> RGBDResult:
        m = self.manifest
        p = cfg.circular_padding
        t0 = time.perf_counter()
        image = self.vae_decoder(_wrap((latents / np.float32(m.vae_scaling_factor)).astype(np.float32), p),
                                 cfg.height, self._padded_width(cfg.width, p))
        image = _crop(image, p * m.vae_scale_factor)
        metrics.vae_decode_s = time.perf_counter() - t0
        rgb_f, depth = split_rgbd(image, m.depth_encoding)
        metrics.total_s = time.perf_counter() - t_start
        return RGBDResult(
            rgb=np.round(rgb_f * 255).astype(np.uint8), depth=depth, rgb_float=rgb_f, prompt=cfg.prompt,
            negative_prompt=cfg.negative_prompt, seed=cfg.seed if cfg.latents is None else None,
            steps=cfg.num_inference_steps, guidance_scale=float(cfg.guidance_scale), scheduler=sched.name,
            model=self.model_name, device=self.device, height=cfg.height, width=cfg.width, metrics=metrics,
            circular_padding=cfg.circular_padding)


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


def _wrap(x: np.ndarray, p: int) -> np.ndarray:
    """Circular padding of the last axis: [x[..., -p:], x, x[..., :p]]."""
    return np.ascontiguousarray(np.concatenate([x[..., -p:], x, x[..., :p]], axis=-1)) if p else x


def _crop(x: np.ndarray, p: int) -> np.ndarray:
    return np.ascontiguousarray(x[..., p:-p]) if p else x


def _check_latents(latents, manifest: Manifest) -> np.ndarray:
    if not isinstance(latents, np.ndarray) or latents.ndim != 4 or latents.shape[:2] != (1, manifest.latent_channels):
        got = list(latents.shape) if isinstance(latents, np.ndarray) else type(latents).__name__
        raise InvalidArgumentError(f"init_latents must be a numpy array (1, {manifest.latent_channels}, H/8, W/8), "
                                   f"got {got}")
    if not np.isfinite(latents).all():
        raise InvalidArgumentError("init_latents contain NaN or inf")
    return latents


def read_scheduler_config(root: Path) -> dict:
    path = Path(root) / C.SCHEDULER_DIR / C.SCHEDULER_CONFIG_FILE
    try:
        cfg = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFolderError(f"cannot read {path}: {e}") from None
    if not isinstance(cfg, dict):
        raise ModelFolderError(f"{path} is not a JSON object")
    return cfg


def _progress(timesteps, enabled: bool):
    if not enabled:
        return timesteps
    from tqdm.auto import tqdm

    return tqdm(timesteps, desc="denoising", unit="step")
