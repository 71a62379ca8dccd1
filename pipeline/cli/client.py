"""HTTP plumbing of the CLI: where the API is, which token to send, errors as one red line.

The API commands (:mod:`pipeline.cli.cameras`, :mod:`pipeline.cli.alerts`) talk only to the
HTTP API, the same path a dashboard uses, so they validate exactly like the API does.
"""

from __future__ import annotations

import os
from typing import Any

import typer

__all__ = ["api_base", "load_settings_with", "local_token", "print_table", "request", "request_raw", "resolve_token"]


def load_settings_with(**api: Any) -> Any:
    """The settings tree from the environment, with ``api`` section overrides (``None`` ignored)."""
    from pipeline.settings import load_settings

    loaded = load_settings()
    changes = {k: v for k, v in api.items() if v is not None}
    if changes:
        from pipeline.runtime.stack import with_section

        loaded = with_section(loaded, "api", **changes)
    return loaded


def api_base(api: str | None) -> str:
    """``--api``, else the running stack's URL, else the configured host and port."""
    if api:
        return api.rstrip("/")
    from pipeline.runtime.stack import StackState, api_url

    s = load_settings_with()
    state = StackState.read(s.data_dir.resolve())
    return state.api_url if state is not None else api_url(s)


def local_token() -> str | None:
    """The configured token, else the first line of the local stack's token file."""
    from pipeline.runtime.stack import TOKEN_FILE, StackState

    s = load_settings_with()
    if s.api.tokens:
        return str(s.api.tokens[0].get_secret_value())
    data_dir = s.data_dir.resolve()
    state = StackState.read(data_dir)
    for path in (s.api.token_file, state.token_file if state else None, data_dir / TOKEN_FILE):
        if path is None:
            continue
        try:
            with open(path) as fh:
                lines = [x.strip() for x in fh.read().splitlines() if x.strip()]
        except OSError:
            continue
        if lines:
            return lines[0]
    return None


def resolve_token(explicit: str | None = None) -> str | None:
    """The token to send: --token / EP_API_TOKEN, else :func:`local_token`."""
    return explicit or os.environ.get("EP_API_TOKEN") or local_token()


def _fail(message: str, code: int) -> typer.Exit:
    typer.secho(message, err=True, fg="red")
    return typer.Exit(code)


def request_raw(method: str, url: str, token_opt: str | None = None, **kwargs: Any) -> Any:
    """Send a request; exit 2 when the API cannot be reached, 1 on an HTTP error (detail printed)."""
    import httpx

    secret = resolve_token(token_opt)
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    try:
        response = httpx.request(method, url, timeout=30.0, headers=headers, **kwargs)
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach the API at {url}: {type(exc).__name__} (is `emotionpipe up` running?)", 2) from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        if isinstance(detail, list):  # validation errors: field path + message
            detail = "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail)
        hint = " (pass --token or set EP_API_TOKEN; `emotionpipe token` prints the local one)" \
            if response.status_code == 401 else ""
        raise _fail(f"error {response.status_code}: {detail}{hint}", 1)
    return response


def request(method: str, url: str, token_opt: str | None = None, **kwargs: Any) -> Any:
    """:func:`request_raw` and decode the JSON body (None when empty)."""
    response = request_raw(method, url, token_opt, **kwargs)
    return response.json() if response.content else None


def print_table(table: Any) -> None:
    """Print a rich table on a console wide enough that ids are never wrapped."""
    from rich.console import Console

    # A wide console: CliRunner and pipes have no terminal, and ids must not be wrapped.
    Console(width=max(120, Console().width)).print(table)
