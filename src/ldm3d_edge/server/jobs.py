"""Generation jobs: a bounded queue in front of worker threads, each with its own runner.

Independent of HTTP (the FastAPI app in app.py calls it). A local worker owns one set of pipelines (one model
replica) because a compiled model keeps one inference request; with Ray Serve a worker hands its job to the
deployment, whose replicas hold the models (ray_serve.py). The queue holds at most
`queue_size` waiting jobs and refuses more (QueueFull, with a retry estimate). A job reports its step, can be
cancelled while waiting or between steps, and a failing job records why and leaves no files behind.
"""

from __future__ import annotations

import logging
import queue
import shutil
import statistics
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..runtime.errors import Ldm3dError
from ..runtime.pipeline import GenerationCancelled
from .generation import EXPLORE_KEYFRAMES, EXPLORE_MAX_STEPS, Runner, trim_heap
from .retention import STAGING_PREFIX, check_free_space, prune, sweep_partial
from .schema import GenerateRequest

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINAL = (DONE, FAILED, CANCELLED)
HISTORY = 1000            # finished jobs remembered (their files stay in the results folder)


class ShuttingDown(Ldm3dError):
    def __init__(self, retry_after: int):
        super().__init__("the service is shutting down and takes no new jobs")
        self.retry_after = retry_after


class QueueFull(Ldm3dError):
    def __init__(self, retry_after: int):
        super().__init__(f"the queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass
class Job:
    id: str
    request: GenerateRequest
    status: str = QUEUED
    step: int = 0
    steps: int = 0
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    files: dict[str, str] = field(default_factory=dict)     # output kind -> file name in the results folder
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_json(self) -> dict:
        return {"id": self.id, "status": self.status, "progress": {"step": self.step, "steps": self.steps},
                "created": self.created, "started": self.started, "finished": self.finished, "error": self.error,
                "files": dict(self.files), "request": self.request.model_dump()}


class JobManager:
    def __init__(self, load_runner: Callable[[], Runner], results_dir: str | Path, workers: int = 1,
                 queue_size: int = 4, keep: int = 0, min_free_mb: int = 0, job_timeout: float = 0):
        """load_runner() is called once in each worker thread: a supervised worker process (workers.py), local
        Models, or a proxy to Ray Serve replicas. keep > 0: after each finished job only the newest `keep`
        results stay in the folder; min_free_mb > 0: no job is taken while the folder's disk has less free
        (DiskFull); job_timeout > 0: a job's deadline in seconds (0: from its steps and the measured step time),
        enforced by runners that can kill their worker."""
        self.results_dir = Path(results_dir)
        self.keep, self.min_free_mb, self.job_timeout = keep, min_free_mb, job_timeout
        self.states = ["loading"] * workers    # per worker: loading, idle, busy, restarting, down
        self.runners: list[Runner | None] = [None] * workers
        self.worker_events = {"restarts": 0, "deaths": 0, "deadline_kills": 0}
        self.results_dir.mkdir(parents=True, exist_ok=True)
        swept = sweep_partial(self.results_dir)    # what a killed predecessor left half-written
        if swept:
            log.warning("removed %d partial file(s) left in %s by an interrupted run", len(swept), self.results_dir)
        self.queue: queue.Queue[Job] = queue.Queue(maxsize=queue_size)
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.lock = threading.Lock()
        self.counts = {DONE: 0, FAILED: 0, CANCELLED: 0, "rejected": 0}
        self.pruned = 0
        self.step_seconds: deque[float] = deque(maxlen=512)
        self.job_seconds: deque[float] = deque(maxlen=128)
        self.workers = workers
        self.running = 0
        self._stop = threading.Event()
        self.draining = threading.Event()
        self._ready = threading.Barrier(workers + 1)
        self._load_errors: list[str] = []
        self.threads = [threading.Thread(target=self._work, args=(load_runner, i), name=f"ldm3d-worker-{i}",
                                         daemon=True) for i in range(workers)]
        for t in self.threads:
            t.start()
        self._ready.wait()
        if self._load_errors:
            self.close()
            raise Ldm3dError(f"could not load the model: {self._load_errors[0]}")

    # -- the API the HTTP layer calls ------------------------------------------------------------------------

    def submit(self, request: GenerateRequest) -> Job:
        if self.draining.is_set():
            raise ShuttingDown(30)
        check_free_space(self.results_dir, self.min_free_mb)
        job = Job(uuid.uuid4().hex, request, steps=request.steps)
        with self.lock:
            try:
                self.queue.put_nowait(job)
            except queue.Full:
                self.counts["rejected"] += 1
                raise QueueFull(self.retry_after()) from None
            self.jobs[job.id] = job
            while len(self.jobs) > HISTORY + self.queue.maxsize + self.workers:
                self.jobs.popitem(last=False)
        return job

    def get(self, job_id: str) -> Job | None:
        with self.lock:
            return self.jobs.get(job_id)

    def cancel(self, job_id: str) -> Job | None:
        job = self.get(job_id)
        if job is not None and job.status not in FINAL:
            job.cancel_event.set()
            if job.status == QUEUED:      # a worker that picks it up skips it
                self._finish(job, CANCELLED, "cancelled while waiting")
        return job

    def forget(self, job_id: str) -> Job | None:
        """Cancel the job if it has not ended and drop its record (a running one still stops at its next step
        and removes its files)."""
        job = self.cancel(job_id)
        if job is not None:
            with self.lock:
                self.jobs.pop(job_id, None)
        return job

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: waiting + running jobs x the mean job time / workers."""
        mean = statistics.fmean(self.job_seconds) if self.job_seconds else 5.0
        return max(1, int(np.ceil((self.queue.qsize() + self.running) * mean / self.workers)))

    def metrics(self) -> dict:
        free = shutil.disk_usage(self.results_dir).free      # a system call: not under the lock
        with self.lock:
            steps = list(self.step_seconds)
            return {"queue_depth": self.queue.qsize(), "running": self.running, "workers": self.workers,
                    "queue_size": self.queue.maxsize, **{f"jobs_{k}": v for k, v in self.counts.items()},
                    "step_seconds": steps, "job_seconds": list(self.job_seconds), "results_pruned": self.pruned,
                    "disk_free_bytes": free, **{f"worker_{k}": v for k, v in self.worker_events.items()}}

    def deadline(self, request: GenerateRequest) -> float:
        """Seconds a job may run: --job-timeout, else 120 s + 10x its steps at the median measured step time
        (10 s a step before any was measured); an "explore" output adds its keyframes' steps."""
        if self.job_timeout > 0:
            return self.job_timeout
        with self.lock:
            steps_s = statistics.median(self.step_seconds) if len(self.step_seconds) >= 3 else 10.0
        steps = request.steps + (EXPLORE_KEYFRAMES * min(request.steps, EXPLORE_MAX_STEPS)
                                 if "explore" in request.outputs else 0)
        return 120.0 + 10.0 * steps * steps_s

    def readiness(self) -> dict:
        """ready: at least one worker loaded and idle or busy (not loading, restarting or down)."""
        with self.lock:
            workers = [{"state": st, "pid": getattr(r, "pid", None), "restarts": getattr(r, "restarts", 0)}
                       for st, r in zip(self.states, self.runners, strict=True)]
        return {"ready": any(w["state"] in ("idle", "busy") for w in workers), "workers": workers}

    def drain(self, seconds: float) -> None:
        """Graceful shutdown: take no new job (ShuttingDown), cancel the waiting ones, let the running ones finish
        within `seconds`, then cancel them (their files removed) and wait for that too."""
        self.draining.set()
        with self.lock:
            waiting = [j for j in self.jobs.values() if j.status == QUEUED]
        for job in waiting:
            job.cancel_event.set()
            self._finish(job, CANCELLED, "the service shut down before the job started")
        if not self._wait_idle(seconds):
            with self.lock:
                running = [j for j in self.jobs.values() if j.status == RUNNING]
            log.warning("drain: %d job(s) still running after %.0f s: cancelling", len(running), seconds)
            for job in running:
                job.cancel_event.set()
            self._wait_idle(30)

    def _wait_idle(self, seconds: float) -> bool:
        """Wait up to `seconds` for no job to be running; whether none is."""
        end = time.monotonic() + seconds
        while self.running and time.monotonic() < end:
            time.sleep(0.05)
        return not self.running

    def close(self) -> None:
        self._stop.set()
        for t in self.threads:
            t.join(2)
        for r in self.runners:
            if r is not None and hasattr(r, "stop"):
                r.stop()

    # -- workers ---------------------------------------------------------------------------------------------

    def _work(self, load_runner: Callable[[], Runner], index: int) -> None:
        try:
            runner = load_runner()
        except Exception as e:    # reported by the constructor; the worker ends
            self._load_errors.append(str(e) if isinstance(e, Ldm3dError) else f"{type(e).__name__}: {e}")
            self.states[index] = "down"
            self._ready.wait()
            return
        if hasattr(runner, "deadline_of"):   # a runner that can kill its worker enforces the job's deadline
            runner.deadline_of = self.deadline
        with self.lock:
            self.runners[index], self.states[index] = runner, "idle"
        self._ready.wait()
        while not self._stop.is_set():
            try:
                job = self.queue.get(timeout=0.2)
            except queue.Empty:
                alive = getattr(runner, "alive", None)
                if alive is not None and not alive():     # its worker process died between jobs (counted once),
                    # or a restart failed: try again (recover's back-off paces it), counting no new death
                    self._recover(runner, index, "died" if self.states[index] == "idle" else None)
                continue
            with self.lock:
                if job.status != QUEUED:       # cancelled while waiting
                    continue
                self.running += 1
                job.status, job.started = RUNNING, time.time()
                self.states[index] = "busy"
            try:
                self._run(runner, job)
                self._finish(job, DONE)
                self._prune()
            except GenerationCancelled:
                self._cleanup(job)
                self._finish(job, CANCELLED, "cancelled while running")
            except BaseException as e:   # a failing job reports why and never takes the worker down
                log.error("job %s failed", job.id, exc_info=True)
                self._cleanup(job)
                self._finish(job, FAILED, f"{type(e).__name__}: {e}" if not isinstance(e, Ldm3dError) else str(e))
                if getattr(e, "reason", None) in ("died", "deadline"):
                    self._recover(runner, index, e.reason)    # type: ignore[attr-defined]
                elif not isinstance(e, Exception):   # KeyboardInterrupt, SystemExit ...: the job ended, go on
                    log.warning("job %s ended by %s", job.id, type(e).__name__)
            finally:
                with self.lock:
                    self.running -= 1
                    if self.states[index] == "busy":
                        self.states[index] = "idle"
                trim_heap()

    def _recover(self, runner: Runner, index: int, reason: str | None) -> None:
        """A worker process died or was killed at a deadline (reason "died" / "deadline": counted), or its last
        restart failed (None): start a new one (back-off inside)."""
        with self.lock:
            if reason is not None:
                self.worker_events["deaths" if reason == "died" else "deadline_kills"] += 1
            self.states[index] = "restarting"
        try:
            runner.recover()   # type: ignore[attr-defined]
            state = "idle"
            with self.lock:
                self.worker_events["restarts"] += 1
        except Exception as e:   # the next job tries again
            log.error("the model worker could not be restarted: %s", e)
            state = "down"
        with self.lock:
            self.states[index] = state

    def _run(self, runner: Runner, job: Job) -> None:
        last = [time.perf_counter()]   # when the previous reported step ended

        def on_step(i: int) -> bool:   # may skip steps (a Ray runner polls): their time is shared out
            now = time.perf_counter()
            done = i + 1 - job.step
            if job.step and done > 0:
                self.step_seconds.extend([(now - last[0]) / done] * done)
            last[0] = now
            job.step = i + 1
            return not job.cancel_event.is_set()

        job.files, job.steps = runner.run(job.id, job.request, self.results_dir, on_step, job.cancel_event.is_set)
        job.step = job.steps

    def _prune(self) -> None:
        with self.lock:                  # one pruner at a time; a failing delete never fails the job
            try:
                gone = prune(self.results_dir, self.keep)
            except OSError as e:
                log.warning("could not prune the results folder: %s", e)
                return
            self.pruned += len(gone)

    def _cleanup(self, job: Job) -> None:
        shutil.rmtree(self.results_dir / f"{STAGING_PREFIX}{job.id}", ignore_errors=True)
        for p in self.results_dir.glob(job.id + "*"):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)

    def _finish(self, job: Job, status: str, error: str | None = None) -> None:
        with self.lock:
            if job.status in FINAL:
                return
            job.status, job.error, job.finished = status, error, time.time()
            self.counts[status] += 1
            if status == DONE and job.started:
                self.job_seconds.append(job.finished - job.started)
