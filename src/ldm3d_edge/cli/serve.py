"""ldm3d serve, ldm3d view, ldm3d batch: the kiosk service, one result in the viewer, a file of prompts."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from ..extras import need_extra
from ..runtime.errors import InvalidArgumentError
from ..server.retention import SERVE_KEEP, SERVE_MIN_FREE_MB
from .common import Subparsers, add_no_verify, device_help, int_arg


def register(sub: Subparsers) -> None:
    sv = sub.add_parser("serve", help="HTTP service + 360-degree viewer (kiosk): generation jobs, results, metrics",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Serve generation over HTTP with the viewer at /. The model is loaded once per "
                                    "worker; jobs wait in a bounded queue (429 + Retry-After when full), report their "
                                    "step, can be cancelled, and a failing job never takes the server down: each "
                                    "model replica runs in a supervised child process, restarted when it dies.\n"
                                    "API: POST /v1/generate, GET|DELETE /v1/jobs/{id}, POST /v1/jobs/{id}/cancel, "
                                    "GET /v1/results[/{file}], "
                                    "GET /v1/health, GET /v1/ready, GET /v1/metrics (Prometheus), /docs (OpenAPI). "
                                    "Needs the [serve] extra.")
    sv.add_argument("--model", help="artifact folder (default: the embedded model, perspective and 360 exports)")
    sv.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    sv.add_argument("--port", type=int_arg, default=8000, help="default 8000")
    sv.add_argument("--workers", type=int_arg, default=1, help="model replicas generating in parallel (default 1)")
    sv.add_argument("--queue-size", type=int_arg, default=4, help="jobs that may wait (default 4); more get 429")
    sv.add_argument("--results", default="ldm3d-results", help="folder for results (default: ldm3d-results)")
    sv.add_argument("--keep", type=int_arg, default=SERVE_KEEP,
                    help=f"results kept in --results: after each job the oldest beyond this many are deleted, every "
                         f"file of them (default {SERVE_KEEP}; 0 keeps all)")
    sv.add_argument("--min-free-mb", type=int_arg, default=SERVE_MIN_FREE_MB,
                    help=f"take no job (507) while the results disk has less free than this (default "
                         f"{SERVE_MIN_FREE_MB}; 0: no check)")
    sv.add_argument("--api-key", default=os.environ.get("LDM3D_API_KEY"),
                    help="required (header X-API-Key) from clients off this machine (default: $LDM3D_API_KEY)")
    sv.add_argument("--device", default="auto", help=device_help())
    sv.add_argument("--ray", action="store_true", help="generate on Ray Serve replicas (one model copy each, "
                                                      "autoscaled between --min-replicas and --workers on ongoing "
                                                      "requests); needs ray[serve]")
    sv.add_argument("--ray-address", help="Ray cluster to join (default: start one on this machine)")
    sv.add_argument("--min-replicas", type=int_arg, default=1, help="with --ray (default 1)")
    sv.add_argument("--isolation", choices=("process", "thread"), default="process",
                    help="process (default): each model replica in a supervised child process, so a native crash "
                         "fails one job and the worker is restarted; thread: in this process (no restart)")
    sv.add_argument("--job-timeout", type=float, default=0.0,
                    help="seconds a job may run before its worker process is killed and restarted (default 0: "
                         "120 s + 10x the job's steps at the measured step time)")
    sv.add_argument("--drain-seconds", type=float, default=30.0,
                    help="on SIGTERM / Ctrl-C: take no new jobs (503) and give the running one this long to finish "
                         "before it is cancelled and its files removed; then exit 0 (default 30)")
    sv.add_argument("--key-for-local", action="store_true",
                    help="ask the API key of clients on this machine too (needed behind a local reverse proxy, "
                         "which makes every client look local)")
    sv.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                    help="a web origin allowed to call the API from a browser (repeatable; default: none)")
    sv.add_argument("--max-body-kb", type=int_arg, default=1024,
                    help="larger request bodies get 413 before they are read (default 1024)")
    add_no_verify(sv)
    sv.set_defaults(run=run_serve)

    ba = sub.add_parser("batch", help="generate every prompt of a file, locally or fanned out over a Ray cluster",
                        description="Generate one result per prompt (one per line; # comments) into --out, with one "
                                    "model copy per replica. --ray maps the prompts over Ray actors (a local "
                                    "cluster, or --ray-address). Writes batch.json with what ran where.")
    ba.add_argument("prompts", help="text file, one prompt per line")
    ba.add_argument("--out", default="batch-out", help="default: batch-out")
    ba.add_argument("--model", help="artifact folder (default: the embedded model)")
    ba.add_argument("--steps", type=int_arg, default=30)
    ba.add_argument("--seed", type=int_arg, default=0)
    ba.add_argument("--pano", action="store_true")
    ba.add_argument("--ray", action="store_true", help="fan out over Ray (needs ray)")
    ba.add_argument("--ray-address", help="Ray cluster to join (default: start one on this machine)")
    ba.add_argument("--replicas", type=int_arg, default=2, help="model copies working at once with --ray (default 2)")
    ba.add_argument("--device", default="auto", help=device_help())
    add_no_verify(ba)
    ba.set_defaults(run=run_batch)

    vw = sub.add_parser("view", help="open one result in the viewer (no model, no generation)",
                        description="Serve the folder of an 'ldm3d generate' result on localhost and open the "
                                    "viewer on it. Needs the [serve] extra.")
    vw.add_argument("result", help="<prefix>, <prefix>_rgb.png or <prefix>.json of an 'ldm3d generate' result")
    vw.add_argument("--port", type=int_arg, default=8765, help="default 8765")
    vw.add_argument("--no-browser", action="store_true", help="print the address instead of opening a browser")
    vw.add_argument("--explore", action="store_true",
                    help="open the fused scene that 'ldm3d explore RESULT' wrote beside it (<prefix>_explore.glb) "
                         "instead of the result's relief")
    vw.set_defaults(run=run_view)


def _server():
    (run,) = need_extra("'ldm3d serve' and 'ldm3d view'", "serve", "ldm3d_edge.server.run")
    return run


def run_serve(a: argparse.Namespace) -> int:
    _server().serve(a.model, a.host, a.port, a.results, workers=a.workers, queue_size=a.queue_size,
                    api_key=a.api_key, device=a.device, ray=a.ray, ray_address=a.ray_address,
                    min_replicas=a.min_replicas, keep=a.keep, min_free_mb=a.min_free_mb, verify=not a.no_verify,
                    isolation=a.isolation, job_timeout=a.job_timeout, drain_seconds=a.drain_seconds,
                    key_for_local=a.key_for_local, cors_origins=tuple(a.cors_origin),
                    max_body_bytes=a.max_body_kb * 1024)
    return 0


def run_batch(a: argparse.Namespace) -> int:
    from ..quantization.calibration import read_prompts

    run = _server()
    if not Path(a.prompts).is_file():
        raise InvalidArgumentError(f"prompts file {a.prompts} not found (one prompt per line)")
    prompts = read_prompts(a.prompts)
    t0 = time.perf_counter()
    rows = run.batch(prompts, Path(a.out), a.model, steps=a.steps, seed=a.seed, pano=a.pano, device=a.device,
                     ray=a.ray, ray_address=a.ray_address, replicas=a.replicas, verify=not a.no_verify)
    print(f"{len(rows)} results in {a.out} in {time.perf_counter() - t0:.1f}s "
          f"({len({r['pid'] for r in rows})} process(es))")
    return 0


def run_view(a: argparse.Namespace) -> int:
    _server().view(a.result, port=a.port, open_browser=not a.no_browser, explore=a.explore)
    return 0
