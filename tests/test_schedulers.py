"""Each numpy scheduler against diffusers' scheduler of the same config, step by step (<= 1e-5)."""

import json

import numpy as np
import pytest

from ldm3d_edge import ASSETS_DIR
from ldm3d_edge.runtime.errors import InvalidArgumentError
from ldm3d_edge.runtime.schedulers import create_scheduler

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

RELEASE = json.loads((ASSETS_DIR / "configs/ldm3d-4c/scheduler/scheduler_config.json").read_text())
DIFFUSERS = {"ddim": "DDIMScheduler", "pndm": "PNDMScheduler", "euler": "EulerDiscreteScheduler",
             "dpm++": "DPMSolverMultistepScheduler", "unipc": "UniPCMultistepScheduler", "lcm": "LCMScheduler"}
STEP_ATOL = 1e-5
STEP_ULPS = 4      # float32 ulps of the step's largest value, where that is the larger bound (|x| > ~40)

VARIANTS = [
    ("ddim", {}, 49), ("ddim", {}, 7), ("ddim", {"timestep_spacing": "trailing"}, 10),
    ("ddim", {"prediction_type": "v_prediction", "clip_sample": True}, 10),
    ("pndm", {}, 20), ("pndm", {"skip_prk_steps": False}, 15),
    ("euler", {}, 20), ("euler", {"timestep_spacing": "leading"}, 12), ("euler", {"use_karras_sigmas": True}, 15),
    ("dpm++", {}, 20), ("dpm++", {}, 8), ("dpm++", {"solver_order": 3}, 25),
    ("dpm++", {"use_karras_sigmas": True}, 10), ("dpm++", {"solver_type": "heun"}, 12),
    ("unipc", {}, 20), ("unipc", {}, 8), ("unipc", {"solver_order": 3}, 15),
    ("unipc", {"solver_type": "bh1", "final_sigmas_type": "sigma_min"}, 10),
    ("unipc", {"use_karras_sigmas": True}, 12), ("unipc", {"predict_x0": False, "final_sigmas_type": "sigma_min"}, 10),
    ("unipc", {"disable_corrector": [0, 3]}, 10), ("unipc", {"timestep_spacing": "trailing"}, 6),
    # (bh1 or the epsilon form with the default final sigma 0 make diffusers' last step NaN: 0 * inf)
    ("lcm", {}, 4), ("lcm", {}, 1), ("lcm", {"original_inference_steps": 25}, 8),
]


@pytest.mark.parametrize("name,overrides,steps", VARIANTS)
def test_scheduler_matches_diffusers_step_by_step(name, overrides, steps):
    config = {**RELEASE, **overrides}
    ref = getattr(diffusers, DIFFUSERS[name]).from_config(config)
    ours = create_scheduler(config, name)
    ref.set_timesteps(steps)
    ours.set_timesteps(steps)
    np.testing.assert_allclose(ours.timesteps, ref.timesteps.numpy(), atol=1e-4)
    assert float(ours.init_noise_sigma) == pytest.approx(float(ref.init_noise_sigma), rel=1e-6)
    rng = np.random.default_rng(0)
    sample = rng.standard_normal((1, 4, 8, 8)).astype(np.float32) * float(ref.init_noise_sigma)
    eps = rng.standard_normal(sample.shape).astype(np.float32)  # a consistent noise estimate, like a model's
    # LCM re-noises with fresh noise every step: both get the same draws from one torch generator
    gen, draws = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    for t_ref, t in zip(ref.timesteps, ours.timesteps):
        model_output = eps + 0.1 * rng.standard_normal(sample.shape).astype(np.float32)
        extra = {"generator": gen} if name == "lcm" else {}
        noise = {"noise": torch.randn(sample.shape, generator=draws).numpy()} if name == "lcm" else {}
        # both schedulers get the same sample at every step (their multistep history is their own)
        a = ours.scale_model_input(sample, t)
        b = ref.scale_model_input(torch.from_numpy(sample.copy()), t_ref).numpy()
        np.testing.assert_allclose(a, b, atol=STEP_ATOL, rtol=0)
        ref_next = ref.step(torch.from_numpy(model_output), t_ref, torch.from_numpy(sample.copy()),
                            return_dict=False, **extra)[0].numpy()
        sample = ours.step(model_output, t, sample, **noise).prev_sample
        diff = np.abs(sample - ref_next).max()
        # the same float32 arithmetic in another order (torch's vectorised kernels vs numpy's): at the magnitudes
        # this diverging test reaches (|x| up to ~85), 1e-5 is about one ulp
        tol = max(STEP_ATOL, STEP_ULPS * float(np.spacing(np.float32(np.abs(ref_next).max()))))
        assert diff <= tol, f"{name} step t={t}: max abs diff {diff:.2e} > {tol:.2e}"
        assert sample.dtype == np.float32
    assert np.isfinite(sample).all()


def test_default_scheduler_comes_from_the_config_class_name():
    assert create_scheduler(RELEASE).name == "ddim"
    assert create_scheduler({**RELEASE, "_class_name": "EulerDiscreteScheduler"}).name == "euler"


@pytest.mark.parametrize("bad", ["heun", "lms", ""])
def test_unknown_scheduler_names_what_is_allowed(bad):
    with pytest.raises(InvalidArgumentError, match="ddim, pndm, euler, dpm\\+\\+"):
        create_scheduler(RELEASE, bad)


def test_step_before_set_timesteps_raises():
    s = create_scheduler(RELEASE, "ddim")
    with pytest.raises(InvalidArgumentError, match="set_timesteps"):
        s.step(np.zeros((1, 4, 2, 2), np.float32), 1, np.zeros((1, 4, 2, 2), np.float32))


@pytest.mark.parametrize("steps", [0, -3, 1001])
def test_bad_step_counts_raise(steps):
    with pytest.raises(InvalidArgumentError, match="num_inference_steps"):
        create_scheduler(RELEASE, "euler").set_timesteps(steps)


@pytest.mark.parametrize("name", ["ddim", "pndm"])
def test_a_schedule_past_the_training_timesteps_is_refused(name):
    """leading spacing + steps_offset 1 + 1000 steps would ask for timestep 1000 of 0..999 (an IndexError deep inside
    before): a clear error instead; 999 steps work."""
    from ldm3d_edge.runtime import InvalidArgumentError, create_scheduler

    cfg = {"_class_name": "DDIMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
           "steps_offset": 1, "set_alpha_to_one": False, "clip_sample": False, "skip_prk_steps": True}
    s = create_scheduler(cfg, name)
    with pytest.raises(InvalidArgumentError, match="past the 1000 training timesteps"):
        s.set_timesteps(1000)
    s.set_timesteps(999)
    assert s.timesteps.max() < 1000


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear", "squaredcos_cap_v2"])
def test_betas_and_alphas_cumprod_equal_diffusers_bit_for_bit(schedule):
    """The betas reproduce torch.linspace (and diffusers' cosine schedule) exactly, not just closely: every
    scheduler's noise levels start from them."""
    from ldm3d_edge.runtime.schedulers.base import alphas_cumprod, make_betas

    config = {**RELEASE, "beta_schedule": schedule}
    ref = diffusers.DDIMScheduler.from_config(config)
    betas = make_betas(config)
    assert betas.dtype == np.float32
    np.testing.assert_array_equal(betas, ref.betas.numpy())
    np.testing.assert_array_equal(alphas_cumprod(betas), ref.alphas_cumprod.numpy())
