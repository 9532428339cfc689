"""One UNet compiled for batches 1-2 against two static compiles (issue 20: the `fast` preset's unguided steps).

A guidance cut-off runs its last steps at batch 1. Compiling a second, static batch-1 UNet beside the batch-2 one
cost a one-image run more time than those steps saved and held the weights twice
(benchmarks/results/bench-ldm3d-4c-512-presets-int8-mixed); the runtime now compiles the UNet once for the batch
range instead (runtime/models.py, UNetPart.runs_batch). This measures what that range costs per step: each IR is
compiled three ways by OpenVINO (static batch 2, static batch 1, batch 1..2), each compile timed with the process's
resident memory before and after; then one call per model and batch per round, interleaved, after one untimed call
each. No compile cache. CPU steal and the matmul peaks before and after are recorded beside the table.

    python -m benchmarks.unet_batch_range FOLDER [FOLDER ...] [--hint bf16] [--rounds 6]
        [--out benchmarks/results/unet-batch-range/unet-batch-range]

FOLDER: an artifact folder with an OpenVINO UNet (e.g. the bench's full-size ldm3d-4c exports under
~/.cache/ldm3d-edge/fullsize). `ldm3d bench --speed balanced,fast` gives the end-to-end effect.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from pathlib import Path

import numpy as np

from ldm3d_edge.bench.common import cpu_times, machine, steal_pct, write_results
from ldm3d_edge.runtime import constants as C

from .serve_load import rss_mb

RUNS = (("static 2", "static2", 2), ("range @2", "range", 2), ("static 1", "static1", 1), ("range @1", "range", 1))


def rss_gb() -> float:
    return rss_mb(os.getpid()) / 1024


def peaks() -> dict:
    from ldm3d_edge.bench.peak import measure

    return {k: round(p["gops"]) for k, p in measure(2048, 2, repeat=3)["peaks"].items()}


def measure_folder(folder: Path, hint: str, rounds: int) -> dict:
    import openvino as ov

    core = ov.Core()
    xml = folder / C.UNET / "openvino_model.xml"
    shapes = {p.get_any_name(): list(p.get_partial_shape().to_shape()) for p in core.read_model(str(xml)).inputs}

    def compile_for(batch) -> tuple:
        model = core.read_model(str(xml))
        model.reshape({k: ov.PartialShape([batch, *v[1:]]) for k, v in shapes.items()})
        before, t0 = rss_gb(), time.perf_counter()
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": 2})
        seconds = time.perf_counter() - t0
        del model
        gc.collect()
        return compiled, seconds, rss_gb() - before

    def inputs(batch: int) -> dict:
        rng = np.random.default_rng(0)
        return {k: np.full(batch, 500, np.float32) if len(v) == 1 else
                rng.standard_normal([batch, *v[1:]], dtype=np.float32) for k, v in shapes.items()}

    models, compile_s, rss = {}, {}, {}
    for key, batch in (("static2", ov.Dimension(2)), ("static1", ov.Dimension(1)), ("range", ov.Dimension(1, 2))):
        models[key], compile_s[key], rss[key] = compile_for(batch)
    outs = {label: models[key](inputs(b))[0] for label, key, b in RUNS}   # untimed first calls
    times: dict[str, list[float]] = {label: [] for label, _, _ in RUNS}
    for _ in range(rounds):
        for label, key, b in RUNS:
            x = inputs(b)
            t0 = time.perf_counter()
            models[key](x)
            times[label].append(time.perf_counter() - t0)
    return {"folder": str(folder), "inputs": shapes, "compile_s": compile_s, "rss_added_gb": rss,
            "max_abs_diff": {"batch 2": float(np.abs(outs["static 2"] - outs["range @2"]).max()),
                             "batch 1": float(np.abs(outs["static 1"] - outs["range @1"]).max())},
            "step_s": times, "median_s": {k: statistics.median(v) for k, v in times.items()},
            "range_vs_static_same_round": {
                f"batch {b}": statistics.median(r / s for r, s in zip(times[f"range @{b}"], times[f"static {b}"]))
                for b in (2, 1)}}


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"# One UNet compiled for batches 1-2 vs two static compiles ({result['hint']} hint)", "",
             f"{m['cpu']}, {m['cores']} logical cores, ISA: {', '.join(m['isa'])}. {result['rounds']} rounds, "
             "calls interleaved; median (min-max). CPU steal over the run: "
             f"{result['steal_pct']:.1f} %. Matmul peaks GOP/s before → after: "
             + ", ".join(f"{k} {result['peaks_before'][k]} → {result['peaks_after'][k]}"
                         for k in result["peaks_before"]), "",
             "| UNet | static 2 s | range @2 s | range/static @2 | static 1 s | range @1 s | range/static @1 | "
             "compile s static 2 / 1 / range | RSS added GB static 2 / 1 / range |",
             "|---|---|---|---|---|---|---|---|---|"]
    for f in result["folders"]:
        t, c, r = f["step_s"], f["compile_s"], f["rss_added_gb"]

        def cell(label: str, t: dict = t) -> str:
            v = t[label]
            return f"{statistics.median(v):.3f} ({min(v):.3f}–{max(v):.3f})"

        rr = f["range_vs_static_same_round"]
        lines.append(f"| {Path(f['folder']).name} | {cell('static 2')} | {cell('range @2')} | "
                     f"{rr['batch 2']:.3f}x | {cell('static 1')} | {cell('range @1')} | {rr['batch 1']:.3f}x | "
                     f"{c['static2']:.1f} / {c['static1']:.1f} / {c['range']:.1f} | "
                     f"{r['static2']:.2f} / {r['static1']:.2f} / {r['range']:.2f} |")
    lines += ["", "Ratios: the median of the per-round ratios. A cut-off image of G guided and U unguided steps costs "
              "G × range@2 + U × range@1 with one compile, against G × static 2 + U × static 1 plus a second "
              "compile (a cache import when warm) and the weights held twice.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--hint", default="bf16", choices=("f32", "bf16"), help="OpenVINO inference precision hint")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--out", default="benchmarks/results/unet-batch-range/unet-batch-range")
    a = ap.parse_args(argv)
    missing = [str(f) for f in a.folders if not (f / C.UNET / "openvino_model.xml").is_file()]
    if missing:
        ap.error(f"no OpenVINO UNet in {', '.join(missing)}")
    before, peaks_before = cpu_times(), peaks()
    folders = [measure_folder(f, a.hint, a.rounds) for f in a.folders]
    result = {"machine": machine(), "hint": a.hint, "rounds": a.rounds, "peaks_before": peaks_before,
              "peaks_after": peaks(), "steal_pct": steal_pct(before, cpu_times()) or 0.0, "folders": folders}
    write_results(a.out, result, markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
