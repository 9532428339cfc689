"""Soak: `ldm3d serve` through many jobs of every kind (issue 22), watching what must stay bounded.

A live service on the embedded model (worker process, --keep 50) gets `--jobs` requests from two clients: mixed
outputs (rgb + json; a GLB every 3rd; an MP4 every 20th; an explore walk every 50th), 2-4 steps; every 10th
request is invalid (must get 422, never a job), every 10th job is cancelled after its first step, and every
100th has its worker process SIGKILLed mid-job. Every accepted job is polled until it ends; each must end done,
failed (the killed ones only) or cancelled (the cancelled ones only): none lost. Every `--every` jobs it samples
the HTTP process's and the worker's RSS, open file descriptors and threads, the results folder's size and files,
and the latency of the jobs since the last sample.

    PYTHONPATH=src:. python -m benchmarks.serve_soak [--jobs 1000] [--out benchmarks/results/serve-soak]
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.serve_load import Server
from ldm3d_edge.bench.common import machine, write_results

PROMPTS = ["a red sphere in front of a blue cube on a grey floor", "a green cone on a dark floor",
           "a yellow torus beside a purple cylinder before a white wall"]


def proc_stats(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f)
    return {"rss_mb": int(status["VmRSS"].split()[0]) / 1024, "threads": int(status["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def folder_stats(folder: Path) -> dict:
    files = [p for p in folder.iterdir() if p.is_file()]
    return {"results_mb": sum(p.stat().st_size for p in files) / 2**20, "results_files": len(files),
            "staging": sum(p.is_dir() for p in folder.iterdir())}


def request_for(i: int) -> dict:
    outputs = ["rgb", "json"] + (["glb"] if i % 3 == 0 else []) + (["mp4"] if i % 20 == 0 else []) \
        + (["explore"] if i % 50 == 25 else [])
    return {"prompt": PROMPTS[i % len(PROMPTS)], "steps": 2 + i % 3, "seed": i, "outputs": outputs,
            "pano": i % 7 == 0}


def soak(jobs: int, every: int, results: Path) -> dict:
    import httpx

    samples, outcomes, latencies, problems = [], [], [], []
    lock = threading.Lock()
    counter = iter(range(jobs))
    with Server(results, queue_size=8, extra=["--keep", "50"]) as server, httpx.Client(base_url=server.url,
                                                                                        timeout=60) as http:
        def worker_pid() -> int:
            for _ in range(600):
                r = http.get("/v1/ready")
                if r.status_code == 200 and r.json()["workers"][0]["pid"]:
                    return r.json()["workers"][0]["pid"]
                time.sleep(0.1)
            raise RuntimeError("no ready worker")

        def sample(done: int) -> None:
            with lock:
                recent = latencies[-every:]
            samples.append({"jobs": done, "t": time.time(), "server": proc_stats(server.proc.pid),
                            "worker": proc_stats(worker_pid()), **folder_stats(results),
                            "latency_s": float(np.median(recent)) if recent else None})

        def client() -> None:
            with httpx.Client(base_url=server.url, timeout=60) as c:
                for i in counter:
                    if i % 10 == 3:                       # invalid: a size that is not a multiple of 8
                        r = c.post("/v1/generate", json={**request_for(i), "height": 419})
                        with lock:
                            outcomes.append({"i": i, "kind": "invalid", "status": r.status_code})
                        continue
                    kind = "kill" if i % 100 == 50 else "cancel" if i % 10 == 7 else "job"
                    body = {**request_for(i), "steps": 400} if kind == "kill" else request_for(i)
                    if kind == "cancel":
                        body["steps"] = 40
                    t0 = time.time()
                    r = c.post("/v1/generate", json=body)
                    while r.status_code == 429:            # the queue is full: as a client would, wait and retry
                        time.sleep(float(r.headers.get("Retry-After", 1)))
                        r = c.post("/v1/generate", json=body)
                    job = r.json()["id"]
                    if kind in ("cancel", "kill"):
                        while c.get(f"/v1/jobs/{job}").json()["progress"]["step"] < 1:
                            time.sleep(0.01)
                        if kind == "cancel":
                            c.post(f"/v1/jobs/{job}/cancel")
                        else:
                            os.kill(worker_pid(), signal.SIGKILL)
                    while (s := c.get(f"/v1/jobs/{job}").json())["status"] in ("queued", "running"):
                        time.sleep(0.02)
                    with lock:
                        outcomes.append({"i": i, "kind": kind, "status": s["status"], "error": s["error"]})
                        latencies.append(time.time() - t0)
                        n = len(outcomes)
                    if n % every == 0:
                        sample(n)

        sample(0)
        threads = [threading.Thread(target=client) for _ in range(2)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.time() - t0
        sample(len(outcomes))
        metrics = http.get("/v1/metrics").text
    expected = {"job": "done", "cancel": "cancelled", "kill": "failed", "invalid": 422}
    for o in outcomes:
        if o["status"] != expected[o["kind"]] and not (o["kind"] == "cancel" and o["status"] == "done"):
            problems.append(o)
    return {"jobs": jobs, "wall_s": wall, "samples": samples, "outcomes": outcomes, "problems": problems,
            "metrics": [line for line in metrics.splitlines() if line.startswith("ldm3d_")]}


def summarize(r: dict) -> dict:
    s = r["samples"]
    quarter = max(1, len(s) // 4)
    out = {}
    for key, get in (("server_rss_mb", lambda x: x["server"]["rss_mb"]),
                     ("worker_rss_mb", lambda x: x["worker"]["rss_mb"]),
                     ("server_fds", lambda x: x["server"]["fds"]), ("server_threads", lambda x: x["server"]["threads"]),
                     ("worker_fds", lambda x: x["worker"]["fds"]), ("worker_threads", lambda x: x["worker"]["threads"]),
                     ("results_mb", lambda x: x["results_mb"]), ("results_files", lambda x: x["results_files"]),
                     ("latency_s", lambda x: x["latency_s"])):
        values = [get(x) for x in s if get(x) is not None]
        out[key] = {"first_quarter": float(np.median(values[1:quarter + 1] or values[:1])),
                    "last_quarter": float(np.median(values[-quarter:])), "max": float(max(values))}
    kinds: dict[str, dict[str, int]] = {}
    for o in r["outcomes"]:
        kinds.setdefault(o["kind"], {}).setdefault(str(o["status"]), 0)
        kinds[o["kind"]][str(o["status"])] += 1
    out["outcomes"] = kinds
    return out


def markdown(r: dict, summary: dict, meta: dict) -> str:
    lines = ["# Soak: `ldm3d serve` through many jobs", "",
             f"{r['jobs']} requests in {r['wall_s'] / 60:.1f} min from two clients (embedded model, one worker "
             f"process, --keep 50); {meta['cpu']}, {meta['cores']} cores. Samples every few jobs; the table "
             "compares the first quarter of the run with the last (medians) and gives the maximum.", "",
             "| quantity | first quarter | last quarter | max |", "|---|---|---|---|"]
    for key, v in summary.items():
        if key != "outcomes":
            lines.append(f"| {key} | {v['first_quarter']:.2f} | {v['last_quarter']:.2f} | {v['max']:.2f} |")
    lines += ["", "Outcomes by kind of request: " + "; ".join(
        f"{kind}: " + ", ".join(f"{n} {status}" for status, n in sorted(v.items()))
        for kind, v in sorted(summary["outcomes"].items())),
        f"Requests that did not end as their kind must: {len(r['problems'])}.", ""]
    return "\n".join(lines)


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ldm3d_edge.runtime.result import atomic_write

    s = r["samples"]
    jobs = [x["jobs"] for x in s]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    axes[0, 0].plot(jobs, [x["server"]["rss_mb"] for x in s], label="HTTP process")
    axes[0, 0].plot(jobs, [x["worker"]["rss_mb"] for x in s], label="model worker")
    axes[0, 0].set_ylabel("RSS (MB)")
    axes[0, 0].legend()
    axes[0, 1].plot(jobs, [x["server"]["fds"] for x in s], label="HTTP fds")
    axes[0, 1].plot(jobs, [x["server"]["threads"] for x in s], label="HTTP threads")
    axes[0, 1].plot(jobs, [x["worker"]["fds"] for x in s], label="worker fds")
    axes[0, 1].plot(jobs, [x["worker"]["threads"] for x in s], label="worker threads")
    axes[0, 1].legend()
    axes[1, 0].plot(jobs, [x["results_mb"] for x in s])
    axes[1, 0].set_ylabel("results folder (MB)")
    axes[1, 1].plot(jobs, [x["latency_s"] for x in s])
    axes[1, 1].set_ylabel("median job latency (s)")
    for ax in axes.flat:
        ax.set_xlabel("requests finished")
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=90))
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--every", type=int, default=25, help="sample every this many requests")
    ap.add_argument("--out", default="benchmarks/results/serve-soak")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ldm3d-soak-") as tmp:
        r = soak(a.jobs, a.every, Path(tmp) / "results")
    summary = summarize(r)
    meta = machine()
    out = Path(a.out)
    write_results(out / "summary", {"machine": meta, "summary": summary, **r}, markdown(r, summary, meta))
    plot(r, out / "soak.png")
    return 1 if r["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
