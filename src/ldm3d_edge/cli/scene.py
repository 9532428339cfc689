"""ldm3d mesh, ldm3d video: an RGBD result (or an RGB image with --depth) -> 3D files, camera-flight videos."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..runtime.errors import InvalidArgumentError
from .common import Subparsers, add_3d_options, add_rgbd_input, check_3d_options, input_prefix, read_input, say


def register(sub: Subparsers) -> None:
    vid = sub.add_parser("video", help="RGBD -> camera-flight video (MP4 or GIF)",
                         description="Render a virtual camera moving through an RGBD scene (the output of 'ldm3d "
                                     "generate', or any RGB image with --depth) and write an MP4 or a GIF. Paths: "
                                     "orbit (circle, looking at the centre), dolly (in and out), swing (side to "
                                     "side), pano-walk (a 360-degree turn inside a panorama). Disocclusions are "
                                     "filled from the background side.")
    add_rgbd_input(vid)
    vid.add_argument("--out", required=True, help="video file: .mp4 (H.264) or .gif")
    add_3d_options(vid, video=True, mesh=False)
    vid.set_defaults(run=run_video)

    me = sub.add_parser("mesh", help="RGBD -> GLB / PLY / OBJ mesh and point cloud",
                        description="Turn an RGBD result into 3D files: a textured grid mesh (perspective) with "
                                    "triangles across depth edges dropped, or a closed sphere (panorama).")
    add_rgbd_input(me)
    me.add_argument("--out", help="output prefix (default: the input's prefix)")
    me.add_argument("--formats", default="glb,ply,obj", help="comma-separated from glb, ply, obj (default: all)")
    me.add_argument("--points", action="store_true", help="also write <prefix>_points.ply, the coloured point cloud")
    add_3d_options(me, video=False, mesh=True)
    me.set_defaults(run=run_mesh)


def run_video(a: argparse.Namespace) -> int:
    from ..scene3d.video import VIDEO_FORMATS, render_frames, write_video

    if Path(a.out).suffix.lower() not in VIDEO_FORMATS:
        raise InvalidArgumentError(f"--out must end in {' or '.join(VIDEO_FORMATS)}, got {a.out}")
    check_3d_options(a)
    rgbd = read_input(a)
    t0 = time.perf_counter()
    views = render_frames(rgbd, a.path, a.frames, progress=True)
    out = write_video([v.image for v in views], a.out, a.fps)
    holes = sum(v.hole_fraction for v in views) / len(views)
    print(f"wrote {out} ({len(views)} frames, {a.fps:g} fps, {views[0].image.shape[1]}x{views[0].image.shape[0]}; "
          f"{holes:.1%} of pixels were disocclusions, filled) in {time.perf_counter() - t0:.1f}s")
    return 0


def run_mesh(a: argparse.Namespace) -> int:
    from ..generate import write_3d_files
    from ..scene3d import MESH_FORMATS

    formats = tuple(f.strip().lower() for f in a.formats.split(",") if f.strip())
    bad = [f for f in formats if f not in MESH_FORMATS]
    if bad or not formats:
        raise InvalidArgumentError(f"--formats takes a comma-separated list from {', '.join(MESH_FORMATS)}, got "
                                   f"{a.formats!r}")
    check_3d_options(a)
    rgbd = read_input(a)
    prefix = Path(a.out) if a.out else input_prefix(Path(a.input))
    write_3d_files(rgbd, prefix, {"mesh_formats": formats, "points": a.points, "edge_threshold": a.edge_threshold},
                   progress=True, report=say)
    return 0
