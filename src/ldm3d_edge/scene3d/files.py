"""Meshes and point clouds to files, through trimesh: GLB (glTF binary), PLY, OBJ + MTL + texture.

Every file is written to a temporary name beside its target and renamed, so a crash leaves no half-written
file. A perspective mesh is textured with the RGB image (GLB, OBJ; the PLY carries vertex colours); a panorama
sphere carries vertex colours (one vertex per pixel, so nothing is lost), because its seam shares vertices and
a texture would need them split.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from ..runtime.errors import InvalidArgumentError
from ..runtime.result import atomic_write, read_rgbd_files
from .camera import DEFAULT_FAR, DEFAULT_HFOV_DEG, DEFAULT_NEAR, EQUIRECTANGULAR, PERSPECTIVE, Camera, DepthMapping
from .geometry import RGBD, Mesh

MESH_FORMATS = ("glb", "ply", "obj")


def to_trimesh(mesh: Mesh, textured: bool = True, name: str = "rgbd"):
    """A trimesh.Trimesh (vertices kept as given); textured meshes get a material `name` (OBJ: `name`.png)."""
    import trimesh
    from PIL import Image

    if textured and mesh.uv is not None and mesh.texture is not None:
        material = trimesh.visual.material.SimpleMaterial(image=Image.fromarray(mesh.texture), name=name,
                                                          diffuse=[255, 255, 255, 255], ambient=[255, 255, 255, 255],
                                                          specular=[0, 0, 0, 255])
        visual: trimesh.visual.TextureVisuals | trimesh.visual.ColorVisuals = trimesh.visual.TextureVisuals(
            uv=mesh.uv, material=material)
    else:
        alpha = np.full((len(mesh.colors), 1), 255, np.uint8)
        visual = trimesh.visual.ColorVisuals(vertex_colors=np.concatenate([mesh.colors, alpha], axis=1))
    return trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, visual=visual, process=False)


def write_mesh(mesh: Mesh, path: str | Path) -> list[Path]:
    """Write `path` (.glb, .ply or .obj; OBJ also writes its .mtl and texture .png beside it); returns the paths."""
    from trimesh.exchange.gltf import export_glb
    from trimesh.exchange.obj import export_obj
    from trimesh.exchange.ply import export_ply

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in MESH_FORMATS:
        raise InvalidArgumentError(f"mesh file must end in {', '.join('.' + f for f in MESH_FORMATS)}, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "glb":
        data = export_glb(to_trimesh(mesh).scene())
        atomic_write(path, lambda p: Path(p).write_bytes(data))
        return [path]
    if fmt == "ply":
        data = export_ply(to_trimesh(mesh, textured=False), encoding="binary")
        atomic_write(path, lambda p: Path(p).write_bytes(data))
        return [path]
    text, files = export_obj(to_trimesh(mesh, name=path.stem + "_texture"), include_normals=False, return_texture=True,
                             mtl_name=path.stem + ".mtl")
    written = []
    for name, blob in files.items():   # the .mtl and its texture image, named after the mesh
        atomic_write(path.parent / name, functools.partial(_write_bytes, data=blob))
        written.append(path.parent / name)
    atomic_write(path, lambda p: Path(p).write_text(text))
    return [path] + written


def write_point_cloud(points: np.ndarray, colors: np.ndarray, path: str | Path) -> Path:
    """A coloured point cloud as binary PLY."""
    import trimesh
    from trimesh.exchange.ply import export_ply

    path = Path(path)
    if path.suffix.lower() != ".ply":
        raise InvalidArgumentError(f"point clouds are written as .ply, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    alpha = np.full((len(colors), 1), 255, np.uint8)
    data = export_ply(trimesh.PointCloud(points, colors=np.concatenate([colors, alpha], axis=1)), encoding="binary")
    atomic_write(path, lambda p: Path(p).write_bytes(data))
    return path


def read_rgbd(source: str | Path, depth: str | Path | None = None, projection: str | None = None,
              hfov_deg: float | None = None, near: float | None = None, far: float | None = None) -> RGBD:
    """An RGBD written by `ldm3d generate`: its prefix, its <prefix>_rgb.png or its <prefix>.json sidecar (whose
    camera and depth mapping are used unless overridden). Or any RGB image with `depth=` a depth image (16-bit
    PNG = relative inverse depth * 65535, or 8-bit, near = bright)."""
    files = read_rgbd_files(source, depth)
    info = {}
    if files.sidecar is not None:
        try:
            info = json.loads(files.sidecar.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise InvalidArgumentError(f"cannot read {files.sidecar}: {e}") from None
    cam = info.get("camera") or {}
    mapping = info.get("depth_mapping") or {}
    if projection is None and cam.get("model"):
        projection = EQUIRECTANGULAR if cam["model"] == EQUIRECTANGULAR else PERSPECTIVE
    hfov = hfov_deg if hfov_deg is not None else float(cam.get("hfov_deg", DEFAULT_HFOV_DEG))
    assert files.depth is not None   # read_rgbd_files needs the depth by default
    h, w = files.depth.shape
    camera = Camera.for_image(h, w, projection=projection, hfov_deg=hfov)
    dm = DepthMapping(near if near is not None else float(mapping.get("near", DEFAULT_NEAR)),
                      far if far is not None else float(mapping.get("far", DEFAULT_FAR)))
    return RGBD(files.rgb, files.depth, camera, dm)


def _write_bytes(path: str, data: bytes) -> None:
    Path(path).write_bytes(data)
