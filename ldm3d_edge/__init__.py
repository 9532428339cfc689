"""ldm3d-edge: export LDM3D (text -> RGB + depth) to ONNX / OpenVINO and run it without torch.

Subpackages (data flows top to bottom):
    ldm3d_edge.export        diffusers checkpoint -> static-shape ONNX / OpenVINO artifacts + manifest
    ldm3d_edge.quantization  INT8 variants of an artifact folder
    ldm3d_edge.runtime       artifact folder -> RGB + depth (numpy, openvino, onnxruntime; never torch)
    ldm3d_edge.benchmarks    measurements of all of the above
"""

from pathlib import Path

__version__ = "0.1.0"

# Files the product needs at run time (CLIP vocabulary, release configs), shipped inside the package.
ASSETS_DIR = Path(__file__).resolve().parent / "assets"
