"""Train the RGBD AutoencoderKL (4 in/out channels: RGB + depth, downsampling factor 8) on rendered scenes.

    python -m training.train_vae --data training/data --run training/runs/vae --steps 3000

Resumes from <run>/checkpoint.pt; writes <run>/final (diffusers format) with the latent scaling factor
measured on the training data.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from .common import Timer, load_checkpoint, rgbd_tensor, save_checkpoint, seed_everything
from .dataset import load_split, train_paths

VAE_CONFIG = dict(in_channels=4, out_channels=4, latent_channels=4, layers_per_block=1,
                  block_out_channels=[32, 64, 128, 128], down_block_types=["DownEncoderBlock2D"] * 4,
                  up_block_types=["UpDecoderBlock2D"] * 4, norm_num_groups=8, sample_size=128)
DEPTH_WEIGHT = 2.0
KL_WEIGHT = 1e-6
# Objects cover a few percent of the pixels; unweighted, the VAE learned floors and walls and washed the
# objects' colours out (PSNR 22.6 dB at 2,800 steps with grey objects). Object pixels count this much more:
OBJECT_WEIGHT = 8.0


def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(**VAE_CONFIG)


def crops(sets: list[dict], batch: int, size: int, rng: np.random.Generator, pano_share: float | None = None):
    """Random size x size crops, randomly mirrored: (RGBD tensor in [-1, 1], per-pixel loss weight tensor).
    sets = [perspective, panorama]; a batch is panoramas with probability pano_share (None: each set alike, drawn
    as the shipped VAE's runs drew it, so they replay exactly)."""
    import torch

    if pano_share is None:
        s = sets[rng.integers(len(sets))]
    else:
        s = sets[1] if len(sets) > 1 and rng.random() < pano_share else sets[0]
    idx = rng.integers(0, len(s["rgb"]), batch)
    h, w = s["rgb"].shape[1:3]
    ys, xs = rng.integers(0, h - size + 1, batch), rng.integers(0, w - size + 1, batch)
    cut = {k: np.stack([s[k][i, y:y + size, x:x + size] for i, y, x in zip(idx, ys, xs)])
           for k in ("rgb", "depth", "mask")}
    flip = rng.random(batch) < 0.5
    for k in cut:
        cut[k][flip] = cut[k][flip, :, ::-1]
    weight = 1.0 + OBJECT_WEIGHT * (cut["mask"] >= 0).astype(np.float32)
    return rgbd_tensor(cut["rgb"], cut["depth"]), torch.from_numpy(weight)[:, None]


def vae_loss(vae, x, weight, decoder_only: bool = False):
    import torch

    with torch.set_grad_enabled(not decoder_only):
        post = vae.encode(x).latent_dist
    rec = vae.decode(post.sample()).sample
    l1 = (rec - x).abs() * weight / weight.mean()
    rec_loss = l1[:, :3].mean() + DEPTH_WEIGHT * l1[:, 3:].mean()
    kl = post.kl().mean() / x[0].numel()
    return rec_loss + KL_WEIGHT * kl, rec_loss.detach()


def main(argv=None) -> int:
    import torch
    from tqdm.auto import tqdm

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="training/data")
    ap.add_argument("--run", default="training/runs/vae")
    ap.add_argument("--size", type=int, default=128, help="which rendered splits to read (their image height)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=64, help="training crop (the model is fully convolutional)")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-every", type=int, default=200)
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True, help="bf16 autocast (AMX/AVX512)")
    ap.add_argument("--pano-share", type=float, default=None,
                    help="fraction of batches drawn from the panoramas (default: each split alike)")
    ap.add_argument("--init", default=None, help="start from this saved VAE folder (fine-tuning)")
    ap.add_argument("--decoder-only", action="store_true",
                    help="train post_quant_conv and the decoder only: the encoder, and so every latent a diffusion "
                         "model was trained on, stays exactly as it was")
    a = ap.parse_args(argv)
    run = Path(a.run)
    seed_everything(a.seed)
    data = [load_split(p) for p in train_paths(a.data, a.size)]
    rgbs, depths = [d["rgb"] for d in data], [d["depth"] for d in data]
    vae = build_vae()
    if a.init:
        from diffusers import AutoencoderKL

        vae.load_state_dict(AutoencoderKL.from_pretrained(a.init).state_dict())
    trained = (list(vae.post_quant_conv.parameters()) + list(vae.decoder.parameters()) if a.decoder_only
               else list(vae.parameters()))
    opt = torch.optim.AdamW(trained, lr=a.lr, weight_decay=0.0)
    rng = np.random.default_rng(a.seed)
    step = 0
    ck = load_checkpoint(run / "checkpoint.pt")
    if ck:
        vae.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, rng = ck["step"], ck["rng"]
        if "torch_rng" in ck:       # the posterior samples' noise
            torch.set_rng_state(ck["torch_rng"])
        print(f"resumed at step {step}")
    nparams = sum(p.numel() for p in vae.parameters())
    timer = Timer()
    bar = tqdm(total=a.steps, initial=step, desc="vae", unit="step")
    vae.train()
    while step < a.steps:
        lr = a.lr * 0.5 * (1 + math.cos(math.pi * step / a.steps)) if step > 100 else a.lr * (step + 1) / 100
        for g in opt.param_groups:
            g["lr"] = lr
        x, weight = crops(data, a.batch, a.crop, rng, a.pano_share)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            loss, rec = vae_loss(vae, x, weight, a.decoder_only)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(rec=f"{rec.item():.4f}", lr=f"{lr:.1e}", refresh=False)
        if step % a.save_every == 0 or step == a.steps:
            save_checkpoint(run / "checkpoint.pt", model=vae.state_dict(), opt=opt.state_dict(), step=step, rng=rng,
                            torch_rng=torch.get_rng_state())
    bar.close()
    vae.eval()
    # latent scaling factor: 1 / std of the posterior means over training images (SD's 0.18215 convention)
    with torch.no_grad():
        sample_idx = np.random.default_rng(1).choice(len(rgbs[0]), min(256, len(rgbs[0])), replace=False)
        z = torch.cat([vae.encode(rgbd_tensor(rgbs[0][i:i + 32], depths[0][i:i + 32])).latent_dist.mean
                       for i in sample_idx[::32]])
    scale = float(1.0 / z.std())
    vae.register_to_config(scaling_factor=scale)
    vae.save_pretrained(str(run / "final"))
    info = {"steps": step, "params": nparams, "scaling_factor": scale, "minutes_this_run": timer.minutes()}
    (run / "final" / "training.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
