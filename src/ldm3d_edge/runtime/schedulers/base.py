"""What every numpy scheduler shares: the beta schedule and the step interface.

Each scheduler is built from a diffusers ``scheduler_config.json`` dict the way diffusers' ``from_config``
does it: keys it knows are read, missing keys take diffusers' defaults, unknown keys are ignored. So a DDIM
config (the release's) can build an Euler scheduler, exactly like
``EulerDiscreteScheduler.from_config(ddim.config)``. Arithmetic is float32, as in diffusers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError

F32 = np.float32


@dataclass
class SchedulerOutput:
    prev_sample: np.ndarray
    pred_original_sample: np.ndarray | None = None


def read_config(config: dict[str, Any], defaults: dict[str, Any], scheduler: str) -> dict[str, Any]:
    """Pick the known keys from `config`, filling diffusers' defaults; reject what we do not implement."""
    cfg = {k: config.get(k, v) for k, v in defaults.items()}
    for key, default in (("rescale_betas_zero_snr", False), ("thresholding", False)):
        if config.get(key, default):
            raise InvalidArgumentError(f"{scheduler}: scheduler option {key}=true is not supported")
    return cfg


def make_betas(cfg: dict[str, Any]) -> np.ndarray:
    n = int(cfg["num_train_timesteps"])
    if cfg.get("trained_betas") is not None:
        return np.asarray(cfg["trained_betas"], dtype=F32)
    schedule = cfg["beta_schedule"]
    if schedule == "linear":
        return linspace_f32(cfg["beta_start"], cfg["beta_end"], n)
    if schedule == "scaled_linear":
        root = linspace_f32(cfg["beta_start"] ** 0.5, cfg["beta_end"] ** 0.5, n)
        return root * root
    if schedule == "squaredcos_cap_v2":
        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        return np.asarray([min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), 0.999) for i in range(n)], dtype=F32)
    raise InvalidArgumentError(f"beta_schedule {schedule!r} is not supported; use linear, scaled_linear or "
                               "squaredcos_cap_v2")


def linspace_f32(start: float, end: float, n: int) -> np.ndarray:
    """float32 linspace bit-identical to torch.linspace(..., dtype=float32), which diffusers uses for betas:
    a float32 step, fused multiply-add from the start for the first half and from the end for the rest."""
    a, b = F32(start), F32(end)
    step = F32((b - a) / F32(max(n - 1, 1)))
    i = np.arange(n)
    return np.where(i < n // 2, np.float64(a) + np.float64(step) * i,
                    np.float64(b) - np.float64(step) * (n - i - 1)).astype(F32)


def alphas_cumprod(betas: np.ndarray) -> np.ndarray:
    """Cumulative product of 1 - beta, accumulated in float64 as torch.cumprod does, returned as float32."""
    return np.cumprod((F32(1.0) - betas).astype(np.float64)).astype(F32)


def _spaced_timesteps(spacing: str, num_train: int, steps: int, offset: int, dtype: Any = np.int64) -> np.ndarray:
    """Timesteps from high to low, with diffusers' 'linspace' / 'leading' / 'trailing' spacing."""
    if spacing == "linspace":
        return np.linspace(0, num_train - 1, steps).round()[::-1].copy().astype(dtype)
    if spacing == "leading":
        ratio = num_train // steps
        return ((np.arange(0, steps) * ratio).round()[::-1].copy().astype(dtype) + offset).astype(dtype)
    if spacing == "trailing":
        stride = num_train / steps
        return (np.round(np.arange(num_train, 0, -stride)).astype(dtype) - 1).astype(dtype)
    raise InvalidArgumentError(f"timestep_spacing {spacing!r} is not supported; use linspace, leading or trailing")


def spaced_timesteps(spacing: str, num_train: int, steps: int, offset: int, dtype: Any = np.int64) -> np.ndarray:
    """Timesteps from high to low, with diffusers' 'linspace' / 'leading' / 'trailing' spacing; refuses a step
    count whose schedule runs past the last training timestep (leading spacing with steps_offset 1 and 1000 steps
    would ask for timestep 1000 of 0..999, which diffusers does too, and fail deep inside)."""
    ts = _spaced_timesteps(spacing, num_train, steps, offset, dtype)
    if len(ts) and (ts.max() >= num_train or ts.min() < 0):
        limit = next((n for n in range(steps - 1, 0, -1)
                      if _spaced_timesteps(spacing, num_train, n, offset, dtype).max() < num_train), 1)
        raise InvalidArgumentError(f"{steps} steps with {spacing} spacing and steps_offset {offset} reach timestep "
                                   f"{int(ts.max())}, past the {num_train} training timesteps: use at most {limit}")
    return ts


def exp_f32(x: float | np.floating) -> np.float32:
    """float32 exp, correctly rounded (via float64) like the libm expf torch uses on 0-d tensors."""
    return F32(np.exp(np.float64(x)))


def log_f32(x: float | np.floating) -> np.float32:
    with np.errstate(divide="ignore"):  # sigma = 0 at the end gives lambda = inf, as in diffusers
        return F32(np.log(np.float64(x)))


def alpha_sigma(sigma: np.float32) -> tuple[np.float32, np.float32]:
    """(alpha_t, sigma_t) of the variance-preserving process at noise level sigma (= sqrt((1 - abar) / abar))."""
    alpha = F32(1) / (sigma * sigma + F32(1)) ** F32(0.5)
    return alpha, sigma * alpha


def alpha_sigma_lambda(sigma: np.float32) -> tuple[np.float32, np.float32, np.float32]:
    """alpha_t, sigma_t and the half log-SNR lambda_t = log alpha_t - log sigma_t the multistep solvers step in."""
    alpha, sig = alpha_sigma(sigma)
    return alpha, sig, log_f32(alpha) - log_f32(sig)


def convert_prediction(model_output: np.ndarray, sample: np.ndarray, alpha_t: np.float32, sigma_t: np.float32,
                       prediction_type: str, to_x0: bool) -> np.ndarray:
    """What the multistep solvers work on, from the model's output of `prediction_type` ("epsilon", "sample",
    "v_prediction") at (alpha_t, sigma_t): the x_0 estimate (to_x0) or the noise estimate."""
    if to_x0:
        if prediction_type == "epsilon":
            return (sample - sigma_t * model_output) / alpha_t
        if prediction_type == "sample":
            return model_output
        return alpha_t * sample - sigma_t * model_output
    if prediction_type == "epsilon":
        return model_output
    if prediction_type == "sample":
        return (sample - alpha_t * model_output) / sigma_t
    return alpha_t * model_output + sigma_t * sample


class Scheduler:
    """Interface: build from a config dict, ``set_timesteps(n)``, then per timestep
    ``scale_model_input`` -> model -> ``step``. Only ``set_timesteps`` resets state."""

    name = "base"
    order = 1
    alphas_cumprod: np.ndarray   # set by DDPM-style schedulers' __init__

    def __init__(self, config: dict[str, Any]):
        self.timesteps: np.ndarray = np.zeros(0, np.int64)   # empty until set_timesteps
        self.num_inference_steps: int | None = None

    @property
    def init_noise_sigma(self) -> float:
        """The initial noise's standard deviation (1 for DDPM-style schedulers; sigma-based ones override)."""
        return 1.0

    def set_timesteps(self, num_inference_steps: int) -> None:
        raise NotImplementedError

    def seed(self, seed: int | tuple[int, ...] | None) -> None:
        """Seed the noise a stochastic step draws (a no-op for the deterministic schedulers)."""

    def scale_model_input(self, sample: np.ndarray, timestep: float) -> np.ndarray:
        return sample

    def step(self, model_output: np.ndarray, timestep: float, sample: np.ndarray) -> SchedulerOutput:
        raise NotImplementedError

    def set_begin_index(self, begin_index: int) -> None:
        """Start the loop at timesteps[begin_index] (image-to-image). Schedulers that count their steps (Euler,
        DPM-Solver) start counting there, as diffusers' set_begin_index does; the others step by timestep value."""
        if hasattr(self, "step_index"):
            self.step_index = int(begin_index)

    def add_noise(self, original: np.ndarray, noise: np.ndarray, timestep: float) -> np.ndarray:
        """The forward process q(x_t | x_0): sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise (DDPM-style
        schedulers; sigma-based ones override it)."""
        a = self.alphas_cumprod[int(timestep)]
        return (a ** F32(0.5) * original + (F32(1) - a) ** F32(0.5) * noise).astype(F32)

    def _check_ready(self) -> None:
        if self.num_inference_steps is None:
            raise InvalidArgumentError(f"{self.name}: call set_timesteps() before step()")

    def _check_steps(self, n: int, num_train: int) -> None:
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise InvalidArgumentError(f"num_inference_steps must be an integer >= 1, got {n!r}")
        if n > num_train:
            raise InvalidArgumentError(f"num_inference_steps {n} exceeds the {num_train} training timesteps")



class SigmaStepper(Scheduler):
    """What the multistep solvers (DPM-Solver, UniPC) share: a sigma per step (plus the final one), counted by
    step_index, and noise added at the current step's sigma."""

    sigmas: np.ndarray
    step_index: int

    def add_noise(self, original: np.ndarray, noise: np.ndarray, timestep: float) -> np.ndarray:
        """alpha_t x_0 + sigma_t noise at the current (begin) step, as diffusers after set_begin_index."""
        alpha_t, sigma_t = alpha_sigma(self.sigmas[self.step_index])
        return (alpha_t * original + sigma_t * noise).astype(F32)

    def _lambda(self, i: int) -> tuple[np.float32, np.float32, np.float32]:
        return alpha_sigma_lambda(self.sigmas[i])
