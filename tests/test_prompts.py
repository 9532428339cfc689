"""Prompt completion (runtime/prompts.py): the embedded model reads a short prompt as the complete caption it
stands for, leaves complete captions and prompts outside its grammar as typed, and says what it encoded."""

import json

import numpy as np
import pytest

from ldm3d_edge import embedded as E
from ldm3d_edge.runtime import Pipeline
from ldm3d_edge.runtime import constants as C
from ldm3d_edge.runtime.errors import ModelFolderError
from ldm3d_edge.runtime.prompts import PromptCompletion
from training.captions import short_prompt_set, variant
from training.dataset import scene_record
from training.scenes import COLOURS, SHAPES, random_panorama, random_scene


@pytest.fixture(scope="module")
def grammar():
    return PromptCompletion.from_file(E.default_model_dir() / C.PROMPT_COMPLETION_FILE)


def test_the_grammar_file_holds_the_scene_generators_words(grammar):
    from training.scenes import FLOORS, WALLS

    assert set(grammar.colours) == set(COLOURS) and set(grammar.shapes) == set(SHAPES)
    assert set(grammar.floors) == set(FLOORS) and set(grammar.walls) == set(WALLS) - {"sky"}


def test_every_caption_the_scene_generator_writes_is_left_as_it_is(grammar):
    rng = np.random.default_rng(0)
    captions = [f(rng, wall_colours=0.35).caption for _ in range(400) for f in (random_scene, random_panorama)]
    assert len(set(captions)) > 700
    assert [c for c in captions if grammar.complete(c) != c] == []


@pytest.mark.parametrize("prompt,caption", [
    ("a green cube", "a green cube in the centre on a grey floor under a blue sky"),
    ("Green cube.", "a green cube in the centre on a grey floor under a blue sky"),
    ("one orange torus", "an orange torus in the centre on a grey floor under a blue sky"),
    ("the yellow cone on the left", "a yellow cone on the left on a grey floor under a blue sky"),
    ("a green cube in front of a pink wall", "a green cube in the centre on a grey floor before a pink wall"),
    ("a green cube with a pink wall behind on the beige floor",
     "a green cube in the centre on a beige floor before a pink wall"),
    ("a red sphere and a blue cube", "a red sphere in the centre in front of a blue cube on a grey floor under a "
                                     "blue sky"),
    ("360 view of a pink torus", "360 view of a room with a pink torus on a grey floor"),
    ("360 view of a cyan cone and a red cube with orange walls",
     "360 view of a room with a cyan cone and a red cube on a grey floor with orange walls"),
    ("360 view of a blue sphere under a blue sky", "360 view of a plain with a blue sphere on a grey floor"),
])
def test_a_short_prompt_becomes_the_complete_caption(grammar, prompt, caption):
    assert grammar.complete(prompt) == caption


@pytest.mark.parametrize("prompt", ["a cat on a sofa", "green", "a cube", "a green cube on a purple floor",
                                    "a green cube on a grey floor on a beige floor", "a magenta cube", ""])
def test_a_prompt_outside_the_grammar_is_encoded_as_typed(grammar, prompt):
    assert grammar.complete(prompt) == prompt


def test_completion_keeps_every_word_a_true_short_caption_names(grammar):
    """The training's short variants (true of their image): completed, each still names the same objects in the
    same order and the floor and wall it named; nothing it said is dropped or changed."""
    rng = np.random.default_rng(1)
    checked = 0
    for k in range(300):
        scene = (random_panorama if k % 3 == 0 else random_scene)(rng, wall_colours=0.35)
        rec = scene_record(scene)
        short = variant(rec, scene.caption, rng, short_share=1.0)
        done = grammar.complete(short)
        if done == short:
            continue
        checked += 1
        objects = [o.name for o in scene.objects]
        assert [o for o in objects if o in short] == [o for o in objects if o in done], (short, done)
        for word in (f"{scene.floor} floor", f"{scene.wall} wall"):
            assert word not in short or word in done, (short, done)
    assert checked > 200


def test_the_pipeline_encodes_the_completed_prompt_and_says_so(tmp_path):
    pipe = Pipeline.load(device="openvino:CPU")
    assert (pipe.manifest.root / C.PROMPT_COMPLETION_FILE).is_file() and pipe.prompt_completion is not None
    latents = np.random.default_rng(0).standard_normal((1, 4, 16, 16), dtype=np.float32)
    short = pipe("a green cube", num_inference_steps=4, latents=latents)
    full = pipe("a green cube in the centre on a grey floor under a blue sky", num_inference_steps=4, latents=latents)
    assert short.completed_prompt == full.prompt and full.completed_prompt is None
    assert np.array_equal(short.rgb, full.rgb) and np.array_equal(short.depth, full.depth)
    info = short.info()
    assert info["prompt"] == "a green cube" and info["completed_prompt"] == full.prompt

    raw = Pipeline.load(device="openvino:CPU", complete_prompts=False)
    typed = raw("a green cube", num_inference_steps=4, latents=latents)
    assert raw.prompt_completion is None and typed.completed_prompt is None and "completed_prompt" not in typed.info()
    assert np.abs(typed.rgb_float - short.rgb_float).max() > 0.05


def test_the_embedded_models_folders_all_carry_its_grammar(embedded):
    shipped = PromptCompletion.of_folder(E.default_model_dir())
    assert shipped is not None
    for art in embedded:
        assert PromptCompletion.of_folder(art) == shipped


def test_a_broken_grammar_file_is_a_clear_model_folder_error(tmp_path):
    path = tmp_path / C.PROMPT_COMPLETION_FILE
    path.write_text("{not json")
    with pytest.raises(ModelFolderError, match="prompt completion"):
        PromptCompletion.of_folder(tmp_path)
    path.write_text(json.dumps({"vocabulary": {"colours": ["red"], "shapes": ["cube"], "floors": ["grey"],
                                               "walls": []}, "defaults": {"default_floor": "green"}}))
    with pytest.raises(ModelFolderError, match="outside its own vocabulary"):
        PromptCompletion.of_folder(tmp_path)
    assert PromptCompletion.of_folder(tmp_path / "none") is None


def test_the_held_out_short_prompts_are_all_in_the_grammar(grammar):
    """The evaluation's short prompts (training/captions.py) all complete: the short-prompt score is the
    completion's, not a mix of completed and typed prompts."""
    sets = short_prompt_set()
    assert all(grammar.complete(e["prompt"]) != e["prompt"] for group in sets.values() for e in group)


def test_generate_says_what_it_read_and_can_encode_as_typed(tmp_path, capsys):
    from ldm3d_edge.cli import main

    for flag, name in (([], "done"), (["--no-prompt-completion"], "typed")):
        assert main(["generate", "a green cube", "--out", str(tmp_path), "--name", name, "--seed", "1",
                     "--steps", "2", *flag]) == 0
    said = capsys.readouterr()
    assert "prompt read as 'a green cube in the centre on a grey floor under a blue sky'" in said.out + said.err
    done, typed = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("done", "typed"))
    assert done["prompt"] == typed["prompt"] == "a green cube"
    assert done["completed_prompt"].startswith("a green cube in the centre") and "completed_prompt" not in typed


def test_the_shipped_defaults_are_the_templates_chosen_on_validation_seeds(grammar):
    """benchmarks/results/embedded-short-prompts/completion-defaults.json (training/completion_defaults.py) names
    the template that won on the validation seeds; the shipped grammar completes every held-out short prompt to
    exactly that template's caption."""
    from pathlib import Path

    from training.completion_defaults import fill

    chosen = json.loads((Path(__file__).parents[1] / "benchmarks/results/embedded-short-prompts/"
                         "completion-defaults.json").read_text())["chosen"]
    sets = short_prompt_set()
    for kind in ("perspective", "panorama"):
        assert all(grammar.complete(e["prompt"]) == fill(e["prompt"], chosen[kind]) for e in sets[kind])
