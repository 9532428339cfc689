"""One interface over OpenVINO and ONNX Runtime: load a model file for fixed input shapes, run it on numpy."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np


class CompiledModel(ABC):
    """A model compiled for one device and one set of input shapes; reused across calls."""

    native: Any = None   # the engine's own compiled model, for inspection (OpenVINO: ov.CompiledModel)

    @abstractmethod
    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; outputs by name, as arrays the caller owns."""

    def release_memory(self) -> None:
        """Free the intermediate buffers until the next call (which allocates them again); a no-op by default."""


class Backend(ABC):
    name: str

    def __init__(self, device: str, precision: str | None = None, num_threads: int | None = None,
                 cache_dir: str | Path | None = None):
        self.device = device
        self.precision = precision
        self.num_threads = num_threads
        self.cache_dir = cache_dir

    @abstractmethod
    def load(self, path: Path, input_shapes: dict[str, tuple[int, ...]], as_exported: bool = False,
             batch_range: tuple[int, int] | None = None) -> CompiledModel:
        """Compile the model at `path` for `input_shapes` (name -> static shape). as_exported: those are the
        shapes the file was exported with (the manifest's), so nothing needs reshaping. batch_range (lo, hi): one
        compiled model that runs every batch from lo to hi (the first dimension of every input)."""

    @property
    def label(self) -> str:
        return f"{self.name}:{self.device}"
