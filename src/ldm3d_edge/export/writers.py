"""Writing one graph as ONNX and/or OpenVINO IR."""

from __future__ import annotations

import warnings
from pathlib import Path

from ..runtime import constants as C
from .graphs import Graph

ONNX_OPSET = 17
PROTOBUF_LIMIT = 2 * 1024**3 - 1
BATCH_DIM = "batch"


def write_onnx(graph: Graph, folder: Path, fp16: bool, stamp: dict, dynamic_batch: bool = False) -> Path:
    """Trace `graph` to folder/model.onnx (weights in model.onnx_data when over protobuf's 2 GB).

    The trace treats image height/width as symbolic, so the graph computes its internal reshapes from the
    input shape; then every input and output is pinned to the static export shape. The result is a static
    model that OpenVINO can still reshape to another resolution, and a batched graph to another batch, at load
    time. dynamic_batch (batched graphs only): the batch stays symbolic ("batch") in the saved ONNX too, so ONNX
    Runtime runs the UNet at batch 1 as well as 2 from one file and one copy of the weights.
    """
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
        spatial = {name: {x.dim() - 2: f"{name}_height", x.dim() - 1: f"{name}_width"}
                   for name, x in graph.inputs.items() if x.dim() == 4}
        spatial.update({name: {len(s) - 2: f"{name}_height", len(s) - 1: f"{name}_width"}
                        for name, s in graph.outputs.items() if len(s) == 4})
        if graph.batched:
            # traced symbolically even when pinned below, so the graph computes its reshapes from the input's
            # batch and OpenVINO can reshape the saved model to batch 1 (unguided steps)
            for name in [*graph.inputs, *graph.outputs]:
                spatial.setdefault(name, {})[0] = BATCH_DIM
        batch = dynamic_batch and graph.batched
        torch.onnx.export(graph.module, tuple(graph.inputs.values()), str(raw), dynamo=False,
                          input_names=list(graph.inputs), output_names=list(graph.output_names),
                          opset_version=ONNX_OPSET, do_constant_folding=True, dynamic_axes=spatial)
    model = onnx.load(str(raw), load_external_data=True)
    _pin_shapes(model.graph.input, {k: tuple(v.shape) for k, v in graph.inputs.items()}, batch)
    _pin_shapes(model.graph.output, graph.outputs, batch)
    if fp16:
        from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

        # Resize takes its scales as float32 only; keep it (and the ops ORT lists as unsafe) in float32.
        model = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True,
                                         op_block_list=list(DEFAULT_OP_BLOCK_LIST) + ["Resize"])
        _float32_resize_params(model)
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


def _float32_resize_params(model) -> None:
    """The float16 converter also converts the Constant nodes that feed Resize's roi/scales, which must
    stay float32; turn those back."""
    import numpy as np
    from onnx import TensorProto, numpy_helper

    constants = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant"}
    for node in model.graph.node:
        if node.op_type != "Resize":
            continue
        for name in node.input[1:3]:
            const = constants.get(name)
            if const is None:
                continue
            for attr in const.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT16:
                    attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float32),
                                                            attr.t.name))


def _pin_shapes(values, shapes: dict, symbolic_batch: bool = False) -> None:
    for v in values:
        if v.name not in shapes:
            continue
        dims = v.type.tensor_type.shape.dim
        del dims[:]
        for i, size in enumerate(shapes[v.name]):
            if i == 0 and symbolic_batch:
                dims.add().dim_param = BATCH_DIM
            else:
                dims.add().dim_value = int(size)


def _needs_external_data(model) -> bool:
    # ByteSize() itself fails on protos over 2 GB, so weigh the initializers (with headroom for the graph).
    weights = sum(len(t.raw_data) for t in model.graph.initializer)
    return weights > PROTOBUF_LIMIT - 64 * 1024**2


def write_openvino(onnx_path: Path, folder: Path, fp16: bool, stamp: dict, fp16_weights: bool = False,
                   static_shapes: dict | None = None) -> Path:
    """Convert the ONNX graph to OpenVINO IR (xml + bin); FP32 unless fp16 asks for compressed weights, or
    fp16_weights for the lossless storage of store_exact_fp16. static_shapes: the input shapes the IR is saved
    at when the ONNX graph has a symbolic batch (OpenVINO reshapes to batch 1 at load time; a static IR compiles
    to faster kernels than a dynamic one)."""
    import openvino as ov

    folder.mkdir(parents=True, exist_ok=True)
    model = ov.convert_model(str(onnx_path))
    if static_shapes and any(not p.get_partial_shape().is_static for p in model.inputs):
        model.reshape({k: list(v) for k, v in static_shapes.items()})
    for key, value in stamp.items():
        model.set_rt_info(str(value), ["ldm3d_edge", key])
    if fp16_weights and not fp16:
        store_exact_fp16(model)
    xml = folder / C.OV_XML_FILE
    ov.save_model(model, str(xml), compress_to_fp16=fp16)
    return xml


def store_exact_fp16(model, min_size: int = 16) -> int:
    """Store every float32 constant that float16 holds exactly as a float16 constant and a Convert back to float32
    (the decompression pattern OpenVINO's own compression writes), leaving all others float32; the number moved.

    Why not save_model(compress_to_fp16=True): it also rounds the constants that are not weights, e.g. the
    UNet's sinusoidal timestep frequencies and the text encoder's folded constants, and its per-node opt-out is
    not reachable from Python. Rounding the 32 frequencies moved the embedded model's depth by up to 0.16 at 12
    steps; this storage computes exactly what the FP32 IR does (max abs difference 0.0 per part, tested), and
    is as small when the checkpoint's weights are float16 already."""
    import numpy as np
    import openvino as ov
    from openvino import opset13 as ops

    moved = 0
    for op in list(model.get_ops()):
        if op.get_type_name() != "Constant" or op.get_element_type() != ov.Type.f32:
            continue
        data = op.get_data()
        if data.size < min_size:
            continue
        with np.errstate(over="ignore"):
            half = data.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), data):
            continue
        decompressed = ops.convert(ops.constant(half), ov.Type.f32)
        for target in list(op.output(0).get_target_inputs()):
            target.replace_source_output(decompressed.output(0))
        moved += 1
    model.validate_nodes_and_infer_types()
    return moved
