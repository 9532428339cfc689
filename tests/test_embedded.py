"""The embedded default model: `ldm3d generate` with no --model makes a real scene, perspective and panorama,
and the prompt's colour steers it; its VAE reconstructs held-out renders through the runtime (no torch)."""

import json

import numpy as np
import pytest
from PIL import Image

from ldm3d_edge import metrics as M
from ldm3d_edge.cli import main
from ldm3d_edge.runtime import Pipeline, load_depth_png
from training.dataset import HELDOUT_SEED0
from training.scenes import sample

pytest.importorskip("torch")        # the first use exports the model, which needs the [export] extra

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
    assert info["model"] == "ldm3d-edge-tiny-perspective-128x128" and info["steps"] == 30
    # a scene, not noise: the floor comes nearer towards the bottom, and the prompt's object is there
    assert depth[-16:].mean() > depth[:16].mean() + 0.2
    assert M.adherence(rgb, depth, "red")["nearer_ok"]


def test_the_prompted_colour_steers_the_object(pipe):
    found = [(c, M.adherence(o.rgb_float, o.depth, c)["found"]) for seed in (0, 1, 2) for c, o in
             ((c, pipe(p, num_inference_steps=30, seed=seed)) for c, p in COLOUR_PROMPTS.items())]
    # 18 of 18 on the machine that trained it; chance (1 in 8 colours) gives ~2
    assert sum(c == f for c, f in found) >= 14, found


def test_pano_flag_uses_the_panorama_export(embedded, tmp_path):
    out = tmp_path / "pano"
    prompt = "360 view of a room with a blue cube on a grey floor"
    assert main(["generate", prompt, "--pano", "--out", str(out), "--seed", "0", "--steps", "30", "--name", "p"]) == 0
    rgb, depth, info = read(out, "p")
    assert rgb.shape == (128, 256, 3) and info["model"] == "ldm3d-edge-tiny-panorama-256x128"
    assert M.adherence(rgb, depth, "blue")["nearer_ok"]
    # the panorama export follows colour less reliably (64 % of 50 held-out prompts): 3 of these 4 seeds were
    # blue on the machine that trained it; chance would give ~0.5
    pano = Pipeline.load(embedded[1], device="openvino:CPU")
    hits = [M.adherence(o.rgb_float, o.depth, "blue")["colour_ok"]
            for o in (pano(prompt, num_inference_steps=30, seed=s) for s in range(4))]
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
