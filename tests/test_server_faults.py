"""A kiosk that survives its workers (issue 22): `ldm3d serve` in a child process on the embedded model, each model
replica in a supervised worker process. A worker killed mid-job (SIGKILL, SIGSEGV) or past its deadline fails
that job with a message and leaves none of its files; /v1/health answers throughout, /v1/ready recovers, and the
next job succeeds on a new worker pid."""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

PROMPT = "a red sphere in front of a blue cube on a grey floor"


def _wait(predicate, timeout: float, what: str, every: float = 0.05):
    t0 = time.time()
    while time.time() - t0 < timeout:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def _job(url: str, job_id: str) -> dict:
    return httpx.get(f"{url}/v1/jobs/{job_id}").json()


def _ready_pid(url: str, timeout: float = 60) -> int:
    def ready():
        r = httpx.get(url + "/v1/ready")
        return r.status_code == 200 and r.json()["workers"][0]["state"] == "idle" and r.json()["workers"][0]["pid"]
    return _wait(ready, timeout, "a ready worker", every=0.1)


def _running(url: str, job_id: str) -> None:
    _wait(lambda: _job(url, job_id)["progress"]["step"] >= 2, 60, "the job's second step")


def _files_of(results, job_id: str) -> list[str]:
    return sorted(p.name for p in results.iterdir() if p.name.startswith(job_id))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_a_worker_killed_mid_job_fails_it_and_is_replaced(embedded, tmp_path, sig, wait_job):
    from benchmarks.serve_load import Server

    results = tmp_path / "results"
    with Server(results, queue_size=2) as server, httpx.Client(base_url=server.url) as http:
        url = server.url
        pid = _ready_pid(url)
        assert pid != server.proc.pid                                    # the model is not in the HTTP process
        job = httpx.post(url + "/v1/generate", json={"prompt": PROMPT, "steps": 900, "seed": 1}).json()["id"]
        _running(url, job)
        os.kill(pid, sig)
        health = []
        status = _wait(lambda: (health.append(httpx.get(url + "/v1/health").status_code) or True)
                       and (s := _job(url, job))["status"] != "running" and s, 30, "the job to fail")
        assert status["status"] == "failed"
        assert "worker process died" in status["error"] and signal.Signals(sig).name in status["error"]
        new_pid = _ready_pid(url)
        assert new_pid != pid and set(health) == {200}
        assert _files_of(results, job) == []
        nxt = httpx.post(url + "/v1/generate", json={"prompt": PROMPT, "steps": 4, "seed": 2,
                                                     "outputs": ["rgb", "json"]}).json()["id"]
        assert wait_job(http, nxt)["status"] == "done"
        assert {f"{nxt}.json", f"{nxt}_rgb.png"} <= set(_files_of(results, nxt))
        ready = httpx.get(url + "/v1/ready").json()["workers"][0]
        assert ready["pid"] == new_pid and ready["restarts"] == 1
        metrics = httpx.get(url + "/v1/metrics").text
        assert 'ldm3d_worker_events_total{event="deaths"} 1.0' in metrics
        assert 'ldm3d_worker_events_total{event="restarts"} 1.0' in metrics
        assert 'ldm3d_jobs_total{outcome="failed"} 1.0' in metrics


def test_a_job_past_its_deadline_is_killed_and_the_worker_restarted(embedded, tmp_path, wait_job):
    from benchmarks.serve_load import Server

    results = tmp_path / "results"
    with Server(results, queue_size=2, extra=["--job-timeout", "3"]) as server, \
            httpx.Client(base_url=server.url) as http:
        url = server.url
        pid = _ready_pid(url)
        job = httpx.post(url + "/v1/generate", json={"prompt": PROMPT, "steps": 900, "seed": 1}).json()["id"]
        status = wait_job(http, job, timeout=60)
        assert status["status"] == "failed" and "deadline of 3 s" in status["error"], status
        assert _ready_pid(url) != pid and _files_of(results, job) == []
        nxt = httpx.post(url + "/v1/generate", json={"prompt": PROMPT, "steps": 4, "seed": 2}).json()["id"]
        assert wait_job(http, nxt)["status"] == "done"
        assert 'ldm3d_worker_events_total{event="deadline_kills"} 1.0' in httpx.get(url + "/v1/metrics").text


def test_sigterm_drains_the_running_job_and_exits_0(embedded, tmp_path):
    from benchmarks.serve_load import Server

    results = tmp_path / "results"
    with Server(results, queue_size=2) as server:
        url = server.url
        _ready_pid(url)
        job = httpx.post(url + "/v1/generate", json={"prompt": PROMPT, "steps": 120, "seed": 1,
                                                     "outputs": ["rgb", "json"]}).json()["id"]
        _running(url, job)
        t0 = time.time()
        server.proc.send_signal(signal.SIGTERM)
        refused = _wait(lambda: (r := httpx.post(url + "/v1/generate", json={"prompt": PROMPT})).status_code == 503
                        and r, 10, "new jobs to be refused")
        assert int(refused.headers["Retry-After"]) > 0 and "shutting down" in refused.json()["error"]
        assert httpx.get(url + "/v1/health").status_code == 200          # still answering while it drains
        assert server.proc.wait(60) == 0 and time.time() - t0 < 30
    assert {f"{job}.json", f"{job}_rgb.png"} <= set(_files_of(results, job))   # the job finished, whole


def test_sigterm_past_the_drain_time_cancels_the_job_and_removes_its_files(embedded, tmp_path):
    from benchmarks.serve_load import Server

    results = tmp_path / "results"
    with Server(results, queue_size=2, extra=["--drain-seconds", "1"]) as server:
        url = server.url
        _ready_pid(url)
        job = httpx.post(url + "/v1/generate", json={"prompt": PROMPT, "steps": 900, "seed": 1}).json()["id"]
        _running(url, job)
        t0 = time.time()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0 and time.time() - t0 < 15
    assert _files_of(results, job) == []


def test_a_server_killed_mid_job_leaves_nothing_partial_after_a_restart(embedded, tmp_path, wait_job):
    """SIGKILL to the service mid-job (its job's files are staged, not in the folder), plus what a power cut would
    leave (an atomic write's temporary file, a result moved in without its sidecar); the next start removes
    all of it, keeps the finished result and the user's own file, and lists only the finished result."""
    from PIL import Image

    from benchmarks.serve_load import Server

    results = tmp_path / "results"
    with Server(results, queue_size=2) as server, httpx.Client(base_url=server.url) as http:
        url = server.url
        pid = _ready_pid(url)
        done = httpx.post(url + "/v1/generate", json={"prompt": PROMPT, "steps": 4, "seed": 2}).json()["id"]
        assert wait_job(http, done)["status"] == "done"
        job = httpx.post(url + "/v1/generate", json={"prompt": PROMPT, "steps": 900, "seed": 1}).json()["id"]
        _running(url, job)
        assert (results / f".job-{job}").is_dir()                    # its files are staged, not in the folder
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        _wait(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z",
              30, "the orphaned worker to stop")
    # the orphaned worker saw its service gone and cancelled, removing its staging folder; a power cut kills
    # both: plant what that leaves
    orphan = "0123456789abcdef0123456789abcdef"
    (results / f".job-{orphan}").mkdir()
    Image.fromarray(_png()).save(results / f".job-{orphan}" / f"{orphan}_rgb.png")   # staged, never moved
    Image.fromarray(_png()).save(results / f"{orphan}_rgb.png")            # moved in, its sidecar never was
    (results / f".{done}_rgb.k2j4h5g6.png").write_bytes(b"\x89PNG half")     # an interrupted atomic write
    (results / "notes.txt").write_text("the kiosk owner's file")
    with Server(results, queue_size=2) as server:
        names = [it["name"] for it in httpx.get(server.url + "/v1/results").json()]
    assert names == [done]
    left = sorted(p.name for p in results.iterdir())
    assert "notes.txt" in left and f"{done}.json" in left and f"{done}_rgb.png" in left
    assert not [n for n in left if n.startswith(".") or n.startswith(orphan) or n.startswith(job)], left


def _png():
    import numpy as np

    return np.zeros((8, 8, 3), np.uint8)


def test_a_results_disk_that_fills_up_fails_the_job_cleanly_and_the_service_goes_on(embedded, tmp_path, wait_job):
    """RLIMIT_FSIZE stands in for a full disk (Python ignores SIGXFSZ, so a write past it fails with EFBIG): a
    job whose GLB does not fit fails with that error and leaves no file; a small job after it succeeds."""
    import resource

    from benchmarks.serve_load import Server

    limit = 300 * 1024                  # the 128^2 RGB, depth and f32 fit; the GLB (0.7 MB) does not

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    results = tmp_path / "results"
    with Server(results, queue_size=2, preexec_fn=small_files) as server, httpx.Client(base_url=server.url) as http:
        url = server.url
        _ready_pid(url)
        big = httpx.post(url + "/v1/generate", json={"prompt": PROMPT, "steps": 3, "outputs": ["rgb", "glb"]}).json()
        status = wait_job(http, big["id"])
        assert status["status"] == "failed" and "File too large" in status["error"], status
        assert _files_of(results, big["id"]) == [] and not list(results.glob(".job-*"))
        assert httpx.get(url + "/v1/health").status_code == 200
        small = httpx.post(url + "/v1/generate", json={"prompt": PROMPT, "steps": 3, "outputs": ["rgb", "json"]})
        assert wait_job(http, small.json()["id"])["status"] == "done"


def test_a_worker_that_dies_between_jobs_is_replaced_before_the_next_one(embedded, tmp_path, wait_job):
    from benchmarks.serve_load import Server

    with Server(tmp_path / "results", queue_size=2) as server, httpx.Client(base_url=server.url) as http:
        url = server.url
        pid = _ready_pid(url)
        os.kill(pid, signal.SIGKILL)                    # idle: no job to fail
        _wait(lambda: _ready_pid(url) != pid, 60, "a new worker")    # noticed between jobs, replaced
        job = httpx.post(url + "/v1/generate", json={"prompt": PROMPT, "steps": 3}).json()["id"]
        assert wait_job(http, job)["status"] == "done"
        assert 'ldm3d_worker_events_total{event="deaths"} 1.0' in httpx.get(url + "/v1/metrics").text


def test_a_failing_restart_is_retried_without_counting_more_deaths(embedded, tmp_path):
    """The worker dies while idle and its model folder is gone, so restarts fail: /v1/ready-style state reads
    "down", the death is counted once (not once per retry), and once the folder is back a retry brings the
    worker up again."""
    from ldm3d_edge.server.jobs import JobManager
    from ldm3d_edge.server.workers import ProcessRunner

    folder = tmp_path / "model"
    shutil.copytree(embedded[0], folder)
    manager = JobManager(lambda: ProcessRunner(folder, None, "openvino:CPU", verify=False), tmp_path / "results")
    try:
        pid = manager.readiness()["workers"][0]["pid"]
        folder.rename(tmp_path / "away")
        os.kill(pid, signal.SIGKILL)
        _wait(lambda: manager.readiness()["workers"][0]["state"] == "down", 30, "the failed restart")
        time.sleep(4)                                    # back-off 1, 2 s: more retries fail meanwhile
        assert manager.worker_events == {"restarts": 0, "deaths": 1, "deadline_kills": 0}
        (tmp_path / "away").rename(folder)
        _wait(lambda: manager.readiness()["ready"], 60, "a worker again")
        assert manager.readiness()["workers"][0]["pid"] not in (None, pid)
        assert manager.worker_events == {"restarts": 1, "deaths": 1, "deadline_kills": 0}
    finally:
        manager.close()
