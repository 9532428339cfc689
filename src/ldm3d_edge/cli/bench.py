"""ldm3d bench: every backend side by side against diffusers PyTorch, with the roofline."""

from __future__ import annotations

import argparse
import sys

from ..bench.bench import BenchOptions
from ..bench.variants import DEVICES, VARIANTS
from ..extras import need_extra
from .common import Subparsers, int_arg

BENCH_DESCRIPTION = """\
Benchmark text encoder, UNet step, VAE decode, end to end, cold/warm start, peak
memory and weights size of each variant against diffusers' StableDiffusionLDM3D-
Pipeline (PyTorch FP32); every run in a process of its own, variants interleaved.
With a release name, a random-weight model of the release's exact shapes is built,
exported and quantized once under --work (at full size: ~30 minutes and ~25 GB of
disk on 2 cores). Needs the export and quantize extras."""


def register(sub: Subparsers) -> None:
    b = sub.add_parser("bench", help="every backend side by side against diffusers PyTorch, with the roofline",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=BENCH_DESCRIPTION,
                       epilog="examples:\n  ldm3d bench --quick                      # tiny model, 2 steps: a "
                              "smoke test\n  ldm3d bench                              # ldm3d-4c 512x512, 20 steps, "
                              "all CPU variants\n  ldm3d bench --config ldm3d-pano          # 1024x512\n  "
                              "ldm3d bench --device GPU                 # Intel GPU: OpenVINO FP32/FP16/INT8\n  "
                              "ldm3d bench --device CUDA                # NVIDIA: PyTorch and ONNX Runtime "
                              "(onnxruntime-gpu) FP32/FP16\n  ldm3d bench --variants ov-int8-full,ov-bf16 --speed "
                              "quality,balanced,fast   # the speed presets as rows")
    b.add_argument("--config", default=BenchOptions.config,
                   help="ldm3d-4c, ldm3d-pano, ldm3d, tiny, or a folder: a diffusers LDM3D checkpoint (exported "
                        "here) or an artifact folder (default: ldm3d-4c)")
    b.add_argument("--checkpoint", help="diffusers folder for the PyTorch rows when --config is an artifact folder")
    b.add_argument("--height", type=int_arg, help="default: 512 (ldm3d-pano: 512, width 1024)")
    b.add_argument("--width", type=int_arg, help="default: 512 (ldm3d-pano: 1024)")
    b.add_argument("--steps", type=int_arg, default=BenchOptions.steps,
                   help=f"denoising steps of the end-to-end run (default {BenchOptions.steps})")
    b.add_argument("--variants", help="comma-separated, from: " + ", ".join(VARIANTS) +
                                      " (default: all that run on --device)")
    b.add_argument("--speed", metavar="PRESETS",
                   help="comma-separated speed presets (quality, balanced, fast): each runtime variant also runs "
                        "end to end with each, as rows '<variant>:<preset>' (their steps are the preset's); or name "
                        "such rows in --variants, e.g. ov-int8-full:fast")
    b.add_argument("--float-groups", metavar="BLOCKS",
                   help="comma-separated UNet blocks the ov-int8-mixed row keeps float, e.g. the 'float_groups' an "
                        "'ldm3d quantize --mode auto' folder's manifest records, or a sensitivity report's worst")
    b.add_argument("--device", default="CPU", choices=list(DEVICES), help="default: CPU")
    b.add_argument("--repeat", type=int_arg, default=BenchOptions.repeat,
                   help=f"rounds; every variant runs once per round (default {BenchOptions.repeat})")
    b.add_argument("--threads", type=int_arg, help="threads for every engine (default: all logical cores)")
    b.add_argument("--work", help="where models, exports and compile caches are kept (default: "
                                  "~/.cache/ldm3d-edge/bench)")
    b.add_argument("--out", default="bench-results", help="folder for bench.json, bench.md, bench.png "
                                                         "(default: bench-results)")
    b.add_argument("--quick", action="store_true", help="tiny random model, 64x64, 2 steps, 2 rounds: checks that "
                                                        "every variant runs; its numbers mean nothing")
    b.set_defaults(run=run)


def run(a: argparse.Namespace) -> int:
    need_extra("'ldm3d bench'", "export,quantize", "diffusers", "nncf")
    from ..bench.bench import run_bench
    from ..bench.report import markdown, write_report

    o = BenchOptions(config=a.config, checkpoint=a.checkpoint, height=a.height, width=a.width, steps=a.steps,
                     variants=a.variants, speeds=a.speed, device=a.device, repeat=a.repeat, quick=a.quick,
                     float_groups=a.float_groups)
    if a.threads:
        o.threads = a.threads
    if a.work:
        o.work = a.work
    r = run_bench(o)
    paths = write_report(r, a.out)
    print(markdown(r))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    failed = [k for k, v in r["variants"].items() if not v.get("rounds_ok")]
    if failed:
        print(f"ldm3d bench: error: {', '.join(failed)} failed in every round (see errors in bench.json)",
              file=sys.stderr)
        return 1
    return 0
