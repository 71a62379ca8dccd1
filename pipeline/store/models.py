"""Pydantic models persisted by the store."""

from __future__ import annotations

import time
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from pipeline.settings import Settings

CAMERA_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
#: Group names follow the camera id rules: they appear in URLs and metric labels.
GROUP_PATTERN = CAMERA_ID_PATTERN
MAX_GROUPS = 16

GroupName = Annotated[str, StringConstraints(pattern=GROUP_PATTERN)]


def _unique(groups: list[str]) -> list[str]:
    # Order kept, duplicates dropped: "add to group" twice is not an error.
    return list(dict.fromkeys(groups))


Groups = Annotated[list[GroupName], Field(max_length=MAX_GROUPS), AfterValidator(_unique)]


class CameraConfig(BaseModel):
    """One registered camera stream."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=CAMERA_ID_PATTERN, description="Stable id, used in keys and URLs.")
    url: str = Field(min_length=1, description="Stream URL (rtsp, http, file, webcam index).")
    fps: float = Field(5.0, gt=0, le=60, description="Frames per second sampled for detection.")
    name: str = Field("", description="Human readable name.")
    enabled: bool = Field(True, description="Paused cameras stay registered but are not read.")
    keep_frames: bool = Field(False, description="Keep annotated frames for the UI.")
    labels: dict[str, str] = Field(default_factory=dict, description="Free-form labels (site, group).")
    groups: Groups = Field(default_factory=list, description="Groups the camera belongs to (group summaries).")
    created_at: float = Field(default_factory=time.time, description="Registration time, Unix seconds.")


class StoreOptions(BaseModel):
    """Tunables of :class:`~pipeline.store.redis_store.RedisStore` (derived from the settings tree)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stream_maxlen: int = Field(20000, ge=1, description="Backlog beyond which publish_faces refuses.")
    bucket_ttl_s: int = Field(86400 * 2, ge=60, description="Lifetime of minute buckets and track state.")
    second_ttl_s: int = Field(3600, ge=60, description="Lifetime of per-second buckets.")
    track_ema: float = Field(0.4, gt=0, le=1, description="EMA factor of per-track emotion.")
    recent_results: int = Field(200, ge=0, description="Recent results kept per camera.")
    health_ttl_s: int = Field(60, ge=1, description="Health hashes vanish when not refreshed.")
    done_ttl_s: int = Field(6 * 3600, ge=60, description="How long processed message ids are remembered.")
    dead_maxlen: int = Field(10000, ge=1, description="Approximate cap of the dead-letter stream.")

    @classmethod
    def from_settings(cls, settings: Settings) -> StoreOptions:
        """Derive the store options from the settings tree."""
        return cls(
            stream_maxlen=settings.classify.stream_maxlen,
            bucket_ttl_s=settings.aggregate.bucket_ttl_s,
            track_ema=settings.aggregate.track_ema,
            recent_results=settings.aggregate.recent_results,
        )
