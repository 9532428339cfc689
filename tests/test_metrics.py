"""The embedded-model metrics score ground-truth renders highly and catch wrong colours and flat depth."""

import numpy as np

from ldm3d_edge import metrics as M
from training import scenes as S

SEEDS = range(9_000_000, 9_000_040)


def hue_gap(a: str, b: str) -> float:
    d = abs(M.HUES[a] - M.HUES[b])
    return min(d, 360 - d)


def test_adherence_on_ground_truth_renders_is_high():
    rows = []
    for seed in SEEDS:
        s = S.sample(seed, 96)
        rows.append(M.adherence(s.rgb, s.depth, s.scene.objects[0].colour))
    assert np.mean([r["colour_ok"] for r in rows]) >= 0.9
    assert np.mean([r["nearer_ok"] for r in rows]) >= 0.9
    assert np.mean([r["iou"] for r in rows]) >= 0.7


def test_panorama_adherence_accepts_any_prompted_colour():
    rows = []
    for seed in range(9_500_000, 9_500_016):
        s = S.sample(seed, 64, panorama=True)
        rows.append(M.adherence(s.rgb, s.depth, {o.colour for o in s.scene.objects}))
    assert np.mean([r["colour_ok"] for r in rows]) >= 0.8
    assert np.mean([r["nearer_ok"] for r in rows]) >= 0.9
    assert np.mean([r["iou"] for r in rows]) >= 0.8
    s = S.sample(9_500_000, 64, panorama=True)
    absent = {c for c in S.COLOURS if all(hue_gap(c, o.colour) > 60 for o in s.scene.objects)}
    assert absent and not M.adherence(s.rgb, s.depth, absent)["colour_ok"]


def test_adherence_catches_a_wrong_colour_and_flat_depth():
    s = S.sample(9_000_001, 96)
    right = s.scene.objects[0].colour
    wrong = next(c for c in S.COLOURS if hue_gap(c, right) > 60)
    assert M.adherence(s.rgb, s.depth, right)["colour_ok"]
    assert not M.adherence(s.rgb, s.depth, wrong)["colour_ok"]
    flat = M.adherence(s.rgb, np.full_like(s.depth, 0.5), right)
    assert not flat["nearer_ok"] and flat["iou"] == 0.0


def test_silhouette_iou_needs_the_same_scene_and_ignores_floor_colour_and_shading():
    renders = [S.sample(seed, 64, panorama=True) for seed in range(9_500_000, 9_500_012)]
    brown = [r for r in renders if r.scene.floor == "brown"]
    assert brown and all(M.iou(M.object_mask_from_depth(r.depth), M.colour_mask(r.rgb)) >= 0.6 for r in brown)
    swapped = [M.iou(M.object_mask_from_depth(a.depth), M.colour_mask(b.rgb)) for a, b in zip(renders, renders[1:])]
    assert np.mean(swapped) < 0.25


def test_reconstruction_metrics():
    a = np.random.default_rng(0).random((3, 8, 8))
    assert M.psnr(a, a) > 100 and abs(M.psnr(a, a + 0.1) - 20.0) < 1e-6
    gt = np.full((4, 4), 0.5)
    assert abs(M.abs_rel(gt * 1.1, gt) - 0.1) < 1e-9


def test_wall_and_floor_are_named_on_renders_and_a_plain_wall_has_no_colour():
    """Floors: references from 24 renders name the floors of 24 others; walls: coloured walls by their hue
    (both panorama rooms and perspective walls), white and grey walls as None."""
    refs: dict[str, list] = {}
    for seed in range(9_000_100, 9_000_124):
        s = S.sample(seed, 96)
        refs.setdefault(s.scene.floor, []).append(s.rgb[M.floor_band(s.depth)].mean(0))
    means = {k: np.mean(v, 0) for k, v in refs.items()}
    assert len(means) == 4
    hits = [M.floor_name(s.rgb, s.depth, means) == s.scene.floor
            for s in (S.sample(seed, 96) for seed in range(9_000_200, 9_000_224))]
    assert np.mean(hits) >= 0.95
    for seed in range(10):
        pano = seed % 2 == 1
        s = S.sample(seed, 64 if pano else 96, panorama=pano, wall_colours=1.0)
        plain = S.sample(seed, 64 if pano else 96, panorama=pano)
        if s.scene.wall != "sky":
            assert M.wall_colour(s.rgb, s.depth, pano) == s.scene.wall
        if plain.scene.wall in ("white", "grey"):
            assert M.wall_colour(plain.rgb, plain.depth, pano) is None
