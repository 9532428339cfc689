"""Reading a local diffusers LDM3D folder: check it is complete, then load its parts in torch."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..runtime import constants as C
from ..runtime.errors import InvalidArgumentError, ModelFolderError

WEIGHT_SUFFIXES = (".safetensors", ".bin")
SOURCE_PARTS = {"unet": "UNet2DConditionModel", "vae": "AutoencoderKL", "text_encoder": "CLIPTextModel"}


@dataclass
class Source:
    path: Path
    model_index: dict
    unet_config: dict
    vae_config: dict
    scheduler_config: dict
    hub: str | None = None      # "repo_id@commit" when the folder is a Hugging Face hub snapshot

    @property
    def pipeline(self) -> str:
        """text2rgbd, or upscale for an ldm3d-sr folder (model_index names StableDiffusionUpscaleLDM3DPipeline)."""
        return C.PIPELINE_UPSCALE if self.model_index.get("_class_name") == C.UPSCALE_PIPELINE_CLASS \
            else C.PIPELINE_TEXT2RGBD

    @property
    def max_noise_level(self) -> int | None:
        if self.pipeline != C.PIPELINE_UPSCALE:
            return None
        return int(self.model_index.get("max_noise_level", C.DEFAULT_MAX_NOISE_LEVEL))

    @property
    def vae_channels(self) -> int:
        return int(self.vae_config.get("out_channels", 3))

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae_config.get("block_out_channels", [0] * 4)) - 1)

    @property
    def default_size(self) -> int:
        return int(self.unet_config.get("sample_size", 64)) * self.vae_scale_factor


def _json(path: Path) -> dict:
    if not path.is_file():
        raise ModelFolderError(f"source checkpoint is incomplete: {path} is missing")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFolderError(f"corrupt JSON in {path}: {e}") from None


def inspect_source(src: str | Path) -> Source:
    """Check that `src` is a complete diffusers LDM3D folder; name the first missing file."""
    src = Path(src)
    if not src.is_dir():
        raise ModelFolderError(f"source checkpoint folder not found: {src}")
    index = _json(src / "model_index.json")
    for part in SOURCE_PARTS:
        _json(src / part / C.CONFIG_FILE)
        if not any(p.suffix in WEIGHT_SUFFIXES for p in (src / part).iterdir()):
            raise ModelFolderError(f"source checkpoint is incomplete: no weights (*.safetensors or *.bin) in "
                                   f"{src / part}")
    tok = src / C.TOKENIZER_DIR
    has_bpe = (tok / C.VOCAB_FILE).is_file() and (tok / C.MERGES_FILE).is_file()
    if not has_bpe and not (tok / C.TOKENIZER_JSON).is_file():
        raise ModelFolderError(f"source checkpoint is incomplete: {tok} needs {C.VOCAB_FILE} + {C.MERGES_FILE} "
                               f"or {C.TOKENIZER_JSON}")
    source = Source(path=src, model_index=index, unet_config=_json(src / "unet" / C.CONFIG_FILE),
                    vae_config=_json(src / "vae" / C.CONFIG_FILE),
                    scheduler_config=_json(src / C.SCHEDULER_DIR / C.SCHEDULER_CONFIG_FILE))
    if source.pipeline == C.PIPELINE_UPSCALE:
        low_res = src / C.LOW_RES_SCHEDULER_DIR / C.SCHEDULER_CONFIG_FILE
        _json(low_res)
        lat = int(source.vae_config.get("latent_channels", 4))
        if int(source.unet_config.get("in_channels", 0)) != 2 * lat:
            raise ModelFolderError(f"{src / 'unet' / C.CONFIG_FILE}: an ldm3d-sr UNet takes the noisy latents and the "
                                   f"low-res image's latents ({lat} + {lat} channels), but in_channels is "
                                   f"{source.unet_config.get('in_channels')}")
    if source.vae_channels not in (4, 6):
        raise ModelFolderError(f"{src / 'vae' / C.CONFIG_FILE}: out_channels is {source.vae_channels}; an LDM3D RGBD "
                               "VAE has 4 (RGB + depth) or 6 (RGB + packed 16-bit depth)")
    return source


def check_size(height: int, width: int, scale: int) -> None:
    for name, v in (("height", height), ("width", width)):
        if not isinstance(v, int) or v <= 0 or v % scale:
            raise InvalidArgumentError(f"{name} must be a positive multiple of {scale}, got {v!r}")


def quiet_libraries() -> None:
    """Keep diffusers' and transformers' deprecation notices and per-file progress bars out of our output."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    for lib in (dlog, tlog):
        lib.set_verbosity_error()
        lib.disable_progress_bar()


def load_torch_parts(source: Source):
    """(unet, vae, text_encoder) as float32 torch modules in eval mode, loaded from local files only."""
    quiet_libraries()
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    kw = dict(local_files_only=True)
    unet = UNet2DConditionModel.from_pretrained(str(source.path), subfolder="unet", **kw)
    vae = AutoencoderKL.from_pretrained(str(source.path), subfolder="vae", **kw)
    text_encoder = CLIPTextModel.from_pretrained(str(source.path / "text_encoder"), attn_implementation="eager", **kw)
    return unet.float().eval(), vae.float().eval(), text_encoder.float().eval()
