"""Detection stage logic (DetectionStage) with the fake backend: no model, no Ray, no Redis."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline.contracts import FaceCrop
from pipeline.detect.analyze import analyze_paths
from pipeline.detect.backends import FakeBackend, available_backends, create_backend
from pipeline.detect.detector import DetectionStage
from pipeline.detect.exceptions import DetectError, InvalidFrame, PublishError, UnknownBackend
from pipeline.detect.tracker import TrackerState
from pipeline.detect.types import FrameMeta
from pipeline.exceptions import ConfigError, PipelineError
from pipeline.settings import DetectSettings
from pipeline.store.exceptions import StoreUnavailable

FAKE = DetectSettings(backend="fake")


class ListStore:
    """Records published crops; ``accept=False`` behaves like a full backlog."""

    def __init__(self, accept: bool = True) -> None:
        self.accept = accept
        self.published: list[FaceCrop] = []
        self.calls = 0

    def publish_faces(self, crops: list[FaceCrop]) -> int:
        self.calls += 1
        if not self.accept:
            return 0
        self.published.extend(crops)
        return len(crops)


class DownStore:
    def publish_faces(self, crops: list[FaceCrop]) -> int:
        raise StoreUnavailable("Redis unavailable: connection refused")


def _frame(h: int = 240, w: int = 320) -> np.ndarray:
    return np.full((h, w, 3), 128, np.uint8)


def test_registry_knows_builtins_and_rejects_unknown() -> None:
    assert {"fake", "retinaface"} <= set(available_backends())
    assert isinstance(create_backend(FAKE), FakeBackend)
    with pytest.raises(UnknownBackend) as info:
        create_backend(DetectSettings(backend="nope"))
    # callers may catch it as a config problem or as any pipeline error
    assert isinstance(info.value, ConfigError) and isinstance(info.value, DetectError)
    assert isinstance(info.value, PipelineError)


def test_process_publishes_decodable_crops_with_track_ids() -> None:
    # given
    detector = DetectionStage(FAKE)
    store = ListStore()
    # when: two consecutive frames of one camera
    r1 = detector.process(_frame(), FrameMeta("cam1", 7, 100.0), None, store)
    r2 = detector.process(_frame(), FrameMeta("cam1", 8, 100.2), r1.tracks, store)
    # then
    assert (r1.n_faces, r2.n_faces) == (1, 1)
    assert r1.track_ids == r2.track_ids == (1,)
    assert not r1.publish_refused
    assert {"detect", "align", "track", "publish", "total"} <= set(r1.timings)
    msg = FaceCrop.decode(store.published[1].encode())
    assert (msg.camera_id, msg.frame_id, msg.ts, msg.face_idx, msg.track_id) == ("cam1", 8, 100.2, 0, 1)
    assert msg.crop_shape == (48, 48) and len(msg.crop) == 48 * 48
    assert msg.bbox == r2.boxes[0]


def test_refused_publish_is_reported_and_tracks_still_advance() -> None:
    result = DetectionStage(FAKE).process(_frame(), FrameMeta("cam1", 1, 1.0), TrackerState(), ListStore(accept=False))
    assert result.publish_refused and result.n_faces == 1
    assert result.tracks.next_id == 2


def test_no_faces_publishes_nothing_and_is_not_a_refusal() -> None:
    store = ListStore(accept=False)
    result = DetectionStage(FAKE).process(np.zeros((240, 320, 3), np.uint8), FrameMeta("c", 1, 1.0), None, store)
    assert result.n_faces == 0 and result.boxes == () and not result.publish_refused


def test_store_failure_raises_publish_error() -> None:
    with pytest.raises(PublishError):
        DetectionStage(FAKE).process(_frame(), FrameMeta("c", 1, 1.0), None, DownStore())


def test_store_none_is_a_dry_run() -> None:
    result = DetectionStage(FAKE).process(_frame(), FrameMeta("c", 1, 1.0), None, None)
    assert result.n_faces == 1 and not result.publish_refused


def test_filters_small_and_low_score_faces() -> None:
    backend = FakeBackend(boxes=[(0, 0, 10, 10), (50, 50, 60, 60)])
    detector = DetectionStage(DetectSettings(backend="fake", min_face_px=20), backend=backend)
    assert [d.bbox for d in detector.detect_frame(_frame())] == [(50, 50, 60, 60)]
    weak = DetectionStage(DetectSettings(score_threshold=0.9), backend=FakeBackend(score=0.5))
    assert weak.detect_frame(_frame()) == []


@pytest.mark.parametrize("frame", [np.zeros((10, 10, 3), np.float32), np.zeros((0, 5, 3), np.uint8), "frame"])
def test_invalid_frames_raise(frame: object) -> None:
    with pytest.raises(InvalidFrame):
        DetectionStage(FAKE).detect_frame(frame)  # type: ignore[arg-type]


def test_crops_shape_follows_settings() -> None:
    detector = DetectionStage(DetectSettings(backend="fake", crop_size=64))
    dets = detector.detect_frame(_frame())
    assert detector.crops(_frame(), dets).shape == (1, 64, 64)


def test_analyze_reports_faces_and_unreadable_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import cv2

    class Uniform:
        name = "uniform@0"

        def predict(self, crops: np.ndarray) -> np.ndarray:
            probs = np.zeros((len(crops), 7), np.float32)
            probs[:, 3] = 1.0
            return probs

    good = tmp_path / "a.png"
    cv2.imwrite(str(good), _frame())
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"not an image")
    broken_video = tmp_path / "c.mp4"
    broken_video.write_bytes(b"not a video")
    results = analyze_paths([good, bad, broken_video], DetectionStage(FAKE), Uniform())
    assert [r.error is None for r in results] == [True, False, False]
    assert [r.kind for r in results] == ["image", "image", "video"]
    face = results[0].faces[0]
    assert face.label == "happy" and face.probs["happy"] == 1.0 and results[0].model == "uniform@0"
    as_dict = results[0].to_dict()
    assert as_dict["faces"] == [dataclasses.asdict(face)]


def test_frames_older_than_max_age_are_stale_for_the_live_detector() -> None:
    from pipeline.detect.deployment import is_stale

    meta = FrameMeta("cam1", 1, 1000.0)
    assert not is_stale(meta, 2.0, now=1001.9)
    assert is_stale(meta, 2.0, now=1002.1)
    assert not is_stale(meta, 0.0, now=5000.0)  # 0 = never skip (offline analysis, replays)


def test_a_batch_of_cameras_publishes_once_and_fails_frame_by_frame() -> None:
    store = ListStore()
    stage = DetectionStage(DetectSettings(), backend=FakeBackend(), refine_tilt_deg=None)
    frame = np.full((120, 160, 3), 90, np.uint8)
    metas = [FrameMeta("a", 1, 10.0), FrameMeta("b", 1, 10.0), FrameMeta("c", 1, 10.0)]
    results = stage.process_batch([frame, np.zeros((4,), np.float32), frame], metas, [None, None, None], store)
    # the bad frame fails alone; the two good frames' faces go to the store in one call
    assert [type(r).__name__ for r in results] == ["DetectResult", "DetectFailure", "DetectResult"]
    assert "InvalidFrame" in results[1].message
    assert store.calls == 1 and [c.camera_id for c in store.published] == ["a", "c"]
    # a refusal marks every frame that had faces; a store failure fails the batch
    refused = stage.process_batch([frame, frame], metas[:2], [None, None], ListStore(accept=False))
    assert all(r.publish_refused for r in refused)
    with pytest.raises(PublishError):
        stage.process_batch([frame], metas[:1], [None], DownStore())
