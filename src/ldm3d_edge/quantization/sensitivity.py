"""Which UNet layers cost the depth when quantized: quantize one group of layers at a time and measure the
whole pipeline's depth and RGB against the float model.

    ldm3d quantize FLOAT OUT --sensitivity        (writes OUT/sensitivity.json and OUT/sensitivity.md)

The UNet is quantized once, fully, by NNCF (the `full` mode's calibration); each candidate keeps that model's
quantizers (FakeQuantize nodes) on one group's layers only and bypasses the rest, so every group is judged with
the scales it really gets. A group is a UNet block (`down_blocks.1/attentions.0`, `mid_block/resnets.0`,
`conv_in`, ...) or, with by="type", a kind of layer (self-attention, feed-forward, resnet convolutions, ...).
Each candidate graph runs through the runtime's own pipeline (swapped in memory, nothing written) over a fixed
set of prompts x seeds with the same initial latents as the float reference.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..metrics import abs_rel, psnr
from ..runtime.errors import InvalidArgumentError
from .quality import MIN_DEPTH

GROUPINGS = ("block", "type")
COMPUTE_OPS = ("Convolution", "GroupConvolution", "MatMul", "ScaledDotProductAttention")
# ops a quantizer's output may pass through before the layer it feeds (weight layouts, precision casts)
PASS_THROUGH = ("Reshape", "Transpose", "Convert", "Unsqueeze", "Squeeze")
TOP_LEVEL = ("down_blocks", "up_blocks", "mid_block")
LAYER_TYPES = (("attn1", "self-attention"), ("attn2", "cross-attention"), ("ff", "feed-forward"),
               ("proj_in", "attention in/out projections"), ("proj_out", "attention in/out projections"),
               ("time_emb_proj", "resnet time projections"), ("conv_shortcut", "resnet shortcut convolutions"),
               ("downsamplers", "down/up-sampling convolutions"), ("upsamplers", "down/up-sampling convolutions"),
               ("resnets", "resnet convolutions"), ("time_embedding", "time embedding"), ("conv_in", "conv_in"),
               ("conv_out", "conv_out"))


def module_path(name: str) -> list[str]:
    """The torch module path an exported op's name carries: '/m/down_blocks.1/attentions.0/.../to_q/MatMul' ->
    ['down_blocks.1', 'attentions.0', ..., 'to_q'] (the export wraps the UNet in a module called m)."""
    parts = [p for p in name.split("/") if p]
    if parts and parts[0] == "m":
        parts = parts[1:]
    return parts[:-1]


def group_of(name: str, by: str = "block") -> str:
    """The group an op belongs to: its UNet block, or its kind of layer; 'other' where the name says neither."""
    mods = module_path(name)
    if not mods:
        return "other"
    if by == "block":
        top = mods[0].split(".")[0]
        return "/".join(mods[:2]) if top in TOP_LEVEL and len(mods) > 1 else mods[0]
    for key, label in LAYER_TYPES:
        if any(m == key or m.startswith(key + ".") for m in mods):
            return label
    return "other"


def _consumer(fq: Any, hops: int = 4) -> Any | None:
    """The compute layer a FakeQuantize node feeds (through layout and cast ops), or None."""
    node = fq
    for _ in range(hops):
        targets = [t.get_node() for t in node.output(0).get_target_inputs()]
        compute = [t for t in targets if t.get_type_name() in COMPUTE_OPS]
        if compute:
            return compute[0]
        nxt = [t for t in targets if t.get_type_name() in PASS_THROUGH]
        if len(nxt) != 1:
            return None
        node = nxt[0]
    return None


def quantizers(model: Any, by: str = "block") -> dict[str, list[Any]]:
    """group -> the FakeQuantize nodes on that group's layers (activations and weights). A quantizer whose layer
    is not found (an input to a fused op) is grouped by its own name, which carries the producer's module path."""
    if by not in GROUPINGS:
        raise InvalidArgumentError(f"unknown grouping {by!r}; choose one of {', '.join(GROUPINGS)}")
    out: dict[str, list[Any]] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() == "FakeQuantize":
            layer = _consumer(op)
            out.setdefault(group_of((layer or op).get_friendly_name(), by), []).append(op)
    return out


def layers(model: Any, groups: Iterable[str], by: str = "block") -> list[str]:
    """The names of the compute layers in `groups`: what an NNCF ignored scope lists to keep them float."""
    wanted = set(groups)
    return sorted(op.get_friendly_name() for op in model.get_ops()
                  if op.get_type_name() in COMPUTE_OPS and group_of(op.get_friendly_name(), by) in wanted)


def keep_only(quantized: Any, kept: Iterable[str], by: str = "block") -> Any:
    """A copy of a quantized model whose quantizers stay on the groups in `kept` only; the others are bypassed
    (their layers compute in float on float inputs)."""
    model = quantized.clone()
    kept = set(kept)
    for group, fqs in quantizers(model, by).items():
        if group in kept:
            continue
        for fq in fqs:
            source = fq.input_value(0)
            for target in list(fq.output(0).get_target_inputs()):
                target.replace_source_output(source)
    model.validate_nodes_and_infer_types()
    return model


@dataclass
class DepthCheck:
    """The float pipeline's outputs for fixed prompts x seeds, computed once; `score` runs another UNet graph
    through the same pipeline (same initial latents) and measures what it moved. Needs no labels: the reference
    is the user's own float model."""

    pipe: Any
    prompts: list[str]
    seeds: int = 1
    steps: int = 20
    guidance: float = 5.0
    call: dict = field(default_factory=dict)       # further Pipeline.__call__ arguments (a speed preset's)

    def __post_init__(self) -> None:
        if not self.prompts or self.seeds < 1:
            raise InvalidArgumentError("the depth check needs at least one prompt and one seed")
        self.jobs = [(p, s) for p in self.prompts for s in range(self.seeds)]
        self.float_unet = self.pipe.unet.compiled(self.pipe.manifest.height, self.pipe.manifest.width)
        self.reference = [self._run(p, s) for p, s in self.jobs]

    def _run(self, prompt: str, seed: int):
        return self.pipe(prompt, num_inference_steps=self.steps, guidance_scale=self.guidance, seed=seed,
                         **self.call)

    def score(self, compiled: Any, jobs: Iterable[int] | None = None) -> dict:
        """Mean depth AbsRel and RGB PSNR of `compiled` (a CompiledModel for the UNet) against the float outputs,
        and each sample's AbsRel; `jobs` picks samples by index (default all)."""
        m = self.pipe.manifest
        idx = list(range(len(self.jobs))) if jobs is None else list(jobs)
        self.pipe.unet.use(compiled, m.height, m.width)
        try:
            outs = [self._run(*self.jobs[i]) for i in idx]
        finally:
            self.pipe.unet.use(self.float_unet, m.height, m.width)
        absrel = [abs_rel(o.depth, self.reference[i].depth, MIN_DEPTH) for o, i in zip(outs, idx)]
        return {"depth_absrel": float(np.mean(absrel)),
                "rgb_psnr_db": float(np.mean([psnr(o.rgb_float, self.reference[i].rgb_float)
                                              for o, i in zip(outs, idx)])),
                "per_sample": [float(a) for a in absrel]}


def check_for(pipe: Any, prompts: list[str], seeds: int, steps: int, call: dict) -> DepthCheck:
    """The depth check for a speed preset's call: its sampler, at `steps`. Its guidance cut-off is left out: the
    candidate is swapped in at the CFG batch, and the cut-off's batch-1 steps would run the float graph."""
    judged = {k: v for k, v in call.items() if k not in ("guidance_cutoff", "num_inference_steps")}
    return DepthCheck(pipe, prompts, seeds, steps, call=judged)


def rank(quantized: Any, check: DepthCheck, by: str = "block", progress: bool = True) -> dict:
    """Quantize one group at a time (the others float) and measure each; groups ranked by depth AbsRel, worst
    first. Also the all-quantized model's errors, for scale."""
    from ..runtime.backends.openvino_backend import compile_in_memory

    t0 = time.perf_counter()
    groups = quantizers(quantized, by)
    rows = []
    for group in tqdm(sorted(groups), desc="sensitivity", unit="group", disable=not progress):
        r = check.score(compile_in_memory(keep_only(quantized, [group], by)))
        rows.append({"group": group, "quantizers": len(groups[group]),
                     "layers": len(layers(quantized, [group], by)), **{k: r[k] for k in r if k != "per_sample"}})
    rows.sort(key=lambda r: -r["depth_absrel"])
    everything = check.score(compile_in_memory(quantized))
    return {"by": by, "groups": rows, "all_quantized": {k: everything[k] for k in everything if k != "per_sample"},
            "samples": len(check.jobs), "steps": check.steps, "guidance": check.guidance,
            "seconds": time.perf_counter() - t0}


def markdown(report: dict, title: str = "UNet quantization sensitivity") -> str:
    lines = [f"# {title}", "",
             f"Each {report['by']} group quantized alone (INT8 weights and activations, the `full` mode's scales), "
             f"every other UNet layer float; {report['samples']} samples, {report['steps']} steps, guidance "
             f"{report['guidance']}, vs the float model on the same backend and latents. Worst first.", "",
             "| rank | group | layers | quantizers | depth AbsRel | RGB PSNR dB |", "|---|---|---|---|---|---|"]
    for k, r in enumerate(report["groups"], 1):
        lines.append(f"| {k} | {r['group']} | {r['layers']} | {r['quantizers']} | {r['depth_absrel']:.4f} | "
                     f"{r['rgb_psnr_db']:.2f} |")
    a = report["all_quantized"]
    lines += ["", f"Every group quantized (the `full` UNet): depth AbsRel {a['depth_absrel']:.4f}, "
                  f"RGB PSNR {a['rgb_psnr_db']:.2f} dB."]
    return "\n".join(lines) + "\n"


def report_folder(src, out, prompts: list[str], samples: int, steps: int, call: dict, check_prompts: int,
                  check_seeds: int, check_steps: int, by: str = "block", progress: bool = True) -> dict:
    """`ldm3d quantize FLOAT OUT --sensitivity`: calibrate and quantize the UNet fully once, rank its groups,
    write OUT/sensitivity.json and OUT/sensitivity.md; returns the report."""
    import json
    from pathlib import Path

    import openvino as ov

    from ..runtime import Pipeline
    from ..runtime.result import atomic_write
    from . import calibration as cal
    from . import openvino_int8 as Q

    pipe = Pipeline.load(src, device="openvino:CPU", precision="f32")
    records = cal.collect_unet_inputs(pipe, prompts, samples, steps, progress=progress, call=call)
    check = check_for(pipe, prompts[:check_prompts], check_seeds, check_steps, call)
    quantized = Q.unet_full(ov.Core().read_model(str(pipe.unet.path)), records, len(records))
    report = {"source": str(Path(src).resolve()), "calibration": {"unet_calls": len(records), "call": call},
              **rank(quantized, check, by, progress=progress)}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "sensitivity.json", lambda p: Path(p).write_text(json.dumps(report, indent=1)))
    atomic_write(out / "sensitivity.md", lambda p: Path(p).write_text(markdown(report)))
    return report
