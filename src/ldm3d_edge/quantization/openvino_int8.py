"""INT8 OpenVINO IR through NNCF, one function per mode; each takes and returns an ov.Model."""

from __future__ import annotations

# Kept in floating point in `hybrid`: the UNet's first and last convolutions (4 latent channels in and out;
# their error goes straight into the predicted noise).
FLOAT_CONVS = ("conv_in", "conv_out")


def _nncf():
    """nncf, with its per-layer INFO lines silenced (its progress bars stay)."""
    import logging

    import nncf

    nncf.set_log_level(logging.WARNING)
    return nncf


def _names(model, op_type: str, parts: tuple[str, ...]) -> list[str]:
    return [op.get_friendly_name() for op in model.get_ops()
            if op.get_type_name() == op_type and any(f"/{p}/" in op.get_friendly_name() for p in parts)]


def weights_only(model):
    """INT8 weights (per output channel, asymmetric) on every MatMul, Convolution and embedding; activations stay
    floating point, so the model decompresses weights on the fly: smaller and lighter on memory bandwidth."""
    nncf = _nncf()

    return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)


def unet_hybrid(model, dataset: list[dict], subset_size: int):
    """INT8 weights on the convolutions (conv_in/conv_out kept float), INT8 weights and activations on the MatMuls
    and attention, calibrated on recorded UNet inputs."""
    nncf = _nncf()

    float_convs = _names(model, "Convolution", FLOAT_CONVS)
    model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM,
                                  ignored_scope=nncf.IgnoredScope(types=["MatMul", "Gather"], names=float_convs,
                                                                  validate=False))
    return nncf.quantize(model, nncf.Dataset(dataset), model_type=nncf.ModelType.TRANSFORMER,
                         subset_size=min(subset_size, len(dataset)),
                         ignored_scope=nncf.IgnoredScope(types=["Convolution"], validate=False))


def unet_full(model, dataset: list[dict], subset_size: int, float_groups: list[str] | tuple = (), by: str = "block",
              smooth_quant: float | None = None):
    """INT8 weights and activations wherever NNCF can place them (convolutions, MatMuls, attention), except the
    layers of `float_groups` (sensitivity.py's groups), which NNCF's ignored scope keeps float. smooth_quant:
    SmoothQuant's alpha for the MatMuls (-1 off; None NNCF's default for transformers, 0.95)."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters

    from .sensitivity import layers

    nncf = _nncf()
    ignored = nncf.IgnoredScope(names=layers(model, float_groups, by), validate=False) if float_groups else None
    advanced = None if smooth_quant is None else AdvancedQuantizationParameters(
        smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=smooth_quant))
    return nncf.quantize(model, nncf.Dataset(dataset), model_type=nncf.ModelType.TRANSFORMER,
                         subset_size=min(subset_size, len(dataset)), ignored_scope=ignored,
                         advanced_parameters=advanced)


def int8_summary(model) -> dict:
    """What makes a graph INT8: FakeQuantize nodes (activations and weights quantized) and i8/u8 constants
    (compressed weights). Counted on the ov.Model, so a renamed float copy scores zero."""
    fq = sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
    consts = [op for op in model.get_ops() if op.get_type_name() == "Constant"]
    int8 = [c for c in consts if c.get_element_type().get_type_name() in ("i8", "u8")]
    return {"fake_quantize": fq, "int8_constants": len(int8),
            "int8_weight_values": sum(_numel(c) for c in int8)}


def _numel(const) -> int:
    n = 1
    for d in const.get_output_partial_shape(0).to_shape():
        n *= int(d)
    return n


def _shape(port) -> list[int]:
    ps = port.get_partial_shape()
    return [int(d.get_length()) for d in ps] if ps.is_static else []


def kernel_precisions(compiled) -> dict:
    """FLOPs of the compiled model's convolutions and fully-connected/matmul layers, by the precision their
    kernels really compute in, plus the share that runs in i8/u8. Read from OpenVINO's runtime model: the
    element type of each executed layer's activation input (its `runtimePrecision` names the weight type, which
    is u8 for weight-only compression too, though that kernel computes in f32/bf16). Attention fused into
    subgraphs is not attributable and is not counted."""
    totals: dict[str, float] = {}
    layers: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str)
        if kind not in ("Convolution", "FullyConnected", "MatMul"):
            continue
        out = _shape(op.output(0))
        if not out:
            continue
        n_out = 1
        for d in out:
            n_out *= d
        if kind == "Convolution":
            w = _shape(op.input(1).get_source_output()) or _shape(op.input(1))
            reduce = 1
            for d in w[1:]:
                reduce *= d
        else:
            a = _shape(op.input(0))
            reduce = a[-1] if a else 0
        flops = 2.0 * n_out * reduce
        prec = op.input(0).get_element_type().get_type_name()
        totals[prec] = totals.get(prec, 0.0) + flops
        layers[f"{kind}:{prec}"] = layers.get(f"{kind}:{prec}", 0) + 1
    total = sum(totals.values())
    int8 = totals.get("i8", 0.0) + totals.get("u8", 0.0)
    return {"gflops_by_precision": {k: v / 1e9 for k, v in sorted(totals.items())}, "layers": layers,
            "int8_flop_share": int8 / total if total else 0.0}
