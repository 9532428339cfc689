"""Weight-space ensembling of a model and its fine-tune (WiSE-FT, Wortsman et al., 2022): the text encoder and
UNet become (1 - alpha) * base + alpha * fine-tuned, the VAE and everything else are the fine-tune's folder's (the
short-prompt fine-tune leaves the VAE untouched, so both folders share it).

    python -m training.wise_ft BASE FINE_TUNED OUT --alpha 0.5

Why: a fine-tune on a shifted caption distribution gains on it and loses a little on the old one; the
interpolated weights often keep most of the gain and little of the loss, at no training cost.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

from .common import regex_arg

PARTS = {"text_encoder": "model.safetensors", "unet": "diffusion_pytorch_model.safetensors"}


def interpolate(base: Path, tuned: Path, out: Path, alpha: float, part_alpha: dict[str, float] | None = None,
                only: str | None = None) -> Path:
    """`part_alpha`: another weight for a part (e.g. {"unet": 0.0}: the base's UNet with the fine-tune's text
    encoder, to see which part a gain or a loss comes from). `only`: a regular expression; a weight whose name it
    does not match stays the base's (e.g. "attn2": graft only the cross-attention, where the prompt enters)."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    if out.exists():
        shutil.rmtree(out)
    # the fine-tune's own evaluation is not the mix's: a stale eval/ read as the mix's results until overwritten
    shutil.copytree(tuned, out, symlinks=True, ignore=shutil.ignore_patterns("eval"))
    for part, name in PARTS.items():
        a, b = load_file(str(base / part / name)), load_file(str(tuned / part / name))
        if a.keys() != b.keys():
            raise SystemExit(f"{part}: the two folders' weights differ in their names")
        w = (part_alpha or {}).get(part, alpha)
        pick = {k: w if only is None or re.search(only, k) else 0.0 for k in a}
        mixed = {
            k: ((1 - pick[k]) * a[k].astype(np.float32) + pick[k] * b[k].astype(np.float32)).astype(b[k].dtype)
            for k in a
        }
        save_file(mixed, str(out / part / name), metadata={"format": "pt"})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", type=Path)
    ap.add_argument("tuned", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--alpha", type=float, default=0.5, help="weight of the fine-tune (0: base, 1: fine-tune)")
    ap.add_argument("--alpha-text", type=float, help="the text encoder's own weight (default --alpha)")
    ap.add_argument("--alpha-unet", type=float, help="the UNet's own weight (default --alpha)")
    ap.add_argument("--only", metavar="REGEX", type=regex_arg,
                    help="mix only the weights whose names match; the rest stay the base's")
    a = ap.parse_args(argv)
    part_alpha = {part: w for part, w in (("text_encoder", a.alpha_text), ("unet", a.alpha_unet)) if w is not None}
    for name, w in (("--alpha", a.alpha), *((f"--alpha for {p}", w) for p, w in part_alpha.items())):
        if not 0 <= w <= 1:
            ap.error(f"{name} {w}: must be in [0, 1]")
    interpolate(a.base, a.tuned, a.out, a.alpha, part_alpha, a.only)
    for part in PARTS:
        w = part_alpha.get(part, a.alpha)
        which = f" (weights matching {a.only!r}; the rest the base's)" if a.only else ""
        print(f"wrote {a.out}/{part} = {1 - w:g} x {a.base} + {w:g} x {a.tuned}{which}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
