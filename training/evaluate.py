"""Evaluate the embedded model: VAE reconstruction (PyTorch), prompt adherence and depth/RGB agreement
through the exported runtime (not PyTorch), and a contact sheet of 16 prompts.

    python -m ldm3d_edge.training.evaluate --model models/ldm3d-edge-tiny --out models/ldm3d-edge-tiny/eval
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from . import metrics as M
from .dataset import HELDOUT_PANO_SEED0, HELDOUT_SEED0, load_split
from .scenes import sample

BARS = {"vae_rgb_psnr_db": (">=", 28.0), "vae_depth_absrel": ("<=", 0.05), "colour_adherence": (">=", 0.80),
        "nearer_adherence": (">=", 0.90), "depth_rgb_iou": (">=", 0.60)}


def vae_reconstruction(model_dir: Path, data: Path, n: int) -> dict:
    import torch
    from diffusers import AutoencoderKL

    from .common import rgbd_tensor

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


def adherence(artifacts: Path, n: int, steps: int, guidance: float, device: str) -> tuple[dict, list]:
    from ..runtime import Pipeline

    pipe = Pipeline.load(artifacts, device=device)
    rows, t0 = [], time.perf_counter()
    for k in range(n):
        scene = sample(HELDOUT_SEED0 + k, 16).scene    # held-out caption (seed range unseen in training)
        out = pipe(scene.caption, num_inference_steps=steps, guidance_scale=guidance, seed=k)
        r = M.adherence(out.rgb_float, out.depth, scene.objects[0].colour)
        rows.append({"prompt": scene.caption, "seed": k, "colour": scene.objects[0].colour, **r})
    agg = {"colour_adherence": float(np.mean([r["colour_ok"] for r in rows])),
           "nearer_adherence": float(np.mean([r["nearer_ok"] for r in rows])),
           "depth_rgb_iou": float(np.mean([r["iou"] for r in rows])), "n": n, "steps": steps,
           "guidance": guidance, "device": pipe.device, "seconds": time.perf_counter() - t0}
    return agg, rows


def contact_sheet(artifacts: Path, pano_artifacts: Path | None, out: Path, steps: int, device: str) -> Path:
    from ..runtime import Pipeline

    pipe = Pipeline.load(artifacts, device=device)
    tiles = []
    for k in range(12):
        o = pipe(sample(HELDOUT_SEED0 + 500 + k, 16).scene.caption, num_inference_steps=steps, seed=k)
        tiles.append(np.concatenate([o.rgb, np.repeat((o.depth[..., None] * 255).astype(np.uint8), 3, -1)], 0))
    sheet = [np.concatenate(tiles[i:i + 6], 1) for i in (0, 6)]
    if pano_artifacts is not None:
        pp = Pipeline.load(pano_artifacts, device=device)
        ptiles = []
        for k in range(4):
            o = pp(sample(HELDOUT_PANO_SEED0 + 200 + k, 16, panorama=True).scene.caption, num_inference_steps=steps, seed=k)
            ptiles.append(np.concatenate([o.rgb, np.repeat((o.depth[..., None] * 255).astype(np.uint8), 3, -1)], 0))
        row = np.concatenate(ptiles[:3], 1)
        sheet.append(row[:, : sheet[0].shape[1]] if row.shape[1] >= sheet[0].shape[1] else
                     np.pad(row, ((0, 0), (0, sheet[0].shape[1] - row.shape[1]), (0, 0))))
    Image.fromarray(np.concatenate(sheet, 0)).save(out)
    return out


def main(argv=None) -> int:
    from ..embedded import embedded_artifacts

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="diffusers folder (default: the embedded model)")
    ap.add_argument("--data", default="training/data", help="held-out renders from training/dataset.py")
    ap.add_argument("--out", default=None, help="folder for eval.json and contact_sheet.png")
    ap.add_argument("--prompts", type=int, default=100)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--device", default="openvino:CPU")
    a = ap.parse_args(argv)
    persp, pano, model_dir = embedded_artifacts(a.model)
    out = Path(a.out or model_dir / "eval")
    out.mkdir(parents=True, exist_ok=True)
    res = {"vae": vae_reconstruction(model_dir, Path(a.data), 300)}
    res["prompts"], rows = adherence(persp, a.prompts, a.steps, a.guidance, a.device)
    flat = {"vae_rgb_psnr_db": res["vae"]["heldout"]["rgb_psnr_db"],
            "vae_depth_absrel": res["vae"]["heldout"]["depth_absrel"], **res["prompts"]}
    res["bars"] = {k: {"value": flat[k], "bar": f"{op} {v}", "met": flat[k] >= v if op == ">=" else flat[k] <= v}
                   for k, (op, v) in BARS.items()}
    (out / "eval.json").write_text(json.dumps(res, indent=2))
    (out / "samples.json").write_text(json.dumps(rows, indent=1))
    contact_sheet(persp, pano, out / "contact_sheet.png", a.steps, a.device)
    for k, b in res["bars"].items():
        print(f"{k:20s} {b['value']:.3f}  bar {b['bar']:8s} {'met' if b['met'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
