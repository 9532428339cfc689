"""DDIM (Song et al. 2020), the LDM3D releases' scheduler; mirrors diffusers' DDIMScheduler with eta = 0."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from .base import F32, Scheduler, SchedulerOutput, alphas_cumprod, make_betas, read_config, spaced_timesteps

DEFAULTS = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                trained_betas=None, clip_sample=True, set_alpha_to_one=True, steps_offset=0,
                prediction_type="epsilon", clip_sample_range=1.0, timestep_spacing="leading")


class DDIMScheduler(Scheduler):
    name = "ddim"

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        self.config = read_config(config, DEFAULTS, self.name)
        self.alphas_cumprod = alphas_cumprod(make_betas(self.config))
        self.final_alpha_cumprod = F32(1.0) if self.config["set_alpha_to_one"] else self.alphas_cumprod[0]

    def set_timesteps(self, num_inference_steps: int) -> None:
        n_train = self.config["num_train_timesteps"]
        self._check_steps(num_inference_steps, n_train)
        self.num_inference_steps = int(num_inference_steps)
        self.timesteps = spaced_timesteps(self.config["timestep_spacing"], n_train, self.num_inference_steps,
                                          self.config["steps_offset"])

    def step(self, model_output: np.ndarray, timestep: float, sample: np.ndarray) -> SchedulerOutput:
        self._check_ready()
        t = int(timestep)
        # 1. previous step (= t - 1 in the strided schedule)
        prev_t = t - self.config["num_train_timesteps"] // self.num_inference_steps
        # 2. alphas and betas
        a_t = self.alphas_cumprod[t]
        a_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod
        b_t = F32(1) - a_t
        # 3. predicted original sample x_0 (eq. 12 of the DDIM paper)
        pt = self.config["prediction_type"]
        if pt == "epsilon":
            x0 = (sample - b_t ** F32(0.5) * model_output) / a_t ** F32(0.5)
            eps = model_output
        elif pt == "sample":
            x0 = model_output
            eps = (sample - a_t ** F32(0.5) * x0) / b_t ** F32(0.5)
        elif pt == "v_prediction":
            x0 = a_t ** F32(0.5) * sample - b_t ** F32(0.5) * model_output
            eps = a_t ** F32(0.5) * model_output + b_t ** F32(0.5) * sample
        else:
            raise InvalidArgumentError(f"ddim: prediction_type {pt!r} is not supported")
        # 4. clip x_0 if the config asks for it
        if self.config["clip_sample"]:
            r = F32(self.config["clip_sample_range"])
            x0 = np.clip(x0, -r, r)
        # 5. direction pointing to x_t (eq. 12), eta = 0 so sigma_t = 0
        direction = (F32(1) - a_prev) ** F32(0.5) * eps
        # 6. x_{t-1}
        prev = a_prev ** F32(0.5) * x0 + direction
        return SchedulerOutput(prev.astype(F32, copy=False), x0.astype(F32, copy=False))
