"""``python -m pipeline.train [OPTIONS]``: the ``emotionpipe train`` command on its own.

For a bare GPU box that has torch but not the serving stack (the CLI imports nothing heavy
up front); the options are ``emotionpipe train``'s.
"""

import typer

from pipeline.cli.train import train

app = typer.Typer(add_completion=False)
app.command()(train)
app(prog_name="python -m pipeline.train")
