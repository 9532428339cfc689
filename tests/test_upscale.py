"""The ldm3d-sr upscaler: exported (UNet with 8 input channels and the noise level as class label, VAE encoder)
and run by the runtime, against a reference written with diffusers' own parts (UNet2DConditionModel,
AutoencoderKL, the scheduler, VaeImageProcessorLDM3D's resize) on a tiny random model built like the release
configs, from the same noise."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ldm3d_edge.runtime import InvalidArgumentError, ModelFolderError, Pipeline, UpscalePipeline

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

ATOL = 1e-3
PROMPT = "high quality high resolution uhd 4k image"


@pytest.fixture(scope="module")
def tiny_sr(tmp_path_factory, ov_cache):
    from ldm3d_edge.export import export_pipeline
    from ldm3d_edge.export.random_model import build_tiny_upscaler

    root = tmp_path_factory.mktemp("tiny-sr")
    src = build_tiny_upscaler(root / "checkpoint", seed=5)
    art = root / "artifacts"
    export_pipeline(src, art, fmt="both", progress=False)
    return src, art


def low_res(size=32, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    rgb = np.stack([xx, yy, 0.5 + 0.5 * np.sin(6 * xx)], -1) * 255
    rgb = np.clip(rgb + rng.normal(0, 8, rgb.shape), 0, 255).astype(np.uint8)
    d16 = np.round((0.2 + 0.6 * yy) * 65535).astype(np.uint16)
    return rgb, d16


def reference(ckpt, rgb, d16, steps, guidance, noise_level, noise, target, scheduler_cls=None):
    """The upscaler written with diffusers' parts: Lanczos resize + normalise (VaeImageProcessorLDM3D), VAE latents
    (mode) x scaling factor appended to the scaled model input, the noise level as class label, CFG."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.image_processor import VaeImageProcessorLDM3D
    from transformers import CLIPTextModel, CLIPTokenizer

    unet = UNet2DConditionModel.from_pretrained(str(ckpt), subfolder="unet").eval()
    vae = AutoencoderKL.from_pretrained(str(ckpt), subfolder="vae").eval()
    text = CLIPTextModel.from_pretrained(str(ckpt / "text_encoder")).eval()
    tok = CLIPTokenizer.from_pretrained(str(ckpt / "tokenizer"))
    cfg = json.loads((ckpt / "scheduler" / "scheduler_config.json").read_text())
    cls = scheduler_cls or getattr(diffusers, cfg["_class_name"])
    sched = cls.from_config(cfg)
    proc = VaeImageProcessorLDM3D(vae_scale_factor=8)
    rgb_t, depth_t = proc.preprocess(Image.fromarray(rgb), Image.fromarray(d16), target_res=[target, target])
    with torch.no_grad():
        cond = vae.encode(torch.cat([rgb_t, depth_t], dim=1)).latent_dist.mode() * vae.config.scaling_factor

        def embed(p):
            ids = tok(p, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
            return text(ids)[0]

        emb = torch.cat([embed(""), embed(PROMPT)])
        sched.set_timesteps(steps)
        latents = torch.from_numpy(noise) * sched.init_noise_sigma
        labels = torch.tensor([noise_level] * 2)
        for t in sched.timesteps:
            x = torch.cat([sched.scale_model_input(torch.cat([latents] * 2), t), torch.cat([cond] * 2)], dim=1)
            eps = unet(x, t, encoder_hidden_states=emb, class_labels=labels).sample
            u, c = eps.chunk(2)
            latents = sched.step(u + guidance * (c - u), t, latents).prev_sample
        image = vae.decode(latents / vae.config.scaling_factor).sample
    x = (image / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    return x[..., :3], x[..., 3]


def test_export_writes_an_upscaler_folder(tiny_sr):
    src, art = tiny_sr
    m = json.loads((art / "manifest.json").read_text())
    assert m["pipeline"] == "upscale" and m["max_noise_level"] == 350 and m["latent_channels"] == 4
    unet_in = {t["name"]: t for t in m["components"]["unet"]["inputs"]}
    assert unet_in["sample"]["shape"] == [2, 8, 8, 8]
    assert unet_in["class_labels"] == {"name": "class_labels", "shape": [2], "dtype": "int64"}
    assert (art / "low_res_scheduler" / "scheduler_config.json").is_file()
    with pytest.raises(ModelFolderError, match="UpscalePipeline"):
        Pipeline.load(art)


@pytest.mark.parametrize("device,scheduler", [("openvino:CPU", None), ("onnx:CPU", None), ("openvino:CPU", "ddim")])
def test_upscaler_matches_the_diffusers_reference(tiny_sr, device, scheduler):
    src, art = tiny_sr
    pipe = UpscalePipeline.load(art, device=device)
    rgb, d16 = low_res()
    steps, guidance, level = 4, 9.0, 20
    noise = np.random.default_rng(11).standard_normal((1, 4, 8, 8)).astype(np.float32)
    want_rgb, want_depth = reference(src, rgb, d16, steps, guidance, level, noise, 64,
                                     diffusers.DDIMScheduler if scheduler == "ddim" else None)
    assert want_rgb.std() > 0.01 and want_depth.std() > 0.01
    out = pipe(rgb, d16.astype(np.float32) / 65535, PROMPT, num_inference_steps=steps, guidance_scale=guidance,
               noise_level=level, latents=noise, scheduler=scheduler)
    assert out.rgb.shape == (64, 64, 3) and out.info()["upscaled_from"] == [32, 32]
    np.testing.assert_allclose(out.rgb_float, want_rgb, atol=ATOL)
    np.testing.assert_allclose(out.depth, want_depth, atol=ATOL)
    # the noise level reaches the UNet: another level, another result
    other = pipe(rgb, d16.astype(np.float32) / 65535, PROMPT, num_inference_steps=steps, guidance_scale=guidance,
                 noise_level=200, latents=noise, scheduler=scheduler)
    assert np.abs(other.rgb_float - out.rgb_float).max() > 1e-3


def test_upscaler_rejects_bad_input(tiny_sr):
    pipe = UpscalePipeline.load(tiny_sr[1], device="openvino:CPU")
    rgb, d16 = low_res()
    depth = d16.astype(np.float32) / 65535
    with pytest.raises(InvalidArgumentError, match="noise level"):
        pipe(rgb, depth, noise_level=351)
    with pytest.raises(InvalidArgumentError, match="depth must be"):
        pipe(rgb, depth[:10])
    with pytest.raises(InvalidArgumentError, match="multiple of 8"):
        pipe(rgb, depth, height=60)
    # a sibling of Pipeline, not a subclass that refuses: there is no img2img to call by mistake
    assert not hasattr(pipe, "img2img") and not isinstance(pipe, Pipeline)


def test_cli_upscale_writes_a_result_with_its_provenance(tiny_sr, tmp_path, capsys):
    from ldm3d_edge.cli import main

    rgb, d16 = low_res()
    Image.fromarray(rgb).save(tmp_path / "small_rgb.png")
    Image.fromarray(d16).save(tmp_path / "small_depth.png")
    assert main(["upscale", str(tmp_path / "small"), "--model", str(tiny_sr[1]), "--steps", "3", "--seed", "1",
                 "--out", str(tmp_path), "--noise-level", "30", "--device", "openvino:CPU"]) == 0
    assert "32x32 -> 64x64" in capsys.readouterr().out
    info = json.loads((tmp_path / "small-up.json").read_text())
    assert info["upscaled_from"] == [32, 32] and info["noise_level"] == 30
    assert (info["width"], info["height"]) == (64, 64)
    assert Image.open(tmp_path / "small-up_depth.png").mode.startswith("I")    # 16-bit depth
    assert main(["upscale", str(tmp_path / "small"), "--model", str(tiny_sr[1]), "--noise-level", "351"]) == 2
    assert "from 0 to 350" in capsys.readouterr().err
