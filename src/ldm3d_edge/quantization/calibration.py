"""Calibration data for INT8: the UNet's real inputs, recorded while the float pipeline runs the calibration
prompts through the runtime (no torch)."""

from __future__ import annotations

import math
from pathlib import Path

from tqdm.auto import tqdm

from ..runtime import constants as C
from ..runtime.errors import InvalidArgumentError

DEFAULT_PROMPTS_FILE = Path(__file__).with_name("calibration_prompts.txt")
DEFAULT_SAMPLES = 200        # UNet calls recorded (each one a CFG batch of 2)
DEFAULT_STEPS = 20           # denoising steps per calibration prompt


def model_prompts_file(root: str | Path) -> Path | None:
    """The folder's own calibration prompts, if it carries them. A model trained on one family of scenes is
    calibrated best on its own kind of caption: on the embedded model the general list (half of it everyday
    photographs) left INT8 auto at depth AbsRel 0.046, its scene captions at 0.027 (benchmarks/results/int8-depth)."""
    p = Path(root) / C.CALIBRATION_PROMPTS_FILE
    return p if p.is_file() else None


def read_prompts(path: str | Path | None = None) -> list[str]:
    """One prompt per line; blank lines and lines starting with # are skipped."""
    path = Path(path) if path else DEFAULT_PROMPTS_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidArgumentError(f"cannot read the calibration prompts {path}: {e}") from None
    prompts = [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]
    if not prompts:
        raise InvalidArgumentError(f"{path} holds no prompts (one per line)")
    return prompts


class _Recorder:
    """Stands in for the pipeline's UNet part: records each call's inputs under the UNet's input names, then runs
    the real UNet."""

    def __init__(self, unet, records: list, limit: int):
        self.unet, self.records, self.limit = unet, records, limit

    def __call__(self, sample, timestep, hidden, height, width, class_labels=None):
        # the exported (CFG) batch only: a speed preset's unguided steps run batch 1, which a static graph's
        # calibration cannot take; their timesteps are those of the guided steps before them
        if len(self.records) < self.limit and (not self.records or len(sample) == len(self.records[0][C.UNET_SAMPLE])):
            record = {C.UNET_SAMPLE: sample.copy(), C.UNET_TIMESTEP: timestep.copy(),
                      C.UNET_ENCODER_HIDDEN_STATES: hidden.copy()}
            if class_labels is not None:
                record[C.UNET_CLASS_LABELS] = class_labels.copy()
            self.records.append(record)
        return self.unet(sample, timestep, hidden, height, width, class_labels)

    def compiled(self, height, width):
        return self.unet.compiled(height, width)

    def runs_batch(self, batch, height, width):
        return self.unet.runs_batch(batch, height, width)


def collect_unet_inputs(pipe, prompts: list[str], samples: int = DEFAULT_SAMPLES, steps: int = DEFAULT_STEPS,
                        guidance_scale: float = 7.5, seed: int = 0, progress: bool = True,
                        call: dict | None = None) -> list[dict]:
    """Run as many prompts (cycling) as it takes to record `samples` UNet calls; returns their input dicts,
    keyed by the UNet's input names. `call`: further Pipeline.__call__ arguments (a speed preset's sampler, steps
    and cut-off), so the UNet is calibrated on the timesteps it will see."""
    call = dict(call or {})
    steps = int(call.pop("num_inference_steps", steps))
    if samples < 1 or steps < 1:
        raise InvalidArgumentError("calibration needs at least one sample and one step")
    records: list[dict] = []
    real = pipe.unet
    pipe.unet = _Recorder(real, records, samples)
    try:
        runs = math.ceil(samples / steps)
        bar = tqdm(total=samples, desc="calibration", unit="call", disable=not progress)
        k = 0
        while len(records) < samples and k < 4 * runs:   # unguided steps record nothing: a few more prompts
            pipe(prompts[k % len(prompts)], num_inference_steps=steps, guidance_scale=guidance_scale, seed=seed + k,
                 **call)
            bar.update(len(records) - bar.n)
            k += 1
        bar.close()
    finally:
        pipe.unet = real
    return records
