"""What doing less work per image costs in quality (issue 20), on the embedded model, whose outputs mean something.

Each lever alone at several settings, and a few combinations, against the release default (49 DDIM steps,
guidance 5) on the same held-out captions and seeds (the embedded model's evaluation prompts): RGB PSNR and SSIM
and depth AbsRel to the reference's own output, and the model's adherence scores (colour, nearer, depth/RGB IoU)
for both. Cost is counted in full-size UNet-equivalent calls (a guided step 1, an unguided one at batch 1 0.5, a
DeepCache shallow step its FLOP share from benchmarks/results/deepcache-flops.json) and measured in seconds per
image here.

    PYTHONPATH=. python -m benchmarks.speed_levers [--samples 64] [--out benchmarks/results/speed-levers]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ldm3d_edge import metrics as M
from ldm3d_edge.bench.common import machine, write_results
from ldm3d_edge.quantization.quality import depth_errors, rgb_errors
from ldm3d_edge.runtime.config import guided_steps

BRANCH = 0
REFERENCE = "ddim-49 (release)"
# name -> (scheduler, steps, Karras sigmas, guidance cut-off, cache interval); token merging: TOME below
LEVERS: dict[str, tuple[str, int, bool, float | None, int]] = {
    REFERENCE: ("ddim", 49, False, None, 1),
    "ddim-20": ("ddim", 20, False, None, 1),
    "ddim-10": ("ddim", 10, False, None, 1),
    "dpm++karras-20": ("dpm++", 20, True, None, 1),
    "dpm++karras-10": ("dpm++", 10, True, None, 1),
    "unipc-20": ("unipc", 20, False, None, 1),
    "unipc-10": ("unipc", 10, False, None, 1),
    "cutoff-0.5": ("ddim", 49, False, 0.5, 1),
    "cutoff-0.3": ("ddim", 49, False, 0.3, 1),
    "deepcache-2": ("ddim", 49, False, None, 2),
    "deepcache-3": ("ddim", 49, False, None, 3),
    "deepcache-5": ("ddim", 49, False, None, 5),
    "unipc-20 cutoff-0.5": ("unipc", 20, False, 0.5, 1),
    "unipc-20 deepcache-2": ("unipc", 20, False, None, 2),
    "unipc-15 cutoff-0.5 deepcache-2": ("unipc", 15, False, 0.5, 2),
    "unipc-10 cutoff-0.5": ("unipc", 10, False, 0.5, 1),
    "unipc-10 cutoff-0.5 deepcache-2": ("unipc", 10, False, 0.5, 2),
    # second round (--add): around the front the first round found
    "ddim-15": ("ddim", 15, False, None, 1),
    "deepcache-4": ("ddim", 49, False, None, 4),
    "ddim-20 deepcache-2": ("ddim", 20, False, None, 2),
    "ddim-20 cutoff-0.7": ("ddim", 20, False, 0.7, 1),
    "ddim-30 deepcache-3": ("ddim", 30, False, None, 3),
    # fourth round: fewer DDIM steps between 15 (depth 0.052 off, out of fast's bound) and 20, no cut-off: at full
    # size an unguided step costs more than half a guided one (benchmarks/results/unet-batch-range)
    "ddim-16": ("ddim", 16, False, None, 1),
    "ddim-17": ("ddim", 17, False, None, 1),
    "ddim-18": ("ddim", 18, False, None, 1),
    # third round: token merging, an export option (a folder per ratio)
    "tome-0.3": ("ddim", 49, False, None, 1),
    "tome-0.5": ("ddim", 49, False, None, 1),
    "ddim-20 tome-0.5": ("ddim", 20, False, None, 1),
}
TOME = {"tome-0.3": 0.3, "tome-0.5": 0.5, "ddim-20 tome-0.5": 0.5}


def unet_equivalents(steps: int, cutoff: float | None, interval: int, shallow_share: float) -> float:
    """Full-size UNet calls this setting spends: guided steps cost 1, unguided ones 0.5 (batch 1), DeepCache's
    shallow steps their FLOP share of either."""
    guided = guided_steps(steps, cutoff)
    return float(sum((1.0 if i < guided else 0.5) * (1.0 if interval == 1 or i % interval == 0 else shallow_share)
                     for i in range(steps)))


def int8_step_costs(path: str = "benchmarks/results/unet-batch-range/unet-batch-range.json") -> dict[str, float]:
    """The full-size ldm3d-4c INT8 UNet's measured step costs, relative to a static batch-2 step: a cut-off run's
    guided ("range2") and unguided ("range1") steps on the one model compiled for batches 1-2 that the runtime
    uses then. An unguided step costs 0.58 of a static guided one, not the 0.5 its FLOPs say, and the guided steps
    before it 1.10: the cut-off saves less than its FLOPs."""
    f = next(f for f in json.loads(Path(path).read_text())["folders"] if f["folder"].endswith("-int8-full"))
    t = f["median_s"]
    return {"range2": t["range @2"] / t["static 2"], "range1": t["range @1"] / t["static 2"]}


def int8_step_equivalents(steps: int, cutoff: float | None, interval: int, shallow_share: float,
                          costs: dict[str, float]) -> float:
    """unet_equivalents with the measured costs of int8_step_costs for a cut-off run's steps (DeepCache's shallow
    steps still at their FLOP share: not timed at full size)."""
    if cutoff is None:
        return unet_equivalents(steps, cutoff, interval, shallow_share)
    guided = guided_steps(steps, cutoff)
    return float(sum((costs["range2"] if i < guided else costs["range1"])
                     * (1.0 if interval == 1 or i % interval == 0 else shallow_share) for i in range(steps)))


def export_embedded(work: Path, tome: float | None = None, panorama: bool = False) -> Path:
    """The embedded model exported with the DeepCache graphs (OpenVINO, FP32, reused when there); with `tome`,
    token merging at that ratio too, at the kind's own size (a merged UNet runs at its export size only)."""
    from ldm3d_edge.export import export_pipeline
    from ldm3d_edge.models import DEFAULT_MODEL, MODELS_DIR
    from training.evaluate import size

    out = work / (f"embedded-deepcache-{BRANCH}" + (f"-tome-{tome}{'-pano' if panorama else ''}" if tome else ""))
    if not (out / "manifest.json").is_file():
        export_pipeline(MODELS_DIR / DEFAULT_MODEL, out, fmt="openvino", progress=True, deepcache_branch=BRANCH,
                        overwrite=True, tome=tome, **(size(panorama) if tome else {}))
    return out


def run(work: Path, samples: int, panorama: bool, shares: dict, names: list[str]) -> dict:
    """shares: "deepcache" (a shallow step's FLOP share) and "tome" (ratio -> the merged UNet's FLOP share), at
    this kind's full size."""
    from ldm3d_edge.runtime import Pipeline
    from ldm3d_edge.runtime.schedulers import create_scheduler
    from training.dataset import HELDOUT_PANO_SEED0, HELDOUT_SEED0
    from training.evaluate import size
    from training.scenes import sample

    levers = {name: LEVERS[name] for name in [REFERENCE, *names] if name in LEVERS}
    pipes = {ratio: Pipeline.load(export_embedded(work, ratio, panorama), device="openvino:CPU")
             for ratio in {None, *(TOME.get(name) for name in levers)}}
    rows: dict[str, list[dict]] = {name: [] for name in levers}
    for k in tqdm(range(samples), desc="panorama" if panorama else "perspective", unit="sample"):
        scene = sample((HELDOUT_PANO_SEED0 if panorama else HELDOUT_SEED0) + k, 16, panorama=panorama).scene
        colour = {o.colour for o in scene.objects} if panorama else scene.objects[0].colour
        ref = None
        for name, (sched, steps, karras, cutoff, interval) in levers.items():
            pipe = pipes[TOME.get(name)]
            scheduler = create_scheduler({**pipe.scheduler_config, "use_karras_sigmas": karras}, sched)
            t0 = time.perf_counter()
            out = pipe(scene.caption, num_inference_steps=steps, guidance_scale=5.0, seed=k, scheduler=scheduler,
                       guidance_cutoff=cutoff, cache_interval=interval, **size(panorama))
            seconds = time.perf_counter() - t0
            ref = out if ref is None else ref
            a = M.adherence(out.rgb_float, out.depth, colour)
            rows[name].append({"seconds": seconds, **rgb_errors(out.rgb_float, ref.rgb_float),
                               **depth_errors(out.depth, ref.depth), "colour_ok": a["colour_ok"],
                               "nearer_ok": a["nearer_ok"], "iou": a["iou"]})
    summary = {}
    for name, (sched, steps, karras, cutoff, interval) in levers.items():
        r = rows[name]
        summary[name] = {
            "scheduler": sched + ("+karras" if karras else ""), "steps": steps, "guidance_cutoff": cutoff,
            "cache_interval": interval, "tome": TOME.get(name),
            "unet_equivalents": unet_equivalents(steps, cutoff, interval, shares["deepcache"])
            * (shares["tome"][TOME[name]] if name in TOME else 1.0),
            "seconds": float(np.median([x["seconds"] for x in r])),
            **{key: float(np.mean([x[key] for x in r if np.isfinite(x[key])] or [np.inf]))
               for key in ("rgb_psnr_db", "rgb_ssim", "depth_absrel", "depth_delta1")},
            "colour_adherence": float(np.mean([x["colour_ok"] for x in r])),
            "nearer_adherence": float(np.mean([x["nearer_ok"] for x in r])),
            "depth_rgb_iou": float(np.mean([x["iou"] for x in r]))}
    return {"samples": samples, "panorama": panorama, "shallow_share": shares["deepcache"],
            "tome_share": shares["tome"], "summary": summary}


def markdown(results: list[dict], meta: dict) -> str:
    out = ["# Less work per image: quality cost of each lever on the embedded model", "",
           f"Held-out captions of the embedded model's evaluation, seeds 0..N-1, OpenVINO CPU f32, guidance 5; each "
           f"setting against the release default ({REFERENCE}) on the same seed. PSNR / SSIM / AbsRel / δ<1.25: to the "
           "reference's own output (the reference row is itself: PSNR inf). Adherence: nearest object in the prompted "
           "colour, nearer than its background, depth/RGB silhouette IoU. UNet-eq.: full-size UNet calls per image "
           "(guided step 1, unguided 0.5, DeepCache shallow step its FLOP share at full size, a token-merged UNet "
           "its FLOP share: benchmarks/results/tome-flops.md). INT8 step-eq.: the same counted in measured "
           "full-size INT8 step times, the cost presets are chosen by: with a guidance cut-off the runtime compiles "
           "the UNet for batches 1-2, and there a guided step costs 1.10 and an unguided one 0.58 of a static "
           "guided step (ldm3d-4c 512², benchmarks/results/unet-batch-range). Seconds: median per "
           f"image on the embedded model here ({meta['cpu']}, {meta['cores']} cores), all settings interleaved per "
           f"sample. DeepCache branch {BRANCH}. The rows after 'unipc-10 cutoff-0.5 deepcache-2' were measured in a "
           "second round (`--add`: the same captions and seeds, the reference rerun and checked identical), placed "
           "around the front the first round found; the tome rows in a third (`ldm3d export --tome`: a folder per "
           "ratio and kind, as a merged UNet runs at its export size only). A later round's seconds were measured "
           "beside a rerun of the reference, whose time is not kept: compare them across rounds with care."]
    other = {}
    for name, row in results[0]["summary"].items():
        if row.get("measured_on"):
            other.setdefault(row["measured_on"], []).append(name)
    for cpu, names in other.items():
        out[-1] += (f" Rows {', '.join(names)} were measured on another machine ({cpu}, beside the reference rerun "
                    "there): their seconds do not compare with the rest.")
    out.append("")
    for r in results:
        kind = "panorama 256x128" if r["panorama"] else "perspective 128x128"
        out += [f"## {kind}, {r['samples']} samples", "",
                "| setting | UNet-eq. | INT8 step-eq. | s / image | RGB PSNR dB | SSIM | depth AbsRel | δ<1.25 "
                "| colour | nearer | IoU |",
                "|---" * 11 + "|"]
        for name, s in r["summary"].items():
            psnr = "ref" if name == REFERENCE else f"{s['rgb_psnr_db']:.1f}"
            out.append(f"| {name} | {s['unet_equivalents']:.1f} | {s['int8_step_equivalents']:.1f} | "
                       f"{s['seconds']:.2f} | {psnr} | {s['rgb_ssim']:.3f} | "
                       f"{s['depth_absrel']:.3f} | {s['depth_delta1']:.3f} | {100 * s['colour_adherence']:.1f} % | "
                       f"{100 * s['nearer_adherence']:.1f} % | {s['depth_rgb_iou']:.3f} |")
        out.append("")
    out += presets_section(results)
    return "\n".join(out)


def fill_step_equivalents(results: list[dict]) -> None:
    """Every row's INT8 step-equivalents, from its settings (rows of earlier rounds too), the measured costs read
    once."""
    costs = int8_step_costs()
    for r in results:
        for s in r["summary"].values():
            args = (s["steps"], s["guidance_cutoff"], s["cache_interval"], r["shallow_share"])
            tome = s["unet_equivalents"] / unet_equivalents(*args)     # the merged UNet's FLOP share, or 1
            s["int8_step_equivalents"] = tome * int8_step_equivalents(*args, costs)


def presets_section(results: list[dict]) -> list[str]:
    """The cheapest settings inside issue 20's bounds on both kinds: what runtime/presets.py holds."""
    from ldm3d_edge.runtime.presets import PRESETS

    lines = ["## Presets: the cheapest settings inside the bounds on both kinds", ""]
    for speed, (max_absrel, max_drop) in (("balanced", (0.03, 0.01)), ("fast", (0.05, 0.03))):
        ok = []
        for name in results[0]["summary"]:
            if name in TOME:        # token merging is an export option, not a preset's
                continue
            rows = [r["summary"][name] for r in results]
            refs = [r["summary"][REFERENCE] for r in results]
            if all(x["depth_absrel"] <= max_absrel and ref["colour_adherence"] - x["colour_adherence"] <= max_drop
                   for x, ref in zip(rows, refs)):
                ok.append((rows[0]["int8_step_equivalents"], name))
        ok.sort()
        points = f"{100 * max_drop:.0f} point" + ("s" if max_drop != 0.01 else "")
        lines.append(f"- **{speed}** (depth AbsRel <= {max_absrel}, adherence within {points}): "
                     + ", ".join(f"{n} ({c:.1f})" for c, n in ok[:4] if n != REFERENCE)
                     + f" — runtime/presets.py: {PRESETS[speed].describe()}")
    lines += ["", "Cost: INT8 step-equivalents (the perspective table's). Token-merged rows are left out (an export "
              "option, not a preset's). The presets' end-to-end seconds at full size: `ldm3d bench --speed "
              "balanced,fast` (benchmarks/results/bench-ldm3d-4c-512-presets*).", ""]
    return lines


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ldm3d_edge.runtime.result import atomic_write

    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    for r, marker in zip(results, ("o", "s")):
        kind = "panorama" if r["panorama"] else "perspective"
        pts = [(n, s) for n, s in r["summary"].items() if n != REFERENCE]
        for ax, (x, xlabel), (y, ylabel) in ((axes[0], ("unet_equivalents", "full-size UNet-equivalent calls"),
                                              ("depth_absrel", "depth AbsRel to the release default")),
                                             (axes[1], ("unet_equivalents", "full-size UNet-equivalent calls"),
                                              ("colour_adherence", "colour adherence")),
                                             (axes[2], ("seconds", "seconds per image, embedded model here"),
                                              ("depth_absrel", "depth AbsRel to the release default"))):
            ax.scatter([s[x] for _, s in pts], [s[y] for _, s in pts], marker=marker, label=kind)
            for n, s in pts:
                ax.annotate(n, (s[x], s[y]), fontsize=6)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
        ref = r["summary"][REFERENCE]
        axes[1].axhline(ref["colour_adherence"], ls="--", lw=0.8, color="grey")
    for ax in (axes[0], axes[2]):   # issue 20's bounds: balanced <= 0.03, fast <= 0.05
        for bound in (0.03, 0.05):
            ax.axhline(bound, ls=":", lw=0.8, color="red")
    axes[0].legend()
    fig.suptitle(f"Quality vs work per image, embedded model (reference: {REFERENCE}, 49 guided UNet calls)")
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=64, help="per kind (perspective, panorama)")
    ap.add_argument("--out", default="benchmarks/results/speed-levers")
    ap.add_argument("--work", default="/tmp/ldm3d-speed-levers", help="the DeepCache export of the embedded model")
    ap.add_argument("--add", help="comma-separated settings to measure (with the reference, which must come out as "
                                  "before) and add to an existing summary.json in --out")
    a = ap.parse_args(argv)
    flops = json.loads(Path("benchmarks/results/deepcache-flops.json").read_text())["results"]
    tome = json.loads(Path("benchmarks/results/tome-flops.json").read_text())["results"]
    shares = {r["config"]: {"deepcache": r["branches"][BRANCH]["shallow_share"]} for r in flops}
    for r in tome:
        shares[r["config"]]["tome"] = {x["ratio"]: x["share"] for x in r["ratios"]}
    out = Path(a.out)
    names = a.add.split(",") if a.add else list(LEVERS)
    unknown = [n for n in names if n not in LEVERS]
    if unknown:
        ap.error(f"unknown settings {unknown}; known: {', '.join(LEVERS)}")
    results = [run(Path(a.work), a.samples, False, shares["ldm3d-4c"], names),
               run(Path(a.work), a.samples, True, shares["ldm3d-pano"], names)]
    meta = machine()
    if a.add:   # same captions and seeds: the reference must agree with the earlier round's, then merge
        earlier = json.loads((out / "summary.json").read_text())
        before = earlier["results"]
        for r in results:   # a round on another CPU: its seconds are not comparable with the table's
            for name, row in r["summary"].items():
                if name != REFERENCE and meta["cpu"] != earlier["machine"]["cpu"]:
                    row["measured_on"] = meta["cpu"]
        meta = earlier["machine"]
        for old, new in zip(before, results):
            same = all(old["summary"][REFERENCE][k] == new["summary"][REFERENCE][k]
                       for k in ("colour_adherence", "nearer_adherence", "depth_rgb_iou"))
            if not same or old["samples"] != new["samples"]:
                raise SystemExit("the reference differs from the earlier round's: not merging")
            old["summary"].update({k: v for k, v in new["summary"].items() if k != REFERENCE})
        results = before
    fill_step_equivalents(results)
    write_results(out / "summary", {"machine": meta, "reference": REFERENCE, "branch": BRANCH, "results": results},
                  markdown(results, meta))
    plot(results, out / "pareto.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
