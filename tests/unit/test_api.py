"""The HTTP API against a real Redis through the real store (FastAPI TestClient, no Ray)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.api.app import create_app
from pipeline.contracts import LABELS, EmotionResult
from pipeline.settings import IngestSettings, Settings
from pipeline.store.redis_store import RedisStore


TOKEN = "unit-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _settings(redis_url: str, **ingest: object) -> Settings:
    return Settings(  # type: ignore[arg-type]
        redis={"url": redis_url}, ingest=IngestSettings(**ingest), api={"tokens": [TOKEN]}
    )



@pytest.fixture()
def client(redis_url: str, store: RedisStore) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(redis_url), store), headers=AUTH) as c:
        yield c


def _result(camera_id: str, frame_id: int, label: str, ts: float, track_id: int = 1) -> EmotionResult:
    probs = [0.02] * len(LABELS)
    probs[LABELS.index(label)] = 0.88
    return EmotionResult(
        camera_id=camera_id, frame_id=frame_id, ts=ts, face_idx=0, bbox=(10, 10, 50, 50),
        probs=tuple(probs), model="emonet-s@1", track_id=track_id,
    )


def test_camera_crud_roundtrip(client: TestClient) -> None:
    # given an empty registry
    assert client.get("/cameras").json() == []
    # when a camera is registered
    r = client.post("/cameras", json={"id": "lobby", "url": "rtsp://10.0.0.5:554/live", "name": "Lobby"})
    # then it is listed and readable, with the default fps filled in
    assert r.status_code == 201, r.text
    assert r.json()["fps"] == Settings().ingest.default_fps
    assert [c["id"] for c in client.get("/cameras").json()] == ["lobby"]
    assert client.get("/cameras/lobby").json()["name"] == "Lobby"
    # when it is removed, then it is gone
    assert client.delete("/cameras/lobby").status_code == 204
    assert client.get("/cameras/lobby").status_code == 404
    assert client.delete("/cameras/lobby").status_code == 404


def test_duplicate_id_is_409(client: TestClient) -> None:
    body = {"id": "cam1", "url": "rtsp://10.0.0.1:8554/a"}
    assert client.post("/cameras", json=body).status_code == 201
    r = client.post("/cameras", json=body)
    assert r.status_code == 409
    assert "cam1" in r.json()["detail"]


def test_credentials_are_redacted_everywhere(client: TestClient) -> None:
    r = client.post("/cameras", json={"id": "door", "url": "rtsp://admin:hunter2@10.1.1.1/stream"})
    assert r.status_code == 201
    for body in (r.text, client.get("/cameras").text, client.get("/cameras/door").text):
        assert "hunter2" not in body
    assert client.get("/cameras/door").json()["url"].startswith("rtsp://admin:***@")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"id": "Bad Id", "url": "rtsp://h/x"}, "id"),
        ({"id": "ok", "url": "ftp://h/x"}, "scheme"),
        ({"id": "ok", "url": "rtsp://user:s3cret@/x"}, "host"),
        ({"id": "ok", "url": "/etc/passwd"}, "file"),
        ({"id": "ok", "url": "rtsp://h/x", "fps": 0}, "fps"),
        ({"id": "ok", "url": "rtsp://h/x", "colour": "red"}, "colour"),
    ],
)
def test_invalid_cameras_are_422_with_a_reason(client: TestClient, body: dict[str, object], needle: str) -> None:
    r = client.post("/cameras", json=body)
    assert r.status_code == 422, r.text
    assert needle in r.text
    assert "s3cret" not in r.text
    assert client.get("/cameras").json() == []


def test_file_sources_only_when_allowed(redis_url: str, store: RedisStore, tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00")
    with TestClient(create_app(_settings(redis_url, allow_files=True), store), headers=AUTH) as c:
        assert c.post("/cameras", json={"id": "replay", "url": str(video)}).status_code == 201


def test_pause_and_resume(client: TestClient, store: RedisStore) -> None:
    client.post("/cameras", json={"id": "gate", "url": "rtsp://h/x"})
    version = store.registry_version()
    r = client.patch("/cameras/gate", json={"enabled": False, "fps": 2})
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["fps"] == 2
    assert store.get_camera("gate").enabled is False
    assert store.registry_version() > version  # the camera manager sees the change
    assert client.patch("/cameras/gate", json={"fps": 500}).status_code == 422
    assert client.patch("/cameras/nope", json={"enabled": True}).status_code == 404


def test_summary_reports_counts_shares_and_dominant(client: TestClient, store: RedisStore) -> None:
    # given a camera with 3 happy faces and 1 sad face in the last seconds
    client.post("/cameras", json={"id": "hall", "url": "rtsp://h/x"})
    now = time.time()
    results = [_result("hall", i, lbl, now - 2 + i * 0.1) for i, lbl in enumerate(["happy", "happy", "sad", "happy"])]
    store.record_results(results, [f"{int(now * 1000)}-{i}".encode() for i in range(4)])
    # when the summary is queried
    r = client.get("/cameras/hall/summary", params={"window": 60})
    # then it reflects them
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["faces"] == 4
    assert s["dominant"] == "happy"
    assert s["counts"]["happy"] == 3 and s["counts"]["sad"] == 1
    assert s["shares"]["happy"] == pytest.approx(0.75)
    assert s["mean_probs"]["happy"] == pytest.approx((3 * 0.88 + 0.02) / 4)
    assert s["model"] == "emonet-s@1"
    assert set(s["counts"]) == set(LABELS)
    series = client.get("/cameras/hall/series", params={"window": 10}).json()
    assert sum(p["faces"] for p in series) == 4


def test_summary_of_a_quiet_camera_and_errors(client: TestClient) -> None:
    client.post("/cameras", json={"id": "quiet", "url": "rtsp://h/x"})
    s = client.get("/cameras/quiet/summary").json()
    assert s["faces"] == 0 and s["dominant"] is None and s["window_s"] == 60
    assert client.get("/cameras/ghost/summary").status_code == 404
    assert client.get("/cameras/quiet/summary", params={"window": 0}).status_code == 422
    assert client.get("/cameras/quiet/summary", params={"window": 10**6}).status_code == 422


def test_health_endpoints(client: TestClient, store: RedisStore) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").status_code == 200
    client.post("/cameras", json={"id": "c1", "url": "rtsp://h/x"})
    h = client.get("/cameras/c1/health").json()
    assert h["reporting"] is False and h["health"] == {}
    store.set_health("c1", {"state": "live", "fps": 4.9})
    store.incr_counter("c1", "frames", 7)
    h = client.get("/cameras/c1/health").json()
    assert h["reporting"] is True and h["health"]["state"] == "live" and h["counters"]["frames"] == 7
    assert client.get("/cameras/ghost/health").status_code == 404


def test_readyz_is_503_when_redis_is_down(redis_url: str, unused_port: int) -> None:
    dead = RedisStore.from_url(f"redis://127.0.0.1:{unused_port}/0")
    with TestClient(create_app(_settings(redis_url), dead), headers=AUTH) as c:
        t0 = time.monotonic()
        r = c.get("/readyz")
        assert r.status_code == 503 and time.monotonic() - t0 < 10
        assert c.get("/healthz").status_code == 200
        assert c.get("/cameras").status_code == 503


# --------------------------------------------------------------------------- auth
def test_mutations_need_a_valid_token(redis_url: str, store: RedisStore) -> None:
    app = create_app(_settings(redis_url), store)
    with TestClient(app) as anonymous:
        body = {"id": "door", "url": "rtsp://10.0.0.9/live"}
        # given no token / a wrong token, when a camera is added, then 401 with a Bearer challenge
        r = anonymous.post("/cameras", json=body)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        r = anonymous.post("/cameras", json=body, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401
        assert "nope" not in r.text
        # reads stay open unless api.auth_reads is set
        assert anonymous.get("/cameras").status_code == 200
        # with the token the same request is accepted
        assert anonymous.post("/cameras", json=body, headers=AUTH).status_code == 201
        for method in ("PATCH", "DELETE"):
            kwargs = {"json": {"enabled": False}} if method == "PATCH" else {}
            assert anonymous.request(method, "/cameras/door", **kwargs).status_code == 401
        assert store.get_camera("door").enabled is True


def test_auth_reads_and_probes(redis_url: str, store: RedisStore) -> None:
    settings = Settings(  # type: ignore[arg-type]
        redis={"url": redis_url}, api={"tokens": ["a", "b-rotated"], "auth_reads": True}
    )
    with TestClient(create_app(settings, store)) as c:
        assert c.get("/cameras").status_code == 401
        assert c.get("/cameras", headers={"Authorization": "Bearer b-rotated"}).status_code == 200
        # probes never need a token: kubelets do not carry one
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200


def test_no_token_configured_means_read_only(redis_url: str, store: RedisStore, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-token"
    settings = Settings(redis={"url": redis_url}, api={"token_file": missing})  # type: ignore[arg-type]
    with TestClient(create_app(settings, store)) as c:
        r = c.post("/cameras", json={"id": "x1", "url": "rtsp://10.0.0.9/live"}, headers={"Authorization": "Bearer "})
        assert r.status_code == 401 and "no token configured" in r.json()["detail"]
        # when the Secret appears (rotated in), it is picked up without a restart
        missing.write_text("fresh-token\n")
        r = c.post("/cameras", json={"id": "x1", "url": "rtsp://10.0.0.9/live"},
                   headers={"Authorization": "Bearer fresh-token"})
        assert r.status_code == 201, r.text


def test_generated_token_file_is_private(tmp_path: Path) -> None:
    from pipeline.api.auth import ensure_token_file

    path = ensure_token_file(tmp_path / "d" / "api-token")
    token = path.read_text().strip()
    assert len(token) >= 32 and (path.stat().st_mode & 0o777) == 0o600
    # idempotent: an existing token is kept
    assert ensure_token_file(path).read_text().strip() == token
