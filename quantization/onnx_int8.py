"""INT8 ONNX through ONNX Runtime's quantization tools: static QDQ (S8S8) with calibration for the UNet,
dynamic INT8 for the text encoder."""

from __future__ import annotations

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


def unet_static(src: Path, dst: Path, records: list[dict], mode: str) -> None:
    """hybrid: MatMuls (projections, attention, feed-forward) in INT8, convolutions float.
    full: every Conv and MatMul in INT8. Both S8S8 QDQ, per-channel weights, MinMax calibration."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    ops = ["MatMul"] if mode == "hybrid" else ["Conv", "MatMul"]
    quantize_static(str(src), str(dst), _reader(records), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=ops,
                    use_external_data_format=_big(src), extra_options={"ActivationSymmetric": True})


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
