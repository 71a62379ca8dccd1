"""Property tests: the real API on a real Redis answers any JSON with a 2xx/4xx, never a 500,
and accepts a camera exactly when the request model and the source policy accept it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pipeline.api.app import create_app
from pipeline.api.schemas import CameraCreate
from pipeline.ingest.exceptions import InvalidSource
from pipeline.ingest.sources import validate_source
from pipeline.settings import Settings
from pipeline.store.models import CAMERA_ID_PATTERN
from pipeline.store.redis_store import RedisStore

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_value = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
urls = st.one_of(
    st.sampled_from([
        "rtsp://10.0.0.5/live", "rtsp://u:p@192.168.1.9:554/s", "http://127.0.0.1/", "http://0x7f.1/",
        "http://169.254.169.254/", "file:///etc/passwd", "/etc/passwd", "webcam:0", "ftp://h/x", "rtsp://",
        "rtsp://[::1]/x", "rtsp://h:99999/x", "rtsp://camera.invalid/x", "", " ", "rtsp://a b/x",
    ]),
    st.text(max_size=60),
    st.builds(lambda s, h, p: f"{s}://{h}{p}", st.sampled_from(["rtsp", "http", "https", "rtsps", "gopher"]),
              st.text(alphabet="abc019.:@[]%x", min_size=0, max_size=20), st.text(max_size=10)),
)
camera_fields = {
    "id": st.one_of(st.from_regex(CAMERA_ID_PATTERN, fullmatch=True), json_value),
    "url": st.one_of(urls, json_value),
    "fps": st.one_of(st.floats(-10, 100, allow_nan=False), st.integers(-5, 100), json_value),
    "name": st.one_of(st.text(max_size=300), json_value),
    "enabled": st.one_of(st.booleans(), json_value),
    "keep_frames": st.one_of(st.booleans(), json_value),
    "labels": st.one_of(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3), json_value),
    "unknown_field": json_value,
}


@st.composite
def camera_bodies(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_value)  # not even an object, sometimes
    keys = draw(st.sets(st.sampled_from(sorted(camera_fields)), max_size=len(camera_fields)))
    body = {"id": draw(camera_fields["id"]), "url": draw(camera_fields["url"])}
    body.update({k: draw(camera_fields[k]) for k in keys})
    return body


@pytest.fixture(scope="module")
def api(redis_server: Any) -> Iterator[tuple[TestClient, RedisStore, Settings]]:
    settings_ = Settings(redis={"url": redis_server.url, "prefix": "fuzzapi:"}, api={"tokens": [TOKEN]})  # type: ignore[arg-type]
    store = RedisStore.from_settings(settings_)
    with TestClient(create_app(settings_, store), headers=AUTH) as client:
        yield client, store, settings_
    store.close()


def _expected(body: Any, settings_: Settings) -> int:
    try:
        model = CameraCreate.model_validate(body)
    except ValidationError:
        return 422
    try:
        validate_source(model.url, settings_.ingest)
    except InvalidSource:
        return 422
    return 201


@FUZZ
@given(camera_bodies())
def test_camera_registration_agrees_with_the_model_and_policy(
    api: tuple[TestClient, RedisStore, Settings], body: Any
) -> None:
    client, store, settings_ = api
    r = client.post("/cameras", json=body)
    try:
        assert r.status_code < 500, r.text
        expected = _expected(body, settings_)
        assert r.status_code == expected, (body, r.status_code, r.text)
        if r.status_code == 201:
            shown = r.json()["url"]
            assert ":p@" not in shown  # credentials never come back
    finally:
        if r.status_code == 201:
            store.remove_camera(r.json()["id"])


def _operations(client: TestClient) -> list[tuple[str, str]]:
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    return sorted((m.upper(), p) for p, ops in paths.items() for m in ops)


@FUZZ
@given(st.data())
def test_any_json_to_any_mutating_route_is_never_a_500(
    api: tuple[TestClient, RedisStore, Settings], data: st.DataObject
) -> None:
    client, store, _ = api
    ops = [op for op in _operations(client) if op[0] in ("POST", "PUT", "PATCH", "DELETE")]
    method, path = data.draw(st.sampled_from(ops))
    ident = data.draw(st.one_of(st.just("cam1"), st.text(alphabet="abc-_.%19 ", min_size=1, max_size=70)))
    url = re.sub(r"\{[^}]+\}", lambda _: ident.replace("/", "_").replace("?", "_").replace("#", "_"), path)
    body = data.draw(json_value)
    r = client.request(method, url, json=body)
    assert r.status_code < 500, (method, url, body, r.status_code, r.text)
    for camera in store.list_cameras():
        store.remove_camera(camera.id)


@FUZZ
@given(st.sampled_from(["summary", "timeseries"]), st.text(max_size=12), st.text(max_size=12))
def test_query_parameters_are_never_a_500(
    api: tuple[TestClient, RedisStore, Settings], view: str, window: str, step: str
) -> None:
    client, store, _ = api
    if not store.list_cameras():
        assert client.post("/cameras", json={"id": "cam1", "url": "rtsp://10.0.0.5/x"}).status_code == 201
    params = {"window": window} if view == "summary" else {"window": window, "step": step}
    r = client.get(f"/cameras/cam1/{view}", params=params)
    assert r.status_code < 500, (view, params, r.status_code, r.text)
