"""`ldm3d quantize --mode auto --max-depth-error E`: the fastest INT8 UNet whose depth stays within E of the
float model's (mean depth AbsRel over a validation set of prompts, same latents), found without labels.

Candidates, fastest first; each is judged by `sensitivity.DepthCheck` through the whole pipeline:
1. `full`: every UNet layer INT8 (NNCF, the `full` mode).
2. `mixed`: the sensitivity report's worst groups kept float, as few as it takes. The search bypasses the full
   model's quantizers on the top k groups (instant); the first k that meets the bound is then quantized again by
   NNCF with those groups' layers as its ignored scope, and that model is judged and kept.
3. `accuracy-control` (opt-in: it ranks every quantizer by validation runs, over 25 minutes for the embedded
   model's UNet on 2 cores where 2 takes minutes): NNCF's quantize_with_accuracy_control with the same check as
   its validation function (metric 1 - depth AbsRel, so the allowed absolute drop is E).
Of 2 and 3, the one with more of the UNet's FLOPs in INT8 (read from the compiled model) wins. Failing all,
`hybrid`, then INT8 weights only; a bound that not even those meet is refused.

A candidate passes when the check reads at most `check_margin` x E (default quantize.CHECK_MARGIN). The check is a
sample (prompts x seeds from the calibration list), and the search keeps the first candidate that passes it, so
the error of the chosen one on other prompts runs above what the check read: on the embedded model 1.5-2x
(benchmarks/results/int8-depth-amx: a check reading 0.027 held out 0.043, 0.0185 held out 0.029).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..runtime.errors import InvalidArgumentError
from . import openvino_int8 as Q
from . import sensitivity as S
from .quantize import CHECK_MARGIN, check_bounds


@dataclass
class Candidate:
    name: str
    model: Any = field(repr=False)
    float_groups: list[str] = field(default_factory=list)
    depth_absrel: float = float("nan")
    rgb_psnr_db: float = float("nan")
    int8_flop_share: float = 0.0

    def row(self) -> dict:
        return {"name": self.name, "float_groups": self.float_groups, "depth_absrel": self.depth_absrel,
                "rgb_psnr_db": self.rgb_psnr_db, "int8_flop_share": self.int8_flop_share}


def judge(name: str, model: Any, check: S.DepthCheck, float_groups: list[str] | None = None) -> Candidate:
    from ..runtime.backends.openvino_backend import compile_in_memory

    compiled = compile_in_memory(model)
    r = check.score(compiled)
    return Candidate(name, model, list(float_groups or []), r["depth_absrel"], r["rgb_psnr_db"],
                     Q.kernel_precisions(compiled.native)["int8_flop_share"])


def accuracy_control(model: Any, records: list[dict], check: S.DepthCheck, max_depth_error: float,
                     ranking_samples: int = 4) -> Any:
    """NNCF's accuracy-controlled quantization, validated on the depth check (no labels needed)."""
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    from ..runtime.backends.openvino_backend import _OVModel

    nncf = Q._nncf()

    def validate(compiled, items):
        # 1 - AbsRel: NNCF divides by the float model's metric (which must not be 0) and wants higher = better
        r = check.score(_OVModel(compiled), list(items))
        return 1.0 - r["depth_absrel"], [1.0 - a for a in r["per_sample"]]

    return nncf.quantize_with_accuracy_control(
        model, nncf.Dataset(records), nncf.Dataset(list(range(len(check.jobs)))), validate,
        max_drop=max_depth_error, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(records),
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
            ranking_subset_size=min(ranking_samples, len(check.jobs))))


def search(model: Any, records: list[dict], check: S.DepthCheck, max_depth_error: float, by: str = "block",
           use_accuracy_control: bool = False, progress: bool = True, log=print,
           check_margin: float = CHECK_MARGIN) -> tuple[Candidate, dict]:
    """The chosen candidate and a record of the search (every candidate tried, the sensitivity ranking)."""
    check_bounds(max_depth_error, check_margin)
    bound = max_depth_error * check_margin      # what the check must read
    t0 = time.perf_counter()
    tried: list[Candidate] = []
    record: dict = {"max_depth_error": max_depth_error, "check_margin": check_margin, "check_bound": bound,
                    "grouping": by, "tried": [],
                    "validation": {"prompts": len(check.prompts), "seeds": check.seeds, "steps": check.steps,
                                   "guidance": check.guidance, "call": check.call}}

    def attempt(c: Candidate) -> Candidate:
        tried.append(c)
        log(f"auto: {c.name}: depth AbsRel {c.depth_absrel:.4f} (check bound {bound:.4g}), "
            f"{100 * c.int8_flop_share:.1f} % of UNet FLOPs in INT8")
        return c

    def done(c: Candidate) -> tuple[Candidate, dict]:
        record.update(chosen=c.name, float_groups=c.float_groups, ignored_scope=S.layers(model, c.float_groups, by),
                      depth_absrel=c.depth_absrel, rgb_psnr_db=c.rgb_psnr_db, int8_flop_share=c.int8_flop_share,
                      tried=[t.row() for t in tried], seconds=round(time.perf_counter() - t0, 1))
        return c, record

    full = attempt(judge("full", Q.unet_full(model, records, len(records)), check))
    if full.depth_absrel <= bound:
        return done(full)

    ranking = S.rank(full.model, check, by, progress=progress)
    record["sensitivity"] = ranking
    order = [r["group"] for r in ranking["groups"]]
    met: list[Candidate] = []
    for k in range(1, len(order) + 1):
        rest = order[k:]
        trial = S.keep_only(full.model, rest, by)
        quick = judge(f"full with the top {k} groups' quantizers bypassed", trial, check, order[:k])
        record.setdefault("probes", []).append(quick.row())
        if quick.depth_absrel > bound:
            continue
        mixed = Q.unet_full(model, records, len(records), order[:k], by)
        c = attempt(judge(f"mixed: {k} group{'s' if k > 1 else ''} float", mixed, check, order[:k]))
        if c.depth_absrel <= bound:
            met.append(c)
            break
    if use_accuracy_control:
        c = attempt(judge("accuracy-control", accuracy_control(model, records, check, bound), check))
        if c.depth_absrel <= bound:
            met.append(c)
    if met:
        return done(max(met, key=lambda c: c.int8_flop_share))
    # on copies: NNCF's weight compression may change the model it is given, which the next candidate reads
    for name, build in (("hybrid", lambda: Q.unet_hybrid(model.clone(), records, len(records))),
                        ("weights", lambda: Q.weights_only(model.clone()))):
        c = attempt(judge(name, build(), check))
        if c.depth_absrel <= bound:
            return done(c)
    best = min(tried, key=lambda c: c.depth_absrel)
    raise InvalidArgumentError(
        f"no INT8 configuration keeps the mean depth AbsRel within {max_depth_error:g} (its check must read "
        f"<= {bound:.4g}, --check-margin {check_margin:.3g}): the closest, {best.name!r}, reached "
        f"{best.depth_absrel:.4f} (of {len(tried)} tried); allow a larger --max-depth-error or keep the float folder")
