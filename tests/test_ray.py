"""Scale-out on a local Ray cluster on this machine: jobs of the HTTP service run on Ray Serve replicas; killing the
replica mid-job fails that job cleanly while the service keeps answering, and Serve's new replica takes the next
job; `batch` fans a prompts file out over two Ray actors."""

import json
import os
import signal
import time

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.serve")
pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from ldm3d_edge.server import ray_serve as R  # noqa: E402
from ldm3d_edge.server.app import create_app  # noqa: E402
from ldm3d_edge.server.jobs import JobManager  # noqa: E402

PROMPT = "a red sphere on the left in front of a blue cube on a grey floor before a white wall"




def test_batch_fans_prompts_out_over_two_ray_actors(embedded, tmp_path):
    R.init_ray(num_cpus=4)
    try:
        prompts = ["a red sphere on a grey floor", "a blue cube on a beige floor", "a green cone under a blue sky",
                   "a yellow torus on a dark floor"]
        rows = R.batch(prompts, tmp_path, embedded[0], embedded[1], replicas=2, device="openvino:CPU",
                       settings={"steps": 10, "seed": 0, "pano": False, "outputs": ["rgb", "depth", "json"]})
    finally:
        R.shutdown()
    assert [r["prompt"] for r in rows] == prompts
    assert len({r["pid"] for r in rows}) == 2 and os.getpid() not in {r["pid"] for r in rows}
    for r in rows:
        info = json.loads((tmp_path / r["files"]["json"]).read_text())
        assert info["prompt"] == r["prompt"] and (tmp_path / r["files"]["rgb"]).is_file()


@pytest.fixture(scope="module")
def ray_service(embedded, tmp_path_factory):
    results = tmp_path_factory.mktemp("ray-results")
    R.init_ray(num_cpus=2)
    handle, board = R.deploy(embedded[0], embedded[1], "openvino:CPU", min_replicas=1, max_replicas=1)
    manager = JobManager(lambda: R.RayRunner(handle, board), results, workers=1, queue_size=2)
    client = TestClient(create_app(manager, results, model_name="tiny-on-ray"), client=("127.0.0.1", 5000))
    yield client, handle, results
    manager.close()
    R.shutdown()


def test_jobs_run_on_ray_serve_replicas(ray_service, wait_job):
    client, handle, results = ray_service
    job = client.post("/v1/generate", json={"prompt": PROMPT, "steps": 10, "seed": 2}).json()
    s = wait_job(client, job["id"])
    assert s["status"] == "done", s
    assert s["progress"] == {"step": 10, "steps": 10}
    info = client.get(s["links"]["json"]).json()
    assert info["seed"] == 2 and info["job"] == job["id"]
    assert handle.pid.remote().result() != os.getpid()       # generated in the replica's process


def test_killing_the_replica_mid_job_fails_the_job_and_the_service_recovers(ray_service, wait_job):
    client, handle, results = ray_service
    pid = handle.pid.remote().result()
    job = client.post("/v1/generate", json={"prompt": PROMPT, "steps": 500}).json()
    t0 = time.time()
    while client.get(f"/v1/jobs/{job['id']}").json()["progress"]["step"] < 10 and time.time() - t0 < 60:
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)                              # the replica dies mid-job (step 10 or later of 500)
    s = wait_job(client, job["id"])
    assert s["status"] == "failed" and "Ray replica" in s["error"], s
    print("error after the kill:", s["error"][:200], "at step", s["progress"]["step"])
    assert 10 <= s["progress"]["step"] < 500 and "died" in s["error"].lower(), s
    assert not list(results.glob(job["id"] + "*"))            # no half-written result
    assert client.get("/v1/health").json()["status"] == "ok"  # the service keeps answering
    again = client.post("/v1/generate", json={"prompt": PROMPT, "steps": 10}).json()
    assert wait_job(client, again["id"], timeout=180)["status"] == "done"   # on the replica Serve started instead
    assert handle.pid.remote().result() != pid


def test_ray_jobs_report_progress_and_cancel_mid_run(ray_service, wait_job):
    client, handle, results = ray_service
    pid = handle.pid.remote().result()
    job = client.post("/v1/generate", json={"prompt": PROMPT, "steps": 500}).json()
    t0 = time.time()
    step = 0
    while time.time() - t0 < 60 and step < 20:
        step = client.get(f"/v1/jobs/{job['id']}").json()["progress"]["step"]
        time.sleep(0.1)
    assert 20 <= step < 500                                   # steps arrive while it runs
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    s = wait_job(client, job["id"])
    assert s["status"] == "cancelled" and s["progress"]["step"] < 500, s
    assert not list(results.glob(job["id"] + "*"))
    assert handle.pid.remote().result() == pid                 # the replica lived on
