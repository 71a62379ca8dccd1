"""Webhook URLs get the camera SSRF policy: refused hosts at rule creation/update (HTTP 422, redacted)
and again at delivery; loopback and link-local only when ``alerts.allow_*`` say so."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from pipeline.alerts.exceptions import InvalidWebhook
from pipeline.alerts.webhook import WebhookSender, check_webhook_destination
from pipeline.api.app import create_app
from pipeline.settings import AlertSettings, Settings
from pipeline.store.redis_store import RedisStore

SECRET = "w3bh00k"
TOKEN = "policy-token"
STRICT = AlertSettings()

METADATA = [
    "http://169.254.169.254/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://[fd00:ec2::254]/latest/",
    "http://[::ffff:169.254.169.254]/",
]
LOOPBACK = [
    "http://127.0.0.1:6379/",
    "http://localhost:8265/api",
    "http://hooks.localhost/x",
    "http://[::1]:8000/x",
    "http://0x7f.1/",
    "http://2130706433/",
    "http://[::ffff:127.0.0.1]/",
    "http://127.0.0.%31/",
]
LINK_LOCAL = ["http://169.254.3.4/x", "http://[fe80::1]/x"]


class Recorder:
    """An httpx transport that answers ``statuses`` in turn and records every request."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses) or [200]
        self.requests: list[httpx.Request] = []

    def client(self) -> httpx.Client:
        def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return httpx.Response(self.statuses[min(len(self.requests), len(self.statuses)) - 1])

        return httpx.Client(transport=httpx.MockTransport(handle), follow_redirects=False)


def _resolver(monkeypatch: pytest.MonkeyPatch, answers: dict[str, str]) -> None:
    def fake_getaddrinfo(host: str, *_a: object, **_k: object) -> list[tuple[object, ...]]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], 0))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)


# --------------------------------------------------------------------------- the policy
@pytest.mark.parametrize("url", METADATA + LOOPBACK + LINK_LOCAL + ["http://0.0.0.0:8000/", "http://224.0.0.1/"])
def test_internal_webhook_hosts_are_refused_by_default(url: str) -> None:
    with pytest.raises(InvalidWebhook, match="webhook_url host"):
        check_webhook_destination(url, STRICT)


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.5/hook",
        "https://192.168.1.20:8443/hook",
        "https://[fd12:3456::5]/hook",
        "https://8.8.8.8/hook",
        "https://hooks.invalid/x",  # does not resolve: accepted, checked again at delivery
    ],
)
def test_lan_public_and_unresolvable_webhook_hosts_are_allowed(url: str) -> None:
    check_webhook_destination(url, STRICT)


def test_loopback_and_link_local_webhooks_follow_the_alerts_settings() -> None:
    # given loopback allowed, loopback hosts pass but link-local ones do not
    loop = AlertSettings(allow_loopback=True)
    for url in LOOPBACK:
        check_webhook_destination(url, loop)
    with pytest.raises(InvalidWebhook, match=r"link-local address \(set alerts.allow_link_local"):
        check_webhook_destination(LINK_LOCAL[0], loop)
    # given link-local allowed, the reverse
    link = AlertSettings(allow_link_local=True)
    for url in LINK_LOCAL:
        check_webhook_destination(url, link)
    with pytest.raises(InvalidWebhook, match=r"loopback address \(set alerts.allow_loopback"):
        check_webhook_destination(LOOPBACK[0], link)
    # metadata endpoints stay refused whatever is allowed
    both = AlertSettings(allow_loopback=True, allow_link_local=True)
    for url in METADATA:
        with pytest.raises(InvalidWebhook, match="metadata"):
            check_webhook_destination(url, both)


def test_webhook_names_are_judged_by_what_they_resolve_to(monkeypatch: pytest.MonkeyPatch) -> None:
    _resolver(monkeypatch, {"sneaky.example.com": "127.0.0.1", "hooks.example.com": "10.1.2.3"})
    with pytest.raises(InvalidWebhook, match="resolves to an address that is a loopback"):
        check_webhook_destination("https://sneaky.example.com/x", STRICT)
    check_webhook_destination("https://hooks.example.com/x", STRICT)
    # with resolution off only literal addresses are judged
    check_webhook_destination("https://sneaky.example.com/x", AlertSettings(resolve_timeout_s=0))


def test_refusal_message_names_the_reason_and_redacts_the_url() -> None:
    url = f"http://bot:{SECRET}@127.0.0.1:9000/hook?token={SECRET}"
    with pytest.raises(InvalidWebhook) as info:
        check_webhook_destination(url, STRICT)
    message = str(info.value)
    assert SECRET not in message
    assert message == (
        "webhook_url host is a loopback address (set alerts.allow_loopback to allow it): "
        "http://bot:***@127.0.0.1:9000/hook?token=***"
    )


# --------------------------------------------------------------------------- at delivery
def test_sender_refuses_a_blocked_host_without_contacting_it() -> None:
    # given a sender with the default policy and a loopback webhook holding a secret
    transport = Recorder(200)
    sender = WebhookSender(client=transport.client(), sleep=lambda _s: None)
    # when it delivers
    delivery = sender.send(f"http://bot:{SECRET}@127.0.0.1:9000/hook", {"x": 1})
    # then nothing was sent, and the failure says why without the URL
    assert transport.requests == []
    assert (delivery.ok, delivery.attempts, delivery.http_status) == (False, 0, None)
    assert delivery.error == "refused: host is a loopback address (set alerts.allow_loopback to allow it)"
    assert SECRET not in delivery.error


def test_sender_checks_again_at_delivery_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a name that pointed at a LAN receiver when the rule was saved ...
    _resolver(monkeypatch, {"hooks.example.com": "10.1.2.3"})
    url = "https://hooks.example.com/x"
    check_webhook_destination(url, STRICT)
    # ... and now resolves to the metadata service (DNS rebinding)
    _resolver(monkeypatch, {"hooks.example.com": "169.254.169.254"})
    transport = Recorder(200)
    delivery = WebhookSender(client=transport.client(), policy=STRICT).send(url, {"x": 1})
    # then the delivery is refused before any request
    assert transport.requests == [] and not delivery.ok
    assert "metadata" in delivery.error


def test_sender_delivers_to_loopback_when_allowed_with_exponential_backoff() -> None:
    # given a receiver that fails twice, then answers 200, and loopback allowed
    transport = Recorder(500, 503, 200)
    sleeps: list[float] = []
    sender = WebhookSender(attempts=4, backoff_initial_s=0.5, backoff_max_s=0.75, sleep=sleeps.append,
                           client=transport.client(), policy=AlertSettings(allow_loopback=True))
    # when it delivers
    delivery = sender.send("http://127.0.0.1:9000/hook", {"x": 1})
    # then the third attempt got through after delays doubling up to the cap
    assert (delivery.ok, delivery.attempts, delivery.http_status) == (True, 3, 200)
    assert len(transport.requests) == 3
    assert sleeps == [0.5, 0.75]


# --------------------------------------------------------------------------- through the API
def _client(redis_url: str, store: RedisStore, alerts: AlertSettings) -> TestClient:
    settings = Settings(redis={"url": redis_url}, api={"tokens": [TOKEN]}, alerts=alerts)  # type: ignore[arg-type]
    return TestClient(create_app(settings, store), headers={"Authorization": f"Bearer {TOKEN}"})


@pytest.fixture()
def strict_client(redis_url: str, store: RedisStore) -> Iterator[TestClient]:
    with _client(redis_url, store, STRICT) as c:
        yield c


def _rule(rule_id: str, webhook_url: str | None) -> dict[str, object]:
    return {"id": rule_id, "camera_id": "lobby", "labels": ["angry"], "threshold": 0.5, "webhook_url": webhook_url}


def test_api_refuses_internal_webhooks_with_a_redacted_reason(strict_client: TestClient, store: RedisStore) -> None:
    # when a rule is created with a loopback webhook holding a secret
    r = strict_client.post("/alerts", json=_rule("r1", f"http://bot:{SECRET}@127.0.0.1:6379/x"))
    # then 422 names the reason and the setting, shows the URL redacted and stores nothing
    assert r.status_code == 422, r.text
    assert SECRET not in r.text
    assert r.json()["detail"] == ("webhook_url host is a loopback address (set alerts.allow_loopback to allow it): "
                                  "http://bot:***@127.0.0.1:6379/x")
    assert strict_client.get("/alerts/r1").status_code == 404
    # when a rule is created with a LAN webhook, then changed to the metadata service
    assert strict_client.post("/alerts", json=_rule("r2", "http://10.0.0.9/hook")).status_code == 201
    p = strict_client.patch("/alerts/r2", json={"webhook_url": "http://169.254.169.254/latest/meta-data/"})
    # then the change is refused and the rule keeps its webhook
    assert p.status_code == 422 and "cloud metadata endpoint" in p.text
    assert store.get_alert("r2").webhook_url == "http://10.0.0.9/hook"


def test_api_accepts_loopback_webhooks_when_allowed(
    redis_url: str, store: RedisStore, strict_client: TestClient
) -> None:
    # given a deployment that allows loopback webhooks (EP_ALERTS__ALLOW_LOOPBACK=true)
    with _client(redis_url, store, AlertSettings(allow_loopback=True)) as allowed:
        assert allowed.post("/alerts", json=_rule("local", "http://127.0.0.1:9000/hook")).status_code == 201
        assert allowed.post("/alerts", json=_rule("meta", "http://169.254.169.254/")).status_code == 422
    # when the policy is tightened later, the rule can still be paused or retuned (its webhook unchanged)
    r = strict_client.patch("/alerts/local", json={"enabled": False, "threshold": 0.6})
    assert r.status_code == 200, r.text
    # but its webhook cannot be set to another internal host
    assert strict_client.patch("/alerts/local", json={"webhook_url": "http://[::1]:9001/"}).status_code == 422


def test_alert_settings_switches_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.settings import load_settings

    monkeypatch.setenv("EP_ALERTS__ALLOW_LOOPBACK", "true")
    monkeypatch.setenv("EP_ALERTS__ALLOW_LINK_LOCAL", "true")
    settings = load_settings()
    assert settings.alerts.allow_loopback and settings.alerts.allow_link_local
    assert not settings.ingest.allow_loopback  # the camera switch is separate
