"""The rows of `ldm3d bench`: which model files each variant runs, on which engine, in which precision.

A variant names an artifact kind (the float export, or one of its INT8 folders), the engine that runs it and the
arithmetic its kernels use, which is what the roofline compares it with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# glibc malloc tuned for large tensors: no mmap for big blocks and no trimming, so PyTorch reuses heap pages
# instead of mapping, faulting in and unmapping fresh ones on every large allocation (docs/benchmarks.md has the
# page-fault counts and step times).
MALLOC_TUNED = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}


@dataclass(frozen=True)
class Variant:
    name: str
    engine: str                 # "torch" (diffusers), "openvino", "onnx"
    artifacts: str              # "checkpoint", "fp32", "fp16", "int8-hybrid", "int8-full", "int8-mixed"
    precision: str | None       # OpenVINO inference precision hint; torch: "f32" or "bf16" (autocast)
    float_kind: str             # arithmetic of the float layers: "fp32", "bf16" or "fp16"
    label: str
    env: dict = field(default_factory=dict)
    devices: tuple[str, ...] = ("CPU",)
    speed: str | None = None    # a speed preset (runtime/presets.py) for the end-to-end run instead of --steps

    @property
    def int8(self) -> bool:
        return self.artifacts.startswith("int8")

    @property
    def artifacts_key(self) -> str:
        """Which prepared folder it runs: ONNX INT8 folders are separate from the OpenVINO ones of that mode."""
        return f"{self.artifacts}-onnx" if self.engine == "onnx" and self.int8 else self.artifacts


VARIANTS = {v.name: v for v in (
    Variant("torch", "torch", "checkpoint", "f32", "fp32", "diffusers PyTorch FP32", devices=("CPU", "CUDA")),
    Variant("torch-malloc", "torch", "checkpoint", "f32", "fp32", "diffusers PyTorch FP32, malloc tuned",
            env=MALLOC_TUNED),
    Variant("torch-bf16", "torch", "checkpoint", "bf16", "bf16", "diffusers PyTorch bf16 autocast"),
    Variant("torch-fp16", "torch", "checkpoint", "f16", "fp16", "diffusers PyTorch fp16", devices=("CUDA",)),
    Variant("ov-fp32", "openvino", "fp32", "f32", "fp32", "OpenVINO FP32", devices=("CPU", "GPU")),
    Variant("ov-bf16", "openvino", "fp32", "bf16", "bf16", "OpenVINO BF16"),
    Variant("ov-fp16", "openvino", "fp32", "f16", "fp16", "OpenVINO FP16", devices=("GPU",)),
    Variant("ov-int8-hybrid", "openvino", "int8-hybrid", "bf16", "bf16", "OpenVINO INT8 hybrid (rest bf16)"),
    Variant("ov-int8-full", "openvino", "int8-full", "bf16", "bf16", "OpenVINO INT8 full (rest bf16)"),
    Variant("ov-int8-mixed", "openvino", "int8-mixed", "bf16", "bf16",
            "OpenVINO INT8 full, sensitive blocks float (rest bf16)"),
    Variant("ov-int8-hybrid-gpu", "openvino", "int8-hybrid", "f16", "fp16", "OpenVINO INT8 hybrid (rest f16)",
            devices=("GPU",)),
    Variant("ort-fp32", "onnx", "fp32", None, "fp32", "ONNX Runtime FP32", devices=("CPU", "CUDA")),
    Variant("ort-fp16", "onnx", "fp16", None, "fp16", "ONNX Runtime FP16", devices=("CUDA",)),
    Variant("ort-int8", "onnx", "int8-full", None, "fp32", "ONNX Runtime INT8 QDQ (Conv + MatMul)"),
)}

DEFAULT_VARIANTS = {
    "CPU": ["torch", "torch-malloc", "torch-bf16", "ov-fp32", "ov-bf16", "ov-int8-hybrid", "ov-int8-full",
            "ort-fp32", "ort-int8"],
    "GPU": ["ov-fp32", "ov-fp16", "ov-int8-hybrid-gpu"],
    "CUDA": ["torch", "torch-fp16", "ort-fp32", "ort-fp16"],
}
DEVICES = tuple(DEFAULT_VARIANTS)
BASELINE = "torch"


def with_speed(v: Variant, speed: str) -> Variant:
    """Variant `v` generating with speed preset `speed`: the row "<name>:<speed>"."""
    from dataclasses import replace

    from ..runtime.presets import PRESETS

    if speed not in PRESETS:
        raise ValueError(f"unknown speed preset {speed!r}; choose from {', '.join(PRESETS)}")
    if v.engine == "torch":
        raise ValueError(f"{v.name}: speed presets are the runtime's; the PyTorch rows run diffusers' defaults")
    return replace(v, name=f"{v.name}:{speed}", label=f"{v.label}, --speed {speed}", speed=speed)


def variant_named(name: str) -> Variant:
    """A row's variant from its name, "<variant>" or "<variant>:<speed preset>"."""
    base, _, speed = name.partition(":")
    return with_speed(VARIANTS[base], speed) if speed else VARIANTS[base]


def parse_variants(text: str | None, device: str, speeds: str | None = None) -> list[Variant]:
    """Comma-separated names, each optionally with ":<speed preset>" (default: every variant that runs on
    `device`); with `speeds` (comma-separated presets), every runtime variant also gets a row per preset, after
    the plain rows. ValueError names what is allowed."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    names = [n.strip() for n in text.split(",") if n.strip()] if text else DEFAULT_VARIANTS[device]
    base = [n.partition(":")[0] for n in names]
    unknown = [n for n in base if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    wrong = [n for n in base if device not in VARIANTS[n].devices]
    if wrong:
        raise ValueError(f"variant(s) {', '.join(wrong)} do not run on {device}; on {device}: "
                         f"{', '.join(n for n, v in VARIANTS.items() if device in v.devices)}")
    out = [variant_named(n) for n in names]
    for speed in [s.strip() for s in (speeds or "").split(",") if s.strip()]:
        out += [with_speed(v, speed) for v in list(out) if v.engine != "torch" and v.speed is None]
    if len({v.name for v in out}) != len(out):
        raise ValueError("each variant may be named once")
    return out
