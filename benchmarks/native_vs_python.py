"""Native (C++ / C ABI) vs Python runtime: UNet seconds per step on the same artifact folder, side by side.

Each round runs the Python runtime and the native CLI once each, in fresh processes, from the same initial
latents; rounds interleave the two. Per-step time is the mean over all steps of a run (the native CLI reports the
UNet total), the median over rounds is reported. Needs a native build (native/, see docs/native.md).

    python -m benchmarks.native_vs_python ARTIFACTS --build build/native [--steps 5] [--rounds 2]
        [--precision f32|bf16]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ldm3d_edge.bench.common import machine, write_results

PROMPT = "a cozy reading nook with a window"
PY_WORKER = """
import json, sys, numpy as np
from ldm3d_edge.runtime import Pipeline
art, latents, steps, precision = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
pipe = Pipeline.load(art, device="openvino:CPU", precision=precision, cache_dir="")
m = pipe.manifest
lat = np.fromfile(latents, dtype="<f4").reshape(1, 4, m.height // 8, m.width // 8)
out = pipe(PROMPT, num_inference_steps=steps, guidance_scale=5.0, latents=lat)
print(json.dumps({"load_s": pipe.load_seconds, "unet_s": sum(out.metrics.unet_step_s), "total_s": out.metrics.total_s,
                  "rgb": out.rgb_float.ravel()[:4096].tolist()}))
""".replace("PROMPT", repr(PROMPT))


def run_python(art: str, latents: Path, steps: int, precision: str) -> dict:
    r = subprocess.run([sys.executable, "-c", PY_WORKER, art, str(latents), str(steps), precision],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_native(build: Path, art: str, latents: Path, steps: int, precision: str, out: Path) -> dict:
    r = subprocess.run([str(build / "ldm3d-cli"), art, PROMPT, "--steps", str(steps), "--latents", str(latents),
                        "--precision", precision, "--out", str(out)], capture_output=True, text=True, check=True)
    m = re.search(r"load ([\d.]+)s, text [\d.]+s, UNet ([\d.]+)s .* total ([\d.]+)s", r.stdout)
    return {"load_s": float(m.group(1)), "unet_s": float(m.group(2)), "total_s": float(m.group(3))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifacts")
    ap.add_argument("--build", default="build/native", help="native build folder (with ldm3d-cli)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--precision", default="f32", choices=["f32", "bf16", "f16"])
    ap.add_argument("--out", default="benchmarks/results/native-vs-python")
    a = ap.parse_args(argv)
    manifest = json.loads((Path(a.artifacts) / "manifest.json").read_text())
    h, w = manifest["height"], manifest["width"]
    runs = {"python": [], "native": []}
    with tempfile.TemporaryDirectory() as tmp:
        latents = Path(tmp) / "latents.f32"
        np.random.default_rng(0).standard_normal((1, 4, h // 8, w // 8), dtype=np.float32).astype("<f4").tofile(latents)
        for i in range(a.rounds):
            runs["python"].append(run_python(a.artifacts, latents, a.steps, a.precision))
            runs["native"].append(run_native(Path(a.build), a.artifacts, latents, a.steps, a.precision,
                                             Path(tmp) / f"n{i}"))
            print(f"round {i + 1}: python {runs['python'][-1]['unet_s'] / a.steps:.3f} s/step, native "
                  f"{runs['native'][-1]['unet_s'] / a.steps:.3f} s/step", flush=True)
    per_step = {k: statistics.median(r["unet_s"] / a.steps for r in v) for k, v in runs.items()}
    result = {"artifacts": a.artifacts, "size": [w, h], "steps": a.steps, "rounds": a.rounds,
              "precision": a.precision, "unet_s_per_step": per_step,
              "native_over_python": per_step["native"] / per_step["python"],
              "runs": {k: [{kk: vv for kk, vv in r.items() if kk != "rgb"} for r in v] for k, v in runs.items()},
              "machine": machine()}
    md = (f"Native vs Python runtime, {Path(a.artifacts).name} {w}x{h}, {a.precision}, {a.steps} steps, "
          f"{a.rounds} rounds (median of per-run means)\n\n| runtime | UNet s/step | load s (no compile cache) |\n"
          "|---|---|---|\n" + "".join(
              f"| {k} | {per_step[k]:.3f} | {statistics.median(r['load_s'] for r in runs[k]):.1f} |\n"
              for k in runs) + f"\nnative / python = {result['native_over_python']:.3f}\n")
    write_results(Path(a.out + f"-{a.precision}"), result, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
