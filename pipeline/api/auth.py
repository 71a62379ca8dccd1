"""Bearer-token auth: mutations always need a token, reads only when ``api.auth_reads`` is set.

Tokens come from the settings (env) and/or a token file (a mounted Kubernetes Secret, or the
file ``emotionpipe up`` generates). With no token configured the API is read-only: a deployment
that forgot its Secret fails closed instead of open. Tokens are never logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pipeline.settings import ApiSettings

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="API token (`emotionpipe token` prints the local one).")


def _digest(token: str) -> bytes:
    # Hashing first makes every comparison the same length, so compare_digest leaks nothing.
    return hashlib.sha256(token.encode()).digest()


class TokenVerifier:
    """Checks presented tokens against the configured ones in constant time.

    Args:
        settings: The ``api`` settings section (``tokens``, ``token_file``).
    """

    def __init__(self, settings: ApiSettings) -> None:
        self._static = tuple(_digest(t.get_secret_value()) for t in settings.tokens if t.get_secret_value())
        self._file = settings.token_file
        self._file_mtime: float | None = None
        self._file_tokens: tuple[bytes, ...] = ()
        self._lock = threading.Lock()

    def _current(self) -> tuple[bytes, ...]:
        if self._file is None:
            return self._static
        try:
            mtime = self._file.stat().st_mtime
        except OSError:
            # A missing file means no file tokens (fail closed), not a crash of every request.
            return self._static
        with self._lock:
            if mtime != self._file_mtime:
                lines = self._file.read_text().splitlines()
                self._file_tokens = tuple(_digest(x.strip()) for x in lines if x.strip())
                self._file_mtime = mtime
            return self._static + self._file_tokens

    @property
    def configured(self) -> bool:
        """True when at least one token is accepted."""
        return bool(self._current())

    def verify(self, presented: str | None) -> bool:
        """True when ``presented`` equals one of the configured tokens."""
        if not presented:
            return False
        candidate = _digest(presented)
        ok = False
        for known in self._current():
            # No early exit: the time taken does not depend on which token matched.
            ok |= hmac.compare_digest(candidate, known)
        return ok


def ensure_token_file(path: Path) -> Path:
    """Create ``path`` with a fresh random token (mode 0600) unless it exists; return it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
    return path


def _check(request: Request, credentials: HTTPAuthorizationCredentials | None) -> None:
    verifier: TokenVerifier = request.app.state.token_verifier
    presented = credentials.credentials if credentials is not None else None
    if verifier.verify(presented):
        return
    if not verifier.configured:
        detail = "this API has no token configured (set api.tokens or api.token_file); it is read-only"
    else:
        detail = "missing or invalid API token"
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def require_write(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Dependency of every mutating route."""
    _check(request, credentials)


def require_read(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Dependency of read routes: enforced only when ``api.auth_reads`` is set."""
    if request.app.state.settings.api.auth_reads:
        _check(request, credentials)


WriteAuth = Depends(require_write)
ReadAuth = Depends(require_read)
