"""Caption augmentation says only what a scene shows, never says an evaluation prompt, and data version 2
(coloured walls) leaves version 1's scenes as they were."""

import json
import re

import numpy as np

from ldm3d_edge import metrics as M
from ldm3d_edge.embedded import default_model_dir
from training.captions import HELD_OUT, PAIRS, recoloured, short_prompt_set, variant
from training.dataset import HELDOUT_PANO_SEED0, HELDOUT_SEED0, scene_record
from training.scenes import SHAPES, sample
from training.train_ldm import flip_caption

OBJECT = re.compile(r"\b(" + "|".join(M.COLOURS) + r") (" + "|".join(SHAPES) + r")\b")


def _check_true(caption: str, rec: dict, mirrored: bool) -> None:
    objects = [(c, s) for c, s, _ in rec["objects"]]
    named = OBJECT.findall(caption)
    assert set(named) <= set(objects), (caption, objects)
    if named:   # nearest first in perspective scenes
        assert rec["panorama"] or named[0] == objects[0], (caption, objects)
    words = caption.split()
    for word in words:
        if word in M.COLOURS and not named:     # a colour word alone: the single object's colour
            assert word == objects[0][0], (caption, objects)
    for k, word in enumerate(words):
        if word in ("wall", "walls"):
            assert words[k - 1] == rec["wall"], (caption, rec)
        if word == "floor":
            assert words[k - 1] == rec["floor"], (caption, rec)
        if word == "sky":
            assert rec["wall"] == "sky", (caption, rec)
    side = rec["objects"][0][2]
    if side and side != "centre" and not rec["panorama"]:
        said = {"left", "right"} & set(words)
        expect = {"left": "right", "right": "left"}[side] if mirrored else side
        assert said <= {expect}, (caption, rec, mirrored)


def test_variants_are_true_to_the_scene_and_never_an_evaluation_prompt():
    rng = np.random.default_rng(0)
    seen, short = set(), 0
    for seed in range(120):
        pano = seed % 3 == 0
        s = sample(seed, 16, panorama=pano, wall_colours=0.5)
        rec = scene_record(s.scene)
        for mirrored in (False, True):
            long = flip_caption(s.caption) if mirrored else s.caption
            for _ in range(10):
                c = variant(rec, long, rng, short_share=1.0, mirrored=mirrored)
                assert c not in HELD_OUT
                _check_true(c, json.loads(rec), mirrored)
                seen.add(c)
                short += len(c) < len(long)
    # the augmentation really varies: many distinct captions, most of them shorter than the scene's own
    assert len(seen) > 1500 and short > 0.9 * 2400


def test_recoloured_changes_one_object_to_a_colour_the_scene_lacks():
    """The counterfactual caption: exactly one object's colour word changes, to a colour no object has, with its
    article fixed ("a red cube" -> "an orange cube"); every other word stays; the nearest object about half the
    time."""
    rng = np.random.default_rng(0)
    nearest = total = 0
    for seed in range(60):
        s = sample(seed, 16, panorama=seed % 3 == 0)
        rec = scene_record(s.scene)
        colours = {o[0] for o in json.loads(rec)["objects"]}
        for mirrored in (False, True):
            long = flip_caption(s.caption) if mirrored else s.caption
            c = recoloured(rec, long, rng)
            assert c is not None
            before, after = OBJECT.findall(long), OBJECT.findall(c)
            changed = [k for k, (x, y) in enumerate(zip(before, after)) if x != y]
            assert len(after) == len(before) and len(changed) == 1, (long, c)
            k = changed[0]
            assert after[k][1] == before[k][1] and after[k][0] not in colours, (long, c)
            assert OBJECT.sub("X", re.sub(r"\ban? ", "", c)) == OBJECT.sub("X", re.sub(r"\ban? ", "", long))
            for article, colour in re.findall(r"\b(an?) (" + "|".join(M.COLOURS) + r")\b", c):
                assert article == ("an" if colour[0] in "aeiou" else "a"), c
            nearest += k == 0
            total += 1
    assert 0.4 < nearest / total < 0.9, nearest / total


def test_short_prompt_set_covers_every_colour_and_shape():
    sets = short_prompt_set()
    assert len(sets["perspective"]) >= 48 and len(sets["panorama"]) >= 24
    for key in ("perspective", "panorama"):
        assert {(e["colour"], e["shape"]) for e in sets[key]} == set(PAIRS)
        for e in sets[key]:
            assert OBJECT.findall(e["prompt"]) == [(e["colour"], e["shape"])]
    for e in sets["walls"] + sets["panorama_walls"]:
        assert e["wall"] != e["colour"] and f"{e['wall']} wall" in e["prompt"]
    assert len({e["prompt"] for g in sets.values() for e in g}) == len(HELD_OUT) == 168


def test_version_1_scenes_are_unchanged():
    """The long-caption evaluation's prompts (recorded in the model's eval/samples.json) come out of the
    generator exactly as before coloured walls were added."""
    recorded = json.loads((default_model_dir() / "eval" / "samples.json").read_text())
    for key, seed0, pano in (("perspective", HELDOUT_SEED0, False), ("panorama", HELDOUT_PANO_SEED0, True)):
        for row in recorded[key][:12]:
            assert sample(seed0 + row["seed"], 16, panorama=pano).caption == row["prompt"]


def test_long_seed_draws_new_noise_for_the_same_captions():
    """training.evaluate --long-seed S: the held-out captions stay the reported set's, caption k is generated with
    seed S + k (a validation draw to choose a model on), and the draw changes what is scored."""
    from ldm3d_edge.embedded import embedded_artifacts
    from training.evaluate import adherence

    persp, _, _ = embedded_artifacts()
    (a0, r0), (a1, r1) = (adherence(persp, 3, 2, 5.0, "openvino:CPU", seed0=s) for s in (0, 5000))
    assert [r["seed"] for r in r0] == [0, 1, 2] and [r["seed"] for r in r1] == [5000, 5001, 5002]
    assert (a0["seed0"], a1["seed0"]) == (0, 5000)
    assert [r["prompt"] for r in r0] == [r["prompt"] for r in r1]
    assert [r["prompt"] for r in r0] == [sample(HELDOUT_SEED0 + k, 16).caption for k in range(3)]
    assert [r["iou"] for r in r0] != [r["iou"] for r in r1]


def test_coloured_walls_render_in_their_colour_and_are_named():
    hits = 0
    for seed in range(12):
        s = sample(seed, 128, wall_colours=1.0)
        if s.scene.wall == "sky":
            continue
        assert s.scene.wall in M.COLOURS and s.scene.wall not in {o.colour for o in s.scene.objects}
        assert f"before {'an' if s.scene.wall == 'orange' else 'a'} {s.scene.wall} wall" in s.caption
        assert M.wall_colour(s.rgb, s.depth) == s.scene.wall
        hits += 1
    assert hits >= 6
