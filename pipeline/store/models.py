"""Pydantic models persisted by the store: cameras, alert rules with their state and events.

The alert models live here rather than in :mod:`pipeline.alerts` because the store
persists them and the alerting stage uses the store: the dependency points one way
(``alerts`` -> ``store``).
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from pipeline.aggregate.windows import parse_duration
from pipeline.common.urls import redact_url
from pipeline.contracts import LABELS
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


# --------------------------------------------------------------------------- alert rules
#: Longest cooldown (a week): longer means "never again", which is what disabling is for.
MAX_COOLDOWN_S = 7 * 86400
MAX_WEBHOOK_URL_LEN = 2048
WEBHOOK_SCHEMES = ("http", "https")

Label = Literal["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
Op = Literal[">", ">=", "<", "<="]

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def _window(value: object) -> float:
    return parse_duration(value, name="window")  # type: ignore[arg-type]


def _cooldown(value: object) -> float:
    return parse_duration(value, name="cooldown", lo=0, hi=MAX_COOLDOWN_S)  # type: ignore[arg-type]


WindowSeconds = Annotated[float, BeforeValidator(_window)]
CooldownSeconds = Annotated[float, BeforeValidator(_cooldown)]


def validate_webhook_url(url: str) -> str:
    """Check a webhook URL's form: ``http``/``https`` with a host, no whitespace or control characters.

    Where the URL may point (loopback, metadata endpoints ...) depends on the settings and on
    DNS, so it is checked when a rule is created or changed and before each delivery
    (:func:`pipeline.alerts.webhook.check_webhook_destination`), not here: a stored rule must
    stay readable whatever the policy says today.

    Returns:
        The URL, stripped.

    Raises:
        ValueError: With a redacted reason (pydantic reports it against ``webhook_url``).
    """
    url = url.strip()
    shown = redact_url(url)
    if not url:
        raise ValueError("webhook_url is empty")
    if len(url) > MAX_WEBHOOK_URL_LEN:
        raise ValueError(f"webhook_url is longer than {MAX_WEBHOOK_URL_LEN} characters")
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise ValueError(f"webhook_url contains whitespace or control characters: {shown!r}")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ValueError(f"webhook_url is malformed: {shown!r}") from None
    if parts.scheme.lower() not in WEBHOOK_SCHEMES:
        raise ValueError(f"webhook_url must use http or https, not {parts.scheme or 'no scheme'!r}: {shown!r}")
    if not host:
        raise ValueError(f"webhook_url has no host: {shown!r}")
    return url


class AlertRule(BaseModel):
    """One alert rule. ``window`` and ``cooldown`` accept ``30s``, ``5m``, ``1h`` or seconds.

    A rule watches the share of some labels among the faces of one camera (or of a group
    of cameras) over a sliding window, e.g. "angry + fear > 30 % of the faces of camera
    ``lobby`` over 5 min, once at least 20 faces were seen". It fires on the rising edge
    of that condition, at most once per cooldown (see :mod:`pipeline.alerts.evaluator`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=CAMERA_ID_PATTERN, description="Stable id: lowercase letters, digits, '_' and '-'.")
    camera_id: str | None = Field(None, pattern=CAMERA_ID_PATTERN, description="Camera watched (or set group).")
    group: str | None = Field(None, pattern=GROUP_PATTERN, description="Camera group watched (or set camera_id).")
    labels: tuple[Label, ...] = Field(min_length=1, max_length=len(LABELS), description="Labels whose shares add up.")
    window: WindowSeconds = Field(300.0, description="Sliding window, seconds (10 s … 24 h; '5m' accepted).")
    op: Op = Field(">", description="Comparison of the share with the threshold.")
    threshold: float = Field(ge=0, le=1, description="Share (0..1) of the window's faces.")
    min_faces: int = Field(10, ge=1, le=10**9, description="Faces the window needs before the rule can fire.")
    webhook_url: str | None = Field(
        None, description="http(s) URL receiving a JSON POST per firing; unset = record only."
    )
    cooldown: CooldownSeconds = Field(600.0, description="Minimum time between two firings, seconds ('10m' accepted).")
    enabled: bool = Field(True, description="Disabled rules are kept but not evaluated.")
    description: str = Field("", max_length=500, description="Free text shown with the rule and in the payload.")
    created_at: float = Field(default_factory=time.time, description="Creation time, Unix seconds.")

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, labels: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(labels))

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, url: str | None) -> str | None:
        return validate_webhook_url(url) if url is not None else None

    @model_validator(mode="after")
    def _one_target(self) -> AlertRule:
        if (self.camera_id is None) == (self.group is None):
            raise ValueError("set exactly one of camera_id and group")
        return self

    @property
    def target(self) -> str:
        """``camera:<id>`` or ``group:<name>`` (for payloads and logs)."""
        return f"camera:{self.camera_id}" if self.camera_id is not None else f"group:{self.group}"

    def holds(self, value: float, faces: int) -> bool:
        """Whether the condition is true for a share ``value`` over ``faces`` faces."""
        return faces >= self.min_faces and OPERATORS[self.op](value, self.threshold)

    def public(self) -> dict[str, object]:
        """The rule as the API shows it: the webhook URL has its credentials masked."""
        data = self.model_dump(mode="json")
        if self.webhook_url is not None:
            data["webhook_url"] = redact_url(self.webhook_url)
        return data


class AlertState(BaseModel):
    """What the evaluator remembers about a rule between passes."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    active: bool = Field(False, description="The condition held at the last evaluation.")
    last_fired: float | None = Field(None, description="Time of the last firing, Unix seconds.")
    last_value: float | None = Field(None, description="Share measured at the last evaluation.")
    last_faces: int = Field(0, description="Faces in the window at the last evaluation.")
    last_eval: float | None = Field(None, description="Time of the last evaluation.")


class AlertEvent(BaseModel):
    """One firing of a rule and the outcome of its webhook delivery."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Event id (random hex).")
    rule_id: str
    target: str = Field(description="camera:<id> or group:<name>.")
    ts: float = Field(description="Time the rule fired, Unix seconds.")
    value: float = Field(description="Share of the rule's labels in the window.")
    faces: int = Field(description="Faces in the window.")
    status: Literal["delivered", "failed", "recorded"] = Field(
        description="delivered: webhook answered 2xx; failed: gave up after retries or the destination was "
        "refused; recorded: no webhook set."
    )
    attempts: int = Field(0, description="Webhook attempts made.")
    http_status: int | None = Field(None, description="Status of the last attempt, if any answered.")
    error: str = Field(
        "", description="Last failure: exception type, HTTP status or why the destination was refused (never the URL)."
    )
