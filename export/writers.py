"""Writing one graph as ONNX and/or OpenVINO IR."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..runtime import constants as C
from .graphs import Graph

ONNX_OPSET = 17
PROTOBUF_LIMIT = 2 * 1024**3 - 1


def write_onnx(graph: Graph, folder: Path, fp16: bool, stamp: dict) -> Path:
    """Trace `graph` to folder/model.onnx (weights in model.onnx_data when over protobuf's 2 GB)."""
    import onnx
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    raw_dir = folder / ".trace"
    raw_dir.mkdir(exist_ok=True)
    raw = raw_dir / C.ONNX_FILE
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        # The TorchScript exporter: it lowers attention to MatMul/Softmax at opset 17, which every
        # OpenVINO and ONNX Runtime version reads, and handles the SD UNet without graph breaks.
        torch.onnx.export(graph.module, tuple(graph.inputs.values()), str(raw), dynamo=False,
                          input_names=list(graph.inputs), output_names=list(graph.output_names),
                          opset_version=ONNX_OPSET, do_constant_folding=True)
    model = onnx.load(str(raw), load_external_data=True)
    if fp16:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True)
    for key, value in stamp.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = f"ldm3d_edge.{key}", str(value)
    out = folder / C.ONNX_FILE
    onnx.save_model(model, str(out), save_as_external_data=_needs_external_data(model), all_tensors_to_one_file=True,
                    location=C.ONNX_DATA_FILE, size_threshold=1024)
    del model
    for p in raw_dir.iterdir():
        p.unlink()
    raw_dir.rmdir()
    return out


def _needs_external_data(model) -> bool:
    # ByteSize() itself fails on protos over 2 GB, so weigh the initializers (with headroom for the graph).
    weights = sum(len(t.raw_data) for t in model.graph.initializer)
    return weights > PROTOBUF_LIMIT - 64 * 1024**2


def write_openvino(onnx_path: Path, folder: Path, fp16: bool, stamp: dict) -> Path:
    """Convert the ONNX graph to OpenVINO IR (xml + bin); FP32 unless fp16 asks for compressed weights."""
    import openvino as ov

    folder.mkdir(parents=True, exist_ok=True)
    model = ov.convert_model(str(onnx_path))
    for key, value in stamp.items():
        model.set_rt_info(str(value), ["ldm3d_edge", key])
    xml = folder / C.OV_XML_FILE
    ov.save_model(model, str(xml), compress_to_fp16=fp16)
    return xml


def file_size(path: Path) -> int:
    return os.path.getsize(path)
