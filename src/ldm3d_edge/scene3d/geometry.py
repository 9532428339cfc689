"""RGB + depth -> 3D: point clouds and triangle meshes.

Perspective images become a grid mesh, one vertex per pixel centre and two triangles per 2x2 pixel block;
triangles whose corners' distances differ by more than `edge_threshold` (relative: (max - min) / min) span a
depth discontinuity and are dropped, so foreground objects do not melt into the background.

Panoramas become a latitude/longitude sphere: the same grid with radius = distance, its last column joined to
its first by triangles over the *same* vertices (no seam crack) and each pole closed by a fan around one extra
vertex at the mean radius and colour of the outermost row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..runtime.errors import InvalidArgumentError
from .camera import DEFAULT_HFOV_DEG, EQUIRECTANGULAR, Camera, DepthMapping

DEFAULT_EDGE_THRESHOLD = 0.2   # the floor near the horizon changes ~1/(rows below it) per pixel: keep it


@dataclass
class RGBD:
    """One RGB + depth image and how to read it."""

    rgb: np.ndarray          # (H, W, 3) uint8
    depth: np.ndarray        # (H, W) float32 relative inverse depth in [0, 1], near = 1
    camera: Camera
    mapping: DepthMapping = DepthMapping()

    def __post_init__(self):
        rgb, depth = np.asarray(self.rgb), np.asarray(self.depth)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InvalidArgumentError(f"rgb must be a (H, W, 3) uint8 array, got {rgb.dtype}{list(rgb.shape)}")
        if depth.shape != rgb.shape[:2]:
            raise InvalidArgumentError(f"depth must be (H, W) = {rgb.shape[:2]} like the RGB image, got "
                                       f"{list(depth.shape)}")
        if not np.isfinite(depth).all():
            raise InvalidArgumentError("depth contains NaN or inf")
        if (self.camera.height, self.camera.width) != depth.shape:
            self.camera = self.camera.resized(*depth.shape)
        self.rgb, self.depth = rgb, depth.astype(np.float32)

    @classmethod
    def from_result(cls, result, projection: str | None = None, hfov_deg: float = DEFAULT_HFOV_DEG,
                    mapping: DepthMapping | None = None) -> RGBD:
        """From a runtime RGBDResult (projection None: equirectangular for 2:1, else perspective)."""
        return cls(result.rgb, result.depth, Camera.for_image(result.height, result.width, projection, hfov_deg),
                   mapping or DepthMapping())

    def sidecar(self) -> dict:
        """What the result JSON records for 3D use: the camera model and the depth mapping."""
        return {"camera": self.camera.to_json(), "depth_mapping": self.mapping.to_json()}

    @property
    def distance(self) -> np.ndarray:
        return self.mapping.to_distance(self.depth)

    @property
    def is_panorama(self) -> bool:
        return self.camera.projection == EQUIRECTANGULAR


@dataclass
class Mesh:
    vertices: np.ndarray     # (N, 3) float32
    faces: np.ndarray        # (M, 3) int64, counter-clockwise seen from the viewer
    colors: np.ndarray       # (N, 3) uint8
    uv: np.ndarray | None    # (N, 2) float32 texture coordinates (v up), perspective meshes only
    texture: np.ndarray | None  # (H, W, 3) uint8 image the uv coordinates index


def pixel_grid(height: int, width: int, supersample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) of pixel centres, or of an s x s grid of sub-pixel centres per pixel; shape (H*s, W*s)."""
    s = supersample
    u = (np.arange(width * s) + 0.5) / s
    v = (np.arange(height * s) + 0.5) / s
    return np.meshgrid(u, v)


def unproject(rgbd: RGBD, supersample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel (or sub-pixel, taking its pixel's colour and depth) -> (N, 3) points and (N, 3) uint8 colours."""
    h, w = rgbd.depth.shape
    u, v = pixel_grid(h, w, supersample)
    dist = rgbd.distance
    colors = rgbd.rgb
    if supersample > 1:
        dist = np.repeat(np.repeat(dist, supersample, 0), supersample, 1)
        colors = np.repeat(np.repeat(colors, supersample, 0), supersample, 1)
    points = rgbd.camera.rays(u, v) * dist[..., None]
    return points.reshape(-1, 3).astype(np.float32), colors.reshape(-1, 3)


def grid_faces(height: int, width: int, wrap: bool = False) -> np.ndarray:
    """Two triangles per 2x2 block of a row-major vertex grid; wrap joins the last column to the first."""
    idx = np.arange(height * width).reshape(height, width)
    right = np.roll(idx, -1, axis=1) if wrap else idx[:, 1:]
    left = idx if wrap else idx[:, :-1]
    a, b = left[:-1], right[:-1]        # top-left, top-right
    c, d = left[1:], right[1:]          # bottom-left, bottom-right
    # Counter-clockwise seen from the camera (rows go down the image = -Y, columns right = +X)
    return np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])


def discontinuity_mask(distance_per_vertex: np.ndarray, faces: np.ndarray, edge_threshold: float) -> np.ndarray:
    """True for faces whose corners' distances spread by more than edge_threshold * the nearest corner's."""
    d = distance_per_vertex[faces]
    return (d.max(axis=1) - d.min(axis=1)) > edge_threshold * d.min(axis=1)


def _check_threshold(edge_threshold: float | None) -> None:
    if edge_threshold is not None and not edge_threshold > 0:
        raise InvalidArgumentError(f"edge threshold must be > 0 (or None to keep every triangle), got {edge_threshold}")


def perspective_mesh(rgbd: RGBD, edge_threshold: float | None = DEFAULT_EDGE_THRESHOLD) -> Mesh:
    """A textured grid mesh of a perspective RGBD image; see the module docstring."""
    _check_threshold(edge_threshold)
    h, w = rgbd.depth.shape
    points, colors = unproject(rgbd)
    faces = grid_faces(h, w)
    if edge_threshold is not None:
        faces = faces[~discontinuity_mask(rgbd.distance.reshape(-1), faces, edge_threshold)]
    u, v = pixel_grid(h, w)
    uv = np.stack([u / w, 1.0 - v / h], -1).reshape(-1, 2).astype(np.float32)
    return _compact(Mesh(points, faces.astype(np.int64), colors, uv, rgbd.rgb))


def panorama_mesh(rgbd: RGBD, edge_threshold: float | None = None) -> Mesh:
    """A closed sphere of an equirectangular RGBD image (vertex colours); see the module docstring."""
    _check_threshold(edge_threshold)
    h, w = rgbd.depth.shape
    points, colors = unproject(rgbd)
    dist = rgbd.distance.reshape(-1)
    parts = [grid_faces(h, w, wrap=True)]
    n = h * w
    poles, pole_colors, pole_dist = [], [], []
    for k, (row, sign) in enumerate(((0, 1.0), (h - 1, -1.0))):
        ring = np.arange(w) + row * w
        radius = float(dist[ring].mean())
        poles.append([0.0, sign * radius, 0.0])
        pole_colors.append(colors[ring].mean(axis=0).round())
        pole_dist.append(radius)
        nxt = np.roll(ring, -1)
        pole = np.full(w, n + k)
        # north: pole, left, right; south: right, left, pole, seen from inside like the grid triangles
        parts.append(np.stack([pole, ring, nxt], -1) if sign > 0 else np.stack([ring, pole, nxt], -1))
    faces = np.concatenate(parts)
    vertices = np.concatenate([points, np.asarray(poles, np.float32)])
    colors = np.concatenate([colors, np.asarray(pole_colors, np.uint8)])
    if edge_threshold is not None:
        faces = faces[~discontinuity_mask(np.concatenate([dist, pole_dist]), faces, edge_threshold)]
    return _compact(Mesh(vertices.astype(np.float32), faces.astype(np.int64), colors, None, None))


def rgbd_mesh(rgbd: RGBD, edge_threshold: float | None = DEFAULT_EDGE_THRESHOLD) -> Mesh:
    return panorama_mesh(rgbd, edge_threshold) if rgbd.is_panorama else perspective_mesh(rgbd, edge_threshold)


def _compact(mesh: Mesh) -> Mesh:
    """Drop vertices no face uses (left behind by discontinuity culling) and renumber the faces."""
    used = np.zeros(len(mesh.vertices), bool)
    used[mesh.faces.reshape(-1)] = True
    if used.all():
        return mesh
    new_index = np.cumsum(used) - 1
    return Mesh(mesh.vertices[used], new_index[mesh.faces], mesh.colors[used],
                None if mesh.uv is None else mesh.uv[used], mesh.texture)
