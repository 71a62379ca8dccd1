"""Camera sources: credential redaction, validation and opening with OpenCV.

:func:`redact_url` is the one place that hides secrets in camera URLs; every log
line, error message and health record that mentions a URL goes through it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from pipeline.ingest.exceptions import InvalidSource, SourceUnavailable
from pipeline.ingest.netpolicy import BlockedHost, check_host

if TYPE_CHECKING:
    from pipeline.settings import IngestSettings

MASK = "***"
MAX_URL_LEN = 4096

# A scheme as RFC 3986 defines it, followed by "//".
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
# host[:port] where host is a name, IPv4 or bracketed IPv6 address.
_HOSTPORT_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._\-%~]+)(:\d{1,5})?$")
_WEBCAM_RE = re.compile(r"^(?:webcam:)?(\d{1,3})$")
# Query/fragment parameters whose values are secrets. Substring match on the name, so
# X-Amz-Signature, access_token, api_key and sessionid are all covered; masking a
# harmless parameter costs nothing, leaking a secret does.
_SECRET_PARAM_RE = re.compile(
    r"(?P<lead>^|[?&;#])(?P<name>[^=&;#?]*(?:pass|pwd|token|secret|key|auth|sig|credential|session)"
    r"[^=&;#?]*)=(?P<value>[^&;#]*)",
    re.IGNORECASE,
)


def _split_userinfo(rest: str) -> tuple[str | None, str]:
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
        if _HOSTPORT_RE.match(tail[:end]):
            return rest[:at], tail
    return rest[: ats[-1]], rest[ats[-1] + 1 :]


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
        url: A camera URL or source string, possibly malformed.

    Returns:
        The redacted string.
    """
    if not isinstance(url, str):
        return MASK
    match = _SCHEME_RE.match(url)
    prefix, rest = (match.group(0), url[match.end() :]) if match else ("", url)
    # Without a scheme only an obvious "user:pass@host" is treated as credentials;
    # "/data/a@b.mp4" stays a path.
    if match or not rest.startswith(("/", ".", "~")):
        userinfo, rest = _split_userinfo(rest)
        if userinfo is not None:
            rest = f"{_mask_userinfo(userinfo)}@{rest}"
    rest = _SECRET_PARAM_RE.sub(lambda m: f"{m.group('lead')}{m.group('name')}={MASK}", rest)
    return prefix + rest


class SourceKind(StrEnum):
    """What a source is, which decides how it is opened and what EOF means."""

    STREAM = "stream"
    FILE = "file"
    WEBCAM = "webcam"


@dataclass(frozen=True, slots=True)
class Source:
    """A validated camera source.

    ``str()`` and ``repr()`` show only the redacted form; the real target (which
    may hold a password) is kept out of both so it cannot leak through logging.
    """

    kind: SourceKind
    redacted: str
    scheme: str
    target: str | int = field(repr=False)

    @property
    def is_live(self) -> bool:
        """Whether the source is a live feed (reconnect on failure) rather than a file."""
        return self.kind is not SourceKind.FILE

    def __str__(self) -> str:
        return self.redacted


def _file_source(path_str: str, shown: str, settings: IngestSettings) -> Source:
    if not settings.allow_files:
        raise InvalidSource(f"file sources are disabled (set ingest.allow_files): {shown}")
    path = Path(path_str).expanduser()
    if not path.is_file():
        raise InvalidSource(f"no such file: {shown}")
    return Source(SourceKind.FILE, str(path), "file", str(path))


def validate_source(url: str, settings: IngestSettings) -> Source:
    """Check a camera source string against the ingest settings.

    Accepted forms: ``scheme://host/...`` for the schemes in
    ``settings.allowed_schemes``, whose host passes the SSRF policy of
    :mod:`pipeline.ingest.netpolicy` (no loopback, link-local or metadata hosts unless
    allowed); ``webcam:N`` or a bare device index ``N``; file paths and ``file://``
    URLs only when ``settings.allow_files`` is set.

    Args:
        url: The source as registered.
        settings: Ingest settings (allowed schemes, whether files are allowed).

    Returns:
        The validated :class:`Source`.

    Raises:
        InvalidSource: With a message that names the problem and shows the URL
            redacted.
    """
    if not isinstance(url, str):
        raise InvalidSource(f"source must be a string, got {type(url).__name__}")
    url = url.strip()
    shown = redact_url(url)
    if not url:
        raise InvalidSource("source is empty")
    if len(url) > MAX_URL_LEN:
        raise InvalidSource(f"source is longer than {MAX_URL_LEN} characters")
    # Control characters would end up in log lines and FFmpeg option strings.
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidSource(f"source contains control characters: {shown!r}")

    webcam = _WEBCAM_RE.match(url)
    if webcam:
        return Source(SourceKind.WEBCAM, f"webcam:{int(webcam.group(1))}", "webcam", int(webcam.group(1)))

    match = _SCHEME_RE.match(url)
    if match is None:
        if ":" in url.split("/", 1)[0] and not url.startswith(("/", ".", "~")):
            raise InvalidSource(f"source has no '//' after its scheme: {shown}")
        if url.startswith(("/", ".", "~")):
            return _file_source(url, shown, settings)
        if not settings.allow_files:
            allowed = ", ".join(settings.allowed_schemes)
            raise InvalidSource(
                f"source has no URL scheme (expected one of {allowed}; "
                f"file paths are disabled, see ingest.allow_files): {shown}"
            )
        return _file_source(url, shown, settings)

    scheme = match.group(1).lower()
    if scheme == "file":
        # file:///abs/path -> /abs/path; percent-escapes decoded like any file URL.
        return _file_source(unquote(url[match.end() :].removeprefix("localhost")), shown, settings)
    if scheme not in settings.allowed_schemes:
        allowed = ", ".join(settings.allowed_schemes) or "none"
        raise InvalidSource(f"scheme {scheme!r} is not allowed (allowed: {allowed}): {shown}")

    hostport = _hostport(url)
    if not hostport:
        raise InvalidSource(f"source has no host: {shown}")
    host_match = _HOSTPORT_RE.match(hostport)
    if not host_match:
        raise InvalidSource(f"source has an invalid host or port: {shown}")
    try:
        # urlsplit validates the port range; hostname parsing errors are ours to word.
        port = urlsplit(f"{scheme}://{hostport}").port
    except ValueError:
        raise InvalidSource(f"source has an invalid port: {shown}") from None
    if port == 0:
        raise InvalidSource(f"source has an invalid port: {shown}")
    try:
        check_host(host_match.group(1), settings)
    except BlockedHost as exc:
        raise InvalidSource(f"source host {exc}: {shown}") from None
    return Source(SourceKind.STREAM, shown, scheme, url)


def _hostport(url: str) -> str:
    """The ``host[:port]`` of a ``scheme://`` URL, credentials and path cut off."""
    match = _SCHEME_RE.match(url)
    _, remainder = _split_userinfo(url[match.end() :] if match else url)
    cut = min((i for i in (remainder.find(c) for c in "/?#") if i >= 0), default=len(remainder))
    return remainder[:cut]


def check_destination(source: Source, settings: IngestSettings) -> None:
    """Re-apply the host policy right before connecting (the name may resolve elsewhere now).

    Raises:
        SourceUnavailable: The host is refused; the message is redacted.
    """
    if source.kind is not SourceKind.STREAM:
        return
    host_match = _HOSTPORT_RE.match(_hostport(str(source.target)))
    if host_match is None:
        raise SourceUnavailable(f"refusing to connect, invalid host: {source.redacted}")
    try:
        check_host(host_match.group(1), settings)
    except BlockedHost as exc:
        raise SourceUnavailable(f"refusing to connect, host {exc}: {source.redacted}") from None


def capture_params(settings: IngestSettings) -> list[int]:
    """The OpenCV open/read timeouts as a ``VideoCapture`` params list."""
    import cv2

    return [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(settings.open_timeout_ms),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(settings.read_timeout_ms),
    ]


def open_capture(source: Source, settings: IngestSettings) -> Any:
    """Open ``source`` with OpenCV and return the ``cv2.VideoCapture``.

    RTSP goes over TCP: over UDP a lossy network gives smeared frames and some
    servers (and containers) block UDP entirely. Open and read timeouts bound
    every blocking call; OpenCV's defaults block for 30 s and then replay stale
    buffered frames.

    Args:
        source: A validated source.
        settings: Ingest settings (timeouts).

    Returns:
        An opened ``cv2.VideoCapture``.

    Raises:
        SourceUnavailable: The source could not be opened, or its host is refused by
            the SSRF policy; the message is redacted.
    """
    import cv2

    check_destination(source, settings)
    if source.kind is SourceKind.WEBCAM:
        # FFmpeg cannot open V4L2 devices by index; let OpenCV pick the backend.
        cap = cv2.VideoCapture(int(source.target), cv2.CAP_ANY)
    else:
        if source.scheme in ("rtsp", "rtsps"):
            # Read by FFmpeg at open time; a user's own setting wins.
            os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
        try:
            cap = cv2.VideoCapture(str(source.target), cv2.CAP_FFMPEG, capture_params(settings))
        except cv2.error:
            # The error text may quote the URL; never re-raise it.
            raise SourceUnavailable(f"OpenCV refused to open {source.redacted}") from None
    if not cap.isOpened():
        cap.release()
        raise SourceUnavailable(f"could not open {source.redacted}")
    return cap
