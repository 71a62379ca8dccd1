"""Runtime pieces without a cluster: embedded Redis, autoscaling policy, app options, stack state, CLI."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from pipeline.exceptions import CameraExists, ConfigError
from pipeline.classify.autoscale import POLICY_PATH, QueueLagPolicy, desired_replicas
from pipeline.runtime.redis_server import EmbeddedRedis, RedisServerError, render_config
from pipeline.runtime.stack import (
    DEMO_CAMERAS,
    StackState,
    demo_settings,
    down,
    register_demo_cameras,
    status,
    with_section,
)
from pipeline.settings import Settings
from tests.support.net import free_port


# --------------------------------------------------------------------------- embedded Redis
def test_config_has_aof_and_never_evicts(tmp_path: Path) -> None:
    conf = render_config(6390, tmp_path)
    assert "appendonly yes" in conf and "maxmemory-policy noeviction" in conf
    assert f'dir "{tmp_path}"' in conf and "bind 127.0.0.1" in conf


def test_port_6379_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="6379"):
        EmbeddedRedis(6379, tmp_path)


@pytest.mark.slow
def test_data_survives_kill_9(tmp_path: Path) -> None:
    # given an embedded server with a key written more than one fsync period ago
    server = EmbeddedRedis(free_port(), tmp_path / "data")
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        client.xadd("s", {"f": "1"})
        time.sleep(1.5)  # appendfsync everysec
        # when it is killed without warning and started again
        server.kill()
        assert not server.is_running()
        server.start()
        # then the data is back from the AOF
        assert client.get("k") == b"v" and client.xlen("s") == 1
        assert (tmp_path / "data" / "appendonlydir").is_dir()
    finally:
        server.stop()
    assert not server.is_running()


def test_second_server_on_a_taken_port_fails_clearly(redis_server: Any, tmp_path: Path) -> None:
    with pytest.raises(RedisServerError, match="already has a Redis"):
        EmbeddedRedis(redis_server.port, tmp_path).start()


def test_missing_binary_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(RedisServerError, match="not found"):
        EmbeddedRedis(free_port(), tmp_path, binary="no-such-redis-server").start()


# --------------------------------------------------------------------------- autoscaling
@pytest.mark.parametrize(
    ("lag", "lo", "hi", "want"),
    [(0, 0, 4, 0), (0, 1, 4, 1), (1, 0, 4, 1), (256, 1, 4, 1), (257, 1, 4, 2), (10_000, 1, 4, 4), (-5, 0, 2, 0)],
)
def test_desired_replicas(lag: float, lo: int, hi: int, want: int) -> None:
    assert desired_replicas(lag, 256, lo, hi) == want


def test_policy_sizes_replicas_by_lag_and_holds_without_data() -> None:
    policy = QueueLagPolicy(target_lag_per_replica=100)
    assert policy.decide(350, current=1, lo=1, hi=4) == 4
    assert policy.decide(0, current=4, lo=1, hi=4) == 1  # Serve's downscale_delay_s holds it back
    assert policy.decide(None, current=2, lo=1, hi=4) == 2


def test_classifier_delays_are_set_because_serve_wraps_custom_policies() -> None:
    # Serve 2.60 applies autoscaling_config delays around custom policies, 600 s down by default
    from ray.serve.config import AutoscalingConfig

    from pipeline.serve_app import classifier_deployment_options

    s = Settings()
    auto = classifier_deployment_options(s)["autoscaling_config"]
    config = AutoscalingConfig(**auto)
    assert config.upscale_delay_s == s.classify.upscale_delay_s
    assert config.downscale_delay_s == s.classify.downscale_delay_s < 600


# --------------------------------------------------------------------------- app options
def test_replicas_reserve_fractional_cpus_and_classifier_scales_on_lag() -> None:
    pytest.importorskip("pipeline.classify.deployment")
    from pipeline.serve_app import classifier_deployment_options, detector_options, ingress_options

    s = Settings()
    det, cls, ing = detector_options(s), classifier_deployment_options(s), ingress_options(s)
    for opts in (det, cls, ing):
        assert 0 < opts["ray_actor_options"]["num_cpus"] < 1
    assert det["max_ongoing_requests"] == s.detect.max_ongoing_requests
    assert cls["autoscaling_config"]["policy"]["policy_function"] == POLICY_PATH
    assert cls["autoscaling_config"]["max_replicas"] == s.classify.max_replicas


def test_build_app_needs_a_redis_url() -> None:
    from pipeline.serve_app import build_app

    with pytest.raises(ConfigError, match="redis"):
        build_app(Settings())


# --------------------------------------------------------------------------- stack state
def test_state_roundtrip_and_status_without_a_stack(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert status(settings) == {"running": False}
    assert down(settings) is False
    state = StackState(
        pid=2**22 + 12345, api_url="http://127.0.0.1:1", redis_url="redis://x", embedded_redis=False,
        ray_address="127.0.0.1:1", ray_started_here=True, started_at=1.0,
    )
    state.write(tmp_path)
    assert StackState.read(tmp_path) == state
    # a state file left by a dead process is not a running stack, and down cleans it up
    assert status(settings) == {"running": False}
    assert down(settings) is False
    assert StackState.read(tmp_path) is None


def test_demo_profile_and_demo_cameras(tmp_path: Path) -> None:
    assert demo_settings(Settings()).ingest.allow_files is True
    assert with_section(Settings(), "api", port=9).api.port == 9

    class FakeStore:
        def __init__(self) -> None:
            self.cams: dict[str, Any] = {}

        def add_camera(self, cfg: Any) -> None:
            if cfg.id in self.cams:
                raise CameraExists(cfg.id)
            self.cams[cfg.id] = cfg

    camera_id, rel, _ = DEMO_CAMERAS[0]
    (tmp_path / rel).parent.mkdir(parents=True)
    (tmp_path / rel).write_bytes(b"\x00")
    store = FakeStore()
    assert register_demo_cameras(store, tmp_path) == [camera_id]  # only media that exist
    assert register_demo_cameras(store, tmp_path) == [camera_id]  # idempotent
    assert store.cams[camera_id].url == str(tmp_path / rel)


# --------------------------------------------------------------------------- CLI
def test_cli_help_and_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.cli import app

    monkeypatch.setenv("EP_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("up", "down", "status", "cameras", "summary", "train", "eval", "analyze", "bench"):
        assert command in result.output
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 3 and "not running" in result.output


def test_cli_cameras_against_the_api(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # the CLI speaks HTTP; its requests are routed to the real app in-process (TestClient)
    from fastapi.testclient import TestClient

    import pipeline.cli as cli
    from pipeline.api.app import create_app
    from pipeline.store.redis_store import RedisStore

    store = RedisStore.from_url(redis_url)
    settings = Settings(redis={"url": redis_url}, api={"tokens": ["cli-token"]})  # type: ignore[arg-type]
    client = TestClient(create_app(settings, store))
    monkeypatch.setenv("EP_API_TOKEN", "cli-token")

    def fake_request(method: str, url: str, **kwargs: Any) -> Any:
        kwargs.pop("timeout", None)
        return client.request(method, url.removeprefix("http://api"), **kwargs)

    monkeypatch.setattr("httpx.request", fake_request)
    runner = CliRunner()
    r = runner.invoke(cli.app, ["cameras", "add", "gate", "rtsp://u:pw@h/x", "--fps", "2", "--api", "http://api"])
    assert r.exit_code == 0, r.output
    assert "u:pw@" not in r.output and "u:***@" in r.output
    r = runner.invoke(cli.app, ["cameras", "add", "gate", "rtsp://h/x", "--api", "http://api"])
    assert r.exit_code == 1 and "409" in r.output
    r = runner.invoke(cli.app, ["summary", "gate", "--json", "--api", "http://api"])
    assert r.exit_code == 0 and '"faces": 0' in r.output
    r = runner.invoke(cli.app, ["cameras", "rm", "gate", "--api", "http://api"])
    assert r.exit_code == 0
    r = runner.invoke(cli.app, ["cameras", "list", "--json", "--api", "http://api"])
    assert r.exit_code == 0 and r.output.strip() == "[]"
    store.close()
