"""Procedural RGBD scenes with exact depth and a caption that says what is there.

A small numpy sphere tracer over signed distance fields: a floor plane, a back wall or a sky gradient, and one
to three objects (sphere, cube, cone, cylinder, torus) in named colours at named places, with Lambertian
shading and hard shadows from one directional light. Depth is converted the way LDM3D's DPT targets are:
relative inverse depth, min-max normalised per image to [0, 1], near = high.

Perspective scenes put the nearest object first in the caption ("a red sphere on the left in front of a blue
cube on a grey floor"); panorama scenes (2:1 equirectangular, camera in the middle of a room or a landscape)
start with "360 view of".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ldm3d_edge.metrics import COLOURS

SHAPES = ("sphere", "cube", "cone", "cylinder", "torus")
FLOORS = {"grey": (0.55, 0.55, 0.55), "beige": (0.72, 0.66, 0.52), "dark": (0.28, 0.28, 0.30),
          "brown": (0.45, 0.33, 0.22)}
WALLS = {"white": (0.85, 0.85, 0.82), "grey": (0.62, 0.63, 0.66), "sky": None}
# Coloured walls (data version 2): each named colour mixed with white, so an object of another colour still stands
# out against it; the wall's hue stays that colour's (saturation ~0.5, named by the same hue rule as objects).
WALL_COLOURS = {name: tuple(0.65 * c + 0.35 * w for c, w in zip(rgb, WALLS["white"])) for name, rgb in COLOURS.items()}
SIDES = {"left": -1.3, "centre": 0.0, "right": 1.3}
CAMERA_Y = 1.1
FAR = 40.0
LIGHT = np.array([-0.45, 0.8, -0.40]) / np.linalg.norm([-0.45, 0.8, -0.40])


@dataclass
class Obj:
    shape: str
    colour: str
    centre: np.ndarray        # world position of the object's base centre (on the floor)
    size: float

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass
class Scene:
    objects: list[Obj]
    floor: str
    wall: str
    caption: str
    panorama: bool = False
    meta: dict = field(default_factory=dict)


@dataclass
class Sample:
    rgb: np.ndarray           # (H, W, 3) float32 in [0, 1]
    depth: np.ndarray         # (H, W) float32 in [0, 1], normalised inverse depth, near = high
    distance: np.ndarray      # (H, W) float32 metric depth (z for perspective, ray length for panorama)
    object_mask: np.ndarray   # (H, W) int8: -1 background, k = index of the object hit
    caption: str
    scene: Scene


# ---- signed distance fields (p: (N, 3) points relative to the object's base centre) ----

def _sdf(obj: Obj, p: np.ndarray) -> np.ndarray:
    s = obj.size
    q = p - obj.centre
    if obj.shape == "sphere":
        return np.linalg.norm(q - [0, s, 0], axis=1) - s
    if obj.shape == "cube":
        d = np.abs(q - [0, s * 0.85, 0]) - s * 0.85
        return np.linalg.norm(np.maximum(d, 0), axis=1) + np.minimum(d.max(axis=1), 0)
    if obj.shape == "cylinder":
        h = s * 1.0
        r = s * 0.8
        dxz = np.hypot(q[:, 0], q[:, 2]) - r
        dy = np.abs(q[:, 1] - h) - h
        return np.minimum(np.maximum(dxz, dy), 0) + np.hypot(np.maximum(dxz, 0), np.maximum(dy, 0))
    if obj.shape == "cone":
        h, r = s * 2.2, s * 0.95
        # cone with apex at height h, base radius r at y = 0 (exact SDF of a capped cone, Quilez)
        qx, qy = np.hypot(q[:, 0], q[:, 2]), q[:, 1]
        k1x, k1y = 0.0, h
        k2x, k2y = -r, 2 * h
        cax = qx - np.minimum(qx, np.where(qy < 0, r, 0.0))
        cay = np.abs(qy - h / 2) - h / 2
        t = np.clip(((k1x - qx) * k2x + (k1y - qy) * k2y) / (k2x * k2x + k2y * k2y), 0, 1)
        cbx, cby = qx - k1x + k2x * t, qy - k1y + k2y * t
        sign = np.where((cbx < 0) & (cay < 0), -1.0, 1.0)
        return sign * np.sqrt(np.minimum(cax * cax + cay * cay, cbx * cbx + cby * cby))
    if obj.shape == "torus":
        R, r = s * 0.75, s * 0.32
        qq = q - [0, r, 0]
        return np.hypot(np.hypot(qq[:, 0], qq[:, 2]) - R, qq[:, 1]) - r
    raise ValueError(obj.shape)


def _scene_sdf(scene: Scene, p: np.ndarray, objects_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(distance, id): id -1 floor, -2 wall/room, k >= 0 object k. objects_only: for shadow rays."""
    d = np.full(len(p), np.inf) if objects_only else p[:, 1].copy()   # floor y = 0
    ident = np.full(len(p), -1, np.int16)
    if not objects_only and scene.wall != "sky":
        if scene.panorama:                # open-top room: walls at |x|, |z| = 4.5
            backdrop = np.minimum(4.5 - np.abs(p[:, 0]), 4.5 - np.abs(p[:, 2]))
        else:                             # a back wall facing the camera
            backdrop = scene.meta["wall_z"] - p[:, 2]
        closer = backdrop < d
        d, ident = np.where(closer, backdrop, d), np.where(closer, -2, ident)
    for k, obj in enumerate(scene.objects):
        od = _sdf(obj, p)
        closer = od < d
        d, ident = np.where(closer, od, d), np.where(closer, k, ident)
    return d, ident


def _march(scene: Scene, origin: np.ndarray, dirs: np.ndarray, steps: int = 96, far: float = FAR,
           objects_only: bool = False):
    n = len(dirs)
    t = np.full(n, 1e-3)
    hit = np.zeros(n, bool)
    alive = np.ones(n, bool)
    ident = np.full(n, -3, np.int16)
    o = np.broadcast_to(origin, (n, 3)) if origin.ndim == 1 else origin
    for _ in range(steps):
        idx = np.nonzero(alive)[0]
        if len(idx) == 0:
            break
        p = o[idx] + dirs[idx] * t[idx, None]
        d, i = _scene_sdf(scene, p, objects_only)
        done = d < 1e-3 * np.maximum(t[idx], 1.0)
        hit[idx[done]] = True
        ident[idx[done]] = i[done]
        t[idx] += np.maximum(d, 1e-4) * 0.9
        alive[idx[done | (t[idx] > far)]] = False
    return t, hit, ident


def _normals(scene: Scene, p: np.ndarray) -> np.ndarray:
    e = 1e-3
    grads = [(_scene_sdf(scene, p + d)[0] - _scene_sdf(scene, p - d)[0]) for d in np.eye(3) * e]
    n = np.stack(grads, axis=1)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)


def _refine(scene: Scene, origin: np.ndarray, dirs: np.ndarray, t: np.ndarray, hit: np.ndarray, iters: int = 3):
    """Newton steps along each ray onto the surface, so depth is exact (sphere tracing stops within a
    tolerance, which grazing rays turn into a visible error)."""
    h = np.nonzero(hit)[0]
    for _ in range(iters):
        p = origin + dirs[h] * t[h, None]
        d, _ = _scene_sdf(scene, p)
        slope = np.einsum("ij,ij->i", _normals(scene, p), dirs[h])
        ok = slope < -0.02
        t[h[ok]] -= d[ok] / slope[ok]


def _checker(p: np.ndarray) -> np.ndarray:
    return 0.9 + 0.1 * ((np.floor(p[:, 0] * 1.0) + np.floor(p[:, 2] * 1.0)) % 2)


def _image_plane(width: int, height: int, fov_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """(x right, y up) of every pixel centre on the image plane at distance 1, (height, width) each."""
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    return np.meshgrid((np.arange(width) + 0.5 - width / 2) / f, -(np.arange(height) + 0.5 - height / 2) / f)


def render(scene: Scene, width: int, height: int, fov_deg: float = 60.0, origin: tuple | None = None,
           look_at: tuple | None = None) -> Sample:
    """Ray-trace `scene` into RGB, metric depth, normalised inverse depth and an object mask.

    The camera stands where the training data's did (x = z = 0, CAMERA_Y up, 8 degrees of pitch) unless `origin`
    (x, y, z) is given; a perspective camera then looks at `look_at` (default: straight ahead along +z at its
    height), with the world's up kept up, and its depth is the distance along that optical axis. A panorama is
    taken around `origin` (ray length, as always). This is the ground truth for new viewpoints (issue 21)."""
    posed = origin is not None or look_at is not None
    origin = np.array([0.0, CAMERA_Y, 0.0]) if origin is None else np.asarray(origin, dtype=np.float64)
    forward = None
    if posed and not scene.panorama:
        target = origin + np.array([0.0, 0.0, 1.0]) if look_at is None else np.asarray(look_at, dtype=np.float64)
        forward = (target - origin) / np.linalg.norm(target - origin)
        right = np.cross([0.0, 1.0, 0.0], forward)
        if np.linalg.norm(right) < 1e-6:
            raise ValueError("the camera cannot look straight up or down (its up direction is the world's)")
        right /= np.linalg.norm(right)
        up = np.cross(forward, right)
        xs, ys = _image_plane(width, height, fov_deg)
        dirs = (xs.reshape(-1, 1) * right + ys.reshape(-1, 1) * up + forward)
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    elif scene.panorama:
        lon = (np.arange(width) + 0.5) / width * 2 * np.pi - np.pi
        lat = np.pi / 2 - (np.arange(height) + 0.5) / height * np.pi
        lon, lat = np.meshgrid(lon, lat)
        dirs = np.stack([np.cos(lat) * np.sin(lon), np.sin(lat), np.cos(lat) * np.cos(lon)], -1).reshape(-1, 3)
    else:
        xs, ys = _image_plane(width, height, fov_deg)
        pitch = math.radians(-8.0)
        d = np.stack([xs, ys, np.ones_like(xs)], -1).reshape(-1, 3)
        rot = np.array([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]])
        dirs = d @ rot.T
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    t, hit, ident = _march(scene, origin, dirs)
    _refine(scene, origin, dirs, t, hit)
    p = origin + dirs * t[:, None]
    rgb = np.zeros((len(dirs), 3))
    # sky gradient where nothing was hit
    sky = ~hit
    up = np.clip(dirs[:, 1], 0, 1)[:, None]
    rgb[sky] = ((1 - up) * np.array([0.80, 0.88, 0.97]) + up * np.array([0.32, 0.55, 0.90]))[sky]
    h = np.nonzero(hit)[0]
    if len(h):
        ph = p[h]
        n = _normals(scene, ph)
        albedo = np.empty((len(h), 3))
        ids = ident[h]
        albedo[ids == -1] = np.array(FLOORS[scene.floor]) * _checker(ph[ids == -1])[:, None]
        if scene.wall != "sky":
            albedo[ids == -2] = WALLS.get(scene.wall) or WALL_COLOURS[scene.wall]
        for k, obj in enumerate(scene.objects):
            albedo[ids == k] = COLOURS[obj.colour]
        lam = np.clip(n @ LIGHT, 0, 1)
        _, shadow_hit, _ = _march(scene, ph + n * 3e-3, np.broadcast_to(LIGHT, ph.shape).copy(), steps=48, far=12,
                                  objects_only=True)
        light = 0.4 + 0.6 * lam * (~shadow_hit)
        rgb[h] = albedo * light[:, None]
    if scene.panorama:
        dist = np.where(hit, t, FAR)
    elif forward is not None:
        dist = np.where(hit, (dirs @ forward) * t, FAR)
    else:
        zaxis = np.array([0, math.sin(math.radians(-8.0)), math.cos(math.radians(-8.0))])
        dist = np.where(hit, (dirs @ zaxis) * t, FAR)
    inv = 1.0 / np.maximum(dist, 1e-3)
    depth = (inv - inv.min()) / max(inv.max() - inv.min(), 1e-9)
    mask = np.where(hit & (ident >= 0), ident, -1).astype(np.int8)
    shape = (height, width)
    return Sample(rgb=np.clip(rgb, 0, 1).reshape(*shape, 3).astype(np.float32),
                  depth=depth.reshape(shape).astype(np.float32), distance=dist.reshape(shape).astype(np.float32),
                  object_mask=mask.reshape(shape), caption=scene.caption, scene=scene)


# ---- random scenes with captions ----

def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _coloured_wall(rng: np.random.Generator, wall: str, objects: list[Obj], share: float) -> str:
    """With probability `share`, a wall (not a sky) takes a named colour that no object has. Drawn after every
    other draw, so share 0 leaves each seed's scene exactly as data version 1 rendered it."""
    if share <= 0 or wall == "sky" or rng.random() >= share:
        return wall
    free = [c for c in COLOURS if c not in {o.colour for o in objects}]
    return str(rng.choice(free))


def backdrop_words(wall: str) -> str:
    return {"sky": "under a blue sky", "white": "before a white wall", "grey": "before a grey wall"}.get(
        wall, f"before {_article(wall)} {wall} wall")


def random_scene(rng: np.random.Generator, wall_colours: float = 0.0) -> Scene:
    """1-3 objects; the first one named in the caption is the nearest. `wall_colours`: the share of walls that
    take a named colour (0 in data version 1)."""
    n = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
    colours = list(rng.choice(list(COLOURS), size=n, replace=False))
    shapes = list(rng.choice(SHAPES, size=n))
    floor = str(rng.choice(list(FLOORS)))
    wall = str(rng.choice(list(WALLS), p=[0.35, 0.35, 0.3]))
    sides = list(rng.choice(list(SIDES), size=n, replace=n > 3))
    depths = sorted(rng.uniform(2.6, 5.5, size=n))
    if n > 1:  # keep the nearest object clearly nearest
        depths = [depths[0]] + [max(d, depths[0] + 1.2) for d in depths[1:]]
    objects = []
    for k in range(n):
        size = float(rng.uniform(0.5, 0.75))
        x = SIDES[sides[k]] * (depths[k] / 4.0) + rng.uniform(-0.12, 0.12)
        objects.append(Obj(str(shapes[k]), str(colours[k]), np.array([x, 0.0, depths[k]]), size))
    first = objects[0]
    where = f" on the {sides[0]}" if sides[0] != "centre" else " in the centre"
    words = f"{_article(first.colour)} {first.name}{where}"
    if n >= 2:
        others = " and ".join(f"{_article(o.colour)} {o.name}" for o in objects[1:])
        words += f" in front of {others}"
    wall = _coloured_wall(rng, wall, objects, wall_colours)
    caption = f"{words} on a {floor} floor {backdrop_words(wall)}"
    return Scene(objects, floor, wall, caption, meta={"wall_z": 8.5, "sides": sides})


def random_panorama(rng: np.random.Generator, wall_colours: float = 0.0) -> Scene:
    n = int(rng.choice([1, 2, 3]))
    colours = list(rng.choice(list(COLOURS), size=n, replace=False))
    shapes = list(rng.choice(SHAPES, size=n))
    floor = str(rng.choice(list(FLOORS)))
    wall = str(rng.choice(list(WALLS), p=[0.35, 0.35, 0.3]))
    angles = rng.uniform(-np.pi, np.pi, size=n)
    objects = [Obj(str(s), str(c), np.array([2.0 * math.sin(a), 0.0, 2.0 * math.cos(a)]),
                   float(rng.uniform(0.55, 0.85))) for s, c, a in zip(shapes, colours, angles)]
    things = " and ".join(f"{_article(o.colour)} {o.name}" for o in objects)
    place = "a room with" if wall != "sky" else "a plain with"
    wall = _coloured_wall(rng, wall, objects, wall_colours)
    walls = f" with {wall} walls" if wall in COLOURS else ""
    return Scene(objects, floor, wall, f"360 view of {place} {things} on a {floor} floor{walls}", panorama=True)


def sample(seed: int, size: int = 128, panorama: bool = False, wall_colours: float = 0.0) -> Sample:
    """The deterministic sample number `seed` (`wall_colours` > 0: data version 2, some walls coloured)."""
    rng = np.random.default_rng(seed)
    if panorama:
        return render(random_panorama(rng, wall_colours), 2 * size, size)
    return render(random_scene(rng, wall_colours), size, size)
