"""INT8 that keeps the depth: the sensitivity report finds a layer whose quantization is broken, --mode auto meets
a loose depth bound (recording what it chose) and refuses one it cannot meet, calibration follows a speed preset."""

import json

import numpy as np
import pytest

pytest.importorskip("nncf")
pytest.importorskip("skimage")

from ldm3d_edge.cli import main  # noqa: E402
from ldm3d_edge.runtime import Pipeline, read_manifest  # noqa: E402

PROMPTS = ["a red sphere in front of a blue cube", "a green cone on a grey floor"]


@pytest.fixture(scope="module")
def float_pipe(tiny4):
    return Pipeline.load(tiny4[1], device="openvino:CPU", precision="f32")


def test_groups_follow_the_module_path():
    from ldm3d_edge.quantization.sensitivity import group_of

    name = "/m/down_blocks.1/attentions.0/transformer_blocks.0/attn2/to_k/MatMul"
    assert group_of(name) == "down_blocks.1/attentions.0"
    assert group_of(name, by="type") == "cross-attention"
    assert group_of("/m/conv_in/Conv/WithoutBiases") == "conv_in"
    assert group_of("/m/mid_block/resnets.1/conv2/Conv", by="type") == "resnet convolutions"
    assert group_of("/m/time_embedding/linear_1/Gemm/WithoutBiases", by="type") == "time embedding"
    assert group_of("Constant_123") == "other"


def _break(model, group):
    """Shrink the ranges of every quantizer on `group` 100x: its layers see clipped inputs and weights, the kind
    of wrong scale a bad calibration gives."""
    import openvino.opset13 as ops

    from ldm3d_edge.quantization.sensitivity import quantizers

    for fq in quantizers(model)[group]:
        for port in (1, 2, 3, 4):
            data = fq.input_value(port).get_node().get_data() * 0.01
            fq.input(port).replace_source_output(ops.constant(data.astype(np.float32)).output(0))
    model.validate_nodes_and_infer_types()
    return model


def test_sensitivity_ranks_a_broken_layer_first(float_pipe):
    import openvino as ov

    from ldm3d_edge.quantization import calibration as cal
    from ldm3d_edge.quantization import openvino_int8 as Q
    from ldm3d_edge.quantization import sensitivity as S

    records = cal.collect_unet_inputs(float_pipe, PROMPTS, 8, 4, progress=False)
    quantized = Q.unet_full(ov.Core().read_model(str(float_pipe.unet.path)), records, len(records))
    groups = S.quantizers(quantized)
    assert {"conv_in", "conv_out"} <= set(groups) and len(groups) >= 6
    check = S.DepthCheck(float_pipe, PROMPTS, 1, 4)
    honest = S.rank(quantized, check, progress=False)
    victim = honest["groups"][-1]["group"]            # the least sensitive group, broken on purpose
    report = S.rank(_break(quantized, victim), check, progress=False)
    ranked = [r["group"] for r in report["groups"]]
    assert ranked[0] == victim, ranked
    assert report["groups"][0]["depth_absrel"] > 3 * honest["groups"][-1]["depth_absrel"]
    assert "| 1 | " + victim in S.markdown(report)
    # the check measures against the float model: the float UNet itself scores zero
    assert check.score(check.float_unet)["depth_absrel"] == 0


def test_sensitivity_cli_writes_a_ranked_report(tiny4, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["quantize", str(tiny4[1]), str(out), "--sensitivity", "--by", "type", "--samples", "8",
                 "--steps", "4", "--check-prompts", "2", "--check-seeds", "1"]) == 0
    r = json.loads((out / "sensitivity.json").read_text())
    values = [g["depth_absrel"] for g in r["groups"]]
    assert r["by"] == "type" and values == sorted(values, reverse=True) and len(values) >= 5
    assert all(g["layers"] >= 0 and g["quantizers"] >= 1 for g in r["groups"])
    assert (out / "sensitivity.md").read_text().count("\n| ") == len(values) + 1
    assert "most sensitive" in capsys.readouterr().out


def test_auto_meets_a_loose_bound_and_records_its_choice(tiny4, tmp_path):
    from ldm3d_edge.quantization import quantize_artifacts
    from ldm3d_edge.runtime.schedulers import create_scheduler

    out = tmp_path / "auto"
    quantize_artifacts(tiny4[1], out, mode="auto", max_depth_error=0.5, samples=8, steps=4, check_prompts=2,
                       check_seeds=1, speed="balanced", progress=False)
    m = read_manifest(out)
    q = m.raw["quantization"]
    au = q["auto"]
    assert m.precision == "int8-auto" and au["max_depth_error"] == 0.5
    # by default the check must read under 2/3 of the bound: the chosen model's error elsewhere runs above it
    assert au["check_margin"] == pytest.approx(2 / 3) and au["check_bound"] == pytest.approx(0.5 * 2 / 3)
    assert au["depth_absrel"] <= au["check_bound"] and au["chosen"] == au["tried"][-1]["name"] == "full"
    assert au["int8_flop_share"] > 0.5 and au["ignored_scope"] == [] and q["float_groups"] == au["float_groups"]
    # calibrated on the preset's sampler: its first 8 of 20 DDIM timesteps
    sched = create_scheduler(json.loads((m.root / "scheduler" / "scheduler_config.json").read_text()), "ddim")
    sched.set_timesteps(20)
    assert q["calibration"]["speed"] == "balanced" and q["calibration"]["steps_per_prompt"] == 20
    assert set(q["calibration"]["timesteps"]) == {int(t) for t in sched.timesteps[:8]}
    ref = Pipeline.load(tiny4[1], device="openvino:CPU")("a red cube", num_inference_steps=4, seed=0)
    test = Pipeline.load(out, device="openvino:CPU")("a red cube", num_inference_steps=4, seed=0)
    assert np.mean(np.abs(test.depth - ref.depth)) < 0.1


def test_auto_refuses_a_bound_it_cannot_meet(tiny4, tmp_path, capsys):
    out = tmp_path / "never"
    code = main(["quantize", str(tiny4[1]), str(out), "--mode", "auto", "--max-depth-error", "1e-9",
                 "--samples", "8", "--steps", "2", "--check-prompts", "1", "--check-seeds", "1",
                 "--format", "openvino"])
    err = capsys.readouterr().err
    assert code == 2 and "no INT8 configuration keeps the mean depth AbsRel within 1e-09" in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("flag, value", [("--check-margin", "1.5"), ("--check-margin", "0"),
                                         ("--max-depth-error", "2")])
def test_auto_refuses_a_bad_bound_before_calibrating(tiny4, tmp_path, capsys, flag, value):
    out = tmp_path / "bad"
    code = main(["quantize", str(tiny4[1]), str(out), "--mode", "auto", flag, value, "--format", "openvino"])
    err = capsys.readouterr().err
    assert code == 2 and f"{flag} must be" in err and "Traceback" not in err and not out.exists()
