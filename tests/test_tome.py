"""Token merging at export (issue 20): the patched UNet equals tomesd's, the exported graphs equal the patched
UNet, and a ToMe folder generates on both backends, with a guidance cut-off too."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from ldm3d_edge.runtime import Pipeline
from ldm3d_edge.runtime import constants as C
from ldm3d_edge.runtime.errors import InvalidArgumentError

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

PROMPT = "a red sphere in front of a blue cube on a grey floor"
DEVICES = ("openvino:CPU", "onnx:CPU")
RATIO = 0.5


@pytest.fixture(scope="module")
def tome4(tiny4, tmp_path_factory):
    """tiny4's checkpoint exported with token merging and a dynamic-batch ONNX UNet."""
    from ldm3d_edge.export import export_pipeline

    out = tmp_path_factory.mktemp("tome") / "artifacts"
    export_pipeline(tiny4[0], out, fmt="both", progress=False, tome=RATIO, dynamic_batch=True)
    return out


def _unet(checkpoint):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(checkpoint / "unet").eval()


@pytest.mark.parametrize("hw", [(8, 8), (16, 32), (15, 9)])
def test_the_patched_unet_equals_tomesd(tiny4, hw):
    """Same tokens merged, same averages: our scatter-add / count against tomesd's scatter_reduce(mean), at
    every ratio, on square, panorama-shaped and odd latents (tokens past the last 2x2 cell stay sources)."""
    tomesd = pytest.importorskip("tomesd")
    from ldm3d_edge.export.tome import apply_tome

    unet = _unet(tiny4[0])
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(2, 4, *hw, generator=g), torch.tensor([500.0, 500.0])
    hidden = torch.randn(2, 77, unet.config.cross_attention_dim, generator=g)
    with torch.no_grad():
        plain = unet(x, t, encoder_hidden_states=hidden).sample
        for ratio in (0.25, RATIO, 0.75):
            ref_unet, ours = copy.deepcopy(unet), copy.deepcopy(unet)
            tomesd.apply_patch(ref_unet, ratio=ratio, use_rand=False)
            record = apply_tome(ours, ratio, hw)
            ref = ref_unet(x, t, encoder_hidden_states=hidden).sample
            out = ours(x, t, encoder_hidden_states=hidden).sample
            assert (out - ref).abs().max() <= 1e-5, (hw, ratio)
            assert (out - plain).abs().max() > 1e-2, (hw, ratio)      # it did merge
            assert record["ratio"] == ratio and record["blocks"] == 3   # down 0 (1 layer) + last up (2 layers)


def test_the_exported_graph_equals_the_patched_unet(tiny4, tome4):
    from ldm3d_edge.export.tome import apply_tome

    unet = _unet(tiny4[0])
    apply_tome(unet, RATIO, (8, 8))
    rng = np.random.default_rng(0)
    sample = rng.standard_normal((2, 4, 8, 8)).astype(np.float32)
    t = np.full((2,), 600.0, np.float32)
    hidden = rng.standard_normal((2, 77, 32)).astype(np.float32)
    with torch.no_grad():
        ref = unet(torch.from_numpy(sample), torch.from_numpy(t), encoder_hidden_states=torch.from_numpy(hidden))
    for device in DEVICES:
        pipe = Pipeline.load(tome4, device=device)
        out = pipe.unet(sample, t, hidden, 64, 64)
        assert np.abs(out - ref.sample.numpy()).max() <= 1e-4, device
        # batch 1 (unguided steps): OpenVINO reshapes the IR, ONNX was exported with a dynamic batch
        one = pipe.unet(sample[1:], t[1:], hidden[1:], 64, 64)
        assert np.abs(one - ref.sample.numpy()[1:]).max() <= 1e-4, device
    record = json.loads((tome4 / C.MANIFEST_FILE).read_text())["tome"]
    assert record["ratio"] == RATIO and record["blocks"] == 3 and record["use_rand"] is False


@pytest.mark.parametrize("device", DEVICES)
def test_a_tome_folder_generates_on_both_backends(tiny4, tome4, device):
    kw = dict(num_inference_steps=8, guidance_scale=5.0, seed=11)
    plain = Pipeline.load(tiny4[1], device=device)(PROMPT, **kw)
    pipe = Pipeline.load(tome4, device=device)
    merged = pipe(PROMPT, **kw)
    diff = np.abs(merged.rgb_float - plain.rgb_float)
    assert 0 < diff.max() and diff.mean() < 0.05          # a different, nearby image
    assert merged.rgb.std() > 2 and np.isfinite(merged.depth).all()
    cut = pipe(PROMPT, guidance_cutoff=0.5, **kw)         # batch-1 steps through the merged graph
    assert cut.rgb.std() > 2 and not np.array_equal(cut.rgb_float, merged.rgb_float)


def test_a_tome_folder_runs_at_its_export_size_only(tome4):
    pipe = Pipeline.load(tome4, device="openvino:CPU", compile_now=False)
    assert pipe.manifest.tome is not None and pipe.manifest.tome["ratio"] == RATIO
    for kw in (dict(height=64, width=128), dict(circular_padding=4)):
        with pytest.raises(InvalidArgumentError, match="token merging .* for 64x64 and runs at that size only"):
            pipe(PROMPT, num_inference_steps=2, **kw)


def test_bad_ratios_are_refused_before_any_work(tiny4, tmp_path, capsys):
    from ldm3d_edge.cli import main
    from ldm3d_edge.export import export_pipeline

    for ratio in (0.0, 0.8, -1):
        with pytest.raises(InvalidArgumentError, match=r"ratio must be a number in \(0, 0.75\]"):
            export_pipeline(tiny4[0], tmp_path / "x", tome=ratio, progress=False)
    assert main(["export", str(tiny4[0]), str(tmp_path / "y"), "--tome", "0.9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ratio must be" in err[0]
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
