"""Camera models, camera poses and the mapping from LDM3D's relative depth to distance.

Conventions (glTF's): X right, Y up, the camera looks along -Z. The source view's camera sits at the origin,
so an RGBD image unprojects into its own camera frame. Pixel (row i, column j) has its centre at
(u, v) = (j + 0.5, i + 0.5).

LDM3D emits *relative inverse depth* d in [0, 1] (near = 1), min-max normalised per image like the DPT maps it
was trained on: it fixes neither scale nor shift. `DepthMapping` turns it into a distance by choosing both:
the nearest value becomes `near`, the farthest `far`, and inverse depth is interpolated linearly in between,

    1 / distance = d / near + (1 - d) / far          (equivalently 1 / distance = scale * d + shift)

which keeps inverse depth affine in d, as the model's training targets were.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..runtime.errors import InvalidArgumentError

DEFAULT_HFOV_DEG = 60.0       # horizontal field of view assumed for perspective LDM3D images
DEFAULT_NEAR = 1.0
DEFAULT_FAR = 10.0

PERSPECTIVE = "perspective"
EQUIRECTANGULAR = "equirectangular"
PROJECTIONS = (PERSPECTIVE, EQUIRECTANGULAR)


@dataclass(frozen=True)
class DepthMapping:
    """Relative inverse depth d in [0, 1] (near = 1) <-> distance; see the module docstring."""

    near: float = DEFAULT_NEAR
    far: float = DEFAULT_FAR

    def __post_init__(self):
        if not (math.isfinite(self.near) and math.isfinite(self.far) and 0 < self.near < self.far):
            raise InvalidArgumentError(f"depth mapping needs 0 < near < far (finite), got near={self.near}, "
                                       f"far={self.far}")

    @classmethod
    def from_scale_shift(cls, scale: float, shift: float) -> DepthMapping:
        """1 / distance = scale * d + shift (scale > 0, shift > 0)."""
        if not (scale > 0 and shift > 0):
            raise InvalidArgumentError(f"depth scale and shift must both be > 0, got {scale}, {shift}")
        return cls(near=1.0 / (scale + shift), far=1.0 / shift)

    @property
    def scale(self) -> float:
        return 1.0 / self.near - 1.0 / self.far

    @property
    def shift(self) -> float:
        return 1.0 / self.far

    def to_distance(self, depth: np.ndarray) -> np.ndarray:
        d = np.clip(np.asarray(depth, dtype=np.float64), 0.0, 1.0)
        return (1.0 / (self.scale * d + self.shift)).astype(np.float32)

    def to_relative(self, distance: np.ndarray) -> np.ndarray:
        return ((1.0 / np.asarray(distance, dtype=np.float64) - self.shift) / self.scale).astype(np.float32)

    def to_json(self) -> dict:
        return {"near": self.near, "far": self.far, "formula": "1/distance = d/near + (1-d)/far",
                "d": "relative inverse depth in [0, 1], near = 1 (the 16-bit PNG divided by 65535)"}


@dataclass(frozen=True)
class Camera:
    """How pixels map to rays. perspective: a pinhole with square pixels, principal point at the centre and the
    given horizontal FOV; distance is planar (along the optical axis). equirectangular: longitude -180..180
    degrees across the width (0 = the -Z direction, at the centre column), latitude 90..-90 down the height;
    distance is radial."""

    projection: str
    width: int
    height: int
    hfov_deg: float = DEFAULT_HFOV_DEG

    def __post_init__(self):
        if self.projection not in PROJECTIONS:
            raise InvalidArgumentError(f"projection must be one of {', '.join(PROJECTIONS)}, got "
                                       f"{self.projection!r}")
        if self.width < 1 or self.height < 1:
            raise InvalidArgumentError(f"camera size must be positive, got {self.width}x{self.height}")
        if self.projection == PERSPECTIVE and not 1.0 <= self.hfov_deg <= 170.0:
            raise InvalidArgumentError(f"horizontal field of view must be 1..170 degrees, got {self.hfov_deg}")

    @classmethod
    def for_image(cls, height: int, width: int, projection: str | None = None,
                  hfov_deg: float = DEFAULT_HFOV_DEG) -> Camera:
        """projection None: equirectangular for a 2:1 image, perspective otherwise."""
        if projection is None:
            projection = EQUIRECTANGULAR if width == 2 * height else PERSPECTIVE
        return cls(projection, width, height, hfov_deg)

    def resized(self, height: int, width: int) -> Camera:
        return Camera(self.projection, width, height, self.hfov_deg)

    @property
    def focal(self) -> float:
        """Focal length in pixels (perspective)."""
        return (self.width / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)

    def rays(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Pixel coordinates -> (..., 3) directions scaled so that `distance * ray` is the 3D point."""
        if self.projection == PERSPECTIVE:
            f = self.focal
            x = (u - self.width / 2.0) / f
            y = -(v - self.height / 2.0) / f
            return np.stack([x, y, -np.ones_like(x)], axis=-1)
        lon = u / self.width * 2.0 * math.pi - math.pi
        lat = math.pi / 2.0 - v / self.height * math.pi
        return np.stack([np.cos(lat) * np.sin(lon), np.sin(lat), -np.cos(lat) * np.cos(lon)], axis=-1)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N, 3) points in this camera's frame -> (u, v, distance); distance <= 0 marks points it cannot see."""
        x, y, z = points[:, 0], points[:, 1], points[:, 2]
        if self.projection == PERSPECTIVE:
            dist = -z
            safe = np.where(dist > 1e-6, dist, 1.0)
            f = self.focal
            return x / safe * f + self.width / 2.0, -y / safe * f + self.height / 2.0, np.where(dist > 1e-6, dist, -1.0)
        r = np.sqrt(x * x + y * y + z * z)
        lon = np.arctan2(x, -z)
        lat = np.arcsin(np.clip(y / np.maximum(r, 1e-12), -1.0, 1.0))
        u = (lon + math.pi) / (2.0 * math.pi) * self.width
        v = (math.pi / 2.0 - lat) / math.pi * self.height
        return np.mod(u, self.width), v, np.where(r > 1e-6, r, -1.0)

    def to_json(self) -> dict:
        if self.projection == PERSPECTIVE:
            return {"model": "pinhole", "hfov_deg": self.hfov_deg, "focal_px": round(self.focal, 4),
                    "principal_point_px": [self.width / 2.0, self.height / 2.0], "width": self.width,
                    "height": self.height, "axes": "x right, y up, looking along -z", "distance": "planar (z)"}
        return {"model": "equirectangular", "longitude_deg": [-180, 180], "latitude_deg": [90, -90],
                "width": self.width, "height": self.height, "axes": "x right, y up, longitude 0 looks along -z",
                "distance": "radial"}


@dataclass(frozen=True)
class Pose:
    """A viewer's pose in the source camera's frame: camera-to-world rotation (3x3) and position (3,)."""

    rotation: np.ndarray
    position: np.ndarray

    @classmethod
    def identity(cls) -> Pose:
        return cls(np.eye(3), np.zeros(3))

    @classmethod
    def look_at(cls, eye, target, up=(0.0, 1.0, 0.0)) -> Pose:
        eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
        forward = target - eye
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, up)
        right /= np.linalg.norm(right)
        true_up = np.cross(right, forward)
        return cls(np.stack([right, true_up, -forward], axis=1), eye)

    @classmethod
    def from_yaw(cls, yaw_deg: float, position=(0.0, 0.0, 0.0), pitch_deg: float = 0.0) -> Pose:
        """Turned left by yaw (about +Y), then tilted up by pitch (about the camera's X)."""
        a, b = math.radians(yaw_deg), math.radians(pitch_deg)
        ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
        rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
        return cls(ry @ rx, np.asarray(position, dtype=np.float64))

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        return (points - self.position) @ self.rotation
