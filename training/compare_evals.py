"""Two evaluations of the embedded model side by side (training/evaluate.py's eval.json + eval_short.json each):
one JSON and one markdown table.

    python -m training.compare_evals BEFORE_DIR AFTER_DIR --labels "shipped,fine-tune 900" \\
        --out benchmarks/results/embedded-short-prompts/summary
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ldm3d_edge.bench.common import machine, write_results

# (row label, file, key path, format) — percentages for shares
ROWS = [
    ("short prompts, colour (80 / 40)", "short", ("{shape}", "colour_adherence"), "pct"),
    ("short prompts, nearer", "short", ("{shape}", "nearer_adherence"), "pct"),
    ("short prompts, depth/RGB IoU", "short", ("{shape}", "depth_rgb_iou"), "f3"),
    ("coloured-wall prompts, object colour (32 / 16)", "short", ("{walls}", "colour_adherence"), "pct"),
    ("coloured-wall prompts, wall in its colour", "short", ("{walls}", "wall_adherence"), "pct"),
    ("floor prompts, floor named right (8 / -)", "short", ("{walls}", "floor_adherence"), "pct"),
    ("long captions, colour (100 / 50)", "long", ("{long}", "colour_adherence"), "pct"),
    ("long captions, nearer", "long", ("{long}", "nearer_adherence"), "pct"),
    ("long captions, depth/RGB IoU", "long", ("{long}", "depth_rgb_iou"), "f3"),
    ("VAE RGB PSNR, held-out renders, dB", "long", ("vae", "{split}", "rgb_psnr_db"), "f2"),
]
KEYS = {"perspective": {"shape": "perspective", "walls": "walls", "long": "prompts", "split": "heldout"},
        "panorama": {"shape": "panorama", "walls": "panorama_walls", "long": "panorama_prompts",
                     "split": "heldout_pano"}}


def _get(doc: dict, path: tuple, shape: str):
    for part in path:
        doc = doc.get(part.format(**KEYS[shape])) if isinstance(doc, dict) else None
    return doc


def _fmt(v, kind: str) -> str:
    if v is None:
        return "—"
    return f"{100 * v:.1f} %" if kind == "pct" else f"{v:.3f}" if kind == "f3" else f"{v:.2f}"


def compare(dirs: list[Path], labels: list[str]) -> tuple[dict, str]:
    docs = [{part: json.loads((d / name).read_text()) for part, name in (("long", "eval.json"),
                                                                         ("short", "eval_short.json"))}
            for d in dirs]
    out: dict = {}
    lines = ["| measure | " + " | ".join(f"{lab} persp / pano" for lab in labels) + " |",
             "|---|" + "---|" * len(labels)]
    for label, part, path, kind in ROWS:
        cells = []
        for lab, doc in zip(labels, docs):
            vals = [_get(doc[part], path, shape) for shape in ("perspective", "panorama")]
            out.setdefault(label, {})[lab] = dict(zip(("perspective", "panorama"), vals))
            cells.append(" / ".join(_fmt(v, kind) for v in vals))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    vae = [doc["short"].get("vae_walls") for doc in docs]
    out["vae_walls"] = dict(zip(labels, vae))
    out["folders"] = [str(d) for d in dirs]
    out["machine"] = machine()
    return out, "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", type=Path, help="folders with eval.json and eval_short.json")
    ap.add_argument("--labels", required=True, help="comma-separated, one per folder")
    ap.add_argument("--title", default="The embedded model: held-out short prompts and long captions")
    ap.add_argument("--notes", default="", help="markdown added under the table")
    ap.add_argument("--out", type=Path, required=True, help="path stem: writes <out>.json and <out>.md")
    a = ap.parse_args(argv)
    labels = a.labels.split(",")
    if len(labels) != len(a.dirs):
        ap.error(f"{len(a.dirs)} folders but {len(labels)} labels")
    rows, table = compare(a.dirs, labels)
    write_results(a.out, rows, f"# {a.title}\n\n{table}\n{a.notes}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
