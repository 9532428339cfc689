"""Every file and folder name of an artifact folder (and the user cache), in one place.

The export writes these names and the runtime (Python now, C++ later) reads them; nothing else
spells them out.
"""

import os
from pathlib import Path

MANIFEST_FILE = "manifest.json"
# a model's own INT8 calibration prompts, one a line: export copies it from the checkpoint into the artifacts,
# where `ldm3d quantize` takes it in place of its general list
CALIBRATION_PROMPTS_FILE = "calibration_prompts.txt"
# a model's caption grammar and the defaults for what a prompt leaves out (runtime/prompts.py): export and
# quantize copy it from the checkpoint into the artifacts, where the pipeline completes short prompts with it
PROMPT_COMPLETION_FILE = "prompt_completion.json"
MANIFEST_FORMAT_VERSION = 1

TEXT_ENCODER = "text_encoder"
UNET = "unet"
VAE_DECODER = "vae_decoder"
VAE_ENCODER = "vae_encoder"
# DeepCache (export --deepcache-branch): the whole UNet that also returns the cached feature, and the shallow UNet
UNET_CACHE_FULL = "unet_cache_full"
UNET_CACHE_SHALLOW = "unet_cache_shallow"
COMPONENTS = (TEXT_ENCODER, UNET, VAE_DECODER, VAE_ENCODER)   # what every export writes
CACHE_COMPONENTS = (UNET_CACHE_FULL, UNET_CACHE_SHALLOW)
REQUIRED_COMPONENTS = (TEXT_ENCODER, UNET, VAE_DECODER)

# What an artifact folder does (manifest "pipeline"): text -> RGBD, or RGBD -> RGBD at a higher resolution.
PIPELINE_TEXT2RGBD = "text2rgbd"      # ldm3d, ldm3d-4c, ldm3d-pano (StableDiffusionLDM3DPipeline)
PIPELINE_UPSCALE = "upscale"          # ldm3d-sr (StableDiffusionUpscaleLDM3DPipeline)
UPSCALE_PIPELINE_CLASS = "StableDiffusionUpscaleLDM3DPipeline"
DEFAULT_MAX_NOISE_LEVEL = 350          # upscaler: diffusers' default max_noise_level (the release's value)

TOKENIZER_DIR = "tokenizer"
SCHEDULER_DIR = "scheduler"
LOW_RES_SCHEDULER_DIR = "low_res_scheduler"   # upscaler only (kept for reference; the runtime does not noise)
SCHEDULER_CONFIG_FILE = "scheduler_config.json"
CONFIG_FILE = "config.json"

ONNX_FILE = "model.onnx"
ONNX_DATA_FILE = "model.onnx_data"
OV_XML_FILE = "openvino_model.xml"
OV_BIN_FILE = "openvino_model.bin"

FORMAT_ONNX = "onnx"
FORMAT_OPENVINO = "openvino"
FORMATS = (FORMAT_ONNX, FORMAT_OPENVINO)
MODEL_FILES = {FORMAT_ONNX: ONNX_FILE, FORMAT_OPENVINO: OV_XML_FILE}

# Tokenizer files: tokenizer.json (fast format) is preferred; vocab.json + merges.txt are enough.
TOKENIZER_JSON = "tokenizer.json"
VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"

# Tensor names of the exported graphs (inputs, outputs).
TEXT_INPUT_IDS = "input_ids"
TEXT_HIDDEN_STATES = "last_hidden_state"
UNET_SAMPLE = "sample"
UNET_TIMESTEP = "timestep"
UNET_ENCODER_HIDDEN_STATES = "encoder_hidden_states"
UNET_CLASS_LABELS = "class_labels"     # upscaler UNet only: the low-res noise level, one per batch row
UNET_OUT = "out_sample"
UNET_CACHE_FEATURE = "cache_feature"   # DeepCache: the up path's hidden state at the branch (full out, shallow in)
VAE_LATENT = "latent_sample"
VAE_IMAGE = "sample"
VAE_ENCODER_IMAGE = "sample"
VAE_ENCODER_MOMENTS = "latent_parameters"

# Result files written by RGBDResult.save(prefix).
RGB_SUFFIX = "_rgb.png"
DEPTH_SUFFIX = "_depth.png"
SIDECAR_SUFFIX = ".json"
DEPTH_F32_SUFFIX = "_depth.f32"   # raw little-endian float32 depth, row-major: full precision for the viewer

# Depth encodings of the VAE's extra output channels.
DEPTH_ENCODING_1CH = "1ch-float"          # 4-channel VAE: channel 3 is depth in [-1, 1]
DEPTH_ENCODING_PACKED16 = "rgblike-16bit"  # 6-channel VAE: channels 4 (high byte) and 5 (low byte)


def cache_base() -> Path:
    """$LDM3D_EDGE_CACHE, else $XDG_CACHE_HOME/ldm3d-edge, else ~/.cache/ldm3d-edge."""
    base = os.environ.get("LDM3D_EDGE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ldm3d-edge")
    return Path(base)
