"""What a DeepCache shallow step costs, per branch, as a share of the whole UNet's FLOPs, at full size.

The release UNet configs (ldm3d-4c at 512x512, ldm3d-pano at 1024x512) with random weights; FLOPs counted by
torch's FlopCounterMode on the graphs `ldm3d export --deepcache-branch B` writes (export/deepcache.py), batch 2.
With interval N the UNet work per step averages (1 + (N - 1) * s) / N of the plain UNet's, s the shallow share;
this is the ceiling of DeepCache's saving (memory traffic and the fixed per-call cost come on top).

    python -m benchmarks.deepcache_flops [--out benchmarks/results/deepcache-flops]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ldm3d_edge import ASSETS_DIR
from ldm3d_edge.bench.common import machine, write_results

SIZES = {"ldm3d-4c": (512, 512), "ldm3d-pano": (512, 1024)}
INTERVALS = (2, 3, 5)


def meta_unet(config: str, height: int, width: int):
    """The release UNet on the meta device (shapes and FLOPs only: no 3.4 GB of weights to fill), and a batch-2
    input (sample, timestep, text states) at height x width."""
    import torch
    from diffusers import UNet2DConditionModel

    cfg = json.loads((ASSETS_DIR / "configs" / config / "unet" / "config.json").read_text())
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(cfg).eval()
    x = torch.empty(2, unet.config.in_channels, height // 8, width // 8, device="meta")
    t = torch.full((2,), 500.0, device="meta")
    hidden = torch.empty(2, 77, unet.config.cross_attention_dim, device="meta")
    return unet, (x, t, hidden)


def flops(fn, *args) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn(*args)
    return int(counter.get_total_flops())


def count(config: str, height: int, width: int) -> dict:
    import torch

    from ldm3d_edge.export.deepcache import cache_modules

    unet, (x, t, hidden) = meta_unet(config, height, width)
    total = flops(lambda *a: unet(*a[:2], encoder_hidden_states=a[2]), x, t, hidden)
    rows = []
    for branch in range(len(unet.down_blocks) * len(unet.up_blocks[-1].resnets)):
        full, shallow, split = cache_modules(unet, branch)
        with torch.no_grad():
            _, feature = full(x, t, hidden)
        s = flops(shallow, x, t, hidden, feature) / total
        rows.append({"branch": branch, "shallow_share": s, "feature_shape": list(feature.shape),
                     "per_step_share": {n: (1 + (n - 1) * s) / n for n in INTERVALS}})
    return {"config": config, "height": height, "width": width, "unet_tflop_batch2": total / 1e12,
            "full_graph_share": flops(lambda *a: cache_modules(unet, 0)[0](*a), x, t, hidden) / total,
            "branches": rows}


def markdown(results: list[dict]) -> str:
    out = ["# DeepCache: a shallow step's share of the UNet's FLOPs, per branch", "",
           "Counted by torch FlopCounterMode on the graphs `ldm3d export --deepcache-branch B` writes, random "
           "weights from the release configs, batch 2 (CFG). Per-step share at interval N = (1 + (N - 1) s) / N: "
           "the ceiling of the UNet time saved (fixed per-call costs come on top).", ""]
    for r in results:
        out += [f"## {r['config']} {r['width']}x{r['height']}: UNet {r['unet_tflop_batch2']:.3f} TFLOP per call "
                f"(full graph with the feature: {100 * r['full_graph_share']:.2f} %)", "",
                "| branch | shallow step, % of UNet | feature | UNet work per step, N = " +
                " | N = ".join(str(n) for n in INTERVALS) + " |", "|---" * (3 + len(INTERVALS)) + "|"]
        for b in r["branches"]:
            shape = "x".join(map(str, b["feature_shape"]))
            out.append(f"| {b['branch']} | {100 * b['shallow_share']:.1f} % | {shape} | "
                       + " | ".join(f"{100 * b['per_step_share'][n]:.1f} %" for n in INTERVALS) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/deepcache-flops")
    a = ap.parse_args(argv)
    results = [count(c, *SIZES[c]) for c in SIZES]
    write_results(Path(a.out), {"machine": machine(), "results": results}, markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
