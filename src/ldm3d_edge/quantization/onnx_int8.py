"""INT8 ONNX through ONNX Runtime's quantization tools: static QDQ (S8S8) with calibration for the UNet,
dynamic INT8 for the text encoder."""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path


def _reader(records: list[dict]):
    """A CalibrationDataReader over recorded UNet inputs."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(records)

        def get_next(self):
            return next(self._it, None)

    return Reader()


def _big(path: Path) -> bool:
    return (path.parent / "model.onnx_data").is_file() or path.stat().st_size > 1_500_000_000


def unet_static(src: Path, dst: Path, records: list[dict], mode: str, float_groups: list[str] | tuple = ()) -> None:
    """hybrid: MatMuls (projections, attention, feed-forward) in INT8, convolutions float.
    full: every Conv and MatMul in INT8. Both S8S8 QDQ, per-channel weights, MinMax calibration. The nodes of
    `float_groups` (sensitivity.py's groups, read off the node names) are excluded from QDQ."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from .sensitivity import group_of

    ops = ["MatMul"] if mode == "hybrid" else ["Conv", "MatMul"]
    wanted = set(float_groups)
    exclude = [n.name for n in onnx.load(str(src), load_external_data=False).graph.node
               if wanted and n.op_type in ops and group_of(n.name) in wanted]
    with tempfile.TemporaryDirectory(prefix="ldm3d-ort-calib-", dir=dst.parent) as tmp:
        cache = Path(tmp) / "ranges.json"
        _calibrate(src, ops, records, Path(tmp), cache)
        quantize_static(str(src), str(dst), None, quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=ops,
                        use_external_data_format=_big(src), calibration_cache_path=str(cache),
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude,
                        extra_options={"ActivationSymmetric": True})


def _calibrate(src: Path, ops: list[str], records: list[dict], tmp: Path, cache: Path) -> None:
    """ONNX Runtime's MinMax calibration, run so that the full-size UNet fits in memory, its ranges written to the
    calibration cache that quantize_static then reads. quantize_static's own calibration held the model three
    times and ran it through a memory arena: past 24 GB for the 3.4 GB UNet at 512x512, killed. Here the
    augmented graph's weights go to disk before the session opens, and the session runs without the arena and
    memory pattern (the unfused attention scores are 1 GB each): 20 GB peak, measured."""
    import onnxruntime as ort
    from onnxruntime.quantization.calibrate import MinMaxCalibrater, save_tensors_data

    calibrator = MinMaxCalibrater(src, ops, str(tmp / "augmented.onnx"), use_external_data_format=_big(src))
    calibrator.augment_graph()
    calibrator.model = None   # saved with the augmented graph; the session reads the weights from there
    gc.collect()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL   # keep every calibrated tensor
    opts.enable_cpu_mem_arena = False
    opts.enable_mem_pattern = False
    calibrator.infer_session = ort.InferenceSession(calibrator.augmented_model_path, sess_options=opts,
                                                    providers=["CPUExecutionProvider"])
    calibrator.collect_data(_reader(records))
    save_tensors_data(calibrator.compute_data(), cache)


def dynamic(src: Path, dst: Path) -> None:
    """INT8 weights, activations quantized per call (MatMul only: ONNX Runtime's dynamic Conv is slow)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                     use_external_data_format=_big(src))


def int8_summary(path: Path) -> dict:
    """QuantizeLinear / DequantizeLinear / dynamic-quantization nodes and INT8 initializers in the graph."""
    import onnx
    from onnx import TensorProto

    model = onnx.load(str(path), load_external_data=False)
    ops = [n.op_type for n in model.graph.node]
    int8 = [t for t in model.graph.initializer if t.data_type in (TensorProto.INT8, TensorProto.UINT8)]
    return {"quantize_linear": ops.count("QuantizeLinear"), "dequantize_linear": ops.count("DequantizeLinear"),
            "dynamic_quantize": ops.count("DynamicQuantizeLinear") + ops.count("MatMulInteger"),
            "int8_initializers": len(int8)}
