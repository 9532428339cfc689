"""Caption augmentation: many true ways to say what a rendered scene shows, and the held-out short prompts.

The scene generator's own captions are long and always in one order ("a red sphere on the left in front of a
blue cube on a grey floor before a white wall"). A new user types "a green cube". `variant` draws, for one
scene record (training/dataset.py: scene_record), either that long caption or a shorter one that is still true:

- every object named, nearest first (perspective), with the article "a"/"an", "one", "the" or none;
- place, floor and backdrop words each kept or dropped; the backdrop also as "with a green wall behind";
- word-order variants ("on a grey floor, a green cube", "a grey floor with a green cube");
- a single object's colour word or shape word alone ("green", "a cube").

Captions never name what is not there. The evaluation's short prompts (`short_prompt_set`) are held out as exact
strings: `variant` never returns one of them, though every template, colour and shape appears in training.
"""

from __future__ import annotations

import json

import numpy as np

from ldm3d_edge.metrics import COLOURS

from .scenes import SHAPES, _article, backdrop_words

# the short phrasings a new user types; the evaluation holds out (pair, template) combinations of these
TEMPLATES = ("a {c} {s}", "{c} {s}", "the {c} {s}", "one {c} {s}")
PAIRS = [(c, s) for c in COLOURS for s in SHAPES]          # 40 colour x shape pairs
PLAIN_WALLS = ("white", "grey")
FLOOR_NAMES = ("grey", "beige", "dark", "brown")


def _phrase(colour: str, shape: str, article: str) -> str:
    if article == "a":
        return f"{_article(colour)} {colour} {shape}"
    return f"{article} {colour} {shape}".strip()


def short_prompt_set() -> dict[str, list[dict]]:
    """The held-out short prompts: every colour x shape twice in perspective (two templates each, 80), once as a
    panorama (40); and prompts that give the wall or the floor a colour (perspective 32, panorama 16).
    Each entry: prompt, the object's colour and shape, and wall / floor where the prompt names one."""
    persp, pano, walls, pano_walls = [], [], [], []
    for i, (c, s) in enumerate(PAIRS):
        for t in (TEMPLATES[i % 4], TEMPLATES[(i + 1) % 4]):
            persp.append({"prompt": t.format(c=c, s=s).replace("a o", "an o"), "colour": c, "shape": s})
        pano.append({"prompt": "360 view of " + TEMPLATES[(i + 2) % 4].format(c=c, s=s).replace("a o", "an o"),
                     "colour": c, "shape": s})
    colours = list(COLOURS)
    for i in range(32):      # each wall colour 4 times, never the object's colour; every fourth names a floor
        c, s = PAIRS[(7 * i + 3) % 40]
        wall = colours[(colours.index(c) + 1 + i % 7) % 8]
        entry = {"colour": c, "shape": s, "wall": wall}
        floor = f" on a {FLOOR_NAMES[i // 4 % 4]} floor" if i % 4 == 3 else ""
        if floor:
            entry["floor"] = FLOOR_NAMES[i // 4 % 4]
        walls.append({"prompt": f"{_phrase(c, s, 'a')}{floor} before {_article(wall)} {wall} wall", **entry})
    for i in range(16):
        c, s = PAIRS[(11 * i + 5) % 40]
        wall = colours[(colours.index(c) + 2 + i % 6) % 8]
        pano_walls.append({"prompt": f"360 view of a room with {_phrase(c, s, 'a')} with {wall} walls",
                           "colour": c, "shape": s, "wall": wall})
    return {"perspective": persp, "panorama": pano, "walls": walls, "panorama_walls": pano_walls}


HELD_OUT = frozenset(e["prompt"] for group in short_prompt_set().values() for e in group)


def _objects(rec: dict, rng: np.random.Generator, mirrored: bool) -> list[str]:
    article = str(rng.choice(["a", "a", "one", "the", ""]))
    out = []
    for k, (colour, shape, side) in enumerate(rec["objects"]):
        words = _phrase(colour, shape, article if k == 0 else "a")
        if k == 0 and side and not rec["panorama"] and rng.random() < 0.35:
            if mirrored:
                side = {"left": "right", "right": "left"}.get(side, side)
            words += " in the centre" if side == "centre" else f" on the {side}"
        out.append(words)
    return out


def _short(rec: dict, rng: np.random.Generator, mirrored: bool) -> str:
    objs = _objects(rec, rng, mirrored)
    (colour, shape, _), n = rec["objects"][0], len(rec["objects"])
    if n == 1 and rng.random() < 0.12:                  # a colour word or a shape word alone
        return str(rng.choice([colour, shape, f"{_article(shape)} {shape}", f"something {colour}"]))
    joiner = " in front of " if (not rec["panorama"] and rng.random() < 0.5) else " and "
    things = objs[0] + (joiner + " and ".join(objs[1:]) if n > 1 else "")
    floor = f"a {rec['floor']} floor" if rng.random() < 0.4 else ""
    wall = rec["wall"]
    named_wall = wall in COLOURS or rng.random() < 0.3       # coloured walls are named more often: they are rarer
    if rec["panorama"]:
        place = "a room with" if wall != "sky" else "a plain with"
        walls = f" with {wall} walls" if wall in COLOURS and named_wall else ""
        head = "360 view of " + (place + " " if rng.random() < 0.5 else "")
        return f"{head}{things}{' on ' + floor if floor else ''}{walls}"
    backdrop = ""
    if named_wall:
        backdrop = (f"with {_article(wall)} {wall} wall behind" if wall != "sky" and rng.random() < 0.3
                    else backdrop_words(wall))
    r = rng.random()
    if floor and r < 0.15:
        return f"on {floor}, {things}" + (f" {backdrop}" if backdrop else "")
    if floor and r < 0.3:
        return f"{floor} with {things}" + (f" {backdrop}" if backdrop else "")
    return " ".join(w for w in (things, "on " + floor if floor else "", backdrop) if w)


def variant(scene_json: str, caption: str, rng: np.random.Generator, short_share: float = 0.6,
            mirrored: bool = False) -> str:
    """The long `caption` (already mirrored if the image is) or, with probability `short_share`, a shorter true
    caption; never one of the held-out evaluation prompts."""
    if rng.random() >= short_share:
        return caption
    rec = json.loads(scene_json)
    for _ in range(8):
        c = _short(rec, rng, mirrored)
        if c not in HELD_OUT:
            return c
    return caption


def recoloured(scene_json: str, caption: str, rng: np.random.Generator) -> str | None:
    """The long `caption` with one object's colour word (the nearest's half the time) changed to a colour no object
    of the scene has: a caption the image contradicts, as img2img's recolouring gives the model. None if the
    caption does not spell that object as "<colour> <shape>", or no colour is free."""
    objs = json.loads(scene_json)["objects"]
    k = 0 if rng.random() < 0.5 else int(rng.integers(len(objs)))
    colour, shape, _ = objs[k]
    free = [c for c in COLOURS if c not in {o[0] for o in objs}]
    old = f"{colour} {shape}"
    if old not in caption or not free:
        return None
    new = str(rng.choice(free))
    with_article = f"{_article(colour)} {old}"      # "a red cube" -> "an orange cube"
    if with_article in caption:
        return caption.replace(with_article, f"{_article(new)} {new} {shape}", 1)
    return caption.replace(old, f"{new} {shape}", 1)
