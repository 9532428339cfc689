"""What the trainers share: checkpoints that resume, data as tensors, a seeded RNG, the loop's progress bar."""

from __future__ import annotations

import argparse
import os
import random
import re
import time
from pathlib import Path

import numpy as np


def regex_arg(text: str) -> str:
    """argparse type of an option that takes a regular expression: one that is not one exits 2 with one line."""
    try:
        re.compile(text)
    except re.error as e:
        raise argparse.ArgumentTypeError(f"{text!r}: not a regular expression ({e})") from None
    return text


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def save_checkpoint(path: Path, **state) -> None:
    """Atomic: a crash mid-write leaves the previous checkpoint intact."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path):
    import torch

    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def rgbd_tensor(rgb: np.ndarray, depth: np.ndarray):
    """uint8 (N, H, W, 3) + uint16 (N, H, W) -> float32 (N, 4, H, W) in [-1, 1]."""
    import torch

    x = np.concatenate([rgb.astype(np.float32) / 127.5 - 1, (depth.astype(np.float32) / 65535 * 2 - 1)[..., None]], -1)
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


class Timer:
    def __init__(self):
        self.t0 = time.perf_counter()

    def minutes(self) -> float:
        return (time.perf_counter() - self.t0) / 60
