"""Crash-isolated model workers: each replica's pipelines live in a child process that the service supervises.

OpenVINO and ONNX Runtime are native code we do not control: a segfault or abort in a worker thread took the whole
service down. Here a worker thread of the JobManager drives one child process (multiprocessing, spawn) over a
pipe: the job goes down, its steps come back (progress), a cancel goes down as an Event between steps. A child
that dies (a signal, an abort, the out-of-memory killer) fails its job with a clear error and is started again
with back-off; a job past its deadline has its child killed and restarted the same way. The HTTP process itself
never loads a model.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..runtime.errors import Ldm3dError
from ..runtime.pipeline import GenerationCancelled
from .generation import Models, Runner, trim_heap
from .schema import GenerateRequest

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0


class WorkerDied(Ldm3dError):
    """The job's worker process died or was killed past the job's deadline; reason: "died" or "deadline"."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class JobError(Ldm3dError):
    """A job that failed inside the worker process, with the message it would have had in a thread."""


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _child(conn, cancel, perspective: str, panorama: str | None, device: str, verify: bool) -> None:
    """The worker process: load the models, then run jobs from the pipe until it closes."""
    # Ctrl-C in a terminal reaches the whole process group: the parent decides when a worker stops
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    try:
        models = Models(Path(perspective), Path(panorama) if panorama else None, device, verify)
    except Exception as e:
        conn.send(("load_error", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except EOFError:          # the service went away
            return
        if msg is None:
            return
        job_id, request, results_dir = msg

        def on_step(i: int) -> bool:
            if os.getppid() != parent:     # the service was killed: stop, publish nothing (the staging is removed)
                return False
            conn.send(("step", i))
            return not cancel.is_set()

        try:
            files, steps = models.run(job_id, GenerateRequest.model_validate(request), Path(results_dir), on_step,
                                      cancel.is_set)
            reply: tuple = ("done", files, steps)
        except GenerationCancelled as e:
            reply = ("cancelled", str(e))
        except Exception as e:    # reported as the thread worker reports it
            reply = ("error", str(e) if isinstance(e, Ldm3dError) else f"{type(e).__name__}: {e}")
        trim_heap()
        try:
            conn.send(reply)
        except OSError:           # the service is gone
            return


class ProcessRunner(Runner):
    """One model replica in a supervised child process. The constructor starts it and waits until its models
    are loaded (a load failure raises, as Models would). deadline_of(request) -> seconds a job may run (None:
    no limit); the JobManager sets it."""

    def __init__(self, perspective: Path, panorama: Path | None, device: str, verify: bool = True):
        self.args = (str(perspective), str(panorama) if panorama else None, device, verify)
        self.ctx = mp.get_context("spawn")
        self.deadline_of: Callable[[GenerateRequest], float | None] = lambda request: None
        self.restarts = 0
        self.failures = 0          # in a row: sets the back-off
        self.proc: Any = None      # a multiprocessing (spawn) Process
        self.pid: int | None = None
        self._start()

    def _start(self) -> None:
        parent, child = self.ctx.Pipe()
        self.cancel = self.ctx.Event()
        self.proc = self.ctx.Process(target=_child, args=(child, self.cancel, *self.args), daemon=True,
                                     name="ldm3d-model-worker")
        self.proc.start()
        child.close()
        self.conn = parent
        while True:
            if self.conn.poll(0.2):
                try:
                    kind, value = self.conn.recv()
                except EOFError:
                    kind, value = "load_error", f"the worker process exited while loading ({self._exit()})"
                if kind == "ready":
                    self.pid = value
                    return
                self.stop()
                raise Ldm3dError(value)
            if not self.proc.is_alive():
                raise WorkerDied(f"the worker process exited while loading ({self._exit()})", "died")

    def _exit(self) -> str:
        assert self.proc is not None
        self.proc.join(1)
        return describe_exit(self.proc.exitcode)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    def recover(self) -> None:
        """Start a new worker process after one died, waiting a back-off that doubles with each failure in a
        row (1, 2, 4 ... 30 s)."""
        if self.alive():
            return
        self.failures += 1
        time.sleep(min(MAX_BACKOFF_S, 2.0 ** (self.failures - 1)) if self.failures > 1 else 0.0)
        self.restarts += 1
        log.warning("restarting the model worker (restart %d)", self.restarts)
        self._start()

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)

    def _kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.join(10)

    def run(self, job_id, request, results_dir, on_step, cancelled):
        if not self.alive():
            self.recover()
        self.cancel.clear()
        self.conn.send((job_id, request.model_dump(), str(results_dir)))
        limit = self.deadline_of(request)
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            if cancelled():
                self.cancel.set()
            if self.conn.poll(0.1):
                try:
                    msg = self.conn.recv()
                except EOFError:     # the child's end closed: it is dying
                    raise WorkerDied(f"the model worker process died during the job ({self._exit()}); it is "
                                     "restarted", "died") from None
                kind = msg[0]
                if kind == "step":
                    if on_step(msg[1]) is False:
                        self.cancel.set()
                    continue
                if kind == "done":
                    self.failures = 0
                    return msg[1], msg[2]
                if kind == "cancelled":
                    raise GenerationCancelled(msg[1])
                if kind == "error":
                    raise JobError(msg[1])
            if not self.proc.is_alive():
                raise WorkerDied(f"the model worker process died during the job ({self._exit()}); it is "
                                 "restarted", "died")
            if deadline is not None and time.monotonic() > deadline:
                self._kill()
                raise WorkerDied(f"the job ran past its deadline of {limit:.0f} s (--job-timeout): its worker "
                                 "process was killed and is restarted", "deadline")
