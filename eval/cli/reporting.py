"""``poise report``: one self-contained HTML page and a Markdown summary over runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from poise.errors import PoiseError
from poise.eval.cli.app import app, console
from poise.eval.cli.common import (
    readable_run_directories,
)


@app.command()
def report(
    inputs: Annotated[list[Path], typer.Argument(help="run or sweep directories")],
    out: Annotated[
        Path, typer.Option(help="HTML file to write; the Markdown summary goes beside it (.md)")
    ] = Path("report.html"),
    judge: Annotated[str | None, typer.Option(help="score every run with this judge")] = None,
    title: Annotated[str | None, typer.Option(help="page title")] = None,
    max_failures: Annotated[
        int, typer.Option(help="sample browser: failed records shown per run")
    ] = 60,
    max_successes: Annotated[
        int, typer.Option(help="sample browser: correct records shown per run (seeded sample)")
    ] = 15,
) -> None:
    """Write the trade-off report: one self-contained HTML page and a Markdown summary."""
    from poise.eval.report.build import BrowserLimits, build_report

    for path in inputs:
        if not path.exists():
            raise PoiseError(
                f"{path} does not exist; pass run or sweep directories written by poise run"
            )
        readable_run_directories(path)  # a corrupt run.json is one line here, not a "?" in the page
    limits = BrowserLimits(max_failures=max_failures, max_successes=max_successes)
    result = build_report(list(inputs), out, judge=judge, title=title, limits=limits)
    console.print(f"report: {result.html}   summary: {result.markdown}", highlight=False)
