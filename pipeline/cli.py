"""``emotionpipe``: run the local stack, manage cameras, query summaries, train/evaluate/benchmark.

Heavy imports (Ray, torch, onnxruntime) happen inside the commands so ``emotionpipe --help``
stays fast. Camera and summary commands talk to the running API over HTTP, the same path a
dashboard uses, so they validate exactly like the API does.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Annotated

import typer

from pipeline.cli_api import alerts_app, cameras_app, show_token, summary, watch
from pipeline.cli_client import JsonOpt, settings, token

app = typer.Typer(name="emotionpipe", no_args_is_help=True, add_completion=False,
                  help="Streaming multi-camera facial-expression analytics.")
app.add_typer(cameras_app, name="cameras")

# Sub-commands whose options belong to another module's own argument parser.
PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}

# The HTTP plumbing and the API commands live in cli_client / cli_api (kept under ~400 lines each).
_settings = settings
_token = token


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
            typer.echo(f"emotion-pipeline is up (pid {state.pid}): dashboard {state.api_url}/  API docs {state.api_url}/docs")
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
    """Turn a training checkpoint into shipped weights + model card (`emotionpipe export --help`).

    A camera's aggregates are exported with `emotionpipe cameras export CAM`.
    """
    from pipeline.train.evaluate import export_main

    raise typer.Exit(export_main(list(ctx.args)))


@app.command(context_settings=PASSTHROUGH, add_help_option=False)
def quantize(ctx: typer.Context) -> None:
    """Make the int8 model the CPU runtime serves, from shipped weights (`emotionpipe quantize --help`)."""
    from pipeline.train.quantize import main as quantize_main

    raise typer.Exit(quantize_main(list(ctx.args)))


# API commands after the stack ones, so `--help` lists up/down/status first.
app.command("summary")(summary)
app.command("watch")(watch)
app.command("token")(show_token)
app.add_typer(alerts_app, name="alerts")


def main() -> None:
    """Console-script entry point."""
    # Before anything imports ray: no token auth, no usage stats on local clusters.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    app(prog_name="emotionpipe")


if __name__ == "__main__":
    main()
