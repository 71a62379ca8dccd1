"""``emotionpipe``: run the local stack, manage cameras, query summaries, train/evaluate/benchmark.

Heavy imports (Ray, torch, onnxruntime) happen inside the commands so ``emotionpipe --help``
stays fast. Camera and summary commands talk to the running API over HTTP, the same path a
dashboard uses, so they validate exactly like the API does.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Annotated, Any

import typer

app = typer.Typer(name="emotionpipe", no_args_is_help=True, add_completion=False,
                  help="Streaming multi-camera facial-expression analytics.")
cameras_app = typer.Typer(no_args_is_help=True, help="Register, list and remove camera streams.")
app.add_typer(cameras_app, name="cameras")

# Sub-commands whose options belong to another module's own argument parser.
PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}

ApiOpt = Annotated[str | None, typer.Option("--api", envvar="EP_API_URL", help="API base URL (default: the running stack's).")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="EP_API_TOKEN", show_default=False,
                                              help="API bearer token (default: the local stack's token file).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _settings(**api: Any) -> Any:
    from pipeline.settings import load_settings

    settings = load_settings()
    changes = {k: v for k, v in api.items() if v is not None}
    if changes:
        from pipeline.runtime.stack import with_section

        settings = with_section(settings, "api", **changes)
    return settings


def _api_base(api: str | None) -> str:
    if api:
        return api.rstrip("/")
    from pipeline.runtime.stack import StackState, api_url

    settings = _settings()
    state = StackState.read(settings.data_dir.resolve())
    return state.api_url if state is not None else api_url(settings)


def _token(token: str | None = None) -> str | None:
    """The token to send: --token / EP_API_TOKEN, else the configured one, else the local stack's file."""
    token = token or os.environ.get("EP_API_TOKEN")
    if token:
        return token
    from pipeline.runtime.stack import TOKEN_FILE, StackState

    settings = _settings()
    if settings.api.tokens:
        return str(settings.api.tokens[0].get_secret_value())
    data_dir = settings.data_dir.resolve()
    state = StackState.read(data_dir)
    candidates = [settings.api.token_file, state.token_file if state else None, data_dir / TOKEN_FILE]
    for path in candidates:
        if path is None:
            continue
        try:
            lines = [x.strip() for x in open(path).read().splitlines() if x.strip()]
        except OSError:
            continue
        if lines:
            return lines[0]
    return None


def _request(method: str, url: str, token: str | None = None, **kwargs: Any) -> Any:
    import httpx

    secret = _token(token)
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    try:
        response = httpx.request(method, url, timeout=30.0, headers=headers, **kwargs)
    except httpx.HTTPError as exc:
        typer.secho(f"cannot reach the API at {url}: {type(exc).__name__} (is `emotionpipe up` running?)", err=True, fg="red")
        raise typer.Exit(2) from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        if isinstance(detail, list):  # FastAPI validation errors: field path + message
            detail = "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail)
        typer.secho(f"error {response.status_code}: {detail}", err=True, fg="red")
        raise typer.Exit(1)
    return response.json() if response.content else None


# --------------------------------------------------------------------------- stack
@app.command()
def up(
    demo: Annotated[bool, typer.Option("--demo/--no-demo", help="Register looping demo cameras from the shared media.")] = False,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background; `emotionpipe down` stops it.")] = False,
    host: Annotated[str | None, typer.Option(help="HTTP bind address (default api.host).")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default api.port).")] = None,
) -> None:
    """Start the local stack: embedded Redis (unless EP_REDIS__URL is set), Ray, the Serve app."""
    from pipeline.runtime import stack

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(host=host, port=port)
    try:
        if detach:
            argv = ["up", "--demo" if demo else "--no-demo"]
            argv += [f"--host={host}"] if host else []
            argv += [f"--port={port}"] if port else []
            state = stack.start_detached(settings, argv)
            typer.echo(f"emotion-pipeline is up (pid {state.pid}): API {state.api_url}  (docs {state.api_url}/docs)")
            return
        raise typer.Exit(stack.run_foreground(settings, demo=demo))
    except stack.StackError as exc:
        typer.secho(str(exc), err=True, fg="red")
        raise typer.Exit(1) from None


@app.command()
def down() -> None:
    """Stop the stack started by `emotionpipe up` (clean shutdown, AOF flushed)."""
    from pipeline.runtime.stack import down as stack_down

    typer.echo("stopped" if stack_down(_settings()) else "no stack running")


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """Is the local stack running, where, and is it ready?"""
    from pipeline.runtime.stack import status as stack_status

    info = stack_status(_settings())
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    if not info["running"]:
        typer.echo("not running")
        raise typer.Exit(3)
    typer.echo(f"running (pid {info['pid']}), API {info['api_url']}, ready={info['ready']}, redis {info['redis_url']}")


# --------------------------------------------------------------------------- cameras
@cameras_app.command("add")
def cameras_add(
    camera_id: Annotated[str, typer.Argument(metavar="ID")],
    url: Annotated[str, typer.Argument(help="rtsp://, http(s)://, webcam:N, or a file when allowed.")],
    fps: Annotated[float | None, typer.Option(help="Sampling rate (default ingest.default_fps).")] = None,
    name: Annotated[str, typer.Option()] = "",
    paused: Annotated[bool, typer.Option("--paused", help="Register without starting it.")] = False,
    label: Annotated[list[str] | None, typer.Option("--label", help="key=value, repeatable.")] = None,
    api: ApiOpt = None,
) -> None:
    """Register a camera stream; it starts within a second."""
    labels = dict(item.split("=", 1) for item in (label or []) if "=" in item)
    body: dict[str, Any] = {"id": camera_id, "url": url, "name": name, "enabled": not paused, "labels": labels}
    if fps is not None:
        body["fps"] = fps
    cam = _request("POST", f"{_api_base(api)}/cameras", json=body)
    typer.echo(f"added {cam['id']} ({cam['url']})")


@cameras_app.command("list")
def cameras_list(api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """List registered cameras (credentials masked)."""
    cams = _request("GET", f"{_api_base(api)}/cameras")
    if as_json:
        typer.echo(json.dumps(cams, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "url", "fps", "enabled", "name")
    for c in cams:
        table.add_row(c["id"], c["url"], f"{c['fps']:g}", "yes" if c["enabled"] else "paused", c["name"])
    Console().print(table)


@cameras_app.command("rm")
def cameras_rm(camera_id: Annotated[str, typer.Argument(metavar="ID")], api: ApiOpt = None) -> None:
    """Remove a camera; its reader stops, its history stays queryable."""
    _request("DELETE", f"{_api_base(api)}/cameras/{camera_id}")
    typer.echo(f"removed {camera_id}")


@app.command()
def summary(
    camera_id: Annotated[str, typer.Argument(metavar="CAM")],
    window: Annotated[float, typer.Option(help="Window in seconds, ending now.")] = 60,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Emotion distribution of one camera over the last WINDOW seconds."""
    s = _request("GET", f"{_api_base(api)}/cameras/{camera_id}/summary", params={"window": window})
    if as_json:
        typer.echo(json.dumps(s, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("emotion", "faces", "share", "mean prob", title=(
        f"{camera_id}: {s['faces']} faces, {s['distinct_tracks']} people, dominant {s['dominant'] or '-'} "
        f"(last {s['window_s']:g}s, model {s['model'] or '-'})"))
    for label, count in s["counts"].items():
        table.add_row(label, str(count), f"{s['shares'][label]:.1%}", f"{s['mean_probs'][label]:.3f}")
    Console().print(table)


# --------------------------------------------------------------------------- ML tools
@app.command(context_settings=PASSTHROUGH, add_help_option=False)
def train(ctx: typer.Context) -> None:
    """Train the emotion CNN (options: `emotionpipe train --help`)."""
    from pipeline.train.cli import main as train_main

    raise typer.Exit(train_main(list(ctx.args)))


@app.command("eval", context_settings=PASSTHROUGH, add_help_option=False)
def evaluate(ctx: typer.Context) -> None:
    """Evaluate a model on FER2013 test data and the labelled media (`emotionpipe eval --help`)."""
    from pipeline.train.evaluate import main as eval_main

    raise typer.Exit(eval_main(list(ctx.args)))


@app.command(context_settings=PASSTHROUGH, add_help_option=False)
def bench(ctx: typer.Context) -> None:
    """Benchmark detection, classification and the live pipeline (`emotionpipe bench --help`)."""
    from pipeline.bench.cli import main as bench_main

    raise typer.Exit(bench_main(list(ctx.args)))


@app.command(context_settings=PASSTHROUGH, add_help_option=False)
def analyze(ctx: typer.Context) -> None:
    """Detect faces and classify emotions in images/videos offline (`emotionpipe analyze --help`)."""
    from pipeline.detect.analyze_cli import main as analyze_main

    raise typer.Exit(analyze_main(list(ctx.args)))


@app.command(context_settings=PASSTHROUGH, add_help_option=False)
def export(ctx: typer.Context) -> None:
    """Turn a training checkpoint into shipped weights + model card (`emotionpipe export --help`)."""
    from pipeline.train.evaluate import export_main

    raise typer.Exit(export_main(list(ctx.args)))


def main() -> None:
    """Console-script entry point."""
    # Before anything imports ray: no token auth, no usage stats on local clusters.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    app(prog_name="emotionpipe")


if __name__ == "__main__":
    main()
