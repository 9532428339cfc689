"""Candidates against a reference model on the same held-out long captions over several noise draws, paired.

One draw (training/evaluate.py --only long --long-seed S: 100 perspective + 50 panorama captions, seeds S + k)
cannot separate models closer than about 0.02 depth/RGB IoU or 6 points of panorama colour: a single caption's
IoU moves by 0.1-0.3 with the noise, and a fine-tune changes the picture drawn for a given seed. Pooling draws
and pairing each sample with the reference's (same caption, same seed) shows which differences are the model's.

    python -m training.paired_draws --reference shipped --draw reported=DIR0 --draw 5000=DIR1 --draw 6000=DIR2 \\
        --out benchmarks/results/embedded-short-prompts/draws

Each DIR holds one folder per model (its samples.json); a model missing from a draw is left out of that draw.
--reference-in DRAW=FOLDER says where the reference's samples.json is for a draw whose folder lacks it (the
reported draw of the shipped model lives in the model's own eval/ folder).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from ldm3d_edge.bench.common import machine, write_results

KINDS = ("perspective", "panorama")


def _load(path: Path) -> dict:
    return json.loads((path / "samples.json").read_text())


def paired(ref: dict, cand: dict) -> dict:
    """Per kind: samples, colour hits of each, and the candidate-minus-reference IoU differences."""
    out = {}
    for kind in KINDS:
        a, b = ref[kind], cand[kind]
        if [(s["prompt"], s["seed"]) for s in a] != [(s["prompt"], s["seed"]) for s in b]:
            raise ValueError(f"{kind}: the two evaluations are not of the same captions and seeds")
        out[kind] = {"n": len(a), "colour_ref": sum(bool(s["colour_ok"]) for s in a),
                     "colour": sum(bool(s["colour_ok"]) for s in b),
                     "iou_diff": [float(y["iou"]) - float(x["iou"]) for x, y in zip(a, b)],
                     "iou_ref": [float(x["iou"]) for x in a]}
    return out


def summarize(parts: list[dict]) -> dict:
    """Pool per-draw `paired` results of one kind: colour shares, IoU means and the paired difference ± SE."""
    n = sum(p["n"] for p in parts)
    diff = np.concatenate([p["iou_diff"] for p in parts])
    ref = np.concatenate([p["iou_ref"] for p in parts])
    se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else float("nan")
    return {"n": n, "colour_ref": sum(p["colour_ref"] for p in parts) / n,
            "colour": sum(p["colour"] for p in parts) / n,
            "iou_ref": float(ref.mean()), "iou": float((ref + diff).mean()),
            "iou_diff": float(diff.mean()), "iou_diff_se": se}


def compare(draws: dict[str, Path], reference: str, reference_in: dict[str, Path] | None = None,
            only: list[str] | None = None) -> dict:
    """{model: {draw or 'pooled': {kind: summary}}} for every model found beside the reference in some draw (or
    the models in `only`, in that order); reference_in: the reference's folder for a draw, where not
    <draw>/<reference>."""
    ref_dirs = {name: (reference_in or {}).get(name, root / reference) for name, root in draws.items()}
    refs = {name: _load(d) for name, d in ref_dirs.items() if (d / "samples.json").is_file()}   # read once
    models = sorted({d.name for root in draws.values() for d in root.iterdir()
                     if (d / "samples.json").is_file() and d.name != reference})
    if only:
        missing = [m for m in only if m not in models]
        if missing:
            raise ValueError(f"not found in any draw: {', '.join(missing)}")
        models = only
    out: dict = {}
    for model in models:
        per: dict[str, dict] = {}
        for name, root in draws.items():
            if (root / model / "samples.json").is_file() and name in refs:
                try:
                    per[name] = paired(refs[name], _load(root / model))
                except ValueError as e:
                    raise ValueError(f"{model}, draw {name}: {e}") from None
        if not per:
            continue
        out[model] = {name: {k: summarize([p[k]]) for k in KINDS} for name, p in per.items()}
        out[model]["pooled"] = {k: summarize([p[k] for p in per.values()]) for k in KINDS}
    return out


def markdown(result: dict, reference: str) -> str:
    lines = [f"| model | draw | persp colour ({reference} → model) | pano colour | persp IoU | paired Δ ± SE "
             "| pano IoU | paired Δ ± SE |", "|---|---|---|---|---|---|---|---|"]
    for model, per in result.items():
        for name, s in per.items():
            p, q = s["perspective"], s["panorama"]
            lines.append(
                f"| {model} | {name} (n {p['n']} / {q['n']}) | {100 * p['colour_ref']:.0f} → {100 * p['colour']:.0f} % "
                f"| {100 * q['colour_ref']:.0f} → {100 * q['colour']:.0f} % | {p['iou_ref']:.3f} → {p['iou']:.3f} "
                f"| {p['iou_diff']:+.3f} ± {p['iou_diff_se']:.3f} | {q['iou_ref']:.3f} → {q['iou']:.3f} "
                f"| {q['iou_diff']:+.3f} ± {q['iou_diff_se']:.3f} |")
    return "\n".join(lines) + "\n"


def _draw(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not Path(path).is_dir():
        raise argparse.ArgumentTypeError(f"expected NAME=FOLDER with an existing folder, got {text!r}")
    return name, Path(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", required=True, help="the folder name of the model to pair against")
    ap.add_argument("--draw", type=_draw, action="append", required=True, metavar="NAME=FOLDER",
                    help="one draw: a folder with one subfolder (samples.json) per model; repeat")
    ap.add_argument("--reference-in", type=_draw, action="append", default=[], metavar="DRAW=FOLDER",
                    help="the reference's folder for that draw, where not DRAW's FOLDER/REFERENCE")
    ap.add_argument("--models", help="comma-separated folder names to compare (default: every one found)")
    ap.add_argument("--notes", default="", help="markdown added under the table")
    ap.add_argument("--out", type=Path, required=True, help="path stem: writes <out>.json and <out>.md")
    a = ap.parse_args(argv)
    draws = dict(a.draw)
    unknown = sorted(set(dict(a.reference_in)) - set(draws))
    if unknown:
        ap.error(f"--reference-in names a draw not given with --draw: {', '.join(unknown)}")
    try:
        result = compare(draws, a.reference, dict(a.reference_in), a.models.split(",") if a.models else None)
    except ValueError as e:
        ap.error(str(e))
    if not result:
        ap.error(f"no model found beside {a.reference!r} in any draw")
    title = "# The embedded model's candidates against the shipped one, paired over noise draws"
    body = (f"{title}\n\nLong held-out captions, each sample paired with the reference's (same caption, same "
            f"seed); pooled = every draw's samples together.\n\n{markdown(result, a.reference)}\n{a.notes}\n")
    write_results(a.out, {"reference": a.reference, "draws": {k: str(v) for k, v in draws.items()},
                          "reference_in": {k: str(v) for k, v in a.reference_in},
                          "models": result, "machine": machine()}, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
