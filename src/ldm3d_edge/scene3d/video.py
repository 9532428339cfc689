"""Camera flights through an RGBD scene, written as MP4 (imageio-ffmpeg, H.264) or GIF (imageio, pillow).

Paths are closed loops whose size follows the distance n of the nearest content (the 5th percentile of the
pixels' distances), which sets how much parallax a move makes, and look at the scene's median distance m:
    orbit      the viewer circles (radius 0.05 n) in the image plane, always looking at the centre
    dolly      the viewer moves straight in by 0.3 n and back
    swing      the viewer slides sideways (+-0.1 n) and turns to keep the centre in view
    pano-walk  inside a panorama: a full 360-degree turn while walking 0.3 n forward and back
Perspective sources render with their own camera; panoramas render perspective frames (90-degree FOV, 4:3)
from inside the sphere, looking along the path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..runtime.errors import InvalidArgumentError
from ..runtime.result import atomic_write
from .camera import PERSPECTIVE, Camera, Pose
from .geometry import RGBD
from .render import SUPERSAMPLE, SceneRenderer, View

PATHS = ("orbit", "dolly", "swing", "pano-walk")
VIDEO_FORMATS = (".mp4", ".gif")
DEFAULT_FRAMES = 48
DEFAULT_FPS = 12
PANO_VIEW_HFOV = 90.0


def default_path(rgbd: RGBD) -> str:
    return "pano-walk" if rgbd.is_panorama else "orbit"


def frame_camera(rgbd: RGBD) -> Camera:
    """The camera frames are rendered with: the source's own, or a 4:3 perspective view inside a panorama."""
    if not rgbd.is_panorama:
        return rgbd.camera
    h = rgbd.camera.height
    w = (h * 4 // 3 + 7) // 8 * 8
    return Camera(PERSPECTIVE, w, h, PANO_VIEW_HFOV)


def camera_path(name: str, rgbd: RGBD) -> Callable[[float], Pose]:
    """name -> pose(t) for t in [0, 1), a closed loop."""
    if name not in PATHS:
        raise InvalidArgumentError(f"camera path must be one of {', '.join(PATHS)}, got {name!r}")
    dist = rgbd.distance
    m, n = float(np.median(dist)), float(np.percentile(dist, 5))
    amp = {"orbit": 0.05, "dolly": 0.3, "swing": 0.1, "pano-walk": 0.3}[name] * n
    if rgbd.is_panorama:
        # In a sphere the 'scene centre' is all around; every path looks along its direction of travel.

        def pano_pose(t: float) -> Pose:
            if name == "pano-walk":
                yaw = -360.0 * t
                a = math.radians(yaw)
                step = amp * math.sin(2 * math.pi * t)
                return Pose.from_yaw(yaw, position=(-math.sin(a) * step, 0.0, -math.cos(a) * step))
            return _perspective_pose(name, t, amp, m)

        return pano_pose
    if name == "pano-walk":
        raise InvalidArgumentError("pano-walk needs a panorama (2:1 equirectangular) input; for a perspective image "
                                   "use orbit, dolly or swing")
    return lambda t: _perspective_pose(name, t, amp, m)


def _perspective_pose(name: str, t: float, amp: float, m: float) -> Pose:
    a = 2 * math.pi * t
    target = (0.0, 0.0, -m)
    if name == "orbit":
        return Pose.look_at((amp * math.sin(a), amp * (1 - math.cos(a)) / 2, 0.0), target)
    if name == "dolly":
        return Pose(np.eye(3), np.array([0.0, 0.0, -amp * (1 - math.cos(a)) / 2]))
    return Pose.look_at((amp * math.sin(a), 0.0, 0.0), target)


def render_frames(rgbd: RGBD, path: str | None = None, frames: int = DEFAULT_FRAMES,
                  progress: bool = False) -> list[View]:
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or not 2 <= frames <= 10000:
        raise InvalidArgumentError(f"frames must be an integer from 2 to 10000, got {frames!r}")
    pose_at = camera_path(path or default_path(rgbd), rgbd)
    # A 90-degree view shows a quarter of a panorama's width at about the panorama's height: 2-4x magnification,
    # so each pano pixel is split 4x4 to leave no cracks; perspective flights stay near 1x (2x2).
    renderer = SceneRenderer(rgbd, supersample=4 if rgbd.is_panorama else SUPERSAMPLE)
    camera = frame_camera(rgbd)
    ts = [i / frames for i in range(frames)]
    if progress:
        from tqdm.auto import tqdm

        ts = tqdm(ts, desc="rendering", unit="frame")
    return [renderer.render(pose_at(t), camera) for t in ts]


def write_video(frames: list[np.ndarray], out: str | Path, fps: float = DEFAULT_FPS) -> Path:
    """Frames (H, W, 3) uint8 -> .mp4 (H.264, yuv420p, exactly `fps`) or .gif (looping; its rate is rounded to
    GIF's 1/100 s frame times, see gif_frame_ms); written to a temporary file first."""
    import imageio.v3 as iio

    out = Path(out)
    ext = out.suffix.lower()
    if ext not in VIDEO_FORMATS:
        raise InvalidArgumentError(f"video file must end in {' or '.join(VIDEO_FORMATS)}, got {out.name}")
    if not (isinstance(fps, (int, float)) and 0 < fps <= 120):
        raise InvalidArgumentError(f"fps must be a number in (0, 120], got {fps!r}")
    if not frames:
        raise InvalidArgumentError("no frames to write")
    out.parent.mkdir(parents=True, exist_ok=True)
    stack = np.stack(frames)
    if ext == ".gif":
        atomic_write(out, lambda p: iio.imwrite(p, stack, plugin="pillow", extension=".gif",
                                                duration=gif_frame_ms(fps), loop=0))
    else:
        if stack.shape[1] % 2 or stack.shape[2] % 2:   # yuv420p needs even sides
            stack = stack[:, : stack.shape[1] // 2 * 2, : stack.shape[2] // 2 * 2]
        atomic_write(out, lambda p: _write_mp4(p, stack, fps))
    return out


def gif_frame_ms(fps: float) -> int:
    """GIF stores frame times in 1/100 s: the nearest to 1/fps (at least 20 ms, below which browsers slow it)."""
    return max(20, 10 * round(100.0 / fps))


def _write_mp4(path: str, stack: np.ndarray, fps: float) -> None:
    import imageio.v2 as imageio

    with imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p",
                            macro_block_size=1, quality=8) as writer:
        for frame in stack:
            writer.append_data(frame)   # type: ignore[attr-defined]  # imageio's v2 writers lack stubs for it


def frame_strip(frames: list[np.ndarray], count: int = 6) -> np.ndarray:
    """`count` evenly spaced frames side by side (for READMEs and reports)."""
    pick = np.linspace(0, len(frames) - 1, count).round().astype(int) if len(frames) > count else range(len(frames))
    return np.concatenate([frames[i] for i in pick], axis=1)
