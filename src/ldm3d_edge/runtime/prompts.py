"""Prompt completion for models trained on one caption grammar (the embedded tiny LDM3D).

A model trained only on complete scene captions ("a green cube in the centre on a grey floor under a blue sky")
reads a short prompt ("a green cube") as something it has rarely seen, and draws it worse: the embedded model
paints green objects cyan and leaves objects out of panoramas far more often for the short form (issue 19;
numbers in its model card). A model folder that ships `prompt_completion.json` declares its caption grammar's
words and the defaults for what a prompt leaves out; the pipeline then reads "a green cube" as that complete
caption, and records the text it encoded in the result (`RGBDResult.completed_prompt`).

Only prompts made entirely of the grammar's own words are completed; anything else ("a cat on a sofa", a colour
the model never saw) is encoded exactly as typed, as are prompts that are already complete. Folders without the
file (every export of a real Intel/ldm3d-* checkpoint) never change a prompt.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import constants as C
from .errors import ModelFolderError

_ARTICLES = ("a", "an", "the", "one")
_SIDES = {"left": "on the left", "right": "on the right", "centre": "in the centre", "center": "in the centre"}


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


@dataclass(frozen=True)
class PromptCompletion:
    """The words of a caption grammar and the defaults for the parts a prompt leaves out (see the module doc)."""

    colours: tuple[str, ...]          # object colours the model was trained on
    shapes: tuple[str, ...]
    floors: tuple[str, ...]           # floor words ("a grey floor")
    walls: tuple[str, ...]            # wall words besides the colours ("a white wall")
    default_side: str = "centre"      # where a lone object stands when the prompt does not say
    default_floor: str = "grey"
    default_backdrop: str = "sky"     # "sky" or a wall word
    panorama_prefix: str = "360 view of"

    @classmethod
    def from_file(cls, path: str | Path) -> PromptCompletion:
        try:
            raw = json.loads(Path(path).read_text())
            vocab, defaults = raw["vocabulary"], raw.get("defaults", {})
            out = cls(colours=tuple(vocab["colours"]), shapes=tuple(vocab["shapes"]), floors=tuple(vocab["floors"]),
                      walls=tuple(vocab["walls"]), **defaults)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelFolderError(f"{path}: not a usable prompt completion file ({e})") from e
        if out.default_side not in _SIDES or out.default_floor not in out.floors or \
                out.default_backdrop not in ("sky", *out.walls, *out.colours):
            raise ModelFolderError(f"{path}: its defaults name words outside its own vocabulary")
        return out

    @classmethod
    def of_folder(cls, folder: str | Path) -> PromptCompletion | None:
        """The folder's completion, or None where it ships none."""
        path = Path(folder) / C.PROMPT_COMPLETION_FILE
        return cls.from_file(path) if path.is_file() else None

    def complete(self, prompt: str) -> str:
        """The complete caption for `prompt`, or `prompt` itself where it is complete or not in the grammar."""
        words = re.sub(r"[,.!;]", " ", prompt.lower()).split()
        scene = _Parser(self, words).scene()
        return prompt if scene is None else self._render(scene)

    def _backdrop(self, wall: str) -> str:
        return "under a blue sky" if wall == "sky" else f"before {_article(wall)} {wall} wall"

    def _render(self, s: dict[str, Any]) -> str:
        objects = [f"{_article(c)} {c} {shape}" for c, shape in s["objects"]]
        floor = f"on a {s['floor'] or self.default_floor} floor"
        if s["panorama"]:
            wall = s["wall"] if s["wall"] in self.colours else ""
            place = "a plain with" if s["wall"] == "sky" or s["place"] == "plain" else "a room with"
            return (f"{self.panorama_prefix} {place} {' and '.join(objects)} {floor}"
                    + (f" with {wall} walls" if wall else ""))
        side = _SIDES[s["side"] or self.default_side]
        behind = f" in front of {' and '.join(objects[1:])}" if len(objects) > 1 else ""
        return f"{objects[0]} {side}{behind} {floor} {self._backdrop(s['wall'] or self.default_backdrop)}"


class _Parser:
    """A recursive-descent reading of the caption grammar: objects ("[a] green cube"), joined by "and" or
    "in front of"; a side after the first; a floor; a backdrop (a sky or a wall) or, for panoramas, walls."""

    def __init__(self, g: PromptCompletion, words: list[str]) -> None:
        self.g, self.w, self.i = g, words, 0

    def _take(self, *seq: str) -> bool:
        if tuple(self.w[self.i:self.i + len(seq)]) == seq:
            self.i += len(seq)
            return True
        return False

    def _one_of(self, options: tuple[str, ...] | dict[str, str]) -> str | None:
        if self.i < len(self.w) and self.w[self.i] in options:
            self.i += 1
            return self.w[self.i - 1]
        return None

    def _object(self) -> tuple[str, str] | None:
        start = self.i
        self._one_of(_ARTICLES)
        colour, shape = self._one_of(self.g.colours), None
        if colour:
            shape = self._one_of(self.g.shapes)
        if colour and shape:
            return colour, shape
        self.i = start
        return None

    def _wall(self, plural: bool) -> str | None:
        """"[a] W wall" (or "W walls"): the wall word, the position moved past it."""
        start = self.i
        self._one_of(_ARTICLES)
        wall = self._one_of((*self.g.walls, *self.g.colours))
        if wall and self._take("walls" if plural else "wall"):
            return wall
        self.i = start
        return None

    def _clause(self, s: dict[str, Any]) -> bool:
        """One floor or backdrop clause; False where none starts here."""
        start = self.i
        if self._take("on"):
            self._one_of(_ARTICLES)
            floor = self._one_of(self.g.floors)
            if floor and self._take("floor") and not s["floor"]:
                s["floor"] = floor
                return True
            self.i = start
        if s["wall"]:
            return False
        if self._take("under"):
            self._one_of(_ARTICLES)
            self._take("blue")
            if self._take("sky"):
                s["wall"] = "sky"
                return True
            self.i = start
        if self._take("before") or self._take("in", "front", "of"):
            wall = self._wall(plural=s["panorama"])
            if wall:
                s["wall"] = wall
                return True
            self.i = start
        if self._take("with"):
            wall = self._wall(plural=True) if s["panorama"] else self._wall(plural=False)
            if wall and (s["panorama"] or self._take("behind")):
                s["wall"] = wall
                return True
            self.i = start
        return False

    def scene(self) -> dict[str, Any] | None:
        s: dict[str, Any]
        g, s = self.g, {"panorama": False, "place": None, "objects": [], "side": None, "floor": None, "wall": None}
        if self._take(*g.panorama_prefix.split()):
            s["panorama"] = True
            for place in ("room", "plain"):
                if self._take("a", place, "with") or self._take(place, "with"):
                    s["place"] = place
        first = self._object()
        if first is None:
            return None
        s["objects"].append(first)
        if not s["panorama"]:
            start = self.i
            if self._take("in", "the") or self._take("on", "the"):
                s["side"] = self._one_of(_SIDES)
                if s["side"] is None:
                    self.i = start
        while True:     # more objects: "and" (any kind) or "in front of" (perspective)
            start = self.i
            if self._take("and") or (not s["panorama"] and self._take("in", "front", "of")):
                more = self._object()
                if more:
                    s["objects"].append(more)
                    continue
            self.i = start
            break
        while self.i < len(self.w) and self._clause(s):
            pass
        return s if self.i == len(self.w) else None


__all__ = ["PromptCompletion"]
