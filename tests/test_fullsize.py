"""Full-size ldm3d-4c (random weights from the release config): exports and generates at 512x512.

Slow (about 10 minutes, ~20 GB RAM on 2 cores): run explicitly with `python -m pytest -m slow`.
"""

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_release_config_exports_and_generates_at_512(tmp_path_factory):
    pytest.importorskip("torch")
    from ldm3d_edge.export import export_pipeline
    from ldm3d_edge.export.random_model import build_release_pipeline
    from ldm3d_edge.runtime import Pipeline, read_manifest

    root = tmp_path_factory.mktemp("full")
    src = build_release_pipeline("ldm3d-4c", root / "ckpt")
    art = root / "art"
    export_pipeline(src, art, fmt="both", progress=False)
    m = read_manifest(art)
    assert (m.height, m.width, m.vae_channels) == (512, 512, 4)
    inputs = json.loads((art / "manifest.json").read_text())["components"]["unet"]["inputs"]
    unet = {t["name"]: t["shape"] for t in inputs}
    assert unet == {"sample": [2, 4, 64, 64], "timestep": [2], "encoder_hidden_states": [2, 77, 768]}
    # the 3.4 GB UNet is over protobuf's 2 GB limit: its weights must sit in external data
    assert (art / "unet" / "model.onnx_data").stat().st_size > 3_000_000_000
    for device in ("openvino:CPU", "onnx:CPU"):
        out = Pipeline.load(art, device=device)("a red sphere", num_inference_steps=1, seed=0)
        assert out.rgb.shape == (512, 512, 3) and out.depth.shape == (512, 512)
        assert np.isfinite(out.depth).all() and out.rgb_float.std() > 0.01
