"""ldm3d demo: smoke-test this machine: the embedded model, a scene and a panorama with their 3D outputs (no torch);
with --random, a tiny random-weight LDM3D built, exported and run (the [export] extra)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..extras import need_extra
from .common import Subparsers, device_help, int_arg, say


def register(sub: Subparsers) -> None:
    from ..runtime.config import DEFAULT_STEPS

    d = sub.add_parser("demo", help="smoke-test this machine: a scene and a panorama on the embedded model",
                       description="Smoke-test the whole path on this machine: generate a scene and a 360-degree "
                                   "panorama on the embedded model (shipped as OpenVINO IR: no torch, no download) "
                                   "with their meshes. --random instead builds a tiny LDM3D with RANDOM weights (its "
                                   "pictures are noise, not scenes), exports it to ONNX + OpenVINO and generates "
                                   "from it, which tests the export too and needs the [export] extra.")
    d.add_argument("--out", default="demo-out", help="working folder (default: demo-out)")
    d.add_argument("--device", default="auto", help=device_help())
    d.add_argument("--prompt", default="a red sphere in front of a blue cube on a grey floor")
    d.add_argument("--steps", type=int_arg, default=DEFAULT_STEPS)
    d.add_argument("--seed", type=int_arg, default=0)
    d.add_argument("--random", action="store_true", help="a tiny random-weight model, exported here (needs "
                                                         "[export])")
    d.set_defaults(run=run)


def run(a: argparse.Namespace) -> int:
    from ..generate import generate_files
    from ..runtime import Pipeline

    out = Path(a.out)
    t0 = time.perf_counter()
    if not a.random:
        pipe = Pipeline.load(device=a.device, compile_now=False)
        for pano in (False, True):
            generate_files(pipe, out, a.prompt, name="demo-pano" if pano else "demo", pano=pano,
                           num_inference_steps=a.steps, seed=a.seed, outputs_3d={"mesh_formats": ("glb",)},
                           progress=True, report=say)
        say(f"demo: the embedded model on {pipe.device}, a scene and a panorama in {time.perf_counter() - t0:.1f}s")
        return 0
    *_, export, random_model = need_extra("'ldm3d demo --random'", "export", "torch", "diffusers",
                                          "ldm3d_edge.export", "ldm3d_edge.export.random_model")
    print("demo: building a TINY LDM3D with RANDOM weights (no download): its RGB and depth are noise, "
          "not a scene. Real models: 'ldm3d export <diffusers folder>'.", flush=True)
    src = random_model.build_tiny_pipeline(out / "tiny-ldm3d-random", vae_channels=4, seed=0)
    art = out / "tiny-ldm3d-random-artifacts"
    export.export_pipeline(src, art, fmt="both", overwrite=True)
    print(f"exported {src} -> {art} in {time.perf_counter() - t0:.1f}s", flush=True)
    pipe = Pipeline.load(art, device=a.device, compile_now=False)
    generate_files(pipe, out, a.prompt, name="demo", num_inference_steps=a.steps, guidance_scale=5.0, seed=a.seed,
                   progress=True, report=say)
    return 0
