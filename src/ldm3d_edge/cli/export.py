"""ldm3d export: a local diffusers LDM3D checkpoint -> static-shape ONNX / OpenVINO artifacts."""

from __future__ import annotations

import argparse

from ..extras import need_extra
from .common import Subparsers, int_arg


def register(sub: Subparsers) -> None:
    e = sub.add_parser("export", help="diffusers LDM3D folder or hub id -> ONNX / OpenVINO artifact folder",
                       description="Export a diffusers LDM3D checkpoint (ldm3d, ldm3d-4c, ldm3d-pano, ldm3d-sr "
                                   "layout; a local folder or a hub id) to static-shape ONNX and/or OpenVINO IR plus "
                                   "manifest.json. Needs the [export] extra.")
    e.add_argument("src", help="local diffusers folder with model_index.json, unet/, vae/, text_encoder/, tokenizer/, "
                               "scheduler/; or a Hugging Face hub id (Intel/ldm3d-4c), taken from the hub cache or "
                               "downloaded there (only the files the export reads; HF_HUB_OFFLINE=1: the cache only)")
    e.add_argument("out", help="artifact folder to create")
    e.add_argument("--format", default="both", choices=["openvino", "onnx", "both"], help="default: both")
    e.add_argument("--height", type=int_arg, help="export resolution (default: the UNet's sample_size x 8)")
    e.add_argument("--width", type=int_arg, help="export resolution (default: the UNet's sample_size x 8)")
    e.add_argument("--fp16", action="store_true", help="compute in float16: weights and activations (inputs and "
                                                       "outputs stay float32)")
    e.add_argument("--fp16-weights", action="store_true",
                   help="OpenVINO IR only: store in float16 every weight that float16 holds exactly, compute in "
                        "float32: the same outputs as FP32, half the size for checkpoints saved in float16")
    e.add_argument("--dynamic-batch", action="store_true",
                   help="ONNX: the UNet also takes batch 1, so unguided steps (--guidance-cutoff, guidance <= 1) "
                        "cost half a guided one; without it ONNX runs them at batch 2. OpenVINO needs no option")
    e.add_argument("--deepcache-branch", type=int_arg, metavar="B",
                   help="also write the two UNet graphs DeepCache feature caching runs (generate --cache-interval), "
                        "split at this branch: 0 = the shallowest, cheapest cached steps (DeepCache's numbering)")
    e.add_argument("--lora", action="append", metavar="FILE[:SCALE]",
                   help="fuse these LoRA weights (diffusers / PEFT or kohya safetensors) into the UNet and text "
                        "encoder before tracing, weighted by SCALE (default 1); repeatable. An LCM-LoRA makes a "
                        "model for --scheduler lcm at 4 steps")
    e.add_argument("--tome", type=float, metavar="RATIO",
                   help="token merging (ToMe for SD): self-attention at full latent resolution runs on RATIO fewer "
                        "tokens, the most similar merged by averaging; 0 < RATIO <= 0.75, tomesd suggests <= 0.5")
    e.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    e.add_argument("--revision", help="with a hub id: the branch, tag or commit to export (default: main)")
    e.set_defaults(run=run)


def run(a: argparse.Namespace) -> int:
    *_, export = need_extra("'ldm3d export'", "export", "torch", "diffusers", "ldm3d_edge.export")
    m = export.export_pipeline(a.src, a.out, fmt=a.format, height=a.height, width=a.width, fp16=a.fp16,
                               fp16_weights=a.fp16_weights, overwrite=a.overwrite,
                               revision=a.revision, dynamic_batch=a.dynamic_batch,
                               deepcache_branch=a.deepcache_branch, loras=a.lora, tome=a.tome)
    print(f"exported {a.src} -> {a.out} ({', '.join(m['formats'])}, {m['precision']}, {m['width']}x{m['height']}, "
          f"{m['vae_channels']}-channel VAE) in {m['export_seconds']:.1f}s")
    return 0
