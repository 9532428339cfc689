"""One benchmark run in a process of its own (so its peak resident memory is its own): start the variant, time
its first call, generate once end to end, report per-component seconds as one JSON line on stdout.

    python -m ldm3d_edge.bench.worker '<json spec>'

Spec keys: kind ("run" or "flops"), variant, device, checkpoint, artifacts, height, width, steps, threads,
cache_dir, spawn_time (time.time() when the parent started this process), kernels (read the UNet's kernel
precisions back). Runtime variants never import torch.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from contextlib import nullcontext

import numpy as np

from .common import peak_rss_gb
from .variants import variant_named

PROMPT = "a red sphere in front of a blue cube on a grey floor"
GUIDANCE = 5.0


def unet_inputs(height: int, width: int, hidden_dim: int, latent_channels: int = 4):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((2, latent_channels, height // 8, width // 8), dtype=np.float32),
            np.full((2,), 500.0, np.float32), rng.standard_normal((2, 77, hidden_dim), dtype=np.float32))


def initial_latents(height: int, width: int, latent_channels: int = 4) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((1, latent_channels, height // 8, width // 8), dtype=np.float32)


def run_runtime(spec: dict) -> dict:
    from ldm3d_edge.runtime import Pipeline
    from ldm3d_edge.runtime.presets import PRESETS

    v = variant_named(spec["variant"])
    h, w = spec["height"], spec["width"]
    t0 = time.perf_counter()
    # compiled for the preset's unguided steps at load, as `ldm3d generate --speed fast` compiles before its first
    # step: the end-to-end time is the image's alone for every row
    unguided = v.speed is not None and PRESETS[v.speed].guidance_cutoff is not None
    pipe = Pipeline.load(spec["artifacts"], device=f"{v.engine}:{spec['device']}", precision=v.precision,
                         num_threads=spec["threads"], cache_dir=spec["cache_dir"], unguided_steps=unguided)
    pipe.prepare(h, w, unguided_steps=unguided)
    settings = pipe.speed_settings(v.speed) if v.speed else {"num_inference_steps": spec["steps"]}
    load_s = time.perf_counter() - t0
    m = pipe.manifest
    sample, t, hidden = unet_inputs(h, w, m.components["unet"].input("encoder_hidden_states").shape[-1],
                                    m.latent_channels)
    t0 = time.perf_counter()
    pipe.unet(sample, t, hidden, h, w)
    first_unet_s = time.perf_counter() - t0
    ready_s = time.time() - spec["spawn_time"]
    out = pipe(PROMPT, guidance_scale=GUIDANCE, height=h, width=w, latents=initial_latents(h, w, m.latent_channels),
               **settings)
    mt = out.metrics
    res = {"load_s": load_s, "first_unet_s": first_unet_s, "ready_s": ready_s, "text_encoder_s": mt.text_encoder_s,
           "unet_steps_s": mt.unet_step_s, "vae_decode_s": mt.vae_decode_s, "e2e_s": mt.total_s,
           "device": out.device, "depth_range": [float(out.depth.min()), float(out.depth.max())],
           "steps": settings["num_inference_steps"]}
    if spec.get("kernels") and v.engine == "openvino":
        from ldm3d_edge.quantization.openvino_int8 import kernel_precisions

        res["unet_kernels"] = kernel_precisions(pipe.unet.compiled(h, w).native)
    return res


def _timed(fn, sink: list, sync):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        sync()
        sink.append(time.perf_counter() - t0)
        return out
    return wrapper


def run_torch(spec: dict) -> dict:
    import torch
    from diffusers import StableDiffusionLDM3DPipeline

    from ldm3d_edge.export.source import quiet_libraries

    quiet_libraries()
    v = variant_named(spec["variant"])
    h, w = spec["height"], spec["width"]
    torch.set_num_threads(spec["threads"])
    cuda = spec["device"] == "CUDA"
    dev = "cuda" if cuda else "cpu"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    dtype = torch.float16 if v.precision == "f16" else torch.float32
    t0 = time.perf_counter()
    pipe = StableDiffusionLDM3DPipeline.from_pretrained(spec["checkpoint"], torch_dtype=dtype).to(dev)
    pipe.set_progress_bar_config(disable=True)
    load_s = time.perf_counter() - t0
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if v.precision == "bf16" else nullcontext()
    times: dict[str, list[float]] = {"text": [], "unet": [], "vae": []}
    pipe.text_encoder.forward = _timed(pipe.text_encoder.forward, times["text"], sync)
    pipe.unet.forward = _timed(pipe.unet.forward, times["unet"], sync)
    pipe.vae.decode = _timed(pipe.vae.decode, times["vae"], sync)
    sample, t, hidden = (torch.from_numpy(a).to(dev, dtype) for a in
                         unet_inputs(h, w, pipe.text_encoder.config.hidden_size, pipe.unet.config.in_channels))
    with torch.inference_mode(), autocast:
        t0 = time.perf_counter()
        pipe.unet(sample, t, encoder_hidden_states=hidden)
        sync()
        first_unet_s = time.perf_counter() - t0
        ready_s = time.time() - spec["spawn_time"]
        times["unet"].clear()
        latents = torch.from_numpy(initial_latents(h, w, pipe.unet.config.in_channels)).to(dev, dtype)
        t0 = time.perf_counter()
        out = pipe(PROMPT, num_inference_steps=spec["steps"], guidance_scale=GUIDANCE, height=h, width=w,
                   latents=latents, output_type="np")
        sync()
        e2e_s = time.perf_counter() - t0
    depth = np.asarray(out.depth, dtype=np.float32)
    return {"load_s": load_s, "first_unet_s": first_unet_s, "ready_s": ready_s, "text_encoder_s": sum(times["text"]),
            "unet_steps_s": times["unet"], "vae_decode_s": sum(times["vae"]), "e2e_s": e2e_s,
            "device": f"torch:{dev}", "depth_range": [float(depth.min()), float(depth.max())]}


def count_flops(spec: dict) -> dict:
    """FLOPs of one call of each part, counted by torch.utils.flop_counter.FlopCounterMode while the diffusers
    model runs (convolutions, matmuls and attention; elementwise work and normalisations are not counted)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import CLIPTextModel

    from ldm3d_edge.export.source import quiet_libraries

    quiet_libraries()
    ckpt, h, w = spec["checkpoint"], spec["height"], spec["width"]
    torch.set_num_threads(spec["threads"])
    out = {}
    with torch.inference_mode():
        text = CLIPTextModel.from_pretrained(ckpt, subfolder="text_encoder").eval()
        with FlopCounterMode(display=False) as fc:
            text(torch.zeros((1, 77), dtype=torch.long))
        out["text_encoder"] = fc.get_total_flops()
        unet = UNet2DConditionModel.from_pretrained(ckpt, subfolder="unet").eval()
        sample, t, hidden = (torch.from_numpy(a) for a in
                             unet_inputs(h, w, text.config.hidden_size, unet.config.in_channels))
        del text
        with FlopCounterMode(display=False) as fc:
            unet(sample, t, encoder_hidden_states=hidden)
        out["unet"] = fc.get_total_flops()
        latent_channels = unet.config.in_channels
        del unet
        vae = AutoencoderKL.from_pretrained(ckpt, subfolder="vae").eval()
        with FlopCounterMode(display=False) as fc:
            vae.decode(torch.zeros((1, latent_channels, h // 8, w // 8)))
        out["vae_decoder"] = fc.get_total_flops()
    return {"flops": out, "method": "torch.utils.flop_counter.FlopCounterMode on the diffusers modules "
                                     "(conv, matmul, attention; 2 FLOPs per multiply-add)"}


def main(argv=None) -> int:
    spec = json.loads((argv or sys.argv[1:])[0])
    if spec["kind"] == "flops":
        res = count_flops(spec)
    else:
        res = (run_torch if variant_named(spec["variant"]).engine == "torch" else run_runtime)(spec)
        res["unet_step_s"] = statistics.median(res["unet_steps_s"]) if res["unet_steps_s"] else float("nan")
    res["peak_rss_gb"] = peak_rss_gb()
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
