"""What the text-to-RGBD and upscale pipelines share: loading an artifact folder, the validated config, the
prompt encoding, the denoising loop with classifier-free guidance, and the decode into RGB + depth."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np

from . import constants as C
from .backends import create_backend, resolve_device
from .config import DEFAULT_GUIDANCE, DEFAULT_STEPS, GenerationConfig
from .depth import split_rgbd
from .errors import InvalidArgumentError, Ldm3dError, ModelFolderError
from .manifest import Manifest, read_manifest
from .models import CacheFullUNet, CacheShallowUNet, TextEncoder, UNet, VaeDecoder, VaeEncoder
from .prompts import PromptCompletion
from .result import GenerationMetrics, RGBDResult
from .schedulers import Scheduler, create_scheduler
from .tokenizer import ClipTokenizer
from .verify import verify_folder

log = logging.getLogger(__name__)

# callback(step_index, timestep, latents) -> False cancels the generation
StepCallback = Callable[[int, float, np.ndarray], "bool | None"]


class GenerationCancelled(Ldm3dError):
    """A step callback returned False."""


P = TypeVar("P", bound="DiffusionPipeline")


class DiffusionPipeline:
    """Load once, generate many times; compiled models are reused across calls. Subclasses: Pipeline
    (text-to-RGBD, image-to-image) and UpscalePipeline (ldm3d-sr), each running the folders of its `kind`."""

    kind = ""   # which artifact folders this class runs (manifest "pipeline")

    def __init__(self, manifest: Manifest, fmt: str, device: str, tokenizer: ClipTokenizer,
                 scheduler_config: dict[str, Any], text_encoder: TextEncoder, unet: UNet, vae_decoder: VaeDecoder,
                 vae_encoder: VaeEncoder | None) -> None:
        self.manifest, self.format, self.device = manifest, fmt, device
        self.tokenizer, self.scheduler_config = tokenizer, scheduler_config
        self.text_encoder, self.unet, self.vae_decoder, self.vae_encoder = text_encoder, unet, vae_decoder, vae_encoder
        self.load_seconds = 0.0  # set by load(): manifest to compiled models
        # the folder's caption grammar (runtime/prompts.py), set by load(); None encodes every prompt as typed
        self.prompt_completion: PromptCompletion | None = None
        # DeepCache's two graphs, where the folder has them (compiled on first use, like the others)
        self.unet_cache: tuple[CacheFullUNet, CacheShallowUNet] | None = None
        if manifest.deepcache_branch is not None:
            self.unet_cache = (CacheFullUNet(manifest, unet.backend, fmt),
                               CacheShallowUNet(manifest, unet.backend, fmt))

    @classmethod
    def load(cls: type[P], artifact_dir: str | Path | None = None, device: str = "auto", precision: str | None = None,
             num_threads: int | None = None, cache_dir: str | Path | None = None,
             compile_now: bool = True, verify: bool = True, unguided_steps: bool = False,
             complete_prompts: bool = True) -> P:
        """Open an artifact folder made by ``ldm3d export`` (None: the embedded model's shipped IR).

        device: "auto", "CPU", "GPU", "CUDA" or "openvino:DEV" / "onnx:DEV" (see runtime.backends).
        precision: OpenVINO inference precision "f32", "bf16" or "f16"; None runs FP32 and INT8 artifacts in f32
            (exact outside the INT8 layers; OpenVINO would otherwise pick bf16 on CPUs that have it) and lets
            OpenVINO choose for FP16 ones.
        cache_dir: OpenVINO compile cache (default ~/.cache/ldm3d-edge/openvino; "" turns it off).
        verify: check every file against the manifest's sizes, and its sha256 once per file version (remembered
            in the cache folder; runtime.verify); a damaged file is a ModelFolderError naming it. False skips both.
        unguided_steps: with compile_now, compile the UNet for the unguided steps too (see prepare).
        complete_prompts: where the folder ships a caption grammar (prompt_completion.json: the embedded model),
            read a short prompt as the complete caption it stands for (runtime/prompts.py; the result's
            completed_prompt says what was encoded). False encodes every prompt exactly as typed.
        """
        t0 = time.perf_counter()
        if artifact_dir is None:
            if cls.kind != C.PIPELINE_TEXT2RGBD:
                raise InvalidArgumentError(f"{cls.__name__}.load needs an artifact folder: only a text-to-RGBD model "
                                           "is embedded")
            from ..embedded import embedded_artifacts

            artifact_dir = embedded_artifacts(device=device)[0]
        manifest = read_manifest(artifact_dir)
        if verify:
            report = verify_folder(manifest.root, manifest.raw)
            if not report.ok:
                raise report.error()
            for w in report.warnings:
                log.warning("%s: %s %s", manifest.root, w.path, w.problem)
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
        if complete_prompts:
            pipe.prompt_completion = PromptCompletion.of_folder(root)
        if compile_now:
            pipe.text_encoder.compiled(manifest.height, manifest.width)
            pipe.prepare(manifest.height, manifest.width, unguided_steps=unguided_steps)
        pipe.load_seconds = time.perf_counter() - t0
        log.info("loaded %s on %s in %.2fs", root, pipe.device, pipe.load_seconds)
        return pipe

    def make_config(self, prompt: str, negative_prompt: str | None = None, num_inference_steps: int = DEFAULT_STEPS,
                    guidance_scale: float = DEFAULT_GUIDANCE, height: int | None = None, width: int | None = None,
                    seed: int | None = None, latents: np.ndarray | None = None,
                    scheduler: str | Scheduler | None = None, circular_padding: int = 0,
                    guidance_cutoff: float | None = None, cache_interval: int = 1,
                    cache_branch: int | None = None) -> tuple[GenerationConfig, Scheduler]:
        """The validated generation config and its scheduler; raises InvalidArgumentError before any work."""
        m = self.manifest
        if seed is None and latents is None:
            seed = int(cast(int, np.random.SeedSequence().entropy)) % 2**63   # a fresh SeedSequence's is an int
        cfg = GenerationConfig(prompt=prompt, negative_prompt=negative_prompt, num_inference_steps=num_inference_steps,
                               guidance_scale=guidance_scale, height=m.height if height is None else height,
                               width=m.width if width is None else width, seed=seed, latents=latents,
                               scheduler=scheduler if isinstance(scheduler, (str, type(None))) else scheduler.name,
                               circular_padding=circular_padding, guidance_cutoff=guidance_cutoff,
                               cache_interval=cache_interval, cache_branch=cache_branch)
        cfg.validate(m.vae_scale_factor, m.latent_channels)
        if m.tome is not None and (cfg.height, self._padded_width(cfg.width, cfg.circular_padding)) != \
                (m.height, m.width):
            # the merged tokens' partition is a constant of the UNet graph, made for the export size
            raise InvalidArgumentError(
                f"{self.model_name} was exported with token merging (--tome) for {m.width}x{m.height} and runs at "
                f"that size only (asked: {cfg.width}x{cfg.height}"
                + (f", {cfg.circular_padding} latent columns of circular padding" if cfg.circular_padding else "")
                + "); export it again at this size")
        if cfg.cache_interval > 1 or cfg.cache_branch is not None:
            self._check_cache(cfg)
        sched = scheduler if isinstance(scheduler, Scheduler) else create_scheduler(self.scheduler_config, scheduler)
        # a stochastic sampler's (LCM's) per-step noise follows the seed too, apart from the initial noise's
        sched.seed((0 if cfg.seed is None else cfg.seed, 1))
        return cfg, sched

    def _check_cache(self, cfg: GenerationConfig) -> None:
        """Feature caching needs a folder exported with its graphs, at the branch asked for."""
        have = self.manifest.deepcache_branch
        if have is None:
            raise ModelFolderError(f"{self.manifest.root} has no DeepCache graphs, so it cannot cache features "
                                   "(cache_interval > 1): re-export it with 'ldm3d export SRC OUT --deepcache-branch "
                                   "0' (the graphs are added beside the plain UNet)")
        if cfg.cache_branch is not None and cfg.cache_branch != have:
            raise InvalidArgumentError(f"{self.manifest.root} was exported for DeepCache branch {have}, not "
                                       f"{cfg.cache_branch}: use branch {have} (or None), or re-export with "
                                       f"--deepcache-branch {cfg.cache_branch}")

    def prepare(self, height: int, width: int, circular_padding: int = 0, unguided_steps: bool = False) -> None:
        """Compile the UNet and VAE decoder for this image size now (OpenVINO reshapes; ONNX is static).
        With circular padding they run 2 x padding latent columns wider. unguided_steps: the images will have
        unguided steps (a guidance cut-off, as the fast preset's; guidance <= 1), so the UNet is compiled for
        batch 1 too, where it runs it (UNet.runs_batch: a large OpenVINO UNet once for batches 1-2, not first
        for batch 2 and again mid-image)."""
        m = self.manifest
        width = self._padded_width(width, circular_padding)
        if self.format == C.FORMAT_ONNX and (height, width) != (m.height, m.width):
            raise InvalidArgumentError(
                f"circular padding runs the UNet {width}x{height}, but ONNX artifacts serve only their export size "
                f"{m.width}x{m.height}: use an OpenVINO device, or turn padding off (--circular-padding 0)"
                if circular_padding else
                f"ONNX artifacts serve only their export size {m.width}x{m.height}, not {width}x{height}: re-export "
                "with --height/--width, or use an OpenVINO device, which reshapes at load time")
        if unguided_steps:
            self.unet.runs_batch(1, height, width)   # first: a batch-range model serves batch 2 as well
        for part in (self.unet, self.vae_decoder):
            part.compiled(height, width)

    def _padded_width(self, width: int, circular_padding: int) -> int:
        """The image width the UNet and decoder run at: `circular_padding` latent columns more on each side."""
        return width + 2 * circular_padding * self.manifest.vae_scale_factor

    @property
    def model_name(self) -> str:
        return self.manifest.root.name


    def _vae_encoder(self) -> VaeEncoder:
        """The VAE encoder, which img2img and the upscaler need (folders exported before it existed lack it)."""
        if self.vae_encoder is None:
            raise ModelFolderError(f"{self.manifest.root} has no {C.VAE_ENCODER}/: re-export the model with this "
                                   "version to use img2img")
        return self.vae_encoder

    def model_prompt(self, prompt: str) -> str:
        """The text the text encoder reads for `prompt`: completed by the folder's caption grammar where it ships
        one and the prompt is a short form of it, else the prompt itself."""
        return self.prompt_completion.complete(prompt) if self.prompt_completion is not None else prompt

    def _encode_prompt(self, cfg: GenerationConfig, metrics: GenerationMetrics) -> np.ndarray:
        """The prompt and the negative prompt ("" when none), batch [negative, positive] for CFG."""
        t0 = time.perf_counter()
        cond = self.text_encoder(self.tokenizer.encode(self.model_prompt(cfg.prompt)))
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
                 class_labels: np.ndarray | None = None,
                 blend: Callable[[int, np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """The denoising loop with classifier-free guidance (and, with cfg.cache_interval N > 1, DeepCache: the
        whole UNet on every N-th step, keeping its feature, the shallow graph on that feature in between).

        The first cfg.cfg_steps() steps run the UNet at batch 2 on [negative, prompt] and guide; the rest (all of
        them at guidance <= 1) on the prompt alone, at batch 1 where the UNet runs it (UNet.runs_batch), else at
        batch 2 with the prompt twice, which gives the same result in the time of a guided step. extra_channels
        (1, C, h, w) are appended to the scaled model input's channels (the upscaler's low-res latents). blend(i,
        latents) -> latents runs after step i (inpainting puts the known region back)."""
        p = cfg.circular_padding
        h, w = cfg.height, self._padded_width(cfg.width, p)
        n_cfg = cfg.cfg_steps(len(timesteps))
        cache = self.unet_cache if cfg.cache_interval > 1 else None
        parts = (self.unet,) if cache is None else cache
        single = n_cfg < len(timesteps) and all(part.runs_batch(1, h, w) for part in parts)
        if n_cfg < len(timesteps) and not single:
            log.info("%s: this %s UNet is static at batch 2, so the %d unguided steps cost as much as guided ones; "
                     "re-export it with this version (ONNX: with --dynamic-batch) to run them at batch 1",
                     self.model_name, self.format, len(timesteps) - n_cfg)
        extra = None if extra_channels is None else np.concatenate([extra_channels] * 2)   # the same every step
        feature: np.ndarray | None = None   # DeepCache: the last full step's feature
        steps = _progress(timesteps, progress)
        for i, t in enumerate(steps):
            pair = i < n_cfg or not single      # rows [negative, prompt], else the prompt's row alone
            rows = slice(0, 2) if pair else slice(1, 2)
            model_in = sched.scale_model_input(np.concatenate([latents, latents], axis=0) if pair else latents, t)
            if extra is not None:
                model_in = np.concatenate([model_in, extra[rows]], axis=1)
            labels = None if class_labels is None else class_labels[rows]
            t0 = time.perf_counter()
            args = (_wrap(model_in, p), np.full((len(model_in),), t, dtype=np.float32), hidden[rows], h, w)
            if cache is None:
                noise_pred = self.unet(*args, class_labels=labels)
            elif i % cfg.cache_interval == 0 or feature is None:
                noise_pred, feature = cache[0](*args, class_labels=labels)
            else:   # past a guidance cut-off the batch drops to 1: the prompt's row of the cached feature
                noise_pred = cache[1](*args, feature=feature[-len(model_in):], class_labels=labels)
            noise_pred = _crop(noise_pred, p)
            metrics.unet_step_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            text_pred = noise_pred[-1:]
            if i < n_cfg:
                uncond_pred = noise_pred[0:1]
                guided = uncond_pred + np.float32(cfg.guidance_scale) * (text_pred - uncond_pred)
            else:
                guided = text_pred
            latents = sched.step(guided.astype(np.float32), t, latents).prev_sample
            if blend is not None:
                latents = blend(i, latents)
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
        encoded = self.model_prompt(cfg.prompt)
        return RGBDResult(
            rgb=np.round(rgb_f * 255).astype(np.uint8), depth=depth, rgb_float=rgb_f, prompt=cfg.prompt,
            negative_prompt=cfg.negative_prompt, seed=cfg.seed if cfg.latents is None else None,
            steps=cfg.num_inference_steps, guidance_scale=float(cfg.guidance_scale), scheduler=sched.name,
            model=self.model_name, device=self.device, height=cfg.height, width=cfg.width, metrics=metrics,
            circular_padding=cfg.circular_padding, guidance_cutoff=cfg.guidance_cutoff,
            cache_interval=cfg.cache_interval if cfg.cache_interval > 1 else None,
            cache_branch=self.manifest.deepcache_branch if cfg.cache_interval > 1 else None,
            completed_prompt=encoded if encoded != cfg.prompt else None)




def _wrap(x: np.ndarray, p: int) -> np.ndarray:
    """Circular padding of the last axis: [x[..., -p:], x, x[..., :p]]."""
    return np.ascontiguousarray(np.concatenate([x[..., -p:], x, x[..., :p]], axis=-1)) if p else x


def _crop(x: np.ndarray, p: int) -> np.ndarray:
    return np.ascontiguousarray(x[..., p:-p]) if p else x



def read_scheduler_config(root: Path) -> dict[str, Any]:
    path = Path(root) / C.SCHEDULER_DIR / C.SCHEDULER_CONFIG_FILE
    try:
        cfg = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFolderError(f"cannot read {path}: {e}") from None
    if not isinstance(cfg, dict):
        raise ModelFolderError(f"{path} is not a JSON object")
    return cfg


def _progress(timesteps: np.ndarray, enabled: bool) -> Any:
    if not enabled:
        return timesteps
    from tqdm.auto import tqdm

    return tqdm(timesteps, desc="denoising", unit="step")
