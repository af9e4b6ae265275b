"""``poise diagnose``: name the stage where each failure happened."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from poise.errors import PoiseError
from poise.eval.cli.app import app, console
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
def diagnose(
    run_dir: Annotated[Path, typer.Argument(help="a run directory, or a sweep directory of runs")],
    judge: Annotated[
        str | None,
        typer.Option(help="judge whose verdicts define failure (default: the run's first)"),
    ] = None,
    method: Annotated[
        str, typer.Option(help="pipeline, counterfactual, or both comma-separated")
    ] = "pipeline,counterfactual",
    concurrency: Annotated[
        int, typer.Option(help="samples in flight for counterfactual reruns")
    ] = 8,
    judge_model: Annotated[
        str | None,
        typer.Option(
            help="PROVIDER/MODEL comparing perceptions with the ground truth (default: offline)"
        ),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="server for openai-compatible/ models")
    ] = None,
    control: Annotated[
        bool,
        typer.Option(
            "--control",
            help="first rerun the failed samples unchanged (no stage cache): those that now "
            "pass are noise, not a stage; prints the flip rate",
        ),
    ] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    timeout: TimeoutOption = None,
    max_retries: MaxRetriesOption = None,
    max_rpm: MaxRpmOption = None,
    max_tpm: MaxTpmOption = None,
    wait: WaitOption = False,
) -> None:
    """Name the stage (perception, intent, decision) where each failed sample went wrong."""
    from rich.table import Table

    from poise.eval.analysis.diagnosis import NOISE, NOT_APPLICABLE
    from poise.eval.analysis.diagnosis import STAGE_ORDER as STAGES
    from poise.eval.analysis.diagnosis import diagnose as run_diagnosis
    from poise.eval.run.lock import RunLock

    check_selection(None, None, concurrency)
    apply_call_limits(timeout, max_retries, max_rpm=max_rpm, max_tpm=max_tpm)

    methods = tuple(split_csv([method]))
    unknown = set(methods) - {"pipeline", "counterfactual"}
    if unknown:
        raise PoiseError(
            f"unknown --method {', '.join(sorted(unknown))}; use pipeline and/or counterfactual"
        )
    for directory in readable_run_directories(run_dir):
        lock = RunLock(directory)
        lock.acquire(wait=wait)
        try:
            result = run_diagnosis(
                directory,
                judge=judge,
                methods=methods,
                concurrency=concurrency,
                progress=progress,
                judge_model=judge_model,
                base_url=base_url,
                control=control,
            )
        except KeyboardInterrupt:
            raise interrupted(f"diagnosing {directory}") from None
        finally:
            lock.release()
        if not result["failures"]:
            console.print(f"{directory.name}: no failures ({result['judge']})", highlight=False)
            continue
        table = Table(
            title=f"{directory.name}: {result['failures']} failures of {result['samples_judged']} ({result['judge']})"
        )
        columns = (*STAGES, NOISE, NOT_APPLICABLE)
        for col in ("method", "group", "n", *columns):
            table.add_column(col)
        for name, groups in result["aggregate"].items():
            for group, shares in groups.items():
                counts = shares.get("counts", {})
                table.add_row(
                    name,
                    group,
                    str(shares["n"]),
                    *(
                        f"{counts.get(stage, 0)} ({100 * shares.get(stage, 0):.0f}%)"
                        for stage in columns
                    ),
                )
        console.print(table)
        checked = result.get("control")
        if checked:
            rate = checked["flip_rate"]
            console.print(
                f"control: {checked['flipped']} of {checked['rerun']} failures passed when rerun "
                f"unchanged (flip rate {'n/a' if rate is None else f'{100 * rate:.0f}%'})"
                + (f"; {checked['errors']} reruns failed" if checked["errors"] else "")
                + "; counted as noise, not as a stage",
                highlight=False,
            )
        agreement = result["agreement"]
        if agreement["n"]:
            console.print(f"methods agree on {agreement['agree']}/{agreement['n']} samples")
        for note in result["notes"]:
            console.print(f"note: {note}", highlight=False)
        console.print(f"{directory}/diagnosis.json, diagnosis.csv", highlight=False)
