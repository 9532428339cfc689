"""Latent Consistency Model sampling (Luo et al. 2023); mirrors diffusers' LCMScheduler.

Only for checkpoints distilled for it (an LCM model, or a UNet with an LCM-LoRA fused at export): each step
predicts the clean latent with the consistency function's boundary scalings, then re-noises it to the next
timestep with fresh Gaussian noise, so 2-8 steps suffice. Unlike the other schedulers the step is stochastic:
its noise comes from the scheduler's own generator (``seed()``), or from ``step(..., noise=...)``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from .base import F32, Scheduler, SchedulerOutput, alphas_cumprod, make_betas, read_config

DEFAULTS = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                trained_betas=None, original_inference_steps=50, clip_sample=False, clip_sample_range=1.0,
                set_alpha_to_one=True, steps_offset=0, prediction_type="epsilon", timestep_spacing="leading",
                timestep_scaling=10.0)
SIGMA_DATA = F32(0.5)


class LCMScheduler(Scheduler):
    name = "lcm"

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        cfg = self.config = read_config(config, DEFAULTS, self.name)
        if cfg["prediction_type"] not in ("epsilon", "sample", "v_prediction"):
            raise InvalidArgumentError(f"lcm: prediction_type {cfg['prediction_type']!r} is not supported")
        if cfg["original_inference_steps"] > cfg["num_train_timesteps"]:
            raise InvalidArgumentError("lcm: original_inference_steps exceeds num_train_timesteps")
        self.alphas_cumprod = alphas_cumprod(make_betas(cfg))
        self.final_alpha_cumprod = F32(1) if cfg["set_alpha_to_one"] else self.alphas_cumprod[0]
        self.seed(0)

    def seed(self, seed: int | tuple[int, ...] | None) -> None:
        """Seed the generator the re-noising draws from (a generation seeds it from its own seed)."""
        self._rng = np.random.default_rng(seed)

    def set_timesteps(self, num_inference_steps: int) -> None:
        cfg = self.config
        self._check_steps(num_inference_steps, cfg["num_train_timesteps"])
        original = int(cfg["original_inference_steps"])
        if num_inference_steps > original:
            raise InvalidArgumentError(f"lcm: at most {original} steps (the distillation schedule's "
                                       f"original_inference_steps), got {num_inference_steps}")
        k = cfg["num_train_timesteps"] // original
        # the distillation's skipping schedule, high to low, and n evenly spaced entries of it
        origin = (np.arange(1, original + 1) * k - 1)[::-1].copy()
        picks = np.floor(np.linspace(0, len(origin), num=num_inference_steps, endpoint=False)).astype(np.int64)
        self.timesteps = origin[picks].astype(np.int64)
        self.num_inference_steps = int(num_inference_steps)
        self.step_index = 0

    def _boundary(self, timestep: int) -> tuple[np.float32, np.float32]:
        """c_skip, c_out of the consistency function at this timestep (diffusers'
        get_scalings_for_boundary_condition_discrete)."""
        scaled = F32(timestep) * F32(self.config["timestep_scaling"])
        c_skip = SIGMA_DATA ** 2 / (scaled ** 2 + SIGMA_DATA ** 2)
        c_out = scaled / (scaled ** 2 + SIGMA_DATA ** 2) ** F32(0.5)
        return F32(c_skip), F32(c_out)

    def step(self, model_output: np.ndarray, timestep: float, sample: np.ndarray,
             noise: np.ndarray | None = None) -> SchedulerOutput:
        self._check_ready()
        cfg, i, t = self.config, self.step_index, int(timestep)
        prev_t = int(self.timesteps[i + 1]) if i + 1 < len(self.timesteps) else t
        a_t = self.alphas_cumprod[t]
        a_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod
        b_t, b_prev = F32(1) - a_t, F32(1) - a_prev
        c_skip, c_out = self._boundary(t)
        pt = cfg["prediction_type"]
        if pt == "epsilon":
            x0 = (sample - b_t ** F32(0.5) * model_output) / a_t ** F32(0.5)
        elif pt == "sample":
            x0 = model_output
        else:
            x0 = a_t ** F32(0.5) * sample - b_t ** F32(0.5) * model_output
        if cfg["clip_sample"]:
            r = F32(cfg["clip_sample_range"])
            x0 = np.clip(x0, -r, r)
        denoised = c_out * x0 + c_skip * sample
        if i != len(self.timesteps) - 1:
            if noise is None:
                noise = self._rng.standard_normal(model_output.shape, dtype=np.float32)
            prev = a_prev ** F32(0.5) * denoised + b_prev ** F32(0.5) * noise
        else:
            prev = denoised
        self.step_index += 1
        return SchedulerOutput(prev.astype(F32, copy=False), denoised.astype(F32, copy=False))
