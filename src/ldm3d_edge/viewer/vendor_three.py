"""Vendor three.js from the npm registry into viewer/static/vendor/three/ (no CDN at run time).

    python -m ldm3d_edge.viewer.vendor_three [--version 0.187.0]

Runs `npm pack three@VERSION` in a temporary folder and copies the ES-module build (three.module.js and the
three.core.js it imports), OrbitControls, VRButton, GLTFLoader (with the two utils it imports) and the licence,
then writes VENDORED.json with each file's sha256. The result is committed, so a kiosk installs the viewer
without npm; rerun this to update three.js.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

VERSION = "0.187.0"
VENDOR_DIR = Path(__file__).resolve().parent / "static" / "vendor" / "three"
FILES = {"build/three.module.js": "three.module.js", "build/three.core.js": "three.core.js",
         "examples/jsm/controls/OrbitControls.js": "OrbitControls.js",
         "examples/jsm/webxr/VRButton.js": "VRButton.js", "LICENSE": "LICENSE",
         # the fused scenes of `ldm3d explore` are GLB point clouds; GLTFLoader imports ../utils/ relative to
         # itself, so both keep their folders
         "examples/jsm/loaders/GLTFLoader.js": "loaders/GLTFLoader.js",
         "examples/jsm/utils/BufferGeometryUtils.js": "utils/BufferGeometryUtils.js",
         "examples/jsm/utils/SkeletonUtils.js": "utils/SkeletonUtils.js"}


def vendor(version: str = VERSION, out: Path = VENDOR_DIR) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", f"three@{version}", "--silent"], cwd=tmp, check=True, capture_output=True)
        (tgz,) = Path(tmp).glob("three-*.tgz")
        with tarfile.open(tgz) as tar:
            tar.extractall(tmp, filter="data")
        out.mkdir(parents=True, exist_ok=True)
        for src, dst in FILES.items():
            (out / dst).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(tmp) / "package" / src, out / dst)
    info = {"package": "three", "version": version,
            "files": {dst: hashlib.sha256((out / dst).read_bytes()).hexdigest() for dst in FILES.values()}}
    (out / "VENDORED.json").write_text(json.dumps(info, indent=2))
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", default=VERSION)
    info = vendor(ap.parse_args(argv).version)
    print(f"vendored three@{info['version']} into {VENDOR_DIR}: {', '.join(info['files'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
