"""``emotionpipe``: run the local stack, manage cameras, query summaries, train/evaluate/benchmark.

One typer app; each module holds one group of commands:

* :mod:`~pipeline.cli.stack`: ``up``, ``down``, ``status``;
* :mod:`~pipeline.cli.cameras`, :mod:`~pipeline.cli.alerts`: the HTTP API's commands (``cameras ...``,
  ``summary``, ``watch``, ``token``, ``alerts ...``) over :mod:`~pipeline.cli.client`;
* :mod:`~pipeline.cli.train`, :mod:`~pipeline.cli.model`, :mod:`~pipeline.cli.analyze`,
  :mod:`~pipeline.cli.bench`: ``train``, ``teacher-bank``, ``eval``/``export``/``quantize``, ``analyze``, ``bench ...``.

Heavy imports (Ray, torch, onnxruntime, numpy, pydantic) happen inside the commands so
``emotionpipe --help`` stays fast, and so ``python -m pipeline.train`` runs where only torch and
typer are installed. Camera and summary commands talk to the running API over HTTP, the same
path a dashboard uses, so they validate exactly like the API does.
"""

from __future__ import annotations

import os

import typer

from pipeline.cli.alerts import alerts_app
from pipeline.cli.analyze import analyze
from pipeline.cli.bench import bench_app
from pipeline.cli.cameras import cameras_app, show_token, summary, watch
from pipeline.cli.model import evaluate, export, quantize
from pipeline.cli.stack import down, status, up
from pipeline.cli.train import teacher_bank, train

__all__ = ["app", "main"]

STACK, DATA, MODEL = "Local stack", "Cameras and results (HTTP API)", "Model tools"

app = typer.Typer(name="emotionpipe", no_args_is_help=True, add_completion=False,
                  help="Streaming multi-camera facial-expression analytics.")

app.command(rich_help_panel=STACK)(up)
app.command(rich_help_panel=STACK)(down)
app.command(rich_help_panel=STACK)(status)

app.add_typer(cameras_app, name="cameras", rich_help_panel=DATA)
app.command("summary", rich_help_panel=DATA)(summary)
app.command("watch", rich_help_panel=DATA)(watch)
app.add_typer(alerts_app, name="alerts", rich_help_panel=DATA)
app.command("token", rich_help_panel=DATA)(show_token)

app.command(rich_help_panel=MODEL)(train)
app.command("teacher-bank", rich_help_panel=MODEL)(teacher_bank)
app.command("eval", rich_help_panel=MODEL)(evaluate)
app.command(rich_help_panel=MODEL)(export)
app.command(rich_help_panel=MODEL)(quantize)
app.command(rich_help_panel=MODEL)(analyze)
app.add_typer(bench_app, name="bench", rich_help_panel=MODEL)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``argv``: the arguments after ``emotionpipe``; default ``sys.argv``)."""
    # Before anything imports ray: no token auth, no usage stats on local clusters.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    app(args=argv, prog_name="emotionpipe")
