"""Credential redaction of URLs: the one place that hides secrets in a URL.

Every log line, error message, health record and API response that mentions a camera
source, a webhook or a Redis URL shows it through :func:`redact_url`. The parsing
helpers are shared with the camera source validation, so that what is validated and
what is shown are cut at the same places.
"""

from __future__ import annotations

import re

MASK = "***"

#: A scheme as RFC 3986 defines it, followed by "//".
SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
#: host[:port] where host is a name, IPv4 or bracketed IPv6 address.
HOSTPORT_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._\-%~]+)(:\d{1,5})?$")
# Query/fragment parameters whose values are secrets. Substring match on the name, so
# X-Amz-Signature, access_token, api_key and sessionid are all covered; masking a
# harmless parameter costs nothing, leaking a secret does.
_SECRET_PARAM_RE = re.compile(
    r"(?P<lead>^|[?&;#])(?P<name>[^=&;#?]*(?:pass|pwd|token|secret|key|auth|sig|credential|session)"
    r"[^=&;#?]*)=(?P<value>[^&;#]*)",
    re.IGNORECASE,
)


def split_userinfo(rest: str) -> tuple[str | None, str]:
    """Split ``userinfo@host/...`` into (userinfo, remainder) tolerating raw special chars.

    Cameras are often registered with unencoded passwords (``p@ss/w:rd``), which
    standard URL parsers split in the wrong place and partly print. When ambiguous
    we choose the reading that hides more.
    """
    if "@" not in rest:
        return None, rest
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority = rest[:cut]
    if "@" not in authority:
        # "user:pa/ss@host": the authority looks like "user:pa", which is not host:port
        # (or might be, "user:1234"); a ':' before the first '/' plus a later '@' means
        # credentials far more often than an '@' inside a path.
        if ":" not in authority:
            return None, rest
    ats = [i for i, c in enumerate(rest) if c == "@"]
    # The userinfo ends at the last '@' that is followed by a plausible host[:port].
    for at in reversed(ats):
        tail = rest[at + 1 :]
        end = min((i for i in (tail.find(c) for c in "/?#") if i >= 0), default=len(tail))
        if HOSTPORT_RE.match(tail[:end]):
            return rest[:at], tail
    return rest[: ats[-1]], rest[ats[-1] + 1 :]


def url_hostport(url: str) -> str:
    """The ``host[:port]`` of a ``scheme://`` URL, credentials and path cut off."""
    match = SCHEME_RE.match(url)
    _, remainder = split_userinfo(url[match.end() :] if match else url)
    cut = min((i for i in (remainder.find(c) for c in "/?#") if i >= 0), default=len(remainder))
    return remainder[:cut]


def _mask_userinfo(userinfo: str) -> str:
    if ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        return f"{user}:{MASK}" if user else MASK
    # A lone userinfo is often an API token rather than a user name.
    return MASK


def redact_url(url: str) -> str:
    """Return ``url`` with credentials masked, safe for logs, errors and the API.

    ``rtsp://admin:s3cr3t@cam/live?token=abc`` becomes
    ``rtsp://admin:***@cam/live?token=***``. Passwords with raw special
    characters (``@ / : ? #``) are handled; when the URL is ambiguous more is masked,
    never less. Strings without credentials (file paths, ``webcam:0``) are
    returned unchanged.

    Args:
        url: A camera source, webhook or service URL, possibly malformed.

    Returns:
        The redacted string.
    """
    if not isinstance(url, str):
        return MASK
    match = SCHEME_RE.match(url)
    prefix, rest = (match.group(0), url[match.end() :]) if match else ("", url)
    # Without a scheme only an obvious "user:pass@host" is treated as credentials;
    # "/data/a@b.mp4" stays a path.
    if match or not rest.startswith(("/", ".", "~")):
        userinfo, rest = split_userinfo(rest)
        if userinfo is not None:
            rest = f"{_mask_userinfo(userinfo)}@{rest}"
    rest = _SECRET_PARAM_RE.sub(lambda m: f"{m.group('lead')}{m.group('name')}={MASK}", rest)
    return prefix + rest
