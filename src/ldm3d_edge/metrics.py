"""Numpy quality metrics for the embedded model and the INT8 quality report: reconstruction quality, prompt
adherence, depth/RGB agreement.

Definitions (stated so the numbers can be checked):
- psnr: on RGB in [0, 1], peak 1.
- depth AbsRel: mean |pred - gt| / gt of the normalised inverse depth over pixels with gt >= 0.1; the farthest
  tenth of the range (sky, far wall) is left out because relative error is undefined at gt = 0.
- object region: pixels whose depth stands out from the background of their own image row (the floor and the
  backdrop at one row share one depth; an object standing on the floor is nearer than they are).
- dominant hue: the named colour nearest to the circular mean hue of the region's saturated pixels.
- colour region: pixels whose chromaticity (RGB over its largest channel, so shading, shadows and the floor's
  checker do not count) stands out from the row's background chromaticity (the row median) — the colour
  counterpart of the object region. Depth/RGB agreement is the IoU of the two.
- wall colour: the dominant hue of the backdrop band (perspective: the top 35 % of rows; panorama: rows 10-45 %,
  where a room's walls stand) outside every object region, or None when fewer than half of those pixels are
  saturated (a white or grey wall, a pale sky).
- floor: the bottom band (perspective: the last 12 % of rows; panorama: rows 80-95 %) outside objects, named by
  the nearest of given reference colours (the evaluation measures them on rendered floors).
"""

from __future__ import annotations

import colorsys

import numpy as np

# The named colours of the embedded model's vocabulary: the scene generator paints with them, and the
# evaluation and the quality report check a generated object's hue against them.
COLOURS = {  # saturated, well-separated hues (the evaluation checks the hue)
    "red": (0.85, 0.12, 0.10), "orange": (0.95, 0.50, 0.08), "yellow": (0.92, 0.85, 0.10),
    "green": (0.15, 0.70, 0.18), "cyan": (0.10, 0.75, 0.80), "blue": (0.12, 0.25, 0.85),
    "purple": (0.55, 0.18, 0.80), "pink": (0.95, 0.40, 0.70),
}
HUES = {name: colorsys.rgb_to_hsv(*rgb)[0] * 360 for name, rgb in COLOURS.items()}
STAND_OUT = 0.04       # depth above the row's background that marks an object pixel
MIN_REGION = 12        # pixels; smaller regions are noise
COLOUR_STAND_OUT = 0.25   # chromaticity distance from the row's background that marks an object pixel


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def abs_rel(pred: np.ndarray, gt: np.ndarray, min_gt: float = 0.1) -> float:
    m = gt >= min_gt
    return float(np.mean(np.abs(pred[m] - gt[m]) / gt[m]))


def hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx, mn = rgb.max(-1), rgb.min(-1)
    d = mx - mn + 1e-9
    h = np.where(mx == r, (g - b) / d % 6, np.where(mx == g, (b - r) / d + 2, (r - g) / d + 4)) * 60
    s = np.where(mx > 0, (mx - mn) / (mx + 1e-9), 0)
    return h, s, mx


def object_mask_from_depth(depth: np.ndarray) -> np.ndarray:
    """Pixels nearer than their row's background by STAND_OUT (background = the row's median depth)."""
    return depth - np.median(depth, axis=1, keepdims=True) > STAND_OUT


def components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components as boolean masks, largest first (a small flood fill; no scipy needed)."""
    labels = np.zeros(mask.shape, np.int32)
    out: list[np.ndarray] = []
    h, w = mask.shape
    for y0, x0 in zip(*np.nonzero(mask)):
        if labels[y0, x0]:
            continue
        k = len(out) + 1
        stack = [(y0, x0)]
        labels[y0, x0] = k
        while stack:
            y, x = stack.pop()
            for yy, xx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and not labels[yy, xx]:
                    labels[yy, xx] = k
                    stack.append((yy, xx))
        out.append(labels == k)
    return sorted((c for c in out if c.sum() >= MIN_REGION), key=lambda c: -c.sum())


def nearest_object(depth: np.ndarray) -> np.ndarray | None:
    """The object region (from depth alone) with the highest mean depth, or None."""
    comps = components(object_mask_from_depth(depth))
    return max(comps, key=lambda c: depth[c].mean()) if comps else None


def dominant_colour(rgb: np.ndarray, region: np.ndarray) -> str | None:
    h, s, v = hsv(rgb)
    sel = region & (s > 0.3) & (v > 0.15)
    if sel.sum() < MIN_REGION // 2:
        return None
    ang = np.deg2rad(h[sel])
    mean = np.rad2deg(np.arctan2(np.sin(ang).mean(), np.cos(ang).mean())) % 360
    return min(HUES, key=lambda n: min(abs(HUES[n] - mean), 360 - abs(HUES[n] - mean)))


def colour_mask(rgb: np.ndarray) -> np.ndarray:
    """Pixels whose chromaticity stands out from their row's background. (An earlier version took every
    saturated non-sky pixel; it counted brown floors and slightly dark skies as objects and scored 0.03 on
    rendered ground truth with a brown floor.)"""
    c = rgb / (rgb.max(-1, keepdims=True) + 0.05)
    return np.linalg.norm(c - np.median(c, axis=1, keepdims=True), axis=-1) > COLOUR_STAND_OUT


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 0.0


def adherence(rgb: np.ndarray, depth: np.ndarray, colour: str | set[str]) -> dict:
    """Does the generated (rgb float [0,1], depth [0,1]) show the prompted nearest object? A set of colours
    accepts any of them (panoramas: every object stands at the same distance, so any prompted one may be nearest)."""
    allowed = {colour} if isinstance(colour, str) else set(colour)
    region = nearest_object(depth)
    if region is None:
        return {"colour_ok": False, "nearer_ok": False, "found": None, "iou": 0.0}
    found = dominant_colour(rgb, region)
    rows = np.nonzero(region.any(axis=1))[0]
    background = ~object_mask_from_depth(depth)
    background[: rows.min()] = False
    background[rows.max() + 1:] = False
    nearer = bool(background.any() and depth[region].mean() > depth[background].mean() + STAND_OUT / 2)
    return {"colour_ok": found in allowed, "nearer_ok": nearer, "found": found,
            "iou": iou(object_mask_from_depth(depth), colour_mask(rgb))}


def _band(depth: np.ndarray, rows: tuple[float, float]) -> np.ndarray:
    h = depth.shape[0]
    band = np.zeros(depth.shape, bool)
    band[int(rows[0] * h): int(rows[1] * h)] = True
    return band & ~object_mask_from_depth(depth)


def wall_colour(rgb: np.ndarray, depth: np.ndarray, panorama: bool = False) -> str | None:
    """The named hue of the wall behind the objects, or None for an unsaturated (white / grey) backdrop."""
    region = _band(depth, (0.10, 0.45) if panorama else (0.0, 0.35))
    h, s, v = hsv(rgb)
    if (region & (s > 0.3) & (v > 0.15)).sum() < 0.5 * max(region.sum(), 1):
        return None
    return dominant_colour(rgb, region)


def floor_band(depth: np.ndarray, panorama: bool = False) -> np.ndarray:
    """Where the floor is measured: a band of bottom rows, outside objects."""
    return _band(depth, (0.80, 0.95) if panorama else (0.88, 1.0))


def floor_name(rgb: np.ndarray, depth: np.ndarray, references: dict[str, np.ndarray], panorama: bool = False) -> str:
    """The floor's name: its band's mean RGB against `references` ({name: mean RGB of that floor, rendered})."""
    mean = rgb[floor_band(depth, panorama)].mean(0)
    return min(references, key=lambda n: float(np.linalg.norm(mean - references[n])))
