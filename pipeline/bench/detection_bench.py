"""Detection schedule quality: scheduled detection against every-frame full detection, same frames.

Scheduled detection (:mod:`pipeline.detect.schedule`: the whole frame at most every
``detect.full_scan_interval_s``, regions around tracked faces between, nothing on empty frames)
must not cost quality. This benchmark runs both schedules through the live path's own code
(:meth:`DetectionStage.process`, crops collected from what it publishes, then the configured
classifier) on the same frames, as a camera would deliver them (letterboxed to 640x480, sampled
at the camera's fps, clips looped), and prints per clip:

* face-frame recall: of the frames where every-frame detection found a face, the share where
  the schedule found one at the same place (IoU >= 0.5), and the share of faces;
* same label: of those matched faces, the share classified the same, next to the floor: the
  share every-frame detection keeps when the camera image moves by 1 px (the classifier's label
  follows small landmark changes, so no schedule can beat that floor by much);
* tracks: distinct track ids (no false tracks on an empty scene);
* new face delay: the longest time from a face appearing (every-frame detection's first frame
  with a face after one without) to the schedule's first face;
* detection cost: milliseconds per frame of each schedule (detect, align, track), and their ratio.

Then detection recall per expression on degraded frames (sensor noise, a camera that shakes,
slight blur), where every frame holds a face (the CREMA-D clips and the labelled photos, each
photo as a still clip): every-frame detection at
``detect.score_threshold`` against the schedule, whose tracked regions use the lower
``region_score_threshold``.

Run: ``emotionpipe bench detection`` (about a minute).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.classify.backends import ClassifierBackend
from pipeline.contracts import LABELS
from pipeline.detect.analyze import classify_crops
from pipeline.detect.detector import CollectingPublisher, DetectionStage
from pipeline.detect.tracker import TrackerState, iou_matrix
from pipeline.detect.types import FrameMeta
from pipeline.settings import DetectSettings

WIDTH, HEIGHT = 640, 480
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
SAME_FACE_IOU = 0.5


@dataclass(frozen=True)
class DetectionBenchOptions:
    """What to run (the command's options; defaults in :mod:`pipeline.cli.bench`)."""

    clips: tuple[Path, ...]  # compared clips
    expression_clips: tuple[Path, ...]  # CREMA-D clips and labelled photos (a face in every frame), degraded
    sample_fps: float = 5.0
    loops: int = 5  # each clip is played this many times (short clips, as looping demo cameras)
    noise_sigma: float = 10.0  # sensor noise, grey levels
    shake_px: float = 30.0  # camera shake amplitude, pixels
    seed: int = 0


@dataclass
class ScheduleRun:
    """One schedule on one clip: per sampled frame the faces found, their labels and tracks."""

    boxes: list[list[tuple[int, int, int, int]]] = field(default_factory=list)
    labels: list[list[str]] = field(default_factory=list)
    track_ids: set[int] = field(default_factory=set)
    detect_ms: float = 0.0
    scans: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ClipComparison:
    """Every-frame full detection vs the schedule on one clip."""

    clip: str
    frames: int
    face_frames: int  # frames where every-frame detection found a face
    face_frame_recall: float | None
    face_recall: float | None
    same_label: float | None
    same_label_floor: float | None  # every-frame detection vs itself on the image moved by 1 px
    tracks_full: int
    tracks_scheduled: int
    max_new_face_delay_s: float | None  # None when no face appears; inf when the schedule never found it
    ms_per_frame_full: float
    ms_per_frame_scheduled: float
    scans: dict[str, int]


def letterbox(frame: np.ndarray, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """``frame`` scaled into ``width`` x ``height`` with black borders (what the test RTSP server sends)."""
    h, w = frame.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = round(w * scale), round(h * scale)
    out = np.zeros((height, width, 3), np.uint8)
    x0, y0 = (width - nw) // 2, (height - nh) // 2
    out[y0:y0 + nh, x0:x0 + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


def sampled_frames(path: Path, sample_fps: float, loops: int) -> list[tuple[float, np.ndarray]]:
    """``(t, frame)`` at ``sample_fps``, letterboxed to 640x480, the clip played ``loops`` times.

    A photo is a two-second still clip (the degraded run moves and noises it like a camera).
    """
    if path.suffix.lower() in PHOTO_SUFFIXES:
        photo = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if photo is None:
            raise ValueError(f"cannot read {path}")
        still = letterbox(photo)
        return [(i / sample_fps, still) for i in range(int(2 * sample_fps) * loops)]
    cap = cv2.VideoCapture(str(path))
    native = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames: list[np.ndarray] = []
    ok, frame = cap.read()
    while ok:
        frames.append(frame)
        ok, frame = cap.read()
    cap.release()
    if not frames:
        raise ValueError(f"no frames in {path}")
    step = native / sample_fps
    picks = [frames[int(i * step)] for i in range(int(len(frames) / step))] or frames[:1]
    boxed = [letterbox(f) for f in picks]
    return [(i / sample_fps, boxed[i % len(boxed)]) for i in range(len(boxed) * loops)]


def degrade(frames: list[tuple[float, np.ndarray]], noise_sigma: float, shake_px: float,
            rng: np.random.Generator) -> list[tuple[float, np.ndarray]]:
    """Sensor noise, a shaking camera (a smooth random walk of the image) and slight blur."""
    out = []
    pos, vel = np.zeros(2), np.zeros(2)
    for t, frame in frames:
        vel = 0.7 * vel + rng.normal(0.0, shake_px / 3.0, 2)
        pos = np.clip(pos + vel, -shake_px, shake_px)
        shift = np.array([[1, 0, pos[0]], [0, 1, pos[1]]], np.float32)
        moved = cv2.warpAffine(frame, shift, (frame.shape[1], frame.shape[0]), borderMode=cv2.BORDER_REPLICATE)
        blurred = cv2.GaussianBlur(moved, (0, 0), 0.8)
        noisy = blurred.astype(np.float32) + noise_sigma * rng.standard_normal(blurred.shape, dtype=np.float32)
        out.append((t, np.clip(noisy, 0, 255).astype(np.uint8)))
    return out


def run_schedule(stage: DetectionStage, engine: ClassifierBackend, frames: list[tuple[float, np.ndarray]],
                 camera: str) -> ScheduleRun:
    """Every frame through :meth:`DetectionStage.process` (state carried like the reader does)."""
    run = ScheduleRun()
    tracks = TrackerState()
    collector = CollectingPublisher()
    start = 1_000_000.0  # any epoch: the schedule only compares capture times
    per_frame: list[int] = []
    for i, (t, frame) in enumerate(frames):
        before = len(collector.crops)
        t0 = time.perf_counter()
        result = stage.process(frame, FrameMeta(camera, i, start + t), tracks, collector)
        run.detect_ms += (time.perf_counter() - t0) * 1000.0
        tracks = result.tracks
        run.scans[result.scan] = run.scans.get(result.scan, 0) + 1
        run.boxes.append(list(result.boxes))
        run.track_ids.update(result.track_ids)
        per_frame.append(len(collector.crops) - before)
    crops = [np.frombuffer(c.crop, np.uint8).reshape(c.crop_shape) for c in collector.crops]
    probs = classify_crops(engine, crops)
    labels = [LABELS[int(k)] for k in probs.argmax(axis=1)] if len(crops) else []
    k = 0
    for n in per_frame:
        run.labels.append(labels[k:k + n])
        k += n
    return run


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def shifted(frames: list[tuple[float, np.ndarray]], px: float = 1.0) -> list[tuple[float, np.ndarray]]:
    """The frames moved by ``px`` right and down (a camera that wobbles by a pixel)."""
    move = np.array([[1, 0, px], [0, 1, px]], np.float32)
    return [(t, cv2.warpAffine(f, move, (f.shape[1], f.shape[0]), borderMode=cv2.BORDER_REPLICATE)) for t, f in frames]


def _same_label(a: ScheduleRun, b: ScheduleRun) -> tuple[int, int, int, int, int]:
    """Face frames, frames matched, faces, faces matched and faces with the same label, of ``b`` against ``a``."""
    face_frames = matched_frames = faces = matched = same = 0
    for boxes_f, labels_f, boxes_s, labels_s in zip(a.boxes, a.labels, b.boxes, b.labels, strict=True):
        if not boxes_f:
            continue
        face_frames += 1
        faces += len(boxes_f)
        iou = iou_matrix(boxes_f, boxes_s)
        hit = False
        for i in range(len(boxes_f)):
            if iou.shape[1] and iou[i].max() >= SAME_FACE_IOU:
                hit = True
                matched += 1
                same += labels_f[i] == labels_s[int(iou[i].argmax())]
        matched_frames += hit
    return face_frames, matched_frames, faces, matched, same


def new_face_delays(full: ScheduleRun, sched: ScheduleRun, sample_fps: float) -> list[float]:
    """Per appearance of a face (every-frame detection: a face after a frame without), the schedule's delay."""
    delays = []
    for i, boxes in enumerate(full.boxes):
        if boxes and (i == 0 or not full.boxes[i - 1]):
            found = next((j for j in range(i, len(sched.boxes)) if sched.boxes[j]), None)
            delays.append(float("inf") if found is None else (found - i) / sample_fps)
    return delays


def compare(clip: str, full: ScheduleRun, sched: ScheduleRun, jittered: ScheduleRun, sample_fps: float
            ) -> ClipComparison:
    """Match the schedule's faces to every-frame detection's, frame by frame."""
    face_frames, matched_frames, faces, matched, same = _same_label(full, sched)
    _, _, _, matched_floor, same_floor = _same_label(full, jittered)
    delays = new_face_delays(full, sched, sample_fps)
    n = len(full.boxes)
    return ClipComparison(
        clip=clip, frames=n, face_frames=face_frames, face_frame_recall=_ratio(matched_frames, face_frames),
        face_recall=_ratio(matched, faces), same_label=_ratio(same, matched),
        same_label_floor=_ratio(same_floor, matched_floor),
        tracks_full=len(full.track_ids), tracks_scheduled=len(sched.track_ids),
        max_new_face_delay_s=max(delays) if delays else None,
        ms_per_frame_full=round(full.detect_ms / n, 2), ms_per_frame_scheduled=round(sched.detect_ms / n, 2),
        scans=sched.scans,
    )


def expression_recall(stage_full: DetectionStage, stage_sched: DetectionStage, engine: ClassifierBackend,
                      opts: DetectionBenchOptions) -> list[dict[str, Any]]:
    """Share of degraded frames with a face, per CREMA-D clip (the expression is in its name)."""
    rng = np.random.default_rng(opts.seed)
    rows = []
    for clip in opts.expression_clips:
        frames = degrade(sampled_frames(clip, opts.sample_fps, opts.loops), opts.noise_sigma, opts.shake_px, rng)
        full = run_schedule(stage_full, engine, frames, clip.stem)
        sched = run_schedule(stage_sched, engine, frames, clip.stem)
        rows.append({
            "clip": clip.name, "frames": len(frames),
            "recall_full": _ratio(sum(bool(b) for b in full.boxes), len(frames)),
            "recall_scheduled": _ratio(sum(bool(b) for b in sched.boxes), len(frames)),
        })
    return rows


def run_detection_bench(opts: DetectionBenchOptions, detect: DetectSettings, engine: ClassifierBackend,
                        progress: Any = print) -> dict[str, Any]:
    """Both comparisons; returns everything printed, as one JSON-ready dict."""
    stage_full = DetectionStage(detect.model_copy(update={"full_scan_interval_s": 0.0}))
    stage_sched = DetectionStage(detect, backend=stage_full.backend)
    clips = []
    for clip in opts.clips:
        frames = sampled_frames(clip, opts.sample_fps, opts.loops)
        full = run_schedule(stage_full, engine, frames, clip.stem)
        sched = run_schedule(stage_sched, engine, frames, clip.stem)
        jittered = run_schedule(stage_full, engine, shifted(frames), clip.stem)
        clips.append(compare(clip.name, full, sched, jittered, opts.sample_fps))
        progress(f"  {clip.name}: {len(frames)} frames")
    return {
        "settings": {k: v for k, v in detect.model_dump().items() if k in _SCHEDULE_KEYS},
        "sample_fps": opts.sample_fps, "loops": opts.loops,
        "clips": [asdict(c) for c in clips],
        "degraded": {"noise_sigma": opts.noise_sigma, "shake_px": opts.shake_px,
                     "clips": expression_recall(stage_full, stage_sched, engine, opts)},
    }


_SCHEDULE_KEYS = ("score_threshold", "full_scan_interval_s", "region_scale", "region_px", "region_score_threshold",
                  "region_max_gap_s", "min_face_px")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def format_report(report: dict[str, Any]) -> str:
    """Two markdown tables: the comparison per clip, recall per expression on degraded frames."""
    lines = [
        f"settings: {report['settings']}; {report['sample_fps']:g} fps, clips looped {report['loops']}x",
        "",
        ("| clip | frames | face frames | face-frame recall % | face recall % | same label % (1-px floor) "
         "| tracks full / sched | max new-face delay s | detect ms/frame full / sched (ratio) "
         "| scans full/regions/idle |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in report["clips"]:
        ratio = c["ms_per_frame_full"] / c["ms_per_frame_scheduled"] if c["ms_per_frame_scheduled"] else 0.0
        s = c["scans"]
        lines.append(
            f"| {c['clip']} | {c['frames']} | {c['face_frames']} | {_pct(c['face_frame_recall'])} | "
            f"{_pct(c['face_recall'])} | {_pct(c['same_label'])} ({_pct(c['same_label_floor'])}) | "
            f"{c['tracks_full']} / {c['tracks_scheduled']} | "
            f"{'-' if c['max_new_face_delay_s'] is None else c['max_new_face_delay_s']} | "
            f"{c['ms_per_frame_full']} / {c['ms_per_frame_scheduled']} ({ratio:.1f}x) | "
            f"{s.get('full', 0)}/{s.get('regions', 0)}/{s.get('idle', 0)} |"
        )
    d = report["degraded"]
    title = f"Degraded frames (noise sigma {d['noise_sigma']:g}, shake {d['shake_px']:g} px, blur): frames with a face, %"
    lines += ["", title, "", "| clip | frames | every-frame full | scheduled |", "|---|---|---|---|"]
    for r in d["clips"]:
        lines.append(f"| {r['clip']} | {r['frames']} | {_pct(r['recall_full'])} | {_pct(r['recall_scheduled'])} |")
    return "\n".join(lines)
