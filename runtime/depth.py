"""Splitting the VAE's RGBD output into an RGB image and a float depth map.

4-channel VAE (ldm3d-4c, ldm3d-pano): channel 3 is depth, mapped like RGB from [-1, 1] to [0, 1].
6-channel VAE (original Intel/ldm3d): channels 3-5 hold depth as an 8-bit RGB-like image whose channel 4 is
the high byte and channel 5 the low byte of a 16-bit value (the training convention; diffusers'
``VaeImageProcessorLDM3D.numpy_to_depth``). Both come out as float32 in [0, 1], near = high.
"""

from __future__ import annotations

import numpy as np

from . import constants as C
from .errors import ModelFolderError, OutputError


def denormalize(image: np.ndarray) -> np.ndarray:
    """[-1, 1] -> [0, 1], clipped, as diffusers' image processor does."""
    return np.clip(image / 2 + 0.5, 0.0, 1.0).astype(np.float32)


def unpack_depth16(channels: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB-like depth in [0, 1] -> float depth in [0, 1] from 16 bits (high byte ch 1, low byte ch 2)."""
    bytes8 = np.round(channels * 255).astype(np.uint16)
    return ((bytes8[..., 1].astype(np.uint32) << 8) + bytes8[..., 2]).astype(np.float32) / 65535.0


def split_rgbd(image: np.ndarray, encoding: str) -> tuple[np.ndarray, np.ndarray]:
    """VAE output (1, C, H, W) in [-1, 1] -> (rgb (H, W, 3) float32 [0, 1], depth (H, W) float32 [0, 1])."""
    if not np.isfinite(image).all():
        bad = int((~np.isfinite(image)).sum())
        raise OutputError(f"the decoder produced {bad} NaN/inf values; nothing was saved "
                          "(try another seed, fewer steps or FP32 precision)")
    x = denormalize(image[0]).transpose(1, 2, 0)
    if encoding == C.DEPTH_ENCODING_1CH:
        return x[..., :3], np.ascontiguousarray(x[..., 3])
    if encoding == C.DEPTH_ENCODING_PACKED16:
        return x[..., :3], unpack_depth16(x[..., 3:6])
    raise ModelFolderError(f"unknown depth encoding {encoding!r} in the manifest")
