"""Run ``emotionpipe`` in-process with an argv list, as the console script would."""

from __future__ import annotations

from dataclasses import dataclass

from typer.testing import CliRunner

from pipeline.cli import app


@dataclass(frozen=True)
class CliRun:
    """Exit status and the two output streams of one command."""

    code: int
    stdout: str
    stderr: str


def run_cli(*argv: str) -> CliRun:
    """``emotionpipe ARGV...`` through typer's runner.

    Usage errors come back as exit status 2 with the message on stderr; any other exception
    propagates, as it would out of the console script.
    """
    result = CliRunner().invoke(app, list(argv))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliRun(result.exit_code, result.stdout, result.stderr)
