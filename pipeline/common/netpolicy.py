"""Where user-given URLs may point: the server-side request forgery (SSRF) policy.

A camera URL or an alert's webhook URL makes the pipeline open a connection to a host an
API user chose. Without a policy, a user with a write token can point a "camera" or a
webhook at the pipeline's own services (Redis on loopback, the Ray dashboard), at a cloud
metadata endpoint (169.254.169.254, ``metadata.google.internal``) or sweep ports and read
the answer from the camera's health or the webhook's delivery status.

Rules (checked when a camera or alert is registered, and again before connecting so a
name that later re-resolves elsewhere is caught too):

- always refused: cloud metadata endpoints (names and addresses), unspecified
  (``0.0.0.0/8``, ``::``), multicast, broadcast and reserved addresses;
- loopback (``127.0.0.0/8``, ``::1``, ``localhost``) only with ``<section>.allow_loopback``;
- link-local (``169.254.0.0/16``, ``fe80::/10``) only with ``<section>.allow_link_local``;
- private LAN ranges (10/8, 172.16/12, 192.168/16, fc00::/7) are allowed: IP cameras and
  in-house webhook receivers live there.

``<section>`` is the settings section that holds the switches: ``ingest`` for cameras,
``alerts`` for webhooks. Both satisfy :class:`HostRules`.

Numeric hosts are read the way the C resolver reads them, so ``2130706433``, ``0x7f.1``,
``0177.0.0.1`` and ``127.1`` are all 127.0.0.1, and IPv6 forms that embed an IPv4 address
(``::ffff:127.0.0.1``, 6to4, NAT64, IPv4-compatible) are judged by that address too.

Host names are resolved with a short timeout. A name that does not resolve (or not in
time) is *accepted*: a camera may be registered before its DNS entry exists or while
the DNS server is down, and it cannot be reached through a name that does not resolve.
The check runs again before each connection, which narrows DNS rebinding to the moment
between our lookup and the client's (FFmpeg, httpx); it does not close it, and it does not
see HTTP redirects followed by FFmpeg. Deployments that need a hard guarantee should also
restrict egress with a network policy.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from typing import Protocol

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Names of cloud metadata services (GCP, AWS, Azure, OpenStack, Alibaba ...); never cameras.
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
        "metadata.platformequinix.com",
        "metadata.tencentyun.com",
    }
)
#: Metadata addresses outside link-local, or that must stay blocked even with allow_link_local.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean ...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.123",  # AWS time sync / DNS
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (classic)
        "fd00:ec2::254",  # AWS IMDS over IPv6
    )
)
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPAT = ipaddress.ip_network("::/96")
# Numeric IPv4 in any form inet_aton accepts: 1 to 4 parts, each decimal, octal or hex.
_NUMERIC_V4_RE = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}$")


class HostRules(Protocol):
    """The switches of the policy; ``IngestSettings`` and ``AlertSettings`` both have them."""

    @property
    def allow_loopback(self) -> bool: ...

    @property
    def allow_link_local(self) -> bool: ...

    @property
    def resolve_timeout_s(self) -> float: ...


class BlockedHost(Exception):
    """A host the policy refuses; ``str()`` is a reason without the URL (callers add it redacted)."""


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _V4_COMPAT and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def check_address(ip: IPAddress, rules: HostRules, *, section: str) -> None:
    """Raise :class:`BlockedHost` if ``ip`` is not a place the pipeline may connect to.

    Args:
        ip: The address (literal or resolved).
        rules: ``allow_loopback`` / ``allow_link_local``.
        section: Settings section holding those switches, named in the refusal.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            # Packets go to (or are translated for) the IPv4 address; the v6 form is a disguise.
            check_address(inner, rules, section=section)
            return
        if ip.scope_id:
            ip = ipaddress.IPv6Address(ip.compressed.split("%", 1)[0])
    if ip in METADATA_ADDRESSES:
        raise BlockedHost("is a cloud metadata endpoint")
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK):
        raise BlockedHost("is an unspecified address")
    if ip.is_loopback:
        if not rules.allow_loopback:
            raise BlockedHost(f"is a loopback address (set {section}.allow_loopback to allow it)")
        return
    if ip.is_link_local:
        if not rules.allow_link_local:
            raise BlockedHost(f"is a link-local address (set {section}.allow_link_local to allow it)")
        return
    if ip.is_multicast:
        raise BlockedHost("is a multicast address")
    if ip.is_reserved or (isinstance(ip, ipaddress.IPv4Address) and int(ip) == 0xFFFFFFFF):
        raise BlockedHost("is a reserved or broadcast address")


def parse_literal(host: str) -> IPAddress | None:
    """The address a numeric host denotes (any IPv4 spelling, IPv6 with or without brackets), else None.

    Raises:
        BlockedHost: A bracketed (or colon-holding) host that is not a valid IPv6 address.
    """
    if host.startswith("[") or ":" in host:
        # No host name holds a colon: what an HTTP client hands the resolver is an IPv6 literal.
        try:
            return ipaddress.IPv6Address(host[1:-1] if host.startswith("[") else host)
        except ValueError:
            raise BlockedHost("is not a valid IPv6 address") from None
    if _NUMERIC_V4_RE.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None  # e.g. 999.1.1.1: not an address, so resolved like a name
    return None


def resolve(host: str, timeout_s: float) -> list[IPAddress] | None:
    """All addresses ``host`` resolves to, or None if it does not resolve within ``timeout_s``.

    getaddrinfo cannot be cancelled; a slow lookup is left to finish in a daemon thread.
    """
    box: list[list[IPAddress] | None] = [None]

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return
        out: list[IPAddress] = []
        for info in infos:
            try:
                out.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
            except ValueError:
                continue
        box[0] = out

    thread = threading.Thread(target=lookup, name="netpolicy-resolve", daemon=True)
    thread.start()
    thread.join(timeout_s)
    return None if thread.is_alive() else box[0]


def check_host(host: str, rules: HostRules, *, section: str, resolve_names: bool = True) -> None:
    """Apply the policy to a URL's host (``name``, ``1.2.3.4``, ``[v6]`` or ``v6``).

    Args:
        host: The host part of the URL, as written (case and a trailing dot are ignored).
        rules: ``allow_loopback``, ``allow_link_local``, ``resolve_timeout_s``.
        section: Settings section holding those switches (``ingest``, ``alerts``), named
            in the refusal so the reader knows what to change.
        resolve_names: Resolve names and check every address they resolve to.

    Raises:
        BlockedHost: With the reason; the caller adds the redacted URL.
    """
    name = host.strip().lower().rstrip(".")
    literal = parse_literal(name)
    if literal is not None:
        check_address(literal, rules, section=section)
        return
    if name in METADATA_HOSTS:
        raise BlockedHost("is a cloud metadata endpoint")
    if name == "localhost" or name.endswith(".localhost"):
        # RFC 6761: always loopback, whatever a resolver says.
        check_address(ipaddress.IPv4Address("127.0.0.1"), rules, section=section)
        return
    if not resolve_names or rules.resolve_timeout_s <= 0:
        return
    addresses = resolve(name, rules.resolve_timeout_s)
    for ip in addresses or ():
        try:
            check_address(ip, rules, section=section)
        except BlockedHost as exc:
            raise BlockedHost(f"resolves to an address that {exc}") from None
