"""CLIP BPE tokenizer on the `tokenizers` library, read from an exported tokenizer/ folder."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE

from . import constants as C
from .errors import ModelFolderError

log = logging.getLogger(__name__)

# The pre-tokenization pattern of OpenAI CLIP (as transformers' CLIPTokenizer builds it).
_CLIP_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


class ClipTokenizer:
    """Turns a prompt into the fixed-length id sequence the text encoder expects.

    Ids: ``<|startoftext|>`` + BPE tokens + ``<|endoftext|>``, padded with the pad token to ``max_length``.
    Prompts longer than that are cut, with a warning that names what was cut (as diffusers does).
    """

    def __init__(self, tokenizer: Tokenizer, max_length: int, bos: str, eos: str, pad: str):
        self.max_length = max_length
        self._tok = tokenizer
        self.bos_id = self._id(bos)
        self.eos_id = self._id(eos)
        self.pad_id = self._id(pad)

    def _id(self, token: str) -> int:
        i = self._tok.token_to_id(token)
        if i is None:
            raise ModelFolderError(f"tokenizer vocabulary has no special token {token!r}")
        return i

    @classmethod
    def from_folder(cls, folder: str | Path) -> ClipTokenizer:
        folder = Path(folder)
        cfg = _read_json(folder / C.TOKENIZER_CONFIG_FILE) if (folder / C.TOKENIZER_CONFIG_FILE).is_file() else {}
        special = _read_json(folder / C.SPECIAL_TOKENS_FILE) if (folder / C.SPECIAL_TOKENS_FILE).is_file() else {}

        def token(key: str, default: str) -> str:
            v = special.get(key, cfg.get(key, default))
            return v["content"] if isinstance(v, dict) else str(v)

        bos, eos = token("bos_token", "<|startoftext|>"), token("eos_token", "<|endoftext|>")
        pad, unk = token("pad_token", "<|endoftext|>"), token("unk_token", "<|endoftext|>")
        max_length = int(cfg.get("model_max_length", 77))
        if max_length > 10_000:  # transformers' "very large integer" placeholder
            max_length = 77
        vocab, merges = folder / C.VOCAB_FILE, folder / C.MERGES_FILE
        if vocab.is_file() and merges.is_file():
            tok = _build_clip_bpe(vocab, merges, bos=bos, eos=eos, unk=unk)
        elif (folder / C.TOKENIZER_JSON).is_file():
            tok = Tokenizer.from_file(str(folder / C.TOKENIZER_JSON))
        else:
            raise ModelFolderError(f"tokenizer folder {folder} is incomplete: needs {C.VOCAB_FILE} and "
                                   f"{C.MERGES_FILE} (or {C.TOKENIZER_JSON})")
        tok.no_truncation()
        tok.no_padding()
        return cls(tok, max_length=max_length, bos=bos, eos=eos, pad=pad)

    def encode(self, prompt: str) -> np.ndarray:
        """Ids of one prompt, shape (1, max_length), int64."""
        ids = self._tok.encode(prompt).ids
        if len(ids) > self.max_length:
            cut = ids[self.max_length - 1:-1]
            log.warning("prompt is longer than CLIP's %d tokens; this part was cut: %r",
                        self.max_length, self.decode(cut))
            ids = ids[: self.max_length - 1] + [self.eos_id]
        ids = ids + [self.pad_id] * (self.max_length - len(ids))
        return np.asarray(ids, dtype=np.int64)[None, :]

    def decode(self, ids: Iterable[int]) -> str:
        text = self._tok.decode(list(ids), skip_special_tokens=True)
        return text.replace("</w>", " ").strip()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFolderError(f"corrupt tokenizer file {path}: {e}") from None


def _build_clip_bpe(vocab: Path, merges: Path, bos: str, eos: str, unk: str) -> Tokenizer:
    """The same tokenizers pipeline transformers' CLIPTokenizer builds from vocab.json + merges.txt."""
    try:
        model = BPE.from_file(str(vocab), str(merges), continuing_subword_prefix="",
                              end_of_word_suffix="</w>", fuse_unk=False, unk_token=unk)
    except Exception as e:  # tokenizers raises a plain Exception on malformed files
        raise ModelFolderError(f"cannot read tokenizer files {vocab.name}/{merges.name} in {vocab.parent}: "
                               f"{e}") from None
    tok = Tokenizer(model)
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_CLIP_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.decoder = decoders.ByteLevel()
    # special tokens typed into a prompt map to their ids, as in transformers
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in dict.fromkeys((bos, eos, unk))])
    eos_id, bos_id = tok.token_to_id(eos), tok.token_to_id(bos)
    assert eos_id is not None and bos_id is not None   # added as special tokens just above
    tok.post_processor = processors.RobertaProcessing((eos, eos_id), (bos, bos_id), trim_offsets=False,
                                                      add_prefix_space=False)
    return tok
