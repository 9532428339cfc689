"""The viewer end to end in headless Chromium (Debian's `chromium`, driven by Playwright; .ci/run installs it):
load /, generate on the embedded model, wait for the result, check that the WebGL canvas shows a picture and that
the depth slider changes it; then a 360-degree panorama, turned by a one-finger touch drag and walked in with
the keyboard and a (scripted) gamepad, never past the safe radius. Every request outside 127.0.0.1 is blocked
and recorded: none may happen. The pages run under the server's Content-Security-Policy (no 'unsafe-eval'), so
the waits are functions: Playwright evals a bare expression string, which that policy blocks. Screenshots go to
test-artifacts/viewer/ (or $LDM3D_TEST_ARTIFACTS)."""

import io
import os
import shutil
import time
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
    from benchmarks.serve_load import Server

    outside, errors = [], []
    with Server(tmp_path, queue_size=2) as server, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 960, "height": 600}, has_touch=True)
        # a gamepad whose stick the test moves (navigator.getGamepads is what the viewer polls each frame)
        context.add_init_script("window.__pad = {id: 'test pad', index: 0, connected: true, mapping: 'standard', "
                                "axes: [0, 0, 0, 0], buttons: []}; navigator.getGamepads = () => [window.__pad];")

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
        page.wait_for_function("() => document.body.dataset.state === 'ready'")
        page.fill("#prompt", "a red sphere on the left in front of a blue cube on a grey floor before a white wall")
        page.click("#go")
        page.wait_for_function("() => ['loaded', 'error'].includes(document.body.dataset.state)", timeout=90_000)
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
        page.wait_for_function("() => document.body.dataset.state === 'generating'")
        page.wait_for_function("() => ['loaded', 'error'].includes(document.body.dataset.state)", timeout=90_000)
        assert page.evaluate("document.body.dataset.state") == "loaded", page.inner_text("#status")
        settle(page)
        pano = canvas_shot(page, "panorama")
        assert pano.std() > 10
        assert page.evaluate("window.ldm3dViewer.state.grid.pano") is True
        turn_by_touch(context, page, pano)
        walk_with_keys_and_gamepad(page)
        browser.close()
    assert outside == [], outside             # nothing fetched from outside this machine
    assert errors == [], errors


def turn_by_touch(context, page, before):
    """A one-finger drag across the canvas turns the view (OrbitControls, touch pointer events from Chromium)."""
    cdp = context.new_cdp_session(page)
    box = page.locator("#view canvas").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    q0 = page.evaluate("window.ldm3dViewer.camera.quaternion.toArray()")
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for k in range(1, 11):
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x + 25 * k, "y": y}]})
        settle(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    settle(page)
    q1 = page.evaluate("window.ldm3dViewer.camera.quaternion.toArray()")
    assert 1 - abs(float(np.dot(q0, q1))) > 1e-3, (q0, q1)          # the head turned
    turned = canvas_shot(page, "panorama-touch-turned")
    assert np.abs(turned - before).mean() > 1.0


def walk_with_keys_and_gamepad(page):
    """W walks forward, the gamepad's stick sideways; neither gets past the safe radius."""
    v = "window.ldm3dViewer"
    limit = page.evaluate(f"{v}.SAFE_RADIUS * {v}.state.grid.nearest")
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.evaluate(f"{v}.rig.position.set(0, 0, 0)")
    page.keyboard.down("w")
    page.wait_for_timeout(400)
    page.keyboard.up("w")
    walked = page.evaluate(f"{v}.rig.position.toArray()")
    forward = page.evaluate(f"(() => {{ const d = new {v}.camera.position.constructor(); "
                            f"{v}.camera.getWorldDirection(d); d.y = 0; return d.normalize().toArray(); }})()")
    assert 0 < np.linalg.norm(walked) < limit and float(np.dot(walked, forward)) > 0.9 * np.linalg.norm(walked)

    page.evaluate(f"{v}.rig.position.set(0, 0, 0); window.__pad.axes = [1, 0, 0, 0]")      # stick: right
    page.wait_for_timeout(400)
    page.evaluate("window.__pad.axes = [0, 0, 0, 0]")
    side = np.array(page.evaluate(f"{v}.rig.position.toArray()"))
    assert np.linalg.norm(side) > 0 and abs(float(np.dot(side, forward))) < 0.1 * np.linalg.norm(side)

    page.evaluate("window.__pad.axes = [0, -1, 0, 0]")                                       # stick: forward, long
    page.wait_for_timeout(3000)
    page.evaluate("window.__pad.axes = [0, 0, 0, 0]")
    far = page.evaluate(f"{v}.rig.position.length()")
    assert far == pytest.approx(limit, rel=1e-4)                                              # stopped at the edge


def test_viewer_opens_the_fused_scene_of_an_explore_output(embedded, tmp_path):
    """A job with the "explore" output; the gallery marks it; ?scene=explore opens its GLB as points, walkable as
    far as the walk's farthest keyframe; the button switches back to the relief."""
    import httpx

    from benchmarks.serve_load import Server

    errors = []
    with Server(tmp_path, queue_size=2) as server, playwright.sync_playwright() as p:
        job = httpx.post(server.url + "/v1/generate", json={
            "prompt": "a red sphere in front of a blue cube on a grey floor", "steps": 10, "seed": 5,
            "outputs": ["rgb", "json", "explore"]}).json()
        for _ in range(600):
            status = httpx.get(f"{server.url}/v1/jobs/{job['id']}").json()
            if status["status"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        assert status["status"] == "done", status
        listed = {it["name"]: it for it in httpx.get(server.url + "/v1/results").json()}
        assert listed[job["id"]]["explore"] == f"/v1/results/{job['id']}_explore.glb"
        walk = httpx.get(f"{server.url}/v1/results/{job['id']}_explore.json").json()
        farthest = max(np.linalg.norm(k["position"]) for k in walk["keyframes"])

        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 800, "height": 500})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}/?result={job['id']}&scene=explore")
        page.wait_for_function("() => ['loaded', 'error'].includes(document.body.dataset.state)", timeout=60_000)
        assert page.evaluate("document.body.dataset.state") == "loaded", page.inner_text("#status")
        v = "window.ldm3dViewer.state"
        assert page.evaluate(f"{v}.scene") == "explore" and page.evaluate(f"{v}.mesh.isPoints") is True
        n_points = page.evaluate(f"{v}.mesh.geometry.attributes.position.count")
        assert n_points == walk["points"]
        settle(page)
        fused = canvas_shot(page, "explore-fused")
        assert fused.std() > 20 and len(np.unique(fused.reshape(-1, 3).round(-1), axis=0)) > 50
        reach = page.evaluate(f"{v}.reach")
        relief_reach = page.evaluate(f"window.ldm3dViewer.SAFE_RADIUS * {v}.grid.nearest")
        assert reach == pytest.approx(max(farthest, relief_reach), rel=1e-5)
        assert "walk" in page.inner_text("#gallery") and page.is_visible("#scene-kind")
        page.click("#scene-kind")                                   # back to the relief: a textured mesh
        page.wait_for_function(f"() => {v}.loaded && {v}.scene === 'relief'", timeout=30_000)
        assert page.evaluate(f"{v}.mesh.isMesh") is True
        assert page.evaluate(f"{v}.reach") == pytest.approx(relief_reach, rel=1e-5)
        browser.close()
    assert errors == [], errors
