"""`ldm3d bench`: every variant side by side against diffusers PyTorch, at real model size, with the roofline.

Steps:
  1. prepare: build (once, cached under --work) a random-weight model from the release config, export it with the
     project's exporter, make the INT8 folders with the project's quantizer — or take the given checkpoint or
     artifact folder;
  2. count each part's FLOPs (torch FlopCounterMode on the diffusers modules) and measure the matmul peak of
     each precision (OpenVINO CPU microbenchmark);
  3. rounds: in each round every variant runs once in a fresh process of its own (benchmarks.worker), variants
     interleaved, so machine noise hits all alike; round 1 starts with an empty compile cache (cold start), later
     rounds find it filled (warm start);
  4. summarize: median and spread over rounds, ratios to diffusers PyTorch FP32, achieved FLOP/s against the
     peak of each variant's precision; JSON + markdown + PNG.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..runtime import constants as C
from ..runtime.errors import InvalidArgumentError
from .common import cpu_times, machine, steal_pct
from .trust import RATIO_KEYS, ratio_reference, run_flags, same_round_ratios, trust_flags
from .variants import BASELINE, DEVICES, Variant, parse_variants, variant_named

RELEASE_SIZES = {"ldm3d-4c": (512, 512), "ldm3d-pano": (512, 1024), "ldm3d": (512, 512), "tiny": (64, 64)}
PEAK_SIZES = (2048, 4096)
QUICK = dict(config="tiny", steps=2, repeat=2)
COMPONENTS = ("text_encoder", "unet", "vae_decoder")
TIMINGS = ("text_encoder_s", "unet_step_s", "vae_decode_s", "e2e_s", "load_s", "first_unet_s", "ready_s")


@dataclass
class BenchOptions:
    config: str = "ldm3d-4c"            # release name, "tiny", a diffusers folder or an artifact folder
    height: int | None = None
    width: int | None = None
    steps: int = 20
    repeat: int = 3
    variants: str | None = None         # comma-separated; None: all for the device
    speeds: str | None = None           # comma-separated speed presets: a row per preset per runtime variant
    device: str = "CPU"
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    work: str = str(C.cache_base() / "bench")
    checkpoint: str | None = None       # diffusers folder for the PyTorch rows when `config` is an artifact folder
    quick: bool = False
    calibration_samples: int = 8        # UNet calls recorded to calibrate the INT8 folders (latency ignores it)
    float_groups: str | None = None     # comma-separated UNet blocks ov-int8-mixed keeps float
    timeout_s: float = 3600.0           # one variant run

    def validate(self) -> list[Variant]:
        if self.quick:
            for k, v in QUICK.items():
                setattr(self, k, v)
        if self.device not in DEVICES:
            raise InvalidArgumentError(f"unknown device {self.device!r}; choose one of {', '.join(DEVICES)}")
        try:
            variants = parse_variants(self.variants, self.device, self.speeds)
        except ValueError as e:
            raise InvalidArgumentError(str(e)) from None
        _check_device_present(self.device, variants)
        if any(v.artifacts == "int8-mixed" for v in variants) and not self.float_groups:
            raise InvalidArgumentError("ov-int8-mixed needs --float-groups: the UNet blocks to keep float (an auto "
                                       "folder's manifest or 'ldm3d quantize --sensitivity' names them)")
        if self.config not in RELEASE_SIZES and not Path(self.config).is_dir():
            raise InvalidArgumentError(f"--config must be one of {', '.join(RELEASE_SIZES)} or a folder (diffusers "
                                       f"checkpoint or artifact folder); {self.config!r} is neither")
        h, w = RELEASE_SIZES.get(self.config, (512, 512))
        if (Path(self.config) / C.MANIFEST_FILE).is_file():   # an artifact folder: its export size
            m = json.loads((Path(self.config) / C.MANIFEST_FILE).read_text())
            h, w = m.get("height", h), m.get("width", w)
        self.height, self.width = self.height or h, self.width or w
        for name in ("height", "width"):
            v = getattr(self, name)
            if not 8 <= v <= 4096 or v % 8:
                raise InvalidArgumentError(f"--{name} must be a multiple of 8 from 8 to 4096, got {v}")
        for name, lo, hi in (("steps", 1, 1000), ("repeat", 1, 100), ("threads", 1, 1024)):
            if not lo <= getattr(self, name) <= hi:
                raise InvalidArgumentError(f"--{name} must be from {lo} to {hi}, got {getattr(self, name)}")
        return variants


def _check_device_present(device: str, variants: list[Variant]) -> None:
    if device == "GPU":
        from ..runtime.backends.openvino_backend import available_devices

        if not any(d.startswith("GPU") for d in available_devices()):
            raise InvalidArgumentError(f"--device GPU: OpenVINO sees no Intel GPU here (devices: "
                                       f"{', '.join(available_devices())}); install the GPU driver (intel-opencl-icd)")
    elif device == "CUDA":
        from ..runtime.backends.onnxruntime_backend import available_providers

        if any(v.engine == "onnx" for v in variants) and "CUDAExecutionProvider" not in available_providers():
            raise InvalidArgumentError("--device CUDA: this onnxruntime has no CUDAExecutionProvider; "
                                       "pip uninstall onnxruntime && pip install onnxruntime-gpu")
        if any(v.engine == "torch" for v in variants):
            import torch

            if not torch.cuda.is_available():
                raise InvalidArgumentError(f"--device CUDA: torch {torch.__version__} sees no CUDA device; install a "
                                           "CUDA build of torch 2.13.0 or leave the torch variants out (--variants)")


# ---------------------------------------------------------------- 1. prepare

def _size_tag(h: int, w: int) -> str:
    return str(h) if h == w else f"{w}x{h}"


def prepare(o: BenchOptions, variants: list[Variant]) -> tuple[dict[str, Path | None], dict]:
    """Paths of every model folder the variants need, keyed by Variant.artifacts; seconds spent making them."""
    from ..quantization import quantize_artifacts

    work, times = Path(o.work), {}
    assert o.height is not None and o.width is not None   # validate() filled them
    work.mkdir(parents=True, exist_ok=True)
    src = Path(o.config)
    ckpt = Path(o.checkpoint) if o.checkpoint else None
    art = None
    if o.config in RELEASE_SIZES:
        ckpt = work / f"{o.config}-random"
        if not (ckpt / "model_index.json").is_file():
            from ..export.random_model import build_release_pipeline, build_tiny_pipeline

            t0 = time.perf_counter()
            if o.config == "tiny":
                build_tiny_pipeline(ckpt, image_size=o.height)
            else:
                build_release_pipeline(o.config, ckpt, seed=0)
            times["build_checkpoint_s"] = time.perf_counter() - t0
    elif (src / C.MANIFEST_FILE).is_file():
        art = src
    elif (src / "model_index.json").is_file():
        ckpt = src
    else:
        raise InvalidArgumentError(f"{src} has neither {C.MANIFEST_FILE} (artifacts) nor model_index.json (diffusers)")
    needs = {v.artifacts for v in variants}
    formats = sorted({C.FORMAT_OPENVINO if v.engine == "openvino" else C.FORMAT_ONNX
                      for v in variants if v.engine != "torch"})
    if "checkpoint" in needs and ckpt is None:
        raise InvalidArgumentError("the PyTorch rows need the diffusers checkpoint: pass --checkpoint DIR, or leave "
                                   "the torch variants out with --variants")
    paths: dict[str, Path | None] = {"checkpoint": ckpt}
    tag = _size_tag(o.height, o.width)
    if art is None and formats:
        assert ckpt is not None   # a release name or a checkpoint folder set it
        art = work / f"{ckpt.name}-artifacts-{tag}"
        have = json.loads((art / C.MANIFEST_FILE).read_text())["formats"] if (art / C.MANIFEST_FILE).is_file() else []
        if not set(formats) <= set(have):
            from ..export import export_pipeline

            t0 = time.perf_counter()
            export_pipeline(ckpt, art, fmt="both", height=o.height, width=o.width, overwrite=True)
            times["export_s"] = time.perf_counter() - t0
    paths["fp32"] = art
    if "fp16" in needs:
        from ..export import export_pipeline

        assert ckpt is not None
        fp16 = paths["fp16"] = work / f"{ckpt.name}-artifacts-{tag}-fp16"
        if not (fp16 / C.MANIFEST_FILE).is_file():
            t0 = time.perf_counter()
            export_pipeline(ckpt, fp16, fmt="onnx", height=o.height, width=o.width, fp16=True, overwrite=True)
            times["export_fp16_s"] = time.perf_counter() - t0
    for v in variants:
        if not v.int8:
            continue
        mode = v.artifacts.split("-", 1)[1]
        fmt = C.FORMAT_OPENVINO if v.engine == "openvino" else C.FORMAT_ONNX
        assert art is not None   # INT8 variants are made from the float export
        groups = [g for g in (o.float_groups or "").split(",") if g] if mode == "mixed" else []
        # a mixed folder is named by its float blocks, so another choice is not served a stale folder
        suffix = "-" + hashlib.sha256(",".join(groups).encode()).hexdigest()[:8] if groups else ""
        q = work / f"{art.name}-{v.artifacts_key}{suffix}"
        if not (q / C.MANIFEST_FILE).is_file():
            t0 = time.perf_counter()
            quantize_artifacts(art, q, mode="full" if mode == "mixed" else mode, formats=[fmt],
                               samples=o.calibration_samples, steps=min(o.calibration_samples, 8), overwrite=True,
                               float_groups=groups)
            times[f"quantize_{fmt}_{mode}_s"] = time.perf_counter() - t0
        paths[v.artifacts_key] = q
    return paths, times


def variant_path(v: Variant, paths: dict) -> Path:
    return paths[v.artifacts_key]


def model_bytes(v: Variant, folder: Path) -> int:
    """Bytes of the weights and graphs a variant loads: the diffusers safetensors, or one format's model files."""
    if v.engine == "torch":
        return sum(p.stat().st_size for part in ("text_encoder", "unet", "vae") for p in (folder / part).glob("*")
                   if p.suffix in (".safetensors", ".bin"))
    names = (C.OV_XML_FILE, C.OV_BIN_FILE) if v.engine == "openvino" else (C.ONNX_FILE, C.ONNX_DATA_FILE)
    return sum((folder / comp / n).stat().st_size for comp in COMPONENTS for n in names
               if (folder / comp / n).is_file())


# ---------------------------------------------------------------- 2. FLOPs and peaks

def count_flops(o: BenchOptions, ckpt: Path | None) -> dict | None:
    if ckpt is None:
        return None
    assert o.height is not None and o.width is not None
    cache = Path(o.work) / f"flops-{ckpt.name}-{_size_tag(o.height, o.width)}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    res = run_worker({"kind": "flops", "checkpoint": str(ckpt), "height": o.height, "width": o.width,
                      "threads": o.threads}, {}, o.timeout_s)
    if "error" not in res:
        cache.write_text(json.dumps(res))
    return res


def measure_peaks(o: BenchOptions) -> dict | None:
    if o.device != "CPU":
        return None
    from .peak import measure

    best: dict[str, Any] = {}
    for size in ((256,) if o.quick else PEAK_SIZES):
        r = measure(size, o.threads, repeat=1 if o.quick else 3)
        for k, p in r["peaks"].items():
            if k not in best or p["gops"] > best[k]["gops"]:
                best[k] = {**p, "size": size}
    return best


# ---------------------------------------------------------------- 3. rounds

def run_worker(spec: dict, env: dict, timeout_s: float) -> dict:
    spec = {**spec, "spawn_time": time.time()}
    try:
        p = subprocess.run([sys.executable, "-m", "ldm3d_edge.bench.worker", json.dumps(spec)],
                           capture_output=True, text=True, timeout=timeout_s, env={**os.environ, **env})
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {timeout_s:.0f} s"}
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        return {"error": f"exit {p.returncode}: " + " | ".join(p.stderr.strip().splitlines()[-3:])}
    return json.loads(lines[-1])


def run_rounds(o: BenchOptions, variants: list[Variant], paths: dict) -> dict[str, list[dict]]:
    caches = Path(o.work) / "compile-cache"
    shutil.rmtree(caches, ignore_errors=True)   # round 1 is the cold start
    runs: dict[str, list[dict]] = {v.name: [] for v in variants}
    bar = tqdm(total=o.repeat * len(variants), desc="bench", unit="run")
    for r in range(o.repeat):
        for v in variants:
            bar.set_postfix_str(f"round {r + 1} {v.name}")
            spec = {"kind": "run", "variant": v.name, "device": o.device, "checkpoint": str(paths["checkpoint"]),
                    "artifacts": str(variant_path(v, paths)), "height": o.height, "width": o.width,
                    "steps": o.steps, "threads": o.threads, "cache_dir": str(caches / v.name), "kernels": r == 0}
            before = cpu_times()
            run = run_worker(spec, v.env, o.timeout_s)
            run["steal_pct"] = steal_pct(before, cpu_times())
            runs[v.name].append(run)
            bar.update()
    bar.close()
    shutil.rmtree(caches, ignore_errors=True)   # the next bench starts cold anyway: 12 GB of blobs at full size
    return runs


# ---------------------------------------------------------------- 4. summarize

def _stats(values: list[float]) -> dict:
    med = statistics.median(values)
    return {"median": med, "min": min(values), "max": max(values), "n": len(values),
            "spread": (max(values) - min(values)) / med if med else 0.0}


def summarize(o: BenchOptions, variants: list[Variant], paths: dict, runs: dict, flops: dict | None,
              peaks: dict | None) -> dict:
    rows: dict[str, dict[str, Any]] = {}
    for v in variants:
        ok = [r for r in runs[v.name] if "error" not in r]
        row: dict[str, Any] = {
            "label": v.label, "engine": v.engine, "precision": v.precision, "float_kind": v.float_kind,
            "speed": v.speed,
            "artifacts": str(variant_path(v, paths)), "model_bytes": model_bytes(v, variant_path(v, paths)),
            "env": v.env, "rounds_ok": len(ok), "errors": [r["error"] for r in runs[v.name] if "error" in r]}
        if ok:
            for k in TIMINGS:
                row[k] = _stats([r[k] for r in ok])
            row["start_cold_s"] = runs[v.name][0].get("ready_s")
            warm = [r["ready_s"] for r in runs[v.name][1:] if "error" not in r]
            row["start_warm_s"] = statistics.median(warm) if warm else None
            row["peak_rss_gb"] = max(r["peak_rss_gb"] for r in ok)
            row["device"] = ok[0]["device"]
            row["unet_kernels"] = next((r["unet_kernels"] for r in ok if "unet_kernels" in r), None)
            steal = [r["steal_pct"] for r in runs[v.name] if r.get("steal_pct") is not None]
            row["steal_pct_max"] = max(steal) if steal else None
            row["flags"] = trust_flags(row, runs[v.name])
        rows[v.name] = row
    ref, _ = ratio_reference(rows)
    for name, row in rows.items():
        if ref is not None and row.get("rounds_ok"):
            row["speedup"] = {k: rows[ref][k]["median"] / row[k]["median"] for k in RATIO_KEYS}
            row["speedup_same_round"] = same_round_ratios(runs[ref], runs[name])
    if flops and "flops" in flops and peaks:
        for v in variants:
            if rows[v.name].get("rounds_ok"):
                rows[v.name]["roofline"] = roofline(v, rows[v.name], flops["flops"], peaks)
    return rows


def roofline(v: Variant, row: dict, flops: dict, peaks: dict) -> dict:
    """Achieved GFLOP/s per part, and its fraction of the peak this variant's arithmetic could reach. A part with
    a share s of its FLOPs in INT8 kernels and the rest in float has the time-weighted peak 1 / (s/P8 + (1-s)/Pf).
    OpenVINO reports s (the compiled model's kernel precisions); ONNX Runtime does not, so its INT8 UNet is held
    to the INT8 peak (s = 1) and its fraction of the float peak (s = 0) is given beside it as the other bound."""
    pf = {"fp32": "FP32", "bf16": "BF16", "fp16": "BF16"}[v.float_kind]
    share, how = 0.0, "float"
    if v.int8:
        if row.get("unet_kernels"):
            share, how = row["unet_kernels"]["int8_flop_share"], "read from the compiled model"
        else:
            share, how = 1.0, "unknown (ONNX Runtime does not report it): held to the INT8 peak"
    out: dict[str, Any] = {"peak_precision": pf, "unet_int8_share": share, "unet_int8_share_source": how}
    calls = {"text_encoder": 2, "unet": 1, "vae_decoder": 1}   # the text encoder runs for prompt and negative
    times = {"text_encoder": "text_encoder_s", "unet": "unet_step_s", "vae_decoder": "vae_decode_s"}
    for part in COMPONENTS:
        s = share if part == "unet" else 0.0
        peak = 1.0 / (s / peaks["INT8"]["gops"] + (1 - s) / peaks[pf]["gops"])
        achieved = calls[part] * flops[part] / row[times[part]]["median"] / 1e9
        out[part] = {"gflops_per_s": achieved, "peak_gops": peak, "fraction_of_peak": achieved / peak}
    if v.int8 and not row.get("unet_kernels"):
        out["unet"]["fraction_of_float_peak"] = out["unet"]["gflops_per_s"] / peaks[pf]["gops"]
    return out


def resummarize(r: dict) -> dict:
    """Rows recomputed from a bench.json's raw runs (e.g. after a change to the summary); same keys as run_bench."""
    o = BenchOptions(**r["options"])
    variants = [variant_named(k) for k in r["variants"]]
    paths: dict[str, Path | None] = {"checkpoint": None}
    for v in variants:
        paths[v.artifacts_key] = Path(r["variants"][v.name]["artifacts"])
    return {**r, "variants": summarize(o, variants, paths, r["runs"], r["flops"], r["peaks"])}


def run_bench(o: BenchOptions) -> dict:
    """Steps 1-4; returns the result dict that report.write_report writes out."""
    variants = o.validate()
    t0 = time.perf_counter()
    paths, prep = prepare(o, variants)
    flops = count_flops(o, paths["checkpoint"])
    before = cpu_times()
    peaks = measure_peaks(o)
    runs = run_rounds(o, variants, paths)
    peaks_after = measure_peaks(o)   # a host that slowed down during the rows shows here
    rows = summarize(o, variants, paths, runs, flops, peaks)
    ref, how = ratio_reference(rows)
    return {"options": {k: v for k, v in asdict(o).items() if k != "timeout_s"},
            "machine": {**machine(), "threads": o.threads},
            "prepare_s": prep, "flops": flops, "peaks": peaks, "peaks_after": peaks_after, "variants": rows,
            "runs": runs, "baseline": BASELINE, "ratio_reference": ref, "ratio_reference_how": how,
            "steal_pct": steal_pct(before, cpu_times()), "trust": run_flags(peaks, peaks_after, runs),
            "seconds": time.perf_counter() - t0}
