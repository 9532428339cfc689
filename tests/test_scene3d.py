"""RGBD -> 3D on synthetic scenes with known answers: planes stay planes, a constant-depth panorama is a sphere,
depth edges are cut, the seam is closed, files reload with what was written, zero motion renders the input,
videos read back with their frame count, rate and size."""

import json

import numpy as np
import pytest
import trimesh
from PIL import Image

from ldm3d_edge.cli import main
from ldm3d_edge.scene3d import (
    RGBD,
    Camera,
    DepthMapping,
    Pose,
    SceneRenderer,
    panorama_mesh,
    perspective_mesh,
    psnr,
    read_rgbd,
    render_frames,
    unproject,
    write_mesh,
    write_video,
)
from ldm3d_edge.scene3d.geometry import discontinuity_mask, grid_faces
from ldm3d_edge.scene3d.render import background_fill, fill_holes, occluder_rim

H, W = 48, 64
MAP = DepthMapping(near=1.0, far=10.0)


def pattern(h=H, w=W, seed=0):
    """A colourful image with structure (gradients + random blocks), so misplaced pixels show."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3))
    img = np.repeat(np.repeat(blocks, 4, 0), 4, 1)[:h, :w]
    img[..., 0] = (img[..., 0] + np.arange(w)[None, :] * 2) % 256
    return img.astype(np.uint8)


def plane_rgbd(normal=(0.3, -0.5, 1.0), offset=-4.0, camera=None):
    """Relative depth of the plane n.X = offset seen by a pinhole camera (distance = planar depth)."""
    camera = camera or Camera("perspective", W, H, 70.0)
    n = np.asarray(normal, float)
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    rays = camera.rays(u, v)
    z = offset / (rays @ n)                       # distance along the rays' scale (planar depth for a pinhole)
    assert (z > MAP.near).all() and (z < MAP.far).all()
    return RGBD(pattern(), MAP.to_relative(z), camera, MAP)


def test_depth_mapping_round_trip_and_scale_shift_form():
    d = np.linspace(0, 1, 11, dtype=np.float32)
    dist = MAP.to_distance(d)
    assert dist[0] == pytest.approx(10.0) and dist[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(MAP.to_relative(dist), d, atol=1e-6)
    # 1/distance is affine in d
    np.testing.assert_allclose(np.diff(1 / dist.astype(np.float64), 2), 0, atol=1e-6)
    same = DepthMapping.from_scale_shift(MAP.scale, MAP.shift)
    assert same.near == pytest.approx(1.0) and same.far == pytest.approx(10.0)
    with pytest.raises(ValueError, match="near < far"):
        DepthMapping(5.0, 2.0)


def test_a_plane_unprojects_to_a_plane():
    rgbd = plane_rgbd()
    pts, colors = unproject(rgbd)
    centred = pts.astype(np.float64) - pts.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    rms_residual = s[-1] / np.sqrt(len(pts))
    extent = s[0] / np.sqrt(len(pts))
    assert rms_residual < 1e-5 * extent, (rms_residual, extent)
    normal = vt[-1] * np.sign(vt[-1][2])
    np.testing.assert_allclose(normal, np.array([0.3, -0.5, 1.0]) / np.linalg.norm([0.3, -0.5, 1.0]), atol=1e-5)
    assert (colors == rgbd.rgb.reshape(-1, 3)).all()
    # a smooth plane keeps every triangle at the default threshold
    assert len(perspective_mesh(rgbd).faces) == 2 * (H - 1) * (W - 1)


def test_a_constant_depth_panorama_is_a_sphere_of_constant_radius():
    depth = np.full((H, 2 * H), 0.25, np.float32)
    rgbd = RGBD(pattern(H, 2 * H), depth, Camera.for_image(H, 2 * H), MAP)
    assert rgbd.is_panorama
    mesh = panorama_mesh(rgbd)
    radius = float(MAP.to_distance(np.float32(0.25)))
    np.testing.assert_allclose(np.linalg.norm(mesh.vertices, axis=1), radius, rtol=1e-5)
    assert len(mesh.vertices) == H * 2 * H + 2                       # every pixel + the two poles
    # closed: every edge is shared by exactly two triangles, and it has a sphere's Euler characteristic
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    assert tm.is_watertight and tm.euler_number == 2
    # every face points inwards, to the viewer at the centre: the signed volume is minus the sphere's
    assert tm.volume == pytest.approx(-4 / 3 * np.pi * radius ** 3, rel=0.01)


def test_the_panorama_seam_shares_vertices():
    w = 2 * H
    mesh = panorama_mesh(RGBD(pattern(H, w), np.full((H, w), 0.5, np.float32), Camera.for_image(H, w), MAP))
    cols = mesh.faces % w
    rows = mesh.faces // w
    grid = (mesh.faces < H * w).all(axis=1)
    seam = grid & (cols.min(1) == 0) & (cols.max(1) == w - 1)
    assert seam.sum() == 2 * (H - 1)                                 # one quad per row pair across the wrap
    # the vertices of the last and the first column are the same vertices on both sides: no duplicate positions
    first, last = mesh.vertices[0:H * w:w], mesh.vertices[w - 1:H * w:w]
    gap = np.linalg.norm(first - last, axis=1)
    step = np.linalg.norm(mesh.vertices[1:H * w:w] - first, axis=1)
    np.testing.assert_allclose(gap, step, rtol=1e-4)                # last->first is one ordinary column step
    assert (rows[seam].max(1) - rows[seam].min(1) == 1).all()


def test_no_triangle_spans_a_depth_edge_above_the_threshold():
    depth = np.full((H, W), 0.2, np.float32)
    depth[:, W // 2:] = 0.9                                           # a near object on the right half
    depth[:, : W // 2] += np.linspace(0, 0.02, W // 2)[None, :]       # and a gentle slope on the left
    rgbd = RGBD(pattern(), depth, Camera.for_image(H, W), MAP)
    threshold = 0.08
    mesh = perspective_mesh(rgbd, edge_threshold=threshold)
    dist = np.linalg.norm(mesh.vertices, axis=1) / np.linalg.norm(                 # planar distance = -z
        mesh.vertices / -mesh.vertices[:, 2:3], axis=1)
    spread = dist[mesh.faces].max(1) / dist[mesh.faces].min(1) - 1
    assert spread.max() <= threshold
    assert len(mesh.faces) == 2 * (H - 1) * (W - 1) - 2 * (H - 1)  # exactly the column of quads across the edge
    assert not discontinuity_mask(rgbd.distance.reshape(-1), grid_faces(H, W), 10.0).any()
    everything = perspective_mesh(rgbd, edge_threshold=None)
    assert len(everything.faces) == 2 * (H - 1) * (W - 1)


def test_glb_obj_ply_reload_with_the_written_counts_and_colours(tmp_path):
    rgbd = plane_rgbd()
    mesh = perspective_mesh(rgbd)
    write_mesh(mesh, tmp_path / "plane.glb")
    glb = trimesh.load(tmp_path / "plane.glb", force="mesh", process=False)
    assert len(glb.vertices) == H * W and len(glb.faces) == 2 * (H - 1) * (W - 1)
    np.testing.assert_allclose(glb.vertices, mesh.vertices, atol=1e-5)
    texture = np.asarray(glb.visual.material.baseColorTexture.convert("RGB"))
    assert (texture == rgbd.rgb).all()
    # each vertex's UV lands on its own pixel of the texture
    uv = glb.visual.uv
    px = np.floor(uv[:, 0] * W).astype(int), np.floor((1 - uv[:, 1]) * H).astype(int)
    assert (texture[px[1], px[0]] == rgbd.rgb.reshape(-1, 3)).all()

    paths = write_mesh(mesh, tmp_path / "plane.obj")
    assert {p.name for p in paths} == {"plane.obj", "plane.mtl", "plane_texture.png"}
    obj = trimesh.load(tmp_path / "plane.obj", force="mesh", process=False)
    assert len(obj.faces) == len(mesh.faces)
    assert (np.asarray(Image.open(tmp_path / "plane_texture.png").convert("RGB")) == rgbd.rgb).all()

    write_mesh(mesh, tmp_path / "plane.ply")
    ply = trimesh.load(tmp_path / "plane.ply", process=False)
    assert len(ply.vertices) == H * W and len(ply.faces) == len(mesh.faces)
    assert (ply.visual.vertex_colors[:, :3] == rgbd.rgb.reshape(-1, 3)).all()

    w = 2 * H
    pano = RGBD(pattern(H, w, seed=3), np.full((H, w), 0.5, np.float32), Camera.for_image(H, w), MAP)
    sphere = panorama_mesh(pano)
    write_mesh(sphere, tmp_path / "pano.glb")
    back = trimesh.load(tmp_path / "pano.glb", force="mesh", process=False)
    assert len(back.vertices) == H * w + 2 and len(back.faces) == len(sphere.faces)
    assert (back.visual.vertex_colors[: H * w, :3] == pano.rgb.reshape(-1, 3)).all()


def test_zero_motion_renders_the_input():
    rgbd = plane_rgbd()
    rgbd.depth[10:30, 20:40] = 0.95                              # a near box in front of the plane
    view = SceneRenderer(rgbd).render(Pose.identity())
    assert view.hole_fraction == 0
    assert psnr(view.image, rgbd.rgb) >= 40
    pano = RGBD(pattern(H, 2 * H, seed=1), np.random.default_rng(0).uniform(0.1, 0.9, (H, 2 * H)).astype(np.float32),
                Camera.for_image(H, 2 * H), MAP)
    inside = SceneRenderer(pano).render(Pose.identity())
    assert inside.hole_fraction == 0 and psnr(inside.image, pano.rgb) >= 40


def test_a_sideways_move_uncovers_the_background_and_fills_it_from_there():
    depth = np.full((H, W), 0.1, np.float32)
    depth[12:36, 24:40] = 0.95                                   # a near box in front of a far wall
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[...] = (40, 160, 40)                                     # green wall
    rgb[12:36, 24:40] = (220, 30, 30)                            # red box
    rgbd = RGBD(rgb, depth, Camera.for_image(H, W), MAP)
    view = SceneRenderer(rgbd).render(Pose(np.eye(3), np.array([0.1, 0.0, 0.0])))
    assert 0 < view.hole_fraction < 0.1
    holes = view.hole_mask
    assert (view.image[holes] == (40, 160, 40)).all()           # filled with the wall, not the box
    # the box moved left in the image (the viewer moved right) and is still there
    red = (view.image == (220, 30, 30)).all(-1)
    assert red.sum() >= 0.9 * 24 * 16 and np.nonzero(red)[1].mean() < 31.5


def test_fill_holes_takes_the_farther_side():
    image = np.array([[[10, 10, 10], [0, 0, 0], [0, 0, 0], [200, 200, 200]]], np.uint8)
    dist = np.array([[2.0, 0, 0, 5.0]], np.float32)
    holes = np.array([[False, True, True, False]])
    out, d = fill_holes(image, dist, holes)
    assert (out[0, 1:3] == 200).all() and (d[0, 1:3] == 5.0).all()


def test_background_fill_follows_the_background_not_the_occluder():
    # a wall whose inverse depth falls to the right and rises downwards, an occluder (near) right of the hole
    v, u = np.mgrid[0:40, 0:60].astype(np.float32)
    wall = 0.2 + 0.004 * u + 0.003 * v
    inv = wall.copy()
    inv[5:35, 26:34] = 0.9
    holes = np.zeros(inv.shape, bool)
    holes[10:30, 20:26] = True
    filled = background_fill(inv, holes)
    _, rows = fill_holes(np.zeros((40, 60, 3), np.uint8), -np.where(holes, 0, inv), holes)
    row_error = np.abs(-rows - wall)[holes].mean()
    error = np.abs(filled - wall)[holes].mean()
    assert row_error > 0.01 and error < 0.8 * row_error            # the row fill repeats one value per row
    assert filled[holes].max() < 0.9 and np.array_equal(filled[~holes], inv[~holes])
    # a panorama's hole on its seam is filled from both sides when the columns wrap
    seam = np.zeros(inv.shape, bool)
    seam[:, :2] = True
    flat = np.where(seam, 0, np.full(inv.shape, 0.3, np.float32))
    flat[:, -1] = 0.1                                                # farther: background across the seam
    assert background_fill(flat, seam, wrap=True)[:, 0].mean() < background_fill(flat, seam)[:, 0].mean() - 0.05


def test_occluder_rim_gives_the_unsampled_silhouette_the_objects_depth_and_colour():
    # a wall (far, grey) left of a hole, an object (near, red) right of it: holes 1, 2 and 4 pixels wide
    inv = np.full((3, 12), 0.2, np.float32)
    inv[:, 8:] = 0.9
    rgb = np.full((3, 12, 3), 128, np.uint8)
    rgb[:, 8:] = (200, 0, 0)
    for width in (1, 2, 4):
        holes = np.zeros(inv.shape, bool)
        holes[:, 8 - width:8] = True
        fill = background_fill(inv, holes)
        depth, colour, rim = occluder_rim(inv, fill, holes, rgb)
        # only a pixel beside the object and away from the wall's side (margin 1) joins the object
        assert rim.sum(axis=1).tolist() == [int(width >= 3)] * 3 and rim[:, 7].all() == (width >= 3)
        assert np.allclose(depth[rim], 0.9) and (colour[rim] == (200, 0, 0)).all()
        assert np.array_equal(depth[~rim], fill[~rim]) and np.array_equal(colour[~rim], rgb[~rim])
        assert fill[holes].max() < 0.5                               # the background fill alone: all wall


@pytest.mark.parametrize("ext", [".mp4", ".gif"])
def test_video_reads_back_with_its_frames_fps_and_size(tmp_path, ext):
    import imageio.v3 as iio

    rgbd = plane_rgbd()
    views = render_frames(rgbd, "orbit", frames=10)
    out = write_video([v.image for v in views], tmp_path / f"flight{ext}", fps=8)
    frames = iio.imread(out, index=None, **({"plugin": "pillow", "mode": "RGB"} if ext == ".gif" else {}))
    assert frames.shape == (10, H, W, 3)
    if ext == ".gif":
        # (Pillow merges identical consecutive frames into one longer frame; an orbit has none)
        # GIF keeps frame times in 1/100 s: 1/8 s is stored as 0.12 s
        assert _gif_durations(out) == [120] * 10 and Image.open(out).size == (W, H)
    else:
        meta = iio.immeta(out, plugin="FFMPEG")
        assert meta["fps"] == pytest.approx(8.0) and meta["size"] == (W, H)
        assert meta["duration"] == pytest.approx(10 / 8, abs=0.01)
    # frames differ (the camera moved) and the first is the source view (t = 0 has no offset)
    assert np.abs(frames[0].astype(int) - frames[2].astype(int)).mean() > 1
    assert psnr(frames[0], views[0].image) > 25                  # lossy codec, still the same picture


def _gif_durations(path):
    im = Image.open(path)
    out = []
    for i in range(im.n_frames):
        im.seek(i)
        out.append(im.info["duration"])
    return out


def test_read_rgbd_uses_the_sidecars_camera_and_mapping(tmp_path):
    rgbd = plane_rgbd()
    Image.fromarray(rgbd.rgb).save(tmp_path / "s_rgb.png")
    Image.fromarray(np.round(rgbd.depth * 65535).astype(np.uint16)).save(tmp_path / "s_depth.png")
    (tmp_path / "s.json").write_text(json.dumps({"camera": rgbd.camera.to_json(),
                                                 "depth_mapping": DepthMapping(2.0, 30.0).to_json()}))
    back = read_rgbd(tmp_path / "s_rgb.png")
    assert back.camera == rgbd.camera and back.mapping == DepthMapping(2.0, 30.0)
    np.testing.assert_allclose(back.depth, rgbd.depth, atol=1 / 65535)
    assert read_rgbd(tmp_path / "s", far=50.0).mapping.far == 50.0


def test_cli_video_and_mesh_reject_bad_input_without_writing(tmp_path, capsys):
    rgbd = plane_rgbd()
    Image.fromarray(rgbd.rgb).save(tmp_path / "s_rgb.png")
    Image.fromarray(np.round(rgbd.depth * 65535).astype(np.uint16)).save(tmp_path / "s_depth.png")
    assert main(["video", str(tmp_path / "s"), "--out", str(tmp_path / "x.avi")]) == 2
    assert "must end in .mp4 or .gif" in capsys.readouterr().err
    assert main(["video", str(tmp_path / "s"), "--out", str(tmp_path / "x.mp4"), "--path", "pano-walk"]) == 2
    assert "needs a panorama" in capsys.readouterr().err
    assert main(["video", str(tmp_path / "missing"), "--out", str(tmp_path / "x.mp4")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["mesh", str(tmp_path / "s"), "--formats", "glb,stl"]) == 2
    assert "glb, ply, obj" in capsys.readouterr().err
    assert main(["mesh", str(tmp_path / "s"), "--near", "5", "--far", "2"]) == 2
    assert "near < far" in capsys.readouterr().err
    # generate checks its 3D options before it loads (or exports) any model
    assert main(["generate", "x", "--mesh", "--edge-threshold", "0", "--out", str(tmp_path / "g")]) == 2
    assert "--edge-threshold must be > 0" in capsys.readouterr().err
    assert main(["generate", "x", "--video", "--path", "pano-walk", "--out", str(tmp_path / "g")]) == 2
    assert "needs a panorama" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s_depth.png", "s_rgb.png"]
    assert main(["mesh", str(tmp_path / "s"), "--formats", "glb", "--points"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.glb", "s_depth.png", "s_points.ply", "s_rgb.png"]
    assert main(["video", str(tmp_path / "s_rgb.png"), "--out", str(tmp_path / "f.gif"), "--frames", "6"]) == 0
    assert Image.open(tmp_path / "f.gif").n_frames == 6


PROMPT = "a red sphere on the left in front of a blue cube on a grey floor before a white wall"


def test_a_small_move_on_the_embedded_models_scene_is_plausible(embedded):
    from ldm3d_edge.runtime import Pipeline
    from ldm3d_edge.scene3d.video import camera_path

    out = Pipeline.load(embedded[0], device="openvino:CPU")(PROMPT, num_inference_steps=30, seed=1)
    rgbd = RGBD(out.rgb, out.depth, Camera.for_image(out.height, out.width), MAP)
    renderer = SceneRenderer(rgbd)
    pose = camera_path("swing", rgbd)(0.25)                      # the swing's widest point, 0.1 n to the right
    view = renderer.render(pose)
    raw = renderer.render(pose, fill=False)
    # the sphere and the cube uncover some wall and floor, but most of the frame is seen
    assert 0.002 < view.hole_fraction < 0.08, view.hole_fraction
    assert (raw.image[raw.hole_mask] == 0).all() and (view.distance > 0).all()   # every hole got filled
    # filled from the background side: the wall and floor uncovered beside the sphere and the cube take the
    # wall's and floor's colours, not the objects' (filling from the nearer side would paint them red / blue)
    def objects(img):
        r, g, b = (img[..., k].astype(int) for k in range(3))
        return ((r > 120) & (g < 80)) | ((b > 120) & (r < 90))

    assert objects(view.image)[view.hole_mask].mean() < 0.12     # 0.07 here; filling from the near side: 0.18
    assert 15 < psnr(view.image, out.rgb) < 40                     # the same scene, seen from elsewhere
    assert objects(view.image).sum() > 0.8 * objects(out.rgb).sum()   # and the objects are still there


def test_generate_all_writes_meshes_video_gif_and_strip(embedded, tmp_path):
    import imageio.v3 as iio

    out = tmp_path / "out"
    assert main(["generate", PROMPT, "--out", str(out), "--seed", "1", "--steps", "20", "--name", "s", "--all",
                 "--frames", "12", "--fps", "6"]) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {"s_rgb.png", "s_depth.png", "s.json", "s.glb", "s.ply", "s.obj", "s.mtl", "s_texture.png",
                     "s_points.ply", "s.mp4", "s.gif", "s_strip.png"}
    info = json.loads((out / "s.json").read_text())
    assert info["camera"]["model"] == "pinhole" and info["depth_mapping"]["far"] == 10.0
    glb = trimesh.load(out / "s.glb", force="mesh", process=False)
    assert 0.8 * 128 * 128 < len(glb.vertices) <= 128 * 128 and len(glb.faces) > 0.8 * 2 * 127 * 127
    assert len(trimesh.load(out / "s_points.ply").vertices) == 128 * 128
    assert iio.imread(out / "s.mp4", index=None).shape == (12, 128, 128, 3)
    assert iio.immeta(out / "s.mp4", plugin="FFMPEG")["fps"] == pytest.approx(6.0)
    assert Image.open(out / "s_strip.png").size == (6 * 128, 128)
