"""Request and response bodies of the HTTP API (kept apart from the routers so clients can import them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.common.urls import redact_url
from pipeline.store.models import (
    CAMERA_ID_PATTERN,
    AlertRule,
    AlertState,
    CameraConfig,
    CooldownSeconds,
    Groups,
    Label,
    Op,
    WindowSeconds,
)


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
    groups: Groups = Field(default_factory=list, description="Groups the camera belongs to (same rules as ids).")


class CameraPatch(BaseModel):
    """Body of ``PATCH /cameras/{id}``: pause/resume, retune or rename a camera."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    fps: float | None = Field(None, gt=0, le=60)
    name: str | None = Field(None, max_length=200)
    labels: dict[str, str] | None = None
    groups: Groups | None = None
    keep_frames: bool | None = Field(None, description="Opt in/out of the latest-frame snapshot (privacy).")


class CameraOut(BaseModel):
    """A registered camera as the API shows it: the URL always has its credentials masked."""

    id: str
    url: str = Field(description="Source URL with credentials redacted.")
    fps: float
    name: str
    enabled: bool
    keep_frames: bool
    labels: dict[str, str]
    groups: list[str]
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
            groups=list(cfg.groups),
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


class GroupOut(BaseModel):
    """A camera group: the cameras that list it in their ``groups``."""

    name: str
    cameras: list[str] = Field(description="Member camera ids, sorted.")


class CameraOverview(BaseModel):
    """One row of ``GET /overview``: health and the window's emotion mix of one camera."""

    id: str
    name: str
    enabled: bool
    groups: list[str]
    state: str = Field(description="Reader state, or 'unknown' when the reader does not report.")
    fps_in: float = Field(description="Frames per second read from the source.")
    fps_processed: float = Field(description="Frames per second processed: sent to detection, or idle (nothing "
                                 "tracked and no full scan due).")
    faces: int = Field(description="Faces classified in the window.")
    dominant: str | None = Field(description="Most frequent label in the window.")
    shares: dict[str, float] = Field(description="Share of each label in the window.")


class Capacity(BaseModel):
    """Whether the pipeline keeps up with its live cameras (:mod:`pipeline.ingest.capacity`)."""

    cameras: int = Field(description="Cameras whose reader is live.")
    demand_fps: float = Field(description="Frames per second they ask for (sum of their fps).")
    processed_fps: float = Field(description="Frames per second processed.")
    dropped_fps: float = Field(description="Frames per second dropped because detection is saturated.")
    over_capacity: bool = Field(description="More than 5 % of the requested frames are dropped.")
    sustainable_cameras: int | None = Field(
        description="When over capacity, the cameras the processed rate serves in full at their mean fps."
    )


class Overview(BaseModel):
    """Body of ``GET /overview``."""

    window_s: float
    until: float
    cameras: list[CameraOverview]
    capacity: Capacity


class AlertRuleOut(BaseModel):
    """An alert rule as the API shows it (webhook credentials masked), with its evaluation state."""

    id: str
    camera_id: str | None
    group: str | None
    labels: list[str]
    window: float = Field(description="Window, seconds.")
    op: str
    threshold: float
    min_faces: int
    webhook_url: str | None = Field(description="Webhook URL with credentials redacted.")
    cooldown: float = Field(description="Cooldown, seconds.")
    enabled: bool
    description: str
    created_at: float
    state: AlertState = Field(description="Condition at the last evaluation, last firing.")

    @classmethod
    def from_rule(cls, rule: AlertRule, state: AlertState) -> AlertRuleOut:
        return cls.model_validate({**rule.public(), "state": state})


class AlertPatch(BaseModel):
    """Body of ``PATCH /alerts/{id}``: any subset of the rule's fields except id."""

    model_config = ConfigDict(extra="forbid")

    camera_id: str | None = Field(None, pattern=CAMERA_ID_PATTERN)
    group: str | None = Field(None, pattern=CAMERA_ID_PATTERN)
    labels: tuple[Label, ...] | None = Field(None, min_length=1)
    window: WindowSeconds | None = None
    op: Op | None = None
    threshold: float | None = Field(None, ge=0, le=1)
    min_faces: int | None = Field(None, ge=1)
    webhook_url: str | None = None
    cooldown: CooldownSeconds | None = None
    enabled: bool | None = None
    description: str | None = Field(None, max_length=500)


ExportFormat = Literal["csv", "json"]
