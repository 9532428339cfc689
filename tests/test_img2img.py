"""Image-to-image against diffusers: the timestep schedule a strength selects (diffusers' get_timesteps and
set_begin_index, every scheduler), the noise added to the image latents, the VAE encoder, and whole runs of
StableDiffusionImg2ImgPipeline on the tiny LDM3D's own parts from the same image latents and noise."""

from __future__ import annotations

import numpy as np
import pytest

from ldm3d_edge.runtime import InvalidArgumentError, Pipeline, create_scheduler
from ldm3d_edge.runtime.depth import rgbd_to_image, split_rgbd
from ldm3d_edge.runtime.pipeline import img2img_timesteps

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

ATOL = 1e-3
PROMPT = "a red sphere in front of a blue cube on a grey floor"
SCHEDULERS = {"ddim": "DDIMScheduler", "pndm": "PNDMScheduler", "euler": "EulerDiscreteScheduler",
              "dpm++": "DPMSolverMultistepScheduler"}
RELEASE_SCHEDULER = {"_class_name": "DDIMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
                     "beta_schedule": "scaled_linear", "clip_sample": False, "set_alpha_to_one": False,
                     "steps_offset": 1, "num_train_timesteps": 1000, "skip_prk_steps": True}


class _FakePipe:
    """Just what StableDiffusionImg2ImgPipeline.get_timesteps reads from self."""

    def __init__(self, scheduler):
        self.scheduler = scheduler


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
@pytest.mark.parametrize("steps,strength", [(10, 0.3), (20, 0.5), (25, 0.75), (10, 1.0), (49, 0.61)])
def test_timesteps_and_added_noise_match_diffusers(scheduler, steps, strength):
    ref = getattr(diffusers, SCHEDULERS[scheduler]).from_config(RELEASE_SCHEDULER)
    ref.set_timesteps(steps)
    ref_ts, ref_n = diffusers.StableDiffusionImg2ImgPipeline.get_timesteps(_FakePipe(ref), steps, strength, "cpu")
    ours = create_scheduler(RELEASE_SCHEDULER, scheduler)
    ours.set_timesteps(steps)
    ts = img2img_timesteps(ours, steps, strength)
    np.testing.assert_array_equal(ts.astype(np.float64), ref_ts.numpy().astype(np.float64))
    # ours tells a step-counting scheduler where the tail begins, as diffusers' set_begin_index does
    if hasattr(ours, "step_index"):
        assert ours.step_index == ref.begin_index == (steps - ref_n) * ours.order
    # the noised image latents at the first of those timesteps
    rng = np.random.default_rng(0)
    x0, noise = (rng.standard_normal((1, 4, 8, 8)).astype(np.float32) for _ in range(2))
    want = ref.add_noise(torch.from_numpy(x0), torch.from_numpy(noise), ref_ts[:1]).numpy()
    np.testing.assert_allclose(ours.add_noise(x0, noise, ts[0]), want, rtol=1e-6, atol=1e-6)


def test_rgbd_to_image_inverts_split_rgbd():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (16, 24, 3)).astype(np.uint8)
    depth = rng.random((16, 24)).astype(np.float32)
    for encoding, channels in (("1ch-float", 4), ("rgblike-16bit", 6)):
        image = rgbd_to_image(rgb, depth, encoding, channels)
        assert image.shape == (1, channels, 16, 24) and image.min() >= -1 and image.max() <= 1
        rgb_back, depth_back = split_rgbd(image, encoding)
        np.testing.assert_allclose(rgb_back * 255, rgb, atol=1e-3)
        np.testing.assert_allclose(depth_back, depth, atol=1e-4 if channels == 4 else 1 / 65535 + 1e-6)
    with pytest.raises(InvalidArgumentError, match="depth must be"):
        rgbd_to_image(rgb, depth[:8], "1ch-float", 4)


@pytest.fixture(scope="module")
def ref_parts(tiny4):
    ldm3d = diffusers.StableDiffusionLDM3DPipeline.from_pretrained(
        str(tiny4[0]), safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return ldm3d


def test_vae_encoder_matches_diffusers(tiny4, ref_parts):
    pipe = Pipeline.load(tiny4[1], device="openvino:CPU")
    m = pipe.manifest
    rng = np.random.default_rng(1)
    image = rgbd_to_image(rng.integers(0, 256, (m.height, m.width, 3)).astype(np.uint8),
                          rng.random((m.height, m.width)).astype(np.float32), m.depth_encoding, m.vae_channels)
    with torch.no_grad():
        dist = ref_parts.vae.encode(torch.from_numpy(image)).latent_dist
    moments = pipe.vae_encoder(image, m.height, m.width)
    np.testing.assert_allclose(moments[:, :4], dist.mean.numpy(), atol=1e-4)
    np.testing.assert_allclose(moments[:, 4:], dist.logvar.numpy(), atol=1e-3)


@pytest.mark.parametrize("scheduler,device", [("ddim", "openvino:CPU"), ("euler", "onnx:CPU"),
                                              ("dpm++", "openvino:CPU"), ("pndm", "onnx:CPU")])
def test_img2img_matches_diffusers_img2img_pipeline(tiny4, ref_parts, scheduler, device):
    """diffusers' StableDiffusionImg2ImgPipeline takes a 4-channel tensor as ready latents (its VAE has 4 latent
    channels), which is how the same image latents reach both; the noise comes from the same torch generator."""
    pipe = Pipeline.load(tiny4[1], device=device)
    m = pipe.manifest
    steps, strength, seed = 10, 0.6, 7
    shape = (1, 4, m.height // 8, m.width // 8)
    init = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).numpy()
    r = ref_parts
    ref = diffusers.StableDiffusionImg2ImgPipeline(
        vae=r.vae, text_encoder=r.text_encoder, tokenizer=r.tokenizer, unet=r.unet,
        scheduler=getattr(diffusers, SCHEDULERS[scheduler]).from_config(r.scheduler.config), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    ref.set_progress_bar_config(disable=True)
    with torch.no_grad():
        want = ref(PROMPT, image=torch.from_numpy(init), strength=strength, num_inference_steps=steps,
                   guidance_scale=5.0, generator=torch.Generator().manual_seed(seed), output_type="np").images[0]
    assert want.shape == (m.height, m.width, 4) and want.std() > 0.01
    out = pipe.img2img(None, None, PROMPT, strength=strength, num_inference_steps=steps, guidance_scale=5.0,
                       noise=noise, init_latents=init, scheduler=scheduler)
    assert len(out.metrics.unet_step_s) == int(steps * strength) + (1 if scheduler == "pndm" else 0)
    np.testing.assert_allclose(out.rgb_float, want[..., :3], atol=ATOL)
    np.testing.assert_allclose(out.depth, want[..., 3], atol=ATOL)
    assert out.strength == strength and out.info()["img2img_strength"] == strength


def test_img2img_modifies_a_template_on_the_embedded_model(embedded):
    """Recolour the embedded model's red sphere by prompt, keeping the layout; more strength, more change."""
    from ldm3d_edge import metrics as M

    pipe = Pipeline.load(embedded[0], device="openvino:CPU")
    scene = "on the left in front of a blue cube on a grey floor before a white wall"
    base = pipe(f"a red sphere {scene}", num_inference_steps=30, seed=1)
    assert M.adherence(base.rgb_float, base.depth, "red")["found"] == "red"
    change = {}
    for strength in (0.3, 1.0):
        outs = [pipe.img2img(base.rgb, base.depth, f"a green sphere {scene}", strength=strength,
                             num_inference_steps=30, seed=s) for s in (2, 3)]
        assert all(M.adherence(o.rgb_float, o.depth, "green")["found"] == "green" for o in outs)
        change[strength] = np.mean([np.abs(o.depth - base.depth).mean() for o in outs])
        assert len(outs[0].metrics.unet_step_s) == int(30 * strength) and outs[0].metrics.vae_encode_s > 0
    # 0.3 keeps the template's geometry (mean depth change 0.01 here); 1.0 starts from noise (0.09)
    assert change[0.3] < 0.03 and change[0.3] < change[1.0] / 2, change
    flat = pipe.img2img(base.rgb, None, f"a red sphere {scene}", strength=0.5, num_inference_steps=10, seed=1)
    assert flat.depth.shape == base.depth.shape                 # no depth given: starts from a flat 0.5


def test_img2img_rejects_bad_input(tiny4):
    pipe = Pipeline.load(tiny4[1], device="openvino:CPU")
    rgb = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(InvalidArgumentError, match="strength"):
        pipe.img2img(rgb, None, PROMPT, strength=0.05, num_inference_steps=10)
    with pytest.raises(InvalidArgumentError, match="strength"):
        pipe.img2img(rgb, None, PROMPT, strength=1.5, num_inference_steps=10)
    with pytest.raises(InvalidArgumentError, match="multiple of 8"):
        pipe.img2img(rgb[:60], None, PROMPT, strength=0.5)
    with pytest.raises(InvalidArgumentError, match="in \\[0, 1\\]"):
        pipe.img2img(rgb, np.full((64, 64), 2.0, np.float32), PROMPT, strength=0.5)


def test_generate_init_runs_image_to_image_from_a_result(embedded, tmp_path, capsys):
    import json

    from ldm3d_edge.cli import main

    scene = "on the left in front of a blue cube on a grey floor before a white wall"
    assert main(["generate", f"a red sphere {scene}", "--out", str(tmp_path), "--name", "a", "--seed", "1",
                 "--steps", "20"]) == 0
    assert main(["generate", f"a green sphere {scene}", "--out", str(tmp_path), "--name", "b", "--seed", "2",
                 "--steps", "20", "--init", str(tmp_path / "a"), "--strength", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "image-to-image from" in out and "a_depth.png" in out and "10 steps" in out
    assert json.loads((tmp_path / "b.json").read_text())["img2img_strength"] == 0.5
    assert main(["generate", "x", "--init", str(tmp_path / "missing"), "--out", str(tmp_path / "no")]) == 2
    assert "missing not found" in capsys.readouterr().err and not (tmp_path / "no").exists()


@pytest.mark.parametrize("model", ["tiny4", "tiny6"])
def test_img2img_from_an_rgbd_image_matches_diffusers_through_the_encoder(request, model):
    """From an RGBD image (not latents): the VAE encoder, the scaling factor (0.18215 on the tiny models, so a
    missing or inverted factor fails; the embedded model's is 1.0), the noise and the denoising against diffusers'
    own encode -> scale (retrieve_latents in argmax mode, the latent mean our runtime takes, times
    vae.config.scaling_factor) fed to StableDiffusionImg2ImgPipeline. 4- and 6-channel VAE."""
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img import retrieve_latents

    src, art = request.getfixturevalue(model)
    r = diffusers.StableDiffusionLDM3DPipeline.from_pretrained(str(src), safety_checker=None, feature_extractor=None,
                                                             requires_safety_checker=False)
    factor = r.vae.config.scaling_factor
    assert abs(factor - 1) > 0.5
    pipe = Pipeline.load(art, device="openvino:CPU")
    m = pipe.manifest
    assert m.vae_scaling_factor == factor
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (m.height, m.width, 3)).astype(np.uint8)
    depth = rng.random((m.height, m.width)).astype(np.float32)
    image = torch.from_numpy(rgbd_to_image(rgb, depth, m.depth_encoding, m.vae_channels))
    steps, strength, seed = 10, 0.7, 11
    with torch.no_grad():
        latents = retrieve_latents(r.vae.encode(image), sample_mode="argmax") * factor
    ref = diffusers.StableDiffusionImg2ImgPipeline(
        vae=r.vae, text_encoder=r.text_encoder, tokenizer=r.tokenizer, unet=r.unet, scheduler=r.scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    ref.set_progress_bar_config(disable=True)
    with torch.no_grad():
        want = ref(PROMPT, image=latents, strength=strength, num_inference_steps=steps, guidance_scale=5.0,
                   generator=torch.Generator().manual_seed(seed), output_type="np").images[0]
    assert want.shape == (m.height, m.width, m.vae_channels) and want.std() > 0.01
    want_rgb, want_depth = split_rgbd(want.transpose(2, 0, 1)[None] * 2 - 1, m.depth_encoding)
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(seed)).numpy()
    out = pipe.img2img(rgb, depth, PROMPT, strength=strength, num_inference_steps=steps, guidance_scale=5.0,
                       noise=noise)
    np.testing.assert_allclose(out.rgb_float, want_rgb, atol=ATOL)
    np.testing.assert_allclose(out.depth, want_depth, atol=ATOL if m.vae_channels == 4 else 2 / 255)
