"""Request and response bodies of the HTTP API (kept apart from the routers so clients can import them)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipeline.ingest.sources import redact_url
from pipeline.store.models import CAMERA_ID_PATTERN, CameraConfig


class CameraCreate(BaseModel):
    """Body of ``POST /cameras``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=CAMERA_ID_PATTERN, description="Stable id: lowercase letters, digits, '_' and '-'.")
    url: str = Field(min_length=1, max_length=4096, description="rtsp(s)://, http(s)://, webcam:N, or a file path.")
    fps: float | None = Field(None, gt=0, le=60, description="Sampling rate; unset = ingest.default_fps.")
    name: str = Field("", max_length=200, description="Human readable name.")
    enabled: bool = Field(True, description="False registers the camera paused.")
    keep_frames: bool = Field(False, description="Keep annotated frames for the UI.")
    labels: dict[str, str] = Field(default_factory=dict, description="Free-form labels (site, group).")


class CameraPatch(BaseModel):
    """Body of ``PATCH /cameras/{id}``: pause/resume, retune or rename a camera."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    fps: float | None = Field(None, gt=0, le=60)
    name: str | None = Field(None, max_length=200)
    labels: dict[str, str] | None = None


class CameraOut(BaseModel):
    """A registered camera as the API shows it: the URL always has its credentials masked."""

    id: str
    url: str = Field(description="Source URL with credentials redacted.")
    fps: float
    name: str
    enabled: bool
    keep_frames: bool
    labels: dict[str, str]
    created_at: float

    @classmethod
    def from_config(cls, cfg: CameraConfig) -> CameraOut:
        return cls(
            id=cfg.id,
            url=redact_url(cfg.url),
            fps=cfg.fps,
            name=cfg.name,
            enabled=cfg.enabled,
            keep_frames=cfg.keep_frames,
            labels=dict(cfg.labels),
            created_at=cfg.created_at,
        )


class CameraHealth(BaseModel):
    """Stream health as last reported by the camera's reader, plus its counters."""

    camera_id: str
    enabled: bool
    reporting: bool = Field(description="False when the reader has not reported recently (health TTL).")
    health: dict[str, bool | int | float | str] = Field(description="Reader state, fps, last frame age, errors.")
    counters: dict[str, int] = Field(description="Frames read/dropped, faces published/refused, ...")


class Status(BaseModel):
    """Body of /healthz and /readyz."""

    status: str
    detail: str = ""
