"""The viewer end to end in headless Chromium (Debian's `chromium`, driven by Playwright; .ci/run installs it):
load /, generate on the embedded model, wait for the result, check that the WebGL canvas shows a picture and that
the depth slider changes it; then a 360-degree panorama. Every request outside 127.0.0.1 is blocked and recorded:
none may happen. Screenshots go to test-artifacts/viewer/ (or $LDM3D_TEST_ARTIFACTS)."""

import io
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

pytest.importorskip("fastapi")
playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")

ARTIFACTS = Path(os.environ.get("LDM3D_TEST_ARTIFACTS", "test-artifacts")) / "viewer"
ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox", "--disable-dev-shm-usage"]


def canvas_shot(page, name):
    from PIL import Image

    png = page.locator("#view canvas").screenshot()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.png").write_bytes(png)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)


def settle(page):
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def test_viewer_generates_shows_and_reacts_to_the_depth_slider_offline(embedded, tmp_path):
    from ldm3d_edge.benchmarks.serve_load import Server

    outside, errors = [], []
    with Server(tmp_path, queue_size=2) as server, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 960, "height": 600})

        def only_this_machine(route):
            host = urlparse(route.request.url).hostname
            if host != "127.0.0.1":
                outside.append(route.request.url)
                return route.abort()
            return route.continue_()

        context.route("**/*", only_this_machine)
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "/")
        page.wait_for_function("document.body.dataset.state === 'ready'")
        page.fill("#prompt", "a red sphere on the left in front of a blue cube on a grey floor before a white wall")
        page.click("#go")
        page.wait_for_function("['loaded', 'error'].includes(document.body.dataset.state)", timeout=90_000)
        assert page.evaluate("document.body.dataset.state") == "loaded", page.inner_text("#status")
        settle(page)
        first = canvas_shot(page, "perspective")
        # a picture, not a blank canvas: many colours, and the red sphere is there
        assert first.std() > 20 and len(np.unique(first.reshape(-1, 3).round(-1), axis=0)) > 50
        red = (first[..., 0] > 120) & (first[..., 1] < 80)
        assert red.mean() > 0.01
        page.fill("#depth-strength", "2")
        page.dispatch_event("#depth-strength", "input")
        settle(page)
        deeper = canvas_shot(page, "perspective-depth-x2")
        assert np.abs(deeper - first).mean() > 1.0        # the slider moved the relief
        assert page.locator("#gallery button").count() >= 1

        page.check("#pano")
        page.fill("#prompt", "a room with a green cone and a purple cylinder on a dark floor")
        page.click("#go")
        page.wait_for_function("document.body.dataset.state === 'generating'")
        page.wait_for_function("['loaded', 'error'].includes(document.body.dataset.state)", timeout=90_000)
        assert page.evaluate("document.body.dataset.state") == "loaded", page.inner_text("#status")
        settle(page)
        pano = canvas_shot(page, "panorama")
        assert pano.std() > 10
        assert page.evaluate("window.ldm3dViewer.state.grid.pano") is True
        browser.close()
    assert outside == [], outside             # nothing fetched from outside this machine
    assert errors == [], errors
