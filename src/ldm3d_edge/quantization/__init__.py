"""INT8 variants of an artifact folder (NNCF for OpenVINO, ORT QDQ for ONNX) and their measured quality cost.

artifact folder -> quantize_artifacts -> INT8 artifact folder (same layout) -> Pipeline.load; quality.compare
puts any two folders (or one folder at two inference precisions) side by side.
"""

from .quantize import MODES, quantize_artifacts, sensitivity_report

__all__ = ["MODES", "quantize_artifacts", "sensitivity_report"]
