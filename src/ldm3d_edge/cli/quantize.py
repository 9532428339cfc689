"""ldm3d quantize, ldm3d quality: INT8 variants of an artifact folder, and what a variant costs."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..extras import need_extra
from .common import PRECISIONS, Subparsers, device_help, float_arg, int_arg

QUANTIZE_EXTRA = ("quantize", "ldm3d_edge.quantization", "ldm3d_edge.quantization.quality", "nncf", "skimage")


def register(sub: Subparsers) -> None:
    from ..quantization.calibration import DEFAULT_SAMPLES, DEFAULT_STEPS
    from ..quantization.quantize import MODES, VAE_CHOICES

    q = sub.add_parser("quantize", help="float artifact folder -> INT8 artifact folder (NNCF / ONNX Runtime)",
                       description="Make an INT8 variant of an exported artifact folder; the result loads like any "
                                   "artifact folder. Modes: weights = INT8 weights, float activations (every part); "
                                   "hybrid = UNet MatMuls and attention in INT8 (weights and activations), its "
                                   "convolutions with INT8 weights, conv_in/conv_out float; full = the whole UNet in "
                                   "INT8, calibrated. Text encoder and VAE get INT8 weights (ONNX: the VAE stays "
                                   "float). Calibration runs the float model over prompts and records UNet inputs. "
                                   "Needs the [quantize] extra.")
    q.add_argument("artifacts", help="float artifact folder made by 'ldm3d export'")
    q.add_argument("out", help="INT8 artifact folder to create")
    q.add_argument("--mode", default="hybrid", choices=MODES, help="default: hybrid")
    q.add_argument("--calibration-prompts", metavar="FILE",
                   help="one prompt per line (default: a shipped list of 12 scene and photo prompts)")
    q.add_argument("--samples", type=int_arg, default=DEFAULT_SAMPLES,
                   help=f"UNet calls recorded for calibration (default {DEFAULT_SAMPLES})")
    q.add_argument("--steps", type=int_arg, default=DEFAULT_STEPS,
                   help=f"denoising steps per calibration prompt (default {DEFAULT_STEPS})")
    q.add_argument("--format", choices=["openvino", "onnx", "both"],
                   help="which formats to quantize (default: every format the folder has)")
    q.add_argument("--vae", default="int8", choices=VAE_CHOICES,
                   help="OpenVINO VAE weights: int8 (default) or float")
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
    m = quantization.quantize_artifacts(a.artifacts, a.out, mode=a.mode, formats=formats,
                                        prompts_file=a.calibration_prompts, samples=a.samples, steps=a.steps,
                                        vae=a.vae, overwrite=a.overwrite)
    q = m["quantization"]
    print(f"quantized {a.artifacts} -> {a.out} ({m['precision']}, {', '.join(m['formats'])}) in {q['seconds']:.0f}s")
    for comp, fmts in q["parts"].items():
        print(f"  {comp:13s} " + ", ".join(f"{f}: {p}" for f, p in fmts.items()))
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
