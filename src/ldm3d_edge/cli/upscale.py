"""ldm3d upscale: low-res RGBD -> high-res RGBD with an exported ldm3d-sr upscaler."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import PRECISIONS, Subparsers, add_no_verify, add_rgbd_input, device_help, float_arg, input_prefix, int_arg


def register(sub: Subparsers) -> None:
    from ..runtime.upscale import UPSCALE_GUIDANCE, UPSCALE_NOISE_LEVEL, UPSCALE_PROMPT, UPSCALE_STEPS

    up = sub.add_parser("upscale", help="low-res RGBD -> high-res RGBD with an exported ldm3d-sr upscaler",
                        description="Upscale an RGBD result (or an RGB image with --depth) with an ldm3d-sr artifact "
                                    "folder ('ldm3d export' of an ldm3d-sr checkpoint): the input is resized to the "
                                    "target size, encoded by the VAE and appended to the UNet's input at every step, "
                                    "with the noise level as the UNet's class label.")
    add_rgbd_input(up)
    up.add_argument("--model", required=True, help="ldm3d-sr artifact folder made by 'ldm3d export'")
    up.add_argument("--out", default="out", help="folder for <name>_rgb.png, <name>_depth.png, <name>.json")
    up.add_argument("--name", help="file name prefix (default: the input's, + '-up')")
    up.add_argument("--prompt", default=UPSCALE_PROMPT, help=f"default: {UPSCALE_PROMPT!r}")
    up.add_argument("--height", type=int_arg, help="target height, a multiple of 8 (default: the export size)")
    up.add_argument("--width", type=int_arg, help="target width, a multiple of 8 (default: the export size)")
    up.add_argument("--noise-level", type=int_arg, default=UPSCALE_NOISE_LEVEL,
                    help=f"0 .. the model's max_noise_level (350 for the release); default {UPSCALE_NOISE_LEVEL}")
    up.add_argument("--steps", type=int_arg, default=UPSCALE_STEPS, help=f"default {UPSCALE_STEPS}")
    up.add_argument("--guidance", type=float_arg, default=UPSCALE_GUIDANCE, help=f"default {UPSCALE_GUIDANCE}")
    up.add_argument("--seed", type=int_arg)
    up.add_argument("--scheduler", help="default: the model's own")
    up.add_argument("--device", default="auto", help=device_help())
    add_no_verify(up)
    up.add_argument("--precision", choices=PRECISIONS)
    up.set_defaults(run=run)


def run(a: argparse.Namespace) -> int:
    from ..runtime import UpscalePipeline
    from ..runtime.result import read_rgbd_files

    files = read_rgbd_files(a.input, a.depth)
    assert files.depth is not None   # read_rgbd_files needs the depth by default
    pipe = UpscalePipeline.load(a.model, device=a.device, precision=a.precision, compile_now=False,
                                verify=not a.no_verify)
    h, w = files.rgb.shape[:2]
    result = pipe(files.rgb, files.depth, a.prompt, num_inference_steps=a.steps, guidance_scale=a.guidance,
                  noise_level=a.noise_level, height=a.height, width=a.width, seed=a.seed, scheduler=a.scheduler,
                  progress=True)
    mt = result.metrics
    print(f"upscaled {files.rgb_path} {w}x{h} -> {result.width}x{result.height} on {pipe.device}: "
          f"{len(mt.unet_step_s)} steps, {mt.median_step_s:.3f} s/step, total {mt.total_s:.1f}s, seed {result.seed}")
    name = a.name or (input_prefix(Path(a.input)).name + "-up")
    for p in result.save(Path(a.out) / name):
        print(f"wrote {p}")
    return 0
