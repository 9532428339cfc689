"""The kiosk viewer: static files (three.js page, vendored three.js) served by ldm3d serve / ldm3d view."""

from importlib.resources import files
from pathlib import Path


def static_dir() -> Path:
    """The folder of the viewer's static files, found as package data (the package is installed as files, never
    zipped, so the resource is a real folder that StaticFiles can serve)."""
    return Path(str(files(__name__) / "static"))
