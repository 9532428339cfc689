"""Evaluate the embedded model: VAE reconstruction (PyTorch), prompt adherence and depth/RGB agreement
through the exported runtime (not PyTorch) on held-out long captions and on held-out short prompts
(training/captions.py), wall and floor words, and two contact sheets.

    python -m training.evaluate --model models/ldm3d-edge-tiny --out models/ldm3d-edge-tiny/eval

`--only edits` screens a candidate for what the runtime's other features need of the model and the prompt
evaluations do not see: recolouring by img2img at low strength, and the panorama seam with circular padding
(eval_edits.json; the short-prompt fine-tunes of issue 19 lost the first).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ldm3d_edge import metrics as M
from ldm3d_edge.runtime.result import atomic_write

from .captions import short_prompt_set
from .dataset import HELDOUT_PANO_SEED0, HELDOUT_SEED0, ensure_splits, heldout_splits, load_split
from .scenes import sample

SHORT_SEED0 = 1000      # generation seeds of the short-prompt set (the long-caption set uses 0..N-1)
# the reported short-prompt sets: every prompt drawn at seeds s + k for each s. Three sets (240 perspective, 120
# panorama samples), because on one set of 40 panoramas a single sample is 2.5 points and a bar of 98 % asks for
# 40 of 40. 2000 + k and 3000 + k are the validation sets that choices (prompt completion's defaults) are made on.
SHORT_SEEDS = (SHORT_SEED0, 7000, 8000)
SHORT_BARS = {"colour_adherence": (">=", 0.95), "nearer_adherence": (">=", 0.98)}
SHORT_PANO_BARS = {"colour_adherence": (">=", 0.90), "nearer_adherence": (">=", 0.98)}

BARS = {"vae_rgb_psnr_db": (">=", 28.0), "vae_depth_absrel": ("<=", 0.05), "colour_adherence": (">=", 0.80),
        "nearer_adherence": (">=", 0.90), "depth_rgb_iou": (">=", 0.60)}


def bars(values: dict, spec: dict = BARS) -> dict:
    """Each measure of `spec` ({name: (">=" or "<=", bar)}) with its value and whether it meets its bar."""
    return {k: {"value": values[k], "bar": f"{op} {v}", "met": values[k] >= v if op == ">=" else values[k] <= v}
            for k, (op, v) in spec.items()}


def write_json(path: Path, obj) -> None:
    atomic_write(path, lambda p: Path(p).write_text(json.dumps(obj, indent=1)))


def vae_reconstruction(model_dir: Path, data: Path, n: int) -> dict:
    import torch
    from diffusers import AutoencoderKL

    from .common import rgbd_tensor

    ensure_splits(data, heldout_splits(300))       # rendered here on a fresh clone (about half a minute)
    vae = AutoencoderKL.from_pretrained(str(model_dir), subfolder="vae").float().eval()
    out = {}
    for split in ("heldout-128.npz", "heldout_pano-128.npz"):
        d = load_split(data / split)
        ps, ar = [], []
        with torch.no_grad():
            for i in range(0, min(n, len(d["rgb"])), 16):
                x = rgbd_tensor(d["rgb"][i:i + 16], d["depth"][i:i + 16])
                rec = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1).numpy() / 2 + 0.5
                gt = x.numpy() / 2 + 0.5
                for a, b in zip(rec, gt):
                    ps.append(M.psnr(a[:3], b[:3]))
                    ar.append(M.abs_rel(a[3], b[3]))
        out[split.split("-")[0]] = {"rgb_psnr_db": float(np.mean(ps)), "depth_absrel": float(np.mean(ar)), "n": len(ps)}
    return out


def size(panorama: bool) -> dict:
    """The image size to ask for: one shipped IR folder serves both (panoramas at 256x128, without padding, as
    the numbers in eval/ were measured)."""
    from ldm3d_edge.embedded import PANORAMA_SIZE, PERSPECTIVE_SIZE

    return dict(zip(("height", "width"), PANORAMA_SIZE if panorama else PERSPECTIVE_SIZE))


def adherence(artifacts: Path, n: int, steps: int, guidance: float, device: str,
              panorama: bool = False, seed0: int = 0) -> tuple[dict, list]:
    """Generate n held-out captions (seed ranges unseen in training) through the runtime, caption k with
    generation seed seed0 + k, and score each."""
    from ldm3d_edge.runtime import Pipeline

    pipe = Pipeline.load(artifacts, device=device)
    rows, t0 = [], time.perf_counter()
    for k in tqdm(range(n), desc="panorama prompts" if panorama else "prompts", unit="prompt"):
        scene = sample((HELDOUT_PANO_SEED0 if panorama else HELDOUT_SEED0) + k, 16, panorama=panorama).scene
        colour = {o.colour for o in scene.objects} if panorama else scene.objects[0].colour
        out = pipe(scene.caption, num_inference_steps=steps, guidance_scale=guidance, seed=seed0 + k,
                   **size(panorama))
        r = M.adherence(out.rgb_float, out.depth, colour)
        rows.append({"prompt": scene.caption, "seed": seed0 + k, "colour": sorted(colour) if panorama else colour,
                     **r})
    agg = {"colour_adherence": float(np.mean([r["colour_ok"] for r in rows])),
           "nearer_adherence": float(np.mean([r["nearer_ok"] for r in rows])),
           "depth_rgb_iou": float(np.mean([r["iou"] for r in rows])), "n": n, "steps": steps,
           "guidance": guidance, "seed0": seed0, "device": pipe.device, "seconds": time.perf_counter() - t0}
    return agg, rows


def _floor_word(caption) -> str:
    return str(caption).split(" floor")[0].rsplit(" ", 1)[-1]


def floor_references(data: Path) -> tuple[dict, dict]:
    """Mean RGB of each named floor's band on the first half of the held-out renders (perspective, panorama) —
    what the floor metric compares a generated floor with."""
    refs = []
    for split, pano in (("heldout-128.npz", False), ("heldout_pano-128.npz", True)):
        d = load_split(data / split)
        by_name: dict[str, list] = {}
        for k in range(len(d["rgb"]) // 2):
            floor = _floor_word(d["caption"][k])
            rgb, depth = d["rgb"][k] / 255.0, d["depth"][k] / 65535.0
            band = M.floor_band(depth, pano)
            by_name.setdefault(floor, []).append(rgb[band].mean(0))
        refs.append({name: np.mean(v, 0) for name, v in by_name.items()})
    return refs[0], refs[1]


def metric_check(data: Path, refs: tuple[dict, dict]) -> dict:
    """The wall and floor metrics on rendered ground truth (held-out renders the references did not use; walls
    from data version 2 renders with every wall coloured)."""
    walls = {"perspective": [], "panorama": []}
    for k in range(60):
        pano = k % 2 == 1
        s = sample(9_700_000 + k, 64 if pano else 128, panorama=pano, wall_colours=1.0)
        if s.scene.wall != "sky":
            walls["panorama" if pano else "perspective"].append(M.wall_colour(s.rgb, s.depth, pano) == s.scene.wall)
    floors = {}
    for (split, pano), ref in zip((("heldout-128.npz", False), ("heldout_pano-128.npz", True)), refs):
        d = load_split(data / split)
        hits = [M.floor_name(d["rgb"][k] / 255.0, d["depth"][k] / 65535.0, ref, pano) == _floor_word(d["caption"][k])
                for k in range(len(d["rgb"]) // 2, len(d["rgb"]))]
        floors["panorama" if pano else "perspective"] = {"share": float(np.mean(hits)), "n": len(hits)}
    return {"wall_colour_on_renders": {k: {"share": float(np.mean(v)), "n": len(v)} for k, v in walls.items()},
            "floor_on_renders": floors}


def vae_walls(model_dir: Path, n: int = 40) -> dict:
    """Can the VAE carry a coloured wall at all? The same held-out scenes (seeds from 9,800,000, perspective, walls
    only) rendered with a coloured and with a plain wall, encoded and decoded: RGB PSNR and the wall's named hue
    in the render and in the reconstruction."""
    import torch
    from diffusers import AutoencoderKL

    from .common import rgbd_tensor

    vae = AutoencoderKL.from_pretrained(str(model_dir), subfolder="vae").float().eval()
    rows: dict[str, list] = {"coloured": [], "plain": []}
    for seed in range(9_800_000, 9_800_000 + n):
        for key, share in (("coloured", 1.0), ("plain", 0.0)):
            s = sample(seed, 128, wall_colours=share)
            if s.scene.wall == "sky":
                continue
            x = rgbd_tensor(np.round(s.rgb[None] * 255).astype(np.uint8),
                            np.round(s.depth[None] * 65535).astype(np.uint16))
            with torch.no_grad():
                rec = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)[0].numpy() / 2 + 0.5
            rgb, want = rec[:3].transpose(1, 2, 0), s.scene.wall if key == "coloured" else None
            rows[key].append((M.psnr(rgb, s.rgb), M.wall_colour(s.rgb, s.depth) == want,
                              M.wall_colour(rgb, rec[3]) == want))
    return {k: {"n": len(v), "rgb_psnr_db": float(np.mean([r[0] for r in v])),
                "wall_named_in_render": float(np.mean([r[1] for r in v])),
                "wall_named_in_reconstruction": float(np.mean([r[2] for r in v]))} for k, v in rows.items()}


def short_adherence(artifacts: Path, entries: list[dict], steps: int, guidance: float, device: str,
                    panorama: bool, refs: dict, seeds: tuple[int, ...] = SHORT_SEEDS,
                    complete: bool = True) -> tuple[dict, list]:
    """Generate each held-out short prompt once per seed set (seeds s + k for each s in `seeds`) and score the
    object, and the wall and floor where the prompt names them; pooled over the sets, and each set's colour and
    nearer apart (`by_seed0`). complete: as a user gets it (the folder's prompt completion); False: the prompt
    encoded exactly as typed (what the weights alone do with it)."""
    from ldm3d_edge.runtime import Pipeline

    pipe = Pipeline.load(artifacts, device=device, complete_prompts=complete)
    rows, t0 = [], time.perf_counter()
    jobs = [(seed0, k, e) for seed0 in seeds for k, e in enumerate(entries)]
    for seed0, k, e in tqdm(jobs, desc="short panorama prompts" if panorama else "short prompts", unit="prompt"):
        out = pipe(e["prompt"], num_inference_steps=steps, guidance_scale=guidance, seed=seed0 + k,
                   **size(panorama))
        r = {"prompt": e["prompt"], "encoded": pipe.model_prompt(e["prompt"]), "seed0": seed0, "seed": seed0 + k,
             **M.adherence(out.rgb_float, out.depth, e["colour"])}
        if "wall" in e:
            r["wall_found"] = M.wall_colour(out.rgb_float, out.depth, panorama)
            r["wall_ok"] = r["wall_found"] == e["wall"]
        if "floor" in e:
            r["floor_found"] = M.floor_name(out.rgb_float, out.depth, refs, panorama)
            r["floor_ok"] = r["floor_found"] == e["floor"]
        rows.append(r)
    agg = {"colour_adherence": float(np.mean([r["colour_ok"] for r in rows])),
           "nearer_adherence": float(np.mean([r["nearer_ok"] for r in rows])),
           "depth_rgb_iou": float(np.mean([r["iou"] for r in rows])), "n": len(rows), "steps": steps,
           "guidance": guidance, "seed0": list(seeds), "device": pipe.device, "prompt_completion": complete,
           "seconds": time.perf_counter() - t0,
           "by_seed0": {str(s): {key: float(np.mean([r[f"{key}_ok"] for r in rows if r["seed0"] == s]))
                                 for key in ("colour", "nearer")} for s in seeds}}
    for key in ("wall_ok", "floor_ok"):
        hits = [r[key] for r in rows if key in r]
        if hits:
            agg[key.replace("_ok", "_adherence")] = float(np.mean(hits))
            agg[key.replace("_ok", "_n")] = len(hits)
    return agg, rows


def short_contact_sheet(artifacts: Path, out: Path, steps: int, device: str) -> list[str]:
    """Held-out short prompts, RGB above depth: 8 perspective, 8 with a coloured wall, then 8 panoramas in two
    rows of 4. Returns the prompts in reading order."""
    from ldm3d_edge.runtime import Pipeline

    sets = short_prompt_set()
    groups = ((sets["perspective"][1::10], False, 8), (sets["walls"][::4], False, 8),
              (sets["panorama"][2::5], True, 4))
    pipe = Pipeline.load(artifacts, device=device)
    prompts, rows = [], []
    for entries, pano, per_row in groups:
        tiles = []
        for k, e in enumerate(entries):
            o = pipe(e["prompt"], num_inference_steps=steps, seed=SHORT_SEED0 + k, **size(pano))
            prompts.append(e["prompt"])
            tiles.append(np.concatenate([o.rgb, np.repeat((o.depth[..., None] * 255).astype(np.uint8), 3, -1)], 0))
        rows += [np.concatenate(tiles[i:i + per_row], 1) for i in range(0, len(tiles), per_row)]
    atomic_write(out, lambda p: Image.fromarray(np.concatenate(rows, 0)).save(p, format="PNG"))
    return prompts


def evaluate_short(persp: Path, pano: Path, model_dir: Path, data: Path, out: Path, steps: int, guidance: float,
                   device: str, seeds: tuple[int, ...] = SHORT_SEEDS) -> tuple[dict, dict]:
    """The short-prompt evaluation: (results with bars, every scored sample)."""
    ensure_splits(data, heldout_splits(300))
    refs = floor_references(data)
    sets = short_prompt_set()
    res: dict = {"metric_check": metric_check(data, refs), "vae_walls": vae_walls(model_dir)}
    samples: dict = {}
    # as a user gets them (the shipped folder's prompt completion), then as typed ("as_typed": the weights alone)
    for complete, into, rows in ((True, res, samples), (False, res.setdefault("as_typed", {}),
                                                        samples.setdefault("as_typed", {}))):
        for key, art, is_pano in (("perspective", persp, False), ("panorama", pano, True),
                                  ("walls", persp, False), ("panorama_walls", pano, True)):
            into[key], rows[key] = short_adherence(art, sets[key], steps, guidance, device, is_pano,
                                                   refs[1] if is_pano else refs[0], seeds, complete)
        into["bars"] = {"perspective": bars(into["perspective"], SHORT_BARS),
                        "panorama": bars(into["panorama"], SHORT_PANO_BARS)}
    res["contact_sheet"] = short_contact_sheet(persp, out / "contact_sheet_short.png", steps, device)
    return res, samples


def recolour(artifacts: Path, n: int, steps: int, device: str, strength: float = 0.3) -> tuple[dict, list]:
    """img2img at low strength: held-out scene k drawn from its caption (seed k), then redrawn with its nearest
    object's colour word replaced by one no object has (seed 1000 + k). Scored: the nearest object now has the new
    colour, and the mean depth change (the layout should stay)."""
    from ldm3d_edge.runtime import Pipeline

    pipe = Pipeline.load(artifacts, device=device)
    rows = []
    for k in tqdm(range(n), desc="recolour", unit="scene"):
        scene = sample(HELDOUT_SEED0 + k, 16).scene
        first = scene.objects[0].colour
        free = [c for c in M.COLOURS if c not in {o.colour for o in scene.objects}]
        new = free[k % len(free)]
        base = pipe(scene.caption, num_inference_steps=steps, seed=k)
        edit = pipe.img2img(base.rgb, base.depth, scene.caption.replace(f"{first} ", f"{new} ", 1), strength=strength,
                            num_inference_steps=steps, seed=1000 + k)
        found = M.adherence(edit.rgb_float, edit.depth, new)["found"]
        rows.append({"prompt": scene.caption, "new_colour": new, "found": found, "recoloured": found == new,
                     "depth_change": float(np.abs(edit.depth - base.depth).mean())})
    return {"recolour_share": float(np.mean([r["recoloured"] for r in rows])),
            "depth_change": float(np.mean([r["depth_change"] for r in rows])), "n": n, "strength": strength,
            "steps": steps}, rows


def seam(artifacts: Path, n: int, steps: int, device: str, padding: int = 4) -> dict:
    """Depth seam ratio (wrap step over the mean column step; renders: 0.6) of n panoramas with circular padding,
    the prompt and seeds of tests/test_panorama.py."""
    from benchmarks.pano_seam import seam_metrics
    from ldm3d_edge.runtime import Pipeline

    pipe = Pipeline.load(artifacts, device=device)
    prompt = "360 view of a room with a green cone and a purple cylinder on a dark floor"
    ratios = [seam_metrics(pipe(prompt, num_inference_steps=steps, seed=s, circular_padding=padding,
                                **size(True)).depth)["ratio"] for s in range(n)]
    return {"seam_ratio": float(np.mean(ratios)), "ratios": ratios, "padding": padding, "n": n}


def contact_sheet(artifacts: Path, pano_artifacts: Path, out: Path, steps: int, device: str) -> list[str]:
    """16 held-out prompts, each RGB above its depth: a row of 8 perspective scenes (128x128), then two rows of
    4 panoramas (256x128). Returns the prompts in reading order."""
    from ldm3d_edge.runtime import Pipeline

    prompts, rows = [], []
    for art, seed0, pano, n in ((artifacts, HELDOUT_SEED0 + 500, False, 8), (pano_artifacts, HELDOUT_PANO_SEED0 + 200,
                                                                             True, 8)):
        pipe = Pipeline.load(art, device=device)
        tiles = []
        for k in range(n):
            prompt = sample(seed0 + k, 16, panorama=pano).scene.caption
            o = pipe(prompt, num_inference_steps=steps, seed=k, **size(pano))
            prompts.append(prompt)
            tiles.append(np.concatenate([o.rgb, np.repeat((o.depth[..., None] * 255).astype(np.uint8), 3, -1)], 0))
        per_row = 4 if pano else 8
        rows += [np.concatenate(tiles[i:i + per_row], 1) for i in range(0, n, per_row)]
    atomic_write(out, lambda p: Image.fromarray(np.concatenate(rows, 0)).save(p, format="PNG"))
    return prompts


def main(argv=None) -> int:
    from ldm3d_edge.embedded import embedded_artifacts

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="diffusers folder (default: the embedded model)")
    ap.add_argument("--data", default="training/data", help="held-out renders (rendered there if missing)")
    ap.add_argument("--out", default=None, help="folder for eval.json and contact_sheet.png")
    ap.add_argument("--prompts", type=int, default=100, help="held-out perspective prompts")
    ap.add_argument("--pano-prompts", type=int, default=50, help="held-out panorama prompts")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--device", default="openvino:CPU")
    ap.add_argument("--short-seed", type=int, action="append", dest="short_seeds",
                    help="first generation seed of a set of the short prompts (repeatable; default the reported "
                         f"sets {', '.join(map(str, SHORT_SEEDS))}); another one (e.g. 2000) is a validation set to "
                         "choose a checkpoint, a soup or a default on, leaving the reported seeds untouched")
    ap.add_argument("--long-seed", type=int, default=0,
                    help="first generation seed of the long captions (the reported set: 0); another one (e.g. "
                         "5000) draws new noise for the same held-out captions, a validation set for them")
    ap.add_argument("--only", choices=("all", "long", "short", "edits"), default="all",
                    help="long: the held-out captions and the VAE; short: the held-out short prompts; edits: "
                         "img2img recolouring and the panorama seam (not part of all)")
    a = ap.parse_args(argv)
    persp, pano, model_dir = embedded_artifacts(a.model)
    out = Path(a.out or model_dir / "eval")
    out.mkdir(parents=True, exist_ok=True)
    if a.only == "edits":
        edits, edit_rows = recolour(persp, 24, a.steps, a.device)
        edits["seam"] = seam(pano, 8, a.steps, a.device)
        write_json(out / "eval_edits.json", {**edits, "samples": edit_rows})
        print(f"recolour {edits['recolour_share']:.3f} (n={edits['n']}, depth change {edits['depth_change']:.4f})  "
              f"seam ratio {edits['seam']['seam_ratio']:.2f} (n={edits['seam']['n']})")
        return 0
    if a.only in ("all", "short"):
        short, short_rows = evaluate_short(persp, pano, model_dir, Path(a.data), out, a.steps, a.guidance,
                                           a.device, tuple(a.short_seeds or SHORT_SEEDS))
        write_json(out / "eval_short.json", short)
        write_json(out / "samples_short.json", short_rows)
        for label, group in (("short", short), ("as typed", short["as_typed"])):
            for key in ("perspective", "panorama", "walls", "panorama_walls"):
                r = group[key]
                extra = "".join(f"  {k} {r[k]:.3f} (n={r[k.replace('adherence', 'n')]})"
                                for k in ("wall_adherence", "floor_adherence") if k in r)
                sets = " ".join(f"{s}: {v['colour']:.3f}/{v['nearer']:.3f}" for s, v in r["by_seed0"].items())
                print(f"{label:8s} {key:15s} colour {r['colour_adherence']:.3f}  nearer {r['nearer_adherence']:.3f}"
                      f"  iou {r['depth_rgb_iou']:.3f}  n={r['n']}{extra}  (sets {sets})")
        if a.only == "short":
            return 0
    res = {"vae": vae_reconstruction(model_dir, Path(a.data), 300)}
    res["prompts"], rows = adherence(persp, a.prompts, a.steps, a.guidance, a.device, seed0=a.long_seed)
    res["panorama_prompts"], pano_rows = adherence(pano, a.pano_prompts, a.steps, a.guidance, a.device, True,
                                                   a.long_seed)
    res["bars"] = {name: bars({"vae_rgb_psnr_db": res["vae"][split]["rgb_psnr_db"],
                               "vae_depth_absrel": res["vae"][split]["depth_absrel"], **res[key]})
                   for name, split, key in (("perspective", "heldout", "prompts"),
                                            ("panorama", "heldout_pano", "panorama_prompts"))}
    res["contact_sheet"] = contact_sheet(persp, pano, out / "contact_sheet.png", a.steps, a.device)
    write_json(out / "eval.json", res)
    write_json(out / "samples.json", {"perspective": rows, "panorama": pano_rows})
    for name, bs in res["bars"].items():
        for k, b in bs.items():
            print(f"{name:12s} {k:18s} {b['value']:7.3f}  bar {b['bar']:8s} {'met' if b['met'] else 'NOT met'}")
    print(f"wrote {out / 'eval.json'}, {out / 'samples.json'}, {out / 'contact_sheet.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
