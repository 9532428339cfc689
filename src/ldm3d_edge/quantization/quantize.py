"""float artifact folder -> INT8 artifact folder (same layout, so Pipeline.load runs it unchanged).

Modes (OpenVINO through NNCF; ONNX through ONNX Runtime's tools):
    weights  OV: INT8 weights, float activations, every part.      ONNX: dynamic INT8 MatMuls, text encoder + UNet.
    hybrid   OV: UNet convs INT8 weights only (conv_in/conv_out float), MatMuls + attention INT8 weights and
             activations; text encoder and VAE INT8 weights.       ONNX: UNet MatMuls static QDQ S8S8.
    full     OV: UNet fully INT8 (activations and weights, calibrated); text encoder and VAE INT8 weights.
             ONNX: UNet Conv + MatMul static QDQ S8S8.
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

MODES = ("weights", "hybrid", "full")
VAE_CHOICES = ("int8", "float")
VAE_PARTS = (C.VAE_DECODER, C.VAE_ENCODER)


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
    """What happens to one part in one format: 'float', 'weights', 'hybrid', 'full' or 'dynamic'."""
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
                       progress: bool = True) -> dict:
    """Write the INT8 variant of the artifact folder `src` to `out`; returns its manifest.

    Calibration (hybrid, full) runs the float pipeline over the prompts through the runtime and records `samples`
    UNet calls. `out` is written to a temporary sibling and renamed at the end: complete or absent.
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
    prompts = cal.read_prompts(prompts_file)
    t0 = time.perf_counter()

    records: list[dict] = []
    shallow_records: list[dict] = []
    if mode != "weights":
        from ..runtime import Pipeline

        device = "openvino:CPU" if C.FORMAT_OPENVINO in manifest.formats else "onnx:CPU"
        pipe = Pipeline.load(manifest.root, device=device, precision="f32" if device.startswith("openvino") else None)
        records = cal.collect_unet_inputs(pipe, prompts, samples, steps, progress=progress)
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
        jobs = [(comp, fmt) for comp in manifest.components for fmt in formats
                if fmt in manifest.components[comp].formats]
        bar = tqdm(jobs, desc="quantize", unit="part", disable=not progress)
        for comp, fmt in bar:
            plan = _plan(comp, fmt, mode, vae)
            bar.set_postfix_str(f"{comp} {fmt} {plan}")
            (tmp / comp).mkdir(exist_ok=True)
            writer = _write_openvino if fmt == C.FORMAT_OPENVINO else _write_onnx
            summaries.setdefault(comp, {})[fmt] = writer(manifest.model_path(comp, fmt), tmp / comp, plan,
                                                         shallow_records if comp == C.UNET_CACHE_SHALLOW else records)
            plans.setdefault(comp, {})[fmt] = plan
        raw = dict(manifest.raw)
        raw["precision"] = f"int8-{mode}"
        raw["formats"] = formats
        raw["components"] = {c: {**raw["components"][c], "formats": [f for f in formats if f in plans[c]]}
                             for c in plans}
        prompts_bytes = "\n".join(prompts).encode()
        raw["quantization"] = {
            "mode": mode, "vae": vae, "parts": plans, "int8": summaries, "source": str(manifest.root.resolve()),
            "source_precision": manifest.precision,
            "calibration": None if mode == "weights" else {
                "prompts_file": str(Path(prompts_file) if prompts_file else cal.DEFAULT_PROMPTS_FILE.name),
                "prompts": len(prompts), "prompts_sha256": hashlib.sha256(prompts_bytes).hexdigest(),
                "unet_calls": len(records), "steps_per_prompt": steps},
            "versions": _versions(), "seconds": round(time.perf_counter() - t0, 1)}
        from ..export.manifest import file_table

        raw.update(file_table(tmp))
        (tmp / C.MANIFEST_FILE).write_text(json.dumps(raw, indent=2))
    return raw


def _write_openvino(src_xml: Path, folder: Path, plan: str, records: list[dict]) -> dict:
    import openvino as ov

    from . import openvino_int8 as Q

    dst = folder / C.OV_XML_FILE
    if plan == "float":
        shutil.copy2(src_xml, dst)
        shutil.copy2(src_xml.with_suffix(".bin"), dst.with_suffix(".bin"))
        return {"fake_quantize": 0, "int8_constants": 0, "int8_weight_values": 0}
    model = ov.Core().read_model(str(src_xml))
    if plan == "weights":
        model = Q.weights_only(model)
    elif plan == "hybrid":
        model = Q.unet_hybrid(model, records, len(records))
    else:
        model = Q.unet_full(model, records, len(records))
    ov.save_model(model, str(dst), compress_to_fp16=False)
    return Q.int8_summary(model)


def _write_onnx(src_onnx: Path, folder: Path, plan: str, records: list[dict]) -> dict:
    from . import onnx_int8 as Q

    dst = folder / C.ONNX_FILE
    if plan == "float":
        shutil.copy2(src_onnx, dst)
        if (src_onnx.parent / C.ONNX_DATA_FILE).is_file():
            shutil.copy2(src_onnx.parent / C.ONNX_DATA_FILE, folder / C.ONNX_DATA_FILE)
    elif plan == "dynamic":
        Q.dynamic(src_onnx, dst)
    else:
        Q.unet_static(src_onnx, dst, records, plan)
    return Q.int8_summary(dst)
