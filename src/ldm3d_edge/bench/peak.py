"""The machine's measured matmul peak per precision, the denominator of the roofline: one large MatMul with constant
weights compiled by OpenVINO for the CPU in FP32, BF16 (inference precision hint) and INT8 (FakeQuantize on the
activations, i8 weights with a dequantizing scale: the pattern NNCF writes, which the CPU plugin runs as u8 x i8).

    python -m ldm3d_edge.bench.peak --threads 2 --out benchmarks/results/peak

Each kernel's real precision is read back from the compiled model (the same check as `ldm3d quantize`), so an
INT8 row that silently ran in float is reported as such. Writes <out>.json and <out>.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from .common import interleaved, write_results

PRECISIONS = {"FP32": ("f32", False), "BF16": ("bf16", False), "INT8": ("bf16", True)}


def matmul_model(m: int, k: int, n: int, int8: bool):
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([m, k], np.float32, name="x")
    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    if not int8:
        return ov.Model([ops.matmul(x, ops.constant(w), False, False)], [x], "matmul")
    lo, hi = ops.constant(np.float32(0.0)), ops.constant(np.float32(4.0))
    xq = ops.fake_quantize(x, lo, hi, lo, hi, 256)
    scale = np.abs(w).max(0, keepdims=True) / 127
    wq = ops.constant(np.round(w / scale).astype(np.int8))
    wd = ops.multiply(ops.convert(wq, np.float32), ops.constant(scale.astype(np.float32)))
    return ov.Model([ops.matmul(xq, wd, False, False)], [x], "matmul_int8")


def measure(size: int = 2048, threads: int = 2, repeat: int = 5, calls: int = 4) -> dict:
    """GOP/s per precision (2*M*K*N per call, `calls` calls per timed round, median of `repeat` rounds)."""
    import openvino as ov

    from ..quantization.openvino_int8 import kernel_precisions

    core = ov.Core()
    x = np.abs(np.random.default_rng(1).standard_normal((size, size), dtype=np.float32))
    compiled, precisions = {}, {}
    for name, (hint, int8) in PRECISIONS.items():
        c = core.compile_model(matmul_model(size, size, size, int8), "CPU",
                               {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads,
                                "PERFORMANCE_HINT": "LATENCY"})
        compiled[name] = c
        precisions[name] = kernel_precisions(c)["gflops_by_precision"]

    def runner(c):
        req = c.create_infer_request()
        return lambda: [req.infer({0: x}) for _ in range(calls)]

    times = interleaved({k: runner(c) for k, c in compiled.items()}, repeat)
    flop = 2.0 * size ** 3 * calls
    return {"size": size, "threads": threads, "repeat": repeat, "calls_per_round": calls,
            "openvino": ov.__version__,
            "peaks": {k: {"gops": flop / t["median_s"] / 1e9, "median_s": t["median_s"], "min_s": t["min_s"],
                          "max_s": t["max_s"], "kernel_precisions": precisions[k]} for k, t in times.items()}}


def markdown(r: dict) -> str:
    lines = [f"# Matmul peak, OpenVINO {r['openvino']} CPU, {r['threads']} threads", "",
             f"One {r['size']}x{r['size']}x{r['size']} MatMul with constant weights, {r['calls_per_round']} calls per "
             f"round, median of {r['repeat']} interleaved rounds.", "",
             "| precision | GOP/s | kernel input precision (share of FLOPs) |", "|---|---|---|"]
    for k, p in r["peaks"].items():
        total = sum(p["kernel_precisions"].values()) or 1.0
        kp = ", ".join(f"{t} {100 * f / total:.0f} %" for t, f in p["kernel_precisions"].items())
        lines.append(f"| {k} | {p['gops']:.0f} | {kp} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2048, help="M = K = N of the matmul")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/peak")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    r = measure(a.size, a.threads, a.repeat)
    r["seconds"] = time.perf_counter() - t0
    write_results(a.out, r, markdown(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
