"""`ldm3d bench`: the quick mode runs every CPU variant (so the benchmark code never rots) and its outputs parse
back with the numbers they claim; the option checks and the roofline arithmetic hold."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ldm3d_edge.bench.bench import BenchOptions, roofline
from ldm3d_edge.bench.variants import DEFAULT_VARIANTS, VARIANTS, parse_variants
from ldm3d_edge.cli import main
from ldm3d_edge.runtime.errors import InvalidArgumentError


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("nncf")
    root = tmp_path_factory.mktemp("bench")
    rc = main(["bench", "--quick", "--out", str(root / "out"), "--work", str(root / "work")])
    return rc, root / "out"


def test_quick_bench_runs_every_cpu_variant(quick):
    rc, out = quick
    assert rc == 0
    r = json.loads((out / "bench.json").read_text())
    assert list(r["variants"]) == DEFAULT_VARIANTS["CPU"]
    assert r["options"]["config"] == "tiny" and r["options"]["steps"] == 2
    for name, v in r["variants"].items():
        assert v["rounds_ok"] == 2, (name, v["errors"])
        runs = r["runs"][name]
        assert all(len(run["unet_steps_s"]) == 2 for run in runs)      # one timing per denoising step
        for key in ("text_encoder_s", "unet_step_s", "vae_decode_s", "e2e_s"):
            s = v[key]
            assert 0 < s["min"] <= s["median"] <= s["max"]
        # end to end covers its parts
        assert v["e2e_s"]["median"] >= v["unet_step_s"]["median"]
        assert v["start_cold_s"] > 0 and v["start_warm_s"] > 0 and 0 < v["peak_rss_gb"] < 8
        assert v["model_bytes"] > 0
        assert np.isfinite(runs[0]["depth_range"]).all()
        # every ratio is diffusers FP32's median over this variant's, for every part it reports
        base = r["variants"]["torch"]
        assert set(v["speedup"]) >= {"unet_step_s", "e2e_s"}
        for key, ratio in v["speedup"].items():
            assert ratio == pytest.approx(base[key]["median"] / v[key]["median"]), (name, key)
        # the same ratio taken round by round, and whether the row can be quoted
        same = [b[key] / a[key] for a, b in zip(runs, r["runs"]["torch"]) for key in ["unet_step_s"]]
        assert v["speedup_same_round"]["unet_step_s"] == pytest.approx(float(np.median(same)))
        assert all(run["steal_pct"] is not None and 0 <= run["steal_pct"] <= 100 for run in runs)
        assert isinstance(v["flags"], list)
    # INT8 folders are smaller than the float ones, and the OpenVINO INT8 UNets really run i8/u8 kernels
    v = r["variants"]
    assert v["ov-int8-full"]["model_bytes"] < v["ov-fp32"]["model_bytes"]
    assert v["ort-int8"]["model_bytes"] < v["ort-fp32"]["model_bytes"]
    assert v["ov-int8-full"]["unet_kernels"]["int8_flop_share"] > 0.9
    assert v["ov-fp32"]["unet_kernels"]["int8_flop_share"] == 0
    # the malloc-tuned row ran with its environment
    assert v["torch-malloc"]["env"]["MALLOC_MMAP_MAX_"] == "0"


def test_quick_bench_roofline_and_report(quick):
    _, out = quick
    r = json.loads((out / "bench.json").read_text())
    f = r["flops"]["flops"]
    assert f["unet"] > f["text_encoder"] > 0 and f["vae_decoder"] > 0
    assert {"FP32", "BF16", "INT8"} <= set(r["peaks"])
    for v in r["variants"].values():
        rf = v["roofline"]["unet"]
        assert rf["gflops_per_s"] == pytest.approx(f["unet"] / v["unet_step_s"]["median"] / 1e9)
        assert 0 < rf["fraction_of_peak"]
    assert r["machine"]["cores"] >= 1 and "openvino" in r["machine"]
    md = (out / "bench.md").read_text()
    for name in r["variants"]:
        assert f"| {name} |" in md
    assert "## Roofline" in md and "## Goals" in md
    assert "CPU steal over the whole run" in md and "Matmul peaks before → after" in md and "| trust |" in md
    assert r["peaks_after"].keys() == r["peaks"].keys() and r["ratio_reference"] == "torch"
    img = np.asarray(Image.open(out / "bench.png").convert("L"), dtype=np.float32)
    assert img.shape[0] > 200 and img.std() > 10       # bars drawn, not a blank canvas


def test_summary_is_reproducible_from_the_raw_runs(quick):
    from ldm3d_edge.bench.bench import resummarize

    _, out = quick
    r = json.loads((out / "bench.json").read_text())
    assert resummarize(r)["variants"] == r["variants"]


def test_speed_presets_run_as_rows(quick):
    """`--speed` adds a row per preset per runtime variant (and 'variant:preset' names one); each generates with
    the preset's settings, and the report gives its work share of the quality preset's and issue 20's goal."""
    from ldm3d_edge.bench.report import work_share
    from ldm3d_edge.runtime.presets import PRESETS

    _, first = quick
    out = first.parent / "speed"
    rc = main(["bench", "--quick", "--variants", "ov-fp32,ov-int8-full:fast", "--speed", "balanced",
               "--out", str(out), "--work", str(first.parent / "work")])    # the quick run's models, reused
    assert rc == 0
    r = json.loads((out / "bench.json").read_text())
    assert list(r["variants"]) == ["ov-fp32", "ov-int8-full:fast", "ov-fp32:balanced"]
    for name, speed in (("ov-int8-full:fast", "fast"), ("ov-fp32:balanced", "balanced")):
        v = r["variants"][name]
        assert v["speed"] == speed and v["rounds_ok"] == 2
        assert all(run["steps"] == PRESETS[speed].steps == len(run["unet_steps_s"]) for run in r["runs"][name])
    assert all(run["steps"] == 2 for run in r["runs"]["ov-fp32"])
    # no PyTorch row: ratios are taken against the slowest row by UNet step (bench/trust.ratio_reference), not by
    # end to end (a 20-step preset row runs longer end to end however fast its steps)
    assert r["ratio_reference"] == max(r["variants"], key=lambda k: r["variants"][k]["unet_step_s"]["median"])
    f = r["flops"]["flops"]
    share = work_share("fast", f)
    expect = (2 * f["text_encoder"] + 16 * f["unet"] + f["vae_decoder"]) / (
        2 * f["text_encoder"] + 49 * f["unet"] + f["vae_decoder"])
    assert share == pytest.approx(expect) and 0.3 < share < 0.45
    md = (out / "bench.md").read_text()
    fast = r["variants"]["ov-int8-full:fast"]["e2e_s"]["median"]
    assert "## Speed presets" in md and f"| ov-int8-full:fast | {fast:.3g}" in md
    assert f"{100 * share:.0f} %" in md and "so they do not apply" in md     # tiny 64x64: no verdict


def test_mixed_row_keeps_the_named_blocks_float(quick):
    """ov-int8-mixed: the full INT8 UNet with --float-groups' blocks float (issue 23's row beside full and hybrid);
    its folder is named by the blocks and records them, and fewer of its FLOPs run in INT8."""
    _, first = quick
    out, work = first.parent / "mixed", first.parent / "work"
    rc = main(["bench", "--quick", "--variants", "ov-int8-mixed", "--float-groups",
               "conv_in,time_embedding,down_blocks.0/attentions.0", "--out", str(out), "--work", str(work)])
    assert rc == 0
    r = json.loads((out / "bench.json").read_text())
    assert r["variants"]["ov-int8-mixed"]["rounds_ok"] == 2
    (manifest,) = work.glob("*-int8-mixed-*/manifest.json")
    q = json.loads(manifest.read_text())["quantization"]
    assert q["mode"] == "full" and q["float_groups"] == ["conv_in", "time_embedding", "down_blocks.0/attentions.0"]
    full = json.loads(next(work.glob("*-int8-full/manifest.json")).read_text())["quantization"]   # the quick run's
    assert 0 < q["int8"]["unet"]["openvino"]["fake_quantize"] < full["int8"]["unet"]["openvino"]["fake_quantize"]


def test_preset_rows_are_checked():
    names = [v.name for v in parse_variants("ov-fp32,torch", "CPU", "quality,fast")]
    assert names == ["ov-fp32", "torch", "ov-fp32:quality", "ov-fp32:fast"]   # PyTorch runs diffusers' defaults
    for text, speeds, msg in (("ov-fp32:warp", None, "unknown speed preset"), ("torch:fast", None, "runtime's"),
                              ("ov-fp32,ov-fp32:fast", "fast", "once"), ("ov-fp32", "turbo", "unknown speed")):
        with pytest.raises(ValueError, match=msg):
            parse_variants(text, "CPU", speeds)


def test_untrustworthy_rows_and_runs_are_flagged():
    from ldm3d_edge.bench.bench import _stats
    from ldm3d_edge.bench.trust import ratio_reference, run_flags, trust_flags

    steady = {"unet_step_s": _stats([1.0, 1.02, 1.05]), "e2e_s": _stats([10.0, 10.1, 10.2])}
    assert trust_flags(steady, [{"steal_pct": 1.0}] * 3) == []
    noisy = {"unet_step_s": _stats([3.1, 4.0, 7.4]), "e2e_s": _stats([10.0, 10.1, 10.2])}
    flags = trust_flags(noisy, [{"steal_pct": 2.0}, {"steal_pct": 21.0}])
    assert flags == ["unet_step_s spread 108 % > 10 %", "CPU steal up to 21 % > 5 %"]
    # the 2026-12-01 peaks, measured before and after: the run says it cannot be trusted
    before = {"FP32": {"gops": 343.0}, "INT8": {"gops": 2039.0}}
    after = {"FP32": {"gops": 110.0}, "INT8": {"gops": 2000.0}}
    assert run_flags(before, after, {"a": [{"steal_pct": 0.5}]}) == [
        "FP32 matmul peak 343 -> 110 GOP/s during the rows"]
    assert run_flags(before, before, {"a": [{"steal_pct": 0.5}, {"steal_pct": None}]}) == []
    # without the baseline row, ratios are taken against the slowest row present, and it says so
    rows = {"ov-fp32": {"rounds_ok": 2, "unet_step_s": _stats([2.0, 2.2])},
            "ov-int8-full": {"rounds_ok": 2, "unet_step_s": _stats([1.0, 1.1])}, "torch": {"rounds_ok": 0}}
    assert ratio_reference(rows) == ("ov-fp32", "slowest row (no baseline row in this run)")
    rows["torch"] = {"rounds_ok": 2, "unet_step_s": _stats([6.0, 6.1])}
    assert ratio_reference(rows) == ("torch", "baseline")


def test_roofline_uses_the_time_weighted_peak():
    peaks = {"FP32": {"gops": 100.0}, "BF16": {"gops": 400.0}, "INT8": {"gops": 800.0}}
    flops = {"text_encoder": 1e9, "unet": 1.2e12, "vae_decoder": 2e12}
    row = {"text_encoder_s": {"median": 0.01}, "unet_step_s": {"median": 2.0}, "vae_decode_s": {"median": 10.0},
           "unet_kernels": {"int8_flop_share": 0.5}}
    rf = roofline(VARIANTS["ov-int8-hybrid"], row, flops, peaks)
    peak = 1 / (0.5 / 800 + 0.5 / 400)                       # 533 GOP/s
    assert rf["unet"]["peak_gops"] == pytest.approx(peak)
    assert rf["unet"]["fraction_of_peak"] == pytest.approx(600 / peak)
    assert rf["vae_decoder"]["peak_gops"] == pytest.approx(400)   # INT8 weights only: float arithmetic
    assert rf["text_encoder"]["gflops_per_s"] == pytest.approx(200)  # prompt + negative prompt
    fp32 = roofline(VARIANTS["torch"], {**row, "unet_kernels": None}, flops, peaks)
    assert fp32["unet"]["fraction_of_peak"] == pytest.approx(6.0)  # 600 GFLOP/s against a 100 GOP/s peak
    ort = roofline(VARIANTS["ort-int8"], {**row, "unet_kernels": None}, flops, peaks)   # share not reported
    assert ort["unet"]["fraction_of_peak"] == pytest.approx(600 / 800)
    assert ort["unet"]["fraction_of_float_peak"] == pytest.approx(6.0)


@pytest.mark.parametrize("kw, msg", [
    (dict(variants="ov-fp32,nope"), "unknown variant"),
    (dict(variants="ov-fp16"), "do not run on CPU"),
    (dict(variants="ov-fp32,ov-fp32"), "once"),
    (dict(device="TPU"), "unknown device"),
    (dict(config="/no/such/folder"), "--config"),
    (dict(height=500), "--height must be a multiple of 8"),
    (dict(steps=0), "--steps"),
    (dict(repeat=0), "--repeat"),
    (dict(variants="ov-int8-mixed"), "needs --float-groups"),
])
def test_bad_options_are_named(kw, msg):
    with pytest.raises(InvalidArgumentError, match=msg):
        BenchOptions(**kw).validate()


def test_an_artifact_folder_sets_the_default_size(tiny4):
    o = BenchOptions(config=str(tiny4[1]), variants="ov-fp32")
    o.validate()
    assert (o.height, o.width) == (64, 64)


def test_bad_option_through_the_cli_is_one_line(capsys, tmp_path):
    assert main(["bench", "--variants", "ov-int4", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "unknown variant(s) ov-int4" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_default_variants_per_device():
    assert [v.name for v in parse_variants(None, "GPU")] == DEFAULT_VARIANTS["GPU"]
    assert all("CUDA" in v.devices for v in parse_variants(None, "CUDA"))
    assert parse_variants(None, "CPU")[0].name == "torch"


def test_missing_accelerator_is_named_before_any_work(tmp_path):
    from ldm3d_edge.runtime.backends.openvino_backend import available_devices

    if any(d.startswith("GPU") for d in available_devices()):
        pytest.skip("this machine has an Intel GPU")
    with pytest.raises(InvalidArgumentError, match="no Intel GPU"):
        BenchOptions(device="GPU", work=str(tmp_path)).validate()
    assert not any(tmp_path.iterdir())


def test_interleaved_alternates_the_order_of_a_round_when_asked():
    from ldm3d_edge.bench.common import interleaved

    calls: list[str] = []
    runners = {k: (lambda k=k: calls.append(k)) for k in "abc"}
    r = interleaved(runners, 3, alternate=True)
    assert calls == list("abc") + list("abc") + list("cba") + list("abc")     # warm-up, then rounds 1-3
    assert all(len(v["runs"]) == 3 for v in r.values())
    calls.clear()
    interleaved(runners, 2)
    assert calls == list("abc") * 3
