"""Where camera URLs may point: the server-side request forgery (SSRF) policy.

A camera URL makes the pipeline open a connection to a host an API user chose. Without
a policy, a user with a write token can point a "camera" at the pipeline's own services
(Redis on loopback, the Ray dashboard), at a cloud metadata endpoint (169.254.169.254,
``metadata.google.internal``) or sweep ports and read the answer from the camera's health.

Rules (checked when a camera is registered, when its reader is spawned, and again before
every connection attempt so a name that later re-resolves elsewhere is caught too):

- always refused: cloud metadata endpoints (names and addresses), unspecified
  (``0.0.0.0/8``, ``::``), multicast, broadcast and reserved addresses;
- loopback (``127.0.0.0/8``, ``::1``, ``localhost``) only with ``ingest.allow_loopback``;
- link-local (``169.254.0.0/16``, ``fe80::/10``) only with ``ingest.allow_link_local``;
- private LAN ranges (10/8, 172.16/12, 192.168/16, fc00::/7) are allowed: IP cameras live there.

Numeric hosts are read the way the C resolver reads them, so ``2130706433``, ``0x7f.1``,
``0177.0.0.1`` and ``127.1`` are all 127.0.0.1, and IPv6 forms that embed an IPv4 address
(``::ffff:127.0.0.1``, 6to4, NAT64, IPv4-compatible) are judged by that address too.

Host names are resolved with a short timeout. A name that does not resolve (or not in
time) is *accepted*: a camera may be registered before its DNS entry exists or while
the DNS server is down, and it cannot be reached through a name that does not resolve.
The check runs again before each connection, which narrows DNS rebinding to the moment
between our lookup and FFmpeg's; it does not close it (FFmpeg resolves on its own) and it
does not see HTTP redirects followed by FFmpeg. Deployments that need a hard guarantee
should also restrict the readers' egress with a network policy.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.settings import IngestSettings

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


def check_address(ip: IPAddress, settings: IngestSettings) -> None:
    """Raise :class:`BlockedHost` if ``ip`` is not a place a camera may be.

    Args:
        ip: The address (literal or resolved).
        settings: ``allow_loopback`` / ``allow_link_local``.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            # Packets go to (or are translated for) the IPv4 address; the v6 form is a disguise.
            check_address(inner, settings)
            return
        if ip.scope_id:
            ip = ipaddress.IPv6Address(ip.compressed.split("%", 1)[0])
    if ip in METADATA_ADDRESSES:
        raise BlockedHost("is a cloud metadata endpoint")
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK):
        raise BlockedHost("is an unspecified address")
    if ip.is_loopback:
        if not settings.allow_loopback:
            raise BlockedHost("is a loopback address (set ingest.allow_loopback to allow it)")
        return
    if ip.is_link_local:
        if not settings.allow_link_local:
            raise BlockedHost("is a link-local address (set ingest.allow_link_local to allow it)")
        return
    if ip.is_multicast:
        raise BlockedHost("is a multicast address")
    if ip.is_reserved or (isinstance(ip, ipaddress.IPv4Address) and int(ip) == 0xFFFFFFFF):
        raise BlockedHost("is a reserved or broadcast address")


def parse_literal(host: str) -> IPAddress | None:
    """The address a numeric host denotes (any IPv4 spelling, bracketed IPv6), else None.

    Raises:
        BlockedHost: A bracketed host that is not a valid IPv6 address.
    """
    if host.startswith("["):
        try:
            return ipaddress.IPv6Address(host[1:-1])
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

    thread = threading.Thread(target=lookup, name="ingest-resolve", daemon=True)
    thread.start()
    thread.join(timeout_s)
    return None if thread.is_alive() else box[0]


def check_host(host: str, settings: IngestSettings, *, resolve_names: bool = True) -> None:
    """Apply the policy to a URL's host (``name``, ``1.2.3.4`` or ``[v6]``).

    Args:
        host: The host part of the URL, as written (case and a trailing dot are ignored).
        settings: Ingest settings (``allow_loopback``, ``allow_link_local``,
            ``resolve_timeout_s``).
        resolve_names: Resolve names and check every address they resolve to.

    Raises:
        BlockedHost: With the reason; the caller adds the redacted URL.
    """
    name = host.strip().lower().rstrip(".")
    literal = parse_literal(name)
    if literal is not None:
        check_address(literal, settings)
        return
    if name in METADATA_HOSTS:
        raise BlockedHost("is a cloud metadata endpoint")
    if name == "localhost" or name.endswith(".localhost"):
        # RFC 6761: always loopback, whatever a resolver says.
        check_address(ipaddress.IPv4Address("127.0.0.1"), settings)
        return
    if not resolve_names or settings.resolve_timeout_s <= 0:
        return
    addresses = resolve(name, settings.resolve_timeout_s)
    for ip in addresses or ():
        try:
            check_address(ip, settings)
        except BlockedHost as exc:
            raise BlockedHost(f"resolves to an address that {exc}") from None
