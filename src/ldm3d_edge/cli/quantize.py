"""ldm3d quantize, ldm3d quality: INT8 variants of an artifact folder, and what a variant costs."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..extras import need_extra
from .common import PRECISIONS, Subparsers, device_help, float_arg, int_arg

QUANTIZE_EXTRA = ("quantize", "ldm3d_edge.quantization", "ldm3d_edge.quantization.quality", "nncf", "skimage")


def register(sub: Subparsers) -> None:
    from ..quantization.calibration import DEFAULT_SAMPLES, DEFAULT_STEPS
    from ..quantization.quantize import CHECK_MARGIN, CHECK_PROMPTS, CHECK_SEEDS, MODES, VAE_CHOICES
    from ..quantization.sensitivity import GROUPINGS
    from ..runtime.presets import SPEEDS

    q = sub.add_parser("quantize", help="float artifact folder -> INT8 artifact folder (NNCF / ONNX Runtime)",
                       description="Make an INT8 variant of an exported artifact folder; the result loads like any "
                                   "artifact folder. Modes: weights = INT8 weights, float activations (every part); "
                                   "hybrid = UNet MatMuls and attention in INT8 (weights and activations), its "
                                   "convolutions with INT8 weights, conv_in/conv_out float; full = the whole UNet in "
                                   "INT8, calibrated; auto = the fastest of full, full with the most depth-sensitive "
                                   "UNet blocks float (as few as it takes), NNCF's accuracy control, hybrid and "
                                   "weights that keeps the mean depth AbsRel vs the float model within "
                                   "--max-depth-error (judged through the pipeline on the first --check-prompts "
                                   "calibration prompts; no labels needed). Text encoder and VAE get INT8 weights "
                                   "(ONNX: the VAE stays float). Calibration runs the float model over prompts and "
                                   "records UNet inputs. --sensitivity writes a ranked report instead of a folder. "
                                   "Needs the [quantize] extra.")
    q.add_argument("artifacts", help="float artifact folder made by 'ldm3d export'")
    q.add_argument("out", help="INT8 artifact folder to create")
    q.add_argument("--mode", default="hybrid", choices=MODES, help="default: hybrid")
    q.add_argument("--calibration-prompts", metavar="FILE",
                   help="one prompt per line (default: the folder's own calibration_prompts.txt, which export "
                        "copies from the checkpoint, else a shipped list of 12 scene and photo prompts)")
    q.add_argument("--samples", type=int_arg, default=DEFAULT_SAMPLES,
                   help=f"UNet calls recorded for calibration (default {DEFAULT_SAMPLES})")
    q.add_argument("--steps", type=int_arg, default=DEFAULT_STEPS,
                   help=f"denoising steps per calibration prompt (default {DEFAULT_STEPS})")
    q.add_argument("--format", choices=["openvino", "onnx", "both"],
                   help="which formats to quantize (default: every format the folder has)")
    q.add_argument("--vae", default="int8", choices=VAE_CHOICES,
                   help="OpenVINO VAE weights: int8 (default) or float")
    q.add_argument("--max-depth-error", type=float_arg, default=0.03,
                   help="auto: the largest mean depth AbsRel vs the float model allowed (default 0.03)")
    q.add_argument("--check-margin", type=float_arg, default=CHECK_MARGIN, metavar="F",
                   help="auto: keep a configuration only if the check reads at most F x --max-depth-error "
                        f"(default {CHECK_MARGIN:.2f}: the check is a sample of the calibration prompts, and on "
                        "other prompts the chosen model's error measured 1.5x what the check read; 1: no margin)")
    q.add_argument("--speed", choices=SPEEDS,
                   help="calibrate (and judge) with this speed preset's sampler and steps, the timesteps the UNet "
                        "will see (default: the folder's scheduler at --steps)")
    q.add_argument("--check-prompts", type=int_arg, default=CHECK_PROMPTS,
                   help=f"auto and --sensitivity: prompts the depth check runs (default {CHECK_PROMPTS})")
    q.add_argument("--check-seeds", type=int_arg, default=CHECK_SEEDS,
                   help=f"auto and --sensitivity: seeds per check prompt (default {CHECK_SEEDS})")
    q.add_argument("--check-steps", type=int_arg,
                   help="auto and --sensitivity: denoising steps of the depth check (default: as calibration)")
    q.add_argument("--accuracy-control", action="store_true",
                   help="auto: also try NNCF's accuracy-controlled quantization (slow: it ranks every quantizer "
                        "by pipeline runs)")
    q.add_argument("--sensitivity", action="store_true",
                   help="write OUT/sensitivity.json and .md: each UNet group quantized alone, ranked by the depth "
                        "error it causes (OpenVINO folders)")
    q.add_argument("--by", choices=GROUPINGS, default="block",
                   help="--sensitivity: group layers by UNet block (default) or by kind of layer")
    q.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    q.set_defaults(run=run_quantize)

    u = sub.add_parser("quality", help="what a variant costs: the same prompts and seeds through two folders",
                       description="Generate the same prompts with the same seeds (identical initial latents) "
                                   "through a reference and a test artifact folder (or one folder at two "
                                   "precisions) and compare: RGB PSNR and SSIM, depth AbsRel, RMSE, delta<1.25 and "
                                   "prompt adherence. Writes quality.json, quality.md and quality.png (reference | "
                                   "test | difference heat map). Needs the [quantize] extra.")
    u.add_argument("ref", help="reference artifact folder (usually the FP32 export)")
    u.add_argument("test", help="artifact folder to judge (e.g. the INT8 one; may equal REF with --test-precision)")
    u.add_argument("--prompts", metavar="FILE", help="one prompt per line (default: 16 held-out scene captions)")
    u.add_argument("--seeds", type=int_arg, default=2, help="seeds 0..N-1 per prompt (default 2)")
    u.add_argument("--steps", type=int_arg, default=20, help="denoising steps (default 20)")
    u.add_argument("--guidance", type=float_arg, default=5.0, help="guidance scale (default 5)")
    u.add_argument("--device", default="openvino:CPU", help=device_help("openvino:CPU"))
    u.add_argument("--ref-precision", choices=PRECISIONS, help="OpenVINO precision for REF (default f32)")
    u.add_argument("--test-precision", choices=PRECISIONS,
                   help="OpenVINO precision for TEST (default f32)")
    u.add_argument("--out", default="quality", help="report folder (default: quality)")
    u.set_defaults(run=run_quality)


def run_quantize(a: argparse.Namespace) -> int:
    quantization, *_ = need_extra("'ldm3d quantize'", *QUANTIZE_EXTRA)
    formats = None if a.format is None else (["openvino", "onnx"] if a.format == "both" else [a.format])
    if a.sensitivity:
        r = quantization.sensitivity_report(a.artifacts, a.out, prompts_file=a.calibration_prompts,
                                            samples=a.samples, steps=a.steps, speed=a.speed,
                                            check_prompts=a.check_prompts, check_steps=a.check_steps,
                                            check_seeds=a.check_seeds, by=a.by)
        print(f"wrote {a.out}/sensitivity.json and sensitivity.md; most sensitive: " +
              ", ".join(f"{g['group']} ({g['depth_absrel']:.4f})" for g in r["groups"][:3]))
        return 0
    m = quantization.quantize_artifacts(a.artifacts, a.out, mode=a.mode, formats=formats,
                                        prompts_file=a.calibration_prompts, samples=a.samples, steps=a.steps,
                                        vae=a.vae, overwrite=a.overwrite, speed=a.speed,
                                        max_depth_error=a.max_depth_error, check_prompts=a.check_prompts,
                                        check_steps=a.check_steps, check_seeds=a.check_seeds,
                                        accuracy_control=a.accuracy_control, check_margin=a.check_margin)
    q = m["quantization"]
    print(f"quantized {a.artifacts} -> {a.out} ({m['precision']}, {', '.join(m['formats'])}) in {q['seconds']:.0f}s")
    for comp, fmts in q["parts"].items():
        print(f"  {comp:13s} " + ", ".join(f"{f}: {p}" for f, p in fmts.items()))
    if q.get("auto"):
        au = q["auto"]
        print(f"  auto chose {au['chosen']}: depth AbsRel {au['depth_absrel']:.4f} on its check <= "
              f"{au['check_bound']:.4g} ({au['check_margin']:.2f} x --max-depth-error {au['max_depth_error']:g}), "
              f"{100 * au['int8_flop_share']:.1f} % of UNet FLOPs in INT8"
              + (f"; float: {', '.join(au['float_groups'])}" if au["float_groups"] else ""))
    return 0


def run_quality(a: argparse.Namespace) -> int:
    _, quality, *_ = need_extra("'ldm3d quality'", *QUANTIZE_EXTRA)
    from ..quantization.calibration import read_prompts

    prompts = read_prompts(a.prompts or quality.DEFAULT_PROMPTS_FILE)
    r = quality.compare(a.ref, a.test, prompts, seeds=a.seeds, steps=a.steps, guidance=a.guidance,
                        ref_device=a.device, test_device=a.device, ref_precision=a.ref_precision,
                        test_precision=a.test_precision, out=a.out)
    print(quality.summary_markdown(r), end="")
    print(f"wrote {Path(a.out) / 'quality.json'}, quality.md, quality.png")
    return 0
