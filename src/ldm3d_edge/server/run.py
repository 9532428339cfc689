"""Starting the service: `ldm3d serve` (models + jobs + viewer) and `ldm3d view` (one result, no model)."""

from __future__ import annotations

import threading
import webbrowser
from pathlib import Path
from typing import Any

import uvicorn

from ..runtime.errors import InvalidArgumentError
from .app import create_app, is_loopback
from .generation import Models
from .jobs import JobManager
from .security import MAX_BODY_BYTES

DRAIN_SECONDS = 30.0
# against slow or greedy clients (uvicorn's own limits): at most 64 connections at once (more get 503), an idle
# keep-alive connection closed after 5 s, request line + headers at most 16 KB
CLIENT_LIMITS: dict[str, Any] = {"limit_concurrency": 64, "timeout_keep_alive": 5,
                                 "h11_max_incomplete_event_size": 16 * 1024}


def model_folders(model: str | None, device: str = "auto") -> tuple[Path, Path | None, str]:
    """(perspective artifacts, panorama artifacts or None, name): a --model folder, or the embedded model (one
    folder for both when it is the shipped IR: Models loads it once)."""
    if model:
        return Path(model), None, Path(model).name
    from ..embedded import embedded_artifacts

    perspective, panorama, src = embedded_artifacts(device=device)
    return perspective, panorama, src.name


def build_manager(model: str | None, results: str | Path, workers: int, queue_size: int, device: str = "auto",
                  ray: bool = False, ray_address: str | None = None, min_replicas: int = 1, keep: int = 0,
                  min_free_mb: int = 0, verify: bool = True, isolation: str = "process",
                  job_timeout: float = 0) -> tuple[JobManager, str]:
    """The job manager with `workers` model replicas, each in a supervised child process (isolation "process"),
    in this process ("thread") or (ray=True) on Ray Serve; verify: check the model folder's files against its
    manifest when each replica loads it."""
    if workers < 1 or queue_size < 1 or not 1 <= min_replicas <= workers:
        raise InvalidArgumentError(f"--workers and --queue-size must be >= 1 and --min-replicas from 1 to --workers, "
                                   f"got {workers}, {queue_size}, {min_replicas}")
    if keep < 0 or min_free_mb < 0:
        raise InvalidArgumentError(f"--keep and --min-free-mb must be >= 0 (0: no limit), got {keep}, {min_free_mb}")
    if isolation not in ("process", "thread") or job_timeout < 0:
        raise InvalidArgumentError(f"--isolation must be process or thread and --job-timeout >= 0, got {isolation!r}, "
                                   f"{job_timeout}")
    limits: dict[str, Any] = {"keep": keep, "min_free_mb": min_free_mb, "job_timeout": job_timeout}
    perspective, panorama, name = model_folders(model, device)
    if not ray:
        if isolation == "process":
            from .workers import ProcessRunner

            return JobManager(lambda: ProcessRunner(perspective, panorama, device, verify), results, workers,
                              queue_size, **limits), name
        return JobManager(lambda: Models(perspective, panorama, device, verify), results, workers, queue_size,
                          **limits), name
    from . import ray_serve

    ray_serve.init_ray(ray_address)
    handle, board = ray_serve.deploy(perspective, panorama, device, min_replicas=min_replicas, max_replicas=workers,
                                     verify=verify)
    return JobManager(lambda: ray_serve.RayRunner(handle, board), results, workers, queue_size, **limits), name


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a graceful first SIGTERM / SIGINT: the job manager drains (no new jobs: 503 +
    Retry-After; the running one finishes within drain_seconds, else it is cancelled and its files removed), then
    the server stops and the process exits 0. A second signal stops at once (uvicorn's own handling)."""

    def __init__(self, config: uvicorn.Config, manager: JobManager, drain_seconds: float):
        super().__init__(config)
        self.manager, self.drain_seconds, self.draining = manager, drain_seconds, False

    def handle_exit(self, sig, frame) -> None:
        if self.draining:
            return super().handle_exit(sig, frame)
        self.draining = True
        print(f"ldm3d serve: stopping: no new jobs, the running one gets up to {self.drain_seconds:.0f} s",
              flush=True)

        def drain() -> None:
            self.manager.drain(self.drain_seconds)
            self.should_exit = True     # not through handle_exit: uvicorn would re-raise the signal at exit

        threading.Thread(target=drain, name="ldm3d-drain", daemon=True).start()


def serve(model: str | None, host: str, port: int, results: str | Path, workers: int = 1, queue_size: int = 4,
          api_key: str | None = None, device: str = "auto", ray: bool = False, ray_address: str | None = None,
          min_replicas: int = 1, keep: int = 0, min_free_mb: int = 0, verify: bool = True, isolation: str = "process",
          job_timeout: float = 0, drain_seconds: float = DRAIN_SECONDS, key_for_local: bool = False,
          cors_origins: tuple[str, ...] = (), max_body_bytes: int = MAX_BODY_BYTES) -> None:
    if drain_seconds < 0:
        raise InvalidArgumentError(f"--drain-seconds must be >= 0, got {drain_seconds}")
    if not is_loopback(host) and not api_key:
        print(f"warning: serving on {host} without an API key: anyone who reaches this machine can generate "
              "(set --api-key or LDM3D_API_KEY)", flush=True)
    manager, name = build_manager(model, results, workers, queue_size, device, ray, ray_address, min_replicas,
                                  keep, min_free_mb, verify, isolation, job_timeout)
    app = create_app(manager, results, api_key=api_key, model_name=name, key_for_local=key_for_local,
                     cors_origins=cors_origins, max_body_bytes=max_body_bytes)
    where = f"Ray Serve, {min_replicas}-{workers} replica(s)" if ray else f"{workers} worker(s)"
    kept = f"the newest {keep} kept" if keep else "all kept"
    print(f"ldm3d serve: model {name}, {where}, queue {queue_size}, results in {Path(results).resolve()} ({kept})"
          f"\n  viewer  http://{host}:{port}/\n  API     http://{host}:{port}/docs", flush=True)
    try:
        DrainingServer(uvicorn.Config(app, host=host, port=port, log_level="warning", **CLIENT_LIMITS), manager,
                       drain_seconds).run()
    finally:
        manager.close()
        if ray:
            from . import ray_serve

            ray_serve.shutdown()


def view(result: str | Path, host: str = "127.0.0.1", port: int = 8765, open_browser: bool = True,
         explore: bool = False) -> None:
    """Serve the folder of one 'ldm3d generate' result and open the viewer on it (no model, no generation);
    explore: on the fused scene 'ldm3d explore RESULT' wrote beside it (<prefix>_explore.glb)."""
    from ..runtime.result import read_rgbd_files, result_prefix

    files = read_rgbd_files(result)     # checks that the result is there, with its depth
    folder, name = files.rgb_path.parent, result_prefix(files.rgb_path).name
    if explore and not all((folder / f"{name}_explore{ext}").is_file() for ext in (".glb", ".json")):
        raise InvalidArgumentError(f"no fused scene beside {name}: run 'ldm3d explore {folder / name}' first (it "
                                   f"writes {name}_explore.glb and .json)")
    app = create_app(None, folder)
    url = f"http://{host}:{port}/?result={name}" + ("&scene=explore" if explore else "")
    print(f"ldm3d view: {url}  (Ctrl-C to stop)", flush=True)
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(app, host=host, port=port, log_level="warning")


def batch(prompts: list[str], out: Path, model: str | None, steps: int = 30, seed: int = 0, pano: bool = False,
          device: str = "auto", ray: bool = False, ray_address: str | None = None, replicas: int = 2,
          verify: bool = True) -> list[dict]:
    """Every prompt to a result in `out`, here or over Ray; writes out/batch.json and returns its rows."""
    import json

    from ..runtime.result import atomic_write
    from .generation import batch_result

    if not prompts:
        raise InvalidArgumentError("the prompts file has no prompts")
    if replicas < 1:
        raise InvalidArgumentError(f"--replicas must be >= 1, got {replicas}")
    perspective, panorama, name = model_folders(model, device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"steps": steps, "seed": seed, "pano": pano, "outputs": ["rgb", "depth", "json"]}
    if ray:
        from . import ray_serve

        ray_serve.init_ray(ray_address)
        try:
            rows = ray_serve.batch(prompts, out, perspective, panorama, replicas, settings, device, verify)
        finally:
            ray_serve.shutdown()
    else:
        models = Models(perspective, panorama, device, verify)
        rows = [batch_result(models, i, prompt, settings, out) for i, prompt in enumerate(prompts)]
    atomic_write(out / "batch.json", lambda p: Path(p).write_text(json.dumps(
        {"model": name, "ray": ray, "replicas": replicas if ray else 1, "results": rows}, indent=2)))
    return rows

