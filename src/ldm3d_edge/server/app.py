"""The HTTP service: FastAPI routes over a JobManager, the viewer's static files, results, health and metrics.

    POST   /v1/generate          GenerateRequest -> {id, status, links}; 429 + Retry-After when the queue is full,
                                 507 when the results disk has less free than the server's --min-free-mb
    GET    /v1/jobs/{id}         status, progress (step k of n), error, result links
    POST   /v1/jobs/{id}/cancel  cancel (waiting: at once; running: at the next step); the job stays queryable
    DELETE /v1/jobs/{id}         cancel it if it has not ended, and forget it (404 from then on)
    GET    /v1/results           the results folder's results, newest first (the viewer's gallery)
    GET    /v1/results/{file}    one result file (name checked: no paths, known suffixes only)
    GET    /v1/health            liveness and model
    GET    /v1/ready             readiness: 200 while a model worker is loaded and idle or busy, else 503
    GET    /v1/metrics           Prometheus text: queue depth, running, jobs by outcome, step and job latency,
                                 results pruned, free disk
    GET    /                     the viewer (three.js vendored in the package; nothing is fetched from outside)
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, HTTPException, Request
from fastapi import Path as FastAPIPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..runtime import constants as C
from ..runtime.result import load_depth_png
from ..viewer import static_dir
from .jobs import JobManager, QueueFull, ShuttingDown
from .metrics import prometheus_text
from .retention import RESULT_FILE_MAX, RESULT_FILE_PATTERN, RESULT_SUFFIXES, DiskFull, result_names
from .schema import GalleryItem, GenerateRequest, Health, JobCreated, JobStatus, Readiness, errors
from .security import (
    API_KEY_HEADER,
    MAX_BODY_BYTES,
    ApiKey,
    BodyLimit,
    SecurityHeaders,
    content_security_policy,
    security_headers,
)

VIEWER_DIR = static_dir()
RESULT_FILE_RE = re.compile(RESULT_FILE_PATTERN)


def create_app(manager: JobManager | None, results_dir: str | Path, api_key: str | None = None,
               model_name: str = "", key_for_local: bool = False, cors_origins: tuple[str, ...] = (),
               max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """manager None: viewer only (`ldm3d view`), generation answers 503. api_key: asked of clients off this
    machine, and of local ones too with key_for_local (a reverse proxy on this machine makes every client local).
    cors_origins: origins allowed to call the API from a browser (none by default). max_body_bytes: larger
    request bodies get 413 before they are read."""
    results = Path(results_dir).resolve()
    results.mkdir(parents=True, exist_ok=True)
    app = FastAPI(title="ldm3d-edge", version=__version__,
                  description="LDM3D text -> RGB + depth, 3D outputs and a 360-degree viewer, offline.")
    app.state.manager, app.state.results = manager, results
    # pure ASGI middlewares (BaseHTTPMiddleware wraps what the body's reading raises, which turned the body
    # limit's 413 into a 400); the last added runs first: body limit, security headers, CORS (its preflights
    # carry no key), the API key
    if api_key:
        app.add_middleware(ApiKey, key=api_key, for_local=key_for_local, is_local=is_loopback)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["content-type", API_KEY_HEADER])
    app.add_middleware(SecurityHeaders, headers=security_headers(content_security_policy(VIEWER_DIR / "index.html")))
    app.add_middleware(BodyLimit, limit=max_body_bytes)   # the outermost: before anything reads

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError):
        problems = [f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body') or 'body'}: {e.get('msg')}"
                    for e in exc.errors()]
        return JSONResponse({"error": "; ".join(problems), "detail": json.loads(json.dumps(exc.errors(), default=str))},
                            status_code=422)

    @app.post("/v1/generate", response_model=JobCreated, responses=errors(400, 422, 429, 503, 507))
    def generate(body: GenerateRequest) -> JSONResponse:
        if manager is None:
            raise HTTPException(503, "no model is loaded (viewer only): start 'ldm3d serve' to generate")
        try:
            job = manager.submit(body)
        except QueueFull as e:
            return JSONResponse({"error": str(e)}, status_code=429, headers={"Retry-After": str(e.retry_after)})
        except ShuttingDown as e:
            return JSONResponse({"error": str(e)}, status_code=503, headers={"Retry-After": str(e.retry_after)})
        except DiskFull as e:
            return JSONResponse({"error": str(e)}, status_code=507)
        return JSONResponse({"id": job.id, "status": job.status, "links": _job_links(job.id)})

    @app.get("/v1/jobs/{job_id}", response_model=JobStatus, responses=errors(404, 422))
    def job_status(job_id: str):
        job = manager.get(job_id) if manager else None
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return {**job.to_json(), "links": {**_job_links(job.id), **{k: f"/v1/results/{f}" for k, f in
                                                                  job.files.items()}}}

    @app.post("/v1/jobs/{job_id}/cancel", response_model=JobStatus, responses=errors(404, 422))
    def cancel(job_id: str):
        """Cancel: a waiting job at once, a running one at its next step (its files are removed); the job stays
        queryable, "cancelled"."""
        job = manager.cancel(job_id) if manager else None
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return {**job.to_json(), "links": _job_links(job.id)}

    @app.delete("/v1/jobs/{job_id}", response_model=JobStatus, responses=errors(404, 422))
    def delete(job_id: str):
        """Cancel the job if it has not ended and forget it: it answers 404 from then on (its finished result
        stays in the results folder); returns its state as it was."""
        job = manager.forget(job_id) if manager else None
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return {**job.to_json(), "links": _job_links(job.id)}

    @app.get("/v1/results", response_model=list[GalleryItem], responses=errors())
    def list_results() -> list[dict]:
        out = []
        for name in result_names(results):
            try:
                info = json.loads((results / (name + C.SIDECAR_SUFFIX)).read_text())
            except (OSError, json.JSONDecodeError):
                continue
            out.append({"name": name, "prompt": info.get("prompt"), "width": info.get("width"),
                        "height": info.get("height"), "camera": (info.get("camera") or {}).get("model"),
                        "rgb": f"/v1/results/{name}{C.RGB_SUFFIX}", "info": f"/v1/results/{name}{C.SIDECAR_SUFFIX}",
                        # the fused scene of an "explore" output, when the job made one (the viewer opens it)
                        "explore": (f"/v1/results/{name}_explore.glb"
                                    if (results / f"{name}_explore.glb").is_file() else None)})
        return out

    # no response_class on the non-JSON routes: FastAPI would document their JSON errors under its media type
    @app.get("/v1/results/{file}", response_model=None, responses={
        200: {"description": "the file", "content": {t: {} for t in sorted(set(MEDIA_TYPES.values()))}},
        **errors(404, 422)})
    def result_file(file: Annotated[str, FastAPIPath(pattern=RESULT_FILE_PATTERN, max_length=RESULT_FILE_MAX,
                                                     description="a result's file: its name and a suffix")]):
        path = _result_path(results, file)
        if path.is_file():
            return FileResponse(path, media_type=media_type(file))
        if file.endswith(C.DEPTH_F32_SUFFIX):   # results of 'ldm3d generate': full precision from the 16-bit PNG
            png = results / (file[: -len(C.DEPTH_F32_SUFFIX)] + C.DEPTH_SUFFIX)
            if png.is_file():
                return Response(load_depth_png(png).astype("<f4").tobytes(), media_type="application/octet-stream")
        raise HTTPException(404, f"no result file {file!r}")

    @app.get("/v1/health", response_model=Health, responses=errors())
    def health() -> dict:
        m = manager.metrics() if manager else {}
        return {"status": "ok", "version": __version__, "model": model_name or None, "generate": manager is not None,
                "queue_depth": m.get("queue_depth", 0), "running": m.get("running", 0)}

    @app.get("/v1/ready", response_model=Readiness, responses={
        **errors(), 503: {"model": Readiness, "description": "no model worker is loaded and working (loading, "
                                                             "restarting or down)"}})
    def ready() -> JSONResponse:
        """Readiness, apart from liveness (/v1/health): 200 while at least one model worker is loaded and idle
        or busy, 503 while every one is loading, restarting or down; each worker's state, pid and restarts."""
        state = manager.readiness() if manager else {"ready": False, "workers": []}
        return JSONResponse(state, status_code=200 if state["ready"] else 503)

    @app.get("/v1/metrics", response_model=None, responses={
        200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}},
        **errors()})
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(prometheus_text(manager.metrics() if manager else None),
                                 media_type="text/plain; version=0.0.4")

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(VIEWER_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=VIEWER_DIR), name="static")
    return app


def _job_links(job_id: str) -> dict[str, str]:
    return {"status": f"/v1/jobs/{job_id}"}


MEDIA_TYPES = {".png": "image/png", ".json": "application/json", ".f32": "application/octet-stream",
               ".glb": "model/gltf-binary", ".mp4": "video/mp4", ".gif": "image/gif",
               ".ply": "application/octet-stream", ".obj": "text/plain", ".mtl": "text/plain"}


def media_type(name: str) -> str:
    """A result file's Content-Type (Python's mimetypes knows neither .glb nor .f32)."""
    return MEDIA_TYPES.get(Path(name).suffix, "application/octet-stream")


def _result_path(results: Path, name: str) -> Path:
    """The file `name` in the results folder; 400 for anything that is not a plain result file name (the route's
    pattern refuses those first, with 422: this stays as a second line)."""
    if not RESULT_FILE_RE.match(name) or len(name) > RESULT_FILE_MAX:
        raise HTTPException(400, f"name: {name!r} is not a result file name (letters, digits, '_', '-', '.'; no "
                                 f"paths; ending in one of {', '.join(RESULT_SUFFIXES)})")
    path = (results / name).resolve()
    if path.parent != results:
        raise HTTPException(400, f"name: {name!r} is outside the results folder")
    return path


def is_loopback(host: str) -> bool:
    """A loopback address or 'localhost' (the API key is asked of everything else)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
