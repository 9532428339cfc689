"""Build LDM3D pipelines with random weights: a tiny one for tests and demos, full-size ones from the
release configs (same shapes and FLOPs as Intel/ldm3d-4c etc.) for benchmarks.

The result is an ordinary diffusers ``StableDiffusionLDM3DPipeline`` folder, so it goes through exactly the
export path a downloaded checkpoint does.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .. import ASSETS_DIR
from ..runtime import constants as C
from .source import quiet_libraries

CLIP_TOKENIZER_DIR = ASSETS_DIR / "clip-tokenizer"
RELEASE_CONFIGS_DIR = ASSETS_DIR / "configs"
RELEASES = ("ldm3d", "ldm3d-4c", "ldm3d-pano")

# A tiny LDM3D: the release's block types and downsampling factor 8, ~2M parameters (most of them the
# 49408-token embedding), 64x64 output.
TINY_UNET = dict(
    block_out_channels=[32, 64], layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
    down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"], up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
    cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
)
TINY_TEXT = dict(
    hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, vocab_size=49408,
    max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, projection_dim=32,
    hidden_act="quick_gelu",
)
TINY_SCHEDULER = json.loads((RELEASE_CONFIGS_DIR / "ldm3d-4c" / C.SCHEDULER_DIR / C.SCHEDULER_CONFIG_FILE).read_text())


def tiny_vae_config(channels: int) -> dict:
    return dict(
        block_out_channels=[16, 32, 32, 32], in_channels=channels, out_channels=channels, latent_channels=4,
        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
        norm_num_groups=8, sample_size=64, scaling_factor=0.18215, layers_per_block=1,
    )


def build_tiny_pipeline(out_dir: str | Path, vae_channels: int = 4, seed: int = 0, image_size: int = 64) -> Path:
    """A tiny random-weight LDM3D saved as a diffusers folder at `out_dir` (4- or 6-channel RGBD VAE)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    if vae_channels not in (4, 6):
        raise ValueError("vae_channels must be 4 (ldm3d-4c, ldm3d-pano) or 6 (original ldm3d)")
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**{**TINY_UNET, "sample_size": image_size // 8})
    vae_cfg = tiny_vae_config(vae_channels)
    vae_cfg["sample_size"] = image_size
    vae = AutoencoderKL(**vae_cfg)
    text_encoder = CLIPTextModel(CLIPTextConfig(**TINY_TEXT))
    return _save(out_dir, unet, vae, text_encoder, DDIMScheduler.from_config(TINY_SCHEDULER))


def release_parts(release: str, seed: int = 0):
    """(unet, vae, text_encoder) of a release config (ldm3d, ldm3d-4c, ldm3d-pano) with random weights from
    `seed`, in eval mode: full size, nothing saved."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    if release not in RELEASES:
        raise ValueError(f"unknown release {release!r}; choose one of {', '.join(RELEASES)}")
    cfg_dir = RELEASE_CONFIGS_DIR / release
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(json.loads((cfg_dir / "unet" / C.CONFIG_FILE).read_text()))
    vae = AutoencoderKL.from_config(json.loads((cfg_dir / "vae" / C.CONFIG_FILE).read_text()))
    text_cfg = json.loads((cfg_dir / "text_encoder" / C.CONFIG_FILE).read_text())
    text_encoder = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in text_cfg.items() if k != "architectures"}))
    return unet.eval(), vae.eval(), text_encoder.eval()


def build_release_pipeline(release: str, out_dir: str | Path, seed: int = 0) -> Path:
    """A full-size random-weight model from the release configs (ldm3d, ldm3d-4c, ldm3d-pano)."""
    from diffusers import DDIMScheduler

    unet, vae, text_encoder = release_parts(release, seed)
    cfg_dir = RELEASE_CONFIGS_DIR / release
    sched = DDIMScheduler.from_config(json.loads((cfg_dir / C.SCHEDULER_DIR / C.SCHEDULER_CONFIG_FILE).read_text()))
    return _save(out_dir, unet, vae, text_encoder, sched)


def _save(out_dir, unet, vae, text_encoder, scheduler) -> Path:
    quiet_libraries()
    from diffusers import StableDiffusionLDM3DPipeline
    from transformers import CLIPTokenizer

    out = Path(out_dir)
    tokenizer = CLIPTokenizer.from_pretrained(str(CLIP_TOKENIZER_DIR))
    pipe = StableDiffusionLDM3DPipeline(vae=vae.eval(), text_encoder=text_encoder.eval(), tokenizer=tokenizer,
                                        unet=unet.eval(), scheduler=scheduler, safety_checker=None,
                                        feature_extractor=None, image_encoder=None,
                                        requires_safety_checker=False)
    pipe.save_pretrained(str(out))
    for name in (C.VOCAB_FILE, C.MERGES_FILE):  # keep the plain BPE files beside tokenizer.json
        shutil.copy2(CLIP_TOKENIZER_DIR / name, out / C.TOKENIZER_DIR / name)
    return out


def build_tiny_upscaler(out_dir: str | Path, seed: int = 0, image_size: int = 64) -> Path:
    """A tiny random-weight ldm3d-sr (StableDiffusionUpscaleLDM3DPipeline layout, as the release configs): a UNet
    on 4 noisy + 4 low-res-image latent channels with the noise level as class label (1000 classes), an RGBD VAE
    4/4, the release's schedulers (denoising and low-res DDPM). Saved part by part: the installed diffusers has no
    class for this pipeline."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    quiet_libraries()
    cfg_dir = RELEASE_CONFIGS_DIR / "ldm3d-sr"
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**{**TINY_UNET, "in_channels": 8, "num_class_embeds": 1000,
                                   "sample_size": image_size // 8})
    vae_cfg = {**tiny_vae_config(4), "sample_size": image_size}
    vae = AutoencoderKL(**vae_cfg)
    text_encoder = CLIPTextModel(CLIPTextConfig(**TINY_TEXT))
    out = Path(out_dir)
    for name, part in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder)):
        part.eval().save_pretrained(str(out / name))
    for folder in (C.SCHEDULER_DIR, C.LOW_RES_SCHEDULER_DIR):
        (out / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy2(cfg_dir / folder / C.SCHEDULER_CONFIG_FILE, out / folder / C.SCHEDULER_CONFIG_FILE)
    DDPMScheduler.from_pretrained(str(out), subfolder=C.LOW_RES_SCHEDULER_DIR)   # the config must load
    (out / C.TOKENIZER_DIR).mkdir(exist_ok=True)
    for name in (C.VOCAB_FILE, C.MERGES_FILE, C.SPECIAL_TOKENS_FILE, C.TOKENIZER_CONFIG_FILE):
        if (CLIP_TOKENIZER_DIR / name).is_file():
            shutil.copy2(CLIP_TOKENIZER_DIR / name, out / C.TOKENIZER_DIR / name)
    index = json.loads((cfg_dir / "model_index.json").read_text())
    index["max_noise_level"] = C.DEFAULT_MAX_NOISE_LEVEL
    (out / "model_index.json").write_text(json.dumps(index, indent=2))
    return out
