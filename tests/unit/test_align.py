"""Alignment: eyes level, FER2013 framing, one warp per face."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.detect.align import (
    CANONICAL_48,
    align_face,
    align_faces,
    canonical_points,
    similarity_transform,
    transform_points,
)
from pipeline.detect.backends import FakeBackend
from pipeline.detect.exceptions import InvalidFrame
from pipeline.detect.types import Detection

REPO = Path(__file__).resolve().parents[2]
FER = REPO.parent / "shared" / "data" / "fer2013.npz"
OUT = REPO / "test-output"


def _landmarks(centre: tuple[float, float], iod: float, angle_deg: float) -> np.ndarray:
    """Upright canonical-proportion landmarks scaled to ``iod`` and rotated by ``angle_deg``."""
    base = np.array([[-0.5, 0.0], [0.5, 0.0], [0.0, 0.59], [-0.4, 1.04], [0.4, 1.04]]) * iod
    a = np.radians(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (base @ rot.T + np.asarray(centre)).astype(np.float32)


def _eye_angle(points: np.ndarray) -> float:
    v = points[1] - points[0]
    return float(np.degrees(np.arctan2(v[1], v[0])))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])


@pytest.fixture(scope="module")
def mean_fer() -> np.ndarray:
    if not FER.exists():
        pytest.skip(f"FER2013 not found at {FER}")
    with np.load(FER) as data:
        return data["x_train"].astype(np.float64).mean(axis=0)


def test_canonical_landmarks_map_to_canonical_points() -> None:
    # given: landmarks already at the canonical 48x48 positions
    lm = np.zeros((5, 2), np.float32)
    lm[:2] = CANONICAL_48[:2]
    lm[3:] = CANONICAL_48[2] + np.array([[-6.0, 0.0], [6.0, 0.0]])
    # when / then: the transform is the identity
    np.testing.assert_allclose(similarity_transform(lm, 48), [[1, 0, 0], [0, 1, 0]], atol=1e-5)
    # and canonical points scale with the crop size (pixel-centre convention)
    np.testing.assert_allclose(canonical_points(96), (CANONICAL_48 + 0.5) * 2 - 0.5)


@pytest.mark.parametrize("angle", [-170.0, -120.0, -60.0, -30.0, 0.0, 15.0, 45.0, 90.0, 135.0, 180.0])
def test_eyes_level_and_upright_at_any_rotation(angle: float) -> None:
    # given: a face rotated by angle (past +-90 deg the mouth is above the eyes)
    lm = _landmarks((300.0, 200.0), iod=60.0, angle_deg=angle)
    # when
    m = similarity_transform(lm, 48)
    out = transform_points(m, lm)
    # then: eyes level, left eye left of the right one, mouth below, scale sane
    eyes = out[:2][np.argsort(out[:2, 0])]
    assert abs(eyes[0, 1] - eyes[1, 1]) < 1e-6
    assert out[3:, 1].mean() > eyes[:, 1].mean() + 10
    assert 10 < eyes[1, 0] - eyes[0, 0] < 25


def test_align_face_shapes_and_gray_input() -> None:
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    lm = _landmarks((160.0, 100.0), 50.0, 10.0)
    crop = align_face(frame, lm)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(align_face(gray, lm), crop)
    assert align_face(frame, lm, size=64).shape == (64, 64)


def test_align_faces_batch_matches_single_and_handles_empty() -> None:
    frame = np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    dets = [Detection(b, 0.9, FakeBackend.landmarks_for(b)) for b in [(10, 10, 80, 80), (200, 100, 60, 70)]]
    crops = align_faces(frame, dets)
    assert crops.shape == (2, 48, 48)
    np.testing.assert_array_equal(crops[1], align_face(frame, dets[1].landmarks))
    assert align_faces(frame, []).shape == (0, 48, 48)


def test_large_face_is_antialiased() -> None:
    # given: a huge face (scale ~0.08) on 1-px stripes, whose true local mean is 127.5
    frame = np.zeros((1200, 1200), np.uint8)
    frame[:, ::2] = 255
    lm = _landmarks((600.0, 500.0), iod=200.0, angle_deg=7.0)
    # when
    crop = align_face(frame, lm)
    # then: a plain bilinear warp would alias into strong bands; the pre-shrink averages them out
    assert abs(float(crop.mean()) - 127.5) < 10
    assert float(crop.std()) < 15


def test_downscaled_face_is_as_sharp_as_a_box_filter() -> None:
    # given: a FER-like textured 48x48 image upscaled 4x into a frame, and landmarks whose
    # alignment is exactly the inverse of that upscale (the crop should give the image back)
    rng = np.random.default_rng(0)
    face = cv2.GaussianBlur(rng.integers(0, 256, (48, 48)).astype(np.uint8), (0, 0), 0.6)
    border = 96
    frame = cv2.copyMakeBorder(cv2.resize(face, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC),
                               border, border, border, border, cv2.BORDER_REPLICATE)
    lm = np.zeros((5, 2), np.float64)
    lm[:2] = CANONICAL_48[:2]
    lm[2] = CANONICAL_48[2] - np.array([0.0, 8.0])
    lm[3:] = CANONICAL_48[2] + np.array([[-6.0, 0.0], [6.0, 0.0]])
    lm = lm * 4 + 1.5 + border  # crop pixel x -> upscaled frame pixel 4x + 1.5 (cv2.resize's centres)
    np.testing.assert_allclose(similarity_transform(lm, 48), [[0.25, 0, -24.375], [0, 0.25, -24.375]], atol=1e-6)
    # when
    crop = align_face(frame, lm.astype(np.float32)).astype(np.float64)
    # then: what a 4x4 box filter gives (shrinking first and then warping at ~1:1 blurred
    # twice: 9 grey levels off it)
    box = cv2.resize(frame[border:-border, border:-border], (48, 48), interpolation=cv2.INTER_AREA).astype(np.float64)
    assert np.abs(crop - box).mean() < 1.0
    assert np.abs(crop - face).mean() < np.abs(cv2.GaussianBlur(face, (0, 0), 0.7).astype(np.float64) - face).mean()


def test_invalid_frames_are_rejected() -> None:
    lm = _landmarks((50.0, 50.0), 20.0, 0.0)
    with pytest.raises(InvalidFrame):
        align_face(np.zeros((100, 100, 3), np.float32), lm)
    with pytest.raises(InvalidFrame):
        align_face(np.zeros((100, 100, 4), np.uint8), lm)


def _rotate(image: np.ndarray, angle: float) -> np.ndarray:
    """Rotate counter-clockwise by ``angle`` degrees onto a canvas holding all of it."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * s + w * c), int(h * c + w * s)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(image, m, (nw, nh), borderMode=cv2.BORDER_REPLICATE)


def test_rotated_photo_comes_out_level_and_fer_framed(shared_media: Path, mean_fer: np.ndarray) -> None:
    """Real detector on single_face.jpg rotated by +-30 deg: level eyes, FER-like crop."""
    pytest.importorskip("retinaface")
    from pipeline.detect.detector import DetectionStage
    from pipeline.settings import DetectSettings

    detector = DetectionStage(DetectSettings())
    photo = cv2.imread(str(shared_media / "images" / "single_face.jpg"))
    assert photo is not None
    upright = detector.detect_frame(photo)
    assert len(upright) == 1
    base_angle = _eye_angle(upright[0].landmarks)
    crops = [detector.crops(photo, upright)[0]]

    for angle in (30.0, -30.0):
        # given: the photo rotated (cv2 positive = counter-clockwise on screen)
        rotated = _rotate(photo, angle)
        # when
        dets = detector.detect_frame(rotated)
        assert len(dets) == 1, f"rotated {angle}: {len(dets)} faces"
        crop = detector.crops(rotated, dets)[0]
        crops.append(crop)
        # then: the landmarks follow the rotation (eye line tilts by -angle on screen)
        assert abs(_eye_angle(dets[0].landmarks) - (base_angle - angle)) < 5.0
        # the transform puts both eyes on one row
        out = transform_points(similarity_transform(dets[0].landmarks, 48), dets[0].landmarks)
        assert abs(out[0, 1] - out[1, 1]) < 1e-6
        # an independent look: detect again on the (upscaled, padded) crop, eyes level
        big = cv2.copyMakeBorder(cv2.resize(crop, (192, 192), interpolation=cv2.INTER_CUBIC),
                                 96, 96, 96, 96, cv2.BORDER_REPLICATE)
        again = detector.detect_frame(cv2.cvtColor(big, cv2.COLOR_GRAY2BGR))
        assert again, "no face found in the aligned crop"
        assert abs(_eye_angle(again[0].landmarks)) < 5.0
        # and the crop is framed like FER2013: close to its mean face (FER's own
        # validation images median 0.31 against it; this crop measured ~0.55)
        assert _corr(crop, mean_fer) > 0.45
        # a crop shifted by a quarter of its size is clearly worse: the test has teeth
        assert _corr(np.roll(crop, 12, axis=0), mean_fer) < _corr(crop, mean_fer) - 0.1

    _save_examples(crops, mean_fer)


def _save_examples(crops: list[np.ndarray], mean_fer: np.ndarray) -> None:
    """test-output/aligned_examples.png: mean FER face, then the crops (3x, nearest)."""
    OUT.mkdir(exist_ok=True)
    tiles = [mean_fer.astype(np.uint8), *crops]
    row = np.hstack([cv2.copyMakeBorder(t, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=255) for t in tiles])
    cv2.imwrite(str(OUT / "aligned_examples.png"), cv2.resize(row, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST))
