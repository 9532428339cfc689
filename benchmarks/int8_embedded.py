"""What INT8 and BF16 cost on the embedded default model: quantize its perspective export in every mode, then run
`ldm3d quality` (the same prompts, seeds and initial latents through FP32 and each variant) and collect one table.

    python -m benchmarks.int8_embedded --work /tmp/int8-embedded --out benchmarks/results/int8-embedded

Writes <out>/<variant>/quality.{json,md,png} and <out>/summary.{json,md}. The bars checked are issue 5's for the
hybrid variant: depth AbsRel <= 0.05, RGB PSNR >= 25 dB, prompt adherence drop <= 5 points.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ldm3d_edge.bench.common import write_results

# key -> (label, quantize mode or None for the FP32 folder itself, VAE precision, formats, device, precision hint)
VARIANTS = {
    "hybrid": ("OpenVINO INT8 hybrid", "hybrid", "int8", ["openvino"], "openvino:CPU", None),
    "hybrid-vae-float": ("OpenVINO INT8 hybrid, VAE float", "hybrid", "float", ["openvino"], "openvino:CPU", None),
    "full": ("OpenVINO INT8 full", "full", "int8", ["openvino"], "openvino:CPU", None),
    "weights": ("OpenVINO INT8 weights only", "weights", "int8", ["openvino"], "openvino:CPU", None),
    "bf16": ("OpenVINO BF16 (same FP32 folder)", None, None, None, "openvino:CPU", "bf16"),
    "ort-hybrid": ("ONNX Runtime INT8 hybrid (QDQ MatMuls)", "hybrid", "int8", ["onnx"], "onnxruntime:CPU", None),
    "ort-full": ("ONNX Runtime INT8 full (QDQ Conv+MatMul)", "full", "int8", ["onnx"], "onnxruntime:CPU", None),
}
BARS = {"depth_absrel": ("<=", 0.05), "rgb_psnr_db": (">=", 25.0), "adherence_drop_points": ("<=", 5.0)}


def markdown(rows: dict, steps: int, samples: int) -> str:
    from training.evaluate import bars

    lines = ["# INT8 and BF16 vs FP32 on the embedded model (ldm3d-edge-tiny, 128x128)", "",
             f"`ldm3d quality FP32 TEST` over the 16 default held-out prompts x 2 seeds = {samples} samples, "
             f"{steps} DDIM steps, guidance 5, identical initial latents; the FP32 reference runs on the same backend "
             "as the variant. Adherence = nearest object in the prompted colour and nearer than its background "
             "(training/metrics.py). Each variant's folder has quality.json (every sample), quality.md and "
             "quality.png (FP32 | test | |difference| heat map, RGB and depth rows).", "",
             "| variant | RGB PSNR dB | SSIM | depth AbsRel | depth RMSE | delta<1.25 | adherence FP32 -> test "
             "| UNet step s FP32 / test |", "|---|---|---|---|---|---|---|---|"]
    for r in rows.values():
        lines.append(f"| {r['label']} | {r['rgb_psnr_db']:.2f} | {r['rgb_ssim']:.4f} | {r['depth_absrel']:.4f} | "
                     f"{r['depth_rmse']:.4f} | {r['depth_delta1']:.4f} | {100 * r['ref_adherence']:.1f} % -> "
                     f"{100 * r['test_adherence']:.1f} % | {r['ref_step_s']:.4f} / {r['test_step_s']:.4f} |")
    if "hybrid" in rows:
        h = rows["hybrid"]
        met = all(b["met"] for b in bars(h, BARS).values())
        lines += ["", f"Bars (issue 5, hybrid vs FP32, >= 32 samples): depth AbsRel <= 0.05, RGB PSNR >= 25 dB, "
                      f"adherence drop <= 5 points: {'met' if met else 'NOT met'} (AbsRel {h['depth_absrel']:.4f}, "
                      f"{h['rgb_psnr_db']:.1f} dB, adherence {-h['adherence_drop_points']:+.1f} points)."]
    if "hybrid" in rows and "hybrid-vae-float" in rows:
        lines.append(f"The VAE's INT8 weights: depth AbsRel {rows['hybrid']['depth_absrel']:.4f} with them, "
                     f"{rows['hybrid-vae-float']['depth_absrel']:.4f} with a float VAE.")
    lines += ["Step times at 128x128 are dominated by overheads (the UNet is 8.8M parameters) and say nothing "
              "about full-size speed (benchmarks/results/int8-unet-ldm3d-4c-512.md)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from ldm3d_edge.embedded import embedded_artifacts
    from ldm3d_edge.quantization import quantize_artifacts
    from ldm3d_edge.quantization.calibration import read_prompts
    from ldm3d_edge.quantization.quality import DEFAULT_PROMPTS_FILE, compare

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/ldm3d-int8-embedded", help="where the INT8 folders are written")
    ap.add_argument("--out", default="benchmarks/results/int8-embedded")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=2)
    a = ap.parse_args(argv)
    keys = [k for k in a.variants.split(",") if k]
    unknown = [k for k in keys if k not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    fp32 = embedded_artifacts(device="onnx:CPU")[0]   # the ONNX variants need ONNX: the cached export has both
    prompts = read_prompts(DEFAULT_PROMPTS_FILE)
    work, out, rows = Path(a.work), Path(a.out), {}
    for key in keys:
        label, mode, vae, formats, device, precision = VARIANTS[key]
        test = fp32
        if mode:
            test = work / key
            if not (test / "manifest.json").is_file():
                quantize_artifacts(fp32, test, mode=mode, formats=formats, vae=vae, overwrite=True)
        report = compare(fp32, test, prompts, seeds=a.seeds, steps=a.steps, ref_device=device, test_device=device,
                         test_precision=precision, out=out / key)
        rows[key] = {"label": label, "device": device, "precision": report["test"]["precision"],
                     "inference_precision": precision, **report["summary"], "samples": report["samples"]}
        print(f"{label}: PSNR {rows[key]['rgb_psnr_db']:.2f} dB, AbsRel {rows[key]['depth_absrel']:.4f}", flush=True)
    write_results(out / "summary", rows, markdown(rows, a.steps, len(prompts) * a.seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
