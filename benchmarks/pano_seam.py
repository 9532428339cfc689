"""How well a generated panorama closes at +-180 degrees, with and without circular padding of the latent.

The seam is the step across the wrap column (last column -> first) compared with the steps between neighbouring
columns inside the image:
    wrap     mean |x[:, W-1] - x[:, 0]|                 (over rows and channels)
    inside   mean |x[:, j+1] - x[:, j]| over all j
    ratio    wrap / inside (1 = no seam, on average over many images)
    rank     the wrap step's percentile among the W column steps of the same image (about 0.5 seamless, 1 = the
             worst column of the image)
for RGB (in [0, 1]) and depth, averaged over prompts x seeds. Every padding runs the same prompts and seeds.
A reference row measures the held-out training renders (seamless by construction) the same way: their rooms
have a wall corner at +-180 degrees, so even a perfect panorama has an RGB step there; depth has none.

    python -m benchmarks.pano_seam [--model ARTIFACTS] [--paddings 0,4,8] [--seeds 4] [--steps 30]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from ldm3d_edge.bench.common import machine, write_results
from ldm3d_edge.runtime import Pipeline
from ldm3d_edge.runtime.pipeline import pano_settings

PROMPTS = [
    "360 view of a room with a green cone and a purple cylinder on a dark floor",
    "360 view of a plain with a red sphere and a yellow cube under a blue sky",
    "360 view of a room with a blue cube on a grey floor",
    "360 view of a room with an orange torus and a cyan sphere on a beige floor",
    "360 view of a plain with a pink cylinder under a blue sky",
    "360 view of a room with a yellow cone on a brown floor",
]


def seam_metrics(x: np.ndarray) -> dict:
    """wrap / inside / ratio / rank of one (H, W) or (H, W, C) equirectangular image; see the module docstring."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[..., None]
    steps = np.abs(np.diff(x, axis=1, append=x[:, :1])).mean(axis=(0, 2))   # W column steps; the last one wraps
    wrap, inside = float(steps[-1]), float(steps[:-1].mean())
    return {"wrap": wrap, "inside": inside, "ratio": wrap / max(inside, 1e-12),
            "rank": float((steps[:-1] < wrap).mean())}


def measure(pipe: Pipeline, paddings: list[int], prompts: list[str], seeds: int, steps: int) -> dict:
    """Each padding over prompts x seeds, at 2:1 (the model's own size when it is 2:1 already)."""
    h, w, _ = pano_settings(pipe.manifest, None, None)
    size = {"height": h, "width": w}
    rows = {}
    for p in paddings:
        per = {"rgb": [], "depth": []}
        times = []
        for prompt in prompts:
            for seed in range(seeds):
                out = pipe(prompt, num_inference_steps=steps, seed=seed, circular_padding=p, **size)
                times.append(out.metrics.total_s)
                per["rgb"].append(seam_metrics(out.rgb_float))
                per["depth"].append(seam_metrics(out.depth))
        rows[p] = {k: {m: statistics.fmean(r[m] for r in v) for m in ("wrap", "inside", "ratio", "rank")}
                   for k, v in per.items()}
        rows[p]["seconds_per_image"] = statistics.median(times)
        rows[p]["images"] = len(times)
    return rows


def measure_renders(path: Path) -> dict:
    """The same metrics on rendered panoramas (an .npz with rgb uint8 (N, H, W, 3) and depth float (N, H, W))."""
    data = np.load(path)
    rgb = data["rgb"].astype(np.float32) / 255.0
    depth = data["depth"].astype(np.float32)
    if np.issubdtype(data["depth"].dtype, np.integer):
        depth /= float(np.iinfo(data["depth"].dtype).max)
    row = {}
    for key, images in (("rgb", rgb), ("depth", depth)):
        ms = [seam_metrics(x) for x in images]
        row[key] = {m: statistics.fmean(r[m] for r in ms) for m in ("wrap", "inside", "ratio", "rank")}
    row.update(seconds_per_image=0.0, images=len(rgb))
    return row


def markdown(r: dict) -> str:
    lines = [f"Panorama seam, {r['model']} {r['width']}x{r['height']}, {r['steps']} steps, {r['images']} images "
             f"({len(r['prompts'])} prompts x {r['seeds']} seeds), {r['device']}", "",
             "| circular padding (latent cols) | RGB wrap | RGB inside | RGB ratio | RGB rank | depth wrap | "
             "depth inside | depth ratio | depth rank | s/image |", "|---|---|---|---|---|---|---|---|---|---|"]
    rows = dict(r["paddings"])
    if r.get("renders"):
        rows[f"renders ({r['renders']['images']} held-out, no model)"] = r["renders"]
    for p, row in rows.items():
        c, d = row["rgb"], row["depth"]
        lines.append(f"| {p} | {c['wrap']:.4f} | {c['inside']:.4f} | {c['ratio']:.2f} | {c['rank']:.2f} | "
                     f"{d['wrap']:.4f} | {d['inside']:.4f} | {d['ratio']:.2f} | {d['rank']:.2f} | "
                     + (f"{row['seconds_per_image']:.2f} |" if row["seconds_per_image"] else "— |"))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="panorama artifact folder (default: the embedded model's panorama export)")
    ap.add_argument("--paddings", default="0,4,8", help="comma-separated latent columns (default 0,4,8)")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--device", default="openvino:CPU")
    ap.add_argument("--renders", default="training/data/heldout_pano-128.npz",
                    help="rendered panoramas for the reference row (skipped when missing)")
    ap.add_argument("--out", default="benchmarks/results/pano-seam", help="writes OUT.json and OUT.md")
    a = ap.parse_args(argv)
    model = a.model
    if model is None:
        from ldm3d_edge.embedded import embedded_artifacts

        model = embedded_artifacts()[1]
    pipe = Pipeline.load(model, device=a.device)
    paddings = [int(x) for x in a.paddings.split(",")]
    t0 = time.perf_counter()
    rows = measure(pipe, paddings, PROMPTS, a.seeds, a.steps)
    m = pipe.manifest
    h, w, _ = pano_settings(m, None, None)
    result = {"model": m.root.name, "height": h, "width": w, "steps": a.steps, "seeds": a.seeds,
              "prompts": PROMPTS, "images": len(PROMPTS) * a.seeds, "device": pipe.device,
              "paddings": {str(p): v for p, v in rows.items()},
              "renders": measure_renders(Path(a.renders)) if Path(a.renders).is_file() else None,
              "seconds": round(time.perf_counter() - t0, 1),
              "machine": machine()}
    write_results(Path(a.out), result, markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
