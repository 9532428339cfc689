"""New viewpoints against the truth (issue 21): what a moved camera uncovers, filled by today's row fill and by
generative completion (scene3d/explore.py), compared with the scene renderer's true view from the new pose.

Held-out scenes (the embedded model's evaluation seeds) are rendered from pose A (the training camera's place,
8 degrees down; panoramas from the room's centre) with exact depth; the RGBD goes into the runtime's 3D path with
the depth mapping that reproduces the true distances. The camera then moves by a fraction of the nearest content's
distance (forward, and sideways by a third of that) to pose B. In the pixels A never saw:
  - RGB PSNR and mean colour error (mean |RGB - true RGB| over channels, 0-1) against the true view from B,
  - depth AbsRel of the filled distance against the true distance,
  - the border step: mean |inverse depth inside - inverse depth outside| across the unseen region's edge, beside
    the true view's own (its object edges),
for (a) the row fill of scene3d.render.fill_holes, (b) what generative completion starts from, no model
(scene3d.explore.starting_fill: render.background_fill's depth, render.occluder_rim, cracks closed) and (c) one
keyframe of generative completion (embedded model, the scene's caption, 30 DDIM steps, guidance 5).
Plus contact sheets: input A, true B, row fill, generative, and the depth of row fill, generative and truth.

    PYTHONPATH=. python -m benchmarks.explore_quality [--samples 50] [--panoramas 20] [--moves 0.25,0.5,1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ldm3d_edge import metrics as M
from ldm3d_edge.bench.common import machine, write_results
from ldm3d_edge.runtime.inpaint import border_step
from ldm3d_edge.scene3d import RGBD, Camera, DepthMapping, Pose
from ldm3d_edge.scene3d.explore import DEFAULT_STRENGTH, Explorer, starting_fill, unclipped_distance

PITCH = np.tan(np.radians(8.0))


def views(seed: int, panorama: bool, move: float, size: int = 128):
    """(RGBD at A, true sample at B, pose of B in A's camera frame)."""
    from training.scenes import CAMERA_Y, random_panorama, random_scene, render

    rng = np.random.default_rng(seed)
    scene = random_panorama(rng) if panorama else random_scene(rng)
    a = np.array([0.0, CAMERA_Y, 0.0])
    ahead = np.array([0.0, -PITCH, 1.0])
    h, w = size, 2 * size if panorama else size
    sa = render(scene, w, h, origin=tuple(a), look_at=None if panorama else tuple(a + ahead))
    camera = Camera.for_image(h, w, "equirectangular" if panorama else "perspective", 60.0)
    rgbd = RGBD((sa.rgb * 255).round().astype(np.uint8), sa.depth, camera,
                DepthMapping(float(sa.distance.min()), float(sa.distance.max())))
    step = move * float(np.percentile(sa.distance, 5))
    delta = np.array([step / 3, 0.0, step])                       # world: +x right, +z ahead
    sb = render(scene, w, h, origin=tuple(a + delta), look_at=None if panorama else tuple(a + delta + ahead))
    if panorama:
        position = np.array([delta[0], 0.0, -delta[2]])          # scene3d: looking along -z
        return rgbd, sb, Pose(np.eye(3), position)
    f = ahead / np.linalg.norm(ahead)
    r = np.cross([0.0, 1.0, 0.0], f)
    r /= np.linalg.norm(r)
    u = np.cross(f, r)
    return rgbd, sb, Pose(np.eye(3), np.array([delta @ r, delta @ u, -(delta @ f)]))


METHODS = ("row_fill", "background_fill", "generative")


def _depth_image(dist: np.ndarray, mapping: DepthMapping) -> np.ndarray:
    gray = (mapping.to_relative(np.maximum(dist, 1e-3)).clip(0, 1) * 255).round().astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def scores(image: np.ndarray, dist: np.ndarray, truth, unseen: np.ndarray, mapping: DepthMapping) -> dict:
    rgb = image.astype(np.float32) / 255
    inv, inv_true = mapping.to_relative(np.maximum(dist, 1e-3)), mapping.to_relative(truth.distance)
    rel_err = np.abs(dist[unseen] - truth.distance[unseen]) / truth.distance[unseen]
    # where the error is: pixels whose true surface is an object (at a small move mostly the rim of an object's
    # silhouette that A's pixel grid never sampled, which every fill gives the background's depth)
    on_object = truth.object_mask[unseen] >= 0
    return {"rgb_psnr": M.psnr(rgb[unseen], truth.rgb[unseen]),
            "colour_error": float(np.abs(rgb[unseen] - truth.rgb[unseen]).mean()),
            "depth_absrel": float(np.mean(rel_err)),
            "object_share": float(on_object.mean()),
            "depth_absrel_from_objects": float(rel_err[on_object].sum() / rel_err.size),
            "border_step": border_step(inv, inv, unseen), "border_step_truth": border_step(inv_true, inv_true, unseen)}


def run(pipe, n: int, panorama: bool, moves: list[float], steps: int, strength: float, sheet: list) -> list[dict]:
    from training.dataset import HELDOUT_PANO_SEED0, HELDOUT_SEED0
    from training.scenes import random_panorama, random_scene

    rows = []
    for k in tqdm(range(n), desc="panorama" if panorama else "perspective", unit="scene"):
        seed = (HELDOUT_PANO_SEED0 if panorama else HELDOUT_SEED0) + k
        caption = (random_panorama if panorama else random_scene)(np.random.default_rng(seed)).caption
        for move in moves:
            rgbd, truth, pose = views(seed, panorama, move)
            explorer = Explorer(pipe, rgbd, caption, num_inference_steps=steps,
                                guidance_scale=5.0, strength=strength)
            rows_img, rows_dist, unseen = explorer.view(pose)
            if unseen.sum() < 20:
                continue
            m = rgbd.mapping
            prior, prior_img, _ = starting_fill(rows_img, m.to_relative(np.where(rows_dist > 0, rows_dist, m.far)),
                                                unseen, wrap=panorama)
            t0 = time.perf_counter()
            explorer.complete(pose, seed=k)
            seconds = time.perf_counter() - t0
            gen_img, gen_dist, left = explorer.view(pose, fill=False)
            row = {"seed": k, "move": move, "unseen": float(unseen.mean()), "left_unseen": float(left.mean()),
                   "seconds": seconds,
                   "row_fill": scores(rows_img, rows_dist, truth, unseen, rgbd.mapping),
                   "background_fill": scores(prior_img, unclipped_distance(m, prior), truth, unseen, m),
                   "generative": scores(gen_img, gen_dist, truth, unseen, rgbd.mapping)}
            rows.append(row)
            if len(sheet) < 6 and move == moves[-1]:
                sheet.append([rgbd.rgb, (truth.rgb * 255).round().astype(np.uint8), rows_img, gen_img,
                              _depth_image(rows_dist, m), _depth_image(gen_dist, m),
                              _depth_image(truth.distance, m)])
    return rows


def summarize(rows: list[dict], moves: list[float]) -> dict:
    out = {}
    for move in moves:
        r = [x for x in rows if x["move"] == move]
        if not r:
            continue
        s = {"n": len(r), "unseen": float(np.mean([x["unseen"] for x in r])),
             "seconds": float(np.mean([x["seconds"] for x in r]))}
        for method in METHODS:   # means, and medians: a move of the whole nearest distance can put the camera
            # at an object's surface, where every fill is off by several times (AbsRel up to 4)
            values = {k: [x[method][k] for x in r if np.isfinite(x[method][k])] for k in r[0][method]}
            s[method] = {k: float(np.mean(v)) for k, v in values.items()}
            s[method + "_median"] = {k: float(np.median(v)) for k, v in values.items()}
        for key, short in (("depth_absrel", "absrel"), ("border_step", "step")):
            s[f"generative_lower_{short}"] = float(np.mean([x["generative"][key] <= x["row_fill"][key] for x in r]))
        out[str(move)] = s
    return out


def pooled(rows: list[dict]) -> dict:
    """Each method's mean scores over every sample of a kind, whatever its move."""
    return {m: {k: float(np.mean([x[m][k] for x in rows if np.isfinite(x[m][k])])) for k in rows[0][m]}
            for m in METHODS}


def markdown(results: dict, over_moves: dict, meta: dict, steps: int, strength: float) -> str:
    out = ["# New viewpoints against the truth: row fill vs generative completion", "",
           "Held-out rendered scenes, pose A = the training camera (panoramas: the room's centre), moved forward by "
           "the fraction below of the nearest content's distance and sideways by a third of that; scored in the "
           "pixels A never saw against the renderer's true view from the new pose. Generative: one keyframe of "
           f"`ldm3d explore` (embedded model, the scene's caption, {steps} DDIM steps, guidance 5, strength "
           f"{strength:g} from the row-filled view). Border step: "
           "mean |inverse depth| step across the unseen region's edge (the true view's own beside it). "
           f"{meta['cpu']}, {meta['cores']} cores.", "",
           "| kind | move | n | unseen | method | RGB PSNR dB | colour error | depth AbsRel mean (median) "
           "| border step mean (median) | true step | s / keyframe |", "|---" * 11 + "|"]
    for kind, by_move in results.items():
        for move, s in by_move.items():
            for method in METHODS:
                x, med = s[method], s[method + "_median"]
                out.append(f"| {kind} | {move} | {s['n']} | {100 * s['unseen']:.1f} % | {method.replace('_', ' ')} | "
                           f"{x['rgb_psnr']:.2f} | {x['colour_error']:.3f} | {x['depth_absrel']:.3f} "
                           f"({med['depth_absrel']:.3f}) | {x['border_step']:.4f} ({med['border_step']:.4f}) | "
                           f"{x['border_step_truth']:.4f} | "
                           + (f"{s['seconds']:.2f}" if method == "generative" else "–") + " |")
    out += ["", "Where the depth error is: the share of the unseen pixels whose true surface is an object, and the "
            "part of the mean depth AbsRel those pixels make (row fill / generative):", "",
            "| kind | move | object pixels | AbsRel from them, row fill | generative | AbsRel from the rest, row fill "
            "| generative |", "|---" * 7 + "|"]
    for kind, by_move in results.items():
        for move, s in by_move.items():
            r, g = s["row_fill"], s["generative"]
            out.append(f"| {kind} | {move} | {100 * r['object_share']:.0f} % | {r['depth_absrel_from_objects']:.3f} "
                       f"| {g['depth_absrel_from_objects']:.3f} "
                       f"| {r['depth_absrel'] - r['depth_absrel_from_objects']:.3f} "
                       f"| {g['depth_absrel'] - g['depth_absrel_from_objects']:.3f} |")
    out += ["", "Over every move (all samples of a kind pooled): "
            + "; ".join(f"{kind} depth AbsRel row fill {over_moves[kind]['row_fill']['depth_absrel']:.3f}, generative "
                        f"{over_moves[kind]['generative']['depth_absrel']:.3f}; border step "
                        f"{over_moves[kind]['row_fill']['border_step']:.4f}, "
                        f"{over_moves[kind]['generative']['border_step']:.4f}" for kind in results) + "."]
    out += ["", "Share of samples where generative completion's depth AbsRel / border step is at most the row fill's: "
            + "; ".join(f"{kind} {move}: {100 * s['generative_lower_absrel']:.0f} / "
                        f"{100 * s['generative_lower_step']:.0f} %"
                        for kind, by_move in results.items() for move, s in by_move.items()), "",
            "Background fill: scene3d.explore.starting_fill, no model: the depth of render.background_fill, the "
            "occluder's unsampled rim given the occluder's depth and colour (render.occluder_rim), cracks their "
            "neighbours' colour, elsewhere the row fill's colour: what generative completion starts from and "
            "keeps within one latent cell of the hole's rim. Contact sheets: "
            "input A, true view B, row fill, generative; then the depth of the row fill, the generative completion "
            "and the truth (near = bright).", ""]
    return "\n".join(out)


def contact_sheet(rows: list[list[np.ndarray]], path: Path) -> None:
    from ldm3d_edge.runtime.result import atomic_write

    width = max(sum(im.shape[1] for im in r) for r in rows)
    lines = [np.concatenate(r, axis=1) for r in rows]
    lines = [np.pad(x, ((0, 4), (0, width - x.shape[1]), (0, 0)), constant_values=255) for x in lines]
    sheet = np.concatenate(lines, axis=0)
    atomic_write(path, lambda p: Image.fromarray(sheet).save(p, format="PNG"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--panoramas", type=int, default=20)
    ap.add_argument("--moves", default="0.25,0.5,1")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--strength", type=float, default=DEFAULT_STRENGTH, help="of the inpainting in each hole")
    ap.add_argument("--out", default="benchmarks/results/explore-embedded")
    a = ap.parse_args(argv)
    from ldm3d_edge.embedded import embedded_artifacts
    from ldm3d_edge.runtime import Pipeline

    moves = [float(x) for x in a.moves.split(",")]
    perspective, panorama, _ = embedded_artifacts(device="openvino:CPU")
    sheet: list = []
    raw = {"perspective": run(Pipeline.load(perspective, device="openvino:CPU"), a.samples, False, moves, a.steps,
                              a.strength, sheet)}
    persp_sheet, sheet = sheet, []
    raw["panorama"] = run(Pipeline.load(panorama, device="openvino:CPU"), a.panoramas, True, moves, a.steps,
                          a.strength, sheet)
    results = {k: summarize(v, moves) for k, v in raw.items() if v}
    over_moves = {k: pooled(v) for k, v in raw.items() if v}
    meta = machine()
    out = Path(a.out)
    write_results(out / "summary", {"machine": meta, "steps": a.steps, "strength": a.strength, "moves": moves,
                                    "summary": results, "pooled": over_moves, "samples": raw},
                  markdown(results, over_moves, meta, a.steps, a.strength))
    contact_sheet(persp_sheet, out / "contact_perspective.png")
    contact_sheet(sheet, out / "contact_panorama.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
