"""Splitting the VAE's RGBD output into an RGB image and a float depth map.

4-channel VAE (ldm3d-4c, ldm3d-pano): channel 3 is depth, mapped like RGB from [-1, 1] to [0, 1].
6-channel VAE (original Intel/ldm3d): channels 3-5 hold depth as an 8-bit RGB-like image whose channel 4 is
the high byte and channel 5 the low byte of a 16-bit value (the training convention; diffusers'
``VaeImageProcessorLDM3D.numpy_to_depth``). Both come out as float32 in [0, 1], near = high.
"""

from __future__ import annotations

import numpy as np

from . import constants as C
from .errors import InvalidArgumentError, ModelFolderError, OutputError


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


def pack_depth16(depth: np.ndarray) -> np.ndarray:
    """Inverse of unpack_depth16: depth in [0, 1] -> (H, W, 3) RGB-like [0, high byte, low byte] / 255."""
    v = np.round(np.clip(depth, 0, 1) * 65535).astype(np.uint32)
    return np.stack([np.zeros_like(v), v >> 8, v & 255], axis=-1).astype(np.float32) / 255.0


def rgbd_to_image(rgb: np.ndarray, depth: np.ndarray | None, encoding: str, channels: int) -> np.ndarray:
    """The VAE encoder's input from an RGB image and its depth: (1, C, H, W) in [-1, 1], the inverse of split_rgbd.

    rgb: (H, W, 3) uint8, or float in [0, 1]; depth: (H, W) in [0, 1] (near = high), or None for a flat 0.5.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise InvalidArgumentError(f"rgb must be an (H, W, 3) image, got shape {list(rgb.shape)}")
    rgb_f = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float32)
    if depth is None:
        depth = np.full(rgb.shape[:2], 0.5, np.float32)
    depth = np.asarray(depth, dtype=np.float32)
    if depth.shape != rgb.shape[:2]:
        raise InvalidArgumentError(f"depth must be (H, W) = {list(rgb.shape[:2])} like the RGB image, got "
                                   f"{list(depth.shape)}")
    if not (np.isfinite(rgb_f).all() and np.isfinite(depth).all()) or rgb_f.min() < 0 or rgb_f.max() > 1 \
            or depth.min() < 0 or depth.max() > 1:
        raise InvalidArgumentError("rgb (as float) and depth must be finite values in [0, 1]")
    if encoding == C.DEPTH_ENCODING_1CH:
        x = np.concatenate([rgb_f, depth[..., None]], axis=-1)
    elif encoding == C.DEPTH_ENCODING_PACKED16:
        x = np.concatenate([rgb_f, pack_depth16(depth)], axis=-1)
    else:
        raise ModelFolderError(f"unknown depth encoding {encoding!r} in the manifest")
    if x.shape[-1] != channels:
        raise ModelFolderError(f"the VAE takes {channels} channels, the {encoding} encoding gives {x.shape[-1]}")
    return np.ascontiguousarray((x * 2.0 - 1.0).transpose(2, 0, 1)[None]).astype(np.float32)
