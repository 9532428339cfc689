"""Scale-out on Ray: the same jobs on Ray Serve replicas, and a batch fan-out of a prompts file over a cluster.

`ldm3d serve --ray`: the HTTP service (queue, 429s, job records, results, viewer) stays one process; each of its
worker threads hands a job to the Ray Serve deployment `Ldm3dReplica`, whose replicas each hold one copy of the
models (max_ongoing_requests=1, so a replica generates one job at a time) and autoscale on the number of ongoing
requests per replica (target 1, between --min-replicas and --workers). Serve's own HTTP proxy is disabled: the
deployment is reached through its handle. Replicas report each step to a small progress-board actor, which the
HTTP process polls and through which it passes cancels. A replica that dies mid-job fails that job with the
reason; Serve starts a new replica and the service keeps answering.

`ldm3d batch PROMPTS --ray`: one Ray actor per replica loads the models; prompts are mapped over them with
ray.util.ActorPool and each result is written to --out as <index>-<slug>.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..extras import need_extra
from ..runtime.errors import Ldm3dError
from ..runtime.pipeline import GenerationCancelled
from .generation import Models, Runner, batch_result, generate_job
from .schema import GenerateRequest

APP_NAME = "ldm3d"
POLL_S = 0.25


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to a cluster (address "auto" or ray://...), or start a local one on this machine."""
    ray, _ = need_extra("--ray", "ray", "ray", "ray.serve")

    if not ray.is_initialized():
        ray.init(address=address, num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True, configure_logging=False)


def progress_board():
    """A small Ray actor the replicas report steps to and read cancellations from (the HTTP process polls it)."""
    import ray

    @ray.remote(num_cpus=0)
    class ProgressBoard:
        def __init__(self):
            self.steps: dict[str, int] = {}
            self.cancelled: set[str] = set()

        def report(self, job: str, step: int) -> None:
            self.steps[job] = step

        def step(self, job: str) -> int:
            return self.steps.get(job, 0)

        def cancel(self, job: str) -> None:
            self.cancelled.add(job)

        def is_cancelled(self, job: str) -> bool:
            return job in self.cancelled

        def forget(self, job: str) -> None:
            self.steps.pop(job, None)
            self.cancelled.discard(job)

    return ProgressBoard.remote()   # type: ignore[attr-defined]  # @ray.remote adds .remote


def replica_class():
    """The Serve deployment (defined on first use, so importing this module needs no Ray)."""
    import ray
    from ray import serve

    @serve.deployment(name="Ldm3dReplica", max_ongoing_requests=1, ray_actor_options={"num_cpus": 1},
                      health_check_period_s=2, health_check_timeout_s=10)
    class Ldm3dReplica:
        def __init__(self, perspective: str, panorama: str | None, device: str, board=None, verify: bool = True):
            self.models = Models(Path(perspective), Path(panorama) if panorama else None, device, verify)
            self.board = board

        def generate(self, job_id: str, request: dict, results_dir: str) -> dict:
            board = self.board

            def on_step(i: int) -> bool:   # report the step; a cancel asked for on the board stops the run
                if board is None:
                    return True
                board.report.remote(job_id, i + 1)
                return not ray.get(board.is_cancelled.remote(job_id))

            files, steps = generate_job(self.models, job_id, GenerateRequest(**request), Path(results_dir), on_step)
            return {"files": files, "steps": steps, "pid": os.getpid()}

        def pid(self) -> int:
            return os.getpid()

    return Ldm3dReplica


def deploy(perspective: Path, panorama: Path | None, device: str = "auto", min_replicas: int = 1,
           max_replicas: int = 2, verify: bool = True):
    """Deploy the replicas (proxy off); returns (deployment handle, progress board)."""
    from ray import serve

    serve.start(proxy_location="Disabled")
    board = progress_board()
    app = replica_class().options(autoscaling_config={
        "min_replicas": min_replicas, "max_replicas": max_replicas, "target_ongoing_requests": 1,
        "upscale_delay_s": 2, "downscale_delay_s": 60}).bind(str(perspective), panorama and str(panorama), device,
                                                           board, verify)
    return serve.run(app, name=APP_NAME, route_prefix=None), board


class RayRunner(Runner):
    """A JobManager worker's runner: the job runs on a replica, its steps come back through the progress board,
    a cancel goes to the replica through it (the run stops at its next step), a dead replica fails the job."""

    def __init__(self, handle, board=None):
        self.handle, self.board = handle, board

    def run(self, job_id, request: GenerateRequest, results_dir: Path, on_step, cancelled):
        import ray

        response = self.handle.generate.remote(job_id, request.model_dump(), str(results_dir))
        seen, asked = 0, False
        try:
            while True:
                try:
                    out = response.result(timeout_s=POLL_S)
                    break
                except TimeoutError:
                    if self.board is not None:
                        step = ray.get(self.board.step.remote(job_id))
                        if step > seen:
                            seen = step
                            on_step(step - 1)
                    if cancelled() and not asked:
                        asked = True
                        if self.board is not None:
                            self.board.cancel.remote(job_id)
                        else:
                            response.cancel()
                except Exception as e:    # the replica raised (a cancel arrives as GenerationCancelled) or died
                    if cancelled():
                        raise GenerationCancelled("cancelled while running on a Ray replica") from None
                    raise Ldm3dError(f"the Ray replica failed: {type(e).__name__}: "
                                     f"{str(e).splitlines()[0][:300]}") from None
        finally:
            if self.board is not None:
                self.board.forget.remote(job_id)
        return out["files"], out["steps"]


def shutdown() -> None:
    import ray
    from ray import serve

    if ray.is_initialized():
        serve.shutdown()
        ray.shutdown()


def batch(prompts: list[str], out: Path, perspective: Path, panorama: Path | None, replicas: int,
          settings: dict, device: str = "auto", verify: bool = True) -> list[dict]:
    """Fan prompts out over `replicas` Ray actors (each loads the models once); results land in `out`
    (jobs.batch_result; settings: the GenerateRequest fields other than the prompt)."""
    import ray
    from ray.util import ActorPool

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    @ray.remote(num_cpus=1)
    class BatchWorker:
        def __init__(self):
            self.models = Models(perspective, panorama, device, verify)

        def run(self, index: int, prompt: str) -> dict:
            return batch_result(self.models, index, prompt, settings, out)

    pool = ActorPool([BatchWorker.remote() for _ in range(replicas)])   # type: ignore[attr-defined]
    return sorted(pool.map_unordered(lambda a, v: a.run.remote(*v), list(enumerate(prompts))),
                  key=lambda r: r["index"])
