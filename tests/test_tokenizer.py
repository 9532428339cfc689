"""The runtime's CLIP tokenizer gives the same ids as transformers' CLIPTokenizer."""

import logging
import shutil

import numpy as np
import pytest

from ldm3d_edge import ASSETS_DIR
from ldm3d_edge.runtime.errors import ModelFolderError
from ldm3d_edge.runtime.tokenizer import ClipTokenizer

TOKENIZER_DIR = ASSETS_DIR / "clip-tokenizer"
AWKWARD = [
    "a red sphere in front of a blue cube",
    "",
    "   ",
    "360 view of a café at dusk — naïve façade, 東京 タワー, Ünïcödé",
    "emoji 🤖🏔️🌊 and ZWJ 👩‍🚀",
    "punctuation!!! ??? ... ;;; (parens) [brackets] {braces} <|endoftext|> \"quotes\" 'single'",
    "it's they're we've I'm you'll he'd DON'T",
    "tabs\tand\nnewlines\r\n  and   runs   of   spaces",
    "numbers 3.14159 1,000,000 2026-11-26 0xFF",
    "UPPER lower MiXeD",
    "word " * 120,  # far over 77 tokens
    "supercalifragilisticexpialidocious-antidisestablishmentarianism",
]


@pytest.fixture(scope="module")
def reference():
    transformers = pytest.importorskip("transformers")
    return transformers.CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR))


@pytest.mark.parametrize("prompt", AWKWARD)
def test_ids_match_transformers(reference, prompt):
    ours = ClipTokenizer.from_folder(TOKENIZER_DIR).encode(prompt)
    ref = reference(prompt, padding="max_length", max_length=77, truncation=True, return_tensors="np").input_ids
    assert ours.shape == (1, 77) and ours.dtype == np.int64
    np.testing.assert_array_equal(ours, ref)


def test_long_prompt_is_cut_with_a_warning_naming_the_cut(caplog):
    tok = ClipTokenizer.from_folder(TOKENIZER_DIR)
    prompt = "a cat " * 40 + "THE END IS HERE"
    with caplog.at_level(logging.WARNING):
        ids = tok.encode(prompt)
    assert ids[0, 0] == tok.bos_id and ids[0, -1] == tok.eos_id
    assert "the end is here" in caplog.text and "cut" in caplog.text


def test_short_prompt_does_not_warn(caplog):
    with caplog.at_level(logging.WARNING):
        ClipTokenizer.from_folder(TOKENIZER_DIR).encode("a short prompt")
    assert caplog.text == ""


def test_tokenizer_json_alone_is_enough(tmp_path, reference):
    reference.save_pretrained(str(tmp_path))
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / name).unlink(missing_ok=True)
    ids = ClipTokenizer.from_folder(tmp_path).encode(AWKWARD[3])
    np.testing.assert_array_equal(ids, ClipTokenizer.from_folder(TOKENIZER_DIR).encode(AWKWARD[3]))


def test_missing_files_are_named(tmp_path):
    shutil.copy(TOKENIZER_DIR / "vocab.json", tmp_path)
    with pytest.raises(ModelFolderError, match="merges.txt"):
        ClipTokenizer.from_folder(tmp_path)
