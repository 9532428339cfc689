"""What token merging saves, as a share of the UNet's FLOPs, at full size.

The release UNet configs (ldm3d-4c at 512x512, ldm3d-pano at 1024x512) on the meta device, patched as
`ldm3d export --tome RATIO` patches them (export/tome.py: the self-attentions at full latent resolution), FLOPs
counted by torch's FlopCounterMode at batch 2, the similarity scores ToMe computes included. The ceiling of the
time ToMe can save: the gathers and scatters it adds move memory but count no FLOPs.

    python -m benchmarks.tome_flops [--out benchmarks/results/tome-flops]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.deepcache_flops import SIZES, flops, meta_unet
from ldm3d_edge.bench.common import machine, write_results

RATIOS = (0.3, 0.5, 0.6, 0.75)


def count(config: str, height: int, width: int) -> dict:
    from ldm3d_edge.export.tome import apply_tome

    def share(ratio: float | None) -> tuple[int, dict | None]:
        unet, (x, t, hidden) = meta_unet(config, height, width)
        record = apply_tome(unet, ratio, (height // 8, width // 8)) if ratio else None
        return flops(lambda *a: unet(*a[:2], encoder_hidden_states=a[2]), x, t, hidden), record

    total, _ = share(None)
    rows = []
    for ratio in RATIOS:
        n, record = share(ratio)
        rows.append({"ratio": ratio, "share": n / total, "blocks_merged": record["blocks"] if record else 0})
    return {"config": config, "height": height, "width": width, "unet_tflop_batch2": total / 1e12, "ratios": rows}


def markdown(results: list[dict]) -> str:
    out = ["# Token merging: the UNet's FLOPs at each ratio, full size", "",
           "Counted by torch FlopCounterMode on the release UNet configs patched as `ldm3d export --tome RATIO` "
           "patches them (self-attention at full latent resolution, tomesd's default max_downsample 1), batch 2; "
           "ToMe's similarity scores included. The ceiling of the UNet time saved.", "",
           "| UNet | size | TFLOP per call | " + " | ".join(f"ratio {r}" for r in RATIOS) + " |",
           "|---" * (3 + len(RATIOS)) + "|"]
    for r in results:
        out.append(f"| {r['config']} | {r['width']}x{r['height']} | {r['unet_tflop_batch2']:.3f} | "
                   + " | ".join(f"{100 * x['share']:.1f} %" for x in r["ratios"]) + " |")
    blocks = {x["blocks_merged"] for r in results for x in r["ratios"]}
    out += ["", f"Transformer blocks merged: {', '.join(map(str, sorted(blocks)))} of the UNet's 16 (down block 0 "
                "and the last up block).", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/tome-flops")
    a = ap.parse_args(argv)
    results = [count(c, *SIZES[c]) for c in SIZES]
    write_results(Path(a.out), {"machine": machine(), "ratios": list(RATIOS), "results": results}, markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
