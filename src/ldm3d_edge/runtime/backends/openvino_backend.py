"""OpenVINO backend: reads IR, reshapes to the requested static shapes (or a batch range), compiles once per shape."""

from __future__ import annotations

import ctypes
import functools
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..constants import cache_base
from ..errors import DeviceError, InvalidArgumentError
from .base import Backend, CompiledModel

PRECISIONS = {"f32": "f32", "fp32": "f32", "bf16": "bf16", "f16": "f16", "fp16": "f16"}


def default_cache_dir() -> Path:
    return cache_base() / "openvino"


@functools.cache
def core() -> Any:
    """The process's one ov.Core (created on first use: importing the backend costs nothing until then)."""
    import openvino as ov

    return ov.Core()


def available_devices() -> list[str]:
    try:
        return list(core().available_devices)
    except Exception:  # a broken GPU driver must not take device selection down
        return ["CPU"]


class _OVModel(CompiledModel):
    def __init__(self, compiled: Any) -> None:
        self.native = compiled   # the ov.CompiledModel, for inspection (runtime graph, properties)
        self._request = compiled.create_infer_request()
        # a port may carry several tensor names (OpenVINO keeps those of fused Cast nodes); expose each
        self._outputs = [(sorted(o.get_names()) or [o.get_any_name()], o) for o in compiled.outputs]

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._request.infer(inputs)
        out = {}
        for names, port in self._outputs:
            data = np.array(self._request.get_tensor(port).data, copy=True)
            out.update(dict.fromkeys(names, data))
        return out

    def release_memory(self) -> None:
        self.native.release_memory()


class OpenVINOBackend(Backend):
    name = "openvino"

    def __init__(self, device: str, precision: str | None = None, num_threads: int | None = None,
                 cache_dir: str | Path | None = None):
        super().__init__(device, precision, num_threads, cache_dir if cache_dir is not None else default_cache_dir())
        if precision is not None and precision not in PRECISIONS:
            raise InvalidArgumentError(f"unknown precision {precision!r}; choose one of f32, bf16, f16")

    def config(self) -> dict[str, Any]:
        cfg: dict[str, str | int] = {}
        if self.cache_dir:
            # One cache folder per inference precision: OpenVINO 2026.4 keys a CPU blob without the precision
            # hint, and a model cached in f32 then loaded with the bf16 hint returns NaN (measured; see the test).
            folder = Path(self.cache_dir) / PRECISIONS.get(self.precision or "", "default")
            folder.mkdir(parents=True, exist_ok=True)
            cfg["CACHE_DIR"] = str(folder)
        if self.precision is not None:
            cfg["INFERENCE_PRECISION_HINT"] = PRECISIONS[self.precision]
        if self.num_threads and self.device.startswith("CPU"):
            cfg["INFERENCE_NUM_THREADS"] = int(self.num_threads)
        return cfg

    def load(self, path: Path, input_shapes: dict[str, tuple[int, ...]], as_exported: bool = False,
             batch_range: tuple[int, int] | None = None) -> CompiledModel:
        import openvino as ov

        c = core()
        config = self.config()
        if "CACHE_DIR" in config:
            config["CACHE_DIR"] = str(ir_cache_folder(Path(str(config["CACHE_DIR"])), path))
        if as_exported and batch_range is None and "CACHE_DIR" in config:
            # Compiled from the file path, a cached model is imported without reading the IR at all (a faster warm
            # start and a lower peak: benchmarks/results/bench-ldm3d-4c-512-openvino-path-load). OpenVINO notices a
            # changed file at the same path and recompiles (tested).
            model = str(path)
        else:
            model = c.read_model(str(path))
            current = {p.get_any_name(): tuple(p.get_partial_shape().to_shape()) for p in model.inputs
                       if p.get_partial_shape().is_static}
            if batch_range is not None or any(current.get(k) != tuple(v) for k, v in input_shapes.items()):
                try:
                    if batch_range is not None:
                        # each end as a static shape first: a graph with a batch baked into its reshapes refuses
                        # here, while the range alone would pass shape inference and fail at the first call
                        for b in batch_range:
                            model.reshape({k: [b, *v[1:]] for k, v in input_shapes.items()})
                    model.reshape({k: ov.PartialShape([ov.Dimension(*batch_range), *v[1:]]) if batch_range
                                   else list(v) for k, v in input_shapes.items()})
                except Exception as e:
                    batches = f" at batches {batch_range[0]}-{batch_range[1]}" if batch_range else ""
                    raise InvalidArgumentError(f"OpenVINO cannot reshape {path.parent.name} to {input_shapes}"
                                               f"{batches}: {str(e).splitlines()[0]}") from None
        try:
            compiled = c.compile_model(model, self.device, config)
        except RuntimeError as e:
            raise DeviceError(f"OpenVINO could not compile {path.parent.name} on {self.device}: "
                              f"{str(e).splitlines()[0]}") from None
        del model
        drop_mapped_pages([path.parent] + ([Path(config["CACHE_DIR"])] if "CACHE_DIR" in config else []))
        return _OVModel(compiled)


def compile_in_memory(model: Any, device: str = "CPU", precision: str = "f32") -> CompiledModel:
    """Compile an ov.Model held in memory (no cache: a candidate graph is compiled once and thrown away), at the
    precision the runtime runs INT8 folders in by default: left to itself, OpenVINO on a CPU with AMX runs the float
    layers in bf16, and quantization candidates were judged at another precision than the f32 reference."""
    return _OVModel(core().compile_model(model, device, {"INFERENCE_PRECISION_HINT": PRECISIONS[precision]}))


def ir_cache_folder(cache: Path, xml: Path) -> Path:
    """The compile-cache folder of one IR file pair, named by the files' path, sizes and modification times.
    OpenVINO 2026.4's own cache key missed new weights in an unchanged .xml: after a .bin was rewritten in place (a
    re-shipped model, a git checkout of older weights), both the path-compiled and the read-and-reshaped model
    came back from the cache with the old weights (max abs difference 0.56 / 0.85 on an image, measured)."""
    import hashlib

    stats = [f.stat() for f in (xml, xml.with_suffix(".bin")) if f.exists()]
    key = "|".join([str(xml.resolve())] + [f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}" for st in stats])
    folder = cache / hashlib.sha256(key.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


_MADV_DONTNEED = 4


def drop_mapped_pages(folders: list[Path]) -> int:
    """Take the pages of read-only file mappings of files under `folders` out of this process's memory; the bytes
    of the mappings so treated (0 where this is not Linux).

    OpenVINO maps the IR's .bin (or, warm, the compile cache's blob) and keeps the mapping for the compiled model's
    life, although the CPU plugin has by then repacked the weights into memory of its own: every weight is resident
    twice (the numbers: docs/benchmarks.md, Memory). A few pages fault back in (weights used where they lie). The
    mappings are read-only and shared (r--s), so MADV_DONTNEED loses nothing: a page touched again is read back
    from the page cache or the file, and the page cache keeps them for the next start."""
    if not sys.platform.startswith("linux"):
        return 0
    roots = [str(Path(f).resolve()) + "/" for f in folders]
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        with open("/proc/self/maps") as f:
            lines = f.readlines()
    except (OSError, AttributeError):
        return 0
    dropped = 0
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or "w" in fields[1] or not fields[5].rstrip("\n").startswith(tuple(roots)):
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if libc.madvise(start, end - start, _MADV_DONTNEED) == 0:
            dropped += end - start
    return dropped
