"""Walking into a result (issue 21): each keyframe's unseen pixels are inpainted and lifted into the fused scene,
so rendering that pose again leaves nothing unseen; panoramas too; the CLI writes files that parse back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ldm3d_edge.runtime import Pipeline
from ldm3d_edge.runtime.base import GenerationCancelled
from ldm3d_edge.runtime.errors import InvalidArgumentError
from ldm3d_edge.scene3d import RGBD, Camera, DepthMapping
from ldm3d_edge.scene3d.explore import explore, explore_path

PROMPT = "a red sphere in front of a blue cube on a grey floor"
KW = dict(num_inference_steps=2, guidance_scale=5.0)


def _rendered(panorama: bool) -> RGBD:
    """A rendered scene (an object before a background: moving reveals what it hid), depth mapped to its true
    distances."""
    from training.scenes import sample

    s = sample(4, 64, panorama=panorama)
    camera = Camera.for_image(*s.depth.shape, "equirectangular" if panorama else "perspective", 60.0)
    return RGBD((s.rgb * 255).round().astype(np.uint8), s.depth, camera,
                DepthMapping(float(s.distance.min()), float(s.distance.max())))


@pytest.mark.parametrize("panorama", [False, True])
def test_every_keyframe_ends_with_nothing_unseen(tiny4, panorama):
    pipe = Pipeline.load(tiny4[1], device="openvino:CPU")
    rgbd = _rendered(panorama)
    walk, images = explore(pipe, rgbd, PROMPT, distance=0.8, keyframes=2, frames=5, seed=3, **KW)
    assert len(walk.keyframes) == 2 and len(images) == 5
    assert walk.keyframes[-1].unseen > 0.005                       # the walk uncovered something
    for k in walk.keyframes:
        assert k.unseen_after == 0 and (k.added_points > 0) == (k.unseen > 0)
    n_source = rgbd.depth.size * 16                                # 4x4 points per source pixel
    assert len(walk.points) == n_source + sum(k.added_points for k in walk.keyframes)
    # content, not a blank: a frame may face a plain wall and floor (std 2.8 here), so no stronger bound
    assert all(im.dtype == np.uint8 and im.std() > 1 for im in images)
    assert np.abs(images[0].astype(int) - images[2]).mean() > 2        # the camera moved
    assert np.array_equal(images[0], images[-1])                   # out and back


def test_paths_and_options_are_checked(tiny4):
    rgbd = _rendered(False)
    with pytest.raises(InvalidArgumentError, match="pano-walk needs a panorama"):
        explore_path("pano-walk", rgbd)
    with pytest.raises(InvalidArgumentError, match="distance must be in"):
        explore_path("walk", rgbd, 0)
    with pytest.raises(InvalidArgumentError, match="path must be one of"):
        explore_path("fly", rgbd)
    pipe = Pipeline.load(tiny4[1], device="openvino:CPU", compile_now=False)
    with pytest.raises(GenerationCancelled, match="after 0 of 3 keyframes"):
        explore(pipe, rgbd, PROMPT, keyframes=3, cancel=lambda: True, **KW)


def test_cli_writes_the_fused_scene_and_the_flight(tiny4, tmp_path, capsys):
    import trimesh

    from ldm3d_edge.cli import main

    model = str(tiny4[1])
    assert main(["generate", PROMPT, "--model", model, "--steps", "3", "--seed", "1", "--out", str(tmp_path),
                 "--name", "base"]) == 0
    assert main(["explore", str(tmp_path / "base"), "--model", model, "--keyframes", "2", "--frames", "4",
                 "--steps", "2", "--out", str(tmp_path)]) == 0
    rec = json.loads((tmp_path / "base_explore.json").read_text())
    assert rec["prompt"] == PROMPT and rec["path"] == "walk" and len(rec["keyframes"]) == 2
    assert all(k["unseen_after"] == 0 for k in rec["keyframes"])
    cloud = trimesh.load(tmp_path / "base_explore.ply")
    assert len(cloud.vertices) == rec["points"]
    glb = trimesh.load(tmp_path / "base_explore.glb")
    assert sum(len(g.vertices) for g in glb.geometry.values()) == rec["points"]
    assert Image.open(tmp_path / "base_explore_strip.png").size == (4 * 64, 64)
    assert (tmp_path / "base_explore.mp4").stat().st_size > 0 and (tmp_path / "base_explore.gif").stat().st_size > 0
    capsys.readouterr()
    assert main(["explore", str(tmp_path / "base"), "--model", model, "--path", "pano-walk"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pano-walk needs a panorama" in err[0]


def test_one_pixel_lines_are_cracks_and_blobs_are_hidden_surfaces():
    from ldm3d_edge.scene3d.explore import cracks

    holes = np.zeros((12, 12), bool)
    holes[9, :] = True                     # a magnified floor's missing row: seen above and below
    holes[2:6, 2:6] = True                 # a disocclusion
    c = cracks(holes)
    assert c[9].all() and not c[2:6, 2:6].any()
    # a crack takes the colour of the pixels either side of it, not the row fill's colour from the row's end
    from ldm3d_edge.scene3d.explore import close_cracks
    from ldm3d_edge.scene3d.render import fill_holes

    image = np.full((12, 12, 3), 100, np.uint8)
    image[8], image[10] = 80, 120                  # the floor above and below the missing row
    image[9, 11] = (0, 200, 0)                     # a green object ends the row
    dist = np.where(holes, 0.0, 5.0).astype(np.float32)
    dist[9, 11] = 2.0
    holes[9, 11] = False
    c = cracks(holes)
    rows, _ = fill_holes(image, dist, holes)
    inv = np.where(holes, 0.0, 1.0 / np.maximum(dist, 1e-3))
    closed = close_cracks(rows, inv, holes)
    assert (closed[9, :11] == 100).all() and np.array_equal(closed[~c], rows[~c])
    assert (rows[9, :11] != 100).any()             # what the row fill alone drew there
    # across a depth edge (the floor below it nearer than the wall above) the farther side's colour
    inv[10] = 0.5
    assert (close_cracks(rows, inv, holes)[9, :11] == 80).all()
