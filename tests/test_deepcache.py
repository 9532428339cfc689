"""DeepCache feature caching (issue 20): the exported split is exact, cached runs generate on both backends, and
folders without the graphs (or with another branch) say so."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ldm3d_edge.runtime import Pipeline
from ldm3d_edge.runtime import constants as C
from ldm3d_edge.runtime.errors import InvalidArgumentError, ModelFolderError

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

PROMPT = "a red sphere in front of a blue cube on a grey floor"
DEVICES = ("openvino:CPU", "onnx:CPU")


@pytest.fixture(scope="module")
def cached4(tiny4, tmp_path_factory):
    """tiny4's checkpoint exported with the DeepCache graphs at branch 0 and a dynamic-batch ONNX UNet."""
    from ldm3d_edge.export import export_pipeline

    out = tmp_path_factory.mktemp("deepcache") / "artifacts"
    export_pipeline(tiny4[0], out, fmt="both", progress=False, deepcache_branch=0, dynamic_batch=True)
    return out


def _unet(checkpoint):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(checkpoint / "unet").eval()


def test_every_branch_splits_the_torch_unet_exactly(tiny4):
    from ldm3d_edge.export.deepcache import cache_modules

    unet = _unet(tiny4[0])
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(2, 4, 8, 8, generator=g), torch.tensor([700.0, 700.0])
    hidden = torch.randn(2, 77, unet.config.cross_attention_dim, generator=g)
    with torch.no_grad():
        ref = unet(x, t, encoder_hidden_states=hidden).sample
        for branch in range(len(unet.down_blocks) * len(unet.up_blocks[-1].resnets)):
            full, shallow, split = cache_modules(unet, branch)
            out, feature = full(x, t, hidden)
            assert torch.equal(out, ref), branch                        # interval 1 = today's UNet
            assert torch.equal(shallow(x, t, hidden, feature), out), branch
    with pytest.raises(ValueError, match="branch must be an integer from 0 to 3"):
        cache_modules(unet, 4)


def test_the_exported_graphs_are_exact(cached4):
    """Through the runtime, FP32: the full graph's output equals the plain UNet graph's, and the shallow graph
    given the full graph's feature at the same step equals the full output (<= 1e-5)."""
    rng = np.random.default_rng(0)
    for device in DEVICES:
        pipe = Pipeline.load(cached4, device=device)
        m = pipe.manifest
        assert m.deepcache_branch == 0 and json.loads((cached4 / C.MANIFEST_FILE).read_text())["deepcache"]
        sample = rng.standard_normal((2, 4, m.height // 8, m.width // 8)).astype(np.float32)
        t = np.full((2,), 600.0, np.float32)
        hidden = rng.standard_normal((2, m.text_max_length, 32)).astype(np.float32)
        plain = pipe.unet(sample, t, hidden, m.height, m.width)
        full, feature = pipe.unet_cache[0](sample, t, hidden, m.height, m.width)
        shallow = pipe.unet_cache[1](sample, t, hidden, m.height, m.width, feature=feature)
        assert np.abs(full - plain).max() <= 1e-5, device
        assert np.abs(shallow - full).max() <= 1e-5, device
        assert feature.shape[:2] == (2, 32) and np.abs(feature).max() > 0


@pytest.mark.parametrize("device", DEVICES)
def test_a_cached_run_generates_and_stays_close(cached4, device):
    pipe = Pipeline.load(cached4, device=device)
    kw = dict(num_inference_steps=8, guidance_scale=5.0, seed=11)
    ref = pipe(PROMPT, **kw)
    same = pipe(PROMPT, cache_interval=1, **kw)
    assert np.array_equal(same.rgb_float, ref.rgb_float)
    cached = pipe(PROMPT, cache_interval=3, **kw)
    diff = np.abs(cached.rgb_float - ref.rgb_float)
    assert 0 < diff.max() and diff.mean() < 0.05        # a different, nearby image
    assert cached.rgb.std() > 2 and cached.info()["cache_interval"] == 3 and cached.info()["cache_branch"] == 0
    # with a guidance cut-off too: the shallow steps run on the prompt's row of the cached feature
    both = pipe(PROMPT, cache_interval=3, guidance_cutoff=0.5, **kw)
    assert np.isfinite(both.rgb_float).all() and not np.array_equal(both.rgb_float, cached.rgb_float)


def test_folders_without_the_graphs_or_with_another_branch_say_so(tiny4, cached4):
    plain = Pipeline.load(tiny4[1], device="openvino:CPU", compile_now=False)
    with pytest.raises(ModelFolderError, match="no DeepCache graphs.*--deepcache-branch"):
        plain(PROMPT, num_inference_steps=2, cache_interval=3)
    pipe = Pipeline.load(cached4, device="openvino:CPU", compile_now=False)
    with pytest.raises(InvalidArgumentError, match="exported for DeepCache branch 0, not 2"):
        pipe(PROMPT, num_inference_steps=2, cache_interval=3, cache_branch=2)
    with pytest.raises(InvalidArgumentError, match="cache interval"):
        pipe(PROMPT, num_inference_steps=2, cache_interval=0)


def test_an_int8_folder_carries_the_graphs_quantized_like_the_unet(cached4, tmp_path):
    pytest.importorskip("nncf")
    from ldm3d_edge.quantization import quantize_artifacts

    out = tmp_path / "int8"
    raw = quantize_artifacts(cached4, out, mode="full", formats=["openvino"], samples=4, steps=2, progress=False)
    parts = raw["quantization"]["parts"]
    assert parts[C.UNET_CACHE_FULL]["openvino"] == parts[C.UNET_CACHE_SHALLOW]["openvino"] == "full"
    assert raw["quantization"]["int8"][C.UNET_CACHE_SHALLOW]["openvino"]["fake_quantize"] > 0
    pipe = Pipeline.load(out, device="openvino:CPU")
    assert pipe.manifest.deepcache_branch == 0
    kw = dict(num_inference_steps=6, guidance_scale=5.0, seed=4)
    cached, plain = pipe(PROMPT, cache_interval=2, **kw), pipe(PROMPT, **kw)
    assert cached.rgb.std() > 2 and 0 < np.abs(cached.rgb_float - plain.rgb_float).mean() < 0.05
