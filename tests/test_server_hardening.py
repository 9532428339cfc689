"""The service against odd clients (issue 22 item 4): a body limit before parsing, the API key compared in
constant time and optionally asked of local clients too, CORS closed unless allowed, security headers with a
Content-Security-Policy that still lets the viewer's one inline script (its import map) run."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from ldm3d_edge.server.app import VIEWER_DIR, create_app  # noqa: E402

PROMPT = "a red sphere"


class CountingManager:
    """Stands in for the JobManager: counts submissions (none may get through a refused request)."""

    def __init__(self):
        self.submitted = 0

    def submit(self, request):
        self.submitted += 1
        raise RuntimeError("not for this test")


def test_a_body_over_the_limit_is_413_before_it_is_read(tmp_path):
    manager = CountingManager()
    client = TestClient(create_app(manager, tmp_path, max_body_bytes=1000), client=("127.0.0.1", 1))  # type: ignore
    big = '{"prompt": "' + "x" * 2000 + '"}'
    r = client.post("/v1/generate", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit of 1000 bytes" in r.json()["error"]

    def chunks():                                     # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b"x" * 300

    r = client.post("/v1/generate", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = client.post("/v1/generate", content="{}", headers={"content-length": "12abc"})
    assert r.status_code == 413                       # a length that is not a number is refused too
    assert manager.submitted == 0
    # under the limit the request reaches validation as before
    assert client.post("/v1/generate", json={"prompt": ""}).status_code == 422


def test_key_for_local_asks_the_key_of_this_machine_too(tmp_path):
    app = create_app(None, tmp_path, api_key="s3cret", key_for_local=True)
    local = TestClient(app, client=("127.0.0.1", 5000))
    r = local.get("/v1/health")
    assert r.status_code == 401 and "every request needs the x-api-key header" in r.json()["error"]
    assert local.get("/v1/health", headers={"X-API-Key": "s3cret"}).status_code == 200
    assert local.get("/v1/health", headers={"X-API-Key": "s3cret "}).status_code == 401
    assert local.get("/v1/health", headers={"X-API-Key": "s3cre"}).status_code == 401


def test_cors_is_closed_unless_an_origin_is_allowed(tmp_path):
    preflight = {"Origin": "http://kiosk.example", "Access-Control-Request-Method": "POST"}
    closed = TestClient(create_app(None, tmp_path), client=("127.0.0.1", 1))
    assert "access-control-allow-origin" not in closed.options("/v1/generate", headers=preflight).headers
    assert "access-control-allow-origin" not in closed.get("/v1/health", headers={"Origin": "http://x"}).headers
    opened = TestClient(create_app(None, tmp_path, cors_origins=("http://kiosk.example",)), client=("127.0.0.1", 1))
    r = opened.options("/v1/generate", headers=preflight)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://kiosk.example"
    other = opened.options("/v1/generate", headers={**preflight, "Origin": "http://elsewhere.example"})
    assert "access-control-allow-origin" not in other.headers


def test_security_headers_and_a_csp_that_admits_only_the_viewers_import_map(tmp_path):
    client = TestClient(create_app(None, tmp_path), client=("127.0.0.1", 1))
    for path in ("/", "/v1/health", "/static/viewer.js", "/v1/results/nothing_rgb.png"):
        h = client.get(path).headers
        assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY", path
        assert h["referrer-policy"] == "no-referrer"
        csp = dict(part.strip().split(" ", 1) for part in h["content-security-policy"].split(";"))
        assert csp["default-src"] == "'self'" and csp["frame-ancestors"] == "'none'"
    (importmap,) = re.findall(r'<script type="importmap">(.*?)</script>', (VIEWER_DIR / "index.html").read_text(),
                              re.S)
    digest = base64.b64encode(hashlib.sha256(importmap.encode()).digest()).decode()
    assert csp["script-src"] == f"'self' 'sha256-{digest}'"     # no 'unsafe-inline' for scripts
