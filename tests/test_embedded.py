"""The embedded default model: `ldm3d generate` with no --model makes a real scene, perspective and panorama,
and the prompt's colour steers it; its VAE reconstructs held-out renders through the runtime (no torch). The
shipped OpenVINO IR is the one the project's exporter makes from the shipped weights, and computes what they do."""

import json

import numpy as np
import pytest
from PIL import Image

from ldm3d_edge import embedded as E
from ldm3d_edge import metrics as M
from ldm3d_edge.cli import main
from ldm3d_edge.runtime import Pipeline, load_depth_png
from ldm3d_edge.runtime.pipeline import pano_prompt, pano_settings
from training.dataset import HELDOUT_SEED0
from training.scenes import sample

PROMPT = "a red sphere on the left in front of a blue cube on a grey floor before a white wall"
# one prompt per colour family. The model gets the nearest object's colour right in 94 % of 100 held-out prompts
# (eval/eval.json; the bar is 80 %); a model deaf to colour words would score ~1/8.
COLOUR_PROMPTS = {
    "red": "a red cube in the centre on a beige floor before a white wall",
    "yellow": "a yellow sphere on the right on a grey floor before a grey wall",
    "green": "a green cylinder in the centre on a dark floor under a blue sky",
    "blue": "a blue torus on the left on a beige floor before a white wall",
    "purple": "a purple cone in the centre on a grey floor under a blue sky",
    "cyan": "a cyan sphere on the left in front of an orange cube on a brown floor before a grey wall",
}


@pytest.fixture(scope="module")
def pipe(embedded):
    """The perspective export, loaded once for the module."""
    return Pipeline.load(embedded[0], device="openvino:CPU")


def read(out, name):
    rgb = np.asarray(Image.open(out / f"{name}_rgb.png"), dtype=np.float32) / 255
    depth = load_depth_png(out / f"{name}_depth.png")
    return rgb, depth, json.loads((out / f"{name}.json").read_text())


def test_generate_without_model_uses_the_embedded_model(embedded, tmp_path):
    out = tmp_path / "out"
    assert main(["generate", PROMPT, "--out", str(out), "--seed", "0", "--steps", "30", "--name", "r"]) == 0
    rgb, depth, info = read(out, "r")
    assert rgb.shape == (128, 128, 3) and depth.shape == (128, 128)
    assert info["model"] == "ldm3d-edge-tiny-openvino" and info["steps"] == 30
    # a scene, not noise: the floor comes nearer towards the bottom, and the prompt's object is there
    assert depth[-16:].mean() > depth[:16].mean() + 0.2
    assert M.adherence(rgb, depth, "red")["nearer_ok"]


def test_the_prompted_colour_steers_the_object(pipe):
    found = [(c, M.adherence(o.rgb_float, o.depth, c)["found"]) for seed in (0, 1, 2) for c, o in
             ((c, pipe(p, num_inference_steps=30, seed=seed)) for c, p in COLOUR_PROMPTS.items())]
    # 18 of 18 on the machine that trained it; chance (1 in 8 colours) gives ~2
    assert sum(c == f for c, f in found) >= 14, found


def test_pano_flag_runs_the_shipped_ir_at_2to1(embedded, tmp_path):
    out = tmp_path / "pano"
    prompt = "360 view of a room with a blue cube on a grey floor"
    assert main(["generate", prompt, "--pano", "--out", str(out), "--seed", "0", "--steps", "30", "--name", "p"]) == 0
    rgb, depth, info = read(out, "p")
    assert rgb.shape == (128, 256, 3) and info["model"] == "ldm3d-edge-tiny-openvino"
    assert M.adherence(rgb, depth, "blue")["nearer_ok"]
    # the panorama export follows colour less reliably (64 % of 50 held-out prompts): 3 of these 4 seeds were
    # blue on the machine that trained it; chance would give ~0.5
    pano = Pipeline.load(embedded[1], device="openvino:CPU")
    hits = [M.adherence(o.rgb_float, o.depth, "blue")["colour_ok"]
            for o in (pano(prompt, num_inference_steps=30, seed=s, height=128, width=256) for s in range(4))]
    assert sum(hits) >= 2, hits


def test_vae_reconstructs_held_out_scenes_through_the_runtime(pipe):
    psnr, absrel = [], []
    for k in range(6):
        s = sample(HELDOUT_SEED0 + k, 128)
        x = np.concatenate([s.rgb, s.depth[..., None]], -1).transpose(2, 0, 1)[None].astype(np.float32) * 2 - 1
        mean = pipe.vae_encoder(x, 128, 128)[:, :4]
        rec = np.clip(pipe.vae_decoder(mean, 128, 128)[0] / 2 + 0.5, 0, 1)
        psnr.append(M.psnr(rec[:3], s.rgb.transpose(2, 0, 1)))
        absrel.append(M.abs_rel(rec[3], s.depth))
    # docs/embedded-model.md: 29.9 dB and AbsRel 0.018 on 300 held-out scenes; these 6 give 30.6 dB and 0.021
    assert np.mean(psnr) >= 29.9 and np.mean(absrel) <= 0.025, (psnr, absrel)


def test_the_shipped_ir_is_made_from_the_shipped_weights():
    """The runtime uses the shipped IR only while it was made from this checkpoint; a retrained model without a
    refreshed IR would otherwise fall back to an export that needs torch."""
    art = E.shipped_artifacts()
    assert art == E.shipped_dir() and art.parent == E.default_model_dir().parent
    m = json.loads((art / "manifest.json").read_text())
    assert m["source"]["fingerprint"] == E.fingerprint(E.default_model_dir()), "run: python -m training.ship_embedded"
    assert (m["formats"], m["precision"], m["weights"]) == (["openvino"], "fp32", "fp16-lossless")
    assert (m["height"], m["width"]) == (128, 128)
    assert not list(art.rglob("*.onnx")) and E.embedded_artifacts()[:2] == (art, art)


def test_a_stale_shipped_ir_is_not_used(tmp_path):
    """A checkpoint whose weights changed after the IR was shipped: the shipped folder is passed over."""
    import shutil

    model = tmp_path / "ldm3d-edge-tiny"
    shutil.copytree(E.default_model_dir(), model, ignore=shutil.ignore_patterns("eval", "*.safetensors"))
    shutil.copytree(E.shipped_dir(), E.shipped_dir(model))
    assert E.shipped_artifacts(model) is None   # the weights are missing, so the fingerprint differs
    assert E.needs_onnx("onnx:CPU") and E.needs_onnx("CUDA") and not E.needs_onnx("auto")


def test_the_shipped_ir_computes_what_a_fresh_fp32_export_computes(tmp_path):
    """Exported afresh from the shipped diffusers weights (FP32, both sizes) and run side by side with the shipped
    IR (float16-stored weights, reshaped to the panorama size): the same RGB and depth, DDIM and Euler."""
    from ldm3d_edge.export import export_pipeline

    shipped = Pipeline.load(device="openvino:CPU")
    worst = {}
    for name, (h, w) in (("perspective", E.PERSPECTIVE_SIZE), ("panorama", E.PANORAMA_SIZE)):
        art = tmp_path / name
        export_pipeline(E.default_model_dir(), art, fmt="openvino", height=h, width=w, progress=False)
        fresh = Pipeline.load(art, device="openvino:CPU")
        for sched in ("ddim", "euler"):
            if name == "panorama":
                kw = dict(zip(("height", "width", "circular_padding"), pano_settings(fresh.manifest, None, None)))
                args = (pano_prompt("a room with a red sphere"),)
                assert kw == dict(zip(kw, pano_settings(shipped.manifest, None, None)))
            else:
                kw, args = {}, ("a red sphere on the left in front of a blue cube",)
            a = shipped(*args, num_inference_steps=12, seed=3, scheduler=sched, **kw)
            b = fresh(*args, num_inference_steps=12, seed=3, scheduler=sched, **kw)
            assert a.rgb.shape == b.rgb.shape == (h, w, 3)
            worst[name, sched] = (float(np.abs(a.rgb_float - b.rgb_float).max()),
                                  float(np.abs(a.depth - b.depth).max()))
    # the weights float16 holds exactly are the checkpoint's own (writers.store_exact_fp16): 0.0 everywhere on the
    # AVX2 VM; on the AVX-512/AMX VM OpenVINO picks other kernels for the float16-stored weights than for float32
    # ones, and 12 panorama steps drift up to 1.7e-4 (2026-12-03). OpenVINO's plain compress_to_fp16 gave up to
    # 0.18 here (it rounds the timestep frequencies too)
    assert max(max(v) for v in worst.values()) <= 1e-3, worst
