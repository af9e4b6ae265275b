"""``poise export``: runs into other tools' formats (inspect_ai eval logs, flat CSV).

An inspect log holds one task and one model, so a sweep (or several run directories)
becomes one ``.eval`` file per run in the ``--out`` directory, which ``inspect view
--log-dir`` lists; a CSV is flat, so all their records go into one file, a row each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from poise.errors import PoiseError
from poise.eval.cli.app import app, console, err_console
from poise.eval.cli.common import at_least

FORMATS = ("inspect", "csv")
DEFAULT_LOG_DIR = Path("logs")  # where `inspect view` looks when given no --log-dir


@app.command()
def export(
    inputs: Annotated[list[Path], typer.Argument(help="run or sweep directories")],
    format: Annotated[
        str, typer.Option("--format", help="inspect (inspect_ai .eval logs) or csv")
    ] = "inspect",
    out: Annotated[
        Path | None,
        typer.Option(
            help="inspect: FILE.eval for one run, or a directory for one .eval per run "
            "(default logs/, what `inspect view` opens); csv: FILE.csv (default NAME.csv)"
        ),
    ] = None,
    max_cell_chars: Annotated[
        int, typer.Option(help="csv: longer text in a cell is cut (with a marker)")
    ] = 32_000,
) -> None:
    """Export runs as inspect_ai eval logs (`inspect view`) or one formula-safe CSV."""
    if format not in FORMATS:
        raise PoiseError(f"--format {format} is not known; give one of: {', '.join(FORMATS)}")
    if format == "inspect":
        _export_inspect(inputs, out)
    else:
        at_least(max_cell_chars, 100, "--max-cell-chars", "give 100 characters or more")
        _export_csv(inputs, out, max_cell_chars)


def _warn_skipped(runs: list) -> None:
    for run in runs:
        if run.skipped_lines:
            lines = ", ".join(str(n) for n in run.skipped_lines[:5])
            more = " ..." if len(run.skipped_lines) > 5 else ""
            err_console.print(
                f"note: {run.directory}: {len(run.skipped_lines)} line(s) of records.jsonl "
                f"are not records and were left out (line {lines}{more}; a torn last line "
                "is a run still writing or killed mid-write)",
                highlight=False,
                soft_wrap=True,
            )


def _export_inspect(inputs: list[Path], out: Path | None) -> None:
    from poise.eval.export.inspect import export_inspect, require_inspect
    from poise.eval.export.source import collect_runs
    from poise.eval.run.runner import make_directory

    try:  # before reading anything: the missing extra is the first thing to fix
        require_inspect()
    except PoiseError as exc:
        # Printed here, escaped: the CLI's own handler prints messages as rich markup, which
        # swallows "[inspect]" as a style tag (reported for poise.eval.cli.main).
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(2) from None
    runs = collect_runs(inputs)
    out = out if out is not None else DEFAULT_LOG_DIR
    one_file = out.suffix == ".eval" and not out.is_dir()
    if one_file and len(runs) > 1:
        raise PoiseError(
            f"{len(runs)} runs found and an inspect log holds one run (one task, one model): "
            f"pass --out a directory, e.g. --out logs, to get one .eval file per run"
        )
    if not one_file and out.suffix and not out.is_dir():
        raise PoiseError(
            f"--out {out}: give FILE.eval (one run) or a directory (one .eval per run)"
        )
    if one_file:
        targets = [out]
    else:
        make_directory(out)
        targets = [out / name for name in _file_names(runs, ".eval")]
    _warn_skipped(runs)
    for run, target in zip(runs, targets, strict=True):
        export_inspect(run, target)
        console.print(f"{target}  ({len(run.records)} samples)", highlight=False, soft_wrap=True)
    where = out.parent if one_file else out
    console.print(
        f"{len(runs)} inspect log(s) written; browse them with: inspect view --log-dir {where}",
        highlight=False,
        soft_wrap=True,
    )


def _file_names(runs: list, suffix: str) -> list[str]:
    """A file name per run: its directory's name, made unique with the run id if needed."""
    names: list[str] = []
    for run in runs:
        name = run.directory.name + suffix
        if name in names:
            name = f"{run.directory.name}-{run.run_id}{suffix}"
        number = 2
        base = name
        while name in names:
            name = base.replace(suffix, f"-{number}{suffix}")
            number += 1
        names.append(name)
    return names


def _export_csv(inputs: list[Path], out: Path | None, max_cell_chars: int) -> None:
    from poise.eval.export.csv import export_csv
    from poise.eval.export.source import collect_runs

    runs = collect_runs(inputs)
    if out is None:
        name = inputs[0].resolve().name if len(inputs) == 1 else "runs"
        out = Path(f"{name or 'runs'}.csv")
    elif out.is_dir():
        out = out / f"{inputs[0].resolve().name or 'runs'}.csv"
    elif out.suffix != ".csv":
        raise PoiseError(f"--out {out}: give a FILE.csv or an existing directory")
    _warn_skipped(runs)
    rows = export_csv(runs, out, max_cell_chars=max_cell_chars)
    console.print(
        f"{out}  ({rows} rows, one per record, from {len(runs)} run(s))",
        highlight=False,
        soft_wrap=True,
    )
