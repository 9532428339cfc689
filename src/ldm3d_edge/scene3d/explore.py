"""Walk into the picture: new viewpoints completed by generation, fused into one 3D scene (issue 21).

A moved camera sees what the one generated view never saw. Instead of smearing the background over those holes
(render.fill_holes), each keyframe of the walk is completed by the model itself: the fused scene is rendered from
the keyframe's pose (render.splat); the depth of the pixels no point reached is filled smoothly from the hole's
background side (render.background_fill), their colour row-filled, the unsampled rim of an object's silhouette
given the object's depth and colour (render.occluder_rim); then the hole, grown by a few pixels, is
inpainted from that fill (strength 0.6: SDEdit inside the hole) with the result's prompt (Pipeline.inpaint: colour
and depth together). The model's depth, fitted to the fill by scale and shift, and its colour take over from the
fill one latent cell into the hole (interior); the new pixels are lifted to 3D with the source's depth mapping and
added to the scene, so the next pose sees them. The frames of the flight are then rendered from the fused scene.

Poses are in the source camera's frame (scene3d.camera: X right, Y up, looking along -Z); `distance` is how far
the walk goes, as a fraction of the nearest content's distance (the 5th percentile of the source's distances).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..runtime.errors import InvalidArgumentError
from ..runtime.inpaint import dilate, fit_depth
from .camera import EQUIRECTANGULAR, Camera, DepthMapping, Pose
from .geometry import RGBD, pixel_grid, unproject
from .render import EDGE_SNAP, background_fill, fill_holes, occluder_rim, snap_depth_edges, splat, window_extremes

EXPLORE_PATHS = ("walk", "orbit", "dolly", "pano-walk")
DEFAULT_DISTANCE = 0.5     # of the nearest content's distance
DEFAULT_KEYFRAMES = 8
GROW_PX = 2                # the hole is grown by this much before inpainting: its rim is splatting's thinnest
# Inpainting starts from the row-filled view noised this far up the schedule (SDEdit), not from pure noise: on
# the embedded model's held-out scenes, strength 1 painted thin holes in colours of its own (mean error 0.14 in a
# 4-row strip, row fill 0.003), 0.6 kept them near the row fill's colours (0.016) and beat its depth in 4 of 4
# (AbsRel-like error 0.012-0.035 vs 0.022-0.050).
DEFAULT_STRENGTH = 0.6
NEARER_TOL = 0.05          # relative inverse depth: how far in front of the background fill the model may paint


@dataclass
class Keyframe:
    pose: Pose
    unseen: float                 # share of the view no point reached before completion
    unseen_after: float           # ... and after it (0 unless inpainting was skipped)
    seconds: float
    added_points: int


@dataclass
class Walk:
    points: np.ndarray            # (N, 3) float32, the fused scene in the source camera's frame
    colors: np.ndarray            # (N, 3) uint8
    keyframes: list[Keyframe] = field(default_factory=list)


def default_explore_path(rgbd: RGBD) -> str:
    return "pano-walk" if rgbd.is_panorama else "walk"


def explore_path(name: str, rgbd: RGBD, distance: float = DEFAULT_DISTANCE) -> Callable[[float], Pose]:
    """t in [0, 1] -> pose: from the source viewpoint out to `distance` x the nearest content's distance (walk:
    forward with a sideways sway; dolly: straight forward; orbit: around the scene's median depth; pano-walk:
    forward while turning once around, inside a panorama)."""
    if name not in EXPLORE_PATHS:
        raise InvalidArgumentError(f"path must be one of {', '.join(EXPLORE_PATHS)}, got {name!r}")
    if isinstance(distance, bool) or not isinstance(distance, (int, float)) or not 0 < distance <= 2:
        raise InvalidArgumentError(f"distance must be in (0, 2] (a fraction of the nearest content's distance), "
                                   f"got {distance!r}")
    if (name == "pano-walk") != rgbd.is_panorama:
        raise InvalidArgumentError("pano-walk is the panorama path; a panorama takes only pano-walk" if rgbd.is_panorama
                                   else "pano-walk needs a panorama (2:1 equirectangular) input")
    near = float(np.percentile(rgbd.distance, 5))
    reach = distance * near
    median = float(np.median(rgbd.distance))

    def pose(t: float) -> Pose:
        if name == "dolly":
            return Pose(np.eye(3), np.array([0.0, 0.0, -reach * t]))
        if name == "walk":
            return Pose.look_at((0.3 * reach * math.sin(math.pi * t), 0.0, -reach * t),
                                (0.0, 0.0, -median - reach * t))
        if name == "orbit":
            a = 2 * math.pi * t
            return Pose.look_at((reach * math.sin(a), 0.25 * reach * (1 - math.cos(a)), 0.0), (0.0, 0.0, -median))
        yaw = -360.0 * t
        a = math.radians(yaw)
        return Pose.from_yaw(yaw, position=(-math.sin(a) * reach * t, 0.0, -math.cos(a) * reach * t))

    return pose


def _lift(camera: Camera, pose: Pose, pixels: tuple[np.ndarray, ...], distance: np.ndarray,
          supersample: int) -> np.ndarray:
    """Pixels (row, col) of a view at `pose` with their distances -> (N, 3) points in the scene's frame, each
    pixel split into supersample^2 sub-pixels like unproject."""
    u, v = pixel_grid(camera.height, camera.width, supersample)
    s = supersample
    rows, cols = pixels
    sub_u = u.reshape(camera.height, s, camera.width, s)[rows, :, cols, :] if s > 1 else u[rows, cols][:, None, None]
    sub_v = v.reshape(camera.height, s, camera.width, s)[rows, :, cols, :] if s > 1 else v[rows, cols][:, None, None]
    rays = camera.rays(sub_u, sub_v) * distance[:, None, None, None]
    return (rays.reshape(-1, 3) @ pose.rotation.T + pose.position).astype(np.float32)


def cracks(holes: np.ndarray) -> np.ndarray:
    """Unseen pixels that are sampling gaps, not hidden surfaces: seen above and below, or left and right (a
    magnified surface splatted from too few points leaves such one-pixel lines). The row fill closes them
    exactly; inpainting them would regenerate every latent cell a line crosses."""
    seen = np.pad(~holes, 1, constant_values=False)
    vertical = seen[:-2, 1:-1] & seen[2:, 1:-1]
    horizontal = seen[1:-1, :-2] & seen[1:-1, 2:]
    return holes & (vertical | horizontal)


def close_cracks(image: np.ndarray, inv: np.ndarray, holes: np.ndarray, tol: float = 0.1) -> np.ndarray:
    """`image` with each crack pixel (see cracks) coloured from the two seen pixels either side of it, above and
    below or else left and right: their mean where they lie on one surface (inverse depths `inv` within `tol`), the
    farther one's colour across a depth edge (what the row fill would take there). The row fill copies a pixel's
    farther neighbour along its row, so a magnified floor's missing row took the colour of whatever ended the row
    and drew a line of an object's colour across the floor (benchmarks/results/explore-embedded/ contact sheets)."""
    seen = np.pad(~holes, 1, constant_values=False)
    rgb = np.pad(image.astype(np.float32), ((1, 1), (1, 1), (0, 0)))
    depth = np.pad(inv.astype(np.float32), 1)
    out = image.copy()
    done = np.zeros_like(holes)
    for first, second in (((slice(None, -2), slice(1, -1)), (slice(2, None), slice(1, -1))),     # above, below
                          ((slice(1, -1), slice(None, -2)), (slice(1, -1), slice(2, None)))):    # left, right
        pair = holes & ~done & seen[first] & seen[second]      # a crack, as cracks() defines it
        d1, d2 = depth[first], depth[second]
        mean = (rgb[first] + rgb[second]) / 2
        farther = np.where((d1 <= d2)[..., None], rgb[first], rgb[second])
        colour = np.where((np.abs(d1 - d2) <= tol)[..., None], mean, farther)
        out[pair] = colour[pair].round().astype(image.dtype)
        done |= pair
    return out


def starting_fill(image: np.ndarray, rel: np.ndarray, holes: np.ndarray,
                  wrap: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inverse depth, colour, rim): what a keyframe's inpainting starts from, for the row-filled `image` and the
    relative inverse depth `rel` of a view with `holes` unseen. The depth of the holes is filled smoothly from
    their background side (render.background_fill), the unsampled rim of an object's silhouette takes the
    object's depth and colour (render.occluder_rim; `rim` is where), and cracks their neighbours' colour
    (close_cracks). Only the seen pixels of `rel` are read."""
    prior, image, rim = occluder_rim(rel, background_fill(rel, holes, wrap=wrap), holes, image, wrap=wrap)
    return prior, close_cracks(image, rel, holes), rim


def unclipped_distance(mapping: DepthMapping, rel: np.ndarray) -> np.ndarray:
    """DepthMapping.to_distance without its clip to [0, 1] (near and far of the source view), kept within 4 x
    far: seen from a moved camera, content can lie nearer than the source's nearest."""
    return (1.0 / np.maximum(mapping.scale * rel.astype(np.float64) + mapping.shift, 0.25 * mapping.shift)).astype(
        np.float32)


def interior(hidden: np.ndarray, cell: int) -> np.ndarray:
    """Per pixel of the hidden region, 0 at its rim rising to 1 one latent cell (`cell` image pixels) inside, 0
    outside: how far the model's own colour and depth are trusted. A latent pixel covers a cell; where the hole
    is thinner than that, the decoded cell mixes in what lies beside the hole (the occluder's depth), and on the
    held-out scenes the model's depth there was worse than the background fill's (benchmarks/explore_quality.py)."""
    depth = np.zeros(hidden.shape, np.float32)
    inner = hidden.copy()
    for _ in range(cell):
        inner &= ~dilate(~inner, 1)
        depth += inner
    return (depth / cell).astype(np.float32)


class Explorer:
    """One walk: the fused scene grows keyframe by keyframe."""

    def __init__(self, pipe, rgbd: RGBD, prompt: str, camera: Camera | None = None, supersample: int = 4,
                 grow: int = GROW_PX, strength: float = DEFAULT_STRENGTH, **inpaint_kw):
        self.pipe, self.rgbd, self.prompt = pipe, rgbd, prompt
        self.camera = camera or rgbd.camera
        self.supersample, self.grow, self.inpaint_kw = supersample, grow, {"strength": strength, **inpaint_kw}
        # depth-edge pixels snapped to a side first, as SceneRenderer does: left floating between an object and
        # the background they smear its colour over what the walk uncovers
        # ... and those moved back onto the background get the background's colour (the row fill's farther
        # side): their colour is the decoder's blend of object and background, and left so it draws a halo of
        # the object on the background that the walk then uncovers and the row fill repeats along the rows
        distance = snap_depth_edges(rgbd.distance)
        moved_back = distance > rgbd.distance * 1.0001
        # the decoder's colour blur reaches a pixel further than its depth blur: the background pixels beside
        # them too
        halo = dilate(moved_back, 1) & (distance >= window_extremes(distance)[1] / (1 + EDGE_SNAP))
        rgb = fill_holes(rgbd.rgb, distance, halo)[0] if halo.any() else rgbd.rgb
        snapped = RGBD(rgb, rgbd.mapping.to_relative(distance), rgbd.camera, rgbd.mapping)
        points, colors = unproject(snapped, supersample)
        self.walk = Walk(points, colors)

    def view(self, pose: Pose, fill: bool = True, camera: Camera | None = None):
        """(image, distance, unseen) of the fused scene from `pose` through `camera` (default: the walk's);
        unseen pixels row-filled when `fill`."""
        image, dist, holes = splat(self.walk.points, self.walk.colors, pose, camera or self.camera)
        if fill and holes.any() and not holes.all():
            image, dist = fill_holes(image, dist, holes)
        return image, dist, holes

    def complete(self, pose: Pose, seed: int | None = None) -> Keyframe:
        """Render the fused scene from `pose`, inpaint what it never saw, add the new pixels to the scene."""
        t0 = time.perf_counter()
        image, dist, holes = self.view(pose)
        unseen = float(holes.mean())
        if not holes.any():
            k = Keyframe(pose, 0.0, 0.0, time.perf_counter() - t0, 0)
            self.walk.keyframes.append(k)
            return k
        mapping = self.rgbd.mapping
        # not clipped to [0, 1]: a moved camera sees content nearer than the source's near plane (and farther than
        # its far one), and clipping it made the fill step away from it
        rel = mapping.to_relative(np.where(dist > 0, dist, mapping.far))
        prior, image, rim = starting_fill(image, rel, holes, wrap=self.camera.projection == EQUIRECTANGULAR)
        rgb, new_rel = image, prior          # cracks: their neighbours' colour, the background fill's depth
        hidden = holes & ~cracks(holes)
        if hidden.any():
            out = self.pipe.inpaint(image, prior.clip(0, 1), dilate(hidden, self.grow), self.prompt, seed=seed,
                                    **{**self.inpaint_kw, "align_depth": False})
            a, b = fit_depth(out.depth, prior, hidden & ~rim)   # fitted to the background the hole reveals
            model_rel = a * out.depth + b
            # what a moved camera uncovers was hidden from the source view, so it lies behind what hid it: where
            # the model puts new content in front of the background fill (it tends to paint the prompt's object
            # again into the hole), the fill is kept, colour and depth
            behind = np.clip(1 - (model_rel - prior - NEARER_TOL) / NEARER_TOL, 0, 1)
            w = interior(hidden, getattr(self.pipe.manifest, "vae_scale_factor", 8)) * behind
            new_rel = np.where(hidden, prior + w * (model_rel - prior), prior)
            blended = image + w[..., None] * (out.rgb.astype(np.float32) - image)
            rgb = np.where(hidden[..., None], blended.round().clip(0, 255), image).astype(np.uint8)
        new_dist = unclipped_distance(mapping, new_rel)
        # only the unseen pixels become new points; the grown rim was inpainted for a seamless context, and what
        # the scene already has there stays (no doubled surfaces)
        pixels = np.nonzero(holes)
        added = _lift(self.camera, pose, pixels, new_dist[pixels], self.supersample)
        colors = np.repeat(rgb[pixels], self.supersample ** 2, axis=0)
        self.walk.points = np.concatenate([self.walk.points, added])
        self.walk.colors = np.concatenate([self.walk.colors, colors])
        after = float(self.view(pose, fill=False)[2].mean())
        k = Keyframe(pose, unseen, after, time.perf_counter() - t0, len(added))
        self.walk.keyframes.append(k)
        return k


def explore(pipe, rgbd: RGBD, prompt: str, path: str | None = None, distance: float = DEFAULT_DISTANCE,
            keyframes: int = DEFAULT_KEYFRAMES, frames: int = 48, seed: int = 0, progress: bool = False,
            cancel: Callable[[], bool] | None = None, **inpaint_kw) -> tuple[Walk, list[np.ndarray]]:
    """Walk `path` from the source view out to `distance`, completing `keyframes` evenly spaced poses by
    inpainting (keyframe k with seed + k), then render `frames` frames of the flight (out and back) from the
    fused scene; returns the walk and the frames. `cancel()` returning True stops between keyframes
    (GenerationCancelled). inpaint_kw: Pipeline.inpaint's (num_inference_steps, guidance_scale, ...)."""
    from ..runtime.base import GenerationCancelled
    from .video import frame_camera

    path = path or default_explore_path(rgbd)
    pose_at = explore_path(path, rgbd, distance)
    for name, value, hi in (("keyframes", keyframes, 64), ("frames", frames, 10000)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
            raise InvalidArgumentError(f"{name} must be an integer from 1 to {hi}, got {value!r}")
    explorer = Explorer(pipe, rgbd, prompt, **inpaint_kw)
    ts = [(k + 1) / keyframes for k in range(keyframes)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=keyframes, desc="keyframes", unit="keyframe")
    for k, t in enumerate(ts):
        if cancel is not None and cancel():
            raise GenerationCancelled(f"explore cancelled after {k} of {keyframes} keyframes")
        kf = explorer.complete(pose_at(t), seed=seed + k)
        if bar is not None:
            bar.set_postfix_str(f"unseen {100 * kf.unseen:.1f} % -> {100 * kf.unseen_after:.1f} %", refresh=False)
            bar.update()
    if bar is not None:
        bar.close()
    # the flight: out to the farthest keyframe and back, seen through the frame camera (4:3 inside a panorama)
    camera = frame_camera(rgbd)
    images = [explorer.view(pose_at(1 - abs(1 - 2 * i / max(frames - 1, 1))), camera=camera)[0]
              for i in range(frames)]
    return explorer.walk, images


def write_walk(walk: Walk, images: list[np.ndarray], prefix, fps: float = 12.0, info: dict | None = None) -> list:
    """<prefix>.glb and <prefix>.ply (the fused scene as coloured points), <prefix>.mp4 and .gif (the flight),
    <prefix>_strip.png (six frames) and <prefix>.json (each keyframe's unseen share before / after completion,
    seconds, points added; plus `info`); each file written to a temporary name first."""
    import json
    from pathlib import Path

    import trimesh
    from PIL import Image

    from ..runtime.result import atomic_write
    from .files import write_point_cloud
    from .video import frame_strip, write_video

    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    alpha = np.full((len(walk.colors), 1), 255, np.uint8)
    # glTF is Y up, -Z forward like the scene's frame: the points go in as they are
    glb = trimesh.Scene(trimesh.PointCloud(walk.points, colors=np.concatenate([walk.colors, alpha], 1))).export(
        file_type="glb")
    written = [prefix.with_suffix(".glb")]
    atomic_write(written[0], lambda p: Path(p).write_bytes(glb))
    written.append(write_point_cloud(walk.points, walk.colors, prefix.with_suffix(".ply")))
    for ext in (".mp4", ".gif"):
        written.append(write_video(images, prefix.with_suffix(ext), fps))
    strip = prefix.with_name(prefix.name + "_strip.png")
    atomic_write(strip, lambda p: Image.fromarray(np.ascontiguousarray(frame_strip(images))).save(p, format="PNG"))
    written.append(strip)
    record = {**(info or {}), "points": len(walk.points), "frames": len(images),
              "keyframes": [{"position": k.pose.position.round(4).tolist(), "unseen": k.unseen,
                             "unseen_after": k.unseen_after, "seconds": round(k.seconds, 3),
                             "added_points": k.added_points} for k in walk.keyframes]}
    written.append(prefix.with_suffix(".json"))
    atomic_write(written[-1], lambda p: Path(p).write_text(json.dumps(record, indent=2)))
    return written
