"""A long walk into the picture (issue 21): per keyframe, the share of the view nobody saw before completion and
after it, and the seconds it took.

1. On the embedded model (128^2, and a 256x128 panorama with circular padding): generate a result from a held-out
   caption (30 DDIM steps), then walk `--keyframes` keyframes (default 8) out to half the nearest content's distance, as
   `ldm3d explore RESULT --keyframes 8 --distance 0.5` does (20 steps per keyframe, strength 0.6).
2. With `--fullsize DIR` (an artifact folder at 512^2, e.g. INT8 full of random release weights): timing only,
   on a rendered scene at 512^2 (its exact depth), `--fullsize-keyframes` keyframes (default 4) of the same walk.

    PYTHONPATH=src:. python -m benchmarks.explore_walk [--fullsize DIR] [--fullsize-keyframes 4]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ldm3d_edge.bench.common import cpu_times, machine, steal_pct, write_results
from ldm3d_edge.scene3d import RGBD, Camera, DepthMapping
from ldm3d_edge.scene3d.explore import explore

STEPS, STRENGTH = 20, 0.6


def walk(pipe, rgbd: RGBD, prompt: str, keyframes: int) -> dict:
    before = cpu_times()
    result, _ = explore(pipe, rgbd, prompt, distance=0.5, keyframes=keyframes, frames=2, seed=0, progress=True,
                        num_inference_steps=STEPS, guidance_scale=5.0, strength=STRENGTH)
    ks = [{"unseen": k.unseen, "unseen_after": k.unseen_after, "seconds": k.seconds, "added_points": k.added_points}
          for k in result.keyframes]
    return {"keyframes": ks, "seconds_per_keyframe": float(np.mean([k["seconds"] for k in ks])),
            "steal_pct": steal_pct(before, cpu_times()), "points": len(result.points)}


def embedded_walks(keyframes: int) -> dict:
    from ldm3d_edge.embedded import embedded_artifacts
    from ldm3d_edge.runtime import Pipeline
    from ldm3d_edge.runtime.pipeline import pano_settings
    from training.dataset import HELDOUT_PANO_SEED0, HELDOUT_SEED0
    from training.scenes import random_panorama, random_scene

    perspective, panorama, _ = embedded_artifacts(device="openvino:CPU")
    out = {}
    for kind, folder, seed0, make in (("perspective", perspective, HELDOUT_SEED0, random_scene),
                                      ("panorama", panorama, HELDOUT_PANO_SEED0, random_panorama)):
        pipe = Pipeline.load(folder, device="openvino:CPU")
        caption = make(np.random.default_rng(seed0)).caption
        size = {}
        if kind == "panorama":   # 2:1 with circular padding, as `ldm3d generate --pano` makes it
            h, w, pad = pano_settings(pipe.manifest, None, None)
            size = {"height": h, "width": w, "circular_padding": pad}
        result = pipe(caption, num_inference_steps=30, seed=0, **size)
        out[kind] = {"prompt": caption, "size": list(result.rgb.shape[:2]),
                     **walk(pipe, RGBD.from_result(result), caption, keyframes)}
    return out


def fullsize_walk(folder: str, keyframes: int) -> dict:
    from ldm3d_edge.runtime import Pipeline
    from training.dataset import HELDOUT_SEED0
    from training.scenes import random_scene, render

    pipe = Pipeline.load(folder, device="openvino:CPU")
    h, w = pipe.manifest.height, pipe.manifest.width
    scene = random_scene(np.random.default_rng(HELDOUT_SEED0))
    s = render(scene, w, h)
    rgbd = RGBD((s.rgb * 255).round().astype(np.uint8), s.depth, Camera.for_image(h, w, "perspective", 60.0),
                DepthMapping(float(s.distance.min()), float(s.distance.max())))
    return {"folder": str(folder), "size": [h, w], "precision": pipe.manifest.precision,
            **walk(pipe, rgbd, scene.caption, keyframes)}


def markdown(r: dict) -> str:
    m = r["machine"]
    out = ["# A long walk into the picture", "",
           f"Each keyframe: render the fused scene from the pose, inpaint what nobody saw ({STEPS} DDIM steps at "
           f"strength {STRENGTH}, guidance 5), lift it into the scene; walk out to half the nearest content's "
           f"distance. {m['cpu']}, {m['cores']} cores, CPU steal per walk below.", "",
           "| walk | size | keyframes | unseen before, per keyframe | unseen after | s / keyframe | steal |",
           "|---|---|---|---|---|---|---|"]
    rows = [(f"embedded {k}", v) for k, v in r["embedded"].items()]
    if r.get("fullsize"):
        rows.append((f"full-size random weights, {r['fullsize']['precision']}", r["fullsize"]))
    for name, v in rows:
        before = ", ".join(f"{100 * k['unseen']:.1f}" for k in v["keyframes"])
        after = max(k["unseen_after"] for k in v["keyframes"])
        steal = "–" if v["steal_pct"] is None else f"{v['steal_pct']:.1f} %"
        out.append(f"| {name} | {v['size'][1]}x{v['size'][0]} | {len(v['keyframes'])} | {before} % | "
                   f"{100 * after:.1f} % | {v['seconds_per_keyframe']:.2f} | {steal} |")
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keyframes", type=int, default=8)
    ap.add_argument("--fullsize", help="an artifact folder at 512^2 (timing only)")
    ap.add_argument("--fullsize-keyframes", type=int, default=4)
    ap.add_argument("--skip-embedded", action="store_true", help="keep the embedded rows of an earlier run")
    ap.add_argument("--fresh", action="store_true", help="drop every row of an earlier run")
    ap.add_argument("--out", default="benchmarks/results/explore-walk/summary")
    a = ap.parse_args(argv)
    out = Path(a.out)
    old = out.with_suffix(".json")
    # the rows this run does not redo are kept
    r = json.loads(old.read_text()) if old.is_file() and not a.fresh else {}
    r["machine"] = machine()
    if not a.skip_embedded:
        r["embedded"] = embedded_walks(a.keyframes)
    if a.fullsize:
        r["fullsize"] = fullsize_walk(a.fullsize, a.fullsize_keyframes)
    write_results(out, r, markdown(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
