"""Generating one job's files: the Runner protocol the JobManager's workers drive, the local model replica
(Models) and generate_job, which writes a request's outputs into a staging folder and publishes them whole.
Used by the worker threads (jobs.py), the worker processes (workers.py), Ray Serve replicas (ray_serve.py) and
`ldm3d batch`."""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from ..generate import generate_files
from ..runtime import Pipeline
from ..runtime import constants as C
from ..runtime.result import slug
from .retention import STAGING_PREFIX, publish
from .schema import GenerateRequest

# what each requested output kind writes, relative to the job's prefix
OUTPUT_FILES = {"rgb": C.RGB_SUFFIX, "depth": C.DEPTH_SUFFIX, "json": C.SIDECAR_SUFFIX,
                "depth_f32": C.DEPTH_F32_SUFFIX, "glb": ".glb", "mp4": ".mp4", "explore_glb": "_explore.glb",
                "explore_mp4": "_explore.mp4", "explore_json": "_explore.json"}
# the "explore" output kind, bounded: a short walk at few steps, so a kiosk job stays within ~5x a generation
EXPLORE_KEYFRAMES, EXPLORE_MAX_STEPS, EXPLORE_FRAMES = 4, 20, 24


class Runner:
    """Runs one job to its files: run(job_id, request, results_dir, on_step, cancelled) -> ({kind: file name},
    steps). on_step(i) is called after step i and returns False to cancel (raising GenerationCancelled);
    cancelled() says whether the job was cancelled (for runners that cannot call on_step)."""

    def run(self, job_id: str, request: GenerateRequest, results_dir: Path, on_step: Callable[[int], bool],
            cancelled: Callable[[], bool]) -> tuple[dict[str, str], int]:
        raise NotImplementedError


def generate_job(models: Models, job_id: str, request: GenerateRequest, results_dir: Path,
                 on_step: Callable[[int], bool] = lambda i: True,
                 cancelled: Callable[[], bool] = lambda: False) -> tuple[dict[str, str], int]:
    """Generate one request with these models and write its files as <job_id><suffix> (OUTPUT_FILES): into a
    staging folder first, then moved into `results_dir` one by one, the sidecar last, so a result in the folder
    with its sidecar is whole; a crash leaves the staging folder or files without a sidecar, which the next
    start removes (retention.sweep_partial)."""
    results_dir = Path(results_dir)
    staging = results_dir / f"{STAGING_PREFIX}{job_id}"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        steps = _generate_into(models, job_id, request, staging, on_step, cancelled)
        files = {kind: job_id + suffix for kind, suffix in OUTPUT_FILES.items()
                 if (staging / (job_id + suffix)).is_file()}
        publish(staging, results_dir, job_id + C.SIDECAR_SUFFIX)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return files, steps


def _generate_into(models: Models, job_id: str, request: GenerateRequest, folder: Path,
                   on_step: Callable[[int], bool], cancelled: Callable[[], bool]) -> int:
    """Write the request's files into `folder` (the job's staging folder); the UNet steps run."""
    r = request
    pipe = models.pick(r.pano)
    done = generate_files(pipe, folder, r.prompt, name=job_id, pano=r.pano,
                          negative_prompt=r.negative_prompt, num_inference_steps=r.steps, guidance_scale=r.guidance,
                          height=r.height, width=r.width, seed=r.seed, callback=lambda i, _t, _l: on_step(i),
                          extra={"job": job_id}, depth_f32=True,
                          outputs_3d={"mesh_formats": ("glb",) if "glb" in r.outputs else (),
                                      "videos": (".mp4",) if "mp4" in r.outputs else ()})
    if "explore" in r.outputs:
        from ..scene3d.explore import explore, write_walk

        walk, images = explore(pipe, done.rgbd, done.result.prompt, keyframes=EXPLORE_KEYFRAMES,
                               frames=EXPLORE_FRAMES, seed=done.result.seed or 0, cancel=cancelled,
                               num_inference_steps=min(r.steps, EXPLORE_MAX_STEPS), guidance_scale=r.guidance)
        write_walk(walk, images, folder / (job_id + "_explore"), info={"job": job_id})
    return len(done.result.metrics.unet_step_s)


def batch_result(models: Models, index: int, prompt: str, settings: dict, out: Path) -> dict:
    """One prompt of a batch: its files as <index>-<slug> in `out` and the row batch.json records for it.
    settings: the GenerateRequest fields other than the prompt."""
    t0 = time.perf_counter()
    name = f"{index:04d}-{slug(prompt)}"
    files, steps = generate_job(models, name, GenerateRequest(prompt=prompt, **settings), out)
    return {"index": index, "prompt": prompt, "files": files, "steps": steps, "pid": os.getpid(),
            "seconds": round(time.perf_counter() - t0, 3)}


class Models(Runner):
    """One worker's pipelines: the perspective model, and the panorama one when it is another folder (the
    embedded model's ONNX exports are two; one OpenVINO folder serves both, panoramas at 2:1 with circular
    padding)."""

    def __init__(self, perspective: Path, panorama: Path | None, device: str, verify: bool = True):
        self.perspective = Pipeline.load(perspective, device=device, verify=verify)
        other = panorama is not None and Path(panorama).resolve() != Path(perspective).resolve()
        self.panorama = Pipeline.load(panorama, device=device, verify=verify) if other else self.perspective

    def pick(self, pano: bool) -> Pipeline:
        return self.panorama if pano else self.perspective

    def run(self, job_id, request, results_dir, on_step, cancelled):
        return generate_job(self, job_id, request, results_dir, on_step, cancelled)


@functools.cache
def _libc_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim   # glibc
    except (OSError, AttributeError):
        return None


def trim_heap() -> None:
    """Give the heap's free pages back to the system after each job (glibc's malloc_trim; elsewhere nothing).

    Why: a job's images pass through whichever malloc arena the worker thread holds then, and under concurrent
    HTTP requests glibc moves the worker to another arena, which grows to a job's peak and keeps those pages: the
    server's RSS rose 25-50 MB once under load and then stayed flat (a plateau, not a leak), but a kiosk's memory
    should read as what it holds. Costs a few milliseconds per job."""
    trim = _libc_malloc_trim()
    if trim is not None:
        trim(0)
