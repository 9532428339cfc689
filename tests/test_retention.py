"""A server that runs for days keeps its results folder bounded: only the newest --keep results stay, each going
whole; files of no result are never touched; no job is taken while the disk is nearly full (507, nothing
written); and metrics report both."""

from __future__ import annotations

import os
import time

import pytest

from ldm3d_edge.server.retention import DiskFull, check_free_space, prune, result_names

SUFFIXES = ["_rgb.png", "_depth.png", ".json", "_depth.f32", ".glb", ".mp4", ".ply", "_points.ply"]


def _result(folder, name, age_s):
    for s in SUFFIXES:
        p = folder / (name + s)
        p.write_bytes(b"x")
        t = time.time() - age_s
        os.utime(p, (t, t))


def test_prune_deletes_every_file_of_the_oldest_results_and_nothing_else(tmp_path):
    for i, name in enumerate(["r0", "r1", "r1_b", "r3", "r4"]):       # r4 newest; r1_b shares r1's prefix
        _result(tmp_path, name, age_s=100 - i * 10)
    strangers = ["notes.txt", "r0.txt", "lone.json", "half_rgb.png"]  # no result: a sidecar alone, an RGB alone
    for s in strangers:
        (tmp_path / s).write_bytes(b"keep me")
    assert result_names(tmp_path) == ["r4", "r3", "r1_b", "r1", "r0"]

    assert prune(tmp_path, keep=0) == [] and len(list(tmp_path.iterdir())) == 5 * len(SUFFIXES) + len(strangers)
    assert prune(tmp_path, keep=3) == ["r1", "r0"]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([n + s for n in ("r4", "r3", "r1_b") for s in SUFFIXES] + strangers)
    assert prune(tmp_path, keep=3) == []                              # nothing more to do
    assert prune(tmp_path, keep=1) == ["r3", "r1_b"] and result_names(tmp_path) == ["r4"]


def test_free_space_check_names_what_it_found_and_the_option(tmp_path):
    check_free_space(tmp_path, 0)
    check_free_space(tmp_path, 1)
    with pytest.raises(DiskFull, match=r"has \d+ MB free, below this server's minimum of 1000000000 MB "
                                       r"\(--min-free-mb\)"):
        check_free_space(tmp_path, 10**9)


@pytest.fixture(scope="module")
def bounded_service(tiny4, tmp_path_factory):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from ldm3d_edge.server.app import create_app
    from ldm3d_edge.server.generation import Models
    from ldm3d_edge.server.jobs import JobManager

    results = tmp_path_factory.mktemp("bounded-results")
    manager = JobManager(lambda: Models(tiny4[1], None, "openvino:CPU"), results, workers=1, queue_size=4, keep=2)
    yield TestClient(create_app(manager, results, model_name="tiny"), client=("127.0.0.1", 5000)), manager, results
    manager.close()


def test_the_server_keeps_only_the_newest_results(bounded_service, wait_job):
    client, manager, results = bounded_service
    ids = []
    for seed in range(4):
        r = client.post("/v1/generate", json={"prompt": "a red cube", "steps": 2, "seed": seed,
                                              "outputs": ["rgb", "depth", "json", "glb"]})
        ids.append(r.json()["id"])
        assert wait_job(client, ids[-1])["status"] == "done"
    assert [it["name"] for it in client.get("/v1/results").json()] == ids[:1:-1]     # the gallery: newest two
    for old in ids[:2]:
        assert not list(results.glob(old + "*"))
        s = client.get(f"/v1/jobs/{old}").json()
        assert s["status"] == "done" and client.get(s["links"]["rgb"]).status_code == 404
    for new in ids[2:]:
        assert len(list(results.glob(new + "*"))) == 5                # rgb, depth, json, glb, depth_f32
    assert "ldm3d_results_pruned_total 2.0" in client.get("/v1/metrics").text


def test_a_nearly_full_disk_refuses_jobs_with_507_and_writes_nothing(bounded_service, monkeypatch):
    client, manager, results = bounded_service
    before, jobs = sorted(p.name for p in results.iterdir()), len(manager.jobs)
    monkeypatch.setattr(manager, "min_free_mb", 10**9)
    r = client.post("/v1/generate", json={"prompt": "a red cube", "steps": 2})
    assert r.status_code == 507 and "--min-free-mb" in r.json()["error"]
    assert sorted(p.name for p in results.iterdir()) == before and len(manager.jobs) == jobs
    free = [ln for ln in client.get("/v1/metrics").text.splitlines() if ln.startswith("ldm3d_results_disk_free")]
    assert free and float(free[0].split()[1]) > 0
