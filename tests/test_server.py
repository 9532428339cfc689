"""The HTTP service in process (FastAPI's TestClient): jobs run and report progress, results are served, bad
input is a 4xx naming the field with nothing written, the queue refuses with 429 + Retry-After, cancel works,
a failing job reports why and the service keeps answering, the API key guards requests from off the machine."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from ldm3d_edge.runtime.errors import Ldm3dError  # noqa: E402
from ldm3d_edge.server.app import create_app  # noqa: E402
from ldm3d_edge.server.generation import Models, Runner, generate_job  # noqa: E402
from ldm3d_edge.server.jobs import JobManager  # noqa: E402
from ldm3d_edge.server.schema import GenerateRequest  # noqa: E402

PROMPT = "a red sphere on the left in front of a blue cube on a grey floor before a white wall"


class GatedModels(Runner):
    """Real models behind a gate: a job waits at its first step until the test opens the gate; 'fail' in the prompt
    raises inside the pipeline, like a broken model would."""

    def __init__(self, artifacts):
        self.real = Models(artifacts, None, "openvino:CPU")
        self.gate = threading.Event()
        self.gate.set()

    def run(self, job_id, request, results_dir, on_step, cancelled):
        return generate_job(self, job_id, request, results_dir, on_step)

    def pick(self, pano):
        real = self.real.pick(pano)
        gate = self.gate

        class Gated:
            def __getattr__(self, name):     # everything but the call is the real pipeline's
                return getattr(real, name)

            def __call__(self, prompt, callback=None, **kw):
                if "fail" in prompt:
                    raise RuntimeError("the model broke")

                def cb(i, t, latents):
                    if i == 0:
                        gate.wait(30)
                    return callback(i, t, latents) if callback else None
                return real(prompt, callback=cb, **kw)
        return Gated()


@pytest.fixture(scope="module")
def service(tiny4, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    models = GatedModels(tiny4[1])
    manager = JobManager(lambda: models, results, workers=1, queue_size=2)
    client = TestClient(create_app(manager, results, model_name="tiny"), client=("127.0.0.1", 5000))
    yield client, manager, models, results
    manager.close()




def test_generate_reports_progress_and_serves_every_file(service, wait_job):
    client, manager, models, results = service
    r = client.post("/v1/generate", json={"prompt": PROMPT, "steps": 6, "seed": 3, "outputs": ["rgb", "depth", "json",
                                                                                              "glb"]})
    assert r.status_code == 200, r.text
    job = r.json()
    s = wait_job(client, job["id"])
    assert s["status"] == "done" and s["progress"] == {"step": 6, "steps": 6}
    assert set(s["files"]) == {"rgb", "depth", "json", "glb", "depth_f32"}
    info = client.get(s["links"]["json"]).json()
    assert info["seed"] == 3 and info["camera"]["model"] == "pinhole" and info["job"] == job["id"]
    raw = client.get(s["links"]["depth_f32"]).content
    depth = np.frombuffer(raw, "<f4").reshape(info["height"], info["width"])
    import io

    from PIL import Image
    png = np.asarray(Image.open(io.BytesIO(client.get(s["links"]["depth"]).content)), np.float32) / 65535
    assert np.abs(depth - png).max() <= 0.5 / 65535 + 1e-7        # the float data is the full-precision depth
    assert client.get(s["links"]["glb"]).content[:4] == b"glTF"
    listed = client.get("/v1/results").json()
    assert any(it["name"] == job["id"] for it in listed)


def test_the_explore_output_walks_into_the_result(service, wait_job):
    """outputs ["explore"]: a bounded walk (4 keyframes completed by inpainting) served as GLB points, MP4, JSON."""
    client, *_ = service
    r = client.post("/v1/generate", json={"prompt": PROMPT, "steps": 4, "seed": 5, "outputs": ["rgb", "json",
                                                                                              "explore"]})
    assert r.status_code == 200, r.text
    s = wait_job(client, r.json()["id"])
    assert s["status"] == "done", s
    assert {"explore_glb", "explore_mp4", "explore_json"} <= set(s["files"])
    rec = client.get(s["links"]["explore_json"]).json()
    assert rec["job"] == s["id"] and len(rec["keyframes"]) == 4
    assert all(k["unseen_after"] == 0 for k in rec["keyframes"])
    assert client.get(s["links"]["explore_glb"]).content[:4] == b"glTF"
    assert len(client.get(s["links"]["explore_mp4"]).content) > 1000


BAD = [
    (None, "body"),                                          # empty body
    ("not json", "JSON"),
    ({"prompt": 5}, "prompt"),
    ({"prompt": PROMPT, "steps": "ten"}, "steps"),
    ({"prompt": "x" * 10_001}, "prompt"),
    ({"prompt": "   "}, "prompt"),
    ({"prompt": PROMPT, "steps": 0}, "steps"),
    ({"prompt": PROMPT, "steps": 10_000}, "steps"),
    ({"prompt": PROMPT, "width": 100}, "width"),
    ({"prompt": PROMPT, "height": 4096}, "height"),
    ({"prompt": PROMPT, "seed": -1}, "seed"),
    ({"prompt": PROMPT, "outputs": ["rgb", "stl"]}, "outputs"),
    ({"prompt": PROMPT, "guidance": "high"}, "guidance"),
    ({"prompt": PROMPT, "colour": "red"}, "colour"),
]


@pytest.mark.parametrize("body,field", BAD, ids=[f for _, f in BAD])
def test_bad_input_is_a_4xx_naming_the_field_and_writes_nothing(service, body, field):
    client, manager, models, results = service
    before = sorted(p.name for p in results.iterdir())
    jobs_before = len(manager.jobs)
    if body is None:
        r = client.post("/v1/generate")
    elif isinstance(body, str):
        r = client.post("/v1/generate", content=body, headers={"content-type": "application/json"})
    else:
        r = client.post("/v1/generate", json=body)
    assert 400 <= r.status_code < 500, r.text
    assert field in r.json()["error"], r.json()
    assert sorted(p.name for p in results.iterdir()) == before and len(manager.jobs) == jobs_before


@pytest.mark.parametrize("name", ["../secret.json", "..%2Fsecret.json", "..%2F..%2Fetc%2Fpasswd", "..json",
                                  "x.py", "a/b_rgb.png", "%2e%2e%2fsecret.json", "%2E%2E/secret.json",
                                  "..%5Csecret.json", "%2e%2e%5csecret.json", ".%2e/secret.json",
                                  "secret.json%00_rgb.png", "..%252Fsecret.json", "%2Ftmp%2Fsecret.json"])
def test_result_names_cannot_leave_the_results_folder(service, name):
    """A secret file right beside the results folder, readable by the service: no name reaches it, however it is
    spelled (a 404 alone would not show that: the content is checked)."""
    client, *_, results = service
    secret = results.parent / "secret.json"
    secret.write_text('{"the": "kiosk owner\'s secret"}')
    try:
        r = client.get(f"/v1/results/{name}")
        assert r.status_code in (400, 404, 422), (name, r.status_code)
        assert "kiosk owner" not in r.text and "error" in r.json()
    finally:
        secret.unlink()


def test_full_queue_answers_429_with_retry_after_and_cancel_works(service, wait_job):
    client, manager, models, results = service
    models.gate.clear()                                   # the worker blocks at the first step of the next job
    try:
        running = client.post("/v1/generate", json={"prompt": PROMPT, "steps": 4}).json()
        wait_job(client, running["id"], until=("running",))
        queued = [client.post("/v1/generate", json={"prompt": PROMPT, "steps": 4}) for _ in range(2)]
        assert all(r.status_code == 200 for r in queued)
        refused = client.post("/v1/generate", json={"prompt": PROMPT, "steps": 4})
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        rejected_before = manager.counts["rejected"]
        metrics = client.get("/v1/metrics").text
        assert "ldm3d_queue_depth 2.0" in metrics
        assert f'ldm3d_jobs_total{{outcome="rejected"}} {float(rejected_before)}' in metrics and rejected_before >= 1
        assert client.post("/v1/generate", json={"prompt": PROMPT, "steps": 4}).status_code == 429
        assert f'ldm3d_jobs_total{{outcome="rejected"}} {rejected_before + 1.0}' in client.get("/v1/metrics").text
        # cancel one waiting job and the running one
        c1 = client.post(f"/v1/jobs/{queued[0].json()['id']}/cancel").json()
        assert c1["status"] == "cancelled"
        client.post(f"/v1/jobs/{running['id']}/cancel")
    finally:
        models.gate.set()
    assert wait_job(client, running["id"])["status"] == "cancelled"
    assert wait_job(client, queued[1].json()["id"])["status"] == "done"
    assert not list(results.glob(running["id"] + "*"))  # a cancelled job leaves no files
    assert client.post("/v1/jobs/nope/cancel").status_code == 404
    # DELETE forgets a job: 404 from then on
    assert client.delete(f"/v1/jobs/{queued[1].json()['id']}").json()["status"] == "done"
    assert client.get(f"/v1/jobs/{queued[1].json()['id']}").status_code == 404
    assert client.delete(f"/v1/jobs/{queued[1].json()['id']}").status_code == 404


def test_a_failing_job_reports_why_and_the_service_keeps_going(service, wait_job):
    client, manager, *_ = service
    bad = client.post("/v1/generate", json={"prompt": "please fail", "steps": 3}).json()
    s = wait_job(client, bad["id"])
    assert s["status"] == "failed" and "the model broke" in s["error"]
    ok = client.post("/v1/generate", json={"prompt": PROMPT, "steps": 3}).json()
    assert wait_job(client, ok["id"])["status"] == "done"
    assert client.get("/v1/health").json()["status"] == "ok"
    assert 'ldm3d_jobs_total{outcome="failed"} 1.0' in client.get("/v1/metrics").text


def test_a_job_failing_after_its_pngs_and_sidecar_leaves_no_file(service, wait_job, monkeypatch):
    """The GLB writer fails after the RGB, depth, sidecar and f32 files exist: none of them may remain."""
    import ldm3d_edge.generate as generate_module

    client, manager, models, results = service
    seen = []

    def broken_write_3d(rgbd, prefix, **kw):
        seen.extend(p.name for p in prefix.parent.iterdir())
        raise OSError("disk gone while writing the GLB")

    monkeypatch.setattr(generate_module, "write_3d", broken_write_3d)
    job = client.post("/v1/generate", json={"prompt": PROMPT, "steps": 3, "outputs": ["rgb", "glb"]}).json()["id"]
    s = wait_job(client, job)
    assert s["status"] == "failed" and "disk gone while writing the GLB" in s["error"]
    assert {f"{job}_rgb.png", f"{job}.json", f"{job}_depth.f32"} <= set(seen)    # they had been written
    assert not [p.name for p in results.iterdir() if job in p.name]


class _Raising(Runner):
    """A runner whose first job raises what is not an Exception (SystemExit), then runs jobs normally."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def run(self, job_id, request, results_dir, on_step, cancelled):
        self.calls += 1
        if self.calls == 1:
            raise SystemExit("a library called sys.exit")
        return self.inner.run(job_id, request, results_dir, on_step, cancelled)


def test_a_runner_raising_a_base_exception_fails_the_job_and_the_worker_goes_on(tiny4, tmp_path):
    manager = JobManager(lambda: _Raising(Models(tiny4[1], None, "openvino:CPU")), tmp_path, workers=1)
    try:
        first = manager.submit(GenerateRequest(prompt=PROMPT, steps=2))
        second = manager.submit(GenerateRequest(prompt=PROMPT, steps=2))
        t0 = time.time()
        while second.status not in ("done", "failed") and time.time() - t0 < 60:
            time.sleep(0.05)
        assert first.status == "failed" and "SystemExit: a library called sys.exit" in first.error
        assert second.status == "done" and manager.running == 0
    finally:
        manager.close()


def test_a_model_that_fails_to_load_stops_the_start_with_its_reason(tmp_path):
    from ldm3d_edge.server.workers import ProcessRunner

    folder = tmp_path / "not-a-model"
    folder.mkdir()
    for load in (lambda: Models(folder, None, "openvino:CPU"), lambda: ProcessRunner(folder, None, "openvino:CPU")):
        with pytest.raises(Ldm3dError, match="could not load the model: .*manifest.json"):
            JobManager(load, tmp_path / "results", workers=1)


def test_openapi_schema_and_viewer_are_served(service):
    client, *_ = service
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) == {"/v1/generate", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel", "/v1/results",
                          "/v1/results/{file}", "/v1/health", "/v1/ready", "/v1/metrics"}
    for path, ops in paths.items():          # the statuses any route can answer, each with its error body
        for op in ops.values():
            assert {"200", "401", "413"} <= set(op["responses"]), path
            for code, answer in op["responses"].items():
                if code.startswith(("4", "5")) and path != "/v1/ready":
                    assert answer["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert set(paths["/v1/generate"]["post"]["responses"]) == {"200", "400", "401", "413", "422", "429", "503", "507"}
    assert {"404", "422"} <= set(paths["/v1/results/{file}"]["get"]["responses"])
    # the rules the server enforces are in the schema
    body = schema["components"]["schemas"]["GenerateRequest"]["properties"]
    assert body["height"]["anyOf"][0] == {"type": "integer", "minimum": 8, "maximum": 2048, "multipleOf": 8}
    assert body["steps"]["maximum"] == 999 and body["prompt"]["pattern"] and body["prompt"]["maxLength"] == 10000
    (param,) = paths["/v1/results/{file}"]["get"]["parameters"]
    assert param["schema"]["pattern"].endswith("_explore\\.json)$") and param["schema"]["maxLength"] == 240
    page = client.get("/").text
    assert "/static/vendor/three/three.module.js" in page and "http" not in page.replace("http-equiv", "")
    assert client.get("/static/vendor/three/three.module.js").status_code == 200


def test_api_key_guards_requests_from_off_this_machine(tiny4, tmp_path):
    app = create_app(None, tmp_path, api_key="s3cret")
    remote = TestClient(app, client=("203.0.113.7", 5000))
    assert remote.get("/v1/health").status_code == 401
    assert remote.post("/v1/generate", json={"prompt": PROMPT}).status_code == 401
    assert remote.get("/v1/health", headers={"X-API-Key": "s3cret"}).status_code == 200
    local = TestClient(app, client=("127.0.0.1", 5000))
    assert local.get("/v1/health").status_code == 200
    r = local.post("/v1/generate", json={"prompt": PROMPT})       # viewer-only service: no model
    assert r.status_code == 503 and "viewer only" in r.json()["error"]
    assert list(tmp_path.iterdir()) == []


def test_ldm3d_view_serves_one_result_without_a_model(tmp_path):
    """`ldm3d view` in a child process on a result written like `ldm3d generate` does (no _depth.f32: it is made
    from the 16-bit PNG at full precision)."""
    import socket
    import subprocess
    import sys

    import httpx
    from PIL import Image

    rng = np.random.default_rng(0)
    d16 = rng.integers(0, 65536, (24, 32)).astype(np.uint16)
    Image.fromarray(rng.integers(0, 256, (24, 32, 3)).astype(np.uint8)).save(tmp_path / "scene_rgb.png")
    Image.fromarray(d16).save(tmp_path / "scene_depth.png")
    (tmp_path / "scene.json").write_text(json.dumps({"prompt": "p", "width": 32, "height": 24}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "ldm3d_edge.cli", "view", str(tmp_path / "scene"), "--port",
                             str(port), "--no-browser"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(url + "/v1/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert httpx.get(url + "/v1/health").json()["generate"] is False
        assert "importmap" in httpx.get(url + "/?result=scene").text
        raw = httpx.get(url + "/v1/results/scene_depth.f32").content
        np.testing.assert_array_equal(np.frombuffer(raw, "<f4").reshape(24, 32), d16.astype(np.float32) / 65535)
        assert [it["name"] for it in httpx.get(url + "/v1/results").json()] == ["scene"]
        assert httpx.post(url + "/v1/generate", json={"prompt": "x"}).status_code == 503
    finally:
        proc.terminate()
        proc.wait(10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.json", "scene_depth.png", "scene_rgb.png"]


def test_ldm3d_view_explore_needs_the_fused_scene(tmp_path, capsys):
    from PIL import Image

    from ldm3d_edge.cli import main

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "scene_rgb.png")
    Image.fromarray(np.zeros((8, 8), np.uint16)).save(tmp_path / "scene_depth.png")
    assert main(["view", str(tmp_path / "scene"), "--explore", "--no-browser"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no fused scene beside scene: run 'ldm3d explore" in err[0]
