"""Panorama generation: circular padding of the latent closes the +-180 degree seam (measured on the embedded
panorama model), its validation, and `generate --pano` (2:1, the '360 view of' convention, padding on)."""

import json

import numpy as np
import pytest

from benchmarks.pano_seam import seam_metrics
from ldm3d_edge.cli import main
from ldm3d_edge.runtime import InvalidArgumentError, Pipeline
from ldm3d_edge.runtime.base import _crop, _wrap


def test_seam_metrics_see_a_seam_and_not_a_rolled_one():
    x = np.tile(np.linspace(0, 1, 64), (8, 1))           # a ramp: one big step at the wrap
    m = seam_metrics(x)
    assert m["ratio"] > 50 and m["rank"] == 1.0
    smooth = np.tile(np.sin(np.linspace(0, 2 * np.pi, 64, endpoint=False)), (8, 1))   # periodic: no seam
    # the wrap falls where a sine is steepest (pi/2 x its mean step), yet it is no step of its own: it equals
    # its mirror-image column step at pi
    m = seam_metrics(smooth)
    assert m["ratio"] == pytest.approx(np.pi / 2, rel=0.01)
    assert m["wrap"] == pytest.approx(abs(smooth[0, 32] - smooth[0, 31]), rel=1e-6)


def test_wrap_and_crop_are_circular_padding():
    x = np.arange(2 * 10).reshape(1, 2, 10).astype(np.float32)
    w = _wrap(x, 3)
    assert w.shape == (1, 2, 16)
    np.testing.assert_array_equal(w[..., :3], x[..., -3:])
    np.testing.assert_array_equal(w[..., -3:], x[..., :3])
    np.testing.assert_array_equal(_crop(w, 3), x)
    assert _wrap(x, 0) is x


def test_padding_validation(tiny4):
    ov = Pipeline.load(tiny4[1], device="openvino:CPU")
    m = ov.manifest
    out = ov("x", num_inference_steps=2, seed=0, circular_padding=4)
    assert out.rgb.shape == (m.height, m.width, 3) and out.info()["circular_padding"] == 4
    for bad in (3, -4, m.width):
        with pytest.raises(InvalidArgumentError, match="circular padding"):
            ov("x", num_inference_steps=2, circular_padding=bad)
    onnx = Pipeline.load(tiny4[1], device="onnx:CPU")
    with pytest.raises(InvalidArgumentError, match="OpenVINO"):
        onnx("x", num_inference_steps=2, circular_padding=4)


def test_circular_padding_closes_the_seam_on_the_embedded_panorama_model(embedded):
    pipe = Pipeline.load(embedded[1], device="openvino:CPU")
    prompt = "360 view of a room with a green cone and a purple cylinder on a dark floor"
    ratio = {}
    for p in (0, 4):
        outs = [pipe(prompt, num_inference_steps=30, seed=s, circular_padding=p, height=128, width=256)
                for s in range(3)]
        ratio[p] = np.mean([seam_metrics(o.depth)["ratio"] for o in outs])
    # depth is continuous across the wrap in the training renders (ratio 0.6): 17 without padding over 30
    # images (benchmarks/results/pano-seam.md), about 1 with it
    assert ratio[0] > 5 and ratio[4] < 2.5, ratio


def test_generate_pano_uses_2to1_the_prompt_convention_and_padding(embedded, tmp_path):
    assert main(["generate", "a room with a blue cube on a grey floor", "--pano", "--out", str(tmp_path),
                 "--seed", "0", "--steps", "10", "--name", "p"]) == 0
    info = json.loads((tmp_path / "p.json").read_text())
    assert info["prompt"] == "360 view of a room with a blue cube on a grey floor"
    assert (info["width"], info["height"]) == (256, 128) and info["circular_padding"] == 4
    assert info["camera"]["model"] == "equirectangular"
    # --model with a perspective (1:1) export: --pano makes it 2:1 at the export height
    assert main(["generate", "a plain", "--pano", "--model", str(embedded[0]), "--out", str(tmp_path), "--seed", "0",
                 "--steps", "2", "--name", "q", "--circular-padding", "0"]) == 0
    info = json.loads((tmp_path / "q.json").read_text())
    assert (info["width"], info["height"]) == (256, 128) and "circular_padding" not in info
