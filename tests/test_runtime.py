"""Runtime behaviour beyond parity: sizes, devices, outputs, errors, the manifest."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from ldm3d_edge.runtime import (
    DeviceError,
    GenerationCancelled,
    InvalidArgumentError,
    OutputError,
    Pipeline,
    load_depth_png,
    read_manifest,
)
from ldm3d_edge.runtime import constants as C
from ldm3d_edge.runtime.backends import resolve_device
from ldm3d_edge.runtime.depth import split_rgbd, unpack_depth16


@pytest.fixture(scope="module")
def ov(tiny4):
    return Pipeline.load(tiny4[1], device="openvino:CPU")


def test_manifest_describes_the_artifacts(tiny4, tiny6):
    for (_, art), channels in ((tiny4, 4), (tiny6, 6)):
        raw = json.loads((art / C.MANIFEST_FILE).read_text())
        assert raw["vae_channels"] == channels
        assert raw["depth_encoding"] == (C.DEPTH_ENCODING_1CH if channels == 4 else C.DEPTH_ENCODING_PACKED16)
        assert (raw["height"], raw["width"], raw["precision"]) == (64, 64, "fp32")
        assert set(raw["components"]) == set(C.COMPONENTS)
        unet = raw["components"][C.UNET]
        assert {t["name"]: t["shape"] for t in unet["inputs"]} == {
            "sample": [2, 4, 8, 8], "timestep": [2], "encoder_hidden_states": [2, 77, 32]}
        assert unet["outputs"] == [{"name": "out_sample", "shape": [2, 4, 8, 8], "dtype": "float32"}]
        dec = raw["components"][C.VAE_DECODER]["outputs"][0]
        assert dec["shape"] == [1, channels, 64, 64]
        for rel, digest in raw["files"].items():
            assert hashlib.sha256((art / rel).read_bytes()).hexdigest() == digest
        for comp in C.COMPONENTS:
            assert f"{comp}/model.onnx" in raw["files"] and f"{comp}/openvino_model.xml" in raw["files"]
        assert "tokenizer/vocab.json" in raw["files"] and "scheduler/scheduler_config.json" in raw["files"]
        assert raw["versions"]["ldm3d_edge"] and raw["source"]["pipeline"] == "StableDiffusionLDM3DPipeline"


def test_seed_is_deterministic_and_recorded(ov):
    a = ov("a blue cube", num_inference_steps=3, seed=11)
    b = ov("a blue cube", num_inference_steps=3, seed=11)
    c = ov("a blue cube", num_inference_steps=3, seed=12)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    assert a.seed == 11 and np.abs(a.rgb_float - c.rgb_float).max() > 1e-3
    d = ov("a blue cube", num_inference_steps=2)
    assert isinstance(d.seed, int)


def test_openvino_reshapes_to_another_size(ov):
    out = ov("a wide room", num_inference_steps=2, seed=0, height=48, width=96)
    assert out.rgb.shape == (48, 96, 3) and out.depth.shape == (48, 96)
    assert np.isfinite(out.depth).all() and out.rgb_float.std() > 0.01


def test_save_round_trips_depth_at_16_bits(ov, tmp_path):
    out = ov("x", num_inference_steps=2, seed=1)
    paths = out.save(tmp_path / "sub" / "r")
    assert [p.name for p in paths] == ["r_rgb.png", "r_depth.png", "r.json"]
    back = load_depth_png(paths[1])
    assert np.abs(back - out.depth).max() <= 0.5 / 65535 + 1e-7
    assert json.loads(paths[2].read_text())["device"] == "openvino:CPU"


def test_nan_from_the_decoder_raises_and_saves_nothing(tiny4, tmp_path):
    pipe = Pipeline.load(tiny4[1], device="openvino:CPU")
    real = pipe.vae_decoder

    class Broken:
        def __call__(self, latents, h, w):
            img = real(latents, h, w)
            img[0, 0, 3, 3] = np.nan
            return img

        def compiled(self, h, w):
            return real.compiled(h, w)

    pipe.vae_decoder = Broken()
    with pytest.raises(OutputError, match="NaN"):
        pipe("x", num_inference_steps=2, seed=0).save(tmp_path / "r")
    assert not any(tmp_path.iterdir())


def test_split_rgbd_rejects_inf():
    img = np.zeros((1, 4, 8, 8), np.float32)
    img[0, 1, 0, 0] = np.inf
    with pytest.raises(OutputError):
        split_rgbd(img, C.DEPTH_ENCODING_1CH)


def test_unpack_depth16_reads_high_and_low_bytes():
    values = np.array([0, 1, 255, 256, 257, 40000, 65535])
    hi, lo = values // 256, values % 256
    ch = np.stack([np.zeros_like(hi), hi, lo], axis=-1)[None].astype(np.float32) / 255.0
    np.testing.assert_allclose(unpack_depth16(ch)[0], values / 65535.0, atol=1e-7)


def test_callback_sees_every_step_and_can_cancel(ov):
    seen = []
    ov("x", num_inference_steps=4, seed=0, callback=lambda i, t, lat: seen.append((i, t, lat.shape)))
    assert [s[0] for s in seen] == [0, 1, 2, 3] and seen[0][2] == (1, 4, 8, 8)
    with pytest.raises(GenerationCancelled, match="step 2"):
        ov("x", num_inference_steps=4, seed=0, callback=lambda i, t, lat: i < 1)


@pytest.mark.parametrize("kwargs,needle", [
    (dict(latents=np.zeros((1, 4, 4, 4), np.float32)), "latents must be a numpy array of shape"),
    (dict(latents=np.full((1, 4, 8, 8), np.nan, np.float32)), "NaN"),
    (dict(num_inference_steps=0), "steps"), (dict(num_inference_steps=2.5), "steps"),
    (dict(guidance_scale=float("inf")), "guidance"), (dict(seed=-1), "seed"), (dict(height=30), "height"),
    (dict(scheduler="karras"), "unknown scheduler"),
])
def test_bad_arguments_raise_clear_errors(ov, kwargs, needle):
    with pytest.raises(InvalidArgumentError, match=needle):
        ov("x", **{"num_inference_steps": 2, **kwargs})


def test_device_resolution():
    both = (C.FORMAT_ONNX, C.FORMAT_OPENVINO)
    assert resolve_device("auto", both) in {("openvino", "CPU"), ("openvino", "GPU"), ("onnx", "CUDA")}
    assert resolve_device("CPU", both) == ("openvino", "CPU")
    assert resolve_device("CPU", (C.FORMAT_ONNX,)) == ("onnx", "CPU")
    assert resolve_device("auto", (C.FORMAT_ONNX,))[0] == "onnx"
    assert resolve_device("onnx:cpu", both) == ("onnx", "CPU")
    with pytest.raises(DeviceError, match="only has onnx"):
        resolve_device("openvino:CPU", (C.FORMAT_ONNX,))
    for bad in ("", "TPU", "foo:CPU", "onnx:GPU"):
        with pytest.raises(DeviceError):
            resolve_device(bad, both)


@pytest.mark.parametrize("ov_devices,providers,formats,want", [
    (["CPU", "GPU.0"], ["CUDAExecutionProvider", "CPUExecutionProvider"], "both", ("openvino", "GPU")),
    (["CPU"], ["CUDAExecutionProvider", "CPUExecutionProvider"], "both", ("onnx", "CUDA")),
    (["CPU"], ["CPUExecutionProvider"], "both", ("openvino", "CPU")),
    (["CPU", "GPU"], ["CUDAExecutionProvider"], "onnx", ("onnx", "CUDA")),      # no IR: the GPU is not OpenVINO's
    (["CPU", "GPU"], ["CPUExecutionProvider"], "onnx", ("onnx", "CPU")),
    (["CPU"], ["CUDAExecutionProvider"], "openvino", ("openvino", "CPU")),     # no ONNX files: CUDA is out
])
def test_auto_prefers_intel_gpu_then_cuda_then_cpu(monkeypatch, ov_devices, providers, formats, want):
    """The documented order of device="auto", with the machine's device lists mocked."""
    from ldm3d_edge.runtime import backends

    monkeypatch.setattr(backends, "_ov_devices", lambda: ov_devices)
    monkeypatch.setattr(backends, "_ort_providers", lambda: providers)
    fmts = {"both": (C.FORMAT_ONNX, C.FORMAT_OPENVINO), "onnx": (C.FORMAT_ONNX,), "openvino": (C.FORMAT_OPENVINO,)}
    assert resolve_device("auto", fmts[formats]) == want


def test_cuda_without_onnxruntime_gpu_is_a_clear_error(tiny4):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DeviceError, match="onnxruntime-gpu"):
        Pipeline.load(tiny4[1], device="CUDA")


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_single_format_export_loads_and_generates(tiny4, tmp_path, fmt):
    from ldm3d_edge.export import export_pipeline

    art = tmp_path / fmt
    export_pipeline(tiny4[0], art, fmt=fmt, progress=False)
    m = read_manifest(art)
    assert m.formats == (fmt,)
    other = C.OV_XML_FILE if fmt == "onnx" else C.ONNX_FILE
    assert not list(art.rglob(other)) and not list(art.rglob(".*"))
    out = Pipeline.load(art)("x", num_inference_steps=2, seed=0)
    assert out.device.startswith(fmt)


def test_fp16_export_is_smaller_and_close(tiny4, tmp_path):
    from ldm3d_edge.export import export_pipeline

    art = tmp_path / "fp16"
    export_pipeline(tiny4[0], art, fmt="both", fp16=True, progress=False)
    assert read_manifest(art).precision == "fp16"
    for fmt, name in (("onnx", C.ONNX_FILE), ("openvino", C.OV_BIN_FILE)):
        assert (art / C.UNET / name).stat().st_size < 0.7 * (tiny4[1] / C.UNET / name).stat().st_size
        ref = Pipeline.load(tiny4[1], device=f"{fmt}:CPU")("x", num_inference_steps=3, seed=0)
        half = Pipeline.load(art, device=f"{fmt}:CPU")("x", num_inference_steps=3, seed=0)
        assert np.abs(half.rgb_float - ref.rgb_float).mean() < 0.02
        assert np.abs(half.depth - ref.depth).mean() < 0.02


def test_compile_cache_keeps_precisions_apart(tiny4, tmp_path, cpu_bf16):
    """OpenVINO 2026.4 keys its CPU cache blob without the inference precision: a text encoder cached in f32 and
    then loaded with the bf16 hint returned NaN. The backend keeps one cache folder per precision."""
    from ldm3d_edge.runtime import Pipeline

    cache = tmp_path / "ov-cache"
    outs = {}
    for precision in ("f32", "bf16"):
        pipe = Pipeline.load(tiny4[1], device="openvino:CPU", precision=precision, cache_dir=cache)
        outs[precision] = pipe("a red cube", num_inference_steps=2, seed=1)
        ran = pipe.unet.compiled(64, 64).native.get_property("INFERENCE_PRECISION_HINT")
        assert ran.get_type_name() == ("bf16" if precision == "bf16" and cpu_bf16 else "f32"), (precision, ran)
    assert sorted(p.name for p in cache.iterdir()) == ["bf16", "f32"]
    assert np.isfinite(outs["bf16"].rgb_float).all()
    diff = np.abs(outs["bf16"].rgb_float - outs["f32"].rgb_float).mean()
    if cpu_bf16:
        assert 0 < diff < 0.05, diff      # bf16 really ran, and close to f32
    else:
        assert diff == 0, diff            # OpenVINO ran f32: the hint has nothing to change


def test_cached_model_is_imported_by_path_and_a_changed_file_recompiles(tiny4, tmp_path):
    """At its export shapes an OpenVINO part compiles from the file path, so a warm cache is imported without
    reading the IR; the same outputs as a reshaped/read model, and new weights at the same path are noticed."""
    import shutil

    from ldm3d_edge.runtime import Pipeline

    art = tmp_path / "art"
    shutil.copytree(tiny4[1], art)
    cache = tmp_path / "ov-cache"
    ref = Pipeline.load(tiny4[1], device="openvino:CPU", cache_dir="")("a red cube", num_inference_steps=2, seed=1)
    for _ in range(2):   # cold, then warm from the cache
        out = Pipeline.load(art, device="openvino:CPU", cache_dir=cache)("a red cube", num_inference_steps=2, seed=1)
        np.testing.assert_allclose(out.rgb_float, ref.rgb_float, atol=1e-5)
    assert len(list((cache / "f32").glob("*/*.blob"))) >= 3
    z = np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)
    before = Pipeline.load(art, device="openvino:CPU", cache_dir=cache).vae_decoder(z, 64, 64)
    other = tmp_path / "other"      # another model's VAE decoder, same architecture, copied over the first
    from ldm3d_edge.export import export_pipeline
    from ldm3d_edge.export.random_model import build_tiny_pipeline

    export_pipeline(build_tiny_pipeline(tmp_path / "ck", seed=7), other, fmt="openvino", progress=False)
    for name in (C.OV_XML_FILE, C.OV_BIN_FILE):
        shutil.copy(other / C.VAE_DECODER / name, art / C.VAE_DECODER / name)
    # the folder's manifest no longer describes the copied files: verification would refuse it (tests/test_verify.py)
    after = Pipeline.load(art, device="openvino:CPU", cache_dir=cache, verify=False).vae_decoder(z, 64, 64)
    expected = Pipeline.load(other, device="openvino:CPU", cache_dir="").vae_decoder(z, 64, 64)
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after, expected, atol=1e-5)


def test_new_weights_under_an_unchanged_xml_are_not_served_from_the_cache(tiny4, tmp_path):
    """Only the .bin rewritten (as a git checkout of other weights or a re-shipped model does): OpenVINO's own cache
    key missed it, at the export shape (compiled from the path) and reshaped (read, then compiled)."""
    import shutil

    from ldm3d_edge.export import export_pipeline
    from ldm3d_edge.export.random_model import build_tiny_pipeline
    from ldm3d_edge.runtime import Pipeline

    art, cache = tmp_path / "art", tmp_path / "ov-cache"
    shutil.copytree(tiny4[1], art)
    other = tmp_path / "other"      # the same architecture, other weights
    export_pipeline(build_tiny_pipeline(tmp_path / "ck", seed=7), other, fmt="openvino", progress=False)
    bins = [d / C.VAE_DECODER / C.OV_BIN_FILE for d in (art, other)]
    assert bins[0].stat().st_size == bins[1].stat().st_size and bins[0].read_bytes() != bins[1].read_bytes()
    z = {s: np.random.default_rng(0).standard_normal((1, 4, s[0] // 8, s[1] // 8)).astype(np.float32)
         for s in ((64, 64), (64, 128))}
    for shape in z:             # warm the cache with the first weights, at the export shape and reshaped
        Pipeline.load(art, device="openvino:CPU", cache_dir=cache).vae_decoder(z[shape], *shape)
    shutil.copy(other / C.VAE_DECODER / C.OV_BIN_FILE, art / C.VAE_DECODER / C.OV_BIN_FILE)
    for shape in z:
        got = Pipeline.load(art, device="openvino:CPU", cache_dir=cache, verify=False).vae_decoder(z[shape], *shape)
        want = Pipeline.load(other, device="openvino:CPU", cache_dir="").vae_decoder(z[shape], *shape)
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=str(shape))


def test_onnx_cpu_sessions_share_one_arena_and_give_the_same_output(tiny4, monkeypatch):
    """ONNX Runtime CPU sessions use one process-wide arena that grows by what is asked (what it saves at full size:
    docs/benchmarks.md, Memory); the output is the one of sessions with their own default arenas."""
    from ldm3d_edge.runtime.backends import onnxruntime_backend

    def env_allocators(pipe):
        opts = pipe.unet.compiled(pipe.manifest.height, pipe.manifest.width)._session.get_session_options()
        try:
            return opts.get_session_config_entry("session.use_env_allocators")
        except RuntimeError:          # not set
            return None

    pipe = Pipeline.load(tiny4[1], device="onnx:CPU")
    assert env_allocators(pipe) == "1"
    shared = pipe("a red cube", num_inference_steps=3, seed=2)
    monkeypatch.setattr(onnxruntime_backend, "shared_cpu_arena", lambda: False)
    own = Pipeline.load(tiny4[1], device="onnx:CPU")
    assert env_allocators(own) is None
    ref = own("a red cube", num_inference_steps=3, seed=2)
    assert np.array_equal(shared.rgb, ref.rgb) and np.array_equal(shared.depth, ref.depth)


def test_the_vae_decoder_frees_its_buffers_after_each_image_and_decodes_the_same_again(ov, monkeypatch):
    from ldm3d_edge.runtime.backends import openvino_backend

    released = []
    real = openvino_backend._OVModel.release_memory
    monkeypatch.setattr(openvino_backend._OVModel, "release_memory",
                        lambda self: (released.append(self), real(self))[1])
    first = ov("a red cube", num_inference_steps=2, seed=4)
    second = ov("a red cube", num_inference_steps=2, seed=4)
    decoder = ov.vae_decoder.compiled(ov.manifest.height, ov.manifest.width)
    assert released == [decoder, decoder]                      # the decoder only, once per image
    assert np.array_equal(first.rgb, second.rgb) and np.array_equal(first.depth, second.depth)
