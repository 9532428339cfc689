"""Everything 3D for one RGBD result in one call: mesh files, point cloud, camera-flight video, frame strip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..runtime.errors import InvalidArgumentError
from ..runtime.result import atomic_write
from .files import MESH_FORMATS, write_mesh, write_point_cloud
from .geometry import DEFAULT_EDGE_THRESHOLD, RGBD, rgbd_mesh, unproject
from .video import DEFAULT_FPS, DEFAULT_FRAMES, VIDEO_FORMATS, frame_strip, render_frames, write_video

POINTS_SUFFIX = "_points.ply"
STRIP_SUFFIX = "_strip.png"


def write_3d(rgbd: RGBD, prefix: str | Path, mesh_formats=(), points: bool = False, videos=(),
             path: str | None = None, frames: int = DEFAULT_FRAMES, fps: float = DEFAULT_FPS, strip: bool = False,
             edge_threshold: float | None = DEFAULT_EDGE_THRESHOLD, progress: bool = False) -> list[Path]:
    """Write <prefix>.<fmt> for each mesh format (glb, ply, obj), <prefix>_points.ply, <prefix><ext> for each
    video extension (.mp4, .gif) and <prefix>_strip.png (6 frames of the flight); returns the paths written.
    Panoramas get the sphere, perspective images the discontinuity-culled grid mesh."""
    prefix = Path(prefix)
    bad = [f for f in mesh_formats if f not in MESH_FORMATS] + [v for v in videos if v not in VIDEO_FORMATS]
    if bad:
        raise InvalidArgumentError(f"unknown output {', '.join(bad)}: meshes {', '.join(MESH_FORMATS)}, videos "
                                   f"{', '.join(VIDEO_FORMATS)}")
    written: list[Path] = []
    if mesh_formats:
        mesh = rgbd_mesh(rgbd, edge_threshold if not rgbd.is_panorama else None)
        for fmt in mesh_formats:
            written += write_mesh(mesh, prefix.with_name(f"{prefix.name}.{fmt}"))
    if points:
        written.append(write_point_cloud(*unproject(rgbd), prefix.with_name(prefix.name + POINTS_SUFFIX)))
    if videos or strip:
        images = [v.image for v in render_frames(rgbd, path, frames, progress=progress)]
        for ext in videos:
            written.append(write_video(images, prefix.with_name(prefix.name + ext), fps))
        if strip:
            p = prefix.with_name(prefix.name + STRIP_SUFFIX)
            atomic_write(p, lambda t: Image.fromarray(np.ascontiguousarray(frame_strip(images))).save(t, format="PNG"))
            written.append(p)
    return written
