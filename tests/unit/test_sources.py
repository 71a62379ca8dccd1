"""Source redaction and validation: secrets never leak, scheme and file rules hold."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.common.urls import redact_url
from pipeline.ingest.exceptions import InvalidSource
from pipeline.ingest.sources import Source, SourceKind, validate_source
from pipeline.settings import IngestSettings

SECRET = "Zx9-s3cr3t"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://admin:s3cr3t@cam.local:554/live", "rtsp://admin:***@cam.local:554/live"),
        ("rtsp://cam.local:554/live", "rtsp://cam.local:554/live"),
        ("rtsps://u:p%40ss@[::1]:8554/x", "rtsps://u:***@[::1]:8554/x"),
        ("rtsp://token@host/s", "rtsp://***@host/s"),
        ("rtsp://:onlypw@host/s", "rtsp://***@host/s"),
        ("http://h/a?token=abc&x=1", "http://h/a?token=***&x=1"),
        ("https://h/a?X-Amz-Signature=abc&ok=1", "https://h/a?X-Amz-Signature=***&ok=1"),
        ("https://h/a?user=bob&password=hunter2", "https://h/a?user=bob&password=***"),
        ("https://h/p#access_token=xyz", "https://h/p#access_token=***"),
        ("rtsp://host/stream@1", "rtsp://host/stream@1"),
        ("/data/clips/a@b.mp4", "/data/clips/a@b.mp4"),
        ("webcam:0", "webcam:0"),
        ("user:pass@host/x", "user:***@host/x"),
    ],
)
def test_redact_url_known_forms(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    "password",
    ["p@ss", "p/ss", "p:ss", "p?ss", "p#ss", "p@s/s:w?d#", "@@", "a/b@c/d", "12/34", "pa ss"],
)
def test_redact_url_passwords_with_special_characters(password: str) -> None:
    # Given a camera URL whose password holds raw URL delimiters
    url = f"rtsp://admin:{password}{SECRET}@10.0.0.5:554/Streaming/Channels/101?transport=tcp"
    # When it is redacted
    shown = redact_url(url)
    # Then no part of the password is left and user and host are still readable
    assert SECRET not in shown
    assert password not in shown
    assert shown.startswith("rtsp://admin:***@10.0.0.5:554/")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20))
def test_redact_url_never_leaks_any_printable_password(password: str) -> None:
    url = f"rtsp://user:{password}@camera.example.com:8554/live"
    assert f":{password}@" not in redact_url(url)
    assert redact_url(url).startswith("rtsp://user:***@")


def test_redact_url_non_string_is_masked() -> None:
    assert redact_url(None) == "***"  # type: ignore[arg-type]


def test_validate_rtsp_source_keeps_target_but_hides_it_from_repr() -> None:
    # Given a valid RTSP URL with credentials
    url = f"rtsp://admin:{SECRET}@cam.local/live"
    # When validated
    src = validate_source(url, IngestSettings())
    # Then the real URL is the capture target, and str/repr are redacted
    assert src.kind is SourceKind.STREAM and src.scheme == "rtsp" and src.is_live
    assert src.target == url
    assert SECRET not in str(src) and SECRET not in repr(src)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"ftp://admin:{SECRET}@host/x", "scheme 'ftp' is not allowed"),
        (f"rtmp://admin:{SECRET}@host/live", "scheme 'rtmp' is not allowed"),
        (f"rtsp://admin:{SECRET}@/live", "no host"),
        (f"rtsp://admin:{SECRET}@host:99999/live", "invalid port"),
        (f"rtsp://admin:{SECRET}@host:0/live", "invalid port"),
        (f"rtsp://admin:{SECRET}@bad host/live", "invalid host"),
        (f"admin:{SECRET}@cam.local/live", "no '//' after its scheme"),
        (f"rtsp://admin:{SECRET}@host/li\nve", "control characters"),
        ("", "empty"),
        ("   ", "empty"),
        (f"cam.local/live?password={SECRET}", "no URL scheme"),
    ],
)
def test_validation_errors_are_clear_and_never_leak_secrets(url: str, message: str) -> None:
    with pytest.raises(InvalidSource) as info:
        validate_source(url, IngestSettings())
    assert message in str(info.value)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


def test_validation_error_names_allowed_schemes() -> None:
    with pytest.raises(InvalidSource, match="allowed: rtsp, rtsps, http, https"):
        validate_source("udp://239.0.0.1:1234", IngestSettings())


def test_schemes_follow_settings() -> None:
    only_rtsps = IngestSettings(allowed_schemes=("rtsps",))
    assert validate_source("rtsps://h/x", only_rtsps).scheme == "rtsps"
    with pytest.raises(InvalidSource, match="not allowed"):
        validate_source("rtsp://h/x", only_rtsps)
    # Scheme matching is case-insensitive, as in RFC 3986.
    assert validate_source("RTSP://h/x", IngestSettings()).scheme == "rtsp"


def test_file_sources_are_disabled_by_default(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0")
    for url in (str(clip), f"file://{clip}"):
        with pytest.raises(InvalidSource, match="file sources are disabled"):
            validate_source(url, IngestSettings())


def test_file_sources_when_allowed(tmp_path: Path) -> None:
    clip = tmp_path / "my clip.mp4"
    clip.write_bytes(b"\0")
    allow = IngestSettings(allow_files=True)
    src = validate_source(str(clip), allow)
    assert src.kind is SourceKind.FILE and not src.is_live and src.target == str(clip)
    # file:// URLs are percent-decoded like any file URL
    assert validate_source(f"file://{str(clip).replace(' ', '%20')}", allow).target == str(clip)
    with pytest.raises(InvalidSource, match="no such file"):
        validate_source(str(tmp_path / "missing.mp4"), allow)


@pytest.mark.parametrize(("url", "index"), [("webcam:0", 0), ("webcam:2", 2), ("1", 1)])
def test_webcam_indexes(url: str, index: int) -> None:
    src = validate_source(url, IngestSettings())
    assert src == Source(SourceKind.WEBCAM, f"webcam:{index}", "webcam", index)
    assert src.is_live


def test_non_string_source_is_rejected() -> None:
    with pytest.raises(InvalidSource, match="must be a string"):
        validate_source(5, IngestSettings())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- SSRF policy
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("rtsp://127.0.0.1:8554/live", "loopback"),
        ("rtsp://127.9.8.7/live", "loopback"),
        ("http://2130706433/", "loopback"),  # decimal
        ("http://0x7f.1/", "loopback"),  # hex, short form
        ("http://0x7f000001/", "loopback"),
        ("http://0177.0.0.1/", "loopback"),  # octal
        ("http://127.1/", "loopback"),
        ("rtsp://[::1]:8554/x", "loopback"),
        ("rtsp://[::ffff:127.0.0.1]/x", "loopback"),  # IPv4-mapped
        ("rtsp://[::ffff:7f00:1]/x", "loopback"),
        ("rtsp://[64:ff9b::7f00:1]/x", "loopback"),  # NAT64
        ("rtsp://[2002:7f00:1::]/x", "loopback"),  # 6to4
        ("rtsp://localhost:8554/x", "loopback"),
        ("rtsp://LocalHost./x", "loopback"),
        ("rtsp://cam.localhost/x", "loopback"),
        (f"rtsp://admin:{SECRET}@169.254.10.20/x", "link-local"),
        ("rtsp://[fe80::1]/x", "link-local"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[::ffff:169.254.169.254]/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://100.100.100.200/", "metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://metadata/computeMetadata/v1/", "metadata"),
        ("http://METADATA.GOOGLE.INTERNAL./", "metadata"),
        ("rtsp://0.0.0.0:554/x", "unspecified"),
        ("rtsp://0/x", "unspecified"),
        ("rtsp://[::]/x", "unspecified"),
        ("rtsp://224.0.0.251/x", "multicast"),
        ("rtsp://[ff02::1]/x", "multicast"),
        ("rtsp://255.255.255.255/x", "broadcast"),
        ("rtsp://240.0.0.1/x", "reserved"),
    ],
)
def test_ssrf_hosts_are_refused_with_a_redacted_reason(url: str, reason: str) -> None:
    # Given a URL pointing at the pipeline's own host, a metadata service or a non-host address
    # When it is validated with the default (cluster) settings
    with pytest.raises(InvalidSource) as info:
        validate_source(url, IngestSettings())
    # Then it is refused, saying why, without the password
    assert reason in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://10.0.0.5:554/live",
        "rtsp://172.16.3.4/live",
        "rtsp://192.168.1.64/Streaming/Channels/101",
        "rtsp://[fd12:3456::5]/x",  # ULA: private IPv6 LAN
        "rtsp://[::ffff:192.168.1.64]/x",
        "rtsps://8.8.8.8/x",
        "rtsp://camera.invalid/live",  # does not resolve: accepted (the camera may come later)
        "http://metadata-camera.example.com/mjpeg",  # only exact metadata names are refused
    ],
)
def test_lan_public_and_unresolvable_hosts_are_allowed(url: str) -> None:
    assert validate_source(url, IngestSettings()).target == url


def test_loopback_and_link_local_follow_settings() -> None:
    loop = IngestSettings(allow_loopback=True)
    for url in ("rtsp://127.0.0.1:8554/a", "http://0x7f.1/", "rtsp://[::1]/x", "rtsp://localhost/x"):
        assert validate_source(url, loop).kind is SourceKind.STREAM
    with pytest.raises(InvalidSource, match="link-local"):
        validate_source("rtsp://169.254.3.4/x", loop)
    link = IngestSettings(allow_link_local=True)
    assert validate_source("rtsp://169.254.3.4/x", link).kind is SourceKind.STREAM
    assert validate_source("rtsp://[fe80::1]/x", link).kind is SourceKind.STREAM
    # metadata endpoints stay refused whatever is allowed
    both = IngestSettings(allow_loopback=True, allow_link_local=True)
    for url in ("http://169.254.169.254/", "http://metadata.google.internal/", "rtsp://0.0.0.0/x"):
        with pytest.raises(InvalidSource):
            validate_source(url, both)


def test_names_are_judged_by_what_they_resolve_to(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    # Given a resolver where one name points at loopback and another at a LAN camera
    answers = {"sneaky.example.com": "127.0.0.1", "lobby.example.com": "10.1.2.3", "both.example.com": "mixed"}

    def fake_getaddrinfo(host: str, *_a: object, **_k: object) -> list[tuple[object, ...]]:
        ip = answers.get(host)
        if ip is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        ips = ["10.1.2.3", "169.254.169.254"] if ip == "mixed" else [ip]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in ips]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    # Then a name resolving to loopback, or to any blocked address among others, is refused
    with pytest.raises(InvalidSource, match="resolves to an address that is a loopback"):
        validate_source(f"rtsp://u:{SECRET}@sneaky.example.com/x", IngestSettings())
    with pytest.raises(InvalidSource, match="metadata"):
        validate_source("rtsp://both.example.com/x", IngestSettings())
    assert validate_source("rtsp://lobby.example.com/x", IngestSettings()).kind is SourceKind.STREAM
    # and with resolution off, only literal addresses are judged
    assert validate_source("rtsp://sneaky.example.com/x", IngestSettings(resolve_timeout_s=0)).is_live


def test_a_slow_resolver_does_not_block_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import threading

    release = threading.Event()

    def hanging_getaddrinfo(*_a: object, **_k: object) -> list[object]:
        release.wait(5)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hanging_getaddrinfo)
    try:
        # Given a DNS server that does not answer, the name is accepted after the timeout
        src = validate_source("rtsp://slow.example.com/x", IngestSettings(resolve_timeout_s=0.05))
        assert src.is_live
    finally:
        release.set()


def test_the_policy_is_checked_again_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from pipeline.ingest.exceptions import SourceUnavailable
    from pipeline.ingest.sources import open_capture

    # Given a name that resolved to a LAN address at registration ...
    src = validate_source(f"rtsp://u:{SECRET}@rebind.example.com/x", IngestSettings())

    # ... and now resolves to the metadata service (DNS rebinding)
    def rebound(*_a: object, **_k: object) -> list[tuple[object, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 0))]

    monkeypatch.setattr(socket, "getaddrinfo", rebound)
    # Then the connection is refused before OpenCV sees the URL, with a redacted message
    with pytest.raises(SourceUnavailable, match="refusing to connect") as info:
        open_capture(src, IngestSettings())
    assert SECRET not in str(info.value)


def _spellings(ip: int) -> list[str]:
    a, b, c, d = ip.to_bytes(4, "big")
    return [
        f"{a}.{b}.{c}.{d}",
        str(ip),
        hex(ip),
        f"{a}.{(b << 16) | (c << 8) | d}",
        f"{a}.{b}.{(c << 8) | d}",
        f"{hex(a)}.{hex(b)}.{hex(c)}.{hex(d)}",
        f"0{oct(a)[2:]}.0{oct(b)[2:]}.0{oct(c)[2:]}.0{oct(d)[2:]}",
    ]


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0x7F000000, max_value=0x7FFFFFFF), st.integers(min_value=0, max_value=6))
def test_every_spelling_of_a_loopback_address_is_refused(ip: int, form: int) -> None:
    host = _spellings(ip)[form]
    with pytest.raises(InvalidSource, match="loopback"):
        validate_source(f"rtsp://{host}:554/x", IngestSettings())


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0xC0A80000, max_value=0xC0A8FFFF), st.integers(min_value=0, max_value=6))
def test_every_spelling_of_a_lan_address_is_allowed(ip: int, form: int) -> None:
    host = _spellings(ip)[form]
    assert validate_source(f"rtsp://{host}:554/x", IngestSettings()).is_live
