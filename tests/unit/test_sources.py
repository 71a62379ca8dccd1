"""Source redaction and validation: secrets never leak, scheme and file rules hold."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ingest.exceptions import InvalidSource
from pipeline.ingest.sources import Source, SourceKind, redact_url, validate_source
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
