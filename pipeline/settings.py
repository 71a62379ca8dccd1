"""The one settings tree.

Read once at start-up with :func:`load_settings` (env vars prefixed ``EP_``,
nested with ``__``, e.g. ``EP_REDIS__URL``), then passed down explicitly.
Nothing reads the environment at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedisSettings(_Section):
    url: str | None = Field(None, description="redis:// URL; unset = start an embedded redis-server.")
    prefix: str = Field("ep:", description="Prefix of every key this project writes.")
    embedded_port: int = Field(6390, description="Port of the embedded server (Ray's GCS owns 6379).")
    embedded_binary: str = Field("redis-server", description="redis-server executable for embedded mode.")
    password: SecretStr | None = Field(
        None,
        description="Password of the embedded server (requirepass); the stack puts it in the URL it hands on. "
        "For an external Redis give it in the URL instead (redis://:PASSWORD@host:6379/0).",
    )


class IngestSettings(_Section):
    default_fps: float = Field(5.0, gt=0, le=60, description="Sampling rate when a camera sets none.")
    max_inflight: int = Field(2, ge=1, le=16, description="Frames a camera may have in detection at once.")
    max_width: int = Field(960, ge=160, description="Frames wider than this are downscaled before detection.")
    open_timeout_ms: int = Field(5000, description="OpenCV open timeout.")
    read_timeout_ms: int = Field(5000, description="OpenCV read timeout.")
    stall_after_s: float = Field(8.0, description="No new frame for this long = stalled; reconnect.")
    backoff_initial_s: float = Field(0.5, description="First reconnect delay.")
    backoff_max_s: float = Field(30.0, description="Reconnect delay cap (exponential with full jitter).")
    allowed_schemes: tuple[str, ...] = Field(
        ("rtsp", "rtsps", "http", "https"), description="URL schemes cameras may use."
    )
    allow_files: bool = Field(False, description="Allow file paths / file:// sources (tests, replays).")
    allow_loopback: bool = Field(
        False,
        description="Allow camera hosts on loopback (127.0.0.0/8, ::1, localhost): local test servers and "
        "demos. Off: a camera URL must not reach services on the pipeline's own hosts (SSRF).",
    )
    allow_link_local: bool = Field(
        False,
        description="Allow link-local camera hosts (169.254.0.0/16, fe80::/10), e.g. zeroconf cameras. "
        "Cloud metadata endpoints (169.254.169.254, metadata.google.internal, ...) stay refused.",
    )
    resolve_timeout_s: float = Field(
        1.0,
        ge=0,
        le=30,
        description="Camera host names are resolved (at most this long) and every address checked against "
        "the rules above; a name that does not resolve is accepted and checked again at each "
        "connection. 0 = check literal addresses only.",
    )
    reconcile_interval_s: float = Field(1.0, description="How often the camera manager syncs the registry.")
    decoder_threads: int = Field(
        1, ge=0, le=16, description="FFmpeg decoder threads per camera (0 = FFmpeg's choice, one per core). One "
        "thread decodes 640x480 H.264 at ~0.3 ms a frame and costs a quarter less CPU than two (no hand-offs); "
        "raise it for 4K cameras."
    )
    cameras_per_reader: int = Field(
        8, ge=1, le=64, description="Cameras one reader process hosts (each with its own decoder threads); a process "
        "costs ~2 % of a core and ~100 MB on its own. 1 = a process per camera (most isolation)."
    )


class DetectSettings(_Section):
    backend: str = Field("retinaface", description="Face detector backend.")
    score_threshold: float = Field(0.6, ge=0, le=1, description="Minimum detection confidence.")
    min_face_px: int = Field(20, description="Faces smaller than this (short side) are ignored.")
    crop_size: int = Field(48, description="Side of the aligned face crop sent to the classifier.")
    threads: int = Field(1, ge=1, description="onnxruntime intra-op threads per replica.")
    num_cpus: float = Field(0.25, gt=0, description="CPUs reserved per detector replica.")
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, ge=1)
    max_ongoing_requests: int = Field(8, ge=1)
    upscale_delay_s: float = Field(10.0, ge=0, description="Load must stay high this long before replicas are added.")
    downscale_delay_s: float = Field(120.0, ge=0, description="Load must stay low this long before replicas go.")
    max_frame_age_s: float = Field(
        2.0, ge=0, description="Frames older than this when a replica picks them up are skipped (counted), so an "
        "overloaded detector keeps latency bounded instead of working through a backlog; 0 = never skip."
    )
    track_iou: float = Field(0.3, description="IoU above which a detection continues a track.")
    track_max_age_s: float = Field(2.0, description="A track unseen this long is closed.")
    full_scan_interval_s: float = Field(
        1.0, ge=0, description="Search a camera's whole frame at most this often (a new face is found within it); "
        "frames in between are searched only around tracked faces, and skipped when there are none. 0 = the whole "
        "frame every frame (5-10x the detection CPU)."
    )
    region_scale: float = Field(1.6, ge=1.2, description="Side of the region searched around a tracked face, in "
                                "face-box sides (room for the face to move between samples; a face that moved "
                                "out of it triggers a full scan).")
    region_px: int = Field(
        384, ge=64, description="Larger regions are shrunk to this many pixels per side. Regions are searched at full "
        "resolution below it: shrunk faces get slightly different landmarks, and the classifier's label changes "
        "with them about as often as when the camera moves by 3 px (see `emotionpipe bench detection`)."
    )
    region_score_threshold: float = Field(
        0.5, ge=0, le=1, description="Detection confidence needed inside a tracked face's region (the track is "
        "strong evidence; full scans use score_threshold)."
    )
    region_max_gap_s: float = Field(0.6, ge=0, description="A track unseen this long gets no region any more: only a "
                                    "full scan can find the face again.")


# Names of the classifier backends in pipeline.classify.backends' registry (a test there keeps
# them in step) and of the emonet backend's runtimes.
ClassifierBackendType = Literal["emonet", "deepface", "fake"]
ClassifierRuntime = Literal["onnx-int8", "onnx", "torch"]


class ClassifySettings(_Section):
    backend: ClassifierBackendType = Field(
        "emonet",
        description="Classifier backend: emonet (the shipped models), deepface (DeepFace's emotion model, "
        "needs the deepface extra and its weights on disk) or fake (deterministic, for tests).",
    )
    model: str = Field(
        "emonet-m", description="Shipped model: emonet-m (accurate), emonet-s (fast), emonet-t (fastest)."
    )
    weights: Path | None = Field(None, description="Weights file (safetensors + card .json); overrides model.")
    runtime: ClassifierRuntime = Field(
        "onnx-int8",
        description="emonet inference runtime: onnx-int8 (fastest on CPU), onnx (fp32) or torch (GPUs use torch).",
    )
    tta: bool = Field(False, description="Average each face with its mirror image (test-time augmentation, 2x cost).")
    batch_size: int = Field(64, ge=1, le=1024, description="Faces per XREADGROUP batch.")
    block_ms: int = Field(50, ge=1, description="XREADGROUP block time.")
    threads: int = Field(1, ge=1, description="Inference threads per replica.")
    num_cpus: float = Field(0.25, gt=0)
    num_gpus: float = Field(0.0, ge=0, description="GPUs per replica (set >0 on GPU nodes).")
    force_cuda: bool = Field(
        False,
        description="Serve emonet with torch on CUDA whenever a GPU is visible, even with num_gpus 0 (a GPU "
        "machine used outside Ray's GPU accounting). Replaces the old EP_FORCE_CUDA variable.",
    )
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, ge=1)
    target_lag_per_replica: float = Field(256.0, gt=0, description="Waiting faces one replica absorbs (autoscaling).")
    upscale_delay_s: float = Field(5.0, ge=0, description="Lag must stay high this long before replicas are added.")
    downscale_delay_s: float = Field(60.0, ge=0, description="Lag must stay low this long before replicas go.")
    claim_idle_ms: int = Field(15000, description="Pending entries idle this long are reclaimed.")
    max_deliveries: int = Field(5, description="Deliveries before an entry is dead-lettered.")
    stream_maxlen: int = Field(20000, description="Producer refuses (and counts) crops beyond this backlog.")


class AggregateSettings(_Section):
    bucket_ttl_s: int = Field(86400 * 2, description="Lifetime of per-second/minute buckets.")
    track_ema: float = Field(0.4, gt=0, le=1, description="Smoothing factor of per-track emotion.")
    recent_results: int = Field(200, description="Recent results kept per camera for the UI.")


class ApiSettings(_Section):
    host: str = Field("127.0.0.1", description="HTTP bind address.")
    port: int = Field(8000, description="HTTP port.")
    tokens: tuple[SecretStr, ...] = Field(
        (), description='Bearer tokens accepted by the API (env: EP_API__TOKENS=\'["t1","t2"]\').'
    )
    token_file: Path | None = Field(
        None, description="File with one bearer token per line (a mounted Secret); re-read when it changes."
    )
    auth_reads: bool = Field(False, description="Also require a token for reads (GET), not only mutations.")


class AlertSettings(_Section):
    enabled: bool = Field(True, description="Run the alert evaluator in the API ingress (one replica at a time).")
    interval_s: float = Field(5.0, ge=0.5, le=3600, description="Seconds between two evaluation passes.")
    lease_ttl_s: float = Field(
        30.0, ge=1, description="Evaluator lease lifetime; another replica takes over this long after a crash."
    )
    webhook_timeout_s: float = Field(5.0, gt=0, le=60, description="Per-attempt webhook timeout.")
    webhook_attempts: int = Field(3, ge=1, le=10, description="Webhook attempts per firing, the first included.")
    backoff_initial_s: float = Field(0.5, ge=0, description="Delay before the first webhook retry (doubles).")
    backoff_max_s: float = Field(10.0, ge=0, description="Webhook retry delay cap.")
    events_kept: int = Field(100, ge=1, le=10000, description="Firing events kept per rule.")
    allow_loopback: bool = Field(
        False,
        description="Allow webhook hosts on loopback (127.0.0.0/8, ::1, localhost): a receiver on the same "
        "machine (demos, tests). Off: a webhook must not reach services on the pipeline's own hosts (SSRF).",
    )
    allow_link_local: bool = Field(
        False,
        description="Allow link-local webhook hosts (169.254.0.0/16, fe80::/10). Cloud metadata endpoints "
        "(169.254.169.254, metadata.google.internal, ...) stay refused.",
    )
    resolve_timeout_s: float = Field(
        1.0,
        ge=0,
        le=30,
        description="Webhook host names are resolved (at most this long) when a rule is saved and before each "
        "delivery, and every address checked against the rules above; a name that does not resolve is "
        "accepted. 0 = check literal addresses only.",
    )


class RaySettings(_Section):
    address: str | None = Field(None, description="Ray cluster address; unset = start a local one.")
    num_cpus: int | None = Field(None, description="CPUs of the local cluster; unset = all.")
    namespace: str = Field("emotionpipe", description="Ray namespace of the detached actors.")


class Settings(BaseSettings):
    """Root of the settings tree."""

    model_config = SettingsConfigDict(
        env_prefix="EP_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    data_dir: Path = Field(Path(".ep-data"), description="Where the embedded Redis keeps its AOF.")
    redis: RedisSettings = RedisSettings()
    ingest: IngestSettings = IngestSettings()
    detect: DetectSettings = DetectSettings()
    classify: ClassifySettings = ClassifySettings()
    aggregate: AggregateSettings = AggregateSettings()
    api: ApiSettings = ApiSettings()
    alerts: AlertSettings = AlertSettings()
    ray: RaySettings = RaySettings()


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment plus explicit overrides."""
    return Settings(**overrides)  # type: ignore[arg-type]
