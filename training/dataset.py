"""Render and cache a set of scenes: rgb uint8, depth uint16, captions and each scene's contents (JSON, for
caption augmentation), in one .npz per split.

    python -m training.dataset --out training/data --train 8000 --pano 2000 --heldout 300 --wall-colours 0.35

Held-out splits are always rendered as data version 1 (no coloured walls), so the long-caption evaluation reads
the same prompts it always has; `--wall-colours` applies to the training splits.
"""

from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .scenes import sample

# seed ranges keep splits disjoint: training seeds never appear in held-out sets
TRAIN_SEED0, PANO_SEED0, HELDOUT_SEED0, HELDOUT_PANO_SEED0 = 0, 5_000_000, 9_000_000, 9_500_000


def scene_record(scene) -> str:
    """What caption augmentation needs to know of a scene, as JSON: objects nearest first (colour, shape, side),
    floor, wall, panorama."""
    sides = scene.meta.get("sides", [None] * len(scene.objects))
    return json.dumps({"objects": [[o.colour, o.shape, str(side) if side else None]
                                   for o, side in zip(scene.objects, sides)],
                       "floor": scene.floor, "wall": scene.wall, "panorama": scene.panorama})


def _render(args):
    seed, size, pano, wall_colours = args
    s = sample(seed, size, panorama=pano, wall_colours=wall_colours)
    return (np.round(s.rgb * 255).astype(np.uint8), np.round(s.depth * 65535).astype(np.uint16), s.caption,
            np.round(s.object_mask).astype(np.int8), scene_record(s.scene))


def render_split(path: Path, seeds: list[int], size: int, pano: bool, workers: int, wall_colours: float = 0.0) -> None:
    jobs = [(s, size, pano, wall_colours) for s in seeds]
    with ProcessPoolExecutor(workers) as ex:
        out = list(tqdm(ex.map(_render, jobs, chunksize=16), total=len(jobs), desc=path.stem, unit="img"))
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, rgb=np.stack([o[0] for o in out]), depth=np.stack([o[1] for o in out]),
             caption=np.array([o[2] for o in out]), mask=np.stack([o[3] for o in out]), seed=np.array(seeds),
             scene=np.array([o[4] for o in out]), wall_colours=np.float32(wall_colours))
    os.replace(tmp, path)


def load_split(path: str | Path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def train_paths(data: str | Path, size: int = 128) -> list[Path]:
    """The perspective and panorama training splits, in that order."""
    return [Path(data) / f"{name}-{size}.npz" for name in ("train", "train_pano")]


def heldout_splits(n: int) -> list[tuple[str, int, int, bool]]:
    """(name, first seed, count, panorama) of the held-out splits the evaluation reads."""
    return [("heldout", HELDOUT_SEED0, n, False), ("heldout_pano", HELDOUT_PANO_SEED0, n // 3, True)]


def ensure_splits(out: Path, splits, size: int = 128, workers: int | None = None, wall_colours: float = 0.0) -> None:
    """Render each split not yet in `out` (seconds for the held-out sets, minutes for training); `wall_colours`
    applies to the training splits only."""
    out.mkdir(parents=True, exist_ok=True)
    for name, seed0, n, pano in splits:
        path = out / f"{name}-{size}.npz"
        if not path.is_file():
            render_split(path, list(range(seed0, seed0 + n)), size, pano, workers or os.cpu_count(),
                         wall_colours if name.startswith("train") else 0.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="training/data")
    ap.add_argument("--size", type=int, default=128, help="image height (panoramas are 2x as wide)")
    ap.add_argument("--train", type=int, default=8000)
    ap.add_argument("--pano", type=int, default=2000)
    ap.add_argument("--heldout", type=int, default=300)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--wall-colours", type=float, default=0.35,
                    help="share of training walls painted a named colour (data version 2; 0 = version 1)")
    a = ap.parse_args(argv)
    splits = heldout_splits(a.heldout) + [("train", TRAIN_SEED0, a.train, False),
                                          ("train_pano", PANO_SEED0, a.pano, True)]
    ensure_splits(Path(a.out), splits, a.size, a.workers, a.wall_colours)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
