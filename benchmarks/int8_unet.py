"""INT8 on the full-size model: UNet step (batch 2) and VAE decode latency on the OpenVINO CPU for FP32, BF16,
INT8 hybrid and INT8 full, side by side (interleaved rounds in one process), with artifact size on disk, peak
resident memory (each variant alone in a child process), and the share of UNet FLOPs whose kernels really run
in i8/u8 (from the compiled model's runtime graph).

    python -m benchmarks.int8_unet --work ~/.cache/ldm3d-edge/bench --out benchmarks/results/int8-unet

Random weights from the ldm3d-4c release config (same shapes and FLOPs as the release). Calibration uses
--samples UNet calls (latency does not depend on how well the ranges were calibrated; quality is measured on the
embedded model with `ldm3d quality`). Writes <out>.json and <out>.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from ldm3d_edge.bench.bench import BenchOptions
from ldm3d_edge.bench.common import interleaved, peak_rss_gb, write_results
from ldm3d_edge.bench.worker import unet_inputs
from ldm3d_edge.metrics import abs_rel

# label -> (artifact key, OpenVINO inference precision); INT8 variants run their float remainder in bf16
VARIANTS = {"FP32": ("fp32", "f32"), "BF16": ("fp32", "bf16"), "INT8 hybrid": ("hybrid", "bf16"),
            "INT8 full": ("full", "bf16")}
VAE_VARIANTS = {"FP32": ("fp32", "f32"), "BF16": ("fp32", "bf16"), "INT8 weights": ("hybrid", "bf16")}


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def load_part(art: Path, component: str, precision: str, threads: int):
    from ldm3d_edge.runtime import read_manifest
    from ldm3d_edge.runtime.backends import create_backend
    from ldm3d_edge.runtime.models import UNet, VaeDecoder

    m = read_manifest(art)
    cls = UNet if component == "unet" else VaeDecoder
    return cls(m, create_backend("openvino", "CPU", precision=precision, num_threads=threads, cache_dir=""),
               "openvino"), m


def child(spec: dict) -> dict:
    """Load one variant's part alone, run it once; report peak resident memory."""
    art, component, precision, size, threads = (Path(spec["art"]), spec["component"], spec["precision"],
                                                spec["size"], spec["threads"])
    part, m = load_part(art, component, precision, threads)
    if component == "unet":
        s, t, h = unet_inputs(size, size, m.components["unet"].input("encoder_hidden_states").shape[-1])
        part(s, t, h, size, size)
    else:
        part(np.zeros((1, 4, size // 8, size // 8), np.float32), size, size)
    return {"peak_rss_gb": peak_rss_gb()}


def peak_rss(art: Path, component: str, precision: str, size: int, threads: int) -> float:
    spec = json.dumps({"art": str(art), "component": component, "precision": precision, "size": size,
                       "threads": threads})
    out = subprocess.run([sys.executable, "-m", "benchmarks.int8_unet", "--child", spec],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_gb"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=BenchOptions.work, help="shared with ldm3d bench (default: %(default)s)")
    ap.add_argument("--out", default="benchmarks/results/int8-unet")
    ap.add_argument("--release", default="ldm3d-4c")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--samples", type=int, default=16, help="UNet calls recorded for calibration")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--prepare-only", action="store_true", help="build, export and quantize, then stop")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(json.loads(a.child))))
        return 0
    from ldm3d_edge.bench import variants as bench_variants
    from ldm3d_edge.bench.bench import prepare
    from ldm3d_edge.bench.common import machine
    from ldm3d_edge.quantization.openvino_int8 import kernel_precisions

    o = BenchOptions(config=a.release, height=a.size, width=a.size, work=a.work, calibration_samples=a.samples)
    paths, prep = prepare(o, [bench_variants.VARIANTS[k] for k in ("ov-fp32", "ov-int8-hybrid", "ov-int8-full")])
    arts = {"fp32": paths["fp32"], "hybrid": paths["int8-hybrid"], "full": paths["int8-full"]}
    print("prepared", prep, flush=True)
    if a.prepare_only:
        return 0

    r = {"release": a.release, "size": a.size, "threads": a.threads, "repeat": a.repeat, "samples": a.samples,
         "machine": machine(), "prepare": prep, "unet": {}, "vae_decoder": {}}
    parts = {}
    for label, (key, prec) in VARIANTS.items():
        part, m = load_part(arts[key], "unet", prec, a.threads)
        compiled = part.compiled(a.size, a.size)
        parts[label] = part
        r["unet"][label] = {"artifacts": str(arts[key]), "inference_precision": prec,
                            "unet_bytes": (arts[key] / "unet" / "openvino_model.bin").stat().st_size,
                            "kernels": kernel_precisions(compiled.native)}
    s, t, h = unet_inputs(a.size, a.size, m.components["unet"].input("encoder_hidden_states").shape[-1])
    lat = interleaved({k: (lambda p=p: p(s, t, h, a.size, a.size)) for k, p in parts.items()}, a.repeat)
    base = lat["FP32"]["median_s"]
    for k, v in lat.items():
        r["unet"][k].update(v, speedup_vs_fp32=base / v["median_s"])
    del parts
    vparts = {label: load_part(arts[key], "vae_decoder", prec, a.threads)[0]
              for label, (key, prec) in VAE_VARIANTS.items()}
    z = np.random.default_rng(1).standard_normal((1, 4, a.size // 8, a.size // 8), dtype=np.float32)
    outs = {k: p(z, a.size, a.size) for k, p in vparts.items()}
    vlat = interleaved({k: (lambda p=p: p(z, a.size, a.size)) for k, p in vparts.items()}, a.repeat)
    ref_depth = outs["FP32"][0, 3] / 2 + 0.5
    for k, v in vlat.items():
        d = outs[k][0, 3] / 2 + 0.5
        r["vae_decoder"][k] = {**v, "speedup_vs_fp32": vlat["FP32"]["median_s"] / v["median_s"],
                               "depth_absrel_vs_fp32": abs_rel(d, ref_depth),
                               "vae_bytes": folder_bytes(arts[VAE_VARIANTS[k][0]] / "vae_decoder")}
    del vparts
    for label, (key, prec) in VARIANTS.items():
        r["unet"][label]["peak_rss_gb"] = peak_rss(arts[key], "unet", prec, a.size, a.threads)
    write_results(a.out, r, to_markdown(r))
    return 0


def to_markdown(r: dict) -> str:
    mc = r["machine"]
    lines = [f"# INT8 vs BF16 vs FP32, full-size {r['release']} (random weights), {r['size']}x{r['size']}", "",
             f"{mc['cpu']}, {mc['cores']} cores, {r['threads']} threads, OpenVINO {mc.get('openvino')}; median of "
             f"{r['repeat']} interleaved rounds; INT8 calibrated on {r['samples']} UNet calls.", "",
             "## UNet step (batch 2)", "",
             "| variant | median s | min s | max s | vs FP32 | UNet weights MB | peak RSS GB | INT8 share of FLOPs |",
             "|---|---|---|---|---|---|---|---|"]
    for k, v in r["unet"].items():
        lines.append(f"| {k} ({v['inference_precision']}) | {v['median_s']:.2f} | {v['min_s']:.2f} | "
                     f"{v['max_s']:.2f} | {v['speedup_vs_fp32']:.2f}x | {v['unet_bytes'] / 1e6:.0f} | "
                     f"{v.get('peak_rss_gb', float('nan')):.2f} | "
                     f"{100 * v['kernels']['int8_flop_share']:.0f} % |")
    lines += ["", "## VAE decoder", "", "| variant | median s | vs FP32 | depth AbsRel vs FP32 | MB |",
              "|---|---|---|---|---|"]
    for k, v in r["vae_decoder"].items():
        lines.append(f"| {k} | {v['median_s']:.2f} | {v['speedup_vs_fp32']:.2f}x | {v['depth_absrel_vs_fp32']:.4f} | "
                     f"{v['vae_bytes'] / 1e6:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
