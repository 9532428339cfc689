"""The embedded default model: `ldm3d generate` with no --model makes a real scene, perspective and panorama."""

import json

import numpy as np
import pytest
from PIL import Image

from ldm3d_edge.cli import main
from ldm3d_edge.training import metrics as M

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def embedded(ov_cache):
    from ldm3d_edge.embedded import default_model_dir, embedded_artifacts

    try:
        default_model_dir()
    except Exception as e:  # pragma: no cover - the repo ships the model; this guards partial checkouts
        pytest.fail(f"embedded model missing: {e}")
    return embedded_artifacts(progress=False)


def test_generate_without_model_uses_the_embedded_model(embedded, tmp_path, capsys):
    out = tmp_path / "out"
    prompt = "a red sphere in the centre on a grey floor before a white wall"
    assert main(["generate", prompt, "--out", str(out), "--seed", "1", "--steps", "30", "--name", "r"]) == 0
    rgb = np.asarray(Image.open(out / "r_rgb.png"), dtype=np.float32) / 255
    depth = np.asarray(Image.open(out / "r_depth.png"), dtype=np.float32) / 65535
    assert rgb.shape == (128, 128, 3) and depth.shape == (128, 128)
    info = json.loads((out / "r.json").read_text())
    assert info["model"] == "ldm3d-edge-tiny-perspective-128x128" and info["steps"] == 30
    # a scene, not noise: depth grows towards the bottom (the floor comes nearer), and the prompt's object is there
    assert depth[-16:].mean() > depth[:16].mean() + 0.2
    r = M.adherence(rgb, depth, "red")
    assert r["colour_ok"] and r["nearer_ok"], r


def test_pano_flag_uses_the_panorama_export(embedded, tmp_path):
    out = tmp_path / "pano"
    assert main(["generate", "360 view of a room with a blue cube on a grey floor", "--pano", "--out", str(out),
                 "--seed", "0", "--steps", "20", "--name", "p"]) == 0
    rgb = np.asarray(Image.open(out / "p_rgb.png"))
    assert rgb.shape == (128, 256, 3) and rgb.std() > 10
