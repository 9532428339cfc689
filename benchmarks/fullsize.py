"""Full-size check: a random-weight model from the ldm3d-4c release config is built, exported (ONNX +
OpenVINO, 512x512), loaded and run end to end on each CPU backend; then one UNet denoising step (batch 2,
512x512) is timed side by side for diffusers PyTorch, OpenVINO CPU and ONNX Runtime CPU, interleaved.

    python -m ldm3d_edge.benchmarks.fullsize --work /tmp/ldm3d-full --out benchmarks/results/fullsize

Writes <out>.json and <out>.md. Reuses the checkpoint and artifacts under --work when present.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from .common import interleaved, machine, peak_rss_gb, write_results


def build_and_export(work: Path, release: str, size: int) -> tuple[Path, Path, dict]:
    from ldm3d_edge.export import export_pipeline
    from ldm3d_edge.export.random_model import build_release_pipeline

    times = {}
    ckpt, art = work / f"{release}-random", work / f"{release}-random-artifacts-{size}"
    if not (ckpt / "model_index.json").is_file():
        t0 = time.perf_counter()
        build_release_pipeline(release, ckpt, seed=0)
        times["build_checkpoint_s"] = time.perf_counter() - t0
    if not (art / "manifest.json").is_file():
        t0 = time.perf_counter()
        export_pipeline(ckpt, art, fmt="both", height=size, width=size, overwrite=True)
        times["export_s"] = time.perf_counter() - t0
    return ckpt, art, times


def end_to_end(art: Path, device: str, steps: int, threads: int) -> dict:
    from ldm3d_edge.runtime import Pipeline

    t0 = time.perf_counter()
    pipe = Pipeline.load(art, device=device, num_threads=threads)
    load_s = time.perf_counter() - t0
    out = pipe("a red sphere in front of a blue cube on a grey floor", num_inference_steps=steps, seed=0)
    m = out.metrics
    res = {"device": out.device, "load_s": load_s, "steps": steps, "total_s": m.total_s,
           "text_encoder_s": m.text_encoder_s, "unet_step_s": m.unet_step_s, "vae_decode_s": m.vae_decode_s,
           "rgb_shape": list(out.rgb.shape), "depth_range": [float(out.depth.min()), float(out.depth.max())]}
    del pipe, out
    gc.collect()
    return res


def unet_side_by_side(ckpt: Path, art: Path, size: int, repeat: int, threads: int) -> dict:
    """Median seconds per UNet call (batch 2) per runtime, the runtimes interleaved in each round."""
    import torch
    from diffusers import UNet2DConditionModel

    from ldm3d_edge.runtime import read_manifest
    from ldm3d_edge.runtime.backends import create_backend
    from ldm3d_edge.runtime.models import UNet

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    lat = size // 8
    sample = rng.standard_normal((2, 4, lat, lat), dtype=np.float32)
    hidden = rng.standard_normal((2, 77, 768), dtype=np.float32)
    t = np.full((2,), 500.0, np.float32)
    manifest = read_manifest(art)

    runners = {}
    tunet = UNet2DConditionModel.from_pretrained(str(ckpt), subfolder="unet").eval()
    ts, th, tt = torch.from_numpy(sample), torch.from_numpy(hidden), torch.from_numpy(t)

    def torch_step():
        with torch.inference_mode():
            return tunet(ts, tt, encoder_hidden_states=th, return_dict=False)[0]

    runners["diffusers PyTorch FP32"] = torch_step
    for label, fmt, dev, prec in (("OpenVINO CPU f32", "openvino", "CPU", "f32"),
                                  ("ONNX Runtime CPU f32", "onnx", "CPU", None),
                                  ("OpenVINO CPU bf16 (hint)", "openvino", "CPU", "bf16")):
        part = UNet(manifest, create_backend(fmt, dev, precision=prec, num_threads=threads, cache_dir=""), fmt)
        part.compiled(size, size)
        runners[label] = (lambda p=part: p(sample, t, hidden, size, size))
    times = interleaved(runners, repeat)
    base = times["diffusers PyTorch FP32"]["median_s"]
    return {k: {**v, "speedup_vs_torch": base / v["median_s"]} for k, v in times.items()}


def to_markdown(r: dict) -> str:
    lines = [f"# Full-size ldm3d-4c (random weights), {r['size']}x{r['size']}",
             "", f"Machine: {r['machine']['cpu']}, {r['machine']['cores']} cores, {r['threads']} threads; "
             f"torch {r['machine'].get('torch')}, OpenVINO {r['machine'].get('openvino')}, "
             f"ONNX Runtime {r['machine'].get('onnxruntime')}.", ""]
    if r.get("prepare"):
        lines += [f"Build + export: " + ", ".join(f"{k} {v:.0f}s" for k, v in r["prepare"].items()), ""]
    lines += ["## End to end", "", "| device | load s | text enc s | UNet s/step | VAE decode s | total s (steps) |",
              "|---|---|---|---|---|---|"]
    for e in r["end_to_end"]:
        lines.append(f"| {e['device']} | {e['load_s']:.1f} | {e['text_encoder_s']:.2f} | "
                     f"{statistics.median(e['unet_step_s']):.2f} | {e['vae_decode_s']:.2f} | "
                     f"{e['total_s']:.1f} ({e['steps']}) |")
    lines += ["", f"## UNet step (batch 2), median of {r['repeat']} interleaved runs", "",
              "| runtime | median s | min s | max s | speed-up vs PyTorch |", "|---|---|---|---|---|"]
    for k, v in r["unet_step"].items():
        lines.append(f"| {k} | {v['median_s']:.2f} | {v['min_s']:.2f} | {v['max_s']:.2f} | "
                     f"{v['speedup_vs_torch']:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/ldm3d-fullsize", help="where the checkpoint and artifacts are kept")
    ap.add_argument("--out", default="benchmarks/results/fullsize", help="output prefix for .json and .md")
    ap.add_argument("--release", default="ldm3d-4c")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=3, help="denoising steps of the end-to-end runs")
    ap.add_argument("--repeat", type=int, default=3, help="timed UNet rounds after one warm-up")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--skip-unet", action="store_true")
    a = ap.parse_args(argv)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    ckpt, art, prep = build_and_export(work, a.release, a.size)
    print("prepared", prep, flush=True)
    r = {"release": a.release, "size": a.size, "threads": a.threads, "repeat": a.repeat, "machine": machine(),
         "prepare": prep, "end_to_end": []}
    for dev in ("openvino:CPU", "onnx:CPU"):
        r["end_to_end"].append(end_to_end(art, dev, a.steps, a.threads))
        print(json.dumps(r["end_to_end"][-1]), flush=True)
    r["unet_step"] = {} if a.skip_unet else unet_side_by_side(ckpt, art, a.size, a.repeat, a.threads)
    r["peak_rss_gb"] = peak_rss_gb()
    write_results(a.out, r, to_markdown(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
