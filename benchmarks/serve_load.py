"""Load test of `ldm3d serve` on loopback: N requests from C concurrent clients against a small queue.

Starts `ldm3d serve` as a child process (the embedded model unless --model), sends the requests from client
threads (each: POST /v1/generate, then poll its job until it ends), and checks that every answer is 200 or 429
with Retry-After, that no answer is a 5xx, that every accepted job finished with its own files (none lost, none
shared), and how the server's RSS moved. Writes OUT.json and OUT.md; traffic goes to 127.0.0.1 only, and every
loop is bounded in count and time.

    python -m benchmarks.serve_load [--requests 50] [--clients 10] [--queue-size 2] [--steps 10]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ldm3d_edge.bench.common import machine, write_results

PROMPT = "a red sphere on the left in front of a blue cube on a grey floor before a white wall"
DEADLINE_S = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process in MB: VmRSS (all of it), or RssAnon (its own heap and stacks: what a leak
    grows; RssFile, the mapped weight files' pages, comes and goes with the page cache)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """`ldm3d serve` in a child process on a free loopback port; stopped on exit."""

    def __init__(self, results: Path, queue_size: int, workers: int = 1, model: str | None = None,
                 extra: list[str] | None = None, preexec_fn=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "ldm3d_edge.cli", "serve", "--port", str(self.port), "--results", str(results),
               "--queue-size", str(queue_size), "--workers", str(workers)] + (["--model", model] if model else []) \
            + (extra or [])
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=preexec_fn)

    def __enter__(self) -> Server:
        import httpx

        t0 = time.time()
        while time.time() - t0 < 120:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ldm3d serve exited: {self.output()}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"ldm3d serve did not come up: {self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_load(url: str, requests: int, clients: int, body: dict, timeout_s: float = DEADLINE_S,
             retries: int = 0) -> dict:
    """retries: how often a client that got 429 waits Retry-After seconds and asks again (0: it takes the 429)."""
    import httpx

    lock = threading.Lock()
    todo = list(range(requests))
    records: list[dict] = []
    deadline = time.time() + timeout_s

    def client() -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while True:
                with lock:
                    if not todo:
                        return
                    todo.pop()
                t0 = time.perf_counter()
                rec: dict = {}
                try:
                    for attempt in range(retries + 1):
                        r = http.post("/v1/generate", json=body)
                        rec.setdefault("codes", []).append(r.status_code)
                        if r.status_code != 429 or attempt == retries or time.time() > deadline:
                            break
                        time.sleep(min(float(r.headers.get("Retry-After", 1)), 5.0))
                    rec["status"] = r.status_code
                    if r.status_code == 429:
                        rec["retry_after"] = r.headers.get("Retry-After")
                    elif r.status_code == 200:
                        job = r.json()["id"]
                        rec["job"] = job
                        while time.time() < deadline:
                            s = http.get(f"/v1/jobs/{job}")
                            rec.setdefault("poll_codes", set()).add(s.status_code)
                            st = s.json()
                            if st["status"] in ("done", "failed", "cancelled"):
                                rec.update(final=st["status"], files=st["files"], error=st["error"])
                                break
                            time.sleep(0.05)
                        rec["latency_s"] = time.perf_counter() - t0
                except httpx.HTTPError as e:
                    rec["exception"] = f"{type(e).__name__}: {e}"
                with lock:
                    records.append(rec)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s)
    wall = time.perf_counter() - t0
    accepted = [r for r in records if r.get("status") == 200]
    lat = sorted(r["latency_s"] for r in accepted if "latency_s" in r)
    files = [f for r in accepted for f in (r.get("files") or {}).values()]
    return {
        "requests": requests, "clients": clients, "answered": len(records), "wall_s": round(wall, 2),
        "status_counts": {str(k): sum(1 for r in records if r.get("status") == k)
                          for k in sorted({r.get("status") for r in records}, key=str)},
        "server_errors": sum(1 for r in records if any(c >= 500 for c in r.get("codes", []))
                             or any(c >= 500 for c in r.get("poll_codes", ()))),
        "unexpected_codes": sorted({c for r in records for c in r.get("codes", []) if c not in (200, 429)}),
        "posts": sum(len(r.get("codes", [])) for r in records),
        "exceptions": [r["exception"] for r in records if "exception" in r],
        "retry_after_missing": sum(1 for r in records if r.get("status") == 429 and not r.get("retry_after")),
        "accepted": len(accepted), "done": sum(1 for r in accepted if r.get("final") == "done"),
        "not_done": [r.get("final") for r in accepted if r.get("final") != "done"],
        "distinct_jobs": len({r["job"] for r in accepted}), "files": len(files), "distinct_files": len(set(files)),
        "latency_p50_s": round(statistics.median(lat), 3) if lat else None,
        "latency_p95_s": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 3) if lat else None,
    }


def markdown(r: dict) -> str:
    lines = [f"`ldm3d serve` load test on loopback: {r['requests']} requests from {r['clients']} clients, queue "
             f"{r['queue_size']}, {r['workers']} worker, {r['body']['steps']} steps, model {r['model']}", "",
             "| clients on 429 | POSTs | final 200 | final 429 | 5xx | accepted done | distinct result files | "
             "p50 s | p95 s | server RSS before / after MB | server heap (RssAnon) before / after MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in r["scenarios"].items():
        lines.append(
            f"| {name} | {s['posts']} | {s['status_counts'].get('200', 0)} | {s['status_counts'].get('429', 0)} | "
            f"{s['server_errors']} | {s['done']}/{s['accepted']} | {s['distinct_files']}/{s['files']} | "
            f"{s['latency_p50_s']} | {s['latency_p95_s']} | {s['rss_before_mb']:.0f} / {s['rss_after_mb']:.0f} | "
            f"{s['anon_before_mb']:.1f} / {s['anon_after_mb']:.1f} |")
    return "\n".join(lines) + "\n"


def one_job(http, url: str, body: dict) -> float:
    """Seconds from POST to the job seen done (polled every 10 ms)."""
    t0 = time.perf_counter()
    job = http.post(url + "/v1/generate", json=body).json()["id"]
    while http.get(f"{url}/v1/jobs/{job}").json()["status"] != "done":
        time.sleep(0.01)
    return time.perf_counter() - t0


def boundary_cost(steps: int, model: str | None, jobs: int = 20) -> dict:
    """The per-job cost of the worker process: a process-isolated and a thread service side by side, one job at a
    time, alternating between them (so both see the same machine), `jobs` each after one warm-up job."""
    import httpx

    body = {"prompt": PROMPT, "steps": steps, "outputs": ["rgb", "depth", "json"]}
    with tempfile.TemporaryDirectory() as tmp, \
            Server(Path(tmp) / "p", 2, model=model, extra=["--isolation", "process"]) as proc, \
            Server(Path(tmp) / "t", 2, model=model, extra=["--isolation", "thread"]) as thread, \
            httpx.Client(timeout=60) as http:
        times: dict[str, list[float]] = {"process": [], "thread": []}
        for k in range(jobs + 1):
            for name, server in (("process", proc), ("thread", thread)) if k % 2 else (("thread", thread),
                                                                                      ("process", proc)):
                t = one_job(http, server.url, body)
                if k:
                    times[name].append(t)
    med = {name: statistics.median(v) for name, v in times.items()}
    return {"jobs": jobs, "steps": steps, "median_s": med, "process_over_thread": med["process"] / med["thread"],
            "seconds": times}


def measure(requests: int = 50, clients: int = 10, queue_size: int = 2, steps: int = 10, model: str | None = None,
            results: Path | None = None, isolation: str = "process") -> dict:
    import httpx

    body = {"prompt": PROMPT, "steps": steps, "outputs": ["rgb", "depth", "json"]}
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(results or tmp)
        with Server(results, queue_size, model=model, extra=["--isolation", isolation]) as server:
            # one job first, so compile caches and allocator pools are warm before "before"
            job = httpx.post(server.url + "/v1/generate", json=body).json()["id"]
            for _ in range(600):
                if httpx.get(f"{server.url}/v1/jobs/{job}").json()["status"] == "done":
                    break
                time.sleep(0.1)
            scenarios = {}
            for name, retries in (("take the 429", 0), ("wait Retry-After, retry (up to 30 times)", 30)):
                before, anon = rss_mb(server.proc.pid), rss_mb(server.proc.pid, "RssAnon")
                load = run_load(server.url, requests, clients, body, retries=retries)
                time.sleep(0.5)
                scenarios[name] = {**load, "rss_before_mb": before, "rss_after_mb": rss_mb(server.proc.pid),
                                   "anon_before_mb": anon, "anon_after_mb": rss_mb(server.proc.pid, "RssAnon")}
            on_disk = sorted(p.name for p in results.iterdir())
            health = httpx.get(server.url + "/v1/health").json()
    return {"requests": requests, "clients": clients, "scenarios": scenarios, "queue_size": queue_size,
            "workers": 1, "body": body, "model": model or "embedded", "files_on_disk": len(on_disk),
            "health_after": health, "isolation": isolation, "machine": machine()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--queue-size", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--model", help="artifact folder (default: the embedded model)")
    ap.add_argument("--out", default="benchmarks/results/serve-load")
    a = ap.parse_args(argv)
    runs = {iso: measure(a.requests, a.clients, a.queue_size, a.steps, a.model, isolation=iso)
            for iso in ("process", "thread")}
    cost = boundary_cost(a.steps, a.model)
    text = "\n".join(f"## Model workers: {iso}\n\n" + markdown(r) for iso, r in runs.items())
    text += (f"\n## The worker process's cost per job\n\nOne job at a time, alternating between a process-isolated "
             f"and a thread service ({cost['jobs']} jobs each, {cost['steps']} steps, polled every 10 ms): median "
             f"{cost['median_s']['process']:.3f} s vs {cost['median_s']['thread']:.3f} s, ratio "
             f"{cost['process_over_thread']:.3f}. {runs['process']['machine']['cpu']}.\n")
    write_results(Path(a.out), {"runs": runs, "boundary_cost": cost}, text)
    return 0 if all(s["server_errors"] == 0 and not s["exceptions"] for r in runs.values()
                    for s in r["scenarios"].values()) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
