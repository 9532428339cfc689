"""Euler discrete (Karras et al. 2022, Algorithm 2 without churn); mirrors diffusers' EulerDiscreteScheduler."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from .base import F32, Scheduler, SchedulerOutput, alphas_cumprod, make_betas, read_config

DEFAULTS = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                trained_betas=None, prediction_type="epsilon", interpolation_type="linear",
                use_karras_sigmas=False, use_exponential_sigmas=False, use_beta_sigmas=False,
                sigma_min=None, sigma_max=None, timestep_spacing="linspace", timestep_type="discrete",
                steps_offset=0, final_sigmas_type="zero")


def sigma_to_t(sigma: np.ndarray, log_sigmas: np.ndarray) -> np.ndarray:
    """Fractional training timestep of each sigma, by interpolation in log-sigma (as diffusers)."""
    log_sigma = np.log(np.maximum(sigma, 1e-10))
    dists = log_sigma - log_sigmas[:, np.newaxis]
    low = np.cumsum(dists >= 0, axis=0).argmax(axis=0).clip(max=log_sigmas.shape[0] - 2)
    high = low + 1
    w = np.clip((log_sigmas[low] - log_sigma) / (log_sigmas[low] - log_sigmas[high]), 0, 1)
    return ((1 - w) * low + w * high).reshape(np.shape(sigma))


def karras_sigmas(sigma_min: float, sigma_max: float, n: int, rho: float = 7.0) -> np.ndarray:
    ramp = np.linspace(0, 1, n)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


class EulerDiscreteScheduler(Scheduler):
    name = "euler"

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        cfg = self.config = read_config(config, DEFAULTS, self.name)
        for key in ("use_exponential_sigmas", "use_beta_sigmas"):
            if cfg[key]:
                raise InvalidArgumentError(f"euler: {key}=true is not supported")
        if cfg["timestep_type"] != "discrete":
            raise InvalidArgumentError("euler: only timestep_type 'discrete' is supported")
        if cfg["prediction_type"] not in ("epsilon", "v_prediction", "sample", "original_sample"):
            raise InvalidArgumentError(f"euler: prediction_type {cfg['prediction_type']!r} is not supported")
        self.alphas_cumprod = alphas_cumprod(make_betas(cfg))
        self._train_sigmas = ((F32(1) - self.alphas_cumprod) / self.alphas_cumprod) ** F32(0.5)
        self.sigmas = np.concatenate([self._train_sigmas[::-1], np.zeros(1, F32)]).astype(F32)
        self.step_index = 0

    @property
    def init_noise_sigma(self) -> float:
        s = self.sigmas.max()
        return s if self.config["timestep_spacing"] in ("linspace", "trailing") else (s * s + F32(1)) ** F32(0.5)

    def set_timesteps(self, num_inference_steps: int) -> None:
        cfg, n_train = self.config, self.config["num_train_timesteps"]
        self._check_steps(num_inference_steps, n_train)
        n = self.num_inference_steps = int(num_inference_steps)
        spacing = cfg["timestep_spacing"]
        if spacing == "linspace":
            ts = np.linspace(0, n_train - 1, n, dtype=np.float32)[::-1].copy()
        elif spacing == "leading":
            ts = (np.arange(0, n) * (n_train // n)).round()[::-1].copy().astype(np.float32) + cfg["steps_offset"]
        elif spacing == "trailing":
            ts = np.arange(n_train, 0, -n_train / n).round().copy().astype(np.float32) - 1
        else:
            raise InvalidArgumentError(f"euler: timestep_spacing {spacing!r} is not supported")
        sigmas = np.array(self._train_sigmas)
        log_sigmas = np.log(sigmas)
        if cfg["interpolation_type"] == "linear":
            sigmas = np.interp(ts, np.arange(0, len(sigmas)), sigmas)
        elif cfg["interpolation_type"] == "log_linear":
            sigmas = np.exp(np.linspace(np.log(sigmas[-1]), np.log(sigmas[0]), n + 1, dtype=np.float32))
        else:
            raise InvalidArgumentError(f"euler: interpolation_type {cfg['interpolation_type']!r} is not supported")
        if cfg["use_karras_sigmas"]:
            lo = cfg["sigma_min"] if cfg["sigma_min"] is not None else float(sigmas[-1])
            hi = cfg["sigma_max"] if cfg["sigma_max"] is not None else float(sigmas[0])
            sigmas = karras_sigmas(lo, hi, n)
            ts = np.array([sigma_to_t(s, log_sigmas) for s in sigmas])
        if cfg["final_sigmas_type"] == "sigma_min":
            last = float(self._train_sigmas[0])
        elif cfg["final_sigmas_type"] == "zero":
            last = 0.0
        else:
            raise InvalidArgumentError(f"euler: final_sigmas_type {cfg['final_sigmas_type']!r} is not supported")
        self.sigmas = np.concatenate([sigmas, [last]]).astype(F32)
        self.timesteps = ts.astype(np.float32)
        self.step_index = 0

    def add_noise(self, original: np.ndarray, noise: np.ndarray, timestep: float) -> np.ndarray:
        """x_0 + sigma noise at the current (begin) step, as diffusers after set_begin_index."""
        return (original + noise * self.sigmas[self.step_index]).astype(F32)

    def scale_model_input(self, sample: np.ndarray, timestep: float) -> np.ndarray:
        sigma = self.sigmas[self.step_index]
        return (sample / (sigma * sigma + F32(1)) ** F32(0.5)).astype(F32, copy=False)

    def step(self, model_output: np.ndarray, timestep: float, sample: np.ndarray) -> SchedulerOutput:
        self._check_ready()
        sigma = self.sigmas[self.step_index]
        # 1. denoised estimate x_0 (churn gamma = 0, so sigma_hat = sigma)
        pt = self.config["prediction_type"]
        if pt == "epsilon":
            x0 = sample - sigma * model_output
        elif pt == "v_prediction":
            x0 = model_output * (-sigma / (sigma * sigma + F32(1)) ** F32(0.5)) + sample / (sigma * sigma + F32(1))
        else:
            x0 = model_output
        # 2. ODE derivative and Euler step to the next sigma
        derivative = (sample - x0) / sigma
        dt = self.sigmas[self.step_index + 1] - sigma
        prev = sample + derivative * dt
        self.step_index += 1
        return SchedulerOutput(prev.astype(F32, copy=False), x0.astype(F32, copy=False))
