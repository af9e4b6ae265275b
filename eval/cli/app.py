"""The ``poise`` Typer application and its consoles; command modules register on it."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Poise: measure multimodal safety reasoning (oversensitivity and situational safety).",
    pretty_exceptions_enable=False,
)
# Wide enough for the result tables when the output is a pipe or a CI log.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
