"""RGBD inpainting (issue 21): diffusers' blended-latent arithmetic step for step, the known region kept, the
depth fit, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ldm3d_edge.runtime import Pipeline
from ldm3d_edge.runtime.errors import InvalidArgumentError
from ldm3d_edge.runtime.inpaint import border_step, dilate, fit_depth, latent_mask

PROMPT = "a red sphere in front of a blue cube on a grey floor"


def _scene(h: int = 64, w: int = 64, seed: int = 0):
    """A smooth RGB image and its depth, and a square hole aligned to the 8x8 latent grid."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    rgb = np.stack([xx, yy, 0.5 + 0.3 * np.sin(6 * xx)], axis=-1)
    rgb = np.clip(rgb + 0.02 * rng.standard_normal(rgb.shape), 0, 1).astype(np.float32)
    depth = (0.3 + 0.4 * yy).astype(np.float32)
    hole = np.zeros((h, w), bool)
    hole[16:40, 24:48] = True
    return rgb, depth, hole


def test_blended_latents_equal_diffusers_inpaint(tiny4):
    """feather 0 and a grid-aligned mask: StableDiffusionInpaintPipeline with the same 4-channel UNet, VAE latents,
    noise and mask (its num_channels_unet == 4 path) gives the same image."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    src, art = tiny4
    pipe = Pipeline.load(art, device="openvino:CPU")
    rgb, depth, hole = _scene()
    noise = np.random.default_rng(3).standard_normal((1, 4, 8, 8)).astype(np.float32)
    kw = dict(num_inference_steps=6, guidance_scale=5.0, noise=noise, scheduler="ddim")
    ours = pipe.inpaint(rgb, depth, hole, PROMPT, feather=0, align_depth=False, **kw)

    from ldm3d_edge.runtime.depth import rgbd_to_image

    m = pipe.manifest
    image = rgbd_to_image(rgb, depth, m.depth_encoding, m.vae_channels)
    latents = pipe._vae_encoder()(image, 64, 64)[:, :4] * np.float32(m.vae_scaling_factor)
    ref_pipe = diffusers.StableDiffusionInpaintPipeline.from_pretrained(
        src, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    ref_pipe.scheduler = diffusers.DDIMScheduler.from_config(ref_pipe.scheduler.config)
    ref_pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        out = ref_pipe(PROMPT, image=torch.from_numpy(latents), mask_image=torch.from_numpy(hole[None, None] * 1.0),
                       masked_image_latents=torch.from_numpy(latents), latents=torch.from_numpy(noise), height=64,
                       width=64, num_inference_steps=6, guidance_scale=5.0, strength=1.0, output_type="latent").images
        decoded = ref_pipe.vae.decode(out / ref_pipe.vae.config.scaling_factor).sample
    ref = (decoded[0].numpy().transpose(1, 2, 0) / 2 + 0.5).clip(0, 1)
    assert np.abs(ours.rgb_float - ref[..., :3]).max() <= 1e-3
    assert np.abs(ours.depth - ref[..., 3]).max() <= 1e-3


def test_the_known_region_stays_and_the_hole_changes(tiny4):
    """After the last step the latents outside the (feathered) hole are the input's encoding exactly; in pixels
    the known region comes back as the VAE's round trip of the input, up to the decoder's reach across the hole
    (the tiny random VAE's mid-block attention is global: the embedded model's figure is in the benchmark)."""
    pipe = Pipeline.load(tiny4[1], device="openvino:CPU")
    rgb, depth, hole = _scene()
    last: list[np.ndarray] = []
    out = pipe.inpaint(rgb, depth, hole, PROMPT, num_inference_steps=8, seed=5,
                       callback=lambda i, t, x: last.append(x.copy()))
    from ldm3d_edge.runtime.depth import rgbd_to_image, split_rgbd

    m = pipe.manifest
    moments = pipe._vae_encoder()(rgbd_to_image(rgb, depth, m.depth_encoding, m.vae_channels), 64, 64)
    kept = latent_mask(hole, 8, 1.0)[0, 0] == 0
    assert kept.sum() >= 10 and len(last) == 8       # 3 latent pixels away: row 7 and column 0
    init = moments[:, :4] * np.float32(m.vae_scaling_factor)
    assert np.array_equal(last[-1][0][:, kept], init[0][:, kept])
    assert not np.allclose(last[-1][0][:, ~kept], init[0][:, ~kept], atol=0.1)
    recon, _ = split_rgbd(pipe.vae_decoder(moments[:, :4], 64, 64), m.depth_encoding)
    far = np.ones_like(hole)
    far[4:52, 12:60] = False                      # more than 12 px from the hole on every side
    assert 2 * np.abs(out.rgb_float - recon)[far].mean() < np.abs(out.rgb_float - recon)[hole].mean()
    info = out.info()["inpaint"]
    assert info["mask_share"] == pytest.approx(hole.mean()) and info["feather"] == 1.0
    assert info["border_step"] <= info["border_step_unaligned"] + 1e-6
    assert np.isfinite(out.depth).all() and 0 <= out.depth.min() and out.depth.max() <= 1


def test_the_depth_fit_is_applied_only_where_it_lowers_the_border_step():
    from ldm3d_edge.runtime.inpaint import align_hole_depth

    yy, xx = np.mgrid[0:64, 0:64] / 64
    known = (0.2 + 0.4 * xx + 0.2 * yy).astype(np.float32)
    hole = np.zeros((64, 64), bool)
    hole[20:40, 20:40] = True
    weight = hole.astype(np.float32)
    # at another scale: the fit brings it back and is applied
    fitted, fit = align_hole_depth(0.5 * known + 0.1, known, hole, 8, weight)
    assert fit["applied"] and np.allclose(fitted[hole], known[hole], atol=1e-5)
    # meeting the old depth at the border already, but the ring reads a far-off bump: the fit would raise the step
    new = known.copy()
    far_ring = np.zeros_like(hole)
    far_ring[12:48, 12:48] = True
    far_ring &= ~dilate(hole, 4)
    new[far_ring] += 0.3
    a, b = fit_depth(new, known, dilate(hole, 8) & ~hole)
    moved = np.clip(new + weight * ((a - 1) * new + b), 0, 1)
    assert border_step(moved, known, hole) > border_step(new, known, hole) + 0.01
    kept, fit = align_hole_depth(new, known, hole, 8, weight)
    assert not fit["applied"] and np.array_equal(kept, new)
    assert fit["border_step"] == pytest.approx(border_step(new, known, hole))


def test_the_depth_fit_recovers_a_scale_and_shift():
    yy, xx = np.mgrid[0:64, 0:64] / 64
    known = (0.2 + 0.4 * xx + 0.2 * yy).astype(np.float32)
    hole = np.zeros((64, 64), bool)
    hole[20:40, 20:40] = True
    new = 0.5 * known + 0.1                     # the model's own scale and offset
    ring = np.zeros_like(hole)
    ring[12:48, 12:48] = True
    ring &= ~hole
    a, b = fit_depth(new, known, ring)
    assert a == pytest.approx(2.0, abs=1e-6) and b == pytest.approx(-0.2, abs=1e-6)
    natural = border_step(known, known, hole)   # the known depth's own slope across the border
    assert border_step(a * new + b, known, hole) == pytest.approx(natural, abs=1e-6)
    assert border_step(new, known, hole) > 10 * natural
    flat = np.full_like(known, 0.5)
    assert fit_depth(np.full_like(known, 0.3), flat, ring) == pytest.approx((1.0, 0.2))   # flat ring: shift only


def test_latent_mask_covers_every_touched_cell_and_feathers_outward():
    hole = np.zeros((64, 64), bool)
    hole[9, 9] = True                            # one pixel of cell (1, 1)
    hard = latent_mask(hole, 8, 0)[0, 0]
    assert hard[1, 1] == 1 and hard.sum() == 1
    soft = latent_mask(hole, 8, 1.0)[0, 0]
    assert soft[1, 1] == 1 and 0 < soft[1, 3] < soft[1, 2] < 1 and soft[1, 4] == soft[5, 5] == 0


@pytest.mark.parametrize("mask, msg", [
    (np.zeros((64, 64), bool), "mask is empty"),
    (np.ones((32, 64), bool), r"mask must be \(H, W\) = \[64, 64\]"),
    (np.full((64, 64), 2.0), "bool, uint8"),
])
def test_bad_masks_are_named(tiny4, mask, msg):
    pipe = Pipeline.load(tiny4[1], device="openvino:CPU", compile_now=False)
    rgb, depth, _ = _scene()
    with pytest.raises(InvalidArgumentError, match=msg):
        pipe.inpaint(rgb, depth, mask, PROMPT, num_inference_steps=2)
    with pytest.raises(InvalidArgumentError, match="feather"):
        pipe.inpaint(rgb, depth, np.ones((64, 64), bool), PROMPT, feather=-1)


def test_cli_inpaints_a_result(tiny4, tmp_path, capsys):
    from ldm3d_edge.cli import main

    model = str(tiny4[1])
    assert main(["generate", PROMPT, "--model", model, "--steps", "4", "--seed", "1", "--out", str(tmp_path),
                 "--name", "base"]) == 0
    mask = np.zeros((64, 64), np.uint8)
    mask[8:32, 8:40] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    assert main(["inpaint", str(tmp_path / "base"), "--mask", str(tmp_path / "mask.png"), "a green cone",
                 "--model", model, "--steps", "4", "--seed", "2", "--out", str(tmp_path), "--name", "fixed"]) == 0
    info = json.loads((tmp_path / "fixed.json").read_text())
    assert info["prompt"] == "a green cone" and info["seed"] == 2
    assert info["inpaint"]["mask_share"] == pytest.approx(mask.astype(bool).mean())
    assert info["inpaint"]["source"].endswith("base_rgb.png") and "depth_fit" in info["inpaint"]
    base = np.asarray(Image.open(tmp_path / "base_rgb.png"), np.float32)
    fixed = np.asarray(Image.open(tmp_path / "fixed_rgb.png"), np.float32)
    assert np.abs(fixed - base)[mask > 0].mean() > np.abs(fixed - base)[48:, 48:].mean()
    assert Image.open(tmp_path / "fixed_depth.png").mode.startswith("I")
    capsys.readouterr()
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "empty.png")
    assert main(["inpaint", str(tmp_path / "base"), "--mask", str(tmp_path / "empty.png"), "x", "--model", model,
                 "--out", str(tmp_path), "--name", "bad"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mask is empty" in err[0] and not (tmp_path / "bad.json").exists()
