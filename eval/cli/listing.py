"""``poise list``: what Poise knows by name (benchmarks, models, pipelines, prompts, judges)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from poise.errors import PoiseError
from poise.eval.cli.app import app, console


@app.command("list")
def list_(
    what: Annotated[str, typer.Argument(help="benchmarks, models, pipelines, prompts or judges")],
    prompt_dir: Annotated[
        list[Path] | None, typer.Option(help="extra directory of system prompt files")
    ] = None,
) -> None:
    """List what Poise knows by name."""
    from rich.table import Table

    table = Table(show_header=True, header_style="bold")
    if what == "benchmarks":
        from poise.benchmarks.registry import benchmark_names

        rows = benchmark_names().items()
    elif what == "models":
        from poise.agents.models.registry import providers

        table.add_column("provider")
        table.add_column("example")
        table.add_column("description")
        for p in providers().values():
            table.add_row(p.name, p.example, p.description)
        console.print(table)
        return
    elif what == "pipelines":
        from poise.graphs.registry import pipeline_names

        rows = pipeline_names().items()
    elif what == "prompts":
        from poise.agents.prompts import list_prompts

        rows = [
            (p.name, p.description)
            for p in list_prompts("system", tuple(prompt_dir or ())).values()
        ]
    elif what == "judges":
        from poise.eval.judges.base import judge_names

        rows = judge_names().items()
    else:
        raise PoiseError(
            f"unknown list {what!r}; choose benchmarks, models, pipelines, prompts or judges"
        )
    table.add_column("name")
    table.add_column("description")
    for name, description in rows:
        table.add_row(name, description)
    console.print(table)
