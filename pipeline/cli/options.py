"""Option types shared by several commands (one definition, one help text)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

__all__ = ["ApiOpt", "JsonOpt", "Runtime", "TokenOpt"]

ApiOpt = Annotated[str | None, typer.Option("--api", envvar="EP_API_URL",
                                            help="API base URL (default: the running stack's).")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="EP_API_TOKEN", show_default=False,
                                              help="API bearer token (default: the local stack's token file).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class Runtime(str, Enum):
    """Inference runtimes of :class:`pipeline.classify.engine.EmotionEngine` (its ``RUNTIMES``).

    Spelled out here rather than imported so that ``emotionpipe --help`` does not load numpy and
    the engine; ``tests/unit/test_cli.py`` checks that both lists agree.
    """

    ONNX_INT8 = "onnx-int8"
    ONNX = "onnx"
    TORCH = "torch"
