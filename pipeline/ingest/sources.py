"""Camera sources: validation against the ingest settings and opening with OpenCV.

URLs are shown only through :func:`pipeline.common.urls.redact_url`; every log line, error
message and health record that mentions a source holds its redacted form. Where a stream
may point is decided by :mod:`pipeline.common.netpolicy` with the ``ingest`` switches.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from pipeline.common.netpolicy import BlockedHost, check_host
from pipeline.common.urls import HOSTPORT_RE, SCHEME_RE, redact_url, url_hostport
from pipeline.ingest.exceptions import InvalidSource, SourceUnavailable

if TYPE_CHECKING:
    from pipeline.settings import IngestSettings

MAX_URL_LEN = 4096
#: Settings section named in policy refusals (``set ingest.allow_loopback ...``).
POLICY_SECTION = "ingest"

_WEBCAM_RE = re.compile(r"^(?:webcam:)?(\d{1,3})$")


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
    :mod:`pipeline.common.netpolicy` (no loopback, link-local or metadata hosts unless
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

    match = SCHEME_RE.match(url)
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

    hostport = url_hostport(url)
    if not hostport:
        raise InvalidSource(f"source has no host: {shown}")
    host_match = HOSTPORT_RE.match(hostport)
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
        check_host(host_match.group(1), settings, section=POLICY_SECTION)
    except BlockedHost as exc:
        raise InvalidSource(f"source host {exc}: {shown}") from None
    return Source(SourceKind.STREAM, shown, scheme, url)


def check_destination(source: Source, settings: IngestSettings) -> None:
    """Re-apply the host policy right before connecting (the name may resolve elsewhere now).

    Raises:
        SourceUnavailable: The host is refused; the message is redacted.
    """
    if source.kind is not SourceKind.STREAM:
        return
    host_match = HOSTPORT_RE.match(url_hostport(str(source.target)))
    if host_match is None:
        raise SourceUnavailable(f"refusing to connect, invalid host: {source.redacted}")
    try:
        check_host(host_match.group(1), settings, section=POLICY_SECTION)
    except BlockedHost as exc:
        raise SourceUnavailable(f"refusing to connect, host {exc}: {source.redacted}") from None


def capture_params(settings: IngestSettings) -> list[int]:
    """The OpenCV open/read timeouts and decoder threads as a ``VideoCapture`` params list."""
    import cv2

    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(settings.open_timeout_ms),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(settings.read_timeout_ms),
    ]
    if settings.decoder_threads:
        params += [cv2.CAP_PROP_N_THREADS, int(settings.decoder_threads)]
    return params


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
