"""How hard a caption the image contradicts pulls the UNet's noise prediction, per timestep.

    python -m training.text_pull MODEL_DIR [MODEL_DIR ...] --out benchmarks/results/embedded-short-prompts/text-pull

For n training latents (perspective and panorama, the fine-tunes' own latents.pt) noised to each timestep t:
mean |eps(z_t, recoloured caption) - eps(z_t, long caption)|^2, the recoloured caption being
`captions.recoloured` (one object's colour changed to one the scene lacks). img2img at strength 0.3 starts near
t = 300 from an image the new caption contradicts, so this pull at t <= 300 is what recolours; every prior-
preservation fine-tune of issue 19 lowered it and recoloured fewer scenes. Same latents, noise and captions for
every model (seeded), so the numbers compare model to model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .captions import recoloured
from .train_ldm import token_ids

TIMESTEPS = (50, 150, 250, 350, 500, 700, 900)


def probe_set(latents: Path, n: int, seed: int = 0) -> dict:
    """n evenly spaced items of each of the perspective and panorama sets: posterior means, fixed noise, the long
    captions and their recoloured versions."""
    import torch

    sets = torch.load(latents, weights_only=False)     # the project's own training cache
    rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    out = {}
    for name, s in zip(("perspective", "panorama"), sets):
        idx = np.linspace(0, len(s["scene"]) - 1, n).round().astype(int).tolist()
        caps = [s["caption"][i] for i in idx]
        swapped = [recoloured(s["scene"][i], s["caption"][i], rng) or s["caption"][i] for i in idx]
        z = s["mean"][idx]
        out[name] = {"z": z, "noise": torch.randn(z.shape, generator=gen), "captions": caps, "recoloured": swapped}
    return out


def text_pull(model: Path, probe: dict, timesteps=TIMESTEPS) -> dict[str, list[float]]:
    """{set name: the mean squared pull at each timestep} for one pipeline folder."""
    import torch
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from ldm3d_edge import ASSETS_DIR

    tok = CLIPTokenizer.from_pretrained(str(ASSETS_DIR / "clip-tokenizer"))
    sched = DDPMScheduler.from_config(
        json.loads((ASSETS_DIR / "configs/ldm3d-4c/scheduler/scheduler_config.json").read_text()))
    text = CLIPTextModel.from_pretrained(str(model / "text_encoder")).float().eval()
    unet = UNet2DConditionModel.from_pretrained(str(model / "unet")).float().eval()

    def embed(captions):
        return text(token_ids(tok, captions))[0]

    out = {}
    with torch.no_grad():
        for name, p in probe.items():
            h, hc = embed(p["captions"]), embed(p["recoloured"])
            row = []
            for t in timesteps:
                tt = torch.full((len(p["z"]),), t)
                zt = sched.add_noise(p["z"], p["noise"], tt)
                diff = unet(zt, tt, encoder_hidden_states=hc).sample - unet(zt, tt, encoder_hidden_states=h).sample
                row.append(float(diff.square().mean()))
            out[name] = row
    return out


def main(argv=None) -> int:
    from ldm3d_edge.bench.common import machine, write_results

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path, help="pipeline folders; the first is the reference (shipped)")
    ap.add_argument("--labels", nargs="+", help="one per model (default: the folder names)")
    ap.add_argument("--latents", type=Path, default=Path("training/runs/ldm-unet/latents.pt"),
                    help="a fine-tune's latents.pt (the shipped VAE's latents of the training data)")
    ap.add_argument("--n", type=int, default=96, help="latents per set")
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    a = ap.parse_args(argv)
    labels = a.labels or [m.name for m in a.models]
    if len(labels) != len(a.models):
        ap.error(f"--labels: {len(a.models)} models need {len(a.models)} labels, got {len(labels)}")
    if not a.latents.is_file():
        ap.error(f"--latents: no such file {a.latents} (train_ldm writes it in its --run folder)")
    probe = probe_set(a.latents, a.n)
    pulls = {label: text_pull(m, probe) for m, label in zip(a.models, labels)}
    ref = pulls[labels[0]]
    head = "| model | " + " | ".join(f"t={t}" for t in TIMESTEPS) + " |"
    lines = [head, "|---|" + "---|" * len(TIMESTEPS)]
    for label, p in pulls.items():
        cells = [f"{v:.2e} ({v / r:.2f})" for v, r in zip(p["perspective"], ref["perspective"])]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    md = (f"# Text pull at each timestep (perspective latents, n = {a.n}; in brackets: over {labels[0]})\n\n"
          + "\n".join(lines) + "\n\n`python -m training.text_pull` (training/text_pull.py says what it measures); "
          "the panorama latents' numbers are in the JSON.\n")
    write_results(a.out, {"machine": machine(), "timesteps": list(TIMESTEPS), "n": a.n,
                          "models": {label: {"folder": str(m), **pulls[label]} for m, label in zip(a.models, labels)}},
                  md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
