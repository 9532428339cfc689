"""The embedded default model(s): diffusers folders trained in this repo (see each folder's README.md)."""

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = "ldm3d-edge-tiny"
