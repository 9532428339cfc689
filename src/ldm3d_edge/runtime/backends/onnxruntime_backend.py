"""ONNX Runtime backend: one InferenceSession per model; shapes are the export's static ones."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DeviceError, InvalidArgumentError
from .base import Backend, CompiledModel

PROVIDERS = {"CPU": ["CPUExecutionProvider"], "CUDA": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


class _ORTModel(CompiledModel):
    def __init__(self, session: Any) -> None:
        self._session = session
        self._names = [o.name for o in session.get_outputs()]

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._names, self._session.run(self._names, inputs)))


@functools.cache
def shared_cpu_arena() -> bool:
    """Register, once per process, one CPU memory arena for every session that asks for it, growing by what is
    requested rather than doubling, so the VAE reuses what the UNet freed instead of each session holding its own
    doubled arena (docs/benchmarks.md, Memory, has the numbers). False when registering fails (say, the host
    application registered its own). Cached: registering twice would fail."""
    import onnxruntime as ort

    try:
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(info, ort.OrtArenaCfg({"arena_extend_strategy": 1}))  # same as requested
        return True
    except Exception:
        return False


class OnnxRuntimeBackend(Backend):
    name = "onnx"

    def __init__(self, device: str, precision: str | None = None, num_threads: int | None = None,
                 cache_dir: str | Path | None = None):
        super().__init__(device, precision, num_threads, cache_dir)
        if device not in PROVIDERS:
            raise DeviceError(f"ONNX Runtime device {device!r} is not supported; use onnx:CPU or onnx:CUDA")
        if precision not in (None, "f32", "fp32"):
            raise InvalidArgumentError("ONNX Runtime runs the artifacts' own precision; precision hints "
                                       "(bf16/f16) are OpenVINO-only")
        if device == "CUDA" and "CUDAExecutionProvider" not in available_providers():
            raise DeviceError("onnx:CUDA needs the onnxruntime-gpu package and an NVIDIA GPU; "
                              "this onnxruntime has " + ", ".join(available_providers()))

    def load(self, path: Path, input_shapes: dict[str, tuple[int, ...]], as_exported: bool = False,
             batch_range: tuple[int, int] | None = None) -> CompiledModel:
        """batch_range is not needed here: a --dynamic-batch export's session takes any batch as it is."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.num_threads:
            opts.intra_op_num_threads = int(self.num_threads)
        opts.log_severity_level = 3
        if self.device == "CPU" and shared_cpu_arena():
            opts.add_session_config_entry("session.use_env_allocators", "1")
        session = ort.InferenceSession(str(path), sess_options=opts, providers=PROVIDERS[self.device])
        for inp in session.get_inputs():
            want = input_shapes.get(inp.name)
            # a symbolic dim (the UNet's batch in a --dynamic-batch export) takes any size
            if want is not None and (len(inp.shape) != len(want) or
                                     any(isinstance(d, int) and d != v for d, v in zip(inp.shape, want))):
                raise InvalidArgumentError(
                    f"ONNX artifacts of {path.parent.name} are static at {tuple(inp.shape)} for {inp.name!r}, "
                    f"not {tuple(want)}: re-export with --height/--width for this size, or use the OpenVINO "
                    "backend, which reshapes at load time")
        return _ORTModel(session)


