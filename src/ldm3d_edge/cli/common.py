"""What the `ldm3d` commands share: argument types, device help, the RGBD input and 3D options."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..runtime.errors import InvalidArgumentError

PRECISIONS = ["f32", "bf16", "f16"]     # OpenVINO inference precision hints

Subparsers = Any   # argparse's _SubParsersAction, which it does not export


def int_arg(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def float_arg(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def device_help(default: str = "auto") -> str:
    from ..runtime.backends import DEVICE_HELP

    return f"{DEVICE_HELP} (default: {default})"


def add_no_verify(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-verify", action="store_true",
                   help="skip checking the model folder's files against its manifest at load (sizes every time, "
                        "sha256 once per file version; 'ldm3d verify' checks on demand)")


def add_rgbd_input(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="<prefix>, <prefix>_rgb.png or <prefix>.json of an 'ldm3d generate' result, or an "
                                 "RGB image (with --depth)")
    p.add_argument("--depth", help="depth image for an RGB INPUT (16-bit or 8-bit PNG, near = bright)")


def add_3d_options(p: argparse.ArgumentParser, video: bool, mesh: bool) -> None:
    from ..scene3d import DEFAULT_EDGE_THRESHOLD, DEFAULT_FAR, DEFAULT_HFOV_DEG, DEFAULT_NEAR, PATHS
    from ..scene3d.video import DEFAULT_FPS, DEFAULT_FRAMES

    o = p.add_argument_group("3D options")
    o.add_argument("--projection", choices=["perspective", "equirectangular"],
                   help="how the image maps to rays (default: from the result's JSON, else equirectangular for 2:1 "
                        "images, perspective otherwise)")
    o.add_argument("--hfov", type=float_arg, help=f"horizontal field of view of a perspective image in degrees "
                                                  f"(default {DEFAULT_HFOV_DEG:g})")
    o.add_argument("--near", type=float_arg, help=f"distance of the nearest depth value (default {DEFAULT_NEAR:g})")
    o.add_argument("--far", type=float_arg, help=f"distance of the farthest depth value (default {DEFAULT_FAR:g}); "
                                                 "1/distance is interpolated linearly between them")
    if mesh:
        o.add_argument("--edge-threshold", type=float_arg, default=DEFAULT_EDGE_THRESHOLD,
                       help="drop mesh triangles whose corner distances differ by more than this fraction of the "
                            f"nearest (default {DEFAULT_EDGE_THRESHOLD:g})")
    if video:
        o.add_argument("--path", choices=PATHS, help="camera path (default: orbit, or pano-walk for panoramas)")
        o.add_argument("--frames", type=int_arg, default=DEFAULT_FRAMES, help=f"default {DEFAULT_FRAMES}")
        o.add_argument("--fps", type=float_arg, default=DEFAULT_FPS, help=f"default {DEFAULT_FPS}")


def check_3d_options(a: argparse.Namespace) -> None:
    """The 3D options' ranges, checked before any work (so a bad value never leaves a half-done set of files)."""
    frames, fps = getattr(a, "frames", 2), getattr(a, "fps", 1.0)
    if getattr(a, "edge_threshold", 1.0) <= 0:
        raise InvalidArgumentError(f"--edge-threshold must be > 0, got {a.edge_threshold:g}")
    if not 2 <= frames <= 10000:
        raise InvalidArgumentError(f"--frames must be from 2 to 10000, got {frames}")
    if not 0 < fps <= 120:
        raise InvalidArgumentError(f"--fps must be in (0, 120], got {fps:g}")


def read_input(a: argparse.Namespace):
    from ..scene3d import read_rgbd

    return read_rgbd(a.input, depth=a.depth, projection=a.projection, hfov_deg=a.hfov, near=a.near, far=a.far)


def input_prefix(path: Path) -> Path:
    """Where outputs derived from an input go: a result's own prefix, or an image's path without its extension."""
    from ..runtime.result import result_prefix

    prefix = result_prefix(path)
    return prefix.with_suffix("") if prefix == path else prefix


def say(message: str) -> None:
    print(message, flush=True)
