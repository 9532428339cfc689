"""Shared fixtures: tiny random-weight LDM3D checkpoints (4- and 6-channel VAE), exported in both formats."""

from __future__ import annotations

import os
import time

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def ov_cache(tmp_path_factory):
    """Every test (and every CLI it starts) caches under the run's temp folder, never in the user's
    ~/.cache/ldm3d-edge: compiled blobs of throw-away models would pile up there run after run."""
    d = tmp_path_factory.mktemp("ov-cache")
    os.environ["LDM3D_EDGE_CACHE"] = str(d)
    return d


def _tiny(tmp_path_factory, channels: int):
    pytest.importorskip("torch")
    from ldm3d_edge.export import export_pipeline
    from ldm3d_edge.export.random_model import build_tiny_pipeline

    root = tmp_path_factory.mktemp(f"tiny{channels}c")
    src = build_tiny_pipeline(root / "checkpoint", vae_channels=channels, seed=channels)
    art = root / "artifacts"
    export_pipeline(src, art, fmt="both", progress=False)
    return src, art


@pytest.fixture(scope="session")
def tiny4(tmp_path_factory, ov_cache):
    """(diffusers checkpoint folder, artifact folder) of a tiny 4-channel-VAE LDM3D."""
    return _tiny(tmp_path_factory, 4)


@pytest.fixture(scope="session")
def tiny6(tmp_path_factory, ov_cache):
    """(diffusers checkpoint folder, artifact folder) of a tiny 6-channel-VAE LDM3D (original Intel/ldm3d)."""
    return _tiny(tmp_path_factory, 6)


@pytest.fixture(scope="session")
def embedded(ov_cache):
    """(perspective artifacts, panorama artifacts, diffusers folder) of the embedded model: the shipped IR, one
    folder serving both sizes."""
    from ldm3d_edge.embedded import embedded_artifacts

    return embedded_artifacts(progress=False)


@pytest.fixture(scope="session")
def cpu_bf16() -> bool:
    """Whether this CPU runs bf16 (OpenVINO's optimization capabilities): with it the bf16 hint must change the
    output a little; without it OpenVINO runs f32 and the output must not change at all."""
    from ldm3d_edge.runtime.backends.openvino_backend import core

    return "BF16" in core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@pytest.fixture
def wait_job():
    """wait_job(client, job_id, until=final states, timeout) -> the job's status JSON once it reaches `until`."""
    def wait(client, job_id, until=("done", "failed", "cancelled"), timeout=120):
        t0 = time.time()
        while time.time() - t0 < timeout:
            s = client.get(f"/v1/jobs/{job_id}").json()
            if s["status"] in until:
                return s
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} still {s['status']} after {timeout} s")
    return wait


def pytest_sessionfinish(session, exitstatus):
    """With LDM3D_NO_SKIPS=1 (.ci/run sets it) a skipped test fails the run: a renamed chromium binary or a
    missing header must not silently drop the browser or native tests. The reasons are listed by -rs."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("LDM3D_NO_SKIPS") == "1" and skipped and exitstatus == 0:
        if reporter:
            reporter.write_line(f"LDM3D_NO_SKIPS=1: {skipped} test(s) skipped; the run fails (reasons above)",
                                red=True)
        session.exitstatus = 1
