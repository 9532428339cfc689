"""Train the text encoder (a small CLIPTextModel on the real CLIP vocabulary) and the UNet together on VAE
latents of rendered scenes, then save the whole model as a standard StableDiffusionLDM3DPipeline folder.

    python -m training.train_ldm --data training/data --vae training/runs/vae/final \\
        --run training/runs/ldm --steps 6000 --out models/ldm3d-edge-tiny

A fine-tune of the shipped model (the VAE untouched; --init takes the shipped pipeline folder):

    python -m training.train_ldm --vae src/ldm3d_edge/models/ldm3d-edge-tiny/vae --no-unit-latents \\
        --init src/ldm3d_edge/models/ldm3d-edge-tiny --short-captions 0.6 --run training/runs/ldm-short ...

One model serves both 128x128 perspective scenes and 256x128 "360 view of" panoramas (the UNet is
convolutional); batches alternate between the two. Resumes from <run>/checkpoint.pt.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np

from .captions import recoloured, variant
from .common import Timer, load_checkpoint, regex_arg, rgbd_tensor, save_checkpoint, seed_everything
from .dataset import load_split, train_paths
from .scenes import WALLS

TEXT_CONFIG = dict(vocab_size=49408, hidden_size=128, intermediate_size=512, num_hidden_layers=3,
                   num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                   bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, projection_dim=128)
UNET_CONFIG = dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
                   block_out_channels=[64, 128, 192],      # 8.8M parameters: all weights fit 40 MB in fp16
                   down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                   up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
                   cross_attention_dim=128, attention_head_dim=8, norm_num_groups=32)
UNCOND_PROB = 0.1       # caption dropped to "" this often, for classifier-free guidance


def flip_caption(c: str) -> str:
    return c.replace(" left", " \0").replace(" right", " left").replace(" \0", " right")


def plain_wall_items(scenes: list[str], n: int) -> np.ndarray:
    """The items (of n: each image, then its mirror) whose scene record has a plain wall or the sky."""
    plain = np.array([json.loads(r)["wall"] in WALLS for r in scenes])
    return np.nonzero(plain[np.arange(n) % len(scenes)])[0]


def single_object_items(scenes: list[str], pool: np.ndarray) -> np.ndarray:
    """The items of `pool` (indices over each image, then its mirror) whose scene has exactly one object."""
    single = np.array([len(json.loads(r)["objects"]) == 1 for r in scenes])
    return pool[single[pool % len(scenes)]]


def counterfactuals(scenes: list[str], captions: list[str], idx: list[int], eligible: list[bool], share: float,
                    rng: np.random.Generator) -> dict[int, str]:
    """{batch position: counterfactual caption} for about `share` of the eligible positions: the item's long caption
    (captions[i], already mirrored for a mirror item) with one object recoloured (captions.recoloured)."""
    out = {}
    for j, (i, ok) in enumerate(zip(idx, eligible)):
        if ok and rng.random() < share:
            c = recoloured(scenes[i % len(scenes)], captions[i], rng)
            if c is not None:
                out[j] = c
    return out


def token_ids(tokenizer, captions: list[str]):
    """CLIP token ids of `captions`, padded and truncated to the text encoder's 77 positions."""
    return tokenizer(captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def _encode_all(encode, rgb, depth, batch: int):
    """Posterior (mean, std) of every image and then of every mirror image, `batch` at a time; `encode` maps one
    float32 (N, 4, H, W) tensor to (mean, std)."""
    import torch
    from tqdm.auto import tqdm

    means, stds = [], []
    for flip in (False, True):
        for i in tqdm(range(0, len(rgb), batch), desc=f"encoding{' mirrored' if flip else ''}", unit="batch"):
            r, d = rgb[i:i + batch], depth[i:i + batch]
            if flip:
                r, d = r[:, :, ::-1], d[:, :, ::-1]
            mean, std = encode(rgbd_tensor(np.ascontiguousarray(r), np.ascontiguousarray(d)))
            means.append(mean)
            stds.append(std)
    return torch.cat(means), torch.cat(stds)


def encode_latents(vae, rgb, depth, batch: int = 64, bf16: bool | None = None):
    """Posterior mean and std of every image (and of its mirror image) under the trained VAE; bf16: autocast
    (default: where the CPU has native bf16)."""
    import torch

    def encode(x):
        post = vae.encode(x).latent_dist
        return post.mean.float(), post.std.float()

    # bf16 autocast halves the encoding time on AVX512-BF16/AMX (the latents are stored in fp32); without native
    # bf16 it is emulated and slower, so fp32 there
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_has_bf16() if bf16 is None else bf16):
        return _encode_all(encode, rgb, depth, batch)


def encode_latents_openvino(encoder_dir, rgb, depth, batch: int = 32):
    """encode_latents through an exported vae_encoder IR (the same VAE's: mean and log-variance out, to 4e-6 of
    PyTorch's): 2.1x faster than PyTorch eager, side by side on one core of the 2-core AVX2 VM."""
    import openvino as ov
    import torch

    core = ov.Core()
    model = core.read_model(str(Path(encoder_dir) / "openvino_model.xml"))
    model.reshape({model.inputs[0]: [batch, 4, *rgb.shape[1:3]]})
    # f32 spelled out: on a CPU with AMX OpenVINO would run it in bf16 (latents 1e-2 off instead of 4e-6)
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

    def encode(x):
        x = x.numpy()
        n = len(x)
        if n < batch:       # the compiled shape is static: pad the last batch
            x = np.concatenate([x, np.zeros((batch - n, *x.shape[1:]), x.dtype)])
        mean, logvar = torch.from_numpy(next(iter(compiled(x).values()))[:n].copy()).chunk(2, dim=1)
        return mean, torch.exp(0.5 * logvar.clamp(-30.0, 20.0))   # as diffusers' DiagonalGaussianDistribution

    return _encode_all(encode, rgb, depth, batch)


def unit_latent_stats(sets):
    """Per-channel mean m and gain a = 1/std of the sampled training latents (posterior mean + std * noise)."""
    import torch

    mean = torch.cat([s["mean"].transpose(0, 1).flatten(1) for s in sets], 1)
    noise_var = torch.cat([(s["std"] ** 2).transpose(0, 1).flatten(1) for s in sets], 1)
    m = mean.mean(1)
    return m, 1 / torch.sqrt(mean.var(1) + noise_var.mean(1))


def fold_latent_transform(vae, m, a) -> None:
    """Make the VAE's latents z' = a * (z - m) per channel, exactly, by rewriting its two 1x1 convolutions:
    quant_conv emits a * (mean - m) and log-variance + 2 ln a; post_quant_conv takes z' back to z first.
    scaling_factor becomes 1: the diffusion model then sees zero-mean unit-variance channels (with one global
    factor, the embedded model's channels had std 0.45/0.44/1.43/1.06 and means up to 0.80, and the diffusion
    noise drowned the weak colour channels first)."""
    import torch

    n = len(m)
    with torch.no_grad():
        qc, pqc = vae.quant_conv, vae.post_quant_conv
        qc.weight[:n] *= a.view(-1, 1, 1, 1)
        qc.bias[:n] = a * (qc.bias[:n] - m)
        qc.bias[n:] += 2 * torch.log(a)
        pqc.bias += pqc.weight[:, :, 0, 0] @ m
        pqc.weight /= a.view(1, -1, 1, 1)
    vae.register_to_config(scaling_factor=1.0)


def main(argv=None) -> int:
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from tqdm.auto import tqdm
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from ldm3d_edge import ASSETS_DIR

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="training/data")
    ap.add_argument("--vae", default="training/runs/vae/final")
    ap.add_argument("--run", default="training/runs/ldm")
    ap.add_argument("--out", default=None, help="write the finished pipeline here (fp16 safetensors)")
    ap.add_argument("--size", type=int, default=128, help="which rendered splits to read (their image height)")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-every", type=int, default=250)
    ap.add_argument("--pano-every", type=int, default=4, help="every n-th batch is panoramas")
    ap.add_argument("--warmup", type=int, default=200, help="steps of linear learning-rate warm-up")
    ap.add_argument("--init", default=None, help="start the text encoder and UNet from another run's checkpoint.pt "
                    "or from a pipeline folder (its text_encoder/ and unet/)")
    ap.add_argument("--teacher", default=None,
                    help="the model whose own predictions --distill, --preserve and --anchor-text pin (a run's "
                         "checkpoint.pt or a pipeline folder; default: --init), e.g. the shipped weights while "
                         "--init is a fine-tune being repaired")
    ap.add_argument("--encoder-ir", default=None,
                    help="encode the training latents with this exported vae_encoder folder (OpenVINO) instead of "
                         "PyTorch: it must hold the --vae's encoder (the shipped IR does, for the shipped VAE)")
    ap.add_argument("--short-captions", type=float, default=0.0,
                    help="share of captions replaced by a shorter true variant (training/captions.py); needs data "
                         "rendered with scene records")
    ap.add_argument("--short-captions-pano", type=float, default=None,
                    help="the share for panorama batches (default: --short-captions); a smaller one keeps more of "
                         "the long panorama captions the model was trained on")
    ap.add_argument("--pano-single", type=float, default=0.0,
                    help="share of each panorama batch drawn from the single-object panoramas (a third of the "
                         "data): a short prompt names one object, and a model that learnt the object count from "
                         "the long captions alone draws two or three for it; 0: uniform over all panoramas")
    ap.add_argument("--unit-latents", action=argparse.BooleanOptionalAction, default=True,
                    help="fold a per-channel shift and scale into the VAE so latents have zero mean, unit std")
    ap.add_argument("--freeze-unet", action="store_true",
                    help="train the text encoder alone: the UNet (and so what the long captions it was trained on "
                         "draw) stays as it is, and only how the prompts are read can change")
    ap.add_argument("--freeze-text", action="store_true",
                    help="train the UNet alone: the text encoder stays the --init one, so every caption (the long "
                         "ones the model was trained on, the empty prompt of guidance) keeps its embedding and only "
                         "what the UNet draws for it can change")
    ap.add_argument("--unet-only", metavar="REGEX", default=None, type=regex_arg,
                    help="train only the UNet weights whose names match (e.g. 'attn2\\.to_[kv]': the keys and values "
                         "of the cross-attention, where the prompt enters, as Custom Diffusion does); every other "
                         "UNet weight, and so how the model draws shapes and depth, stays the --init one's")
    ap.add_argument("--distill", type=float, default=0.0,
                    help="weight of a second target: the --init model's own noise prediction for the image's long "
                         "caption (short captions learn to mean what the long one means to it, long captions keep "
                         "it); 0: the true noise alone")
    ap.add_argument("--preserve", type=float, default=None,
                    help="the same target's weight for the items that keep their long caption or are dropped to "
                         "the empty prompt (prior preservation: what the --init model drew for them is pinned while "
                         "short captions learn from the true noise); default: --distill's weight")
    ap.add_argument("--anchor-text", type=float, default=0.0,
                    help="weight of a text-encoder anchor: the mean squared difference between this text encoder's "
                         "output and the --init one's for the items that keep their long caption or are dropped to "
                         "the empty prompt. With --freeze-unet the long captions (and guidance's empty prompt) then "
                         "keep the embeddings the UNet was trained on while the short ones learn; 0: off")
    ap.add_argument("--counterfactual", type=float, default=0.0,
                    help="share of the long-caption items whose caption gets one object's colour changed to one the "
                         "scene lacks, with the teacher's prediction for that caption as the whole target: prior "
                         "preservation pins only captions the image agrees with, and img2img recolouring (a red "
                         "sphere redrawn as green at strength 0.3) is the model following a caption the image "
                         "contradicts; 0: off")
    ap.add_argument("--counterfactual-pano", type=float, default=None, metavar="SHARE",
                    help="the share for panorama batches (default: --counterfactual); 0 pins only perspective "
                         "scenes, which is where the recolouring is measured (training.evaluate --only edits)")
    ap.add_argument("--counterfactual-weight", type=float, default=1.0, metavar="W",
                    help="the counterfactual items' loss counts W times: the text's pull on a noisy image is a "
                         "small part of a noise prediction, and the short captions' true-noise loss pulls it down")
    ap.add_argument("--counterfactual-extra", action="store_true",
                    help="add the counterfactual items to the batch (the same noisy latent read with the recoloured "
                         "caption, a second forward pass) instead of replacing the long-caption items: what the "
                         "model draws for the image's own caption stays pinned too, and only the recoloured "
                         "caption's prediction is added")
    ap.add_argument("--pin-below", type=int, default=0, metavar="T",
                    help="at timesteps below T every item learns the teacher's prediction alone (a short caption: "
                         "the teacher's for the image's long caption): the fine-tune then changes what the model "
                         "composes at high noise and leaves the low-noise steps, where img2img at low strength "
                         "recolours and details are drawn, the teacher's; 0: off")
    ap.add_argument("--plain-walls", action="store_true",
                    help="leave out the images whose wall is coloured (data version 2): the VAE reconstructs coloured "
                         "walls grey, so their latents teach the UNet a wall colour it cannot show")
    # measured on the 2-core AMX VM: this small UNet trains faster in fp32 (1.47 s) than bf16 autocast (1.65 s)
    # per batch of 64
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=False)
    a = ap.parse_args(argv)
    for name, w in (("--distill", a.distill), ("--preserve", a.preserve)):
        if w is not None and not 0.0 <= w <= 1.0:
            ap.error(f"{name} is a weight from 0 to 1, got {w}")
    for name, share in (("--pano-single", a.pano_single), ("--counterfactual", a.counterfactual),
                        ("--counterfactual-pano", a.counterfactual_pano)):
        if share is not None and not 0.0 <= share <= 1.0:
            ap.error(f"{name} is a share from 0 to 1, got {share}")
    if a.counterfactual_weight <= 0:
        ap.error(f"--counterfactual-weight is a weight > 0, got {a.counterfactual_weight}")
    cf_any = max(a.counterfactual, a.counterfactual_pano or 0.0) > 0
    if a.counterfactual_extra and not cf_any:
        ap.error("--counterfactual-extra adds the --counterfactual items: give --counterfactual or "
                 "--counterfactual-pano a share above 0")
    if not 0 <= a.pin_below <= 1000:
        ap.error(f"--pin-below is a timestep from 0 to 1000, got {a.pin_below}")
    if a.anchor_text < 0:
        ap.error(f"--anchor-text is a weight >= 0, got {a.anchor_text}")
    if a.freeze_text and (a.freeze_unet or a.anchor_text > 0):
        ap.error("--freeze-text leaves nothing to train with --freeze-unet, and nothing to anchor with --anchor-text")
    if a.unet_only is not None and a.freeze_unet:
        ap.error("--unet-only picks UNet weights to train: it cannot go with --freeze-unet")
    keep_w = a.distill if a.preserve is None else a.preserve      # teacher weight of long-caption/empty items
    run = Path(a.run)
    seed_everything(a.seed)
    tokenizer = CLIPTokenizer.from_pretrained(str(ASSETS_DIR / "clip-tokenizer"))
    vae = AutoencoderKL.from_pretrained(a.vae).float().eval()
    scale = vae.config.scaling_factor
    sched_cfg = json.loads((ASSETS_DIR / "configs/ldm3d-4c/scheduler/scheduler_config.json").read_text())
    noise_sched = DDPMScheduler.from_config(sched_cfg)

    cache = run / "latents.pt"
    if cache.is_file():
        sets = torch.load(cache, weights_only=False)   # this run's own file: tensors and caption strings
    else:
        sets = []
        for path in train_paths(a.data, a.size):
            d = load_split(path)
            if a.encoder_ir:
                mean, std = encode_latents_openvino(a.encoder_ir, d["rgb"], d["depth"])
            else:
                mean, std = encode_latents(vae, d["rgb"], d["depth"])
            caps = [str(c) for c in d["caption"]] + [flip_caption(str(c)) for c in d["caption"]]
            ids = token_ids(tokenizer, caps)
            scenes = [str(r) for r in d["scene"]] if "scene" in d else None
            sets.append({"mean": mean, "std": std, "ids": ids, "caption": caps, "scene": scenes})
        run.mkdir(parents=True, exist_ok=True)
        torch.save(sets, cache)
    if a.unit_latents:
        m, gain = unit_latent_stats(sets)
        print(f"latent channels: mean {m.tolist()}, std {(1 / gain).tolist()} -> folded into the VAE")
        fold_latent_transform(vae, m, gain)
        sets = [dict(s, mean=gain.view(1, -1, 1, 1) * (s["mean"] - m.view(1, -1, 1, 1)),
                     std=gain.view(1, -1, 1, 1) * s["std"]) for s in sets]
        scale = vae.config.scaling_factor
    # checked before the models are built and --init is read: bad data fails at once
    if (max(a.short_captions, a.short_captions_pano or 0.0, a.pano_single) > 0 or cf_any or a.plain_walls) \
            and any(s.get("scene") is None for s in sets):
        raise SystemExit("--short-captions, --pano-single, --counterfactual and --plain-walls need scene records: "
                         f"render {a.data} again with training.dataset")
    for s in sets:      # which images a batch may draw
        n = len(s["mean"])
        s["pool"] = torch.from_numpy(plain_wall_items(s["scene"], n)) if a.plain_walls else torch.arange(n)
        if a.plain_walls:
            print(f"--plain-walls: {len(s['pool'])} of {n} images")
    if a.pano_single > 0:
        sets[1]["single"] = torch.from_numpy(single_object_items(sets[1]["scene"], sets[1]["pool"].numpy()))
        print(f"--pano-single {a.pano_single}: {len(sets[1]['single'])} single-object panorama items")
    empty_ids = token_ids(tokenizer, [""])

    text = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))
    unet = UNet2DConditionModel(**UNET_CONFIG)
    text.requires_grad_(not a.freeze_text)
    unet.requires_grad_(not a.freeze_unet)
    if a.unet_only is not None:
        for name, p in unet.named_parameters():
            p.requires_grad_(re.search(a.unet_only, name) is not None)
        if not any(p.requires_grad for p in unet.parameters()):
            raise SystemExit(f"--unet-only {a.unet_only!r} matches none of the UNet's weights")
    params = [p for p in (*text.parameters(), *unet.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=1e-2)
    ema_text, ema_unet = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG)), UNet2DConditionModel(**UNET_CONFIG)
    ema_text.load_state_dict(text.state_dict())
    ema_unet.load_state_dict(unet.state_dict())
    step, gen = 0, torch.Generator().manual_seed(a.seed)
    init = None     # the --init model's weights, read once: the start point and, without --teacher, the teacher
    if a.init and not (run / "checkpoint.pt").is_file():
        init = init_state(Path(a.init))
        for model, key in ((text, "ema_text"), (unet, "ema_unet"), (ema_text, "ema_text"), (ema_unet, "ema_unet")):
            model.load_state_dict(init[key])
        print(f"initialised from {a.init} (step {init['step']})")
    teacher = None
    if a.distill > 0 or keep_w > 0 or a.anchor_text > 0 or cf_any or a.pin_below > 0:
        if not (a.teacher or a.init):
            raise SystemExit("--distill, --preserve, --counterfactual, --pin-below and --anchor-text need --init or "
                             "--teacher: the model whose outputs are the target")
        pinned = init_state(Path(a.teacher)) if a.teacher else init or init_state(Path(a.init))
        teacher = (CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG)), UNet2DConditionModel(**UNET_CONFIG))
        for model, key in zip(teacher, ("ema_text", "ema_unet")):
            model.load_state_dict(pinned[key])
            model.requires_grad_(False).eval()
    ck = load_checkpoint(run / "checkpoint.pt")
    for flag, frozen in (("--freeze-unet", a.freeze_unet), ("--freeze-text", a.freeze_text)):
        was = bool(ck.get(flag[2:].replace("-", "_"), False)) if ck else frozen
        if was != frozen:
            # the optimiser's state holds that part's parameters or not: it cannot be resumed the other way
            raise SystemExit(f"{run} was trained {'with' if was else 'without'} {flag}: resume it the same way")
    if ck and ck.get("unet_only") != a.unet_only:
        raise SystemExit(f"{run} was trained with --unet-only {ck.get('unet_only')!r}: resume it the same way")
    if ck:
        text.load_state_dict(ck["text"])
        unet.load_state_dict(ck["unet"])
        ema_text.load_state_dict(ck["ema_text"])
        ema_unet.load_state_dict(ck["ema_unet"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
        gen.set_state(ck["gen"])
        print(f"resumed at step {step}")
    trained = {id(p) for p in params}       # the EMA copies of exactly the trained weights, in the same order
    ema_params = [pe for pe, p in zip((*ema_text.parameters(), *ema_unet.parameters()),
                                      (*text.parameters(), *unet.parameters())) if id(p) in trained]
    timer = Timer()
    bar = tqdm(total=a.steps, initial=step, desc="ldm", unit="step")
    text.train(not a.freeze_text)
    unet.train()
    while step < a.steps:
        lr = a.lr * min(1.0, (step + 1) / a.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / a.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        s = sets[1] if step % a.pano_every == a.pano_every - 1 else sets[0]
        idx = s["pool"][torch.randint(0, len(s["pool"]), (a.batch,), generator=gen)]
        if "single" in s:
            pick = torch.rand(a.batch, generator=gen) < a.pano_single
            idx[pick] = s["single"][torch.randint(0, len(s["single"]), (int(pick.sum()),), generator=gen)]
        z = (s["mean"][idx] + s["std"][idx] * torch.randn(s["mean"][idx].shape, generator=gen)) * scale
        share = a.short_captions if s is sets[0] or a.short_captions_pano is None else a.short_captions_pano
        if share > 0:      # a fresh true variant per item, reproducible from (seed, step)
            vrng = np.random.default_rng([a.seed, step])
            n_img = len(s["scene"])
            caps = [variant(s["scene"][i % n_img], s["caption"][i], vrng, share, mirrored=i >= n_img)
                    for i in idx.tolist()]
            ids = token_ids(tokenizer, caps)
            kept = torch.tensor([c == s["caption"][i] for c, i in zip(caps, idx.tolist())])
        else:
            ids = s["ids"][idx].clone()
            kept = torch.ones(a.batch, dtype=torch.bool)
        drop = torch.rand(a.batch, generator=gen) < UNCOND_PROB
        ids[drop] = empty_ids
        cf = torch.zeros(a.batch, dtype=torch.bool)
        extra: dict[int, str] = {}      # --counterfactual-extra: {batch position: recoloured caption}
        cf_share = a.counterfactual if s is sets[0] or a.counterfactual_pano is None else a.counterfactual_pano
        if cf_share > 0:    # its own random stream: the runs without it draw exactly as before
            swap = counterfactuals(s["scene"], s["caption"], idx.tolist(), (kept & ~drop).tolist(), cf_share,
                                   np.random.default_rng([a.seed, step, 1]))
            if swap and not a.counterfactual_extra:
                ids[list(swap)] = token_ids(tokenizer, list(swap.values()))
                cf[list(swap)] = True
            elif swap:
                extra = swap
        noise = torch.randn(z.shape, generator=gen)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (a.batch,), generator=gen)
        zt = noise_sched.add_noise(z, noise, t)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            with torch.set_grad_enabled(not a.freeze_text):
                hidden = text(ids)[0]
            pred = unet(zt, t, encoder_hidden_states=hidden).sample
        per_item = (pred.float() - noise).square().mean(dim=(1, 2, 3))
        loss, anchor = torch.zeros(()), torch.zeros(())
        if teacher is not None:
            long_ids = s["ids"][idx].clone()
            long_ids[drop] = empty_ids
            long_ids[cf] = ids[cf]      # the teacher reads the counterfactual caption too
            with torch.no_grad():
                long_hidden = teacher[0](long_ids)[0]
            if a.distill > 0 or keep_w > 0 or cf_any or a.pin_below > 0:
                with torch.no_grad():
                    target = teacher[1](zt, t, encoder_hidden_states=long_hidden).sample
                # a counterfactual caption has no true noise to learn: the teacher's answer is the whole target
                w = torch.where(cf | (t < a.pin_below), 1.0, torch.where(kept | drop, keep_w, a.distill))
                per_item = (1 - w) * per_item + w * (pred.float() - target).square().mean(dim=(1, 2, 3))
                per_item = torch.where(cf, a.counterfactual_weight * per_item, per_item)
            if a.anchor_text > 0 and bool((kept | drop).any()):
                # these items' ids (counterfactual ones too) are exactly long_ids: compared token for token
                anchor = (hidden.float() - long_hidden).square().mean(dim=(1, 2))[kept | drop].mean()
                loss = loss + a.anchor_text * anchor
        if extra and teacher is not None:
            pos = list(extra)
            x_ids = token_ids(tokenizer, list(extra.values()))
            with torch.no_grad():
                x_target = teacher[1](zt[pos], t[pos], encoder_hidden_states=teacher[0](x_ids)[0]).sample
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
                with torch.set_grad_enabled(not a.freeze_text):
                    x_hidden = text(x_ids)[0]
                x_pred = unet(zt[pos], t[pos], encoder_hidden_states=x_hidden).sample
            # each added item counts as one batch item times the weight, as a replacing one does
            loss = loss + a.counterfactual_weight * (x_pred.float() - x_target).square().mean(dim=(1, 2, 3)).sum() \
                / a.batch
        loss = loss + per_item.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            decay = min(a.ema, (1 + step) / (10 + step))
            for pe, p in zip(ema_params, params):
                pe.mul_(decay).add_(p.detach(), alpha=1 - decay)
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.1e}", refresh=False,
                        **({"anchor": f"{anchor.item():.2e}"} if a.anchor_text > 0 else {}))
        if step % a.save_every == 0 or step == a.steps:
            save_checkpoint(run / "checkpoint.pt", text=text.state_dict(), unet=unet.state_dict(),
                            ema_text=ema_text.state_dict(), ema_unet=ema_unet.state_dict(), opt=opt.state_dict(),
                            step=step, gen=gen.get_state(), freeze_unet=a.freeze_unet, freeze_text=a.freeze_text,
                            unet_only=a.unet_only)
    bar.close()
    info = {"steps": step, "minutes_this_run": timer.minutes(),
            "trained_params": sum(p.numel() for p in params),
            "params": {"text_encoder": sum(p.numel() for p in text.parameters()),
                       "unet": sum(p.numel() for p in unet.parameters()),
                       "vae": sum(p.numel() for p in vae.parameters())}}
    (run / "training.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info))
    if a.out:
        save_pipeline(a.out, ema_text, ema_unet, vae, tokenizer, sched_cfg)
    return 0


def init_state(path: Path) -> dict:
    """EMA text encoder and UNet weights (float32) from a run's checkpoint.pt or a saved pipeline folder."""
    if path.is_dir():
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        return {"ema_text": CLIPTextModel.from_pretrained(path / "text_encoder").float().state_dict(),
                "ema_unet": UNet2DConditionModel.from_pretrained(path / "unet").float().state_dict(),
                "step": f"the saved pipeline {path}"}
    return load_checkpoint(path)


def save_pipeline(out, text, unet, vae, tokenizer, sched_cfg) -> Path:
    """A standard StableDiffusionLDM3DPipeline folder with fp16 safetensors weights."""
    import shutil

    from diffusers import DDIMScheduler, StableDiffusionLDM3DPipeline

    from ldm3d_edge import ASSETS_DIR

    out = Path(out)
    pipe = StableDiffusionLDM3DPipeline(vae=vae.half(), text_encoder=text.half(), tokenizer=tokenizer,
                                        unet=unet.half(), scheduler=DDIMScheduler.from_config(sched_cfg),
                                        safety_checker=None, feature_extractor=None, image_encoder=None,
                                        requires_safety_checker=False)
    pipe.save_pretrained(str(out), safe_serialization=True)
    cfg = out / "vae" / "config.json"        # a VAE loaded from disk records its local path: keep it out
    cfg.write_text(json.dumps({k: v for k, v in json.loads(cfg.read_text()).items() if k != "_name_or_path"},
                              indent=2, sort_keys=True) + "\n")
    for name in ("vocab.json", "merges.txt"):
        src, dst = ASSETS_DIR / "clip-tokenizer" / name, out / "tokenizer" / name
        if not (dst.exists() and dst.samefile(src)):    # the shipped folder links to the package's one copy
            shutil.copy2(src, dst)
    (out / "tokenizer" / "tokenizer.json").unlink(missing_ok=True)   # 3.6 MB rebuilt from vocab + merges on load
    return out


if __name__ == "__main__":
    raise SystemExit(main())
