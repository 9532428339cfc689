"""The lean runtime: artifact folder -> RGB + depth. numpy, openvino / onnxruntime, tokenizers, pillow; no torch."""

from .config import GenerationConfig
from .errors import DeviceError, InvalidArgumentError, Ldm3dError, ModelFolderError, OutputError
from .manifest import Manifest, read_manifest
from .pipeline import GenerationCancelled, Pipeline
from .result import GenerationMetrics, RGBDResult, load_depth_png
from .schedulers import create_scheduler, scheduler_names
from .upscale import UpscalePipeline

__all__ = ["Pipeline", "UpscalePipeline", "GenerationConfig", "RGBDResult", "GenerationMetrics", "Manifest",
           "read_manifest",
           "create_scheduler", "scheduler_names", "load_depth_png", "Ldm3dError", "ModelFolderError",
           "InvalidArgumentError", "DeviceError", "OutputError", "GenerationCancelled"]
