"""One small class per exported part, over the backend interface.

A part compiles lazily on first use, once per input shape, and checks the names, shapes and dtypes of
what it is given against the manifest before running.
"""

from __future__ import annotations

import numpy as np

from . import constants as C
from .backends import Backend, CompiledModel
from .errors import InvalidArgumentError
from .manifest import Manifest


class ModelPart:
    component: str = ""
    spatial_inputs: tuple[str, ...] = ()   # inputs whose last two dims follow the image size
    latent_space = False                   # True: those dims are the image size / vae_scale_factor

    def __init__(self, manifest: Manifest, backend: Backend, fmt: str):
        self.manifest, self.backend, self.fmt = manifest, backend, fmt
        self.spec = manifest.components[self.component]
        self.path = manifest.model_path(self.component, fmt)
        self._compiled: dict[tuple[int, ...], CompiledModel] = {}   # by size; () for size-free parts

    def input_shapes(self, height: int, width: int) -> dict[str, tuple[int, ...]]:
        shapes = {}
        for t in self.spec.inputs:
            shape = list(t.shape)
            if t.name in self.spatial_inputs:
                div = self.manifest.vae_scale_factor if self.latent_space else 1
                shape[-2:] = [height // div, width // div]
            shapes[t.name] = tuple(shape)
        return shapes

    def compiled(self, height: int, width: int) -> CompiledModel:
        key: tuple[int, ...] = (height, width) if self.spatial_inputs else ()
        if key not in self._compiled:
            shapes = self.input_shapes(height, width)
            exported = {t.name: tuple(t.shape) for t in self.spec.inputs}
            self._compiled[key] = self.backend.load(self.path, shapes, as_exported=shapes == exported)
        return self._compiled[key]

    def unload(self) -> None:
        self._compiled.clear()

    def run(self, height: int, width: int, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        shapes = self.input_shapes(height, width)
        for t in self.spec.inputs:
            if t.name not in inputs:
                raise InvalidArgumentError(f"{self.component}: missing input {t.name!r}")
            a = inputs[t.name]
            if tuple(a.shape) != shapes[t.name] or a.dtype != np.dtype(t.dtype):
                raise InvalidArgumentError(f"{self.component}: input {t.name!r} must be "
                                           f"{t.dtype}{list(shapes[t.name])}, got {a.dtype}{list(a.shape)}")
        return self.compiled(height, width)(inputs)


class TextEncoder(ModelPart):
    component = C.TEXT_ENCODER

    def __call__(self, input_ids: np.ndarray) -> np.ndarray:
        out = self.run(0, 0, **{C.TEXT_INPUT_IDS: input_ids.astype(np.int64)})
        return out[C.TEXT_HIDDEN_STATES]


class UNet(ModelPart):
    component = C.UNET
    spatial_inputs = (C.UNET_SAMPLE,)
    latent_space = True

    def __call__(self, sample: np.ndarray, timestep: np.ndarray, hidden: np.ndarray, height: int,
                 width: int, class_labels: np.ndarray | None = None) -> np.ndarray:
        """class_labels: the upscaler's noise level per batch row (int64); only for UNets exported with it."""
        inputs = {C.UNET_SAMPLE: sample, C.UNET_TIMESTEP: timestep, C.UNET_ENCODER_HIDDEN_STATES: hidden}
        if class_labels is not None:
            inputs[C.UNET_CLASS_LABELS] = class_labels
        return self.run(height, width, **inputs)[C.UNET_OUT]


class VaeDecoder(ModelPart):
    component = C.VAE_DECODER
    spatial_inputs = (C.VAE_LATENT,)
    latent_space = True

    def __call__(self, latents: np.ndarray, height: int, width: int) -> np.ndarray:
        """Latents already divided by the VAE scaling factor -> image in [-1, 1], (1, C, H, W)."""
        image = self.run(height, width, **{C.VAE_LATENT: latents})[C.VAE_IMAGE]
        # Runs once per image, so its buffers would lie idle between images (docs/benchmarks.md, Memory, has what
        # that saves and costs). A server holding a perspective and a panorama model keeps neither decoder's buffers.
        self.compiled(height, width).release_memory()
        return image


class VaeEncoder(ModelPart):
    component = C.VAE_ENCODER
    spatial_inputs = (C.VAE_ENCODER_IMAGE,)

    def __call__(self, image: np.ndarray, height: int, width: int) -> np.ndarray:
        """Image in [-1, 1], (1, C, H, W) -> latent Gaussian parameters [mean, logvar]."""
        return self.run(height, width, **{C.VAE_ENCODER_IMAGE: image})[C.VAE_ENCODER_MOMENTS]
