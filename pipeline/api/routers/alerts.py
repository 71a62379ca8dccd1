"""``/alerts``: alert rules (create, list, inspect, patch, delete) and their recent firings.

Rules are evaluated by the alert runner of one API replica (see :mod:`pipeline.alerts.runner`);
these routes only read and write Redis. Webhook URLs must be http/https and pass the same SSRF
policy as camera URLs (no metadata endpoints; loopback and link-local only when
``alerts.allow_loopback`` / ``alerts.allow_link_local`` say so): 422 with a redacted reason
otherwise. They are shown with credentials masked.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from pipeline.alerts.webhook import check_webhook_destination
from pipeline.api.auth import WriteAuth
from pipeline.api.deps import SettingsDep, StoreDep
from pipeline.api.schemas import AlertPatch, AlertRuleOut
from pipeline.store.models import AlertEvent, AlertRule

router = APIRouter(prefix="/alerts", tags=["alerts"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AlertRuleOut, dependencies=[WriteAuth])
def add_alert(rule: AlertRule, store: StoreDep, settings: SettingsDep) -> AlertRuleOut:
    """Create a rule; 409 if the id exists, 422 if invalid (bad labels, window, webhook URL or host, ...)."""
    if rule.webhook_url is not None:
        check_webhook_destination(rule.webhook_url, settings.alerts)
    store.add_alert(rule)
    return AlertRuleOut.from_rule(rule, store.alert_state(rule.id))


@router.get("", response_model=list[AlertRuleOut])
def list_alerts(store: StoreDep) -> list[AlertRuleOut]:
    """All rules with their last evaluation, sorted by id."""
    return [AlertRuleOut.from_rule(r, store.alert_state(r.id)) for r in store.list_alerts()]


@router.get("/{rule_id}", response_model=AlertRuleOut)
def get_alert(rule_id: str, store: StoreDep) -> AlertRuleOut:
    """One rule; 404 if unknown."""
    return AlertRuleOut.from_rule(store.get_alert(rule_id), store.alert_state(rule_id))


@router.patch("/{rule_id}", response_model=AlertRuleOut, dependencies=[WriteAuth])
def patch_alert(rule_id: str, body: AlertPatch, store: StoreDep, settings: SettingsDep) -> AlertRuleOut:
    """Change some fields (e.g. ``{"enabled": false}`` or a new threshold); the rule is re-validated."""
    current = store.get_alert(rule_id)
    # exclude_unset, not exclude_none: an explicit null clears camera_id/group/webhook_url.
    updated = AlertRule.model_validate({**current.model_dump(), **body.model_dump(exclude_unset=True)})
    # Only a new webhook is judged: a rule saved under an older policy can still be paused or
    # retuned; its deliveries are checked against today's policy anyway.
    if updated.webhook_url is not None and updated.webhook_url != current.webhook_url:
        check_webhook_destination(updated.webhook_url, settings.alerts)
    store.update_alert(updated)
    return AlertRuleOut.from_rule(updated, store.alert_state(rule_id))


@router.delete("/{rule_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[WriteAuth])
def remove_alert(rule_id: str, store: StoreDep) -> Response:
    """Delete a rule with its state and events."""
    store.remove_alert(rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{rule_id}/events", response_model=list[AlertEvent])
def alert_events(
    rule_id: str, store: StoreDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> list[AlertEvent]:
    """Recent firings of a rule, newest first, with the webhook outcome (status, attempts)."""
    store.get_alert(rule_id)
    return store.alert_events(rule_id, limit)
