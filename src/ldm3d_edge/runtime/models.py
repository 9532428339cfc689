"""One small class per exported part, over the backend interface.

A part compiles lazily on first use, once per input shape, and checks the names, shapes and dtypes of
what it is given against the manifest before running.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import constants as C
from .backends import Backend, CompiledModel
from .errors import InvalidArgumentError
from .manifest import Manifest


class ModelPart:
    component: str = ""
    spatial_inputs: tuple[str, ...] = ()   # inputs whose last two dims follow the image size
    batched = False                        # True: every input's first dim is the batch (the UNet's CFG pair)

    def __init__(self, manifest: Manifest, backend: Backend, fmt: str):
        self.manifest, self.backend, self.fmt = manifest, backend, fmt
        self.spec = manifest.components[self.component]
        self.path = manifest.model_path(self.component, fmt)
        self._compiled: dict[tuple[int, ...], CompiledModel] = {}   # by size; () for size-free parts
        self._refused: set[tuple[int, ...]] = set()                 # (height, width, batch) the model cannot run
        self._candidate = False                                     # use() installed a graph not from the folder

    def input_shapes(self, height: int, width: int, batch: int | None = None) -> dict[str, tuple[int, ...]]:
        """Each input's shape at this image size (and batch, for batched parts; None: the exported batch)."""
        shapes = {}
        for t in self.spec.inputs:
            shape = list(t.shape)
            if t.name in self.spatial_inputs:
                # each input's scale to the image, read off its exported shape: 1 for images, 8 for latents,
                # more for a DeepCache feature deeper in the UNet
                m = self.manifest
                shape[-2:] = [height // (m.height // t.shape[-2]), width // (m.width // t.shape[-1])]
            if self.batched and batch is not None:
                shape[0] = batch
            shapes[t.name] = tuple(shape)
        return shapes

    def compiled(self, height: int, width: int, batch: int | None = None) -> CompiledModel:
        key: tuple[int, ...] = ((height, width) if self.spatial_inputs else ()) + ((batch,) if batch else ())
        if key not in self._compiled:
            shapes = self.input_shapes(height, width, batch)
            exported = {t.name: tuple(t.shape) for t in self.spec.inputs}
            self._compiled[key] = self.backend.load(self.path, shapes, as_exported=shapes == exported)
        return self._compiled[key]

    def unload(self) -> None:
        self._compiled.clear()
        self._candidate = False     # the folder's own graph is compiled again on next use

    def use(self, compiled: CompiledModel, height: int, width: int) -> None:
        """Run `compiled` instead of this folder's graph at this size and the exported batch: the quantization
        tools judge candidate graphs through the whole pipeline without writing each to disk."""
        self._compiled.clear()
        self._compiled[(height, width) if self.spatial_inputs else ()] = compiled
        self._candidate = True

    def run(self, height: int, width: int, inputs: dict[str, np.ndarray],
            batch: int | None = None) -> dict[str, np.ndarray]:
        shapes = self.input_shapes(height, width, batch)
        for t in self.spec.inputs:
            if t.name not in inputs:
                raise InvalidArgumentError(f"{self.component}: missing input {t.name!r}")
            a = inputs[t.name]
            if tuple(a.shape) != shapes[t.name] or a.dtype != np.dtype(t.dtype):
                raise InvalidArgumentError(f"{self.component}: input {t.name!r} must be "
                                           f"{t.dtype}{list(shapes[t.name])}, got {a.dtype}{list(a.shape)}")
        return self.compiled(height, width, batch)(inputs)


class TextEncoder(ModelPart):
    component = C.TEXT_ENCODER

    def __call__(self, input_ids: np.ndarray) -> np.ndarray:
        out = self.run(0, 0, {C.TEXT_INPUT_IDS: input_ids.astype(np.int64)})
        return out[C.TEXT_HIDDEN_STATES]


RANGE_MIN_BYTES = 256 * 2**20   # UNet weights from which one batch-range compile beats two static ones


def _weight_bytes(xml: Path) -> int:
    """The size of an IR's weights file (0 if there is none)."""
    bin_path = xml.with_suffix(".bin")
    return bin_path.stat().st_size if bin_path.is_file() else 0


class UNetPart(ModelPart):
    """What the UNet graphs share: latent inputs at the CFG batch, and a batch the runtime may change."""

    spatial_inputs: tuple[str, ...] = (C.UNET_SAMPLE,)
    batched = True

    def runs_batch(self, batch: int, height: int, width: int) -> bool:
        """Whether this folder's UNet runs at this batch (compiling it for that batch if so). An ONNX graph is
        static: batch 1 (guidance cut-off, guidance <= 1) needs a folder exported with `ldm3d export
        --dynamic-batch` (the manifest's unet_batches). OpenVINO reshapes an IR whose graph computes its reshapes
        from the input shape, as exports now trace the batch symbolically; IRs exported before that have the
        batch 2 baked into their reshapes and cannot (a reshape error, remembered).

        A large OpenVINO UNet (weights of RANGE_MIN_BYTES or more) serves the exported batch and this one from one
        model compiled for the range between them, which replaces the exported batch's: a second static compile
        cost a one-image run more than the unguided steps saved (~5.7 s for the full-size UNet at 512²) and held
        the weights twice (peak RSS 2.1 -> 4.0 GB INT8; benchmarks/results/bench-ldm3d-4c-512-presets-int8-mixed),
        while the range runs a full-size step only 4-12 % slower (benchmarks/results/unet-batch-range). A small
        UNet compiles a second static model: for it the range's per-call overhead is most of the call (the
        embedded UNet 1.7x slower) and a compile takes a second. A graph that use() installed runs at its own
        batch only (the folder's graph must not stand in for it)."""
        if batch == self.manifest.unet_batch:
            return True
        if self.fmt != C.FORMAT_OPENVINO:
            return batch in self.manifest.unet_batches
        key = (height, width, batch)
        if self._candidate or key in self._refused:
            return False
        if key in self._compiled:
            return True
        try:
            if _weight_bytes(self.path) < RANGE_MIN_BYTES:
                self.compiled(height, width, batch)
            else:
                exported = self.manifest.unet_batch
                self._compiled[key] = self._compiled[(height, width)] = self.backend.load(
                    self.path, self.input_shapes(height, width),
                    batch_range=(min(batch, exported), max(batch, exported)))
        except InvalidArgumentError:
            self._refused.add(key)
            return False
        return True

    def _batch(self, sample: np.ndarray) -> int | None:
        """The batch to compile for: None for the exported one."""
        return None if sample.shape[0] == self.manifest.unet_batch else int(sample.shape[0])


class UNet(UNetPart):
    component = C.UNET

    def __call__(self, sample: np.ndarray, timestep: np.ndarray, hidden: np.ndarray, height: int,
                 width: int, class_labels: np.ndarray | None = None) -> np.ndarray:
        """class_labels: the upscaler's noise level per batch row (int64); only for UNets exported with it.
        The batch is the sample's (2: the CFG pair; 1 where runs_batch(1))."""
        return self.run(height, width, _unet_inputs(sample, timestep, hidden, class_labels),
                        self._batch(sample))[C.UNET_OUT]


class CacheFullUNet(UNetPart):
    """DeepCache's full step: the whole UNet, also returning the up path's feature at the folder's branch."""

    component = C.UNET_CACHE_FULL

    def __call__(self, sample: np.ndarray, timestep: np.ndarray, hidden: np.ndarray, height: int,
                 width: int, class_labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        out = self.run(height, width, _unet_inputs(sample, timestep, hidden, class_labels), self._batch(sample))
        return out[C.UNET_OUT], out[C.UNET_CACHE_FEATURE]


class CacheShallowUNet(UNetPart):
    """DeepCache's cheap step: the layers above the branch, the deep part's contribution taken from `feature`."""

    component = C.UNET_CACHE_SHALLOW
    spatial_inputs = (C.UNET_SAMPLE, C.UNET_CACHE_FEATURE)

    def __call__(self, sample: np.ndarray, timestep: np.ndarray, hidden: np.ndarray, height: int,
                 width: int, feature: np.ndarray, class_labels: np.ndarray | None = None) -> np.ndarray:
        inputs = {**_unet_inputs(sample, timestep, hidden, class_labels), C.UNET_CACHE_FEATURE: feature}
        return self.run(height, width, inputs, self._batch(sample))[C.UNET_OUT]


def _unet_inputs(sample: np.ndarray, timestep: np.ndarray, hidden: np.ndarray,
                 class_labels: np.ndarray | None) -> dict[str, np.ndarray]:
    inputs = {C.UNET_SAMPLE: sample, C.UNET_TIMESTEP: timestep, C.UNET_ENCODER_HIDDEN_STATES: hidden}
    if class_labels is not None:
        inputs[C.UNET_CLASS_LABELS] = class_labels
    return inputs


class VaeDecoder(ModelPart):
    component = C.VAE_DECODER
    spatial_inputs = (C.VAE_LATENT,)

    def __call__(self, latents: np.ndarray, height: int, width: int) -> np.ndarray:
        """Latents already divided by the VAE scaling factor -> image in [-1, 1], (1, C, H, W)."""
        image = self.run(height, width, {C.VAE_LATENT: latents})[C.VAE_IMAGE]
        # Runs once per image, so its buffers would lie idle between images (docs/benchmarks.md, Memory, has what
        # that saves and costs). A server holding a perspective and a panorama model keeps neither decoder's buffers.
        self.compiled(height, width).release_memory()
        return image


class VaeEncoder(ModelPart):
    component = C.VAE_ENCODER
    spatial_inputs = (C.VAE_ENCODER_IMAGE,)

    def __call__(self, image: np.ndarray, height: int, width: int) -> np.ndarray:
        """Image in [-1, 1], (1, C, H, W) -> latent Gaussian parameters [mean, logvar]."""
        return self.run(height, width, {C.VAE_ENCODER_IMAGE: image})[C.VAE_ENCODER_MOMENTS]
