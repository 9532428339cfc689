"""Render and cache a set of scenes: rgb uint8, depth uint16, captions, in one .npz per split.

    python -m training.dataset --out training/data --train 8000 --pano 2000 --heldout 300
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .scenes import sample

# seed ranges keep splits disjoint: training seeds never appear in held-out sets
TRAIN_SEED0, PANO_SEED0, HELDOUT_SEED0, HELDOUT_PANO_SEED0 = 0, 5_000_000, 9_000_000, 9_500_000


def _render(args):
    seed, size, pano = args
    s = sample(seed, size, panorama=pano)
    return (np.round(s.rgb * 255).astype(np.uint8), np.round(s.depth * 65535).astype(np.uint16), s.caption,
            np.round(s.object_mask).astype(np.int8))


def render_split(path: Path, seeds: list[int], size: int, pano: bool, workers: int) -> None:
    jobs = [(s, size, pano) for s in seeds]
    with ProcessPoolExecutor(workers) as ex:
        out = list(tqdm(ex.map(_render, jobs, chunksize=16), total=len(jobs), desc=path.stem, unit="img"))
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, rgb=np.stack([o[0] for o in out]), depth=np.stack([o[1] for o in out]),
             caption=np.array([o[2] for o in out]), mask=np.stack([o[3] for o in out]), seed=np.array(seeds))
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


def ensure_splits(out: Path, splits, size: int = 128, workers: int | None = None) -> None:
    """Render each split not yet in `out` (seconds for the held-out sets, minutes for training)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, seed0, n, pano in splits:
        path = out / f"{name}-{size}.npz"
        if not path.is_file():
            render_split(path, list(range(seed0, seed0 + n)), size, pano, workers or os.cpu_count())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="training/data")
    ap.add_argument("--size", type=int, default=128, help="image height (panoramas are 2x as wide)")
    ap.add_argument("--train", type=int, default=8000)
    ap.add_argument("--pano", type=int, default=2000)
    ap.add_argument("--heldout", type=int, default=300)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    a = ap.parse_args(argv)
    splits = heldout_splits(a.heldout) + [("train", TRAIN_SEED0, a.train, False),
                                          ("train_pano", PANO_SEED0, a.pano, True)]
    ensure_splits(Path(a.out), splits, a.size, a.workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
