"""The web dashboard in real headless Chromium against the real app, store and Redis (no Ray).

The app runs under uvicorn on a loopback port; results are written into Redis through the
real store, exactly as the classifier writes them, and the page has to show them by polling.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.api.app import create_app
from pipeline.contracts import LABELS, EmotionResult
from pipeline.settings import Settings
from pipeline.store.models import CameraConfig
from pipeline.store.redis_store import RedisStore
from tests.support.live_server import serve_in_thread

pytestmark = pytest.mark.integration

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

TOKEN = "dashboard-test-token"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run",
]
XSS_NAME = "<img src=x onerror=window.__xss=1>"
REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "test-output"
# Two polls (2.5 s each) plus slack for a loaded 2-core machine.
POLL_TIMEOUT_MS = 10_000

_msg_ids = itertools.count(1)


# --------------------------------------------------------------------------- helpers
def _results(camera_id: str, labels: list[str], ts: float, track_id: int = 1) -> list[EmotionResult]:
    out = []
    for i, label in enumerate(labels):
        probs = [0.02] * len(LABELS)
        probs[LABELS.index(label)] = 0.88
        out.append(EmotionResult(
            camera_id=camera_id, frame_id=next(_msg_ids), ts=ts + i * 0.01, face_idx=0, bbox=(10, 10, 50, 50),
            probs=tuple(probs), model="emonet-s@1", track_id=track_id + i % 3,
        ))
    return out


def _record(store: RedisStore, camera_id: str, labels: list[str], ts: float | None = None) -> None:
    """Write classified faces the way the classifier does (results + their stream ids)."""
    results = _results(camera_id, labels, time.time() - 1 if ts is None else ts)
    ids = [f"{int(time.time() * 1000)}-{next(_msg_ids)}".encode() for _ in results]
    assert store.record_results(results, ids) == len(results)


def _camera(store: RedisStore, camera_id: str, name: str = "", **kw: object) -> None:
    store.add_camera(CameraConfig(id=camera_id, url=f"rtsp://127.0.0.1:8554/{camera_id}", name=name, **kw))


def _history(store: RedisStore, camera_id: str, weights: dict[str, float], now: float, seconds: int = 300) -> None:
    """Four faces a second over the last ``seconds``, drawn from a mix that drifts slowly."""
    rng = random.Random(camera_id)
    phases = {label: rng.uniform(0, 2 * math.pi) for label in weights}
    results: list[EmotionResult] = []
    for t in range(seconds, 0, -1):
        w = {lbl: max(0.0, base * (1 + 0.6 * math.sin(2 * math.pi * t / 150 + phases[lbl]))) for lbl, base in weights.items()}
        labels = rng.choices(list(w), weights=list(w.values()), k=4)
        results += _results(camera_id, labels, now - t, track_id=1 + t % 3)
    ids = [f"{int(now * 1000)}-{next(_msg_ids)}".encode() for _ in results]
    store.record_results(results, ids)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing (make install installs Debian's chromium)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()



@pytest.fixture()
def base_url(redis_url: str, store: RedisStore) -> Iterator[str]:
    settings = Settings(redis={"url": redis_url}, api={"tokens": [TOKEN]})  # type: ignore[arg-type]
    with serve_in_thread(create_app(settings, store)) as url:
        yield url


class PageRun:
    """A fresh browser context (empty localStorage) that records every request and page error."""

    def __init__(self, browser: object, base_url: str) -> None:
        self.base_url = base_url
        self.context = browser.new_context(viewport={"width": 1360, "height": 900})  # type: ignore[attr-defined]
        self.page = self.context.new_page()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append((r.url, r.headers)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: d.accept())

    def open(self, fragment: str = "") -> object:
        self.page.goto(self.base_url + "/" + fragment)
        return self.page

    def card(self, camera_id: str) -> object:
        return self.page.locator(f'article.card[data-camera-id="{camera_id}"]')


@pytest.fixture()
def run(browser: object, base_url: str) -> Iterator[PageRun]:
    r = PageRun(browser, base_url)
    yield r
    r.context.close()
    # No uncaught script errors, and everything the page loaded came from the app itself:
    # the dashboard works offline (no CDN, no fonts, no beacons).
    assert r.errors == []
    # (blob: URLs are in-page object URLs of the snapshot, minted from a response of the app)
    foreign = [u for u, _ in r.requests if not u.startswith((base_url, "blob:" + base_url))]
    assert foreign == []


def _set_token(page: object, token: str) -> None:
    page.fill("#token-input", token)  # type: ignore[attr-defined]
    page.click('#token-form button[type="submit"]')  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- tests
def test_assets_are_served_from_the_package_with_a_strict_policy(base_url: str) -> None:
    import httpx

    # given the running app, when the page and its assets are fetched without any token
    page = httpx.get(base_url + "/dashboard")
    script = httpx.get(base_url + "/ui/app.js")
    # then they are served (offline: from the package), with a CSP that forbids inline script
    assert page.status_code == 200 and "ui/app.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "uPlot" in httpx.get(base_url + "/ui/THIRD_PARTY_LICENSES.txt").text
    assert httpx.get(base_url + "/").status_code == 200
    # and nothing else of the package can be read through /ui/
    assert httpx.get(base_url + "/ui/..%2Fapp.py").status_code == 404
    assert httpx.get(base_url + "/ui/dashboard.py").status_code == 404
    # the committed bundle was built from the pinned chart library (frontend/package.json)
    pinned = json.loads((REPO / "frontend" / "package.json").read_text())["dependencies"]["uplot"]
    assert f"uplot@{pinned}" in script.text[:400]


def test_grid_shows_cameras_and_the_live_dominant_emotion(run: PageRun, store: RedisStore) -> None:
    # given two cameras, one live with 3 happy and 1 sad face, one paused
    _camera(store, "lobby", "Lobby")
    _camera(store, "gate", "Gate", enabled=False)
    store.set_health("lobby", {"state": "live", "fps_out": 4.8, "fps_in": 25.0})
    _record(store, "lobby", ["happy", "happy", "sad", "happy"])
    # when the dashboard opens
    page = run.open()
    lobby = run.card("lobby")
    # then both cards show, with the state, the dominant emotion and its share
    expect(lobby.locator(".card-title")).to_have_text("Lobby")
    expect(lobby.locator(".badge")).to_have_text("live")
    expect(lobby.locator(".dominant-label")).to_have_text("happy")
    expect(lobby.locator(".dominant-share")).to_have_text("75%")
    expect(lobby.locator(".sharebar-part")).to_have_count(2)
    expect(run.card("gate").locator(".badge")).to_have_text("paused")
    expect(run.card("gate").locator(".dominant-label")).to_have_text("no faces")
    # when more faces arrive, then the next poll shows the new dominant emotion (5 sad vs 3 happy)
    _record(store, "lobby", ["sad"] * 4)
    expect(lobby.locator(".dominant-label")).to_have_text("sad", timeout=POLL_TIMEOUT_MS)
    expect(lobby.locator(".dominant-share")).to_have_text("63%")
    assert page.title() == "emotion-pipeline"  # type: ignore[attr-defined]


def test_over_capacity_warning_shows_and_clears(run: PageRun, store: RedisStore) -> None:
    # given two live cameras keeping up
    for cam in ("dock-1", "dock-2"):
        _camera(store, cam, cam)
        store.set_health(cam, {"state": "live", "fps_target": 5.0, "fps_out": 5.0, "fps_dropped": 0.0})
    page = run.open()
    expect(run.card("dock-1").locator(".badge")).to_have_text("live")
    expect(page.locator("#capacity")).to_be_hidden()
    # when both drop 3 of their 5 frames/s, then the warning says so and what would be sustainable
    for cam in ("dock-1", "dock-2"):
        store.set_health(cam, {"state": "live", "fps_target": 5.0, "fps_out": 2.0, "fps_dropped": 3.0})
    warning = page.locator("#capacity")
    expect(warning).to_be_visible(timeout=POLL_TIMEOUT_MS)
    expect(warning).to_contain_text("Over capacity: 6.0 of 10.0 frames/s dropped")
    expect(warning).to_contain_text("about 0 of these 2 cameras")
    # and it goes away once the pipeline keeps up again
    for cam in ("dock-1", "dock-2"):
        store.set_health(cam, {"state": "live", "fps_target": 5.0, "fps_out": 5.0, "fps_dropped": 0.0})
    expect(warning).to_be_hidden(timeout=POLL_TIMEOUT_MS)


def test_detail_chart_and_summary_update_on_the_next_poll(run: PageRun, store: RedisStore) -> None:
    # given a camera with 4 faces in the last seconds
    _camera(store, "hall", "Hall")
    store.set_health("hall", {"state": "reconnecting", "fps_out": 0.0, "last_error": "read failed"})
    _record(store, "hall", ["fear", "fear", "angry", "neutral"])
    # when its detail view opens
    page = run.open("#/cameras/hall")
    chart = page.locator("#share-chart")  # type: ignore[attr-defined]
    # then the chart (a uPlot canvas) holds the 4 faces and the summary table shows them
    expect(chart).to_have_attribute("data-faces", "4", timeout=POLL_TIMEOUT_MS)
    expect(chart.locator("canvas")).to_have_count(1)
    expect(page.locator('tr[data-label="fear"] td').nth(1)).to_have_text("2")  # type: ignore[attr-defined]
    expect(page.locator(".detail .badge")).to_have_text("reconnecting")  # type: ignore[attr-defined]
    expect(page.locator(".health-error")).to_have_text("last error: read failed")  # type: ignore[attr-defined]
    # when 6 happy faces are written, then chart and table follow on the next poll
    _record(store, "hall", ["happy"] * 6)
    expect(chart).to_have_attribute("data-faces", "10", timeout=POLL_TIMEOUT_MS)
    expect(page.locator('tr[data-label="happy"] td').nth(1)).to_have_text("6")  # type: ignore[attr-defined]
    expect(page.locator(".dominant-row")).to_have_attribute("data-label", "happy")  # type: ignore[attr-defined]
    # when another window is picked, then the chart is redrawn for it (a 1 h window: per-minute steps)
    page.click('button[data-window="3600"]')  # type: ignore[attr-defined]
    expect(page.locator(".chart-panel h3")).to_have_text("Emotion share over the last 1h")  # type: ignore[attr-defined]
    expect(chart).to_have_attribute("data-faces", "10", timeout=POLL_TIMEOUT_MS)
    # the chart used /timeseries with a step, resampled server-side
    assert any("/cameras/hall/timeseries?window=3600&step=30" in u for u, _ in run.requests)


def test_add_pause_and_remove_need_the_token(run: PageRun, store: RedisStore) -> None:
    # given the dashboard opened with a wrong token
    page = run.open()
    expect(page.locator("#grid-empty")).to_be_visible()  # type: ignore[attr-defined]
    _set_token(page, "not-the-token")
    page.click(".add-camera > summary")  # type: ignore[attr-defined]
    page.fill('#add-form [name="id"]', "door")  # type: ignore[attr-defined]
    page.fill('#add-form [name="url"]', "rtsp://admin:hunter2@10.0.0.7:554/live")  # type: ignore[attr-defined]
    page.fill('#add-form [name="fps"]', "2")  # type: ignore[attr-defined]
    page.fill('#add-form [name="name"]', "Front door")  # type: ignore[attr-defined]
    # when the camera is added, then a clear 401 message shows and nothing is registered
    page.click('#add-form button[type="submit"]')  # type: ignore[attr-defined]
    expect(page.locator("#add-status")).to_contain_text("token required or invalid")  # type: ignore[attr-defined]
    assert store.list_cameras() == []
    # when the right token is entered and the form sent again
    _set_token(page, TOKEN)
    expect(page.locator("#token-state")).to_have_text("token set")  # type: ignore[attr-defined]
    page.click('#add-form button[type="submit"]')  # type: ignore[attr-defined]
    # then the camera appears in the grid and in Redis
    expect(run.card("door").locator(".card-title")).to_have_text("Front door")
    cfg = store.get_camera("door")
    assert cfg.fps == 2 and cfg.name == "Front door" and cfg.enabled
    # when it is paused, then Redis has it disabled and the card says so
    run.card("door").get_by_role("button", name="Pause").click()
    expect(run.card("door").locator(".badge")).to_have_text("paused")
    assert store.get_camera("door").enabled is False
    # when it is removed (the confirmation is accepted), then it is gone from the page and Redis
    run.card("door").get_by_role("button", name="Remove").click()
    expect(run.card("door")).to_have_count(0)
    assert store.list_cameras() == []
    # the token went only in headers, never into a URL; the password never reached the page
    assert not any(TOKEN in u or "not-the-token" in u for u, _ in run.requests)
    assert any(h.get("authorization") == f"Bearer {TOKEN}" for _, h in run.requests)
    assert "hunter2" not in page.content()  # type: ignore[attr-defined]


def test_token_from_the_url_fragment_is_stored_and_stripped(run: PageRun) -> None:
    # given a link carrying the token in its fragment
    page = run.open(f"#token={TOKEN}")
    # then the token is kept in localStorage and removed from the address bar
    expect(page.locator("#token-state")).to_have_text("token set")  # type: ignore[attr-defined]
    assert page.evaluate("localStorage.getItem('emotionpipe.apiToken')") == TOKEN  # type: ignore[attr-defined]
    assert TOKEN not in page.url  # type: ignore[attr-defined]
    assert not any(TOKEN in u for u, _ in run.requests)


def test_hostile_camera_names_render_as_text(run: PageRun, store: RedisStore) -> None:
    # given a camera whose name is markup that would run script if parsed as HTML
    _camera(store, "evil", XSS_NAME)
    _record(store, "evil", ["surprise"])
    # when the grid and the detail view show it
    page = run.open()
    title = run.card("evil").locator(".card-title")
    # then the name is shown literally, no element was created from it, and no script ran
    expect(title).to_have_text(XSS_NAME)
    expect(run.card("evil").locator("img")).to_have_count(0)
    page.goto(run.base_url + "/#/cameras/evil")  # type: ignore[attr-defined]
    expect(page.locator(".detail-title")).to_have_text(XSS_NAME)  # type: ignore[attr-defined]
    expect(page.locator(".detail-head img")).to_have_count(0)  # type: ignore[attr-defined]
    assert page.evaluate("typeof window.__xss") == "undefined"  # type: ignore[attr-defined]


def test_snapshot_shows_only_for_cameras_that_keep_frames(run: PageRun, store: RedisStore) -> None:
    import numpy as np

    from pipeline.detect.snapshot import annotate

    # given an opted-in camera with a stored snapshot and a camera that keeps no frames
    _camera(store, "kiosk", "Kiosk", keep_frames=True)
    _camera(store, "private", "Private")
    frame = np.full((240, 320, 3), 80, np.uint8)
    store.set_snapshot("kiosk", annotate(frame, [(40, 40, 60, 60)], ["happy"]), 30)
    # when the opted-in camera's detail view opens, then the snapshot image is shown (decoded)
    page = run.open("#/cameras/kiosk")
    img = page.locator(".snapshot-panel img")  # type: ignore[attr-defined]
    expect(img).to_be_visible(timeout=POLL_TIMEOUT_MS)
    # (expect polls from Playwright's own script world: a page-side wait_for_function would need eval, which
    # the dashboard's CSP forbids, and failed whenever the image was not decoded at the first check)
    expect(img).to_have_js_property("naturalWidth", 320, timeout=POLL_TIMEOUT_MS)
    # when the other camera's view opens, then there is no snapshot panel at all
    page.goto(run.base_url + "/#/cameras/private")  # type: ignore[attr-defined]
    expect(page.locator(".detail-title")).to_have_text("Private")  # type: ignore[attr-defined]
    expect(page.locator(".snapshot-panel")).to_be_hidden()  # type: ignore[attr-defined]
    assert not any("/cameras/private/snapshot.jpg" in u for u, _ in run.requests)


def test_screenshot_with_several_cameras(run: PageRun, store: RedisStore) -> None:
    # given several cameras in different states with a few minutes of results
    cams = {
        "lobby": ("Lobby entrance", "live", {"happy": 5, "neutral": 3, "surprise": 1}),
        "cafeteria": ("Cafeteria", "live", {"neutral": 4, "happy": 3, "sad": 1}),
        "help-desk": ("Help desk", "live", {"angry": 3, "neutral": 3, "fear": 1, "sad": 1, "disgust": 0.5}),
        "parking": ("Parking gate", "reconnecting", {"neutral": 2, "sad": 1.5}),
        "gym": ("Gym", "failed", {}),
        "atrium": ("Atrium", "live", {"surprise": 1, "happy": 2, "neutral": 1.5}),
        "reception": ("Reception", "connecting", {}),
        "warehouse": ("Warehouse", "live", {"neutral": 3, "sad": 1, "angry": 1}),
    }
    now = time.time()
    for cam_id, (name, state, labels) in cams.items():
        _camera(store, cam_id, name, enabled=cam_id != "warehouse")
        live = state == "live" and cam_id != "warehouse"
        store.set_health(cam_id, {"state": state, "fps_out": 4.9 if live else 0.0, "fps_in": 25.0 if live else 0.0})
        if labels:
            _history(store, cam_id, labels, now)
    page = run.open()
    expect(run.card("lobby").locator(".dominant-label")).to_have_text("happy")
    expect(run.card("help-desk").locator(".dominant-label")).not_to_have_text("–")
    OUTPUT.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1360, "height": 600})  # type: ignore[attr-defined]
    page.screenshot(path=str(OUTPUT / "dashboard.png"), full_page=True)  # type: ignore[attr-defined]
    page.set_viewport_size({"width": 1360, "height": 900})  # type: ignore[attr-defined]
    page.goto(run.base_url + "/#/cameras/lobby")  # type: ignore[attr-defined]
    chart = page.locator("#share-chart")  # type: ignore[attr-defined]
    expect(chart).to_have_attribute("data-faces", re.compile(r"^[1-9][0-9]*$"), timeout=POLL_TIMEOUT_MS)
    page.screenshot(path=str(OUTPUT / "dashboard-detail.png"), full_page=True)  # type: ignore[attr-defined]
    assert (OUTPUT / "dashboard.png").stat().st_size > 10_000
