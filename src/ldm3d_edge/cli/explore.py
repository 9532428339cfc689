"""ldm3d explore: walk into an RGBD result, completing what the moved camera uncovers by inpainting."""

from __future__ import annotations

import argparse

from .common import Subparsers, add_no_verify, device_help, float_arg, int_arg, say


def register(sub: Subparsers) -> None:
    from ..runtime.config import DEFAULT_GUIDANCE
    from ..scene3d.explore import DEFAULT_DISTANCE, DEFAULT_KEYFRAMES, DEFAULT_STRENGTH, EXPLORE_PATHS

    p = sub.add_parser("explore", help="walk into a result: new viewpoints completed by generation, one 3D scene",
                       description="Move a camera into an 'ldm3d generate' result much farther than the camera "
                                   "flights of --video: at each keyframe the scene is rendered from the new pose, "
                                   "what the source view never saw is inpainted with the result's prompt (RGB and "
                                   "depth, same model) and added to the scene. Writes the fused scene (GLB, PLY "
                                   "points), the flight (MP4, GIF, a strip of six frames) and a JSON record.")
    p.add_argument("input", help="the result: its prefix, _rgb.png or .json (its depth and JSON are read)")
    p.add_argument("--path", choices=EXPLORE_PATHS, help="walk (forward with a sway), dolly (straight in), orbit, "
                                                         "or pano-walk inside a panorama (default: walk / pano-walk)")
    p.add_argument("--distance", type=float_arg, default=DEFAULT_DISTANCE,
                   help=f"how far to go, as a fraction of the nearest content's distance, in (0, 2] "
                        f"(default {DEFAULT_DISTANCE:g})")
    p.add_argument("--keyframes", type=int_arg, default=DEFAULT_KEYFRAMES,
                   help=f"poses completed by inpainting along the way (default {DEFAULT_KEYFRAMES})")
    p.add_argument("--frames", type=int_arg, default=48, help="frames of the flight, out and back (default 48)")
    p.add_argument("--fps", type=float_arg, default=12.0, help="frames per second of the MP4 / GIF (default 12)")
    p.add_argument("--prompt", help="what to fill in with (default: the result's own prompt from its JSON)")
    p.add_argument("--model", help="artifact folder (default: the embedded model; its panorama model for 2:1)")
    p.add_argument("--out", default="out", help="folder (default: out)")
    p.add_argument("--name", help="file prefix (default: the input's name + '_explore')")
    p.add_argument("--seed", type=int_arg, default=0, help="seed of the first keyframe; the k-th uses seed + k")
    p.add_argument("--steps", type=int_arg, default=30, help="denoising steps per keyframe (default 30)")
    p.add_argument("--guidance", type=float_arg, default=DEFAULT_GUIDANCE, help="guidance scale")
    p.add_argument("--strength", type=float_arg, default=DEFAULT_STRENGTH,
                   help=f"in (0, 1]: how far each hole's row-filled start is noised before the model redraws it "
                        f"(default {DEFAULT_STRENGTH:g}; 1 = from pure noise)")
    p.add_argument("--device", default="auto", help=device_help())
    add_no_verify(p)
    p.set_defaults(run=run)


def run(a: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ..runtime import Pipeline
    from ..runtime.errors import InvalidArgumentError
    from ..runtime.result import read_rgbd_files, result_prefix
    from ..scene3d import read_rgbd
    from ..scene3d.explore import default_explore_path, explore, explore_path, write_walk

    rgbd = read_rgbd(a.input)
    files = read_rgbd_files(a.input)
    prompt = a.prompt
    if prompt is None and files.sidecar is not None:
        prompt = json.loads(files.sidecar.read_text()).get("prompt")
    if not prompt:
        raise InvalidArgumentError(f"{a.input} has no JSON with its prompt: give --prompt")
    path = a.path or default_explore_path(rgbd)
    explore_path(path, rgbd, a.distance)   # checked before any work
    model = a.model
    if model is None:
        from ..embedded import embedded_artifacts

        perspective, panorama, _ = embedded_artifacts(device=a.device)
        model = panorama if rgbd.is_panorama else perspective
    pipe = Pipeline.load(model, device=a.device, compile_now=False, verify=not a.no_verify)
    walk, images = explore(pipe, rgbd, prompt, path=path, distance=a.distance, keyframes=a.keyframes,
                           frames=a.frames, seed=a.seed, progress=True, num_inference_steps=a.steps,
                           guidance_scale=a.guidance, strength=a.strength)
    prefix = Path(a.out) / (a.name or result_prefix(Path(a.input)).name + "_explore")
    for k, kf in enumerate(walk.keyframes):
        say(f"keyframe {k + 1}: unseen {100 * kf.unseen:.1f} % -> {100 * kf.unseen_after:.1f} %, "
            f"{kf.seconds:.1f}s, {kf.added_points} points added")
    info = {"input": str(files.rgb_path), "prompt": prompt, "path": path, "distance": a.distance, "seed": a.seed,
            "steps": a.steps, "strength": a.strength, "model": str(model)}
    for p in write_walk(walk, images, prefix, a.fps, info):
        say(f"wrote {p}")
    return 0
