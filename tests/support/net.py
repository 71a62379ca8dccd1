"""Loopback port helpers for tests that start real servers."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1 (never 6379, Ray's GCS port)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != 6379:
            return port

