"""Operator API (issue 4): pause/resume, groups, duration windows, time series, overview, export.

Real redis-server through the real store and the FastAPI app (TestClient), no Ray.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from pipeline.api.app import create_app
from pipeline.contracts import LABELS, EmotionResult
from pipeline.settings import Settings
from pipeline.store.redis_store import RedisStore

TOKEN = "operator-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}



@pytest.fixture()
def client(redis_url: str, store: RedisStore) -> Iterator[TestClient]:
    settings = Settings(redis={"url": redis_url}, api={"tokens": [TOKEN]})  # type: ignore[arg-type]
    with TestClient(create_app(settings, store), headers=AUTH) as c:
        yield c


def _result(camera_id: str, label: str, ts: float, frame_id: int = 0) -> EmotionResult:
    probs = [0.02] * len(LABELS)
    probs[LABELS.index(label)] = 0.88
    return EmotionResult(camera_id=camera_id, frame_id=frame_id, ts=ts, face_idx=0, bbox=(1, 1, 9, 9),
                         probs=tuple(probs), model="m@1", track_id=frame_id % 3)


def _record(store: RedisStore, camera_id: str, labels_ts: list[tuple[str, float]]) -> None:
    base = int(time.time() * 1000)
    results = [_result(camera_id, label, ts, i) for i, (label, ts) in enumerate(labels_ts)]
    ids = [f"{base}-{hash((camera_id, i)) & 0xFFFF}{i}".encode() for i in range(len(results))]
    assert store.record_results(results, ids) == len(results)


# --------------------------------------------------------------------------- pause / resume
def test_pause_and_resume_endpoints(client: TestClient, store: RedisStore) -> None:
    # given a running camera
    client.post("/cameras", json={"id": "gate", "url": "rtsp://h/x"})
    v0 = store.registry_version()
    # when it is paused, then it is disabled and the manager sees a registry change
    r = client.post("/cameras/gate/pause")
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert store.get_camera("gate").enabled is False and store.registry_version() == v0 + 1
    # pausing twice changes nothing
    assert client.post("/cameras/gate/pause").status_code == 200 and store.registry_version() == v0 + 1
    # when resumed, it is enabled again
    assert client.post("/cameras/gate/resume").json()["enabled"] is True
    assert store.get_camera("gate").enabled is True
    assert client.post("/cameras/ghost/pause").status_code == 404
    # mutations need the token
    assert client.post("/cameras/gate/pause", headers={"Authorization": "Bearer wrong"}).status_code == 401


# --------------------------------------------------------------------------- groups
def test_groups_filter_and_group_summary(client: TestClient, store: RedisStore) -> None:
    # given three cameras, two of them in group "lobby"
    for cam, groups in (("a", ["lobby", "floor1"]), ("b", ["lobby"]), ("c", [])):
        r = client.post("/cameras", json={"id": cam, "url": "rtsp://h/x", "groups": groups})
        assert r.status_code == 201 and r.json()["groups"] == groups
    now = time.time()
    _record(store, "a", [("happy", now - 3), ("happy", now - 2), ("angry", now - 2)])
    _record(store, "b", [("angry", now - 1)])
    _record(store, "c", [("sad", now - 1)] * 5)
    # when groups are listed / cameras filtered
    groups = client.get("/groups").json()
    assert groups == [{"name": "floor1", "cameras": ["a"]}, {"name": "lobby", "cameras": ["a", "b"]}]
    assert [c["id"] for c in client.get("/cameras", params={"group": "lobby"}).json()] == ["a", "b"]
    assert client.get("/cameras", params={"group": "nobody"}).json() == []
    assert client.get("/groups/lobby").json()["cameras"] == ["a", "b"]
    # then the group summary adds up its members only
    s = client.get("/groups/lobby/summary", params={"window": "1m"}).json()
    assert s["camera_id"] == "group:lobby" and s["faces"] == 4
    assert s["counts"]["happy"] == 2 and s["counts"]["angry"] == 2 and s["counts"]["sad"] == 0
    assert s["shares"]["angry"] == pytest.approx(0.5) and s["window_s"] == 60
    assert s["dominant"] in ("happy", "angry")
    assert client.get("/groups/nobody/summary").status_code == 404
    assert client.get("/groups/Bad Name/summary").status_code == 422


def test_groups_are_validated_and_patchable(client: TestClient, store: RedisStore) -> None:
    r = client.post("/cameras", json={"id": "g1", "url": "rtsp://h/x", "groups": ["Not Valid"]})
    assert r.status_code == 422
    r = client.post("/cameras", json={"id": "g1", "url": "rtsp://h/x", "groups": ["x", "x", "y"]})
    assert r.json()["groups"] == ["x", "y"]
    assert client.patch("/cameras/g1", json={"groups": ["z"]}).json()["groups"] == ["z"]
    assert store.get_camera("g1").groups == ["z"]
    # a camera stored before groups existed reads back with none
    store.client.hdel(store.keys.camera("g1"), "groups")
    assert client.get("/cameras/g1").json()["groups"] == []


# --------------------------------------------------------------------------- windows
@pytest.mark.parametrize(("window", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("24h", 86400),
                                                 ("90", 90), ("10", 10)])
def test_windows_accept_durations(client: TestClient, window: str, seconds: float) -> None:
    client.post("/cameras", json={"id": "w", "url": "rtsp://h/x"})
    r = client.get("/cameras/w/summary", params={"window": window})
    assert r.status_code == 200, r.text
    assert r.json()["window_s"] == seconds


@pytest.mark.parametrize("window", ["5", "25h", "abc", "-1m", "1w", "0"])
def test_bad_windows_are_a_clear_422(client: TestClient, window: str) -> None:
    client.post("/cameras", json={"id": "w", "url": "rtsp://h/x"})
    r = client.get("/cameras/w/summary", params={"window": window})
    assert r.status_code == 422
    assert "window" in r.json()["detail"]
    assert client.get("/cameras/w/timeseries", params={"window": window}).status_code == 422


def test_timeseries_resamples_to_the_step(client: TestClient, store: RedisStore) -> None:
    # given faces spread over the last 40 seconds
    client.post("/cameras", json={"id": "ts", "url": "rtsp://h/x"})
    now = time.time()
    _record(store, "ts", [("happy", now - 35), ("sad", now - 25), ("sad", now - 24), ("happy", now - 1)])
    # when a one-minute window is asked with 10 s steps
    points = client.get("/cameras/ts/timeseries", params={"window": "1m", "step": "10s"}).json()
    # then points are 10 s apart, aligned, and hold every face
    assert all(p["ts"] % 10 == 0 for p in points)
    assert all(b["ts"] - a["ts"] == 10 for a, b in itertools.pairwise(points))
    assert 6 <= len(points) <= 7
    assert sum(p["faces"] for p in points) == 4
    assert sum(p["counts"]["sad"] for p in points) == 2
    # per-second by default; /series is the same thing
    per_second = client.get("/cameras/ts/timeseries", params={"window": "1m"}).json()
    assert len(per_second) == 60 and sum(p["faces"] for p in per_second) == 4
    series = client.get("/cameras/ts/series", params={"window": "1m"}).json()
    # (a second may tick between the two requests on a loaded machine: compare by timestamp)
    by_ts = {p["ts"]: p for p in per_second}
    assert sum(p["faces"] for p in series) == 4
    assert all(p == by_ts[p["ts"]] for p in series if p["ts"] in by_ts)
    # long windows use minute buckets; a step below a minute is rounded up
    hourly = client.get("/cameras/ts/timeseries", params={"window": "1h", "step": "10s"}).json()
    assert len(hourly) == 60 and all(p["ts"] % 60 == 0 for p in hourly)
    assert sum(p["faces"] for p in hourly) == 4
    r = client.get("/cameras/ts/timeseries", params={"window": "1m", "step": "2m"})
    assert r.status_code == 422 and "step" in r.json()["detail"]


# --------------------------------------------------------------------------- overview
def test_overview_lists_every_camera(client: TestClient, store: RedisStore) -> None:
    client.post("/cameras", json={"id": "o1", "url": "rtsp://h/x"})
    client.post("/cameras", json={"id": "o2", "url": "rtsp://h/y", "enabled": False})
    store.set_health("o1", {"state": "live", "fps_in": 25.0, "fps_out": 4.8})
    now = time.time()
    _record(store, "o1", [("fear", now - 2), ("fear", now - 1), ("neutral", now - 1)])
    body = client.get("/overview", params={"window": "30s"}).json()
    assert body["window_s"] == 30
    o1, o2 = body["cameras"]
    assert (o1["id"], o1["state"], o1["fps_in"], o1["faces"], o1["dominant"]) == ("o1", "live", 25.0, 3, "fear")
    assert o1["shares"]["fear"] == pytest.approx(2 / 3)
    assert (o2["id"], o2["state"], o2["enabled"], o2["faces"]) == ("o2", "unknown", False, 0)


def test_overview_and_metrics_say_when_the_pipeline_is_over_capacity(client: TestClient, store: RedisStore) -> None:
    for i in range(4):
        client.post("/cameras", json={"id": f"cap{i}", "url": f"rtsp://h/{i}"})
        store.set_health(f"cap{i}", {"state": "live", "fps_target": 5.0, "fps_out": 5.0, "fps_dropped": 0.0})
    keeping_up = client.get("/overview").json()["capacity"]
    assert keeping_up["over_capacity"] is False and keeping_up["demand_fps"] == 20
    assert "ep_pipeline_over_capacity 0.0" in client.get("/metrics").text
    # when every camera gets 3 of its 5 frames/s processed and drops the rest
    for i in range(4):
        store.set_health(f"cap{i}", {"state": "live", "fps_target": 5.0, "fps_out": 3.0, "fps_dropped": 2.0})
    over = client.get("/overview").json()["capacity"]
    assert over == {"cameras": 4, "demand_fps": 20.0, "processed_fps": 12.0, "dropped_fps": 8.0,
                    "over_capacity": True, "sustainable_cameras": 2}
    metrics = client.get("/metrics").text
    assert "ep_pipeline_over_capacity 1.0" in metrics and "ep_pipeline_dropped_fps 8.0" in metrics


# --------------------------------------------------------------------------- export
def test_export_csv_and_json(client: TestClient, store: RedisStore) -> None:
    # given faces in three different minutes of the last hour
    client.post("/cameras", json={"id": "ex", "url": "rtsp://h/x"})
    now = time.time()
    minute = math.floor(now / 60) * 60
    _record(store, "ex", [("happy", minute - 170), ("happy", minute - 110), ("sad", minute - 110),
                          ("angry", minute - 50)])
    start, end = minute - 180, minute
    # when exported as CSV with 1-minute steps
    r = client.get("/cameras/ex/export", params={"start": start, "end": end, "format": "csv", "step": "1m"})
    # then it is an attachment with the documented header and one row per minute
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == f'attachment; filename="ex_{start}_{end}.csv"'
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["ts", "faces", *LABELS, *(f"p_{x}" for x in LABELS)]
    assert [int(row[0]) for row in rows[1:]] == [start, start + 60, start + 120]
    assert [int(row[1]) for row in rows[1:]] == [1, 2, 1]
    second = dict(zip(rows[0], rows[2]))
    assert (second["happy"], second["sad"]) == ("1", "1")
    assert float(second["p_happy"]) == pytest.approx((0.88 + 0.02) / 2)
    # JSON with ISO-8601 times gives the same rows
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
    j = client.get("/cameras/ex/export", params={"start": iso, "end": end, "format": "json", "step": "60"})
    body = j.json()
    assert j.headers["content-disposition"].endswith('.json"')
    assert [row["faces"] for row in body["rows"]] == [1, 2, 1] and body["step_s"] == 60
    # per-second export of the last minute holds the newest face
    s = client.get("/cameras/ex/export", params={"start": minute - 60, "end": minute, "format": "json"}).json()
    assert s["step_s"] == 1 and len(s["rows"]) == 60 and sum(x["faces"] for x in s["rows"]) == 1


@pytest.mark.parametrize(("params", "needle"), [
    ({"start": 2000, "end": 1000}, "end must be after start"),
    ({"start": 0, "end": 30 * 86400}, "range too large"),
    ({"start": 0, "end": 7200, "step": "10s"}, "per-second"),
    ({"start": "yesterday"}, "start"),
    ({"start": 0, "end": 60, "step": "1.5"}, "whole number"),
])
def test_export_bounds_are_a_clear_422(client: TestClient, params: dict[str, object], needle: str) -> None:
    client.post("/cameras", json={"id": "ex", "url": "rtsp://h/x"})
    r = client.get("/cameras/ex/export", params=params)
    assert r.status_code == 422 and needle in r.json()["detail"]


def test_export_of_an_unknown_camera_and_format(client: TestClient) -> None:
    assert client.get("/cameras/ghost/export").status_code == 404
    client.post("/cameras", json={"id": "ex", "url": "rtsp://h/x"})
    assert client.get("/cameras/ex/export", params={"format": "xml"}).status_code == 422
