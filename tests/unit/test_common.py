"""The shared helpers in ``pipeline.common``: backoff, sliding rate, and the import rules that keep
them (and the stages) free of cycles."""

from __future__ import annotations

import ast
import random
from collections import deque
from pathlib import Path

import pytest

import pipeline
from pipeline.common.backoff import backoff_delay
from pipeline.common.rate import sliding_rate

PACKAGE = Path(pipeline.__file__).parent


# --------------------------------------------------------------------------- backoff
def test_backoff_doubles_up_to_the_cap_without_jitter() -> None:
    assert [backoff_delay(a, 0.5, 10.0) for a in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff_delay(-3, 0.5, 10.0) == 0.5


def test_backoff_full_jitter_stays_within_the_ceiling() -> None:
    rng = random.Random(7)
    for attempt, ceiling in ((0, 0.5), (2, 2.0), (10, 30.0)):
        delays = [backoff_delay(attempt, 0.5, 30.0, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > 0.8 * ceiling  # spread over the range, not stuck at the bottom


def test_backoff_never_overflows_after_days_of_failures() -> None:
    assert backoff_delay(5000, 0.5, 30.0) == 30.0
    assert 0.0 <= backoff_delay(10**6, 0.5, 30.0, random.Random(1)) <= 30.0


# --------------------------------------------------------------------------- sliding rate
def test_sliding_rate_counts_recent_events_only() -> None:
    times = deque([0.0, 1.0, 10.0, 10.5, 11.0, 11.5, 12.0])
    # 5 events within 5 s of t=12 over 2 s: 2 per second; the old ones are outside the window
    assert sliding_rate(times, 12.0, 5.0) == pytest.approx(2.0)


@pytest.mark.parametrize("times", [[], [5.0], [5.0, 5.0]])
def test_sliding_rate_needs_two_distinct_events(times: list[float]) -> None:
    assert sliding_rate(times, 5.0, 5.0) == 0.0


def test_sliding_rate_of_a_source_that_stopped_is_zero() -> None:
    # the newest event is older than half the window: the source is not delivering now
    assert sliding_rate([1.0, 1.5, 2.0], 4.6, 5.0) == 0.0
    assert sliding_rate([1.0, 1.5, 2.0], 4.4, 5.0) == pytest.approx(2.0)


# --------------------------------------------------------------------------- import rules
def _imports(path: Path) -> set[str]:
    """Every absolute ``pipeline...`` module a file imports, at any depth (lazy imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {name for name in found if name == "pipeline" or name.startswith("pipeline.")}


def _imports_of(folder: str) -> set[str]:
    return set().union(*(_imports(p) for p in (PACKAGE / folder).rglob("*.py")))


def test_common_imports_no_stage_package() -> None:
    allowed = ("pipeline.common",)
    assert {m for m in _imports_of("common") if not m.startswith(allowed)} == set()


def test_store_does_not_import_the_alerting_stage() -> None:
    assert not any(m.startswith("pipeline.alerts") for m in _imports_of("store"))


def test_train_evaluate_and_quantize_do_not_import_each_other_both_ways() -> None:
    evaluate = _imports(PACKAGE / "train" / "evaluate.py")
    quantize = _imports(PACKAGE / "train" / "quantize.py")
    assert not (any(m.startswith("pipeline.train.quantize") for m in evaluate)
                and any(m.startswith("pipeline.train.evaluate") for m in quantize))


def test_the_package_does_not_reach_into_the_tests() -> None:
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert "tests/support" not in text and "tests.support" not in text, path


def test_the_rtsp_server_script_ships_inside_the_package() -> None:
    from pipeline.bench.camera_sim import RTSP_SERVER

    assert RTSP_SERVER.is_file()
    assert RTSP_SERVER.parent == PACKAGE / "bench"
