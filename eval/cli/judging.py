"""``poise judge`` and ``poise agree``: add a judge's verdicts to past runs, compare judges."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from poise.errors import PoiseError
from poise.eval.cli.app import app, console, err_console
from poise.eval.cli.common import (
    MaxRetriesOption,
    MaxRpmOption,
    MaxTpmOption,
    TimeoutOption,
    WaitOption,
    apply_call_limits,
    check_selection,
    interrupted,
    readable_run_directories,
    split_csv,
)


@app.command()
def judge(
    run_dir: Annotated[Path, typer.Argument(help="a run directory, or a sweep directory of runs")],
    judge: Annotated[str, typer.Option(help="judge name (poise list judges)")] = "offline",
    judge_model: Annotated[str | None, typer.Option(help="PROVIDER/MODEL for LLM judges")] = None,
    judge_model_param: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE for the LLM judge's calls (repeat): temperature, top_p, ..."),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="server for an openai-compatible/ judge")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="judge calls in flight at once")] = 8,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    timeout: TimeoutOption = None,
    max_retries: MaxRetriesOption = None,
    max_rpm: MaxRpmOption = None,
    max_tpm: MaxTpmOption = None,
    wait: WaitOption = False,
) -> None:
    """Add a judge's verdicts to past runs (other judges' verdicts are kept) and re-summarise."""
    from poise.agents.models.registry import parse_model_params
    from poise.eval.judges.rejudge import rejudge
    from poise.eval.report.tables import print_run_tables
    from poise.eval.run.lock import RunLock
    from poise.eval.run.progress import Progress
    from poise.eval.run.records import RECORDS_FILE, read_records
    from poise.eval.run.runner import judge_with_params, read_run_spec, summarize

    check_selection(None, None, concurrency, "judge calls")
    apply_call_limits(timeout, max_retries, max_rpm=max_rpm, max_tpm=max_tpm)
    directories = readable_run_directories(run_dir)
    params = parse_model_params(judge_model_param, "--judge-model-param")
    options = {"model": judge_model, "base_url": base_url} if judge_model else {}
    the_judge = judge_with_params(judge, options, params)
    if params and not hasattr(the_judge, "handle"):
        raise PoiseError(
            f"--judge-model-param applies to LLM judges; judge {judge} calls no model "
            "(e.g. --judge mossbench-llm)"
        )
    summaries = []
    current: list[Path] = []

    async def judge_all() -> None:
        # One event loop for every directory: the judge's HTTP client belongs to it.
        for directory in directories:
            lock = RunLock(directory)
            await lock.acquire_async(wait=wait)  # poise run must not append meanwhile
            current[:] = [directory]
            try:
                read_run_spec(directory)
                total = sum(
                    1 for r in read_records(directory / RECORDS_FILE) if judge not in r.verdicts
                )
                with Progress(f"{judge}: {directory.name}", total=total, enabled=progress) as bar:
                    added = await rejudge(
                        directory, the_judge, concurrency=concurrency, progress=bar.advance
                    )
                err_console.print(f"{directory.name}: {added} new {judge} verdicts")
                summaries.append(summarize(directory))
            finally:
                lock.release()

    try:
        asyncio.run(judge_all())
    except KeyboardInterrupt:
        raise interrupted(f"judging {current[0] if current else run_dir}") from None
    print_run_tables(console, summaries)


@app.command()
def agree(
    run_dir: Annotated[Path, typer.Argument(help="a run directory, or a sweep directory of runs")],
    judges: Annotated[str, typer.Option(help="two judge names, comma-separated: A,B")],
    out: Annotated[
        Path | None, typer.Option(help="CSV of disagreements (default: in RUN_DIR)")
    ] = None,
) -> None:
    """Compare two judges' verdicts: confusion matrix, agreement, Cohen's kappa, disagreements."""
    from rich.table import Table

    from poise.eval.judges.rejudge import agree as compare
    from poise.eval.judges.rejudge import write_disagreements

    names = split_csv([judges])
    if len(names) != 2:
        raise PoiseError(f"--judges takes two names, A,B; got {judges!r}")
    result = compare(readable_run_directories(run_dir), names[0], names[1])
    labels = sorted(set(result.confusion) | {k for row in result.confusion.values() for k in row})
    table = Table(title=f"{names[0]} (rows) vs {names[1]} (columns), by {result.basis}")
    table.add_column("")
    for label in labels:
        table.add_column(label, justify="right")
    for label in labels:
        row = result.confusion.get(label, {})
        table.add_row(label, *(str(row.get(other, 0)) for other in labels))
    console.print(table)
    console.print(
        f"n={result.n}  agreement={100 * result.agreement:.1f}%  Cohen's kappa={result.kappa:.3f}  "
        f"disagreements={len(result.disagreements)}"
    )
    preview = Table(title="disagreements (first 10)")
    for col in ("sample_id", "model", names[0], names[1], "response_excerpt"):
        preview.add_column(col, overflow="fold")
    for row in result.disagreements[:10]:
        preview.add_row(
            row["sample_id"],
            row["model"],
            row[names[0]],
            row[names[1]],
            row["response_excerpt"][:100],
        )
    console.print(preview)
    target = out or (run_dir / f"disagreements_{names[0]}_vs_{names[1]}.csv")
    write_disagreements(result, target)  # neutralises formula-like cells itself
    console.print(f"CSV: {target}")
