"""ldm3d-edge: export LDM3D (text -> RGB + depth) to ONNX / OpenVINO and run it without torch.

Subpackages (data flows top to bottom; docs/architecture.md):
    ldm3d_edge.export        diffusers checkpoint -> static-shape ONNX / OpenVINO artifacts + manifest
    ldm3d_edge.quantization  INT8 variants of an artifact folder, and their quality report
    ldm3d_edge.runtime       artifact folder -> RGB + depth (numpy, openvino, onnxruntime; never torch)
    ldm3d_edge.scene3d       RGB + depth -> meshes, panorama spheres, new views, camera-flight videos
    ldm3d_edge.server        the kiosk service (HTTP jobs, results, metrics) and Ray Serve; viewer: its page
    ldm3d_edge.bench         `ldm3d bench`: every variant side by side, with the roofline
    ldm3d_edge.cli           the `ldm3d` command, one module per command
"""

from pathlib import Path

__version__ = "0.1.0"   # the one version source: pyproject.toml and native/CMakeLists.txt read it

# Files the product needs at run time (CLIP vocabulary, release configs), shipped inside the package.
ASSETS_DIR = Path(__file__).resolve().parent / "assets"
