"""The one guard for optional dependencies: import what a feature needs, or say in one line which extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .runtime.errors import Ldm3dError


def need_extra(what: str, extra: str, *modules: str) -> list[ModuleType]:
    """Import `modules` (ours or the extra's own packages) and return them; a missing one raises Ldm3dError
    "<what> needs the <extra> extra (<module> is missing): pip install 'ldm3d-edge[<extra>]'".
    what: who needs it, e.g. "'ldm3d export'" or "--ray"; extra: "export", or "export,quantize" for two."""
    try:
        return [importlib.import_module(m) for m in modules]
    except ImportError as e:
        verb = "need" if " and " in what else "needs"
        names = " and ".join(extra.split(","))
        plural = "extras" if "," in extra else "extra"
        raise Ldm3dError(f"{what} {verb} the {names} {plural} ({e.name} is missing): "
                         f"pip install 'ldm3d-edge[{extra}]'") from None
