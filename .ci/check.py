"""CI checks that are not tests of the package itself:

    python .ci/check.py readme OUT_DIR     README command 1 wrote what docs/ shows
    python .ci/check.py wheel WHEEL        the wheel holds the package and its data, no tests/ or training/
    python .ci/check.py serve VENV OUT     VENV's `ldm3d serve` answers a generation with README command 1's image
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def readme(out: Path) -> None:
    """The strip and the GIF command 1 wrote are docs/'s within one level in a few values: OpenVINO's CPU kernels
    differ between processors and versions in the last float bits (18 of 295 k strip values moved by one level
    between two VMs of the same kind, and between the AVX2 and the AMX VM). The GIF's frames go through Pillow's
    palette quantizer, which can turn such a one-level change into the next palette colour: 6 of its 2.4 M values
    moved by up to 8 levels between the AVX2 and the AMX VM, so a few values there may move further."""
    notes = []
    for name, read, far in (("scene_strip.png", lambda p: imageio.imread(p)[None], 0.0),
                            ("scene.gif", imageio.mimread, 1e-5)):
        a, b = (np.stack(read(d / name)).astype(int) for d in (out, ROOT / "docs"))
        assert a.shape == b.shape, (name, a.shape, b.shape)
        diff = np.abs(a - b)
        moved, beyond = (diff > 0).mean(), (diff > 1).mean()
        assert moved < 1e-3 and beyond <= far and diff.max() <= 16, (name, diff.max(), moved, beyond)
        notes.append(f"{name}: {(diff > 0).sum()} of {diff.size} values moved, {(diff > 1).sum()} by more than 1 "
                     f"(at most {diff.max()})")
    print(f"readme: {'; '.join(notes)}")


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


def serve(venv: Path, out: Path) -> None:
    """Start VENV/bin/ldm3d serve on a free loopback port, ask it for README command 1's scene over HTTP and
    compare the RGB and depth PNGs it writes with command 1's (out/scene_*.png)."""
    from ldm3d_edge.runtime.config import DEFAULT_STEPS

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    work = out.parent / "serve-check"
    server = subprocess.Popen([str(venv / "bin" / "ldm3d"), "serve", "--port", str(port), "--results",
                               str(work)], cwd=out.parent, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def call(path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read() if path.startswith("/v1/results/") else json.loads(r.read())

    try:
        for _ in range(240):
            try:
                call("/v1/health")
                break
            except OSError:
                assert server.poll() is None, f"ldm3d serve exited with {server.returncode}"
                time.sleep(0.5)
        job = call("/v1/generate", {"prompt": README_PROMPT, "seed": 1, "steps": DEFAULT_STEPS,
                                    "outputs": ["rgb", "depth", "json"]})
        for _ in range(600):
            status = call(f"/v1/jobs/{job['id']}")
            if status["status"] in ("done", "failed", "cancelled"):
                break
            time.sleep(0.2)
        assert status["status"] == "done", status
        for kind in ("rgb", "depth"):
            got = call(status["links"][kind])
            assert got == (out / f"scene_{kind}.png").read_bytes(), f"served {kind} differs from command 1's"
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"serve: {venv}/bin/ldm3d serve answered a generation with README command 1's RGB and depth PNGs")


README_PROMPT = "a red sphere on the left in front of a blue cube on a grey floor before a white wall"

if __name__ == "__main__":
    {"readme": readme, "wheel": wheel, "serve": serve}[sys.argv[1]](*map(Path, sys.argv[2:]))
