"""Local stack commands: ``up``, ``down``, ``status``."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

import typer

from pipeline.cli.client import load_settings_with
from pipeline.cli.options import JsonOpt

__all__ = ["down", "status", "up"]


def up(
    demo: Annotated[bool, typer.Option(
        "--demo/--no-demo", help="Register looping demo cameras from the shared media.")] = False,
    detach: Annotated[bool, typer.Option(
        "--detach", "-d", help="Run in the background; `emotionpipe down` stops it.")] = False,
    host: Annotated[str | None, typer.Option(help="HTTP bind address (default api.host).")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default api.port).")] = None,
) -> None:
    """Start the local stack: embedded Redis (unless EP_REDIS__URL is set), Ray, the Serve app."""
    from pipeline.runtime import stack as runtime_stack

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings_with(host=host, port=port)
    try:
        if detach:
            # The background process is this same command, run through `python -m pipeline.cli`.
            argv = ["up", "--demo" if demo else "--no-demo"]
            argv += [f"--host={host}"] if host else []
            argv += [f"--port={port}"] if port else []
            state = runtime_stack.start_detached(settings, argv)
            typer.echo(f"emotion-pipeline is up (pid {state.pid}): "
                       f"dashboard {state.api_url}/  API docs {state.api_url}/docs")
            return
        raise typer.Exit(runtime_stack.run_foreground(settings, demo=demo))
    except runtime_stack.StackError as exc:
        typer.secho(str(exc), err=True, fg="red")
        raise typer.Exit(1) from None


def down() -> None:
    """Stop the stack started by `emotionpipe up` (clean shutdown, AOF flushed)."""
    from pipeline.runtime.stack import down as stack_down

    typer.echo("stopped" if stack_down(load_settings_with()) else "no stack running")


def status(as_json: JsonOpt = False) -> None:
    """Is the local stack running, where, is it ready, and does it keep up with its cameras?"""
    from pipeline.runtime.stack import status as stack_status

    info = stack_status(load_settings_with())
    if info.get("ready"):
        info["capacity"] = _capacity(info["api_url"])
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    if not info["running"]:
        typer.echo("not running")
        raise typer.Exit(3)
    typer.echo(f"running (pid {info['pid']}), API {info['api_url']}, ready={info['ready']}, redis {info['redis_url']}")
    cap = info.get("capacity")
    if cap:
        typer.echo(
            f"{'OVER CAPACITY' if cap['over_capacity'] else 'keeping up'}: {cap['cameras']} live cameras ask "
            f"{cap['demand_fps']:.1f} frames/s, {cap['processed_fps']:.1f} processed, {cap['dropped_fps']:.1f} dropped"
            + (f"; sustains ~{cap['sustainable_cameras']} cameras at their fps" if cap["over_capacity"] else "")
        )


def _capacity(api_url: str) -> dict[str, Any] | None:
    """The API's capacity report, or None when it cannot be had (no token, API busy)."""
    import httpx

    from pipeline.cli.client import resolve_token

    secret = resolve_token(None)
    try:
        response = httpx.get(f"{api_url}/overview", params={"window": "60"}, timeout=5.0,
                             headers={"Authorization": f"Bearer {secret}"} if secret else {})
        response.raise_for_status()
        capacity: dict[str, Any] = response.json()["capacity"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    return capacity
