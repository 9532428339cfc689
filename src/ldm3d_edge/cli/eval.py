"""ldm3d eval-embedded: measure the embedded model. A developer command: the evaluation lives in the source
tree's training/ (not in the wheel), which this command imports from the clone the package was installed from."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from ..extras import need_extra
from ..runtime.errors import Ldm3dError
from .common import Subparsers, int_arg

SOURCE_TREE = Path(__file__).resolve().parents[3]   # src/ldm3d_edge/cli/eval.py -> the clone's root


def register(sub: Subparsers) -> None:
    v = sub.add_parser("eval-embedded", help="measure the embedded model (reconstruction, prompt adherence)",
                       description="Evaluate the embedded model: VAE reconstruction on held-out renders, prompt "
                                   "adherence and depth/RGB agreement through the exported runtime on held-out long "
                                   "captions and short prompts, wall and floor words, contact sheets. "
                                   "Needs the [export] extra and the source tree (training/), as in an editable "
                                   "install of a clone; the same as 'python -m training.evaluate' there.")
    v.add_argument("--model", help="diffusers folder (default: the embedded model)")
    v.add_argument("--data", default="training/data", help="held-out renders (rendered there first if missing; "
                                                           "default: training/data)")
    v.add_argument("--out", help="folder for eval.json, eval_short.json, samples*.json, contact sheets "
                                 "(default: <model>/eval)")
    v.add_argument("--only", choices=("all", "long", "short"), default="all",
                   help="long: held-out captions and the VAE; short: the held-out short prompts (default: all)")
    v.add_argument("--prompts", type=int_arg, default=100)
    v.add_argument("--steps", type=int_arg, default=30)
    v.add_argument("--device", default="openvino:CPU")
    v.set_defaults(run=run)


def training_module(name: str):
    """training.<name> from the source tree (put on sys.path when the package runs from a clone)."""
    need_extra("'ldm3d eval-embedded'", "export", "torch", "diffusers")
    if (SOURCE_TREE / "training" / "__init__.py").is_file() and str(SOURCE_TREE) not in sys.path:
        sys.path.append(str(SOURCE_TREE))
    try:
        return importlib.import_module(f"training.{name}")
    except ModuleNotFoundError as e:
        if e.name not in ("training", f"training.{name}"):
            raise
        raise Ldm3dError("'ldm3d eval-embedded' needs the source tree's training/ (not installed with the package): "
                         "run it from an editable install of a clone (pip install -e .)") from None


def run(a: argparse.Namespace) -> int:
    evaluate = training_module("evaluate").main
    argv = ["--prompts", str(a.prompts), "--steps", str(a.steps), "--device", a.device, "--data", a.data,
            "--only", a.only]
    return evaluate(argv + (["--out", a.out] if a.out else []) + (["--model", a.model] if a.model else []))
