"""UniPC multistep (Zhao et al. 2023): a predictor-corrector solver that reaches DPM-Solver++ quality in fewer
steps; mirrors diffusers' UniPCMultistepScheduler (B(h) variants bh1 / bh2, orders 1-3, x0 or epsilon form).

The corrector re-uses the model output of the step just taken, so it costs no extra UNet call: each step first
corrects the previous step's result with the new model output, then predicts the next sample."""

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
    make_betas,
    read_config,
)
from .dpmsolver import multistep_schedule

DEFAULTS = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                trained_betas=None, solver_order=2, prediction_type="epsilon", predict_x0=True,
                solver_type="bh2", lower_order_final=True, disable_corrector=[], use_karras_sigmas=False,
                use_exponential_sigmas=False, use_beta_sigmas=False, use_flow_sigmas=False,
                timestep_spacing="linspace", steps_offset=0, final_sigmas_type="zero")


def _expm1(x: np.float32) -> np.float32:
    return F32(np.expm1(np.float64(x)))


class UniPCMultistepScheduler(SigmaStepper):
    name = "unipc"

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        cfg = self.config = read_config(config, DEFAULTS, self.name)
        for key in ("use_exponential_sigmas", "use_beta_sigmas", "use_flow_sigmas"):
            if cfg[key]:
                raise InvalidArgumentError(f"unipc: {key}=true is not supported")
        if cfg["solver_type"] in ("midpoint", "heun", "logrho"):   # diffusers maps DPM-Solver's types to bh2
            cfg["solver_type"] = "bh2"
        if cfg["solver_type"] not in ("bh1", "bh2"):
            raise InvalidArgumentError(f"unipc: solver_type {cfg['solver_type']!r} is not supported (bh1, bh2)")
        if cfg["prediction_type"] not in ("epsilon", "sample", "v_prediction"):
            raise InvalidArgumentError(f"unipc: prediction_type {cfg['prediction_type']!r} is not supported")
        if cfg["solver_order"] not in (1, 2, 3):
            raise InvalidArgumentError("unipc: solver_order must be 1, 2 or 3")
        if cfg["final_sigmas_type"] not in ("zero", "sigma_min"):
            raise InvalidArgumentError("unipc: final_sigmas_type must be 'zero' or 'sigma_min'")
        if not cfg["predict_x0"] and cfg["final_sigmas_type"] == "zero":
            # the epsilon form's last step to sigma 0 is 0 * inf (NaN in diffusers too)
            raise InvalidArgumentError("unipc: final_sigmas_type 'zero' needs predict_x0=true")
        self.alphas_cumprod = alphas_cumprod(make_betas(cfg))
        self._train_sigmas = ((F32(1) - self.alphas_cumprod) / self.alphas_cumprod) ** F32(0.5)
        self._disabled = {int(i) for i in cfg["disable_corrector"]}

    def set_timesteps(self, num_inference_steps: int) -> None:
        cfg, n_train = self.config, self.config["num_train_timesteps"]
        self._check_steps(num_inference_steps, n_train)
        ts, sigmas = multistep_schedule(cfg, self._train_sigmas, int(num_inference_steps), n_train, self.name)
        if cfg["final_sigmas_type"] == "zero":
            last_sigma = 0.0
        else:   # diffusers: the last Karras sigma, else the first training sigma
            last_sigma = float(sigmas[-1]) if cfg["use_karras_sigmas"] else float(self._train_sigmas[0])
        self.sigmas = np.concatenate([sigmas, [last_sigma]]).astype(F32)
        self.timesteps = ts.astype(np.int64)
        self.num_inference_steps = len(self.timesteps)
        self.model_outputs: list[np.ndarray | None] = [None] * cfg["solver_order"]
        self.lower_order_nums = 0
        self.last_sample: np.ndarray | None = None
        self.this_order = 1
        self.step_index = 0

    def _convert_model_output(self, model_output: np.ndarray, sample: np.ndarray) -> np.ndarray:
        alpha_t, sigma_t = alpha_sigma(self.sigmas[self.step_index])
        return convert_prediction(model_output, sample, alpha_t, sigma_t, self.config["prediction_type"],
                                  self.config["predict_x0"])

    def _coefficients(self, t: int, s0: int, earlier: list[int], order: int
                      ) -> tuple[np.float32, np.float32, np.float32, np.float32, np.float32, list[np.float32],
                                 np.ndarray, np.ndarray]:
        """The B(h) update's scalars from sigma indices t (target), s0 (current) and the earlier ones:
        alpha_t, sigma_t, sigma_s0 (or alpha_s0 in epsilon form), h_phi_1, B_h, r_k, and the system R, b."""
        alpha_t, sigma_t, lam_t = self._lambda(t)
        alpha_s0, sigma_s0, lam_s0 = self._lambda(s0)
        h = lam_t - lam_s0
        rks = [(self._lambda(si)[2] - lam_s0) / h for si in earlier] + [F32(1)]
        hh = -h if self.config["predict_x0"] else h
        h_phi_1 = _expm1(hh)
        h_phi_k = h_phi_1 / hh - F32(1)
        b_h = hh if self.config["solver_type"] == "bh1" else _expm1(hh)
        factorial, rows, b = 1, [], []
        for i in range(1, order + 1):
            rows.append([rk ** F32(i - 1) for rk in rks])
            b.append(h_phi_k * F32(factorial) / b_h)
            factorial *= i + 1
            h_phi_k = h_phi_k / hh - F32(1) / F32(factorial)
        scale_s0 = sigma_s0 if self.config["predict_x0"] else alpha_s0
        return (alpha_t, sigma_t, scale_s0, h_phi_1, b_h, rks,
                np.asarray(rows, dtype=F32), np.asarray(b, dtype=F32))

    def _base(self, x: np.ndarray, m0: np.ndarray, alpha_t: np.float32, sigma_t: np.float32,
              scale_s0: np.float32, h_phi_1: np.float32) -> tuple[np.ndarray, np.float32]:
        """The first-order part of the update and the factor its higher-order residual is scaled by."""
        if self.config["predict_x0"]:
            return (sigma_t / scale_s0) * x - (alpha_t * h_phi_1) * m0, alpha_t
        return (alpha_t / scale_s0) * x - (sigma_t * h_phi_1) * m0, sigma_t

    def _predict(self, sample: np.ndarray, order: int) -> np.ndarray:
        """UniP: the next sample from the converted outputs so far (diffusers' multistep_uni_p_bh_update)."""
        i = self.step_index
        outputs = cast("list[np.ndarray]", self.model_outputs)
        m0 = outputs[-1]
        alpha_t, sigma_t, scale_s0, h_phi_1, b_h, rks, rows, b = self._coefficients(
            i + 1, i, [i - k for k in range(1, order)], order)
        d1s = [(outputs[-(k + 1)] - m0) / rks[k - 1] for k in range(1, order)]
        x_t, factor = self._base(sample, m0, alpha_t, sigma_t, scale_s0, h_phi_1)
        if d1s:
            rhos = np.asarray([0.5], F32) if order == 2 else np.linalg.solve(rows[:-1, :-1], b[:-1]).astype(F32)
            x_t = x_t - (factor * b_h) * _weighted(rhos, d1s)
        return x_t

    def _correct(self, model_t: np.ndarray, last_sample: np.ndarray, order: int) -> np.ndarray:
        """UniC: the current sample corrected with its own model output (diffusers' multistep_uni_c_bh_update)."""
        i = self.step_index
        outputs = cast("list[np.ndarray]", self.model_outputs)
        m0 = outputs[-1]
        alpha_t, sigma_t, scale_s0, h_phi_1, b_h, rks, rows, b = self._coefficients(
            i, i - 1, [i - (k + 1) for k in range(1, order)], order)
        d1s = [(outputs[-(k + 1)] - m0) / rks[k - 1] for k in range(1, order)]
        rhos = np.asarray([0.5], F32) if order == 1 else np.linalg.solve(rows, b).astype(F32)
        x_t, factor = self._base(last_sample, m0, alpha_t, sigma_t, scale_s0, h_phi_1)
        residual = rhos[-1] * (model_t - m0)
        if d1s:
            residual = _weighted(rhos[:-1], d1s) + residual
        return x_t - (factor * b_h) * residual

    def step(self, model_output: np.ndarray, timestep: float, sample: np.ndarray) -> SchedulerOutput:
        self._check_ready()
        cfg, n = self.config, len(self.timesteps)
        i = self.step_index
        m = self._convert_model_output(model_output, sample)
        # 1. correct the sample the last step predicted, with this step's model output (no extra UNet call)
        if i > 0 and (i - 1) not in self._disabled and self.last_sample is not None:
            sample = self._correct(m, self.last_sample, self.this_order)
        # 2. remember the output; the order grows with the history and drops again at the very end
        self.model_outputs = self.model_outputs[1:] + [m]
        order = min(cfg["solver_order"], n - i) if cfg["lower_order_final"] else cfg["solver_order"]
        self.this_order = min(order, self.lower_order_nums + 1)
        self.last_sample = sample
        # 3. predict the next sample
        prev = self._predict(sample, self.this_order)
        if self.lower_order_nums < cfg["solver_order"]:
            self.lower_order_nums += 1
        self.step_index += 1
        return SchedulerOutput(prev.astype(F32, copy=False), m.astype(F32, copy=False))


def _weighted(weights: np.ndarray, terms: list[np.ndarray]) -> np.ndarray:
    """sum_k weights[k] * terms[k] (diffusers' einsum 'k,bkc...->bc...')."""
    out = weights[0] * terms[0]
    for w, term in zip(weights[1:], terms[1:]):
        out = out + w * term
    return out
