"""CI checks that are not tests of the package itself:

    python .ci/check.py readme OUT_DIR     README command 1 wrote what docs/ shows
    python .ci/check.py wheel WHEEL        the wheel holds the package and its data, no tests/ or training/
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def readme(out: Path) -> None:
    strip, doc_strip = (out / "scene_strip.png").read_bytes(), (ROOT / "docs" / "scene_strip.png").read_bytes()
    assert strip == doc_strip, "out/scene_strip.png differs from docs/scene_strip.png"
    # the GIF's frames go through Pillow's palette quantizer, whose rounding has moved between Pillow versions by
    # one level in a handful of values; the frames themselves are the strip's, compared byte for byte above
    a = np.stack(imageio.mimread(out / "scene.gif")).astype(int)
    b = np.stack(imageio.mimread(ROOT / "docs" / "scene.gif")).astype(int)
    assert a.shape == b.shape, (a.shape, b.shape)
    diff = np.abs(a - b)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-5, (diff.max(), (diff > 0).mean())
    print(f"readme: strip byte-identical to docs/, GIF {a.shape[0]} frames, {(diff > 0).sum()} values off by 1")


def wheel(path: Path) -> None:
    names = zipfile.ZipFile(path).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"ldm3d_edge", f"{path.name.split('-')[0]}-{path.name.split('-')[1]}.dist-info"}, top
    for must in ("ldm3d_edge/py.typed", "ldm3d_edge/runtime/pipeline.py", "ldm3d_edge/viewer/static/index.html",
                 "ldm3d_edge/assets/clip-tokenizer/vocab.json", "ldm3d_edge/models/ldm3d-edge-tiny/model_index.json",
                 "ldm3d_edge/models/ldm3d-edge-tiny/tokenizer/vocab.json",
                 "ldm3d_edge/models/ldm3d-edge-tiny-openvino/manifest.json",
                 "ldm3d_edge/models/ldm3d-edge-tiny-openvino/unet/openvino_model.bin",
                 "ldm3d_edge/models/ldm3d-edge-tiny-openvino/tokenizer/vocab.json",
                 "ldm3d_edge/quantization/calibration_prompts.txt"):
        assert must in names, f"{must} missing from {path.name}"
    bad = [n for n in names if "/tests/" in n or "/training/" in n or n.startswith(("tests/", "training/"))]
    assert not bad, bad
    print(f"wheel: {path.name}, {len(names)} files, no tests/ or training/")


if __name__ == "__main__":
    {"readme": readme, "wheel": wheel}[sys.argv[1]](Path(sys.argv[2]))
