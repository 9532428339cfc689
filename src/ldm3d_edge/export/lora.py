"""LoRA weights fused into the UNet (and text encoder) before tracing, through diffusers' own loader.

`ldm3d export SRC OUT --lora FILE[:SCALE]` (repeatable): each file in a format diffusers' `load_lora_weights`
reads (diffusers / PEFT, kohya / A1111 safetensors) is loaded as an adapter, the adapters are weighted by their
scales and fused into the base weights, and the adapters are unloaded, so the exported graphs are plain weights
again: no runtime cost, and an LCM-LoRA gives a model that `--scheduler lcm` runs at 4 steps. The manifest
records each file's name, sha256 and scale. Needs `peft` (in the [export] extra).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..runtime.errors import InvalidArgumentError


@dataclass(frozen=True)
class LoraSpec:
    path: Path
    scale: float = 1.0

    @classmethod
    def parse(cls, text: str) -> LoraSpec:
        """FILE or FILE:SCALE (a trailing ':number'; a Windows drive letter is not a scale)."""
        m = re.fullmatch(r"(.+?):([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)", text)
        path, scale = (m.group(1), float(m.group(2))) if m else (text, 1.0)
        p = Path(path)
        if not p.is_file():
            raise InvalidArgumentError(f"LoRA file not found: {path} (give FILE or FILE:SCALE, e.g. "
                                       "lora.safetensors:0.8)")
        return cls(p, scale)


def fuse_loras(source_path: Path, unet, vae, text_encoder, loras: list[LoraSpec]) -> list[dict]:
    """Fuse `loras` into `unet` and `text_encoder` in place; what the manifest records about them."""
    from diffusers import DDIMScheduler, StableDiffusionLDM3DPipeline
    from transformers import CLIPTokenizer

    from ..runtime.verify import sha256_file

    try:
        import peft  # noqa: F401  (diffusers' LoRA loader runs on it)
    except ImportError:
        raise InvalidArgumentError("--lora needs the peft package: pip install 'ldm3d-edge[export]'") from None
    pipe = StableDiffusionLDM3DPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=CLIPTokenizer.from_pretrained(str(source_path / "tokenizer")),
        unet=unet, scheduler=DDIMScheduler(), safety_checker=None, feature_extractor=None, image_encoder=None,
        requires_safety_checker=False)
    names = []
    for i, lora in enumerate(loras):
        name = f"lora{i}"
        try:
            pipe.load_lora_weights(str(lora.path), adapter_name=name)
        except (ValueError, KeyError, OSError, RuntimeError) as e:
            raise InvalidArgumentError(f"cannot load LoRA {lora.path}: {str(e).splitlines()[0]}") from None
        names.append(name)
    pipe.set_adapters(names, adapter_weights=[lora.scale for lora in loras])
    pipe.fuse_lora(adapter_names=names)
    pipe.unload_lora_weights()
    return [{"file": lora.path.name, "sha256": sha256_file(lora.path), "scale": lora.scale} for lora in loras]
