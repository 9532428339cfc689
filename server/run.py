"""Starting the service: `ldm3d serve` (models + jobs + viewer) and `ldm3d view` (one result, no model)."""

from __future__ import annotations

import ipaddress
import threading
import webbrowser
from pathlib import Path

from ..runtime.errors import InvalidArgumentError
from .app import create_app
from .jobs import JobManager, Models


def build_manager(model: str | None, results: str | Path, workers: int, queue_size: int,
                  device: str = "auto") -> tuple[JobManager, str]:
    """The job manager with `workers` model replicas: a --model folder, or the embedded model's two exports."""
    if workers < 1 or queue_size < 1:
        raise InvalidArgumentError(f"--workers and --queue-size must be >= 1, got {workers} and {queue_size}")
    if model:
        perspective, panorama, name = Path(model), None, Path(model).name
    else:
        from ..embedded import embedded_artifacts

        perspective, panorama, src = embedded_artifacts()
        name = src.name
    manager = JobManager(lambda: Models(perspective, panorama, device), results, workers, queue_size)
    return manager, name


def serve(model: str | None, host: str, port: int, results: str | Path, workers: int = 1, queue_size: int = 4,
          api_key: str | None = None, device: str = "auto") -> None:
    import uvicorn

    if not _is_loopback_host(host) and not api_key:
        print(f"warning: serving on {host} without an API key: anyone who reaches this machine can generate "
              "(set --api-key or LDM3D_API_KEY)", flush=True)
    manager, name = build_manager(model, results, workers, queue_size, device)
    app = create_app(manager, results, api_key=api_key, model_name=name)
    print(f"ldm3d serve: model {name}, {workers} worker(s), queue {queue_size}, results in {Path(results).resolve()}"
          f"\n  viewer  http://{host}:{port}/\n  API     http://{host}:{port}/docs", flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        manager.close()


def view(result: str | Path, host: str = "127.0.0.1", port: int = 8765, open_browser: bool = True) -> None:
    """Serve the folder of one 'ldm3d generate' result and open the viewer on it (no model, no generation)."""
    import uvicorn

    from ..runtime.result import read_rgbd_files

    files = read_rgbd_files(result)     # checks that the result is there, with its depth
    folder, name = files.rgb_path.parent, files.rgb_path.name[: -len("_rgb.png")]
    app = create_app(None, folder)
    url = f"http://{host}:{port}/?result={name}"
    print(f"ldm3d view: {url}  (Ctrl-C to stop)", flush=True)
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
