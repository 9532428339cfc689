"""Device strings -> a backend (OpenVINO or ONNX Runtime) on a device.

Accepted: "auto", "CPU", "GPU", "CUDA", or backend-qualified "openvino:CPU", "openvino:GPU", "openvino:GPU.1",
"openvino:NPU", "onnx:CPU", "onnx:CUDA". "auto" prefers an Intel GPU (OpenVINO), then CUDA (ONNX Runtime,
when ONNX artifacts exist), then the CPU (OpenVINO if its IR exists, else ONNX Runtime).
"""

from __future__ import annotations

from pathlib import Path

from ..constants import FORMAT_ONNX, FORMAT_OPENVINO
from ..errors import DeviceError
from .base import Backend, CompiledModel

DEVICE_HELP = "auto, CPU, GPU, CUDA, openvino:<CPU|GPU|GPU.N|NPU>, onnx:<CPU|CUDA>"


def resolve_device(device: str, formats: tuple[str, ...]) -> tuple[str, str]:
    """(format, device) for a user's device string, given the formats the artifacts have."""
    if not isinstance(device, str) or not device.strip():
        raise DeviceError(f"device must be one of {DEVICE_HELP}")
    d = device.strip()
    has_ov, has_onnx = FORMAT_OPENVINO in formats, FORMAT_ONNX in formats
    if d.lower() == "auto":
        if has_ov and any(x.startswith("GPU") for x in _ov_devices()):
            return FORMAT_OPENVINO, "GPU"
        if has_onnx and "CUDAExecutionProvider" in _ort_providers():
            return FORMAT_ONNX, "CUDA"
        return (FORMAT_OPENVINO, "CPU") if has_ov else (FORMAT_ONNX, "CPU")
    if ":" in d:
        backend, _, dev = d.partition(":")
        backend = {"ov": FORMAT_OPENVINO, "ort": FORMAT_ONNX, "onnxruntime": FORMAT_ONNX}.get(backend.lower(),
                                                                                             backend.lower())
        dev = dev.upper()
        if backend not in (FORMAT_OPENVINO, FORMAT_ONNX) or not dev:
            raise DeviceError(f"unknown device {device!r}; choose one of {DEVICE_HELP}")
    elif d.upper() == "CPU":
        backend, dev = (FORMAT_OPENVINO if has_ov else FORMAT_ONNX), "CPU"
    elif d.upper().startswith("GPU") or d.upper() == "NPU":
        backend, dev = FORMAT_OPENVINO, d.upper()
    elif d.upper() == "CUDA":
        backend, dev = FORMAT_ONNX, "CUDA"
    else:
        raise DeviceError(f"unknown device {device!r}; choose one of {DEVICE_HELP}")
    if backend not in formats:
        raise DeviceError(f"device {device!r} needs {backend} artifacts, but this model folder only has "
                          f"{', '.join(formats)} (re-export with --format both)")
    if backend == FORMAT_OPENVINO and not any(x == dev or x.startswith(dev + ".") for x in _ov_devices()):
        raise DeviceError(f"OpenVINO device {dev!r} is not present; this machine has {', '.join(_ov_devices())}")
    if backend == FORMAT_ONNX and dev not in ("CPU", "CUDA"):
        raise DeviceError(f"ONNX Runtime device {dev!r} is not supported; use onnx:CPU or onnx:CUDA")
    return backend, dev


def create_backend(fmt: str, device: str, precision: str | None = None, num_threads: int | None = None,
                   cache_dir: str | Path | None = None) -> Backend:
    if fmt == FORMAT_OPENVINO:
        from .openvino_backend import OpenVINOBackend

        return OpenVINOBackend(device, precision, num_threads, cache_dir)
    from .onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(device, precision, num_threads, cache_dir)


def _ov_devices() -> list[str]:
    from .openvino_backend import available_devices

    return available_devices()


def _ort_providers() -> list[str]:
    from .onnxruntime_backend import available_providers

    return available_providers()


__all__ = ["Backend", "CompiledModel", "resolve_device", "create_backend", "DEVICE_HELP"]
