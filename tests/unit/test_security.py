"""Security of the HTTP API and the Redis connection, on a real Redis (TestClient, no Ray).

Bad input is refused with 4xx and a clear reason (never a 500), every mutating route needs a
token (routes are enumerated from the app, so new endpoints are covered automatically),
camera URLs cannot point at the pipeline's own hosts (SSRF), and the Redis password works
and never shows up where URLs are printed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.api.app import create_app
from pipeline.api.limits import MAX_BODY_BYTES
from pipeline.settings import IngestSettings, Settings
from pipeline.store.redis_store import RedisStore
from tests.support.net import free_port

TOKEN = "security-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "Zx9-s3cr3t"
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def _settings(redis_url: str, **ingest: object) -> Settings:
    return Settings(  # type: ignore[arg-type]
        redis={"url": redis_url}, ingest=IngestSettings(**ingest), api={"tokens": [TOKEN]}
    )



@pytest.fixture()
def client(redis_url: str, store: RedisStore) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(redis_url), store), headers=AUTH) as c:
        yield c


# --------------------------------------------------------------------------- body size
def test_oversized_body_is_413_before_it_is_read(client: TestClient, store: RedisStore) -> None:
    # Given a camera body padded past the limit (a huge name)
    body = {"id": "big", "url": "rtsp://10.0.0.5/x", "name": "x" * (MAX_BODY_BYTES + 1)}
    # When it is posted
    r = client.post("/cameras", json=body)
    # Then it is refused with 413 and a clear reason, and nothing is stored
    assert r.status_code == 413
    assert "too large" in r.json()["detail"] and str(MAX_BODY_BYTES) in r.json()["detail"]
    assert store.list_cameras() == []


def test_oversized_chunked_body_without_length_is_413(client: TestClient) -> None:
    # Given a streamed body with no Content-Length (chunked), so only counting can catch it
    def chunks() -> Iterator[bytes]:
        yield b'{"id": "big", "url": "rtsp://10.0.0.5/x", "name": "'
        for _ in range(40):
            yield b"y" * 4096
        yield b'"}'

    r = client.post("/cameras", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_body_at_the_limit_passes_the_size_check(client: TestClient) -> None:
    # A body just under the limit reaches validation (422 for the over-long name, not 413)
    body = {"id": "big", "url": "rtsp://10.0.0.5/x", "name": "x" * (MAX_BODY_BYTES - 100)}
    r = client.post("/cameras", json=body)
    assert r.status_code == 422


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"id": "ok", "url": "rtsp://10.0.0.5/x", "is_admin": True}, "is_admin"),  # unknown field
        ({"id": "Bad Id", "url": "rtsp://10.0.0.5/x"}, "id"),
        ({"id": "../../etc", "url": "rtsp://10.0.0.5/x"}, "id"),
        ({"id": "a" * 65, "url": "rtsp://10.0.0.5/x"}, "id"),
        ({"id": "ok\n", "url": "rtsp://10.0.0.5/x"}, "id"),
        ({"id": "ok", "url": "file:///etc/passwd"}, "file sources are disabled"),
        ({"id": "ok", "url": "/etc/passwd"}, "file sources are disabled"),
        ({"id": "ok", "url": "gopher://10.0.0.5/x"}, "scheme 'gopher' is not allowed"),
        ({"id": "ok", "url": f"rtsp://admin:{SECRET}@127.0.0.1:6390/x"}, "loopback"),
        ({"id": "ok", "url": "http://2130706433/"}, "loopback"),
        ({"id": "ok", "url": "http://0x7f.1:6379/"}, "loopback"),
        ({"id": "ok", "url": "rtsp://[::ffff:127.0.0.1]/x"}, "loopback"),
        ({"id": "ok", "url": "http://169.254.169.254/latest/meta-data/"}, "metadata"),
        ({"id": "ok", "url": "http://metadata.google.internal/computeMetadata/v1/"}, "metadata"),
        ({"id": "ok", "url": "rtsp://[fe80::1]/x"}, "link-local"),
        ({"id": "ok", "url": "rtsp://0.0.0.0/x"}, "unspecified"),
        ({"id": "ok", "url": "rtsp://10.0.0.5/x", "fps": -1}, "fps"),
        ({"id": "ok", "url": "rtsp://10.0.0.5/x", "fps": "NaN"}, "fps"),
        ({"id": "ok", "url": "x" * 5000}, "url"),
        ({"id": 5, "url": "rtsp://10.0.0.5/x"}, "id"),
    ],
)
def test_bad_camera_bodies_are_422_with_a_reason(
    client: TestClient, store: RedisStore, body: dict[str, object], needle: str
) -> None:
    r = client.post("/cameras", json=body)
    assert r.status_code == 422, r.text
    assert needle in r.text
    assert SECRET not in r.text
    assert store.list_cameras() == []


@pytest.mark.parametrize("raw", [b"", b"{", b"null", b"[]", b'"str"', b"\xff\xfe", b'{"id": "a", "url": 1e999}'])
def test_malformed_json_is_4xx_not_500(client: TestClient, raw: bytes) -> None:
    r = client.post("/cameras", content=raw, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, (raw, r.status_code, r.text)


@pytest.mark.parametrize("camera_id", ["Bad Id", "UPPER", "a" * 300, "%00", "x;rm", "a..b"])
def test_invalid_ids_in_paths_are_4xx(client: TestClient, camera_id: str) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        kwargs = {"json": {"enabled": False}} if method == "PATCH" else {}
        r = client.request(method, f"/cameras/{camera_id}", **kwargs)
        assert r.status_code in (404, 422), (method, camera_id, r.status_code, r.text)


def test_loopback_cameras_only_when_allowed(redis_url: str, store: RedisStore) -> None:
    with TestClient(create_app(_settings(redis_url, allow_loopback=True), store), headers=AUTH) as c:
        r = c.post("/cameras", json={"id": "local", "url": "rtsp://127.0.0.1:8554/cam"})
        assert r.status_code == 201, r.text
        # metadata endpoints stay refused even then
        r = c.post("/cameras", json={"id": "meta", "url": "http://169.254.169.254/"})
        assert r.status_code == 422


# --------------------------------------------------------------------------- auth
def _operations(app: object) -> list[tuple[str, str]]:
    """(METHOD, path) of every operation, from the OpenAPI schema (public, whatever the FastAPI version)."""
    paths = app.openapi()["paths"]  # type: ignore[attr-defined]
    return sorted((method.upper(), path) for path, ops in paths.items() for method in ops)


def _mutating_routes(app: object) -> list[tuple[str, str]]:
    return [(m, p) for m, p in _operations(app) if m in MUTATING]


def _fill(path: str) -> str:
    # Any syntactically valid value for path parameters; auth must be checked before lookups.
    import re

    return re.sub(r"\{[^}]+\}", "cam1", path)


def test_every_mutating_route_needs_a_token(redis_url: str, store: RedisStore) -> None:
    app = create_app(_settings(redis_url), store)
    routes = _mutating_routes(app)
    # Given the app's routes: there are mutating ones (cameras at least)
    assert ("POST", "/cameras") in routes and len(routes) >= 3
    with TestClient(app) as anonymous:
        for method, path in routes:
            for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic dTpw"}):
                # When called without a valid token (empty JSON body)
                r = anonymous.request(method, _fill(path), json={}, headers=headers)
                # Then 401 with a Bearer challenge, whatever the body or the id
                assert r.status_code == 401, (method, path, headers, r.status_code, r.text)
                assert r.headers.get("www-authenticate") == "Bearer"
                assert "wrong-token" not in r.text
    assert store.list_cameras() == []


def test_reads_need_a_token_when_auth_reads_is_set(redis_url: str, store: RedisStore) -> None:
    settings = Settings(redis={"url": redis_url}, api={"tokens": [TOKEN], "auth_reads": True})  # type: ignore[arg-type]
    app = create_app(settings, store)
    open_paths = {"/healthz", "/readyz"}
    gets = [p for m, p in _operations(app) if m == "GET" and p not in open_paths]
    assert gets
    with TestClient(app) as anonymous:
        for path in gets:
            r = anonymous.get(_fill(path))
            assert r.status_code == 401, (path, r.status_code)


def test_responses_never_echo_credentials(client: TestClient) -> None:
    # Given a camera registered with a password in its userinfo and its query string
    url = f"rtsp://admin:{SECRET}@10.0.0.7/live?token={SECRET}"
    assert client.post("/cameras", json={"id": "door", "url": url}).status_code == 201
    # Then no read endpoint shows the secret
    for path in ("/cameras", "/cameras/door", "/cameras/door/health", "/cameras/door/summary"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert SECRET not in r.text, path
    # and neither does the error of a duplicate registration
    r = client.post("/cameras", json={"id": "door", "url": url})
    assert r.status_code == 409 and SECRET not in r.text


# --------------------------------------------------------------------------- Redis password
@pytest.fixture()
def private_redis(tmp_path: Path) -> Iterator[object]:
    from pipeline.runtime.redis_server import EmbeddedRedis

    server = EmbeddedRedis(free_port(), tmp_path / "redis", appendonly=False, password=f"p@ss/{SECRET}:#")
    server.start()
    yield server
    server.stop()


def test_embedded_redis_requires_its_password(private_redis: object) -> None:
    from pipeline.common.urls import redact_url

    url: str = private_redis.url  # type: ignore[attr-defined]
    port: int = private_redis.port  # type: ignore[attr-defined]
    # Given the embedded server started with a password (with URL delimiters in it)
    # Then a store with the password in its URL works ...
    good = RedisStore.from_url(url)
    assert good.ping()
    good.close()
    # ... one without it, or with a wrong one, is refused
    for bad_url in (f"redis://127.0.0.1:{port}/0", f"redis://:wrong@127.0.0.1:{port}/0"):
        bad = RedisStore.from_url(bad_url)
        assert not bad.ping()
        bad.close()
    # and the URL, when printed, shows no password
    assert SECRET not in redact_url(url) and "127.0.0.1" in redact_url(url)
    # and the config file holding it is private to this user
    conf = Path(private_redis.data_dir) / "redis.conf"  # type: ignore[attr-defined]
    assert conf.stat().st_mode & 0o077 == 0
    assert private_redis.is_running()  # type: ignore[attr-defined]  # our own probe authenticates


def test_stack_status_redacts_the_redis_url(tmp_path: Path) -> None:
    from pipeline.runtime.stack import STATE_FILE, StackState, status

    # Given a running stack's state (this process stands in for it) with a password in the URL
    state = StackState(
        pid=os.getpid(), api_url=f"http://127.0.0.1:{free_port()}", redis_url=f"redis://:{SECRET}@10.0.0.2:6390/0",
        embedded_redis=True, ray_address="local", ray_started_here=True, started_at=0.0,
    )
    state.write(tmp_path)
    # When `emotionpipe status` reads it
    info = status(Settings(data_dir=tmp_path))
    # Then the URL is shown redacted, and the state file is private
    assert info["running"] and info["redis_url"] == "redis://***@10.0.0.2:6390/0"
    assert SECRET not in json.dumps(info)
    assert (tmp_path / STATE_FILE).stat().st_mode & 0o077 == 0


def test_redis_password_setting_is_secret() -> None:
    settings = Settings(redis={"password": SECRET})  # type: ignore[arg-type]
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
