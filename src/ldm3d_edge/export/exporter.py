"""checkpoint folder -> artifact folder (one folder per part, ONNX and/or OpenVINO IR, manifest.json)."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from tqdm.auto import tqdm

from .. import __version__
from ..runtime import constants as C
from ..runtime.errors import InvalidArgumentError, ModelFolderError
from ..runtime.result import atomic_folder
from .graphs import build_graphs
from .hub import resolve_source
from .manifest import tensor_specs, write_manifest
from .source import check_size, inspect_source, load_torch_parts
from .writers import write_onnx, write_openvino

log = logging.getLogger(__name__)
FORMAT_CHOICES = {"onnx": [C.FORMAT_ONNX], "openvino": [C.FORMAT_OPENVINO], "both": [C.FORMAT_ONNX, C.FORMAT_OPENVINO]}


def export_pipeline(src: str | Path, out: str | Path, fmt: str = "both", height: int | None = None,
                    width: int | None = None, fp16: bool = False, overwrite: bool = False,
                    progress: bool = True, fp16_weights: bool = False, revision: str | None = None,
                    dynamic_batch: bool = False, deepcache_branch: int | None = None,
                    loras: list[str] | None = None, tome: float | None = None) -> dict:
    """Export the diffusers LDM3D folder `src` (or a Hugging Face hub id, at `revision`: export/hub.py) to `out`;
    returns the manifest dict.

    fp16: the graphs compute in float16 (ONNX converted, IR compressed). fp16_weights (OpenVINO IR only): the IR
    stores in float16 every weight that float16 holds exactly (writers.store_exact_fp16) and OpenVINO turns them
    back to float32 when it compiles, so the computation is exactly the FP32 export's; half the size on disk when
    the checkpoint's weights are float16 already (the embedded model's are), little saved otherwise.
    dynamic_batch: the ONNX UNet takes batch 1 as well as 2 (unguided steps: guidance cut-off, guidance <= 1);
    the OpenVINO IR stays static at batch 2, as OpenVINO reshapes it at load time anyway.
    deepcache_branch: also write the two UNet graphs feature caching runs (export/deepcache.py), split at this
    DeepCache branch (0 = the shallowest); the plain UNet graph is written as always.
    loras: "FILE" or "FILE:SCALE" each, fused into the UNet and text encoder before tracing (export/lora.py).
    tome: token merging ratio, folded into the UNet's full-resolution self-attentions (export/tome.py).

    The export is written to a temporary sibling folder and renamed into place at the end, so `out`
    is either complete or absent, never half-written.
    """
    if fmt not in FORMAT_CHOICES:
        raise InvalidArgumentError(f"unknown format {fmt!r}; choose one of {', '.join(FORMAT_CHOICES)}")
    formats = FORMAT_CHOICES[fmt]
    if fp16_weights and (fp16 or C.FORMAT_ONNX in formats):
        raise InvalidArgumentError("fp16 weights (--fp16-weights) are an OpenVINO IR storage option: use it with "
                                   "--format openvino and without --fp16")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InvalidArgumentError(f"output folder {out} exists and is not empty (pass overwrite=True / --overwrite)")
    from .lora import LoraSpec
    from .tome import check_ratio

    lora_specs = [LoraSpec.parse(text) for text in loras or []]   # a missing file fails before any work
    if tome is not None:
        try:
            check_ratio(tome)
        except ValueError as e:
            raise InvalidArgumentError(str(e)) from None
    path, hub = resolve_source(src, revision)
    source = inspect_source(path)
    source.hub = hub
    height = source.default_size if height is None else height
    width = source.default_size if width is None else width
    check_size(height, width, source.vae_scale_factor)

    t0 = time.perf_counter()
    unet, vae, text_encoder = load_torch_parts(source)
    lora_info = None
    if lora_specs:
        from .lora import fuse_loras

        lora_info = fuse_loras(source.path, unet, vae, text_encoder, lora_specs)
    tome_info = None
    if tome is not None:
        from .tome import apply_tome

        scale = source.vae_scale_factor
        tome_info = apply_tome(unet, tome, (height // scale, width // scale))
    text_length = int(getattr(text_encoder.config, "max_position_embeddings", 77))
    if deepcache_branch is not None:
        from .deepcache import branch_of

        try:
            branch_of(unet, deepcache_branch)
        except ValueError as e:
            raise InvalidArgumentError(str(e)) from None
    graphs = build_graphs(unet, vae, text_encoder, height, width, text_length=text_length,
                          deepcache_branch=deepcache_branch)
    precision = "fp16" if fp16 else "fp32"
    stamp = {"version": __version__, "source": source.path.name, "precision": precision,
             "height": height, "width": width}

    components: dict[str, dict] = {}
    with atomic_folder(out) as tmp:
        bar = tqdm(graphs, desc="export", unit="part", disable=not progress)
        for graph in bar:
            bar.set_postfix_str(graph.component)
            folder = tmp / graph.component
            onnx_dir = folder if C.FORMAT_ONNX in formats else tmp / ".onnx" / graph.component
            onnx_path = write_onnx(graph, onnx_dir, fp16=fp16, stamp=stamp, dynamic_batch=dynamic_batch)
            inputs, outputs = tensor_specs(onnx_path)
            if C.FORMAT_OPENVINO in formats:
                write_openvino(onnx_path, folder, fp16=fp16, stamp=stamp, fp16_weights=fp16_weights,
                               static_shapes={k: tuple(v.shape) for k, v in graph.inputs.items()})
            components[graph.component] = {"inputs": inputs, "outputs": outputs, "formats": formats}
            log.info("exported %s in %.1fs", graph.component, time.perf_counter() - t0)
        shutil.rmtree(tmp / ".onnx", ignore_errors=True)
        _copy_tokenizer(source.path / C.TOKENIZER_DIR, tmp / C.TOKENIZER_DIR)
        (tmp / C.SCHEDULER_DIR).mkdir()
        shutil.copy2(source.path / C.SCHEDULER_DIR / C.SCHEDULER_CONFIG_FILE, tmp / C.SCHEDULER_DIR)
        for name in (C.CALIBRATION_PROMPTS_FILE, C.PROMPT_COMPLETION_FILE):
            if (source.path / name).is_file():
                shutil.copy2(source.path / name, tmp / name)
        if source.pipeline == C.PIPELINE_UPSCALE:
            (tmp / C.LOW_RES_SCHEDULER_DIR).mkdir()
            shutil.copy2(source.path / C.LOW_RES_SCHEDULER_DIR / C.SCHEDULER_CONFIG_FILE, tmp / C.LOW_RES_SCHEDULER_DIR)
        manifest = write_manifest(tmp, source, height, width, precision, formats, components, text_length,
                                  weights="fp16" if fp16 else "fp16-lossless" if fp16_weights else precision,
                                  unet_batches=(1, 2) if dynamic_batch and C.FORMAT_ONNX in formats else (2,),
                                  deepcache_branch=deepcache_branch, lora=lora_info,
                                  tome=tome_info)
    manifest["export_seconds"] = round(time.perf_counter() - t0, 2)
    return manifest


def _copy_tokenizer(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True)
    names = (C.VOCAB_FILE, C.MERGES_FILE, C.TOKENIZER_JSON, C.TOKENIZER_CONFIG_FILE, C.SPECIAL_TOKENS_FILE)
    copied = [n for n in names if (src / n).is_file() and shutil.copy2(src / n, dst / n)]
    if not copied:
        raise ModelFolderError(f"no tokenizer files in {src}")
