"""Alert rules and firing events (frozen pydantic models, stored as JSON in Redis).

A rule watches the share of some labels among the faces of one camera (or of a
group of cameras) over a sliding window, e.g. "angry + fear > 30 % of the faces of
camera ``lobby`` over 5 min, once at least 20 faces were seen". It fires on the
rising edge of that condition, at most once per cooldown.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from pipeline.aggregate.windows import parse_duration
from pipeline.alerts.webhook import validate_webhook_url
from pipeline.contracts import LABELS
from pipeline.ingest.sources import redact_url
from pipeline.store.models import CAMERA_ID_PATTERN, GROUP_PATTERN

#: Longest cooldown (a week): longer means "never again", which is what disabling is for.
MAX_COOLDOWN_S = 7 * 86400

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


class AlertRule(BaseModel):
    """One alert rule. ``window`` and ``cooldown`` accept ``30s``, ``5m``, ``1h`` or seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=CAMERA_ID_PATTERN, description="Stable id: lowercase letters, digits, '_' and '-'.")
    camera_id: str | None = Field(None, pattern=CAMERA_ID_PATTERN, description="Camera watched (or set group).")
    group: str | None = Field(None, pattern=GROUP_PATTERN, description="Camera group watched (or set camera_id).")
    labels: tuple[Label, ...] = Field(min_length=1, max_length=len(LABELS), description="Labels whose shares add up.")
    window: WindowSeconds = Field(300.0, description="Sliding window, seconds (10 s … 24 h; '5m' accepted).")
    op: Op = Field(">", description="Comparison of the share with the threshold.")
    threshold: float = Field(ge=0, le=1, description="Share (0..1) of the window's faces.")
    min_faces: int = Field(10, ge=1, le=10**9, description="Faces the window needs before the rule can fire.")
    webhook_url: str | None = Field(None, description="http(s) URL receiving a JSON POST per firing; unset = record only.")
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
        description="delivered: webhook answered 2xx; failed: gave up after retries; recorded: no webhook set."
    )
    attempts: int = Field(0, description="Webhook attempts made.")
    http_status: int | None = Field(None, description="Status of the last attempt, if any answered.")
    error: str = Field("", description="Last failure: exception type or HTTP status (never the URL).")
