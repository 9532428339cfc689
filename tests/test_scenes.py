"""The synthetic RGBD scene generator: exact depth, honest captions, determinism."""

import math

import numpy as np
import pytest

from training import scenes as S


def _scene(objects, wall="sky", panorama=False):
    return S.Scene(objects, "grey", wall, "test", panorama=panorama, meta={"wall_z": 8.5})


def test_empty_panorama_floor_distance_is_exact():
    smp = S.render(_scene([], panorama=True), 128, 64)
    lat = math.pi / 2 - (np.arange(64) + 0.5) / 64 * math.pi
    rows = np.nonzero(lat < -0.15)[0]
    expect = S.CAMERA_Y / -np.sin(lat[rows])
    got = smp.distance[rows].mean(axis=1)
    np.testing.assert_allclose(got, expect, rtol=2e-3)
    assert (smp.object_mask == -1).all()


def test_sphere_straight_ahead_is_at_its_analytic_distance():
    r, z = 0.6, 4.0
    sphere = S.Obj("sphere", "red", np.array([0.0, S.CAMERA_Y - r, z]), r)
    smp = S.render(_scene([sphere], panorama=True), 256, 128)
    # the ray at longitude 0, latitude 0 points along +z through the sphere's centre
    row, col = 63, 127
    lat = math.pi / 2 - (row + 0.5) / 128 * math.pi
    lon = (col + 0.5) / 256 * 2 * math.pi - math.pi
    d = np.array([math.cos(lat) * math.sin(lon), math.sin(lat), math.cos(lat) * math.cos(lon)])
    c = np.array([0.0, S.CAMERA_Y, z]) - np.array([0.0, S.CAMERA_Y, 0.0])
    b = d @ c
    t = b - math.sqrt(b * b - (c @ c - r * r))
    assert smp.object_mask[row, col] == 0
    assert smp.distance[row, col] == pytest.approx(t, rel=2e-3)


def test_depth_is_normalised_inverse_distance_near_high():
    smp = S.sample(3, 64)
    inv = 1 / smp.distance
    expect = (inv - inv.min()) / (inv.max() - inv.min())
    np.testing.assert_allclose(smp.depth, expect, atol=1e-5)
    assert smp.depth.min() == 0 and smp.depth.max() == pytest.approx(1)
    ob = smp.object_mask >= 0
    assert smp.depth[ob].mean() > smp.depth[~ob & (smp.depth < 0.05)].mean()


@pytest.mark.parametrize("seed", range(12))
def test_caption_names_every_object_nearest_first(seed):
    smp = S.sample(seed, 64)
    objs = smp.scene.objects
    for o in objs:
        assert o.name in smp.caption
    assert smp.caption.index(objs[0].name) == min(smp.caption.index(o.name) for o in objs)
    visible = [k for k in range(len(objs)) if (smp.object_mask == k).any()]
    assert 0 in visible, "the first-named object must be visible"
    nearest = {k: smp.distance[smp.object_mask == k].min() for k in visible}
    assert min(nearest, key=nearest.get) == 0
    # the object's region has the object's colour as its dominant hue
    assert smp.rgb[smp.object_mask == 0].std(axis=0).max() < 0.35


def test_panorama_caption_and_aspect():
    smp = S.sample(7, 64, panorama=True)
    assert smp.caption.startswith("360 view of") and smp.rgb.shape == (64, 128, 3)
    # the wrap column: left and right edges are neighbours on the sphere, so they agree
    assert np.abs(smp.depth[:, 0] - smp.depth[:, -1]).mean() < 0.05


def test_samples_are_deterministic():
    a, b = S.sample(42, 48), S.sample(42, 48)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    assert a.caption == b.caption


@pytest.mark.parametrize("origin, look_at, expect", [
    ((0.0, S.CAMERA_Y, 0.0), (0.0, S.CAMERA_Y, 4.0), 3.4),     # the training camera's place, looking level
    ((0.0, S.CAMERA_Y, 2.0), None, 1.4),                        # walked halfway to it
    ((3.0, S.CAMERA_Y, 4.0), (0.0, S.CAMERA_Y, 4.0), 2.4),     # beside it, looking at it
])
def test_a_posed_camera_sees_the_sphere_at_its_distance(origin, look_at, expect):
    """Ground truth for new viewpoints (issue 21): any position and look-at point; depth along the optical axis."""
    r = 0.6
    sphere = S.Obj("sphere", "red", np.array([0.0, S.CAMERA_Y - r, 4.0]), r)
    smp = S.render(_scene([sphere]), 64, 64, origin=origin, look_at=look_at)
    centre = smp.distance[31:33, 31:33]
    assert (smp.object_mask[31:33, 31:33] == 0).all()
    assert centre.min() == pytest.approx(expect, rel=2e-3)
    near = S.render(_scene([sphere]), 64, 64, origin=(0.0, S.CAMERA_Y, 3.0))
    assert (near.object_mask == 0).sum() > (smp.object_mask == 0).sum()     # 0.4 away: it fills more pixels


def test_a_panorama_from_another_place():
    r = 0.6
    sphere = S.Obj("sphere", "red", np.array([0.0, S.CAMERA_Y - r, 4.0]), r)
    smp = S.render(_scene([sphere], panorama=True), 256, 128, origin=(0.0, S.CAMERA_Y, 2.0))
    assert smp.object_mask[63, 127] == 0 and smp.distance[63, 127] == pytest.approx(1.4, rel=2e-3)
    with pytest.raises(ValueError, match="straight up or down"):
        S.render(_scene([sphere]), 32, 32, origin=(0.0, 1.0, 0.0), look_at=(0.0, 3.0, 0.0))
