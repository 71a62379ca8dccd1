"""Camera and webhook credentials never appear in any response, error or log line (real Redis, TestClient)."""

from __future__ import annotations

import logging
import time

import pytest
from fastapi.testclient import TestClient

from pipeline.api.app import create_app
from pipeline.contracts import LABELS, EmotionResult
from pipeline.settings import Settings
from pipeline.store.redis_store import RedisStore

SECRET = "s3cret"
URL = f"rtsp://user:{SECRET}@10.0.0.5/x"
HOOK_SECRET = "h00ksecret"


def test_credentials_never_leak(redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = RedisStore.from_url(redis_url)
    settings = Settings(redis={"url": redis_url}, api={"tokens": ["tok"]})  # type: ignore[arg-type]
    texts: list[str] = []
    with TestClient(create_app(settings, store), headers={"Authorization": "Bearer tok"}) as c:

        def call(method: str, path: str, **kwargs: object) -> int:
            r = c.request(method, path, **kwargs)  # type: ignore[arg-type]
            texts.append(f"{r.status_code} {dict(r.headers)} {r.text}")
            return r.status_code

        # given a camera registered with a password
        assert call("POST", "/cameras", json={"id": "door", "url": URL, "groups": ["front"]}) == 201
        now = time.time()
        probs = tuple(1.0 if label == "happy" else 0.0 for label in LABELS)
        store.record_results(
            [EmotionResult(camera_id="door", frame_id=1, ts=now - 2, face_idx=0, bbox=(0, 0, 9, 9), probs=probs,
                           model="m@1", track_id=None)],
            [f"{int(now * 1000)}-0".encode()],
        )
        store.set_health("door", {"state": "reconnecting", "last_error": "open failed: rtsp://user:***@10.0.0.5/x"})
        # when every read path is exercised
        for path in ("/cameras", "/cameras/door", "/cameras?group=front", "/cameras/door/health",
                     "/cameras/door/summary?window=1m", "/cameras/door/timeseries?window=1m&step=10s",
                     "/groups", "/groups/front/summary", "/overview", "/metrics",
                     "/cameras/door/export?format=csv", "/cameras/door/export?format=json"):
            assert call("GET", path) == 200, path
        # and the mutations, including failing ones whose errors could echo the input
        assert call("PATCH", "/cameras/door", json={"name": "Door", "fps": 2}) == 200
        assert call("POST", "/cameras/door/pause") == 200
        assert call("POST", "/cameras", json={"id": "door", "url": URL}) == 409
        assert call("POST", "/cameras", json={"url": URL}) == 422  # missing id: body echoed by default
        assert call("POST", "/cameras", json={"id": "Bad Id", "url": URL}) == 422
        assert call("POST", "/cameras", json={"id": "x2", "url": URL + "x" * 5000}) == 422  # too long
        assert call("POST", "/cameras", json={"id": "x3", "url": f"ftp://user:{SECRET}@h/x"}) == 422
        assert call("POST", "/cameras", json={"id": "x4", "url": URL, "extra": URL}) == 422
        assert call("PATCH", "/cameras/door", json={"url": URL}) == 422  # url is not patchable
        assert call("POST", "/cameras", json={"id": "x5", "url": URL},
                    headers={"Authorization": f"Bearer {SECRET}"}) == 401
        # alerts with a secret-bearing webhook, valid and invalid
        hook = f"https://bot:{HOOK_SECRET}@hooks.example.com/x?token={HOOK_SECRET}"
        rule = {"id": "r1", "camera_id": "door", "labels": ["happy"], "threshold": 0.1, "webhook_url": hook}
        assert call("POST", "/alerts", json=rule) == 201
        assert call("POST", "/alerts", json={**rule, "id": "r2", "webhook_url": f"ftp://u:{HOOK_SECRET}@h/"}) == 422
        assert call("POST", "/alerts", json={**rule, "id": "r3", "threshold": 7}) == 422  # body echoed by default
        assert call("PATCH", "/alerts/r1", json={"threshold": 0.2}) == 200
        assert call("GET", "/alerts") == 200 and call("GET", "/alerts/r1") == 200
        assert call("DELETE", "/cameras/door") == 204
    store.close()
    # then neither secret is in any response (body or headers) nor in any log record
    blob = "\n".join(texts)
    logs = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for secret in (SECRET, HOOK_SECRET):
        assert secret not in blob
        assert secret not in logs
    # and the redacted forms are what clients see
    assert "user:***@10.0.0.5" in blob and "bot:***@hooks.example.com" in blob
