"""What verifying a model folder costs at full size: ldm3d-4c (random weights from the release config, 3.4 GB UNet)
exported to OpenVINO IR at 512x512, then

- the first verification (every file hashed; page cache dropped first when this process may, else as it is),
- a warm verification (hashes remembered per file version: a stat per file),
- Pipeline.load with verify=True and verify=False, warm (compile cache filled), interleaved rounds.

    python -m benchmarks.verify_cost [--work /tmp/ldm3d-verify] [--rounds 3]

Writes benchmarks/results/verify-ldm3d-4c-512.json and .md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from ldm3d_edge.bench.common import machine, write_results
from ldm3d_edge.runtime import Pipeline
from ldm3d_edge.runtime.verify import verify_folder


def drop_page_cache() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/ldm3d-verify", help="where the full-size model is built and exported")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/verify-ldm3d-4c-512")
    a = ap.parse_args(argv)
    work = Path(a.work)
    os.environ["LDM3D_EDGE_CACHE"] = str(work / "cache")
    art = work / "ldm3d-4c-ov"
    if not (art / "manifest.json").is_file():
        from ldm3d_edge.export import export_pipeline
        from ldm3d_edge.export.random_model import build_release_pipeline

        src = build_release_pipeline("ldm3d-4c", work / "ldm3d-4c")
        export_pipeline(src, art, fmt="openvino", progress=True)
    size = sum(p.stat().st_size for p in art.rglob("*") if p.is_file())
    dropped = drop_page_cache()
    cold = verify_folder(art, progress=True)
    warm = verify_folder(art)
    assert cold.ok and warm.ok and warm.hashed == 0
    Pipeline.load(art, device="openvino:CPU")   # fills the compile cache
    loads: dict[str, list[float]] = {"verify on": [], "verify off": []}
    for _ in range(a.rounds):
        for label, verify in (("verify on", True), ("verify off", False)):
            t0 = time.perf_counter()
            pipe = Pipeline.load(art, device="openvino:CPU", verify=verify)
            loads[label].append(time.perf_counter() - t0)
            del pipe
    result = {"model": "ldm3d-4c 512x512 FP32 OpenVINO IR (random weights, release config)", "bytes": size,
              "files": cold.files, "page_cache_dropped": dropped,
              "first_verify_s": round(cold.seconds, 2), "first_verify_gb_per_s": round(cold.bytes_hashed / 1e9 /
                                                                                       cold.seconds, 2),
              "warm_verify_s": round(warm.seconds, 4),
              "load_s": {k: [round(x, 3) for x in v] for k, v in loads.items()},
              "load_median_s": {k: round(statistics.median(v), 3) for k, v in loads.items()},
              "machine": machine()}
    on, off = result["load_median_s"]["verify on"], result["load_median_s"]["verify off"]
    md = (f"# Verifying a full-size model folder\n\n{result['model']}: {size / 1e9:.2f} GB in {cold.files} files; "
          f"{result['machine'].get('cpu', '')}, {result['machine'].get('cores')} cores, "
          f"{' '.join(result['machine'].get('isa', []))}\n\n"
          "| what | seconds |\n|---|---|\n"
          f"| first verification: every file hashed (page cache {'dropped' if dropped else 'as it was'}) | "
          f"{cold.seconds:.2f} ({result['first_verify_gb_per_s']} GB/s) |\n"
          f"| warm verification: hashes remembered, a stat per file | {warm.seconds:.4f} |\n"
          f"| warm Pipeline.load, verify on (median of {a.rounds}) | {on:.3f} |\n"
          f"| warm Pipeline.load, verify off (median of {a.rounds}) | {off:.3f} |\n\n"
          f"Loads interleaved on/off, compile cache filled; verify on costs {on - off:+.3f} s per warm load.\n")
    write_results(a.out, result, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
