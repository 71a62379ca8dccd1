"""Alert rules: model validation, evaluator semantics, webhook retries against a real loopback
HTTP server, the Redis lease, and the ``/alerts`` API (real redis-server, no Ray)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from pipeline.alerts.evaluator import AlertEvaluator
from pipeline.alerts.runner import AlertRunner
from pipeline.alerts.webhook import WebhookSender
from pipeline.api.app import create_app
from pipeline.contracts import LABELS, EmotionResult
from pipeline.settings import AlertSettings, Settings
from pipeline.store.models import AlertRule, CameraConfig
from pipeline.store.redis_store import RedisStore

TOKEN = "alerts-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# The webhook receivers of these tests listen on 127.0.0.1, which the SSRF policy refuses by default.
LOOPBACK_HOOKS = AlertSettings(allow_loopback=True)


class Hook:
    """A real HTTP server on loopback that answers 500 to the first ``fail_first`` POSTs, then 200."""

    def __init__(self, fail_first: int = 1) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.fail_first = fail_first
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = 500 if len(hook.statuses) < hook.fail_first else 200
                hook.statuses.append(status)
                if status == 200:
                    hook.bodies.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def hook() -> Iterator[Hook]:
    h = Hook(fail_first=1)
    yield h
    h.close()



def _sender() -> WebhookSender:
    return WebhookSender(timeout_s=5, attempts=3, backoff_initial_s=0.01, backoff_max_s=0.05, policy=LOOPBACK_HOOKS)


def _record(store: RedisStore, camera_id: str, labels: list[str], ts: float) -> None:
    results = []
    for i, label in enumerate(labels):
        probs = [0.0] * len(LABELS)
        probs[LABELS.index(label)] = 1.0
        results.append(EmotionResult(camera_id=camera_id, frame_id=i, ts=ts + i * 0.01, face_idx=0, bbox=(0, 0, 9, 9),
                                     probs=tuple(probs), model="m@1", track_id=None))
    base = int(time.time() * 1000)
    _record.n = getattr(_record, "n", 0) + 1  # type: ignore[attr-defined]
    ids = [f"{base}-{_record.n * 1000 + i}".encode() for i in range(len(results))]  # type: ignore[attr-defined]
    store.record_results(results, ids)


def _rule(**kw: Any) -> AlertRule:
    base: dict[str, Any] = {"id": "tense", "camera_id": "lobby", "labels": ["angry", "fear"], "window": "1m",
                            "op": ">", "threshold": 0.3, "min_faces": 4, "cooldown": "10m"}
    return AlertRule.model_validate({**base, **kw})


# --------------------------------------------------------------------------- model
def test_rule_model_parses_durations_and_validates() -> None:
    r = _rule(webhook_url="https://bot:t0ken@hooks.example.com/x?token=abc")
    assert (r.window, r.cooldown, r.labels) == (60.0, 600.0, ("angry", "fear"))
    assert "t0ken" not in json.dumps(r.public()) and "abc" not in json.dumps(r.public())
    with pytest.raises(ValidationError):
        _rule(labels=["rage"])
    with pytest.raises(ValidationError):
        _rule(group="g")  # both camera and group
    with pytest.raises(ValidationError):
        _rule(camera_id=None)  # neither
    with pytest.raises(ValidationError, match="window"):
        _rule(window="2d")
    with pytest.raises(ValidationError):
        _rule(threshold=1.5)
    for bad in ("ftp://h/x", "file:///etc/passwd", "javascript:alert(1)", "http://", "http://h/a b"):
        with pytest.raises(ValidationError, match="webhook_url"):
            _rule(webhook_url=bad)
    with pytest.raises(ValidationError):
        r.model_copy(update={}).__setattr__("threshold", 0.1)  # frozen


# --------------------------------------------------------------------------- evaluator
def test_rule_fires_once_on_the_edge_with_retry_then_respects_cooldown(store: RedisStore, hook: Hook) -> None:
    # given a camera whose last minute is 50 % angry+fear and a rule "> 30 % over 1 min"
    store.add_camera(CameraConfig(id="lobby", url="rtsp://h/x"))
    store.add_alert(_rule(webhook_url=hook.url, cooldown="5m"))
    evaluator = AlertEvaluator(store, _sender())
    t0 = time.time()
    _record(store, "lobby", ["angry", "fear", "happy", "neutral"], t0 - 10)
    # when the evaluator ticks several times while the condition holds
    fired = [evaluator.tick(now=t0 + i) for i in range(4)]
    # then it fired exactly once; the webhook's first answer was 500, the retry got through
    assert [len(f) for f in fired] == [1, 0, 0, 0]
    assert hook.statuses == [500, 200]
    assert len(hook.bodies) == 1
    body = hook.bodies[0]
    assert body["rule_id"] == "tense" and body["camera_id"] == "lobby" and body["value"] == pytest.approx(0.5)
    assert body["faces"] == 4 and body["labels"] == ["angry", "fear"]
    events = store.alert_events("tense")
    assert [(e.status, e.attempts, e.http_status) for e in events] == [("delivered", 2, 200)]
    # when the condition clears (the faces leave the window) and comes back within the cooldown
    assert evaluator.tick(now=t0 + 120) == []
    assert store.alert_state("tense").active is False
    _record(store, "lobby", ["angry", "angry", "fear", "sad"], t0 + 150)
    # then nothing fires: the edge falls inside the 5 min cooldown
    assert evaluator.tick(now=t0 + 160) == []
    assert store.alert_state("tense").active is True
    # when it clears and rises again after the cooldown, it fires again
    assert evaluator.tick(now=t0 + 400) == []
    _record(store, "lobby", ["fear", "fear", "fear", "happy"], t0 + 500)
    again = evaluator.tick(now=t0 + 505)
    assert len(again) == 1 and again[0].value == pytest.approx(0.75)
    assert len(hook.bodies) == 2 and len(store.alert_events("tense")) == 2


def test_min_faces_group_rules_and_failed_delivery(store: RedisStore) -> None:
    # given a group rule with a webhook that always fails
    dead_hook = Hook(fail_first=10**6)
    try:
        for cam, groups in (("a", ["hall"]), ("b", ["hall"]), ("c", [])):
            store.add_camera(CameraConfig(id=cam, url="rtsp://h/x", groups=groups))
        store.add_alert(_rule(id="hall-sad", camera_id=None, group="hall", labels=["sad"], threshold=0.5,
                              min_faces=5, webhook_url=dead_hook.url))
        evaluator = AlertEvaluator(store, _sender())
        t0 = time.time()
        _record(store, "a", ["sad", "sad"], t0 - 5)
        _record(store, "c", ["sad"] * 10, t0 - 5)  # not in the group: ignored
        # then 2 faces are below min_faces: nothing fires
        assert evaluator.tick(now=t0) == []
        assert store.alert_state("hall-sad").last_faces == 2
        # when a member adds faces, the group's share (4 of 5 sad) fires; delivery fails after 3 attempts
        _record(store, "b", ["sad", "sad", "happy"], t0 - 4)
        (event,) = evaluator.tick(now=t0 + 1)
        assert event.faces == 5 and event.value == pytest.approx(0.8)
        assert (event.status, event.attempts, event.http_status, event.error) == ("failed", 3, 500, "HTTP 500")
        assert dead_hook.statuses == [500, 500, 500]
        # a disabled rule is not evaluated
        store.update_alert(store.get_alert("hall-sad").model_copy(update={"enabled": False}))
        assert evaluator.tick(now=t0 + 2) == [] and store.alert_state("hall-sad").last_eval == t0 + 1
    finally:
        dead_hook.close()


def test_unreachable_webhook_records_a_failure_without_the_url(store: RedisStore, unused_port: int) -> None:
    store.add_alert(_rule(threshold=0.0, op=">=", min_faces=1,
                          webhook_url=f"http://user:pw@127.0.0.1:{unused_port}/x"))
    _record(store, "lobby", ["happy"], time.time() - 2)
    (event,) = AlertEvaluator(store, _sender()).tick()
    assert event.status == "failed" and event.attempts == 3 and event.error == "ConnectError"
    assert "pw" not in event.model_dump_json()


# --------------------------------------------------------------------------- lease and runner
def test_only_one_runner_holds_the_lease(store: RedisStore, redis_url: str) -> None:
    other = RedisStore.from_url(redis_url)
    settings = AlertSettings(interval_s=0.5, lease_ttl_s=30)
    a = AlertRunner(store, settings, owner="replica-a")
    b = AlertRunner(other, settings, owner="replica-b")
    try:
        # given replica a took the lease, then b cannot evaluate while a keeps renewing
        assert a.run_once() is True
        assert b.run_once() is False
        assert a.run_once() is True and b.run_once() is False
        # when a stops (graceful shutdown), it hands the lease over at once
        a.stop()
        assert b.run_once() is True and a.passes == 2 and b.passes == 1
    finally:
        b.stop()
        other.close()


def test_runner_thread_evaluates_in_the_background(store: RedisStore, hook: Hook) -> None:
    store.add_camera(CameraConfig(id="lobby", url="rtsp://h/x"))
    store.add_alert(_rule(webhook_url=hook.url))
    _record(store, "lobby", ["angry"] * 5, time.time() - 3)
    runner = AlertRunner(store, AlertSettings(interval_s=0.5, backoff_initial_s=0.01, allow_loopback=True))
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while not store.alert_events("tense") and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        runner.stop()
    assert [e.status for e in store.alert_events("tense")] == ["delivered"]
    assert store.client.get(store.keys.alerts_lease) is None  # released on stop


# --------------------------------------------------------------------------- API
@pytest.fixture()
def client(redis_url: str, store: RedisStore) -> Iterator[TestClient]:
    settings = Settings(
        redis={"url": redis_url}, api={"tokens": [TOKEN]}, alerts=LOOPBACK_HOOKS  # type: ignore[arg-type]
    )
    with TestClient(create_app(settings, store), headers=AUTH) as c:
        yield c


def test_alerts_crud_api(client: TestClient, store: RedisStore) -> None:
    body = {"id": "tense", "camera_id": "lobby", "labels": ["angry", "fear"], "window": "5m", "threshold": 0.3,
            "webhook_url": "https://bot:t0ken@hooks.example.com/x", "cooldown": "10m"}
    # given no token, creating is refused
    assert client.post("/alerts", json=body, headers={"Authorization": "Bearer no"}).status_code == 401
    # when created with the token
    r = client.post("/alerts", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    # then durations are seconds and the webhook credentials are masked everywhere
    assert (out["window"], out["cooldown"], out["op"], out["min_faces"]) == (300, 600, ">", 10)
    assert out["webhook_url"] == "https://bot:***@hooks.example.com/x"
    assert out["state"]["active"] is False
    for text in (r.text, client.get("/alerts").text, client.get("/alerts/tense").text):
        assert "t0ken" not in text
    assert client.post("/alerts", json=body).status_code == 409
    # patch: disable and retarget to a group (explicit null clears the camera)
    p = client.patch("/alerts/tense", json={"enabled": False, "camera_id": None, "group": "hall"})
    assert p.status_code == 200, p.text
    assert (p.json()["enabled"], p.json()["group"], p.json()["camera_id"]) == (False, "hall", None)
    assert store.get_alert("tense").webhook_url == "https://bot:t0ken@hooks.example.com/x"  # kept for delivery
    bad = client.patch("/alerts/tense", json={"camera_id": "lobby"})  # both targets set
    assert bad.status_code == 422 and "exactly one" in bad.text
    assert client.get("/alerts/tense/events").json() == []
    # delete
    assert client.delete("/alerts/tense").status_code == 204
    assert client.get("/alerts/tense").status_code == 404
    assert client.get("/alerts/tense/events").status_code == 404
    assert client.delete("/alerts/tense").status_code == 404


@pytest.mark.parametrize("url", ["ftp://h/x", "file:///etc/passwd", "gopher://h", "not a url"])
def test_alert_webhooks_must_be_http(client: TestClient, url: str) -> None:
    body = {"id": "x", "camera_id": "c", "labels": ["sad"], "threshold": 0.5, "webhook_url": url}
    r = client.post("/alerts", json=body)
    assert r.status_code == 422 and "webhook_url" in r.text


def test_alert_events_api_shows_firings(client: TestClient, store: RedisStore, hook: Hook) -> None:
    client.post("/cameras", json={"id": "lobby", "url": "rtsp://h/x"})
    client.post("/alerts", json={"id": "tense", "camera_id": "lobby", "labels": ["angry"], "threshold": 0.5,
                                 "min_faces": 2, "window": "1m", "webhook_url": hook.url})
    _record(store, "lobby", ["angry", "angry", "happy"], time.time() - 2)
    AlertEvaluator(store, _sender()).tick()
    events = client.get("/alerts/tense/events").json()
    assert len(events) == 1
    assert events[0]["status"] == "delivered" and events[0]["attempts"] == 2 and events[0]["faces"] == 3
    listed = client.get("/alerts").json()[0]
    assert listed["state"]["active"] is True and listed["state"]["last_value"] == pytest.approx(2 / 3)
