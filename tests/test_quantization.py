"""INT8 variants: each mode writes a loadable artifact folder whose graphs really hold INT8, whose manifest says
how it was made, and whose output stays near the float model's; the quality report parses back."""

import contextlib
import json

import numpy as np
import pytest

pytest.importorskip("nncf")
pytest.importorskip("skimage")

from ldm3d_edge.cli import main  # noqa: E402
from ldm3d_edge.quantization import quality  # noqa: E402
from ldm3d_edge.runtime import Pipeline, read_manifest  # noqa: E402

PROMPT = "a red sphere in front of a blue cube"


@pytest.fixture(scope="module")
def int8(tiny4, tmp_path_factory):
    """mode -> INT8 artifact folder, both formats, calibrated on 8 UNet calls."""
    from ldm3d_edge.quantization import quantize_artifacts

    root = tmp_path_factory.mktemp("int8")
    out = {}
    for mode in ("weights", "hybrid", "full"):
        quantize_artifacts(tiny4[1], root / mode, mode=mode, samples=8, steps=4, progress=False)
        out[mode] = root / mode
    return out


def ov_ops(path):
    import openvino as ov

    return [op.get_type_name() for op in ov.Core().read_model(str(path / "unet" / "openvino_model.xml")).get_ops()]


def ov_int8_constants(path, part="unet"):
    import openvino as ov

    model = ov.Core().read_model(str(path / part / "openvino_model.xml"))
    return sum(op.get_type_name() == "Constant" and op.get_element_type().get_type_name() in ("i8", "u8")
               for op in model.get_ops())


def onnx_ops(path, part="unet"):
    import onnx

    return [n.op_type for n in onnx.load(str(path / part / "model.onnx"), load_external_data=False).graph.node]


@pytest.mark.parametrize("mode", ["weights", "hybrid", "full"])
def test_manifest_records_mode_and_calibration(int8, mode):
    m = read_manifest(int8[mode])
    q = m.raw["quantization"]
    assert m.precision == f"int8-{mode}" and q["mode"] == mode
    assert set(m.formats) == {"onnx", "openvino"}
    assert q["versions"]["nncf"] and q["versions"]["onnxruntime"]
    if mode == "weights":
        assert q["calibration"] is None
    else:
        assert q["calibration"]["unet_calls"] == 8 and q["calibration"]["prompts"] >= 10
    assert q["parts"]["unet"] == {"openvino": mode, "onnx": "dynamic" if mode == "weights" else mode}


def test_unet_graphs_really_hold_int8(int8, tiny4):
    float_ops = ov_ops(tiny4[1])
    assert "FakeQuantize" not in float_ops and ov_int8_constants(tiny4[1]) == 0
    # weights: INT8 weight constants, activations untouched
    assert ov_int8_constants(int8["weights"]) >= 30 and "FakeQuantize" not in ov_ops(int8["weights"])
    assert "DynamicQuantizeLinear" in onnx_ops(int8["weights"])
    # hybrid: activations quantized in front of the MatMuls only; full: in front of convolutions as well
    n_hybrid, n_full = ov_ops(int8["hybrid"]).count("FakeQuantize"), ov_ops(int8["full"]).count("FakeQuantize")
    assert 0 < n_hybrid < n_full
    assert ov_int8_constants(int8["hybrid"]) > 0          # the convolutions' compressed weights
    hybrid_onnx, full_onnx = onnx_ops(int8["hybrid"]), onnx_ops(int8["full"])
    assert 0 < hybrid_onnx.count("QuantizeLinear") < full_onnx.count("QuantizeLinear")
    # the text encoder has INT8 weights in every mode; the ONNX VAE decoder stays float
    for mode in int8:
        assert ov_int8_constants(int8[mode], "text_encoder") > 0
        assert "QuantizeLinear" not in onnx_ops(int8[mode], "vae_decoder")


def test_hybrid_keeps_conv_in_and_conv_out_float(int8):
    import openvino as ov

    model = ov.Core().read_model(str(int8["hybrid"] / "unet" / "openvino_model.xml"))
    convs = {op.get_friendly_name(): op for op in model.get_ops() if op.get_type_name() == "Convolution"}
    for name in ("conv_in", "conv_out"):
        (conv,) = [op for n, op in convs.items() if f"/{name}/" in n]
        weight = conv.input_value(1).get_node()
        assert weight.get_type_name() == "Constant" and weight.get_element_type().get_type_name() == "f32", name


@pytest.mark.parametrize("mode", ["weights", "hybrid", "full"])
@pytest.mark.parametrize("device", ["openvino:CPU", "onnx:CPU"])
def test_int8_folder_generates_near_the_float_model(int8, tiny4, mode, device):
    ref = Pipeline.load(tiny4[1], device=device)(PROMPT, num_inference_steps=4, seed=3)
    out = Pipeline.load(int8[mode], device=device)(PROMPT, num_inference_steps=4, seed=3)
    assert out.rgb.shape == ref.rgb.shape and np.isfinite(out.depth).all()
    assert not np.array_equal(out.rgb_float, ref.rgb_float), "an INT8 model that matches exactly is not INT8"
    err = quality.rgb_errors(out.rgb_float, ref.rgb_float)
    assert err["rgb_psnr_db"] > 25, err


def test_quality_metrics_on_known_differences():
    ref = np.linspace(0.2, 1.0, 100).reshape(10, 10)
    e = quality.depth_errors(ref * 1.1, ref)
    assert e["depth_absrel"] == pytest.approx(0.1) and e["depth_delta1"] == 1.0
    assert quality.depth_errors(ref * 1.3, ref)["depth_delta1"] == 0.0
    rgb = np.random.default_rng(0).random((16, 16, 3))
    assert quality.rgb_errors(rgb, rgb)["rgb_ssim"] == pytest.approx(1.0)
    assert quality.rgb_errors(np.clip(rgb + 0.1, 0, 1), rgb)["rgb_psnr_db"] == pytest.approx(20, abs=0.6)
    assert quality.prompted_colours("a red sphere in front of a blue cube") == "red"
    assert quality.prompted_colours("360 view of a room with a red sphere and a blue cube") == {"red", "blue"}


def test_quality_report_files_parse_back(int8, tiny4, tmp_path, capsys):
    from PIL import Image

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# comment\na red sphere on the left\n\na green cube\n")
    out = tmp_path / "report"
    assert main(["quality", str(tiny4[1]), str(int8["full"]), "--prompts", str(prompts), "--seeds", "2",
                 "--steps", "3", "--out", str(out)]) == 0
    r = json.loads((out / "quality.json").read_text())
    assert r["samples"] == 4 and r["test"]["precision"] == "int8-full"
    assert [row["prompt"] for row in r["per_sample"]] == ["a red sphere on the left"] * 2 + ["a green cube"] * 2
    assert np.mean([row["rgb_psnr_db"] for row in r["per_sample"]]) == pytest.approx(r["summary"]["rgb_psnr_db"])
    assert r["adherence_judged"] == 4
    md = (out / "quality.md").read_text()
    assert "| depth AbsRel |" in md and md.count("| a green cube |") == 2
    sheet = np.asarray(Image.open(out / "quality.png"))
    assert sheet.shape == (4 * 2 * 64, 3 * 64, 3)        # 4 samples x (RGB, depth) rows, ref | test | heat map
    assert sheet[:, 128:].std() > 0
    assert "RGB PSNR" in capsys.readouterr().out


def test_bf16_against_f32_is_one_folder_at_two_precisions(tiny4, tmp_path, cpu_bf16):
    r = quality.compare(tiny4[1], tiny4[1], ["a blue cone"], seeds=1, steps=3, test_precision="bf16", progress=False)
    assert r["test"]["inference_precision"] == "bf16" and r["reference"]["precision"] == "fp32"
    psnr = r["summary"]["rgb_psnr_db"]
    # bf16 (8 mantissa bits) is close to f32 but not equal; identical outputs read the metric's cap, 120 dB
    assert (25 < psnr < 90) if cpu_bf16 else psnr >= 100, (cpu_bf16, psnr)


@pytest.mark.parametrize("args, needle", [
    (["--mode", "int4"], "invalid choice"),
    (["--samples", "0"], "at least one sample"),
    (["--calibration-prompts", "/nonexistent/prompts.txt"], "cannot read the calibration prompts"),
])
def test_quantize_bad_arguments(tiny4, tmp_path, capsys, args, needle):
    with pytest.raises(SystemExit) if "invalid choice" in needle else contextlib.nullcontext():
        code = main(["quantize", str(tiny4[1]), str(tmp_path / "q")] + args)
        assert code == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "q").exists(), "a failed quantization left a folder behind"


def test_quantize_refuses_int8_input_and_existing_output(int8, tiny4, tmp_path, capsys):
    assert main(["quantize", str(int8["weights"]), str(tmp_path / "again")]) == 2
    assert "already quantized" in capsys.readouterr().err
    assert main(["quantize", str(tiny4[1]), str(int8["weights"]), "--mode", "weights"]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert main(["quantize", str(tmp_path / "missing"), str(tmp_path / "x")]) == 2
    assert "not found" in capsys.readouterr().err



def test_compiled_kernels_really_run_int8(int8, tiny4):
    """OpenVINO's runtime model says which kernels compute in i8/u8: none for float and weight-only INT8 (its
    weights are decompressed), the MatMuls for hybrid, everything for full."""
    import openvino as ov

    from ldm3d_edge.quantization.openvino_int8 import kernel_precisions

    core = ov.Core()

    def share(folder):
        compiled = core.compile_model(core.read_model(str(folder / "unet" / "openvino_model.xml")), "CPU",
                                      {"INFERENCE_PRECISION_HINT": "f32"})
        return kernel_precisions(compiled)

    assert share(tiny4[1])["int8_flop_share"] == 0 and share(int8["weights"])["int8_flop_share"] == 0
    hybrid, full = share(int8["hybrid"]), share(int8["full"])
    assert 0.1 < hybrid["int8_flop_share"] < 0.9 and "Convolution:f32" in hybrid["layers"]
    assert full["int8_flop_share"] > 0.95
    assert sum(hybrid["gflops_by_precision"].values()) == pytest.approx(sum(full["gflops_by_precision"].values()))


def test_a_model_calibrates_on_its_own_prompts(tiny4, tmp_path):
    """A checkpoint's calibration_prompts.txt travels through export and quantize, which calibrates on it unless
    told otherwise; the manifest says which prompts were used. Its prompt_completion.json (runtime/prompts.py)
    travels the same way, so an INT8 folder reads short prompts as its float one does."""
    import hashlib
    import shutil

    from ldm3d_edge.embedded import default_model_dir
    from ldm3d_edge.export import export_pipeline
    from ldm3d_edge.quantization import quantize_artifacts
    from ldm3d_edge.quantization.calibration import DEFAULT_PROMPTS_FILE, read_prompts

    ckpt = tmp_path / "checkpoint"
    shutil.copytree(tiny4[0], ckpt)
    own = ["a red cube on a grey floor", "a blue sphere before a white wall", "a green cone"]
    (ckpt / "calibration_prompts.txt").write_text("# this model's scenes\n" + "\n".join(own) + "\n")
    grammar = (default_model_dir() / "prompt_completion.json").read_text()
    (ckpt / "prompt_completion.json").write_text(grammar)
    art = export_pipeline(ckpt, tmp_path / "art", fmt="openvino", progress=False)
    assert (tmp_path / "art" / "calibration_prompts.txt").read_text() == (ckpt / "calibration_prompts.txt").read_text()
    assert "calibration_prompts.txt" in art["files"]

    def calibration(out):
        return read_manifest(out).raw["quantization"]["calibration"]

    quantize_artifacts(tmp_path / "art", tmp_path / "own", mode="hybrid", samples=4, steps=2, progress=False)
    c = calibration(tmp_path / "own")
    assert c["prompts"] == 3 and c["prompts_file"].endswith("calibration_prompts.txt")
    assert c["prompts_sha256"] == hashlib.sha256("\n".join(own).encode()).hexdigest()
    assert (tmp_path / "own" / "calibration_prompts.txt").is_file()   # an INT8 folder carries what it was made on
    assert (tmp_path / "art" / "prompt_completion.json").read_text() == grammar == \
        (tmp_path / "own" / "prompt_completion.json").read_text()
    assert "prompt_completion.json" in read_manifest(tmp_path / "own").files

    quantize_artifacts(tmp_path / "art", tmp_path / "general", mode="hybrid", samples=4, steps=2, progress=False,
                       prompts_file=DEFAULT_PROMPTS_FILE)
    general = read_prompts(DEFAULT_PROMPTS_FILE)
    assert calibration(tmp_path / "general")["prompts"] == len(general) != 3


def test_the_embedded_model_ships_its_scene_captions():
    from ldm3d_edge.embedded import default_model_dir, shipped_artifacts
    from ldm3d_edge.quantization.calibration import model_prompts_file, read_prompts

    for folder in (default_model_dir(), shipped_artifacts()):
        assert folder is not None
        prompts = read_prompts(model_prompts_file(folder))
        assert len(prompts) >= 10 and all(" floor " in p for p in prompts)   # its scene captions
    checked = set(read_prompts(quality.DEFAULT_PROMPTS_FILE))
    assert not checked & set(prompts)   # calibration and the quality check never share a prompt
