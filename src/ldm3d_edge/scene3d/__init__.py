"""RGB + depth -> 3D: point clouds, meshes and panorama spheres, files (GLB / PLY / OBJ), novel views and
camera-flight videos. Sits on top of the runtime (numpy, pillow; trimesh for mesh files, imageio for video)."""

from .camera import (
                     DEFAULT_FAR,
                     DEFAULT_HFOV_DEG,
                     DEFAULT_NEAR,
                     EQUIRECTANGULAR,
                     PERSPECTIVE,
                     Camera,
                     DepthMapping,
                     Pose,
)
from .files import MESH_FORMATS, to_trimesh, write_mesh, write_point_cloud
from .geometry import DEFAULT_EDGE_THRESHOLD, RGBD, Mesh, panorama_mesh, perspective_mesh, rgbd_mesh, unproject

__all__ = ["Camera", "DepthMapping", "Pose", "RGBD", "Mesh", "perspective_mesh", "panorama_mesh", "rgbd_mesh",
           "unproject", "to_trimesh", "write_mesh", "write_point_cloud", "MESH_FORMATS", "PERSPECTIVE",
           "EQUIRECTANGULAR", "DEFAULT_HFOV_DEG", "DEFAULT_NEAR", "DEFAULT_FAR", "DEFAULT_EDGE_THRESHOLD"]
from .files import read_rgbd
from .outputs import write_3d
from .render import SceneRenderer, View, fill_holes, psnr
from .video import PATHS, frame_strip, render_frames, write_video

__all__ += ["read_rgbd", "write_3d", "SceneRenderer", "View", "fill_holes", "psnr", "PATHS", "frame_strip",
            "render_frames", "write_video"]
