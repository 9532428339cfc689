"""RGBD inpainting on its own (issue 21), on the embedded model against the scene renderer's ground truth.

Held-out rendered scenes (perspective 128x128 and panoramas 256x128, the embedded model's evaluation seeds): the
hole is the box around the first object, grown by 8 pixels; Pipeline.inpaint regenerates it from the scene's own
caption (30 DDIM steps, guidance 5, feather 1). Measured per sample:
- the known region (pixels more than 16 px from the hole): RGB PSNR and depth AbsRel of the output to the input,
  beside the VAE's own round trip of the input (encode, decode: the floor the known region can reach);
- the hole: RGB PSNR, mean colour error and depth AbsRel to the true render, and whether the object in it has
  the caption's colour (the model's adherence measure, on the hole region);
- the depth step across the hole's border (mean |new - old| over neighbouring pixel pairs), with and without the
  scale + shift fit, and that of the true render (the scene's own edges).

    PYTHONPATH=. python -m benchmarks.inpaint_quality [--samples 50] [--panoramas 20]
        [--out benchmarks/results/inpaint-embedded]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ldm3d_edge import metrics as M
from ldm3d_edge.bench.common import machine, write_results
from ldm3d_edge.runtime.inpaint import border_step, dilate

GROW = 8       # pixels around the object's box
FAR_FROM = 16  # known pixels this far from the hole count as "known region"


def hole_of(object_mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(object_mask == 0)
    hole = np.zeros(object_mask.shape, bool)
    hole[max(0, ys.min() - GROW): ys.max() + GROW + 1, max(0, xs.min() - GROW): xs.max() + GROW + 1] = True
    return hole


def run(pipe, n: int, panorama: bool, steps: int) -> list[dict]:
    from ldm3d_edge.runtime.depth import rgbd_to_image, split_rgbd
    from training.dataset import HELDOUT_PANO_SEED0, HELDOUT_SEED0
    from training.scenes import sample

    m = pipe.manifest
    rows = []
    for k in tqdm(range(n), desc="panorama" if panorama else "perspective", unit="sample"):
        s = sample((HELDOUT_PANO_SEED0 if panorama else HELDOUT_SEED0) + k, 128, panorama=panorama)
        if not (s.object_mask == 0).any():
            continue
        hole = hole_of(s.object_mask)
        h, w = hole.shape
        t0 = time.perf_counter()
        kw = dict(num_inference_steps=steps, guidance_scale=5.0, seed=k)
        out = pipe.inpaint(s.rgb, s.depth, hole, s.caption, **kw)
        seconds = time.perf_counter() - t0
        raw = pipe.inpaint(s.rgb, s.depth, hole, s.caption, align_depth=False, **kw)
        moments = pipe._vae_encoder()(rgbd_to_image(s.rgb, s.depth, m.depth_encoding, m.vae_channels), h, w)
        vae_rgb, vae_depth = split_rgbd(pipe.vae_decoder(moments[:, : m.latent_channels], h, w), m.depth_encoding)
        known = ~dilate(hole, FAR_FROM)
        colour = s.scene.objects[0].colour
        a = M.adherence(np.where(hole[..., None], out.rgb_float, 0.5), np.where(hole, out.depth, 0.0), colour)
        rows.append({
            "seed": k, "hole_share": float(hole.mean()), "known_share": float(known.mean()), "seconds": seconds,
            "known_rgb_psnr": M.psnr(out.rgb_float[known], s.rgb[known]),
            "known_depth_absrel": M.abs_rel(out.depth[known], s.depth[known]),
            "vae_rgb_psnr": M.psnr(vae_rgb[known], s.rgb[known]),
            "vae_depth_absrel": M.abs_rel(vae_depth[known], s.depth[known]),
            "hole_rgb_psnr": M.psnr(out.rgb_float[hole], s.rgb[hole]),
            "hole_colour_error": float(np.abs(out.rgb_float[hole].mean(0) - s.rgb[hole].mean(0)).mean()),
            "hole_depth_absrel": M.abs_rel(out.depth[hole], s.depth[hole]),
            "hole_colour_ok": bool(a["colour_ok"]),
            "border_step_aligned": border_step(out.depth, s.depth, hole),
            "border_step_raw": border_step(raw.depth, s.depth, hole),
            "border_step_truth": border_step(s.depth, s.depth, hole),
            "depth_fit": out.inpaint["depth_fit"]})
    return rows


def summarize(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if isinstance(rows[0][k], (int, float, bool)) and k != "seed"]
    out = {k: float(np.mean([r[k] for r in rows if np.isfinite(r[k])])) for k in keys}
    # the fit is applied only where it lowers the step (runtime.inpaint.align_hole_depth): count where it did
    out["fit_lowers_border_step"] = float(np.mean([r["depth_fit"]["applied"] for r in rows]))
    out["n"] = len(rows)
    return out


def markdown(results: dict, meta: dict, steps: int) -> str:
    out = ["# Inpainting on the embedded model, against the renderer's ground truth", "",
           f"Held-out rendered scenes (evaluation seeds); the hole: the first object's box grown by {GROW} px; "
           f"regenerated from the scene's caption, {steps} DDIM steps, guidance 5, feather 1 latent px, OpenVINO "
           f"CPU f32. Known region: pixels more than {FAR_FROM} px from the hole. VAE round trip: the input "
           "encoded and decoded, the floor for the known region. Border step: mean |depth inside - depth outside| "
           "over neighbouring pixel pairs across the hole's edge; 'truth' is the true render's own (its object "
           f"edges). {meta['cpu']}, {meta['cores']} cores.", "",
           "| measure | perspective | panorama |", "|---|---|---|"]
    p, q = results.get("perspective", {}), results.get("panorama", {})

    def row(label: str, key: str, fmt: str) -> None:
        out.append(f"| {label} | " + " | ".join(format(x[key], fmt) if key in x else "–" for x in (p, q)) + " |")

    row("samples", "n", ".0f")
    row("hole, share of the image", "hole_share", ".3f")
    row("known region: RGB PSNR to the input, dB", "known_rgb_psnr", ".2f")
    row("VAE round trip, same pixels: RGB PSNR, dB", "vae_rgb_psnr", ".2f")
    row("known region: depth AbsRel to the input", "known_depth_absrel", ".4f")
    row("VAE round trip, same pixels: depth AbsRel", "vae_depth_absrel", ".4f")
    row("hole: RGB PSNR to the true render, dB", "hole_rgb_psnr", ".2f")
    row("hole: mean colour error (0-1)", "hole_colour_error", ".3f")
    row("hole: depth AbsRel to the true render", "hole_depth_absrel", ".3f")
    row("hole: object in the caption's colour", "hole_colour_ok", ".1%")
    row("border step, depth fit (default)", "border_step_aligned", ".4f")
    row("border step, no fit", "border_step_raw", ".4f")
    row("border step of the true render", "border_step_truth", ".4f")
    row("samples where the fit lowered the step (and was applied)", "fit_lowers_border_step", ".1%")
    row("seconds per inpaint (with the fit)", "seconds", ".2f")
    return "\n".join(out + [""])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--panoramas", type=int, default=20)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--out", default="benchmarks/results/inpaint-embedded")
    a = ap.parse_args(argv)
    from ldm3d_edge.embedded import embedded_artifacts
    from ldm3d_edge.runtime import Pipeline

    perspective, panorama, _ = embedded_artifacts(device="openvino:CPU")
    raw = {"perspective": run(Pipeline.load(perspective, device="openvino:CPU"), a.samples, False, a.steps),
           "panorama": run(Pipeline.load(panorama, device="openvino:CPU"), a.panoramas, True, a.steps)}
    results = {k: summarize(v) for k, v in raw.items() if v}
    meta = machine()
    write_results(Path(a.out), {"machine": meta, "steps": a.steps, "summary": results, "samples": raw},
                  markdown(results, meta, a.steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
