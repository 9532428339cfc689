"""Weight-space ensembling of a model and its fine-tune (WiSE-FT, Wortsman et al., 2022): the text encoder and
UNet become (1 - alpha) * base + alpha * fine-tuned, the VAE and everything else are the fine-tune's folder's (the
short-prompt fine-tune leaves the VAE untouched, so both folders share it).

    python -m training.wise_ft BASE FINE_TUNED OUT --alpha 0.5

Why: a fine-tune on a shifted caption distribution gains on it and loses a little on the old one; the
interpolated weights often keep most of the gain and little of the loss, at no training cost.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

PARTS = {"text_encoder": "model.safetensors", "unet": "diffusion_pytorch_model.safetensors"}


def interpolate(base: Path, tuned: Path, out: Path, alpha: float) -> Path:
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
        mixed = {k: ((1 - alpha) * a[k].astype(np.float32) + alpha * b[k].astype(np.float32)).astype(b[k].dtype)
                 for k in a}
        save_file(mixed, str(out / part / name), metadata={"format": "pt"})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", type=Path)
    ap.add_argument("tuned", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--alpha", type=float, default=0.5, help="weight of the fine-tune (0: base, 1: fine-tune)")
    a = ap.parse_args(argv)
    if not 0 <= a.alpha <= 1:
        ap.error(f"--alpha {a.alpha}: must be in [0, 1]")
    interpolate(a.base, a.tuned, a.out, a.alpha)
    print(f"wrote {a.out}: text encoder and UNet = {1 - a.alpha:g} x {a.base} + {a.alpha:g} x {a.tuned}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
