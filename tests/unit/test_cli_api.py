"""The CLI's API commands against the real app in-process (httpx routed to a TestClient, real Redis)."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from pipeline import cli
from pipeline.api.app import create_app
from pipeline.contracts import LABELS, EmotionResult
from pipeline.settings import Settings
from pipeline.store.redis_store import RedisStore

TOKEN = "cli-token"
API = ["--api", "http://api"]



@pytest.fixture()
def runner(redis_url: str, store: RedisStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    settings = Settings(redis={"url": redis_url}, api={"tokens": [TOKEN]})  # type: ignore[arg-type]
    client = TestClient(create_app(settings, store))

    def fake_request(method: str, url: str, **kwargs: Any) -> Any:
        kwargs.pop("timeout", None)
        return client.request(method, url.removeprefix("http://api"), **kwargs)

    monkeypatch.setattr("httpx.request", fake_request)
    monkeypatch.delenv("EP_API_TOKEN", raising=False)
    monkeypatch.setenv("EP_DATA_DIR", str(tmp_path / "no-stack"))  # no local token file to fall back on
    return CliRunner()


def _record(store: RedisStore, camera_id: str, labels: list[str], ts: float) -> None:
    results = []
    for i, label in enumerate(labels):
        probs = [0.0] * len(LABELS)
        probs[LABELS.index(label)] = 1.0
        results.append(EmotionResult(camera_id=camera_id, frame_id=i, ts=ts, face_idx=0, bbox=(0, 0, 9, 9),
                                     probs=tuple(probs), model="m@1", track_id=None))
    base = int(time.time() * 1000)
    store.record_results(results, [f"{base}-{i}".encode() for i in range(len(results))])


def test_cli_needs_a_token_for_mutations_and_says_how_to_get_one(runner: CliRunner) -> None:
    r = runner.invoke(cli.app, ["cameras", "add", "gate", "rtsp://h/x", *API])
    assert r.exit_code == 1 and "401" in r.output and "emotionpipe token" in r.output
    r = runner.invoke(cli.app, ["cameras", "add", "gate", "rtsp://h/x", "--token", TOKEN, *API])
    assert r.exit_code == 0, r.output


def test_cli_cameras_pause_resume_groups(runner: CliRunner, store: RedisStore) -> None:
    tok = ["--token", TOKEN, *API]
    r = runner.invoke(cli.app, ["cameras", "add", "gate", "rtsp://u:pw@h/x", "--group", "entry", "-g", "north", *tok])
    assert r.exit_code == 0, r.output
    assert "u:***@" in r.output and "entry, north" in r.output and "pw@" not in r.output
    runner.invoke(cli.app, ["cameras", "add", "yard", "rtsp://h/y", *tok])
    r = runner.invoke(cli.app, ["cameras", "pause", "gate", *tok])
    assert r.exit_code == 0 and store.get_camera("gate").enabled is False
    r = runner.invoke(cli.app, ["cameras", "list", "--group", "entry", "--json", *tok])
    cams = json.loads(r.output)
    assert [c["id"] for c in cams] == ["gate"] and cams[0]["enabled"] is False
    r = runner.invoke(cli.app, ["cameras", "resume", "gate", *tok])
    assert r.exit_code == 0 and store.get_camera("gate").enabled is True
    r = runner.invoke(cli.app, ["cameras", "list", *tok])
    assert r.exit_code == 0 and "gate" in r.output and "entry,north" in r.output
    r = runner.invoke(cli.app, ["cameras", "pause", "ghost", *tok])
    assert r.exit_code == 1 and "404" in r.output


def test_cli_summary_with_duration_windows(runner: CliRunner, store: RedisStore) -> None:
    tok = ["--token", TOKEN, *API]
    runner.invoke(cli.app, ["cameras", "add", "hall", "rtsp://h/x", "-g", "floor", *tok])
    _record(store, "hall", ["sad", "sad", "happy"], time.time() - 100)
    r = runner.invoke(cli.app, ["summary", "hall", "--window", "5m", "--json", *tok])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["window_s"] == 300 and s["faces"] == 3 and s["dominant"] == "sad"
    # 100 s ago is outside a 1 min window
    assert json.loads(runner.invoke(cli.app, ["summary", "hall", "--window", "1m", "--json", *tok]).output)["faces"] == 0
    r = runner.invoke(cli.app, ["summary", "floor", "--group", "--window", "5m", *tok])
    assert r.exit_code == 0 and "3 faces" in r.output and "sad" in r.output
    r = runner.invoke(cli.app, ["summary", "hall", "--window", "5x", *tok])
    assert r.exit_code == 1 and "422" in r.output and "not a duration" in r.output


def test_cli_watch_once(runner: CliRunner, store: RedisStore) -> None:
    tok = ["--token", TOKEN, *API]
    runner.invoke(cli.app, ["cameras", "add", "lobby", "rtsp://h/x", *tok])
    runner.invoke(cli.app, ["cameras", "add", "yard", "rtsp://h/y", "--paused", *tok])
    store.set_health("lobby", {"state": "live", "fps_in": 24.5, "fps_out": 5.0})
    _record(store, "lobby", ["happy", "happy", "fear"], time.time() - 5)
    r = runner.invoke(cli.app, ["watch", "--once", "--window", "1m", *tok])
    assert r.exit_code == 0, r.output
    lobby = next(line for line in r.output.splitlines() if "lobby" in line)
    assert "live" in lobby and "24.5" in lobby and "happy 67%" in lobby and "fear 33%" in lobby
    yard = next(line for line in r.output.splitlines() if "yard" in line)
    assert "paused" in yard


def test_cli_export_to_a_file(runner: CliRunner, store: RedisStore, tmp_path: Path) -> None:
    tok = ["--token", TOKEN, *API]
    runner.invoke(cli.app, ["cameras", "add", "ex", "rtsp://h/x", *tok])
    now = time.time()
    _record(store, "ex", ["angry", "angry"], now - 30)
    out = tmp_path / "ex.csv"
    start, end = int(now - 120), int(now) + 1
    r = runner.invoke(cli.app, ["cameras", "export", "ex", "--start", str(start), "--end", str(end), "--format", "csv",
                                "--step", "1m", "-o", str(out), *tok])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open()))
    assert sum(int(row["faces"]) for row in rows) == 2 and sum(int(row["angry"]) for row in rows) == 2
    r = runner.invoke(cli.app, ["cameras", "export", "ex", "--start", str(end), "--end", str(start), *tok])
    assert r.exit_code == 1 and "end must be after start" in r.output


def test_cli_alerts_and_token(runner: CliRunner, store: RedisStore, monkeypatch: pytest.MonkeyPatch,
                              tmp_path: Path) -> None:
    tok = ["--token", TOKEN, *API]
    r = runner.invoke(cli.app, ["alerts", "add", "tense", "-c", "lobby", "--labels", "angry,fear",
                                "--threshold", "0.3", "--window", "5m", "--webhook", "https://u:s3@h.example/x", *tok])
    assert r.exit_code == 0, r.output
    assert store.get_alert("tense").window == 300
    r = runner.invoke(cli.app, ["alerts", "list", *tok])
    assert r.exit_code == 0 and "tense" in r.output and "angry+fear > 0.3" in r.output and "s3@" not in r.output
    r = runner.invoke(cli.app, ["alerts", "add", "bad", "--labels", "sad", "--threshold", "0.5", *tok])
    assert r.exit_code == 1 and "exactly one of camera_id and group" in r.output
    r = runner.invoke(cli.app, ["alerts", "events", "tense", "--json", *tok])
    assert r.exit_code == 0 and json.loads(r.output) == []
    r = runner.invoke(cli.app, ["alerts", "rm", "tense", *tok])
    assert r.exit_code == 0 and store.list_alerts() == []
    # `token` prints the local stack's token file
    assert runner.invoke(cli.app, ["token"]).exit_code == 1
    data = tmp_path / "stack"
    data.mkdir()
    (data / "api-token").write_text("local-secret\n")
    monkeypatch.setenv("EP_DATA_DIR", str(data))
    r = runner.invoke(cli.app, ["token"])
    assert r.exit_code == 0 and r.output.strip() == "local-secret"


def test_cli_reports_an_unreachable_api(monkeypatch: pytest.MonkeyPatch) -> None:
    r = CliRunner().invoke(cli.app, ["cameras", "list", "--api", "http://127.0.0.1:9", "--token", "x"])
    assert r.exit_code == 2 and "cannot reach the API" in r.output
