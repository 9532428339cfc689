"""INT8 that keeps the depth (issue 23): every configuration tried on the embedded model, against FP32 on the same
backend, side by side — the modes, SmoothQuant alphas, the sensitivity report's worst UNet blocks kept float, and
`--mode auto --max-depth-error 0.03` — with the share of the UNet's FLOPs each leaves in INT8.

    PYTHONPATH=src:. python -m benchmarks.int8_depth --work /tmp/int8-depth --out benchmarks/results/int8-depth

1. The sensitivity report (`ldm3d quantize --sensitivity`) of the perspective export, on the calibration prompts.
2. Each configuration quantized (OpenVINO; ORT rows with --ort) and compared with `ldm3d quality`'s compare over
   the 16 held-out quality prompts x --seeds (64 samples by default), 20 DDIM steps, identical latents. The
   calibration prompts (what auto judges by) and the quality prompts are disjoint lists.
Writes <out>/sensitivity.{json,md}, <out>/<config>/quality.{json,md,png}, <out>/summary.{json,md}. Resumes: a
configuration whose quality.json exists is read back, not run again.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ldm3d_edge.bench.common import write_results

BOUND = 0.03            # issue 23: depth AbsRel <= 0.03 and adherence drop <= 1 point for the auto configuration
MIXED_KS = (1, 2, 3, 5, 8)
# the embedded model's own calibration prompts, held-out scene captions (disjoint from the quality prompts), which
# `ldm3d quantize` takes by default for it; the general list the other rows name is half everyday photographs
SCENE_PROMPTS = Path(__file__).parents[1] / "src/ldm3d_edge/models/ldm3d-edge-tiny/calibration_prompts.txt"


def configs(ranking: list[str], ort: bool) -> dict[str, dict]:
    """key -> label and quantize_artifacts keywords (None: the FP32 folder at another inference precision)."""
    out: dict[str, dict] = {
        "full": {"label": "INT8 full (SmoothQuant 0.95, NNCF's default)", "mode": "full"},
        "full-sq-off": {"label": "INT8 full, SmoothQuant off", "mode": "full", "smooth_quant": -1.0},
        "full-sq-0.5": {"label": "INT8 full, SmoothQuant 0.5", "mode": "full", "smooth_quant": 0.5},
    }
    for k in MIXED_KS:
        out[f"mixed-{k}"] = {"label": f"INT8 full, worst {k} block{'s' if k > 1 else ''} float", "mode": "full",
                             "float_groups": ranking[:k]}
    # the auto rows before the check margin (2 seeds, then 4, no margin) pin those settings; "auto-default" is
    # `ldm3d quantize --mode auto --max-depth-error 0.03` as shipped (12 prompts x 4 seeds, margin 2/3)
    out["auto"] = {"label": f"INT8 auto (--max-depth-error {BOUND}), general calibration list, 2-seed check, no "
                            "margin", "mode": "auto", "max_depth_error": BOUND, "check_seeds": 2, "check_margin": 1.0}
    out["auto-scenes"] = {"label": f"INT8 auto (--max-depth-error {BOUND}), calibrated and checked on the model's own "
                                   "scene captions (its default), 2-seed check, no margin",
                          "mode": "auto", "max_depth_error": BOUND, "prompts_file": str(SCENE_PROMPTS),
                          "check_seeds": 2, "check_margin": 1.0}
    # the same with a 4-seed check (48 samples): a 24-sample check read 0.029 for a choice that measured 0.057
    out["auto-scenes-4seeds"] = {**out["auto-scenes"], "check_seeds": 4,
                                 "label": out["auto-scenes"]["label"].replace("2-seed", "4-seed")}
    # and with a margin by hand: the check asked for 0.02, so that the held-out error may land under 0.03
    out["auto-scenes-4seeds-0.02"] = {**out["auto-scenes-4seeds"], "max_depth_error": 0.02,
                                      "label": out["auto-scenes-4seeds"]["label"].replace(f"{BOUND}", "0.02")
                                      + " (a margin under the 0.03 bar by hand)"}
    out["auto-default"] = {"label": f"INT8 auto (--max-depth-error {BOUND}), its defaults: the model's own scene "
                                    "captions, 12 prompts x 4 seeds, check margin 2/3",
                           "mode": "auto", "max_depth_error": BOUND, "prompts_file": str(SCENE_PROMPTS)}
    out["hybrid"] = {"label": "INT8 hybrid", "mode": "hybrid"}
    out["weights"] = {"label": "INT8 weights only", "mode": "weights"}
    out["bf16"] = {"label": "BF16 (the FP32 folder)", "mode": None, "precision": "bf16"}
    if ort:
        out["ort-full"] = {"label": "ORT INT8 full (QDQ)", "mode": "full", "formats": ["onnx"]}
        out["ort-mixed-3"] = {"label": "ORT INT8 full, worst 3 blocks excluded from QDQ", "mode": "full",
                              "formats": ["onnx"], "float_groups": ranking[:3]}
    return out


def int8_share(folder: Path) -> float | None:
    """The compiled OpenVINO UNet's share of convolution and matmul FLOPs that run in INT8."""
    from ldm3d_edge.quantization.openvino_int8 import kernel_precisions
    from ldm3d_edge.runtime import Pipeline

    pipe = Pipeline.load(folder, device="openvino:CPU")
    if pipe.unet.fmt != "openvino":
        return None
    m = pipe.manifest
    return kernel_precisions(pipe.unet.compiled(m.height, m.width).native)["int8_flop_share"]


def _cpu() -> str:
    """The CPU's model name and whether it has the instructions INT8 and BF16 speed depend on."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "?")
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []))
    have = [f for f in ("avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    return f"{name}, {os.cpu_count()} logical cores, " + (", ".join(have) if have else "no VNNI / BF16 / AMX")


def markdown(rows: dict, report: dict | None, samples: int, steps: int) -> str:
    lines = ["# INT8 that keeps the depth: configurations on the embedded model (128x128)", "",
             f"Each configuration vs FP32 on the same backend: {samples} samples (16 held-out quality prompts x "
             f"{samples // 16} seeds), {steps} DDIM steps, guidance 5, identical initial latents. INT8 FLOP share: "
             "of the UNet's convolution + matmul FLOPs, read from the compiled OpenVINO model (the speed proxy "
             "auto ranks by; the embedded UNet's step time is overhead-bound and says nothing of full size).", "",
             "| configuration | UNet FLOPs in INT8 | depth AbsRel | delta<1.25 | RGB PSNR dB | SSIM | adherence "
             "FP32 -> test |", "|---|---|---|---|---|---|---|"]
    for r in rows.values():
        share = "—" if r.get("int8_flop_share") is None else f"{100 * r['int8_flop_share']:.1f} %"
        lines.append(f"| {r['label']} | {share} | {r['depth_absrel']:.4f} | {r['depth_delta1']:.4f} | "
                     f"{r['rgb_psnr_db']:.2f} | {r['rgb_ssim']:.4f} | {100 * r['ref_adherence']:.1f} % -> "
                     f"{100 * r['test_adherence']:.1f} % |")
    for key in ("auto", "auto-scenes", "auto-scenes-4seeds", "auto-scenes-4seeds-0.02", "auto-default"):
        if key not in rows:
            continue
        a = rows[key]
        met = a["depth_absrel"] <= BOUND and a["adherence_drop_points"] <= 1.0
        lines += ["", f"Bar (issue 23, {a['label']}, >= 64 samples): depth AbsRel <= {BOUND} and adherence drop "
                      f"<= 1 point: {'met' if met else 'NOT met'} (AbsRel {a['depth_absrel']:.4f}, adherence "
                      f"{0.0 - a['adherence_drop_points'] + 0.0:+.1f} points). It chose {a['auto']['chosen']!r}"
                      + (f", float: {', '.join(a['auto']['float_groups'])}" if a["auto"]["float_groups"] else "")
                      + f"; its own check ({a['auto']['validation']['prompts']} prompts x "
                        f"{a['auto']['validation']['seeds']} seeds) read {a['auto']['depth_absrel']:.4f}."]
    cpu = _cpu()
    lines += ["", f"Machine: {cpu}." + ("" if "bf16" in rows or "bf16" in cpu else
              " No BF16 row: quality, not speed, is measured here, and on a CPU without BF16 OpenVINO runs the "
              "bf16 hint in f32 (docs/quantization.md has BF16's cost, 0.017).")]
    if report:
        lines += ["", "Sensitivity (each UNet block quantized alone, the rest float; calibration prompts), worst "
                      "first: " + ", ".join(f"{g['group']} {g['depth_absrel']:.4f}" for g in report["groups"][:8])
                  + "."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from ldm3d_edge.embedded import embedded_artifacts
    from ldm3d_edge.quantization import quantize_artifacts, sensitivity_report
    from ldm3d_edge.quantization.calibration import DEFAULT_PROMPTS_FILE as CALIBRATION_PROMPTS
    from ldm3d_edge.quantization.calibration import read_prompts
    from ldm3d_edge.quantization.quality import DEFAULT_PROMPTS_FILE, compare

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/ldm3d-int8-depth", help="where the INT8 folders are written")
    ap.add_argument("--out", default="benchmarks/results/int8-depth")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--only", default="", help="comma-separated configuration keys (default: all)")
    ap.add_argument("--float-groups", metavar="BLOCKS",
                    help="comma-separated UNet blocks for one more row, 'given' (INT8 full, these kept float): e.g. "
                         "the blocks an `ldm3d bench --float-groups` row timed, chosen on another machine")
    ap.add_argument("--ort", action="store_true", help="add ONNX Runtime rows (QDQ with the same exclusions)")
    ap.add_argument("--precision", choices=("f32", "bf16"), default=None,
                    help="OpenVINO inference precision of the INT8 rows' float layers (default: the runtime's f32); "
                         "bf16 is what `ldm3d bench` times its ov-int8 rows at, and on a CPU without BF16 "
                         "OpenVINO runs it in f32")
    a = ap.parse_args(argv)
    fp32 = embedded_artifacts(device="onnx:CPU" if a.ort else "auto")[0]
    work, out = Path(a.work), Path(a.out)
    # the report (about 20 minutes) only where a row keeps its worst blocks float
    if not a.only or any(k.startswith(("mixed-", "ort-mixed-")) for k in a.only.split(",")):
        if not (out / "sensitivity.json").is_file():
            sensitivity_report(fp32, out)
    report = json.loads((out / "sensitivity.json").read_text()) if (out / "sensitivity.json").is_file() else None
    ranking = [g["group"] for g in report["groups"]] if report else []
    prompts = read_prompts(DEFAULT_PROMPTS_FILE)
    table = configs(ranking, a.ort)
    if a.float_groups:
        groups = a.float_groups.split(",")
        table["given"] = {"label": f"INT8 full, {len(groups)} given blocks float", "mode": "full",
                          "float_groups": groups}
    keys = [k for k in (a.only.split(",") if a.only else table)]
    rows = {}
    for key in keys:
        c = dict(table[key])
        label, precision, mode = c.pop("label"), c.pop("precision", None), c.pop("mode")
        test = fp32
        if mode:
            test = work / key
            # the general list unless the row names its own: the embedded folder now carries its scene captions,
            # which quantize would otherwise take, and the rows compare calibrations
            c.setdefault("prompts_file", str(CALIBRATION_PROMPTS))
            if not (test / "manifest.json").is_file():
                quantize_artifacts(fp32, test, mode=mode, overwrite=True, formats=c.pop("formats", ["openvino"]), **c)
        device = "onnxruntime:CPU" if key.startswith("ort-") else "openvino:CPU"
        if mode and not key.startswith("ort-") and a.precision:
            precision = a.precision
            label += f", float layers {a.precision}"
        if not (out / key / "quality.json").is_file():
            compare(fp32, test, prompts, seeds=a.seeds, steps=a.steps, ref_device=device, test_device=device,
                    test_precision=precision, out=out / key)
        q = json.loads((out / key / "quality.json").read_text())
        manifest = json.loads((test / "manifest.json").read_text())
        rows[key] = {"label": label, **q["summary"], "samples": q["samples"],
                     "int8_flop_share": None if key.startswith("ort-") or not mode else int8_share(test),
                     "quantization": {k: manifest.get("quantization", {}).get(k)
                                      for k in ("mode", "float_groups", "smooth_quant_alpha")},
                     "auto": manifest.get("quantization", {}).get("auto")}
        r = rows[key]
        print(f"{label}: AbsRel {r['depth_absrel']:.4f}, PSNR {r['rgb_psnr_db']:.2f} dB, "
              f"adherence drop {r.get('adherence_drop_points', 0):.1f}", flush=True)
    if a.only and (out / "summary.json").is_file():   # a partial run adds its rows to the table, not replaces it
        rows = {**json.loads((out / "summary.json").read_text()), **rows}
    write_results(out / "summary", rows, markdown(rows, report, q["samples"], a.steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
