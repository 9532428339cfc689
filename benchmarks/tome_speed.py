"""What token merging saves in UNet time at full size, side by side (issue 20: "measure it here, at 512² and on
1024x512 panoramas").

The release UNet (ldm3d-4c, random weights: the same shapes and FLOPs) exported as `ldm3d export` exports it
(export/graphs.py, writers.py: ONNX, then OpenVINO IR) without and with `--tome RATIO`, at 512x512 and 1024x512;
each IR compiled by the runtime's OpenVINO backend; one batch-2 UNet call (a guided step) timed per variant per
round, variants interleaved, after one untimed call each. CPU steal is recorded per round.

    python -m benchmarks.tome_speed [--ratios 0.3,0.5] [--rounds 5] [--precision f32|bf16]
        [--work /tmp/ldm3d-tome-speed] [--out benchmarks/results/tome-speed]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ldm3d_edge.bench.common import cpu_times, machine, steal_pct, write_results
from ldm3d_edge.export.random_model import release_parts
from ldm3d_edge.runtime import constants as C

SIZES = {"512x512": (512, 512), "1024x512": (512, 1024)}   # ldm3d-pano's UNet config is ldm3d-4c's


def export_unet(unet, vae, encoder, height: int, width: int, out: Path) -> tuple[Path, dict]:
    """The UNet graph exactly as `ldm3d export` writes it (FP32 IR); (xml path, input shapes)."""
    from ldm3d_edge.export.graphs import build_graphs
    from ldm3d_edge.export.writers import write_onnx, write_openvino

    graph = next(g for g in build_graphs(unet, vae, encoder, height, width) if g.component == C.UNET)
    shapes = {k: tuple(v.shape) for k, v in graph.inputs.items()}
    if not (out / C.OV_XML_FILE).is_file():
        onnx = write_onnx(graph, out.parent / (out.name + ".onnx"), fp16=False, stamp={})
        write_openvino(onnx, out, fp16=False, stamp={}, static_shapes=shapes)
        shutil.rmtree(onnx.parent, ignore_errors=True)
    return out / C.OV_XML_FILE, shapes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ratios", default="0.3,0.5")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--precision", default=None, help="OpenVINO inference precision (default: the CPU's own)")
    ap.add_argument("--work", default="/tmp/ldm3d-tome-speed")
    ap.add_argument("--out", default="benchmarks/results/tome-speed")
    a = ap.parse_args(argv)
    from ldm3d_edge.export.tome import apply_tome
    from ldm3d_edge.runtime.backends.openvino_backend import OpenVINOBackend

    ratios = [float(r) for r in a.ratios.split(",")]
    names = {None: "plain", **{r: f"tome-{r}" for r in ratios}}
    work = Path(a.work)
    # every IR first (the torch UNet and its patched copy: 7 GB), then the compiled models (3.4 GB each)
    unet, vae, encoder = release_parts("ldm3d-4c")
    exported = {}
    for size, (h, w) in SIZES.items():
        for ratio, name in names.items():
            patched = unet if ratio is None else copy.deepcopy(unet)
            if ratio is not None:
                apply_tome(patched, ratio, (h // 8, w // 8))
            exported[size, name] = export_unet(patched, vae, encoder, h, w, work / f"{size}-{name}")
            del patched
    del unet, vae, encoder
    backend = OpenVINOBackend("CPU", precision=a.precision, num_threads=os.cpu_count(), cache_dir=None)
    results = []
    for size in SIZES:
        models = {name: backend.load(*exported[size, name]) for name in names.values()}
        shapes = exported[size, "plain"][1]
        rng = np.random.default_rng(0)
        feed = {k: (rng.standard_normal(s).astype(np.float32) if k != C.UNET_TIMESTEP
                    else np.full(s, 500.0, np.float32)) for k, s in shapes.items()}
        for m in models.values():
            m(feed)   # first call: allocations, not timed
        times: dict[str, list[float]] = {n: [] for n in models}
        steal = []
        for _ in tqdm(range(a.rounds), desc=size, unit="round"):
            before = cpu_times()
            for n, m in models.items():
                t0 = time.perf_counter()
                m(feed)
                times[n].append(time.perf_counter() - t0)
            steal.append(steal_pct(before, cpu_times()))
        plain = statistics.median(times["plain"])
        rows = {n: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t),
                    "spread": (max(t) - min(t)) / statistics.median(t),
                    "speedup": plain / statistics.median(t),
                    "speedup_same_round": statistics.median(p / x for p, x in zip(times["plain"], t))}
                for n, t in times.items()}
        results.append({"size": size, "rows": rows, "steal_pct": steal, "times": times})
        del models
    flops = json.loads(Path("benchmarks/results/tome-flops.json").read_text())["results"]
    meta = {**machine(), "precision": a.precision or "the CPU's default"}
    write_results(Path(a.out), {"machine": meta, "rounds": a.rounds, "results": results, "flops": flops},
                  markdown(results, meta, flops, a.rounds))
    return 0


def markdown(results: list[dict], meta: dict, flops: list[dict], rounds: int) -> str:
    share = {(r["config"], x["ratio"]): x["share"] for r in flops for x in r["ratios"]}
    out = ["# Token merging: full-size UNet step time, side by side", "",
           f"{meta['cpu']}, {meta['cores']} cores, ISA {', '.join(meta.get('isa', []))}; OpenVINO "
           f"{meta.get('openvino')}, precision: {meta['precision']}. The ldm3d-4c UNet (random weights from the "
           "release config) exported as `ldm3d export [--tome RATIO]` exports it; one batch-2 call per variant per "
           f"round, {rounds} rounds interleaved, after one untimed call each. Speed-up: plain median / row median "
           "(in brackets: the median of the per-round ratios). FLOPs: benchmarks/results/tome-flops.md.", "",
           "| size | variant | s / call | spread | speed-up | FLOPs of plain | steal % per round |",
           "|---|---|---|---|---|---|---|"]
    for r in results:
        steal = ", ".join("–" if s is None else f"{s:.1f}" for s in r["steal_pct"])
        config = "ldm3d-4c" if r["size"] == "512x512" else "ldm3d-pano"
        for n, x in r["rows"].items():
            f = "100 %" if n == "plain" else f"{100 * share.get((config, float(n.split('-')[1])), float('nan')):.1f} %"
            out.append(f"| {r['size']} | {n} | {x['median_s']:.2f} ({x['min_s']:.2f}–{x['max_s']:.2f}) | "
                       f"{100 * x['spread']:.0f} % | {x['speedup']:.2f}x ({x['speedup_same_round']:.2f}x) | {f} | "
                       f"{steal} |")
    return "\n".join(out + [""])


if __name__ == "__main__":
    raise SystemExit(main())
