"""float artifact folder -> INT8 artifact folder (same layout, so Pipeline.load runs it unchanged).

Modes (OpenVINO through NNCF; ONNX through ONNX Runtime's tools):
    weights  OV: INT8 weights, float activations, every part.      ONNX: dynamic INT8 MatMuls, text encoder + UNet.
    hybrid   OV: UNet convs INT8 weights only (conv_in/conv_out float), MatMuls + attention INT8 weights and
             activations; text encoder and VAE INT8 weights.       ONNX: UNet MatMuls static QDQ S8S8.
    full     OV: UNet fully INT8 (activations and weights, calibrated); text encoder and VAE INT8 weights.
             ONNX: UNet Conv + MatMul static QDQ S8S8.
    auto     OV: the fastest UNet that keeps the depth within max_depth_error of the float model's (auto.py: full,
             else the sensitivity report's worst groups float, or NNCF's accuracy control; measured through the
             pipeline); the rest as full. ONNX: full with the same groups' nodes excluded from QDQ.
ONNX keeps the VAE in float in every mode, and so does OpenVINO with vae="float". DeepCache's two UNet graphs,
where the folder has them, are quantized as the UNet is.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..runtime import constants as C
from ..runtime.errors import InvalidArgumentError
from ..runtime.manifest import read_manifest
from ..runtime.result import atomic_folder
from . import calibration as cal

MODES = ("weights", "hybrid", "full", "auto")
# what auto mode judges by: the calibration list's first prompts x seeds. The depth error of one sample swings
# with its seed: a check of 8 samples misjudged a choice by half (benchmarks/results/int8-depth), one of 24 read
# 0.029 for a choice that held out at 0.057, one of 48 read 0.027 for 0.043 (benchmarks/results/int8-depth-amx)
CHECK_PROMPTS, CHECK_SEEDS = 12, 4
# the share of --max-depth-error auto's check must meet: 2/3 leaves the chosen model's error on other prompts,
# 1.5x what the check read on the embedded model, under the bound (auto.py)
CHECK_MARGIN = 2 / 3
VAE_CHOICES = ("int8", "float")
VAE_PARTS = (C.VAE_DECODER, C.VAE_ENCODER)


def check_bounds(max_depth_error: float, check_margin: float) -> None:
    """auto's bound and margin, or one line saying what is allowed."""
    if not 0 < max_depth_error < 1:
        raise InvalidArgumentError(f"--max-depth-error must be between 0 and 1 (a mean depth AbsRel), "
                                   f"got {max_depth_error}")
    if not 0 < check_margin <= 1:
        raise InvalidArgumentError(f"--check-margin must be above 0 and at most 1 (the share of --max-depth-error "
                                   f"the check must meet), got {check_margin}")


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for name in ("nncf", "openvino", "onnxruntime", "onnx"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def _plan(component: str, fmt: str, mode: str, vae: str) -> str:
    """What happens to one part in one format: 'float', 'weights', 'hybrid', 'full', 'auto' or 'dynamic'."""
    if component in VAE_PARTS and (vae == "float" or fmt == C.FORMAT_ONNX):
        return "float"
    if component in (C.UNET, *C.CACHE_COMPONENTS) and mode != "weights":
        return mode
    if fmt == C.FORMAT_ONNX:
        return "dynamic"
    return "weights"


def quantize_artifacts(src: str | Path, out: str | Path, mode: str = "hybrid", formats: list[str] | None = None,
                       prompts_file: str | Path | None = None, samples: int = cal.DEFAULT_SAMPLES,
                       steps: int = cal.DEFAULT_STEPS, vae: str = "int8", overwrite: bool = False,
                       progress: bool = True, speed: str | None = None, max_depth_error: float = 0.03,
                       check_prompts: int = CHECK_PROMPTS, check_steps: int | None = None,
                       check_seeds: int = CHECK_SEEDS, accuracy_control: bool = False,
                       float_groups: list[str] | None = None, smooth_quant: float | None = None,
                       check_margin: float | None = None) -> dict:
    """Write the INT8 variant of the artifact folder `src` to `out`; returns its manifest.

    Calibration (hybrid, full, auto) runs the float pipeline over the prompts through the runtime and records
    `samples` UNet calls, with speed preset `speed`'s sampler and steps when given. auto judges candidates on the
    first `check_prompts` prompts x `check_seeds` seeds at `check_steps` (default: the calibration's), and keeps
    one only if the check reads at most `check_margin` x `max_depth_error` (default CHECK_MARGIN), trying
    NNCF's accuracy control too with `accuracy_control`. full mode: `float_groups` (sensitivity.py's UNet
    blocks) stay float, and `smooth_quant` sets NNCF's SmoothQuant alpha for MatMuls (-1: off; default NNCF's
    0.95). `out` is written to a temporary sibling and renamed at the end: complete or absent.
    """
    if mode not in MODES:
        raise InvalidArgumentError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if vae not in VAE_CHOICES:
        raise InvalidArgumentError(f"unknown VAE precision {vae!r}; choose one of {', '.join(VAE_CHOICES)}")
    manifest = read_manifest(src)
    if manifest.precision.startswith("int8"):
        raise InvalidArgumentError(f"{src} is already quantized ({manifest.precision}); quantize a float export")
    formats = list(formats or manifest.formats)
    bad = [f for f in formats if f not in manifest.formats]
    if bad:
        raise InvalidArgumentError(f"{src} has no {', '.join(bad)} artifacts (it has {', '.join(manifest.formats)})")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InvalidArgumentError(f"output folder {out} exists and is not empty (pass overwrite=True / --overwrite)")
    if out.resolve() == manifest.root.resolve():
        raise InvalidArgumentError("the output folder must differ from the input folder")
    if mode == "auto":      # before calibration, not minutes later in the search
        check_bounds(max_depth_error, CHECK_MARGIN if check_margin is None else check_margin)
    if mode == "auto" and C.FORMAT_OPENVINO not in formats:
        raise InvalidArgumentError("--mode auto judges candidates through OpenVINO: quantize a folder with the "
                                   "OpenVINO IR (ONNX then gets the same float layers)")
    own_prompts = cal.model_prompts_file(manifest.root)
    prompts_file = prompts_file or own_prompts
    prompts = cal.read_prompts(prompts_file)
    call, steps = _preset_call(speed, manifest, steps)
    t0 = time.perf_counter()

    records: list[dict] = []
    shallow_records: list[dict] = []
    auto_record: dict | None = None
    unet_model = None
    kept_float = list(float_groups or [])
    if mode != "weights":
        from ..runtime import Pipeline

        device = "openvino:CPU" if C.FORMAT_OPENVINO in manifest.formats else "onnx:CPU"
        pipe = Pipeline.load(manifest.root, device=device, precision="f32" if device.startswith("openvino") else None)
        records = cal.collect_unet_inputs(pipe, prompts, samples, steps, progress=progress, call=call)
        if mode == "auto":
            unet_model, auto_record = _auto_unet(pipe, records, prompts, call, max_depth_error, check_prompts,
                                                 check_seeds, check_steps or steps, progress, accuracy_control,
                                                 check_margin)
            kept_float = auto_record["float_groups"]
        if pipe.unet_cache is not None:
            # DeepCache's graphs calibrate on the same UNet inputs; the shallow one also on the float full graph's
            # feature for each of them, what it is given at run time
            m, full = pipe.manifest, pipe.unet_cache[0]
            shallow_records = [{**r, C.UNET_CACHE_FEATURE: full(r[C.UNET_SAMPLE], r[C.UNET_TIMESTEP],
                                                                r[C.UNET_ENCODER_HIDDEN_STATES], m.height, m.width,
                                                                r.get(C.UNET_CLASS_LABELS))[1]} for r in records]
        del pipe

    plans: dict[str, Any] = {}
    summaries: dict[str, Any] = {}
    with atomic_folder(out) as tmp:
        for name in (C.TOKENIZER_DIR, C.SCHEDULER_DIR):
            shutil.copytree(manifest.root / name, tmp / name)
        if own_prompts:
            shutil.copy2(own_prompts, tmp / C.CALIBRATION_PROMPTS_FILE)
        if (manifest.root / C.PROMPT_COMPLETION_FILE).is_file():   # the model's caption grammar stays with it
            shutil.copy2(manifest.root / C.PROMPT_COMPLETION_FILE, tmp / C.PROMPT_COMPLETION_FILE)
        jobs = [(comp, fmt) for comp in manifest.components for fmt in formats
                if fmt in manifest.components[comp].formats]
        bar = tqdm(jobs, desc="quantize", unit="part", disable=not progress)
        for comp, fmt in bar:
            plan = _plan(comp, fmt, mode, vae)
            bar.set_postfix_str(f"{comp} {fmt} {plan}")
            (tmp / comp).mkdir(exist_ok=True)
            writer = _write_openvino if fmt == C.FORMAT_OPENVINO else _write_onnx
            summaries.setdefault(comp, {})[fmt] = writer(
                manifest.model_path(comp, fmt), tmp / comp, plan,
                shallow_records if comp == C.UNET_CACHE_SHALLOW else records,
                float_groups=kept_float,
                chosen=unet_model if comp == C.UNET else None, smooth_quant=smooth_quant)
            plans.setdefault(comp, {})[fmt] = plan
        raw = dict(manifest.raw)
        raw["precision"] = f"int8-{mode}"
        raw["formats"] = formats
        raw["components"] = {c: {**raw["components"][c], "formats": [f for f in formats if f in plans[c]]}
                             for c in plans}
        prompts_bytes = "\n".join(prompts).encode()
        raw["quantization"] = {
            "mode": mode, "vae": vae, "parts": plans, "float_groups": kept_float,
            "smooth_quant_alpha": smooth_quant, "int8": summaries, "source": str(manifest.root.resolve()),
            "source_precision": manifest.precision,
            "calibration": None if mode == "weights" else {
                "prompts_file": str(Path(prompts_file) if prompts_file else cal.DEFAULT_PROMPTS_FILE.name),
                "prompts": len(prompts), "prompts_sha256": hashlib.sha256(prompts_bytes).hexdigest(),
                "unet_calls": len(records), "steps_per_prompt": steps,
                "speed": speed, "sampler": call.get("scheduler") or "the folder's",
                "timesteps": sorted({int(r[C.UNET_TIMESTEP].ravel()[0]) for r in records})},
            "auto": auto_record,
            "versions": _versions(), "seconds": round(time.perf_counter() - t0, 1)}
        from ..export.manifest import file_table

        raw.update(file_table(tmp))
        (tmp / C.MANIFEST_FILE).write_text(json.dumps(raw, indent=2))
    return raw


def sensitivity_report(src: str | Path, out: str | Path, prompts_file: str | Path | None = None,
                       samples: int = cal.DEFAULT_SAMPLES, steps: int = cal.DEFAULT_STEPS, speed: str | None = None,
                       check_prompts: int = CHECK_PROMPTS, check_steps: int | None = None,
                       check_seeds: int = CHECK_SEEDS, by: str = "block", progress: bool = True) -> dict:
    """Rank the UNet's groups by the depth error each causes quantized alone (sensitivity.py); writes
    OUT/sensitivity.json and .md."""
    from .sensitivity import report_folder

    manifest = read_manifest(src)
    if C.FORMAT_OPENVINO not in manifest.formats:
        raise InvalidArgumentError(f"{src} has no OpenVINO IR: the sensitivity report quantizes through NNCF's "
                                   "OpenVINO backend")
    if manifest.precision.startswith("int8"):
        raise InvalidArgumentError(f"{src} is already quantized ({manifest.precision}); use the float export")
    call, steps = _preset_call(speed, manifest, steps)
    prompts = cal.read_prompts(prompts_file or cal.model_prompts_file(manifest.root))
    return report_folder(manifest.root, out, prompts, samples, steps, call, check_prompts,
                         check_seeds, check_steps or steps, by, progress)


def _preset_call(speed: str | None, manifest, steps: int) -> tuple[dict, int]:
    """A speed preset's Pipeline.__call__ arguments for calibration, and the steps per prompt: the preset's
    (None: the plain call at `steps`)."""
    if speed is None:
        return {}, steps
    from ..runtime.presets import speed_settings

    call, _ = speed_settings(speed, manifest)
    call = {k: v for k, v in call.items() if v is not None}
    return call, int(call.get("num_inference_steps", steps))


def _auto_unet(pipe, records: list[dict], prompts: list[str], call: dict, max_depth_error: float,
               check_prompts: int, check_seeds: int, check_steps: int, progress: bool, accuracy_control: bool,
               check_margin: float | None = None):
    """auto mode's UNet: the search in auto.py over the depth check on the first prompts."""
    import openvino as ov

    from . import auto
    from .sensitivity import check_for

    check = check_for(pipe, prompts[:check_prompts], check_seeds, check_steps, call)
    model = ov.Core().read_model(str(pipe.unet.path))
    chosen, record = auto.search(model, records, check, max_depth_error, use_accuracy_control=accuracy_control,
                                 progress=progress,
                                 check_margin=CHECK_MARGIN if check_margin is None else check_margin)
    return chosen.model, record


def _write_openvino(src_xml: Path, folder: Path, plan: str, records: list[dict], float_groups: list[str],
                    chosen=None, smooth_quant: float | None = None) -> dict:
    import openvino as ov

    from . import openvino_int8 as Q

    dst = folder / C.OV_XML_FILE
    if plan == "float":
        shutil.copy2(src_xml, dst)
        shutil.copy2(src_xml.with_suffix(".bin"), dst.with_suffix(".bin"))
        return {"fake_quantize": 0, "int8_constants": 0, "int8_weight_values": 0}
    model = ov.Core().read_model(str(src_xml))
    if chosen is not None:
        model = chosen
    elif plan == "weights":
        model = Q.weights_only(model)
    elif plan == "hybrid":
        model = Q.unet_hybrid(model, records, len(records))
    else:     # full; and auto's DeepCache graphs: the chosen groups float, the rest full
        model = Q.unet_full(model, records, len(records), float_groups, smooth_quant=smooth_quant)
    ov.save_model(model, str(dst), compress_to_fp16=False)
    return Q.int8_summary(model)


def _write_onnx(src_onnx: Path, folder: Path, plan: str, records: list[dict], float_groups: list[str],
                chosen=None, smooth_quant: float | None = None) -> dict:
    from . import onnx_int8 as Q

    dst = folder / C.ONNX_FILE
    if plan == "float":
        shutil.copy2(src_onnx, dst)
        if (src_onnx.parent / C.ONNX_DATA_FILE).is_file():
            shutil.copy2(src_onnx.parent / C.ONNX_DATA_FILE, folder / C.ONNX_DATA_FILE)
    elif plan == "dynamic":
        Q.dynamic(src_onnx, dst)
    else:
        Q.unet_static(src_onnx, dst, records, "full" if plan == "auto" else plan, float_groups)
    return Q.int8_summary(dst)
