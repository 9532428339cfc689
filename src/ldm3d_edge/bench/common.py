"""What the benchmarks share: side-by-side timing (every runner once per round, rounds repeated, so machine
noise hits all alike) and writing results as JSON plus a markdown table."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..runtime.result import atomic_write


def interleaved(runners: dict[str, Callable[[], object]], repeat: int, alternate: bool = False) -> dict[str, dict]:
    """One untimed warm-up call each, then `repeat` timed rounds; median, min, max and every run, in seconds.
    alternate: every second round runs in the reverse order, so a bias of a place in the round cancels (timed
    against itself in a fixed order, a full-size UNet read 0.96x; benchmarks/int8_pareto.py)."""
    times: dict[str, list[float]] = {k: [] for k in runners}
    for fn in runners.values():
        fn()
    for r in range(repeat):
        order = list(runners.items())
        for k, fn in (order[::-1] if alternate and r % 2 else order):
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v), "runs": v}
            for k, v in times.items()}


def peak_rss_gb() -> float:
    """This process's peak resident memory so far (VmHWM), in GiB; NaN where /proc is not there."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024**2
    except (OSError, StopIteration):
        return float("nan")


def write_results(out: str | Path, result: dict, markdown: str) -> None:
    """<out>.json and <out>.md (each written whole or not at all), and the table on stdout."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out.with_suffix(".json"), lambda p: Path(p).write_text(json.dumps(result, indent=2)))
    atomic_write(out.with_suffix(".md"), lambda p: Path(p).write_text(markdown))
    print(markdown)


ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def machine() -> dict:
    """CPU model, logical cores, the ISA flags that matter for FP32/BF16/INT8 kernels, library versions."""
    import importlib.metadata as md

    info: dict[str, Any] = {"cpu": platform.processor() or "", "cores": os.cpu_count(),
                            "python": platform.python_version(), "isa": []}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    info["isa"] = [x for x in ISA_FLAGS if x in flags]
                    break
    except OSError:
        pass
    for lib in ("torch", "diffusers", "openvino", "onnxruntime", "nncf", "numpy"):
        try:
            info[lib] = md.version(lib)
        except md.PackageNotFoundError:
            pass
    try:
        from ..runtime.backends.openvino_backend import core

        info["openvino_devices"] = list(core().available_devices)
        info["openvino_cpu_capabilities"] = list(core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # informational only: a broken plugin must not stop a benchmark
        pass
    return info


def cpu_times() -> tuple[int, int] | None:
    """(steal, total) jiffies of all CPUs so far, from /proc/stat; None where it is not there. Steal is the time
    the hypervisor ran something else while this VM wanted the CPU: a shared host's contention, which slows every
    row of a benchmark by an amount no number in the table would otherwise show."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(x) for x in fields[1:]]
    return (values[7] if len(values) > 7 else 0), sum(values[:8])


def steal_pct(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """CPU steal between two cpu_times() readings, in percent of all CPU time; None without /proc/stat."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return 100.0 * (after[0] - before[0]) / (after[1] - before[1])
