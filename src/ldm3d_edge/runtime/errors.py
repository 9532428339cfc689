"""Errors the runtime raises on bad input. The CLI turns each into one line and exit code 2."""


class Ldm3dError(Exception):
    """Base of every error this package raises on purpose."""


class ModelFolderError(Ldm3dError):
    """The artifact (or source checkpoint) folder is missing, incomplete or corrupt."""


class InvalidArgumentError(Ldm3dError, ValueError):
    """A generation or export argument is out of range or unknown."""


class DeviceError(Ldm3dError):
    """The requested device or backend is not available."""


class OutputError(Ldm3dError):
    """The model produced unusable output (NaN/inf), so nothing was saved."""
