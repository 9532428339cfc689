"""Numpy schedulers that match diffusers' of the same config step by step."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgumentError
from .base import Scheduler, SchedulerOutput
from .ddim import DDIMScheduler
from .dpmsolver import DPMSolverMultistepScheduler
from .euler import EulerDiscreteScheduler
from .lcm import LCMScheduler
from .pndm import PNDMScheduler
from .unipc import UniPCMultistepScheduler

SCHEDULERS: dict[str, type[Scheduler]] = {
    "ddim": DDIMScheduler,
    "pndm": PNDMScheduler,
    "euler": EulerDiscreteScheduler,
    "dpm++": DPMSolverMultistepScheduler,
    "unipc": UniPCMultistepScheduler,
    "lcm": LCMScheduler,
}
ALIASES = {"dpmsolver++": "dpm++", "dpm-solver++": "dpm++", "dpmpp": "dpm++", "euler-discrete": "euler",
           "uni-pc": "unipc", "unipc-multistep": "unipc"}
# diffusers class names as written in scheduler_config.json
CLASS_NAMES = {"DDIMScheduler": "ddim", "PNDMScheduler": "pndm", "EulerDiscreteScheduler": "euler",
               "DPMSolverMultistepScheduler": "dpm++", "UniPCMultistepScheduler": "unipc", "LCMScheduler": "lcm"}


def scheduler_names() -> list[str]:
    return list(SCHEDULERS)


def create_scheduler(config: dict[str, Any], name: str | None = None) -> Scheduler:
    """Scheduler `name` (or the config's own `_class_name` when None) built from a scheduler config dict."""
    if name is None:
        cls_name = config.get("_class_name", "DDIMScheduler")
        if cls_name not in CLASS_NAMES:
            raise InvalidArgumentError(f"scheduler_config.json names {cls_name!r}; supported: "
                                       f"{', '.join(CLASS_NAMES)} (or pick one with scheduler=...)")
        name = CLASS_NAMES[cls_name]
    key = ALIASES.get(name.lower(), name.lower())
    if key not in SCHEDULERS:
        raise InvalidArgumentError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    return SCHEDULERS[key](config)


__all__ = ["Scheduler", "SchedulerOutput", "create_scheduler", "scheduler_names", "SCHEDULERS",
           "DDIMScheduler", "PNDMScheduler", "EulerDiscreteScheduler", "DPMSolverMultistepScheduler",
           "UniPCMultistepScheduler", "LCMScheduler"]
