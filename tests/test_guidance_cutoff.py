"""Guidance cut-off (issue 20): the same semantics as diffusers' SDCFGCutoffCallback, unguided steps at batch 1 on
OpenVINO and on ONNX exported with --dynamic-batch, and a batch-2 fallback (same numbers) for static ONNX."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from ldm3d_edge.runtime import Pipeline
from ldm3d_edge.runtime.errors import InvalidArgumentError

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

PROMPT = "a red sphere in front of a blue cube on a grey floor"
STEPS, GUIDANCE, ATOL = 10, 12.0, 1e-3   # a strong guidance: the tiny random model reacts little to it


@pytest.fixture(scope="module")
def dynamic4(tiny4, tmp_path_factory):
    """tiny4's checkpoint exported again with a dynamic-batch ONNX UNet."""
    from ldm3d_edge.export import export_pipeline

    out = tmp_path_factory.mktemp("dynamic") / "artifacts"
    export_pipeline(tiny4[0], out, fmt="both", progress=False, dynamic_batch=True)
    return out


def _latents(pipe, seed=3):
    m = pipe.manifest
    return np.random.default_rng(seed).standard_normal((1, 4, m.height // 8, m.width // 8)).astype(np.float32)


def _reference(checkpoint, latents, ratio):
    from diffusers.callbacks import SDCFGCutoffCallback

    pipe = diffusers.StableDiffusionLDM3DPipeline.from_pretrained(
        str(checkpoint), safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    cb = SDCFGCutoffCallback(cutoff_step_ratio=ratio)
    with torch.no_grad():
        out = pipe(PROMPT, num_inference_steps=STEPS, guidance_scale=GUIDANCE, output_type="np",
                   latents=torch.from_numpy(latents.copy()), callback_on_step_end=cb,
                   callback_on_step_end_tensor_inputs=["prompt_embeds"])
    return out.rgb[0], out.depth[0][..., 0]


def test_the_dynamic_export_records_its_batches_and_keeps_the_ir_static(dynamic4, tiny4):
    import onnx
    import openvino as ov

    m = Pipeline.load(dynamic4, device="openvino:CPU", compile_now=False).manifest
    assert m.unet_batches == (1, 2) and m.unet_batch == 2
    assert Pipeline.load(tiny4[1], device="openvino:CPU", compile_now=False).manifest.unet_batches == (2,)
    graph = onnx.load(str(dynamic4 / "unet" / "model.onnx"), load_external_data=False).graph
    assert all(v.type.tensor_type.shape.dim[0].dim_param == "batch" for v in [*graph.input, *graph.output])
    ir = ov.Core().read_model(str(dynamic4 / "unet" / "openvino_model.xml"))
    assert all(p.get_partial_shape().is_static and p.get_partial_shape()[0].get_length() == 2 for p in ir.inputs)


@pytest.mark.parametrize("ratio,batch_range", [(0.0, False), (0.4, False), (0.4, True)])
def test_cutoff_matches_diffusers_callback(tiny4, dynamic4, ratio, batch_range, monkeypatch):
    """batch_range: the UNet compiled once for batches 1-2, as a full-size UNet is (not the tiny one's two static
    compiles)."""
    from ldm3d_edge.runtime import models

    if batch_range:
        monkeypatch.setattr(models, "RANGE_MIN_BYTES", 0)
    pipe = Pipeline.load(dynamic4, device="openvino:CPU")
    latents = _latents(pipe)
    ref_rgb, ref_depth = _reference(tiny4[0], latents, ratio)
    full = pipe(PROMPT, num_inference_steps=STEPS, guidance_scale=GUIDANCE, latents=latents)
    assert np.abs(full.rgb_float - ref_rgb).max() > 10 * ATOL, "the cut-off must change the image for this test"
    for device in ("openvino:CPU", "onnx:CPU"):
        p = pipe if device == "openvino:CPU" else Pipeline.load(dynamic4, device=device)
        out = p(PROMPT, num_inference_steps=STEPS, guidance_scale=GUIDANCE, latents=latents, guidance_cutoff=ratio)
        rgb_diff, depth_diff = np.abs(out.rgb_float - ref_rgb).max(), np.abs(out.depth - ref_depth).max()
        assert rgb_diff <= ATOL and depth_diff <= ATOL, f"{device}: rgb {rgb_diff:.2e} depth {depth_diff:.2e}"
        # the unguided steps ran at batch 1: the UNet was compiled at that batch, and those steps were faster
        assert any(key[-1] == 1 for key in p.unet._compiled), device
        if device == "openvino:CPU":   # with the range, one model serves both batches: the weights held once
            assert len({id(m) for m in p.unet._compiled.values()}) == (1 if batch_range else 2)
        assert out.info()["guidance_cutoff"] == ratio


def test_cutoff_one_is_plain_guidance_and_static_onnx_falls_back_to_batch_2(tiny4, dynamic4, caplog):
    pipe = Pipeline.load(tiny4[1], device="onnx:CPU")   # exported without --dynamic-batch
    latents = _latents(pipe, seed=8)
    plain = pipe(PROMPT, num_inference_steps=STEPS, guidance_scale=GUIDANCE, latents=latents)
    assert np.array_equal(pipe(PROMPT, num_inference_steps=STEPS, guidance_scale=GUIDANCE, latents=latents,
                               guidance_cutoff=1.0).rgb_float, plain.rgb_float)
    with caplog.at_level(logging.INFO, logger="ldm3d_edge.runtime.base"):
        static = pipe(PROMPT, num_inference_steps=STEPS, guidance_scale=GUIDANCE, latents=latents,
                      guidance_cutoff=0.5)
    assert "static at batch 2" in caplog.text and "--dynamic-batch" in caplog.text
    assert all(len(key) == 2 for key in pipe.unet._compiled)   # never asked for another batch
    dynamic = Pipeline.load(dynamic4, device="onnx:CPU")(PROMPT, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                                                          latents=latents, guidance_cutoff=0.5)
    assert np.abs(static.rgb_float - dynamic.rgb_float).max() <= 1e-4
    assert np.abs(static.rgb_float - plain.rgb_float).max() > 5 * ATOL


def test_guidance_one_runs_batch_1(dynamic4):
    pipe = Pipeline.load(dynamic4, device="onnx:CPU")
    pipe(PROMPT, num_inference_steps=3, guidance_scale=1.0, seed=1)
    assert any(key[-1] == 1 for key in pipe.unet._compiled)


@pytest.mark.parametrize("bad", [-0.1, 1.5, True, "half", float("nan")])
def test_a_bad_cutoff_is_refused(tiny4, bad):
    pipe = Pipeline.load(tiny4[1], device="openvino:CPU", compile_now=False)
    with pytest.raises(InvalidArgumentError, match="guidance cut-off"):
        pipe(PROMPT, num_inference_steps=2, guidance_cutoff=bad)


@pytest.mark.parametrize("batch_range", [False, True])
def test_an_ir_that_cannot_take_batch_1_falls_back_to_batch_2(tiny4, caplog, batch_range, monkeypatch):
    """IRs exported before the batch was traced symbolically refuse the reshape: same image, at batch 2."""
    from ldm3d_edge.runtime import models

    if batch_range:
        monkeypatch.setattr(models, "RANGE_MIN_BYTES", 0)
    pipe = Pipeline.load(tiny4[1], device="openvino:CPU")
    latents = _latents(pipe, seed=4)
    kw = dict(num_inference_steps=4, guidance_scale=GUIDANCE, latents=latents, guidance_cutoff=0.3)
    expected = pipe(PROMPT, **kw).rgb_float
    load = pipe.unet.backend.load

    def refuse_batch_1(path, shapes, as_exported=False, batch_range=None):
        if path == pipe.unet.path and (batch_range is not None or any(s[0] == 1 for s in shapes.values())):
            raise InvalidArgumentError("OpenVINO cannot reshape unet")
        return load(path, shapes, as_exported)

    pipe.unet._compiled.clear()
    pipe.unet.backend.load = refuse_batch_1
    with caplog.at_level(logging.INFO, logger="ldm3d_edge.runtime.base"):
        got = pipe(PROMPT, **kw).rgb_float
        pipe(PROMPT, **kw)
    assert "static at batch 2" in caplog.text
    assert pipe.unet._refused and all(len(key) == 2 for key in pipe.unet._compiled)
    assert np.abs(got - expected).max() <= 1e-4


def test_a_candidate_graph_is_not_replaced_by_the_folders_at_batch_1(dynamic4):
    """The quantization tools install a candidate UNet with use(): the unguided steps must run that graph (at
    batch 2, the prompt twice), not the folder's compiled again for batch 1."""
    pipe = Pipeline.load(dynamic4, device="openvino:CPU")
    m = pipe.manifest
    candidate = pipe.unet.compiled(m.height, m.width)
    pipe.unet.use(candidate, m.height, m.width)
    assert not pipe.unet.runs_batch(1, m.height, m.width)
    pipe(PROMPT, num_inference_steps=3, guidance_scale=GUIDANCE, seed=2, guidance_cutoff=0.3)
    assert list(pipe.unet._compiled.values()) == [candidate]


def test_a_pipeline_loaded_for_unguided_steps_compiles_the_unet_once(dynamic4, monkeypatch):
    """Pipeline.load(unguided_steps=True) (what the bench does for a cut-off preset): a large UNet is compiled
    once, for batches 1-2, before the first image, and the image compiles nothing more."""
    from ldm3d_edge.runtime import models

    monkeypatch.setattr(models, "RANGE_MIN_BYTES", 0)
    loads = []
    pipe = Pipeline.load(dynamic4, device="openvino:CPU", unguided_steps=True)
    load = pipe.unet.backend.load

    def counted(path, shapes, as_exported=False, batch_range=None):
        loads.append((path.parent.name, batch_range))
        return load(path, shapes, as_exported, batch_range)

    pipe.unet.backend.load = counted
    m = pipe.manifest
    assert pipe.unet.compiled(m.height, m.width) is pipe.unet.compiled(m.height, m.width, 1)
    pipe(PROMPT, num_inference_steps=4, guidance_scale=GUIDANCE, seed=5, guidance_cutoff=0.5)
    assert loads == []


def test_a_cutoff_image_from_a_cold_pipeline_compiles_the_unet_once(dynamic4, monkeypatch):
    """`ldm3d generate --speed fast` loads without compiling: its first image compiles a large UNet once, for
    batches 1-2, not for batch 2 and then again for the range."""
    from ldm3d_edge.runtime import models

    monkeypatch.setattr(models, "RANGE_MIN_BYTES", 0)
    pipe = Pipeline.load(dynamic4, device="openvino:CPU", compile_now=False)
    load, loads = pipe.unet.backend.load, []

    def counted(path, shapes, as_exported=False, batch_range=None):
        loads.append((path.parent.name, batch_range))
        return load(path, shapes, as_exported, batch_range)

    pipe.unet.backend.load = counted
    pipe(PROMPT, num_inference_steps=4, guidance_scale=GUIDANCE, seed=5, guidance_cutoff=0.5)
    assert [b for name, b in loads if name == "unet"] == [(1, 2)]
