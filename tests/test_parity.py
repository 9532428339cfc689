"""Runtime output vs diffusers' StableDiffusionLDM3DPipeline on the same weights and initial latents."""

from __future__ import annotations

import numpy as np
import pytest

from ldm3d_edge.runtime import Pipeline

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

ATOL = 1e-3           # on float RGB and depth in [0, 1]
STEPS = 10
GUIDANCE = 5.0
PROMPT = "a red sphere in front of a blue cube on a grey floor"
NEGATIVE = "blurry"
SCHEDULERS = {"ddim": "DDIMScheduler", "pndm": "PNDMScheduler", "euler": "EulerDiscreteScheduler",
              "dpm++": "DPMSolverMultistepScheduler", "unipc": "UniPCMultistepScheduler"}
DEVICES = ["openvino:CPU", "onnx:CPU"]


def _noise(shape, seed=1234):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _reference(checkpoint, scheduler, latents):
    """diffusers' output (output_type="np"), the final latents, and the pipeline."""
    pipe = diffusers.StableDiffusionLDM3DPipeline.from_pretrained(
        str(checkpoint), safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.scheduler = getattr(diffusers, SCHEDULERS[scheduler]).from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    final = {}

    def keep_latents(_pipe, _i, _t, kwargs):
        final["latents"] = kwargs["latents"]
        return kwargs

    with torch.no_grad():
        out = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                   latents=torch.from_numpy(latents.copy()), output_type="np", callback_on_step_end=keep_latents)
    return out, final["latents"], pipe


def _reference_6ch_depth(pipe, latents_out):
    """The original Intel/ldm3d convention applied to the raw 6-channel VAE output: channels 3-5 are an 8-bit
    RGB-like image, channel 4 the high and channel 5 the low byte of 16-bit depth. Computed here from the raw
    decoder output because diffusers >= 0.36 mishandles 6 channels for output_type="np" (diffusers issue 14206:
    it combines the float [0, 1] values without first quantizing to bytes)."""
    with torch.no_grad():
        image = pipe.vae.decode(latents_out / pipe.vae.config.scaling_factor, return_dict=False)[0]
    x = (image / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    hi = np.round(x[..., 4] * 255).astype(np.int64)
    lo = np.round(x[..., 5] * 255).astype(np.int64)
    return x, (hi * 256 + lo) / 65535.0


@pytest.fixture(scope="module")
def pipes4(tiny4):
    return {d: Pipeline.load(tiny4[1], device=d) for d in DEVICES}


@pytest.fixture(scope="module")
def pipes6(tiny6):
    return {d: Pipeline.load(tiny6[1], device=d) for d in DEVICES}


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_4channel_matches_diffusers(tiny4, pipes4, scheduler):
    some = next(iter(pipes4.values()))
    m = some.manifest
    latents = _noise((1, 4, m.height // 8, m.width // 8))
    ref, _, _ = _reference(tiny4[0], scheduler, latents)
    ref_rgb, ref_depth = ref.rgb[0], ref.depth[0][..., 0]
    assert ref_rgb.std() > 0.01 and ref_depth.std() > 0.01, "reference output is flat; the test would prove nothing"
    for device, pipe in pipes4.items():
        out = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                   latents=latents, scheduler=scheduler)
        assert out.rgb.dtype == np.uint8 and out.rgb.shape == (m.height, m.width, 3)
        assert out.depth.dtype == np.float32 and out.depth.shape == (m.height, m.width)
        rgb_diff = np.abs(out.rgb_float - ref_rgb).max()
        depth_diff = np.abs(out.depth - ref_depth).max()
        assert rgb_diff <= ATOL and depth_diff <= ATOL, \
            f"{device}/{scheduler}: rgb {rgb_diff:.2e} depth {depth_diff:.2e}"


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_6channel_depth_matches_original_convention(tiny6, pipes6, scheduler):
    some = next(iter(pipes6.values()))
    m = some.manifest
    assert m.vae_channels == 6
    latents = _noise((1, 4, m.height // 8, m.width // 8), seed=99)
    ref, final_latents, pipe = _reference(tiny6[0], scheduler, latents)
    raw, ref_depth = _reference_6ch_depth(pipe, final_latents)
    assert np.abs(ref.rgb[0] - raw[..., :3]).max() < 1e-6  # diffusers' own RGB agrees with the raw decode
    assert ref_depth.std() > 0.01
    # Pixels whose high byte sits within float noise of a rounding boundary can flip by one byte step (1/257);
    # those are excluded from the depth comparison and counted (they must be rare).
    edge = np.abs((raw[..., 4] * 255) % 1 - 0.5) < 1e-3
    assert edge.mean() < 0.01
    for device, p in pipes6.items():
        out = p(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                latents=latents, scheduler=scheduler)
        rgb_diff = np.abs(out.rgb_float - raw[..., :3]).max()
        depth_diff = np.abs(out.depth - ref_depth)[~edge].max()
        assert rgb_diff <= ATOL and depth_diff <= ATOL, \
            f"{device}/{scheduler}: rgb {rgb_diff:.2e} depth {depth_diff:.2e}"
        # at the excluded pixels the high byte may differ by one step at most (256 / 65535)
        assert np.abs(out.depth - ref_depth)[edge].max(initial=0) <= 256 / 65535 + ATOL


def test_guidance_one_matches_diffusers_without_cfg(tiny4, pipes4):
    pipe = pipes4["openvino:CPU"]
    m = pipe.manifest
    latents = _noise((1, 4, m.height // 8, m.width // 8), seed=5)
    ref = diffusers.StableDiffusionLDM3DPipeline.from_pretrained(str(tiny4[0]), safety_checker=None,
                                                                 feature_extractor=None, requires_safety_checker=False)
    ref.set_progress_bar_config(disable=True)
    with torch.no_grad():
        r = ref(PROMPT, num_inference_steps=4, guidance_scale=1.0, latents=torch.from_numpy(latents.copy()),
                output_type="np")
    out = pipe(PROMPT, num_inference_steps=4, guidance_scale=1.0, latents=latents)
    assert np.abs(out.rgb_float - r.rgb[0]).max() <= ATOL
    assert np.abs(out.depth - r.depth[0][..., 0]).max() <= ATOL


class _TorchDraws:
    """Stands in for the LCM scheduler's numpy generator: the same draws diffusers' scheduler takes from a torch
    generator, so the stochastic sampler can be compared step by step."""

    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)

    def standard_normal(self, shape, dtype):
        return torch.randn(shape, generator=self.gen, dtype=torch.float32).numpy()


def test_lcm_matches_diffusers_with_the_same_step_noise(tiny4, pipes4):
    """4 LCM steps (what an LCM-distilled or LCM-LoRA checkpoint runs); the re-noising draws are shared."""
    from ldm3d_edge.runtime.schedulers import LCMScheduler

    some = next(iter(pipes4.values()))
    m = some.manifest
    latents = _noise((1, 4, m.height // 8, m.width // 8), seed=21)
    ref = diffusers.StableDiffusionLDM3DPipeline.from_pretrained(str(tiny4[0]), safety_checker=None,
                                                                 feature_extractor=None, requires_safety_checker=False)
    ref.scheduler = diffusers.LCMScheduler.from_config(ref.scheduler.config)
    ref.set_progress_bar_config(disable=True)
    with torch.no_grad():
        r = ref(PROMPT, num_inference_steps=4, guidance_scale=1.5, latents=torch.from_numpy(latents.copy()),
                generator=torch.Generator().manual_seed(7), output_type="np")
    assert r.rgb[0].std() > 0.01

    class SharedDraws(LCMScheduler):
        def seed(self, seed):
            self._rng = _TorchDraws(7)

    for device, pipe in pipes4.items():
        sched = SharedDraws(pipe.scheduler_config)
        out = pipe(PROMPT, num_inference_steps=4, guidance_scale=1.5, latents=latents, scheduler=sched)
        assert list(sched.timesteps) == [999, 759, 499, 259]
        rgb_diff = np.abs(out.rgb_float - r.rgb[0]).max()
        depth_diff = np.abs(out.depth - r.depth[0][..., 0]).max()
        assert rgb_diff <= ATOL and depth_diff <= ATOL, f"{device}/lcm: rgb {rgb_diff:.2e} depth {depth_diff:.2e}"
        # our own generator: reproducible from the seed, and the step noise matters
        a = pipe(PROMPT, num_inference_steps=4, guidance_scale=1.5, seed=3, scheduler="lcm")
        b = pipe(PROMPT, num_inference_steps=4, guidance_scale=1.5, seed=3, scheduler="lcm")
        assert np.array_equal(a.rgb, b.rgb) and a.scheduler == "lcm"
