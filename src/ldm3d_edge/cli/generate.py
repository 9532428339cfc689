"""ldm3d generate: prompt -> RGB + 16-bit depth (+ mesh, video) on an exported or the embedded model."""

from __future__ import annotations

import argparse

from ..runtime.errors import InvalidArgumentError
from .common import (
    PRECISIONS,
    Subparsers,
    add_3d_options,
    add_no_verify,
    check_3d_options,
    device_help,
    float_arg,
    int_arg,
    say,
)


def register(sub: Subparsers) -> None:
    from ..runtime.config import DEFAULT_GUIDANCE, DEFAULT_STEPS, DEFAULT_STRENGTH
    from ..runtime.presets import SPEEDS
    from ..runtime.schedulers import scheduler_names

    g = sub.add_parser("generate", help="prompt -> RGB image + 16-bit depth map",
                       description="Generate an RGB image and its depth map from a text prompt on an exported model.")
    g.add_argument("prompt", help="what to generate, e.g. 'a red sphere on a grey floor'")
    g.add_argument("--model", help="artifact folder made by 'ldm3d export' (default: the embedded model, "
                                   "shipped as OpenVINO IR)")
    g.add_argument("--pano", action="store_true",
                   help="360-degree equirectangular panorama at 2:1 (--model, or the embedded model, at twice its "
                        "height wide unless it is 2:1 already), with circular padding so the left and right edges "
                        "meet, and the '360 view of ...' prompt convention (prefixed when missing)")
    g.add_argument("--circular-padding", type=int_arg, metavar="COLS",
                   help="latent columns wrapped around each side while denoising and decoding (default with --pano: "
                        "1/8 of the latent width, at least 4; 0 turns it off; a multiple of 4). Needs an OpenVINO "
                        "device (the padded size differs from the export size)")
    g.add_argument("--out", default="out", help="folder for <name>_rgb.png, <name>_depth.png, <name>.json "
                                                "(default: out)")
    g.add_argument("--name", help="file name prefix (default: from the prompt and seed)")
    g.add_argument("--speed", choices=SPEEDS,
                   help="speed preset: quality (the release default), balanced, fast: sampler, steps, guidance "
                        "cut-off and feature caching chosen from measured quality costs (docs/python-api.md); "
                        "--steps, --scheduler, --guidance-cutoff and --cache-interval override its choices")
    g.add_argument("--steps", type=int_arg, help=f"denoising steps (default {DEFAULT_STEPS}, or the preset's)")
    g.add_argument("--guidance", type=float_arg, default=DEFAULT_GUIDANCE,
                   help=f"classifier-free guidance scale (default {DEFAULT_GUIDANCE}; <= 1 turns guidance off)")
    g.add_argument("--guidance-cutoff", type=float_arg, metavar="F",
                   help="stop guidance after this fraction of the steps, in [0, 1]: the later steps run the UNet "
                        "on the prompt alone, at half the work (default: guide every step)")
    g.add_argument("--cache-interval", type=int_arg, metavar="N",
                   help="DeepCache feature caching: the whole UNet every N-th step, only its shallow layers in "
                        "between (default 1: off). Needs a model exported with --deepcache-branch")
    g.add_argument("--cache-branch", type=int_arg, metavar="B",
                   help="the DeepCache branch expected (default: the model's own)")
    g.add_argument("--seed", type=int_arg, help="random seed (default: a fresh one, recorded in the JSON)")
    g.add_argument("--height", type=int_arg, help="multiple of 8 (default: the export resolution)")
    g.add_argument("--width", type=int_arg, help="multiple of 8 (default: the export resolution)")
    g.add_argument("--negative-prompt", help="what to steer away from")
    g.add_argument("--no-prompt-completion", action="store_true",
                   help="encode the prompt exactly as typed. By default a model that ships its caption grammar "
                        "(the embedded one) reads a short prompt as the complete caption it stands for: 'a green "
                        "cube' as 'a green cube in the centre on a grey floor under a blue sky' (recorded in the "
                        "JSON as completed_prompt)")
    g.add_argument("--scheduler", help=f"one of {', '.join(scheduler_names())} (default: the model's own, DDIM "
                                       "for the releases)")
    g.add_argument("--device", default="auto", help=device_help())
    g.add_argument("--precision", choices=PRECISIONS,
                   help="OpenVINO inference precision (default: f32 for FP32 artifacts)")
    add_no_verify(g)

    g.add_argument("--init", metavar="IMAGE", help="image-to-image: start from this RGB image (or an 'ldm3d generate' "
                                                   "result: its prefix or _rgb.png, whose depth is used too) instead "
                                                   "of noise; resized to the output size")
    g.add_argument("--init-depth", metavar="DEPTH", help="depth for --init (16- or 8-bit PNG, near = bright; default: "
                                                         "the result's own, else a flat 0.5)")
    g.add_argument("--strength", type=float_arg, default=DEFAULT_STRENGTH,
                   help=f"with --init: how far to move from it, in (0, 1] (default {DEFAULT_STRENGTH}; 1 = ignore it)")
    g.add_argument("--mesh", action="store_true", help="also write <name>.glb (textured), <name>.ply and <name>.obj "
                                                       "(+ .mtl, texture): a perspective grid mesh, or a sphere for "
                                                       "--pano")
    g.add_argument("--video", action="store_true", help="also write <name>.mp4, a camera flight (see --path)")
    g.add_argument("--all", action="store_true", help="--mesh and --video, plus <name>_points.ply, <name>.gif and "
                                                      "<name>_strip.png (six frames of the flight)")
    add_3d_options(g, video=True, mesh=True)
    g.set_defaults(run=run)


def outputs_3d(a: argparse.Namespace) -> dict:
    """scene3d.write_3d's arguments for --mesh, --video and --all."""
    outputs: dict = {}
    if a.mesh or a.all:
        outputs["mesh_formats"] = ("glb", "ply", "obj")
    if a.video or a.all:
        outputs["videos"] = (".mp4", ".gif") if a.all else (".mp4",)
    if a.all:
        outputs.update(points=True, strip=True)
    if outputs:
        outputs.update(path=a.path, frames=a.frames, fps=a.fps, edge_threshold=a.edge_threshold)
    return outputs


def run(a: argparse.Namespace) -> int:
    from ..generate import generate_files
    from ..runtime import Pipeline

    check_3d_options(a)
    if a.path == "pano-walk" and not (a.pano or a.projection == "equirectangular"):
        raise InvalidArgumentError("--path pano-walk needs a panorama: add --pano (or --projection equirectangular)")
    model = a.model
    if model is None:
        from ..embedded import embedded_artifacts

        perspective, panorama, _ = embedded_artifacts(device=a.device)
        model = panorama if a.pano else perspective
    pipe = Pipeline.load(model, device=a.device, precision=a.precision, compile_now=False, verify=not a.no_verify,
                         complete_prompts=not a.no_prompt_completion)
    generate_files(pipe, a.out, a.prompt, name=a.name, negative_prompt=a.negative_prompt,
                   guidance_scale=a.guidance, seed=a.seed, height=a.height, width=a.width, projection=a.projection,
                   hfov=a.hfov, near=a.near, far=a.far, outputs_3d=outputs_3d(a),
                   init=(a.init, a.init_depth) if a.init else None, strength=a.strength, pano=a.pano,
                   circular_padding=a.circular_padding, progress=True, report=say, cache_branch=a.cache_branch,
                   **work_settings(a, pipe))
    return 0


def work_settings(a: argparse.Namespace, pipe) -> dict:
    """Steps, scheduler, guidance cut-off and cache interval: the --speed preset's (said on the terminal), each
    overridden by its own option when given; without a preset, the options or the release defaults."""
    from ..runtime.config import DEFAULT_STEPS
    from ..runtime.presets import PRESETS, SpeedPreset

    given = {"num_inference_steps": a.steps, "scheduler": a.scheduler, "guidance_cutoff": a.guidance_cutoff,
             "cache_interval": a.cache_interval}
    if a.speed is None:
        return {**given, "num_inference_steps": DEFAULT_STEPS if a.steps is None else a.steps,
                "cache_interval": 1 if a.cache_interval is None else a.cache_interval}
    settings = pipe.speed_settings(a.speed, report=say)
    settings.update({k: v for k, v in given.items() if v is not None})
    chosen = SpeedPreset(a.speed, settings["scheduler"], settings["num_inference_steps"], settings["guidance_cutoff"],
                         settings["cache_interval"])
    overridden = " (options override it)" if any(v is not None for v in given.values()) else ""
    say(f"speed preset {a.speed}{overridden}: {chosen.describe()}" + (
        "" if PRESETS[a.speed] == chosen else f"; the preset itself: {PRESETS[a.speed].describe()}"))
    return settings
