"""Make the embedded model's shipped OpenVINO IR from its diffusers folder, with the project's own exporter.

    python -m training.ship_embedded            # src/ldm3d_edge/models/ldm3d-edge-tiny -> ...-tiny-openvino

Run it after every change to the embedded model's weights (training, fine-tuning): the runtime uses the shipped IR
only while the fingerprint of the checkpoint it was made from matches (else it exports on first use, which needs
torch), and tests/test_embedded.py re-exports the weights and checks that the shipped IR computes the same.
One FP32 graph at 128x128 with its weights stored in float16 (as the checkpoint's are: no loss); OpenVINO
reshapes it to the 256x128 panorama at load.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ldm3d_edge import ASSETS_DIR
from ldm3d_edge.embedded import PERSPECTIVE_SIZE, default_model_dir, shipped_dir
from ldm3d_edge.export import export_pipeline
from ldm3d_edge.runtime import constants as C
from ldm3d_edge.runtime.result import atomic_write


def ship(model_dir: Path, out: Path, progress: bool = True) -> dict:
    h, w = PERSPECTIVE_SIZE
    manifest = export_pipeline(model_dir, out, fmt="openvino", height=h, width=w, fp16_weights=True,
                               overwrite=True, progress=progress)
    # the folder travels in the package: record where the checkpoint sits in it, not this machine's path
    path = out / C.MANIFEST_FILE
    raw = json.loads(path.read_text())
    raw["source"]["path"] = f"ldm3d_edge/models/{model_dir.name}"
    atomic_write(path, lambda p: Path(p).write_text(json.dumps(raw, indent=2)))
    _link_vocabulary(out / C.TOKENIZER_DIR)
    return manifest


def _link_vocabulary(tokenizer: Path) -> None:
    """The repo keeps one copy of the CLIP vocabulary (tests/test_layout.py): the exported copies become relative
    links to it, as the diffusers folder's are; the wheel materialises them."""
    vocab = ASSETS_DIR / "clip-tokenizer"
    for name in (C.VOCAB_FILE, C.MERGES_FILE):
        target = vocab / name
        assert (tokenizer / name).read_bytes() == target.read_bytes(), name
        (tokenizer / name).unlink()
        (tokenizer / name).symlink_to(os.path.relpath(target, tokenizer))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="diffusers folder (default: the embedded model)")
    a = ap.parse_args(argv)
    model_dir = a.model or default_model_dir()
    out = shipped_dir(model_dir)
    m = ship(model_dir, out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"shipped {model_dir.name} -> {out}: {size / 1e6:.1f} MB, weights {m['weights']}, source fingerprint "
          f"{m['source']['fingerprint']}, in {m['export_seconds']:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
