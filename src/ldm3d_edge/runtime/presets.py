"""Speed presets: less work per image, chosen from the measured quality cost (benchmarks/results/speed-levers).

`quality` is the release default (49 DDIM steps, guided). `balanced` and `fast` are the cheapest settings measured
(26 of them, 64 perspective and 64 panorama samples of the embedded model, benchmarks/results/speed-levers) that
keep issue 20's quality bounds against the release default on both kinds: adherence within 1 / 3 points and depth
AbsRel <= 0.03 / 0.05, cost counted in measured full-size INT8 UNet steps. balanced: 20 DDIM steps (AbsRel
0.024 / 0.006, adherence 100 / 84.4 % vs 100 / 82.8 %; DeepCache interval 3 at 49 steps ties it at 19.5 calls
but needs its graphs). fast: 16 DDIM steps (AbsRel 0.043 / 0.010, adherence 100 / 82.8 %). A guidance cut-off
saves less than its FLOPs at full size: the UNet compiled for batches 1-2 runs a guided step at 1.10 and an
unguided one at 0.58 of a static guided step (benchmarks/results/unet-batch-range), so 20 steps with cut-off 0.7
cost 19.4 steps' time, more than 16 plain ones. Every cheaper setting measured moved the embedded model's depth by
more than 0.05 or its adherence by more than 3 points. A preset with feature caching runs without it on a folder
lacking the DeepCache graphs, and says so. Precision is the folder's own: an INT8 folder runs its INT8 UNet under
any preset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import DEFAULT_STEPS, guided_steps
from .errors import InvalidArgumentError
from .manifest import Manifest


@dataclass(frozen=True)
class SpeedPreset:
    name: str
    scheduler: str | None          # None: the folder's own (DDIM for the releases)
    steps: int
    guidance_cutoff: float | None
    cache_interval: int            # 1: no feature caching

    def unet_calls(self) -> float:
        """Full-size UNet calls per image: a guided step 1, an unguided one (batch 1) 0.5 (caching not counted)."""
        guided = guided_steps(self.steps, self.guidance_cutoff)
        return guided + 0.5 * (self.steps - guided)

    def describe(self) -> str:
        parts = [self.scheduler or "the model's scheduler", f"{self.steps} steps"]
        if self.guidance_cutoff is not None:
            parts.append(f"guidance cut-off {self.guidance_cutoff:g}")
        if self.cache_interval > 1:
            parts.append(f"DeepCache interval {self.cache_interval}")
        return ", ".join(parts) + f" (~{self.unet_calls():g} UNet calls of the release default's {DEFAULT_STEPS})"


PRESETS = {
    "quality": SpeedPreset("quality", None, DEFAULT_STEPS, None, 1),
    "balanced": SpeedPreset("balanced", "ddim", 20, None, 1),
    "fast": SpeedPreset("fast", "ddim", 16, None, 1),
}
SPEEDS = tuple(PRESETS)


def speed_settings(speed: str, manifest: Manifest) -> tuple[dict[str, Any], list[str]]:
    """Pipeline.__call__ keyword arguments for preset `speed` on this folder, and notes on what it could not use.
    The same preset and folder give the same settings on every call."""
    if speed not in PRESETS:
        raise InvalidArgumentError(f"unknown speed preset {speed!r}; choose one of {', '.join(SPEEDS)}")
    p = PRESETS[speed]
    notes = []
    interval = p.cache_interval
    if interval > 1 and manifest.deepcache_branch is None:
        notes.append(f"{manifest.root.name} has no DeepCache graphs, so '{speed}' runs without feature caching "
                     "(re-export with --deepcache-branch 0 for it)")
        interval = 1
    return ({"num_inference_steps": p.steps, "scheduler": p.scheduler, "guidance_cutoff": p.guidance_cutoff,
             "cache_interval": interval}, notes)
