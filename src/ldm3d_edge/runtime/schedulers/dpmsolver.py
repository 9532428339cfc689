"""DPM-Solver++ multistep (Lu et al. 2022); mirrors diffusers' DPMSolverMultistepScheduler for the
deterministic algorithm types 'dpmsolver++' and 'dpmsolver', orders 1-3, midpoint/heun."""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from ..errors import InvalidArgumentError
from .base import (
    F32,
    SchedulerOutput,
    SigmaStepper,
    alpha_sigma,
    alphas_cumprod,
    convert_prediction,
    exp_f32,
    make_betas,
    read_config,
)
from .euler import karras_sigmas, sigma_to_t

DEFAULTS = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                trained_betas=None, solver_order=2, prediction_type="epsilon", algorithm_type="dpmsolver++",
                solver_type="midpoint", lower_order_final=True, euler_at_final=False, use_karras_sigmas=False,
                use_exponential_sigmas=False, use_beta_sigmas=False, use_lu_lambdas=False, use_flow_sigmas=False,
                final_sigmas_type="zero", lambda_min_clipped=-float("inf"), variance_type=None,
                timestep_spacing="linspace", steps_offset=0)


def multistep_schedule(cfg: dict[str, Any], train_sigmas: np.ndarray, n: int, last: int, name: str,
                       round_karras: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(timesteps, sigmas) of the multistep solvers (DPM-Solver, UniPC): n + 1 points spaced over [0, last)
    with the last dropped, or Karras sigmas mapped back to timesteps, exactly as diffusers computes them."""
    n_train, spacing = cfg["num_train_timesteps"], cfg["timestep_spacing"]
    if spacing == "linspace":
        ts = np.linspace(0, last - 1, n + 1).round()[::-1][:-1].copy().astype(np.int64)
    elif spacing == "leading":
        ratio = last // (n + 1)
        ts = (np.arange(0, n + 1) * ratio).round()[::-1][:-1].copy().astype(np.int64) + cfg["steps_offset"]
    elif spacing == "trailing":
        ts = np.arange(last, 0, -n_train / n).round().copy().astype(np.int64) - 1
    else:
        raise InvalidArgumentError(f"{name}: timestep_spacing {spacing!r} is not supported")
    sigmas = np.array(train_sigmas)
    if cfg["use_karras_sigmas"]:
        log_sigmas = np.log(sigmas)
        flipped = sigmas[::-1]
        sigmas = karras_sigmas(float(flipped[-1]), float(flipped[0]), n)
        ts = np.array([sigma_to_t(s, log_sigmas) for s in sigmas])
        if round_karras:
            ts = ts.round()
    else:
        sigmas = np.interp(ts, np.arange(0, len(sigmas)), sigmas)
    return ts, sigmas


class DPMSolverMultistepScheduler(SigmaStepper):
    name = "dpm++"

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        cfg = self.config = read_config(config, DEFAULTS, self.name)
        for key in ("use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas", "use_flow_sigmas"):
            if cfg[key]:
                raise InvalidArgumentError(f"dpm++: {key}=true is not supported")
        if cfg["algorithm_type"] in ("deis",):
            cfg["algorithm_type"] = "dpmsolver++"
        if cfg["solver_type"] in ("logrho", "bh1", "bh2"):
            cfg["solver_type"] = "midpoint"
        if cfg["algorithm_type"] not in ("dpmsolver++", "dpmsolver"):
            raise InvalidArgumentError(f"dpm++: algorithm_type {cfg['algorithm_type']!r} is not supported "
                                       "(deterministic 'dpmsolver++' and 'dpmsolver' are)")
        if cfg["algorithm_type"] == "dpmsolver" and cfg["final_sigmas_type"] == "zero":
            raise InvalidArgumentError("dpm++: final_sigmas_type 'zero' needs algorithm_type 'dpmsolver++'")
        if cfg["prediction_type"] not in ("epsilon", "sample", "v_prediction"):
            raise InvalidArgumentError(f"dpm++: prediction_type {cfg['prediction_type']!r} is not supported")
        if cfg["solver_order"] not in (1, 2, 3):
            raise InvalidArgumentError("dpm++: solver_order must be 1, 2 or 3")
        self.alphas_cumprod = alphas_cumprod(make_betas(cfg))
        self._train_sigmas = ((F32(1) - self.alphas_cumprod) / self.alphas_cumprod) ** F32(0.5)
        self._lambda_t = np.log(self.alphas_cumprod ** F32(0.5)) - np.log((F32(1) - self.alphas_cumprod) ** F32(0.5))

    def set_timesteps(self, num_inference_steps: int) -> None:
        cfg, n_train = self.config, self.config["num_train_timesteps"]
        self._check_steps(num_inference_steps, n_train)
        clipped = int(np.searchsorted(self._lambda_t[::-1], cfg["lambda_min_clipped"]))
        ts, sigmas = multistep_schedule(cfg, self._train_sigmas, int(num_inference_steps), n_train - clipped,
                                        self.name, round_karras=cfg["beta_schedule"] != "squaredcos_cap_v2")
        last_sigma = float(self._train_sigmas[0]) if cfg["final_sigmas_type"] == "sigma_min" else 0.0
        self.sigmas = np.concatenate([sigmas, [last_sigma]]).astype(F32)
        self.timesteps = ts.astype(np.int64)
        self.num_inference_steps = len(self.timesteps)
        self.model_outputs: list[np.ndarray | None] = [None] * cfg["solver_order"]
        self.lower_order_nums = 0
        self.step_index = 0

    def _convert_model_output(self, model_output: np.ndarray, sample: np.ndarray) -> np.ndarray:
        """The solver works on x_0 (dpmsolver++) or epsilon (dpmsolver) predictions."""
        cfg = self.config
        alpha_t, sigma_t = alpha_sigma(self.sigmas[self.step_index])
        pt = cfg["prediction_type"]
        if cfg["variance_type"] in ("learned", "learned_range") and pt == "epsilon":
            model_output = model_output[:, :3]
        return convert_prediction(model_output, sample, alpha_t, sigma_t, pt,
                                  to_x0=cfg["algorithm_type"] == "dpmsolver++")

    def _history(self, n: int) -> list[np.ndarray]:
        """The last n converted model outputs, newest first (the order schedule guarantees n are there)."""
        recent = self.model_outputs[::-1][:n]
        assert all(m is not None for m in recent)
        return cast("list[np.ndarray]", recent)

    def _first_order(self, m0: np.ndarray, sample: np.ndarray) -> np.ndarray:
        i = self.step_index
        alpha_t, sigma_t, lam_t = self._lambda(i + 1)
        alpha_s, sigma_s, lam_s = self._lambda(i)
        h = lam_t - lam_s
        if self.config["algorithm_type"] == "dpmsolver++":
            return (sigma_t / sigma_s) * sample - (alpha_t * (exp_f32(-h) - F32(1))) * m0
        return (alpha_t / alpha_s) * sample - (sigma_t * (exp_f32(h) - F32(1))) * m0

    def _second_order(self, sample: np.ndarray) -> np.ndarray:
        i = self.step_index
        alpha_t, sigma_t, lam_t = self._lambda(i + 1)
        alpha_s0, sigma_s0, lam_s0 = self._lambda(i)
        _, _, lam_s1 = self._lambda(i - 1)
        m0, m1 = self._history(2)
        h, h_0 = lam_t - lam_s0, lam_s0 - lam_s1
        r0 = h_0 / h
        d0, d1 = m0, (F32(1) / r0) * (m0 - m1)
        midpoint = self.config["solver_type"] == "midpoint"
        if self.config["algorithm_type"] == "dpmsolver++":
            e = exp_f32(-h) - F32(1)
            x = (sigma_t / sigma_s0) * sample - (alpha_t * e) * d0
            return x - F32(0.5) * (alpha_t * e) * d1 if midpoint else x + (alpha_t * (e / h + F32(1))) * d1
        e = exp_f32(h) - F32(1)
        x = (alpha_t / alpha_s0) * sample - (sigma_t * e) * d0
        return x - F32(0.5) * (sigma_t * e) * d1 if midpoint else x - (sigma_t * (e / h - F32(1))) * d1

    def _third_order(self, sample: np.ndarray) -> np.ndarray:
        i = self.step_index
        alpha_t, sigma_t, lam_t = self._lambda(i + 1)
        alpha_s0, sigma_s0, lam_s0 = self._lambda(i)
        _, _, lam_s1 = self._lambda(i - 1)
        _, _, lam_s2 = self._lambda(i - 2)
        m0, m1, m2 = self._history(3)
        h, h_0, h_1 = lam_t - lam_s0, lam_s0 - lam_s1, lam_s1 - lam_s2
        r0, r1 = h_0 / h, h_1 / h
        d1_0, d1_1 = (F32(1) / r0) * (m0 - m1), (F32(1) / r1) * (m1 - m2)
        d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
        d2 = (F32(1) / (r0 + r1)) * (d1_0 - d1_1)
        if self.config["algorithm_type"] == "dpmsolver++":
            e = exp_f32(-h) - F32(1)
            return ((sigma_t / sigma_s0) * sample - (alpha_t * e) * m0 + (alpha_t * (e / h + F32(1))) * d1
                    - (alpha_t * ((e + h) / h ** 2 - F32(0.5))) * d2)
        e = exp_f32(h) - F32(1)
        return ((alpha_t / alpha_s0) * sample - (sigma_t * e) * m0 - (sigma_t * (e / h - F32(1))) * d1
                - (sigma_t * ((e - h) / h ** 2 - F32(0.5))) * d2)

    def step(self, model_output: np.ndarray, timestep: float, sample: np.ndarray) -> SchedulerOutput:
        self._check_ready()
        cfg, n = self.config, len(self.timesteps)
        # 1. use lower orders at the very end (stabilises few-step sampling)
        lower_final = self.step_index == n - 1 and (
            cfg["euler_at_final"] or (cfg["lower_order_final"] and n < 15) or cfg["final_sigmas_type"] == "zero")
        lower_second = self.step_index == n - 2 and cfg["lower_order_final"] and n < 15
        # 2. convert and remember the model output
        m = self._convert_model_output(model_output, sample)
        self.model_outputs = self.model_outputs[1:] + [m]
        # 3. multistep update of the order the history allows
        order = cfg["solver_order"]
        if order == 1 or self.lower_order_nums < 1 or lower_final:
            prev = self._first_order(m, sample)
        elif order == 2 or self.lower_order_nums < 2 or lower_second:
            prev = self._second_order(sample)
        else:
            prev = self._third_order(sample)
        if self.lower_order_nums < order:
            self.lower_order_nums += 1
        self.step_index += 1
        return SchedulerOutput(prev.astype(F32, copy=False), m.astype(F32, copy=False))
