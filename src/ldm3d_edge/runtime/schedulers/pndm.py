"""PNDM (Liu et al. 2022): Runge-Kutta warm-up then linear multistep; mirrors diffusers' PNDMScheduler."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from .base import F32, Scheduler, SchedulerOutput, alphas_cumprod, make_betas, read_config

DEFAULTS = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                trained_betas=None, skip_prk_steps=False, set_alpha_to_one=False, prediction_type="epsilon",
                timestep_spacing="leading", steps_offset=0)


class PNDMScheduler(Scheduler):
    name = "pndm"

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        self.config = read_config(config, DEFAULTS, self.name)
        if self.config["prediction_type"] not in ("epsilon", "v_prediction"):
            raise InvalidArgumentError(f"pndm: prediction_type {self.config['prediction_type']!r} is not supported")
        self.alphas_cumprod = alphas_cumprod(make_betas(self.config))
        self.final_alpha_cumprod = F32(1.0) if self.config["set_alpha_to_one"] else self.alphas_cumprod[0]
        self.pndm_order = 4
        self._reset()

    def _reset(self) -> None:
        self.ets: list[np.ndarray] = []
        self.counter = 0
        self.cur_model_output = 0
        self.cur_sample: np.ndarray | None = None

    def set_timesteps(self, num_inference_steps: int) -> None:
        n_train = self.config["num_train_timesteps"]
        self._check_steps(num_inference_steps, n_train)
        n = self.num_inference_steps = int(num_inference_steps)
        spacing = self.config["timestep_spacing"]
        if spacing == "linspace":
            base = np.linspace(0, n_train - 1, n).round().astype(np.int64)
        elif spacing == "leading":
            base = (np.arange(0, n) * (n_train // n)).round() + self.config["steps_offset"]
        elif spacing == "trailing":
            base = np.round(np.arange(n_train, 0, -n_train / n))[::-1].astype(np.int64) - 1
        else:
            raise InvalidArgumentError(f"pndm: timestep_spacing {spacing!r} is not supported")
        if base.max() >= n_train:
            raise InvalidArgumentError(f"pndm: {n} steps with {spacing} spacing and steps_offset "
                                       f"{self.config['steps_offset']} reach timestep {int(base.max())}, past the "
                                       f"{n_train} training timesteps: use fewer steps")
        if self.config["skip_prk_steps"]:
            self.prk_timesteps = np.array([])
            self.plms_timesteps = np.concatenate([base[:-1], base[-2:-1], base[-1:]])[::-1].copy()
        else:
            prk = np.array(base[-self.pndm_order:]).repeat(2) + np.tile(
                np.array([0, n_train // n // 2]), self.pndm_order)
            self.prk_timesteps = prk[:-1].repeat(2)[1:-1][::-1].copy()
            self.plms_timesteps = base[:-3][::-1].copy()
        self.timesteps = np.concatenate([self.prk_timesteps, self.plms_timesteps]).astype(np.int64)
        self._reset()

    def step(self, model_output: np.ndarray, timestep: float, sample: np.ndarray) -> SchedulerOutput:
        self._check_ready()
        if self.counter < len(self.prk_timesteps) and not self.config["skip_prk_steps"]:
            return self._step_prk(model_output, int(timestep), sample)
        return self._step_plms(model_output, int(timestep), sample)

    def _step_prk(self, model_output: np.ndarray, timestep: int, sample: np.ndarray) -> SchedulerOutput:
        # 4th-order Runge-Kutta, one model evaluation per call (four calls per step)
        half = self.config["num_train_timesteps"] // self.num_inference_steps // 2
        prev_timestep = timestep - (0 if self.counter % 2 else half)
        timestep = int(self.prk_timesteps[self.counter // 4 * 4])
        k = self.counter % 4
        if k == 0:
            self.cur_model_output = self.cur_model_output + F32(1 / 6) * model_output
            self.ets.append(model_output)
            self.cur_sample = sample
        elif k in (1, 2):
            self.cur_model_output = self.cur_model_output + F32(1 / 3) * model_output
        else:
            model_output = self.cur_model_output + F32(1 / 6) * model_output
            self.cur_model_output = 0
        cur_sample = self.cur_sample if self.cur_sample is not None else sample
        prev = self._prev_sample(cur_sample, timestep, prev_timestep, model_output)
        self.counter += 1
        return SchedulerOutput(prev)

    def _step_plms(self, model_output: np.ndarray, timestep: int, sample: np.ndarray) -> SchedulerOutput:
        # linear multistep (Adams-Bashforth) over the last four model outputs
        if not self.config["skip_prk_steps"] and len(self.ets) < 3:
            raise InvalidArgumentError("pndm: PLMS steps need the Runge-Kutta warm-up first")
        stride = self.config["num_train_timesteps"] // self.num_inference_steps
        prev_timestep = timestep - stride
        if self.counter != 1:
            self.ets = self.ets[-3:]
            self.ets.append(model_output)
        else:
            prev_timestep = timestep
            timestep = timestep + stride
        ets = self.ets
        if len(ets) == 1 and self.counter == 0:
            self.cur_sample = sample
        elif len(ets) == 1 and self.counter == 1:
            model_output = (model_output + ets[-1]) / F32(2)
            assert self.cur_sample is not None   # kept by the call before (counter 0)
            sample = self.cur_sample
            self.cur_sample = None
        elif len(ets) == 2:
            model_output = (F32(3) * ets[-1] - ets[-2]) / F32(2)
        elif len(ets) == 3:
            model_output = (F32(23) * ets[-1] - F32(16) * ets[-2] + F32(5) * ets[-3]) / F32(12)
        else:
            model_output = F32(1 / 24) * (F32(55) * ets[-1] - F32(59) * ets[-2] + F32(37) * ets[-3] - F32(9) * ets[-4])
        prev = self._prev_sample(sample, timestep, prev_timestep, model_output)
        self.counter += 1
        return SchedulerOutput(prev)

    def _prev_sample(self, sample: np.ndarray, timestep: int, prev_timestep: int,
                     model_output: np.ndarray) -> np.ndarray:
        # eq. (9) of the PNDM paper
        a_t = self.alphas_cumprod[timestep]
        a_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        b_t, b_prev = F32(1) - a_t, F32(1) - a_prev
        if self.config["prediction_type"] == "v_prediction":
            model_output = a_t ** F32(0.5) * model_output + b_t ** F32(0.5) * sample
        sample_coeff = (a_prev / a_t) ** F32(0.5)
        denom = a_t * b_prev ** F32(0.5) + (a_t * b_t * a_prev) ** F32(0.5)
        prev = sample_coeff * sample - (a_prev - a_t) * model_output / denom
        return prev.astype(F32, copy=False)
