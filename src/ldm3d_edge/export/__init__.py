"""diffusers LDM3D checkpoint -> static-shape ONNX / OpenVINO artifacts plus a manifest (needs the [export] extra)."""

from .exporter import FORMAT_CHOICES, export_pipeline

__all__ = ["export_pipeline", "FORMAT_CHOICES"]
