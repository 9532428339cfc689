"""Which defaults prompt completion fills in (runtime/prompts.py), chosen on the short prompts' validation seeds.

Every held-out short prompt ("a green cube", "360 view of one red cone"; training/captions.py) is completed with
each candidate template for what it leaves out and generated on the validation seed sets (2000 + k, 3000 + k;
the reported sets 1000, 7000, 8000 + k are never looked at here), and scored with the evaluation's colour and
nearer metrics. The shipped prompt_completion.json holds the winners.

    python -m training.completion_defaults --out benchmarks/results/embedded-short-prompts/completion-defaults
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ldm3d_edge.bench.common import machine, write_results

from .captions import short_prompt_set
from .evaluate import floor_references, short_adherence

PERSPECTIVE = ("{a} {c} {s} in the centre on a grey floor under a blue sky",
               "{a} {c} {s} in the centre on a grey floor before a white wall",
               "{a} {c} {s} on the left on a grey floor before a grey wall",
               "{a} {c} {s} in the centre on a beige floor before a white wall")
PANORAMA = (*(f"360 view of a room with {{a}} {{c}} {{s}} on a {f} floor" for f in ("grey", "beige", "dark", "brown")),
            "360 view of a plain with {a} {c} {s} on a grey floor")
_SHORT = re.compile(r"^(?:360 view of )?(?:(?:a|an|the|one) )?(\w+) (\w+)$")


def fill(prompt: str, template: str) -> str:
    c, s = _SHORT.match(prompt).groups()  # type: ignore[union-attr]   # every held-out short prompt matches
    return template.format(a="an" if c[0] in "aeiou" else "a", c=c, s=s)


def main(argv=None) -> int:
    from ldm3d_edge.embedded import embedded_artifacts

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="diffusers folder (default: the embedded model)")
    ap.add_argument("--data", default="training/data")
    ap.add_argument("--seeds", default="2000,3000", help="validation seed sets (first seed of each)")
    ap.add_argument("--out", required=True, help="folder for summary.json / summary.md")
    a = ap.parse_args(argv)
    persp, pano, _ = embedded_artifacts(a.model)
    refs = floor_references(Path(a.data))
    sets, seeds = short_prompt_set(), tuple(int(s) for s in a.seeds.split(","))
    rows = []
    for kind, art, templates, is_pano in (("perspective", persp, PERSPECTIVE, False),
                                          ("panorama", pano, PANORAMA, True)):
        for t in templates:
            entries = [dict(e, prompt=fill(e["prompt"], t)) for e in sets[kind]]
            agg, samples = short_adherence(art, entries, 30, 5.0, "openvino:CPU", is_pano, refs[int(is_pano)],
                                           seeds, complete=False)
            misses: dict[str, int] = {}
            for e, r in zip(entries * len(seeds), samples):
                if not r["colour_ok"]:
                    misses[f"{e['colour']}->{r['found']}"] = misses.get(f"{e['colour']}->{r['found']}", 0) + 1
            rows.append({"kind": kind, "template": t, "colour": agg["colour_adherence"],
                         "nearer": agg["nearer_adherence"], "iou": agg["depth_rgb_iou"], "n": agg["n"],
                         "by_seed0": agg["by_seed0"], "misses": misses})
            print(f"{kind:11s} {t!r}: colour {agg['colour_adherence']:.3f} nearer {agg['nearer_adherence']:.3f}",
                  flush=True)
    best = {k: max((r for r in rows if r["kind"] == k), key=lambda r: (r["colour"], r["nearer"]))["template"]
            for k in ("perspective", "panorama")}
    table = ["| kind | template (what a short prompt becomes) | colour | nearer | depth/RGB IoU | per set colour | "
             "colour misses |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        per_set = " / ".join(f"{v['colour'] * 100:.1f} %" for v in r["by_seed0"].values())
        table.append(f"| {r['kind']} | `{r['template']}`{' (chosen)' if best[r['kind']] == r['template'] else ''} | "
                     f"{r['colour'] * 100:.1f} % | {r['nearer'] * 100:.1f} % | {r['iou']:.3f} | {per_set} | "
                     f"{', '.join(f'{k} {v}' for k, v in r['misses'].items()) or '—'} |")
    mach = machine()
    md = ["# Prompt completion's defaults, chosen on validation seeds", "",
          f"The embedded model's held-out short prompts (80 perspective, 40 panorama) completed with each template and "
          f"generated at the validation seed sets {', '.join(f'{s} + k' for s in seeds)} "
          f"({len(seeds) * 80} / {len(seeds) * 40} samples), 30 DDIM steps, guidance 5, OpenVINO CPU f32. "
          "The reported sets (1000, 7000, 8000 + k) are not used here. `python -m training.completion_defaults`.",
          "", *table, "", f"Machine: {mach.get('cpu') or '?'}, {mach.get('cores')} cores.", ""]
    write_results(Path(a.out), {"seeds": list(seeds), "rows": rows, "chosen": best, "machine": mach},
                  "\n".join(md))
    print(f"chosen: {best}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
