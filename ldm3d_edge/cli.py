"""The `ldm3d` command. Parsing and printing only: every subcommand calls one library function."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from .quantization.calibration import DEFAULT_SAMPLES, DEFAULT_STEPS
from .quantization.quantize import MODES, VAE_CHOICES
from .runtime.errors import InvalidArgumentError, Ldm3dError
from .cache import CLEAR_KINDS
from .server.retention import SERVE_KEEP, SERVE_MIN_FREE_MB

from .benchmarks.bench import BenchOptions
from .benchmarks.variants import DEVICES as BENCH_DEVICES, VARIANTS as BENCH_VARIANTS

PRECISIONS = ["f32", "bf16", "f16"]     # OpenVINO inference precision hints
VARIANT_NAMES = list(BENCH_VARIANTS)

EXIT_USAGE = 2


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    from .runtime.backends import DEVICE_HELP
    from .runtime.config import DEFAULT_GUIDANCE, DEFAULT_STEPS, DEFAULT_STRENGTH
    from .runtime.schedulers import scheduler_names

    p = argparse.ArgumentParser(prog="ldm3d", description="LDM3D text -> RGB + depth on OpenVINO / ONNX Runtime.")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens inside")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    e = sub.add_parser("export", help="diffusers LDM3D folder -> ONNX / OpenVINO artifact folder",
                       description="Export a local diffusers LDM3D checkpoint (ldm3d, ldm3d-4c, ldm3d-pano layout) to "
                                   "static-shape ONNX and/or OpenVINO IR plus manifest.json. Needs the [export] extra.")
    e.add_argument("src", help="local diffusers folder with model_index.json, unet/, vae/, text_encoder/, tokenizer/, "
                               "scheduler/")
    e.add_argument("out", help="artifact folder to create")
    e.add_argument("--format", default="both", choices=["openvino", "onnx", "both"], help="default: both")
    e.add_argument("--height", type=_int, help="export resolution (default: the UNet's sample_size x 8)")
    e.add_argument("--width", type=_int, help="export resolution (default: the UNet's sample_size x 8)")
    e.add_argument("--fp16", action="store_true", help="store weights in float16 (inputs/outputs stay float32)")
    e.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")

    g = sub.add_parser("generate", help="prompt -> RGB image + 16-bit depth map",
                       description="Generate an RGB image and its depth map from a text prompt on an exported model.")
    g.add_argument("prompt", help="what to generate, e.g. 'a red sphere on a grey floor'")
    g.add_argument("--model", help="artifact folder made by 'ldm3d export' (default: the embedded model, "
                                   "exported on first use)")
    g.add_argument("--pano", action="store_true",
                   help="360-degree equirectangular panorama at 2:1 (the embedded panorama export, or --model at twice "
                        "its height wide unless it is 2:1 already), with circular padding so the left and right edges "
                        "meet, and the '360 view of ...' prompt convention (prefixed when missing)")
    g.add_argument("--circular-padding", type=_int, metavar="COLS",
                   help="latent columns wrapped around each side while denoising and decoding (default with --pano: "
                        "1/8 of the latent width, at least 4; 0 turns it off; a multiple of 4). Needs an OpenVINO "
                        "device (the padded size differs from the export size)")
    g.add_argument("--out", default="out", help="folder for <name>_rgb.png, <name>_depth.png, <name>.json "
                                                "(default: out)")
    g.add_argument("--name", help="file name prefix (default: from the prompt and seed)")
    g.add_argument("--steps", type=_int, default=DEFAULT_STEPS, help=f"denoising steps (default {DEFAULT_STEPS})")
    g.add_argument("--guidance", type=_float, default=DEFAULT_GUIDANCE,
                   help=f"classifier-free guidance scale (default {DEFAULT_GUIDANCE}; <= 1 turns guidance off)")
    g.add_argument("--seed", type=_int, help="random seed (default: a fresh one, recorded in the JSON)")
    g.add_argument("--height", type=_int, help="multiple of 8 (default: the export resolution)")
    g.add_argument("--width", type=_int, help="multiple of 8 (default: the export resolution)")
    g.add_argument("--negative-prompt", help="what to steer away from")
    g.add_argument("--scheduler", help=f"one of {', '.join(scheduler_names())} (default: the model's own, DDIM "
                                       "for the releases)")
    g.add_argument("--device", default="auto", help=f"{DEVICE_HELP} (default: auto)")
    g.add_argument("--precision", choices=PRECISIONS,
                   help="OpenVINO inference precision (default: f32 for FP32 artifacts)")

    g.add_argument("--init", metavar="IMAGE", help="image-to-image: start from this RGB image (or an 'ldm3d generate' "
                                                   "result: its prefix or _rgb.png, whose depth is used too) instead "
                                                   "of noise; resized to the output size")
    g.add_argument("--init-depth", metavar="DEPTH", help="depth for --init (16- or 8-bit PNG, near = bright; default: "
                                                         "the result's own, else a flat 0.5)")
    g.add_argument("--strength", type=_float, default=DEFAULT_STRENGTH,
                   help=f"with --init: how far to move from it, in (0, 1] (default {DEFAULT_STRENGTH}; 1 = ignore it)")
    g.add_argument("--mesh", action="store_true", help="also write <name>.glb (textured), <name>.ply and <name>.obj "
                                                       "(+ .mtl, texture): a perspective grid mesh, or a sphere for "
                                                       "--pano")
    g.add_argument("--video", action="store_true", help="also write <name>.mp4, a camera flight (see --path)")
    g.add_argument("--all", action="store_true", help="--mesh and --video, plus <name>_points.ply, <name>.gif and "
                                                      "<name>_strip.png (six frames of the flight)")
    _add_3d_options(g, video=True, mesh=True)

    vid = sub.add_parser("video", help="RGBD -> camera-flight video (MP4 or GIF)",
                         description="Render a virtual camera moving through an RGBD scene (the output of 'ldm3d "
                                     "generate', or any RGB image with --depth) and write an MP4 or a GIF. Paths: "
                                     "orbit (circle, looking at the centre), dolly (in and out), swing (side to "
                                     "side), pano-walk (a 360-degree turn inside a panorama). Disocclusions are "
                                     "filled from the background side.")
    _add_rgbd_input(vid)
    vid.add_argument("--out", required=True, help="video file: .mp4 (H.264) or .gif")
    _add_3d_options(vid, video=True, mesh=False)

    me = sub.add_parser("mesh", help="RGBD -> GLB / PLY / OBJ mesh and point cloud",
                        description="Turn an RGBD result into 3D files: a textured grid mesh (perspective) with "
                                    "triangles across depth edges dropped, or a closed sphere (panorama).")
    _add_rgbd_input(me)
    me.add_argument("--out", help="output prefix (default: the input's prefix)")
    me.add_argument("--formats", default="glb,ply,obj", help="comma-separated from glb, ply, obj (default: all)")
    me.add_argument("--points", action="store_true", help="also write <prefix>_points.ply, the coloured point cloud")
    _add_3d_options(me, video=False, mesh=True)

    from .runtime.upscale import UPSCALE_GUIDANCE, UPSCALE_NOISE_LEVEL, UPSCALE_PROMPT, UPSCALE_STEPS

    up = sub.add_parser("upscale", help="low-res RGBD -> high-res RGBD with an exported ldm3d-sr upscaler",
                        description="Upscale an RGBD result (or an RGB image with --depth) with an ldm3d-sr artifact "
                                    "folder ('ldm3d export' of an ldm3d-sr checkpoint): the input is resized to the "
                                    "target size, encoded by the VAE and appended to the UNet's input at every step, "
                                    "with the noise level as the UNet's class label.")
    _add_rgbd_input(up)
    up.add_argument("--model", required=True, help="ldm3d-sr artifact folder made by 'ldm3d export'")
    up.add_argument("--out", default="out", help="folder for <name>_rgb.png, <name>_depth.png, <name>.json")
    up.add_argument("--name", help="file name prefix (default: the input's, + '-up')")
    up.add_argument("--prompt", default=UPSCALE_PROMPT, help=f"default: {UPSCALE_PROMPT!r}")
    up.add_argument("--height", type=_int, help="target height, a multiple of 8 (default: the export size)")
    up.add_argument("--width", type=_int, help="target width, a multiple of 8 (default: the export size)")
    up.add_argument("--noise-level", type=_int, default=UPSCALE_NOISE_LEVEL,
                    help=f"0 .. the model's max_noise_level (350 for the release); default {UPSCALE_NOISE_LEVEL}")
    up.add_argument("--steps", type=_int, default=UPSCALE_STEPS, help=f"default {UPSCALE_STEPS}")
    up.add_argument("--guidance", type=_float, default=UPSCALE_GUIDANCE, help=f"default {UPSCALE_GUIDANCE}")
    up.add_argument("--seed", type=_int)
    up.add_argument("--scheduler", help="default: the model's own")
    up.add_argument("--device", default="auto", help=f"{DEVICE_HELP} (default: auto)")
    up.add_argument("--precision", choices=PRECISIONS)

    sv = sub.add_parser("serve", help="HTTP service + 360-degree viewer (kiosk): generation jobs, results, metrics",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Serve generation over HTTP with the viewer at /. The model is loaded once per "
                                    "worker; jobs wait in a bounded queue (429 + Retry-After when full), report their "
                                    "step, can be cancelled, and a failing job never takes the server down.\n"
                                    "API: POST /v1/generate, GET|DELETE /v1/jobs/{id}, GET /v1/results[/{name}], "
                                    "GET /v1/health, GET /v1/metrics (Prometheus), /docs (OpenAPI). Needs the "
                                    "[serve] extra.")
    sv.add_argument("--model", help="artifact folder (default: the embedded model, perspective and 360 exports)")
    sv.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    sv.add_argument("--port", type=_int, default=8000, help="default 8000")
    sv.add_argument("--workers", type=_int, default=1, help="model replicas generating in parallel (default 1)")
    sv.add_argument("--queue-size", type=_int, default=4, help="jobs that may wait (default 4); more get 429")
    sv.add_argument("--results", default="ldm3d-results", help="folder for results (default: ldm3d-results)")
    sv.add_argument("--keep", type=_int, default=SERVE_KEEP,
                    help=f"results kept in --results: after each job the oldest beyond this many are deleted, every "
                         f"file of them (default {SERVE_KEEP}; 0 keeps all)")
    sv.add_argument("--min-free-mb", type=_int, default=SERVE_MIN_FREE_MB,
                    help=f"take no job (507) while the results disk has less free than this (default "
                         f"{SERVE_MIN_FREE_MB}; 0: no check)")
    sv.add_argument("--api-key", default=os.environ.get("LDM3D_API_KEY"),
                    help="required (header X-API-Key) from clients off this machine (default: $LDM3D_API_KEY)")
    sv.add_argument("--device", default="auto", help=f"{DEVICE_HELP} (default: auto)")
    sv.add_argument("--ray", action="store_true", help="generate on Ray Serve replicas (one model copy each, "
                                                      "autoscaled between --min-replicas and --workers on ongoing "
                                                      "requests); needs ray[serve]")
    sv.add_argument("--ray-address", help="Ray cluster to join (default: start one on this machine)")
    sv.add_argument("--min-replicas", type=_int, default=1, help="with --ray (default 1)")

    ba = sub.add_parser("batch", help="generate every prompt of a file, locally or fanned out over a Ray cluster",
                        description="Generate one result per prompt (one per line; # comments) into --out, with one "
                                    "model copy per replica. --ray maps the prompts over Ray actors (a local "
                                    "cluster, or --ray-address). Writes batch.json with what ran where.")
    ba.add_argument("prompts", help="text file, one prompt per line")
    ba.add_argument("--out", default="batch-out", help="default: batch-out")
    ba.add_argument("--model", help="artifact folder (default: the embedded model)")
    ba.add_argument("--steps", type=_int, default=30)
    ba.add_argument("--seed", type=_int, default=0)
    ba.add_argument("--pano", action="store_true")
    ba.add_argument("--ray", action="store_true", help="fan out over Ray (needs ray)")
    ba.add_argument("--ray-address", help="Ray cluster to join (default: start one on this machine)")
    ba.add_argument("--replicas", type=_int, default=2, help="model copies working at once with --ray (default 2)")
    ba.add_argument("--device", default="auto", help=f"{DEVICE_HELP} (default: auto)")

    vw = sub.add_parser("view", help="open one result in the viewer (no model, no generation)",
                        description="Serve the folder of an 'ldm3d generate' result on localhost and open the "
                                    "viewer on it. Needs the [serve] extra.")
    vw.add_argument("result", help="<prefix>, <prefix>_rgb.png or <prefix>.json of an 'ldm3d generate' result")
    vw.add_argument("--port", type=_int, default=8765, help="default 8765")
    vw.add_argument("--no-browser", action="store_true", help="print the address instead of opening a browser")

    d = sub.add_parser("demo", help="build a tiny random-weight LDM3D, export it and generate (no download)",
                       description="Smoke-test the whole path on this machine: build a tiny LDM3D with RANDOM "
                                   "weights (its pictures are noise, not scenes), export it to ONNX + OpenVINO and "
                                   "generate from it. Needs the [export] extra.")
    d.add_argument("--out", default="demo-out", help="working folder (default: demo-out)")
    d.add_argument("--device", default="auto", help=f"{DEVICE_HELP} (default: auto)")
    d.add_argument("--prompt", default="a red sphere in front of a blue cube on a grey floor")
    d.add_argument("--steps", type=_int, default=DEFAULT_STEPS)
    d.add_argument("--seed", type=_int, default=0)

    q = sub.add_parser("quantize", help="float artifact folder -> INT8 artifact folder (NNCF / ONNX Runtime)",
                       description="Make an INT8 variant of an exported artifact folder; the result loads like any "
                                   "artifact folder. Modes: weights = INT8 weights, float activations (every part); "
                                   "hybrid = UNet MatMuls and attention in INT8 (weights and activations), its "
                                   "convolutions with INT8 weights, conv_in/conv_out float; full = the whole UNet in "
                                   "INT8, calibrated. Text encoder and VAE get INT8 weights (ONNX: the VAE stays "
                                   "float). Calibration runs the float model over prompts and records UNet inputs. "
                                   "Needs the [quantize] extra.")
    q.add_argument("artifacts", help="float artifact folder made by 'ldm3d export'")
    q.add_argument("out", help="INT8 artifact folder to create")
    q.add_argument("--mode", default="hybrid", choices=MODES, help="default: hybrid")
    q.add_argument("--calibration-prompts", metavar="FILE",
                   help="one prompt per line (default: a shipped list of 12 scene and photo prompts)")
    q.add_argument("--samples", type=_int, default=DEFAULT_SAMPLES,
                   help=f"UNet calls recorded for calibration (default {DEFAULT_SAMPLES})")
    q.add_argument("--steps", type=_int, default=DEFAULT_STEPS,
                   help=f"denoising steps per calibration prompt (default {DEFAULT_STEPS})")
    q.add_argument("--format", choices=["openvino", "onnx", "both"],
                   help="which formats to quantize (default: every format the folder has)")
    q.add_argument("--vae", default="int8", choices=VAE_CHOICES,
                   help="OpenVINO VAE weights: int8 (default) or float")
    q.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")

    u = sub.add_parser("quality", help="what a variant costs: the same prompts and seeds through two folders",
                       description="Generate the same prompts with the same seeds (identical initial latents) "
                                   "through a reference and a test artifact folder (or one folder at two "
                                   "precisions) and compare: RGB PSNR and SSIM, depth AbsRel, RMSE, delta<1.25 and "
                                   "prompt adherence. Writes quality.json, quality.md and quality.png (reference | "
                                   "test | difference heat map). Needs the [quantize] extra.")
    u.add_argument("ref", help="reference artifact folder (usually the FP32 export)")
    u.add_argument("test", help="artifact folder to judge (e.g. the INT8 one; may equal REF with --test-precision)")
    u.add_argument("--prompts", metavar="FILE", help="one prompt per line (default: 16 held-out scene captions)")
    u.add_argument("--seeds", type=_int, default=2, help="seeds 0..N-1 per prompt (default 2)")
    u.add_argument("--steps", type=_int, default=20, help="denoising steps (default 20)")
    u.add_argument("--guidance", type=_float, default=5.0, help="guidance scale (default 5)")
    u.add_argument("--device", default="openvino:CPU", help=f"{DEVICE_HELP} (default: openvino:CPU)")
    u.add_argument("--ref-precision", choices=PRECISIONS, help="OpenVINO precision for REF (default f32)")
    u.add_argument("--test-precision", choices=PRECISIONS,
                   help="OpenVINO precision for TEST (default f32)")
    u.add_argument("--out", default="quality", help="report folder (default: quality)")

    v = sub.add_parser("eval-embedded", help="measure the embedded model (reconstruction, prompt adherence)",
                       description="Evaluate the embedded model: VAE reconstruction on held-out renders, prompt "
                                   "adherence and depth/RGB agreement through the exported runtime, a contact sheet. "
                                   "Needs the [export] extra.")
    v.add_argument("--model", help="diffusers folder (default: the embedded model)")
    v.add_argument("--data", default="training/data", help="held-out renders (rendered there first if missing; "
                                                           "default: training/data)")
    v.add_argument("--out", help="folder for eval.json, samples.json, contact_sheet.png (default: <model>/eval)")
    v.add_argument("--prompts", type=_int, default=100)
    v.add_argument("--steps", type=_int, default=30)
    v.add_argument("--device", default="openvino:CPU")

    ca = sub.add_parser("cache", help="what the cache folder holds (embedded exports, compiled blobs); clearing it",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="List the cache folder ($LDM3D_EDGE_CACHE, else ~/.cache/ldm3d-edge) by kind and "
                                    "size, or clear one kind:\n" + "\n".join(f"  {k:<9} {v}"
                                                                              for k, v in CLEAR_KINDS.items()))
    ca.add_argument("--clear", choices=list(CLEAR_KINDS), help="remove this kind of entry")
    ca.add_argument("--json", action="store_true", help="print JSON instead of a table")

    b = sub.add_parser("bench", help="every backend side by side against diffusers PyTorch, with the roofline",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Benchmark text encoder, UNet step, VAE decode, end to end, cold/warm start, peak\n"
                                   "memory and weights size of each variant against diffusers' StableDiffusionLDM3D-\n"
                                   "Pipeline (PyTorch FP32); every run in a process of its own, variants interleaved.\n"
                                   "With a release name, a random-weight model of the release's exact shapes is built,\n"
                                   "exported and quantized once under --work (at full size: ~30 minutes and ~25 GB of\n"
                                   "disk on 2 cores). Needs the export and quantize extras.",
                       epilog="examples:\n  ldm3d bench --quick                      # tiny model, 2 steps: a "
                              "smoke test\n  ldm3d bench                              # ldm3d-4c 512x512, 20 steps, "
                              "all CPU variants\n  ldm3d bench --config ldm3d-pano          # 1024x512\n  "
                              "ldm3d bench --device GPU                 # Intel GPU: OpenVINO FP32/FP16/INT8\n  "
                              "ldm3d bench --device CUDA                # NVIDIA: PyTorch and ONNX Runtime "
                              "(onnxruntime-gpu) FP32/FP16")
    b.add_argument("--config", default=BenchOptions.config,
                   help="ldm3d-4c, ldm3d-pano, ldm3d, tiny, or a folder: a diffusers LDM3D checkpoint (exported "
                        "here) or an artifact folder (default: ldm3d-4c)")
    b.add_argument("--checkpoint", help="diffusers folder for the PyTorch rows when --config is an artifact folder")
    b.add_argument("--height", type=_int, help="default: 512 (ldm3d-pano: 512, width 1024)")
    b.add_argument("--width", type=_int, help="default: 512 (ldm3d-pano: 1024)")
    b.add_argument("--steps", type=_int, default=BenchOptions.steps,
                   help=f"denoising steps of the end-to-end run (default {BenchOptions.steps})")
    b.add_argument("--variants", help="comma-separated, from: " + ", ".join(VARIANT_NAMES) +
                                      " (default: all that run on --device)")
    b.add_argument("--device", default="CPU", choices=list(BENCH_DEVICES), help="default: CPU")
    b.add_argument("--repeat", type=_int, default=BenchOptions.repeat,
                   help=f"rounds; every variant runs once per round (default {BenchOptions.repeat})")
    b.add_argument("--threads", type=_int, help="threads for every engine (default: all logical cores)")
    b.add_argument("--work", help="where models, exports and compile caches are kept (default: "
                                  "~/.cache/ldm3d-edge/bench)")
    b.add_argument("--out", default="bench-results", help="folder for bench.json, bench.md, bench.png "
                                                         "(default: bench-results)")
    b.add_argument("--quick", action="store_true", help="tiny random model, 64x64, 2 steps, 2 rounds: checks that "
                                                        "every variant runs; its numbers mean nothing")
    return p


def _add_rgbd_input(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="<prefix>, <prefix>_rgb.png or <prefix>.json of an 'ldm3d generate' result, or an "
                                 "RGB image (with --depth)")
    p.add_argument("--depth", help="depth image for an RGB INPUT (16-bit or 8-bit PNG, near = bright)")


def _add_3d_options(p: argparse.ArgumentParser, video: bool, mesh: bool) -> None:
    from .scene3d import DEFAULT_EDGE_THRESHOLD, DEFAULT_FAR, DEFAULT_HFOV_DEG, DEFAULT_NEAR, PATHS
    from .scene3d.video import DEFAULT_FPS, DEFAULT_FRAMES

    o = p.add_argument_group("3D options")
    o.add_argument("--projection", choices=["perspective", "equirectangular"],
                   help="how the image maps to rays (default: from the result's JSON, else equirectangular for 2:1 "
                        "images, perspective otherwise)")
    o.add_argument("--hfov", type=_float, help=f"horizontal field of view of a perspective image in degrees "
                                               f"(default {DEFAULT_HFOV_DEG:g})")
    o.add_argument("--near", type=_float, help=f"distance of the nearest depth value (default {DEFAULT_NEAR:g})")
    o.add_argument("--far", type=_float, help=f"distance of the farthest depth value (default {DEFAULT_FAR:g}); "
                                              "1/distance is interpolated linearly between them")
    if mesh:
        o.add_argument("--edge-threshold", type=_float, default=DEFAULT_EDGE_THRESHOLD,
                       help="drop mesh triangles whose corner distances differ by more than this fraction of the "
                            f"nearest (default {DEFAULT_EDGE_THRESHOLD:g})")
    if video:
        o.add_argument("--path", choices=PATHS, help="camera path (default: orbit, or pano-walk for panoramas)")
        o.add_argument("--frames", type=_int, default=DEFAULT_FRAMES, help=f"default {DEFAULT_FRAMES}")
        o.add_argument("--fps", type=_float, default=DEFAULT_FPS, help=f"default {DEFAULT_FPS}")


def _slug(text: str, seed) -> str:
    from .runtime.result import slug

    return f"{slug(text)}-{seed}" if seed is not None else slug(text)


def cmd_export(a) -> int:
    try:
        from .export import export_pipeline
    except ImportError as e:
        raise Ldm3dError(f"'ldm3d export' needs the export extra ({e.name} is missing): "
                         "pip install 'ldm3d-edge[export]'") from None
    m = export_pipeline(a.src, a.out, fmt=a.format, height=a.height, width=a.width, fp16=a.fp16,
                        overwrite=a.overwrite)
    print(f"exported {a.src} -> {a.out} ({', '.join(m['formats'])}, {m['precision']}, {m['width']}x{m['height']}, "
          f"{m['vae_channels']}-channel VAE) in {m['export_seconds']:.1f}s")
    return 0


def generate_files(model: str | Path, out: str | Path, prompt: str, name: str | None = None,
                   device: str = "auto", precision: str | None = None, projection: str | None = None,
                   hfov: float | None = None, near: float | None = None, far: float | None = None,
                   outputs_3d: dict | None = None, init: tuple | None = None, strength: float | None = None,
                   pano: bool = False, circular_padding: int | None = None, **kw) -> list[Path]:
    """Validate (before compiling anything), load, generate with a progress bar, save RGB, depth and the JSON
    sidecar (with the camera and depth mapping), then any 3D outputs (scene3d.write_3d arguments); prints what
    it did. init: (image path, depth path or None) for image-to-image at `strength`. pano: 2:1 size, the
    "360 view of" prompt prefix and circular padding (see --pano)."""
    from .runtime import Pipeline
    from .runtime.pipeline import pano_prompt, pano_settings
    from .scene3d import DEFAULT_FAR, DEFAULT_HFOV_DEG, DEFAULT_NEAR, RGBD, Camera, DepthMapping

    # the camera and depth mapping the JSON records and 3D outputs use; bad values fail here, before any work
    hfov = DEFAULT_HFOV_DEG if hfov is None else hfov
    mapping = DepthMapping(DEFAULT_NEAR if near is None else near, DEFAULT_FAR if far is None else far)
    Camera.for_image(8, 8, projection, hfov)

    pipe = Pipeline.load(model, device=device, precision=precision, compile_now=False)
    pad = 0
    if pano:
        kw["height"], kw["width"], pad = pano_settings(pipe.manifest, kw.get("height"), kw.get("width"))
        if pano_prompt(prompt) != prompt:
            prompt = pano_prompt(prompt)
            print(f"prompt: {prompt!r} (the panorama models' convention)")
    if init is None:
        kw["circular_padding"] = pad if circular_padding is None else circular_padding
    elif circular_padding:
        raise InvalidArgumentError("--circular-padding applies to text-to-image, not to --init (image-to-image)")
    cfg, _ = pipe.make_config(prompt, **kw)
    t0 = time.perf_counter()
    pipe.prepare(cfg.height, cfg.width, cfg.circular_padding)
    print(f"model {pipe.manifest.root} on {pipe.device} (ready in {time.perf_counter() - t0:.1f}s)", flush=True)
    if init is None:
        result = pipe(prompt, progress=True, **{**kw, "seed": cfg.seed})
    else:
        rgb, depth = _read_init(*init, cfg.height, cfg.width)
        kw = {k: v for k, v in kw.items() if k not in ("height", "width", "latents", "circular_padding")}
        result = pipe.img2img(rgb, depth, prompt, strength=strength, progress=True, **{**kw, "seed": cfg.seed})
    mt = result.metrics
    print(f"{len(mt.unet_step_s)} steps, {mt.median_step_s:.3f} s/step (median), total {mt.total_s:.1f}s, "
          f"seed {result.seed}")
    prefix = Path(out) / (name or _slug(prompt, result.seed))
    rgbd = RGBD.from_result(result, projection, hfov, mapping)
    paths = result.save(prefix, extra=rgbd.sidecar())
    for p in paths:
        print(f"wrote {p}")
    if outputs_3d:
        paths += _write_3d(rgbd, prefix, outputs_3d)
    return paths


def _read_init(image: str, depth: str | None, height: int, width: int):
    """An init image (and its depth: given, or the result's own _depth.png, else None), resized to height x width."""
    import numpy as np
    from PIL import Image

    from .runtime.result import read_rgbd_files

    f = read_rgbd_files(image, depth, need_depth=False)
    rgb = np.asarray(Image.fromarray(f.rgb).resize((width, height), Image.BICUBIC))
    d = None if f.depth is None else \
        np.asarray(Image.fromarray(f.depth).resize((width, height), Image.BILINEAR), dtype=np.float32).clip(0, 1)
    print(f"image-to-image from {f.rgb_path}" + (f" with depth {f.depth_path}" if d is not None else " (flat depth)"),
          flush=True)
    return rgb, d


def _write_3d(rgbd, prefix: Path, outputs: dict) -> list[Path]:
    from .scene3d import write_3d

    t0 = time.perf_counter()
    paths = write_3d(rgbd, prefix, progress=True, **outputs)
    for p in paths:
        print(f"wrote {p}")
    print(f"3D outputs in {time.perf_counter() - t0:.1f}s")
    return paths


def cmd_generate(a) -> int:
    _check_3d_options(a)
    if a.path == "pano-walk" and not (a.pano or a.projection == "equirectangular"):
        raise InvalidArgumentError("--path pano-walk needs a panorama: add --pano (or --projection equirectangular)")
    model = a.model
    if model is None:
        from .embedded import embedded_artifacts

        perspective, panorama, _ = embedded_artifacts()
        model = panorama if a.pano else perspective
    outputs = {}
    if a.mesh or a.all:
        outputs["mesh_formats"] = ("glb", "ply", "obj")
    if a.video or a.all:
        outputs["videos"] = (".mp4", ".gif") if a.all else (".mp4",)
    if a.all:
        outputs.update(points=True, strip=True)
    if outputs:
        outputs.update(path=a.path, frames=a.frames, fps=a.fps, edge_threshold=a.edge_threshold)
    generate_files(model, a.out, a.prompt, name=a.name, negative_prompt=a.negative_prompt,
                   num_inference_steps=a.steps, guidance_scale=a.guidance, seed=a.seed, height=a.height,
                   width=a.width, scheduler=a.scheduler, device=a.device, precision=a.precision,
                   projection=a.projection or ("equirectangular" if a.pano else "perspective"), hfov=a.hfov,
                   near=a.near, far=a.far, outputs_3d=outputs, init=(a.init, a.init_depth) if a.init else None,
                   strength=a.strength, pano=a.pano, circular_padding=a.circular_padding)
    return 0


def _check_3d_options(a) -> None:
    """The 3D options' ranges, checked before any work (so a bad value never leaves a half-done set of files)."""
    frames, fps = getattr(a, "frames", 2), getattr(a, "fps", 1.0)
    if getattr(a, "edge_threshold", 1.0) <= 0:
        raise InvalidArgumentError(f"--edge-threshold must be > 0, got {a.edge_threshold:g}")
    if not 2 <= frames <= 10000:
        raise InvalidArgumentError(f"--frames must be from 2 to 10000, got {frames}")
    if not 0 < fps <= 120:
        raise InvalidArgumentError(f"--fps must be in (0, 120], got {fps:g}")


def _read_input(a):
    from .scene3d import read_rgbd

    return read_rgbd(a.input, depth=a.depth, projection=a.projection, hfov_deg=a.hfov, near=a.near, far=a.far)


def cmd_video(a) -> int:
    from .scene3d.video import VIDEO_FORMATS, render_frames, write_video

    if Path(a.out).suffix.lower() not in VIDEO_FORMATS:
        raise InvalidArgumentError(f"--out must end in {' or '.join(VIDEO_FORMATS)}, got {a.out}")
    _check_3d_options(a)
    rgbd = _read_input(a)
    t0 = time.perf_counter()
    views = render_frames(rgbd, a.path, a.frames, progress=True)
    out = write_video([v.image for v in views], a.out, a.fps)
    holes = sum(v.hole_fraction for v in views) / len(views)
    print(f"wrote {out} ({len(views)} frames, {a.fps:g} fps, {views[0].image.shape[1]}x{views[0].image.shape[0]}; "
          f"{holes:.1%} of pixels were disocclusions, filled) in {time.perf_counter() - t0:.1f}s")
    return 0


def cmd_upscale(a) -> int:
    from .runtime import UpscalePipeline
    from .runtime.result import read_rgbd_files

    files = read_rgbd_files(a.input, a.depth)
    pipe = UpscalePipeline.load(a.model, device=a.device, precision=a.precision, compile_now=False)
    h, w = files.rgb.shape[:2]
    result = pipe(files.rgb, files.depth, a.prompt, num_inference_steps=a.steps, guidance_scale=a.guidance,
                  noise_level=a.noise_level, height=a.height, width=a.width, seed=a.seed, scheduler=a.scheduler,
                  progress=True)
    mt = result.metrics
    print(f"upscaled {files.rgb_path} {w}x{h} -> {result.width}x{result.height} on {pipe.device}: "
          f"{len(mt.unet_step_s)} steps, {mt.median_step_s:.3f} s/step, total {mt.total_s:.1f}s, seed {result.seed}")
    name = a.name or (_input_prefix(Path(a.input)).name + "-up")
    for p in result.save(Path(a.out) / name):
        print(f"wrote {p}")
    return 0


def _server():
    try:
        from .server import run
    except ImportError as e:
        raise Ldm3dError(f"'ldm3d serve' and 'ldm3d view' need the serve extra ({e.name} is missing): "
                         "pip install 'ldm3d-edge[serve]'") from None
    return run


def cmd_serve(a) -> int:
    _server().serve(a.model, a.host, a.port, a.results, workers=a.workers, queue_size=a.queue_size,
                    api_key=a.api_key, device=a.device, ray=a.ray, ray_address=a.ray_address,
                    min_replicas=a.min_replicas, keep=a.keep, min_free_mb=a.min_free_mb)
    return 0


def cmd_batch(a) -> int:
    from .quantization.calibration import read_prompts

    run = _server()
    if not Path(a.prompts).is_file():
        raise InvalidArgumentError(f"prompts file {a.prompts} not found (one prompt per line)")
    prompts = read_prompts(a.prompts)
    t0 = time.perf_counter()
    rows = run.batch(prompts, Path(a.out), a.model, steps=a.steps, seed=a.seed, pano=a.pano, device=a.device,
                     ray=a.ray, ray_address=a.ray_address, replicas=a.replicas)
    print(f"{len(rows)} results in {a.out} in {time.perf_counter() - t0:.1f}s "
          f"({len({r['pid'] for r in rows})} process(es))")
    return 0


def cmd_view(a) -> int:
    _server().view(a.result, port=a.port, open_browser=not a.no_browser)
    return 0


def cmd_cache(a) -> int:
    import json

    from .cache import cache_entries, clear, human
    from .runtime.constants import cache_base

    entries = clear(a.clear) if a.clear else cache_entries()
    total = sum(e.bytes for e in entries)
    if a.json:
        print(json.dumps({"cache": str(cache_base()), "cleared": a.clear, "total_bytes": total,
                          "entries": [e.to_json() for e in entries]}, indent=2))
        return 0
    print(f"{'removed' if a.clear else 'cache'}: {cache_base()} ({human(total)}{' freed' if a.clear else ''})")
    for e in entries:
        note = " (stale: another model version)" if e.stale and not a.clear else ""
        print(f"  {human(e.bytes):>9}  {e.kind:<20} {e.path}{note}")
    return 0


def cmd_mesh(a) -> int:
    from .scene3d import MESH_FORMATS

    formats = tuple(f.strip().lower() for f in a.formats.split(",") if f.strip())
    bad = [f for f in formats if f not in MESH_FORMATS]
    if bad or not formats:
        raise InvalidArgumentError(f"--formats takes a comma-separated list from {', '.join(MESH_FORMATS)}, got "
                                   f"{a.formats!r}")
    _check_3d_options(a)
    rgbd = _read_input(a)
    prefix = Path(a.out) if a.out else _input_prefix(Path(a.input))
    _write_3d(rgbd, prefix, {"mesh_formats": formats, "points": a.points, "edge_threshold": a.edge_threshold})
    return 0


def _input_prefix(path: Path) -> Path:
    """Where outputs derived from an input go: a result's own prefix, or an image's path without its extension."""
    from .runtime.result import result_prefix

    prefix = result_prefix(path)
    return prefix.with_suffix("") if prefix == path else prefix


def cmd_demo(a) -> int:
    try:
        from .export import export_pipeline
        from .export.random_model import build_tiny_pipeline
    except ImportError as e:
        raise Ldm3dError(f"'ldm3d demo' needs the export extra ({e.name} is missing): "
                         "pip install 'ldm3d-edge[export]'") from None
    out = Path(a.out)
    print("demo: building a TINY LDM3D with RANDOM weights (no download): its RGB and depth are noise, "
          "not a scene. Real models: 'ldm3d export <diffusers folder>'.", flush=True)
    t0 = time.perf_counter()
    src = build_tiny_pipeline(out / "tiny-ldm3d-random", vae_channels=4, seed=0)
    art = out / "tiny-ldm3d-random-artifacts"
    export_pipeline(src, art, fmt="both", overwrite=True)
    print(f"exported {src} -> {art} in {time.perf_counter() - t0:.1f}s", flush=True)
    generate_files(art, out, a.prompt, name="demo", num_inference_steps=a.steps, guidance_scale=5.0, seed=a.seed,
                   device=a.device)
    return 0


def _quantization(what: str):
    try:
        from . import quantization
        from .quantization import quality
        import nncf  # noqa: F401
        import skimage  # noqa: F401
    except ImportError as e:
        raise Ldm3dError(f"'ldm3d {what}' needs the quantize extra ({e.name} is missing): "
                         "pip install 'ldm3d-edge[quantize]'") from None
    return quantization, quality


def cmd_quantize(a) -> int:
    quantization, _ = _quantization("quantize")
    formats = None if a.format is None else (["openvino", "onnx"] if a.format == "both" else [a.format])
    m = quantization.quantize_artifacts(a.artifacts, a.out, mode=a.mode, formats=formats,
                                        prompts_file=a.calibration_prompts, samples=a.samples, steps=a.steps,
                                        vae=a.vae, overwrite=a.overwrite)
    q = m["quantization"]
    print(f"quantized {a.artifacts} -> {a.out} ({m['precision']}, {', '.join(m['formats'])}) in {q['seconds']:.0f}s")
    for comp, fmts in q["parts"].items():
        print(f"  {comp:13s} " + ", ".join(f"{f}: {p}" for f, p in fmts.items()))
    return 0


def cmd_quality(a) -> int:
    _, quality = _quantization("quality")
    from .quantization.calibration import read_prompts

    prompts = read_prompts(a.prompts or quality.DEFAULT_PROMPTS_FILE)
    r = quality.compare(a.ref, a.test, prompts, seeds=a.seeds, steps=a.steps, guidance=a.guidance,
                        ref_device=a.device, test_device=a.device, ref_precision=a.ref_precision,
                        test_precision=a.test_precision, out=a.out)
    print(quality.summary_markdown(r), end="")
    print(f"wrote {Path(a.out) / 'quality.json'}, quality.md, quality.png")
    return 0


def cmd_eval_embedded(a) -> int:
    from .training.evaluate import main as evaluate

    argv = ["--prompts", str(a.prompts), "--steps", str(a.steps), "--device", a.device, "--data", a.data]
    return evaluate(argv + (["--out", a.out] if a.out else []) + (["--model", a.model] if a.model else []))


def cmd_bench(a) -> int:
    try:
        import diffusers  # noqa: F401
        import nncf  # noqa: F401
    except ImportError as e:
        raise Ldm3dError(f"'ldm3d bench' needs the export and quantize extras ({e.name} is missing): "
                         "pip install 'ldm3d-edge[export,quantize]'") from None
    from .benchmarks.bench import run_bench
    from .benchmarks.report import markdown, write_report

    o = BenchOptions(config=a.config, checkpoint=a.checkpoint, height=a.height, width=a.width, steps=a.steps,
                     variants=a.variants, device=a.device, repeat=a.repeat, quick=a.quick)
    if a.threads:
        o.threads = a.threads
    if a.work:
        o.work = a.work
    r = run_bench(o)
    paths = write_report(r, a.out)
    print(markdown(r))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    failed = [k for k, v in r["variants"].items() if not v.get("rounds_ok")]
    if failed:
        print(f"ldm3d bench: error: {', '.join(failed)} failed in every round (see errors in bench.json)",
              file=sys.stderr)
        return 1
    return 0


COMMANDS = {"export": cmd_export, "generate": cmd_generate, "demo": cmd_demo, "quantize": cmd_quantize,
            "quality": cmd_quality, "eval-embedded": cmd_eval_embedded, "video": cmd_video, "mesh": cmd_mesh,
            "upscale": cmd_upscale, "serve": cmd_serve, "view": cmd_view,
            "batch": cmd_batch, "cache": cmd_cache,
            "bench": cmd_bench}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return COMMANDS[args.command](args)
    except Ldm3dError as e:
        print(f"ldm3d {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"ldm3d {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
