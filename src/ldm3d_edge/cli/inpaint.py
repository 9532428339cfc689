"""ldm3d inpaint: regenerate the painted region of an RGBD result (colour and depth) from a prompt."""

from __future__ import annotations

import argparse

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
    from ..runtime.config import DEFAULT_GUIDANCE, DEFAULT_STEPS
    from ..runtime.inpaint import DEFAULT_FEATHER
    from ..runtime.schedulers import scheduler_names

    p = sub.add_parser("inpaint", help="regenerate the masked region of an RGBD result (RGB and depth)",
                       description="Regenerate the white region of MASK in an 'ldm3d generate' result (or any RGB "
                                   "image with --depth) from PROMPT, in agreement with the rest: the model's own "
                                   "RGB and depth, blended in latent space every step (an ordinary LDM3D "
                                   "checkpoint, no inpainting model), the new depth fitted to the old by scale + "
                                   "shift on a ring around the region. Writes a result like 'ldm3d generate'.")
    p.add_argument("input", help="the result to change: its prefix, _rgb.png or .json, or an RGB image")
    p.add_argument("--mask", required=True, help="mask image, white = regenerate (resized to the input's size)")
    p.add_argument("prompt", help="what the region should show")
    p.add_argument("--depth", help="depth image for an RGB input (16- or 8-bit PNG, near = bright; default: the "
                                   "result's own, else a flat 0.5 and no depth fit)")
    p.add_argument("--model", help="artifact folder made by 'ldm3d export' (default: the embedded model; its "
                                   "panorama model for a 2:1 input)")
    p.add_argument("--out", default="out", help="folder for <name>_rgb.png, <name>_depth.png, <name>.json "
                                                "(default: out)")
    p.add_argument("--name", help="file name prefix (default: from the prompt and seed)")
    p.add_argument("--seed", type=int_arg, help="random seed (default: a fresh one, recorded in the JSON)")
    p.add_argument("--steps", type=int_arg, default=DEFAULT_STEPS, help=f"denoising steps (default {DEFAULT_STEPS})")
    p.add_argument("--guidance", type=float_arg, default=DEFAULT_GUIDANCE,
                   help=f"classifier-free guidance scale (default {DEFAULT_GUIDANCE})")
    p.add_argument("--strength", type=float_arg, default=1.0,
                   help="in (0, 1]: 1 (default) draws the region afresh; less keeps more of what was there")
    p.add_argument("--feather", type=float_arg, default=DEFAULT_FEATHER,
                   help=f"latent pixels (8 image pixels each) over which the region's edge fades into the kept "
                        f"image, 0 to 16 (default {DEFAULT_FEATHER:g}; 0 = a hard edge)")
    p.add_argument("--no-align-depth", action="store_true",
                   help="keep the model's depth in the region as it came out (default: fit it to the input's)")
    p.add_argument("--negative-prompt", help="what to steer away from")
    p.add_argument("--scheduler", help=f"one of {', '.join(scheduler_names())} (default: the model's own)")
    p.add_argument("--device", default="auto", help=device_help())
    p.add_argument("--precision", choices=PRECISIONS, help="OpenVINO inference precision (default: f32)")
    add_no_verify(p)
    p.add_argument("--mesh", action="store_true", help="also write <name>.glb, .ply and .obj")
    p.add_argument("--video", action="store_true", help="also write <name>.mp4, a camera flight (see --path)")
    p.add_argument("--all", action="store_true", help="--mesh and --video, plus the point cloud, GIF and strip")
    add_3d_options(p, video=True, mesh=True)
    p.set_defaults(run=run)


def run(a: argparse.Namespace) -> int:
    from ..generate import generate_files
    from ..runtime import Pipeline
    from ..runtime.pipeline import pano_prompt
    from ..runtime.result import read_rgbd_files
    from ..scene3d import read_rgbd
    from .generate import outputs_3d

    check_3d_options(a)
    # the input's camera and depth mapping (from its JSON) carry over to the result; an RGB image without depth
    # is taken as it is, with a flat depth
    files = read_rgbd_files(a.input, a.depth, need_depth=False)
    src = None if files.depth is None else \
        read_rgbd(a.input, depth=a.depth, projection=a.projection, hfov_deg=a.hfov, near=a.near, far=a.far)
    h, w = files.rgb.shape[:2]
    pano = src.is_panorama if src is not None else (a.projection == "equirectangular" or w == 2 * h)
    prompt = pano_prompt(a.prompt) if pano else a.prompt
    if prompt != a.prompt:
        say(f"prompt: {prompt!r} (the panorama models' convention)")
    model = a.model
    if model is None:
        from ..embedded import embedded_artifacts

        perspective, panorama, _ = embedded_artifacts(device=a.device)
        model = panorama if pano else perspective
    pipe = Pipeline.load(model, device=a.device, precision=a.precision, compile_now=False, verify=not a.no_verify)
    cam = {"projection": a.projection, "hfov": a.hfov, "near": a.near, "far": a.far}
    if src is not None:
        cam = {"projection": src.camera.projection, "hfov": src.camera.hfov_deg, "near": src.mapping.near,
               "far": src.mapping.far}
    generate_files(pipe, a.out, prompt, name=a.name, negative_prompt=a.negative_prompt, guidance_scale=a.guidance,
                   seed=a.seed, height=h, width=w, num_inference_steps=a.steps, scheduler=a.scheduler,
                   init=(a.input, a.depth), mask=a.mask, strength=a.strength,
                   inpaint_options={"feather": a.feather, "align_depth": not a.no_align_depth},
                   outputs_3d=outputs_3d(a), progress=True, report=say, **cam)
    return 0
