"""``poise compare``: is one run really different from another on the same samples?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from poise.errors import PoiseError
from poise.eval.cli.app import app, console
from poise.eval.cli.common import readable_run_directories

# What tells two runs apart, in the order a verdict line names it.
IDENTITY = (
    "pipeline",
    "model",
    "system_prompt",
    "oracle",
    "setting",
    "stage_models",
    "model_params",
)


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="a run directory (or a folder holding one run)")],
    run_b: Annotated[Path, typer.Argument(help="another run of the same benchmark")],
    judge: Annotated[
        str | None,
        typer.Option(help="judge whose verdicts are compared (default: the benchmark's)"),
    ] = None,
) -> None:
    """Paired difference of two runs over their shared samples, with an exact McNemar test.

    Refusal benchmarks compare refusal, MSSBench compares correctness; the interval is a
    seeded bootstrap over samples, the p-value exact McNemar on the samples where they differ.
    """
    from rich.table import Table

    from poise.benchmarks.registry import benchmark_spec
    from poise.eval.analysis.compare import compare_records
    from poise.eval.analysis.stats import format_p
    from poise.eval.run.records import RECORDS_FILE, read_records
    from poise.eval.run.runner import read_run_spec

    dir_a, dir_b = _one_run(run_a, "RUN_A"), _one_run(run_b, "RUN_B")
    spec_a, spec_b = read_run_spec(dir_a), read_run_spec(dir_b)
    if spec_a.benchmark != spec_b.benchmark:
        raise PoiseError(
            f"RUN_A is a {spec_a.benchmark} run and RUN_B a {spec_b.benchmark} run; "
            "compare two runs of one benchmark"
        )
    if judge is None and spec_a.setting != spec_b.setting:
        raise PoiseError(
            f"RUN_A and RUN_B use different settings ({spec_a.setting or 'default'} vs "
            f"{spec_b.setting or 'default'}); name the judge to compare with --judge"
        )
    name = judge or benchmark_spec(spec_a.benchmark).default_judge(spec_a.setting)
    label_a, label_b = _labels(spec_a, spec_b, dir_a, dir_b)
    result = compare_records(
        read_records(dir_a / RECORDS_FILE),
        read_records(dir_b / RECORDS_FILE),
        benchmark=spec_a.benchmark,
        judge=name,
        label_a=label_a,
        label_b=label_b,
        sources=(str(dir_a), str(dir_b)),
    )
    what = result["outcome"]
    table = Table(title=f"{label_a} (A) vs {label_b} (B): {what} %, paired, judge {name}")
    for column in ("", "pairs", "A %", "B %", "A-B [95% CI]", "only A", "only B", "p"):
        table.add_column(column, justify="left" if not column else "right")
    rows = [("all", result["p_value"], result)] + [
        (g["group"], g["p_holm"], g) for g in result["groups"]
    ]
    for label, p, row in rows:
        low, high = row["ci95"]
        table.add_row(
            label,
            str(row["n_pairs"]),
            f"{row['rate_a']:.1f}",
            f"{row['rate_b']:.1f}",
            f"{row['difference']:+.1f} [{low:+.1f}, {high:+.1f}]",
            str(row["a_only"]),
            str(row["b_only"]),
            format_p(p).removeprefix("p = ").removeprefix("p "),
        )
    console.print(table)
    console.print(
        f"A-B interval: {result['interval']}; p: {result['test']}"
        + ("; per-group p Holm-corrected across the groups" if result["groups"] else ""),
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"A: {dir_a}\nB: {dir_b}", highlight=False, soft_wrap=True)
    console.print(result["verdict"], highlight=False, soft_wrap=True)


def _one_run(path: Path, argument: str) -> Path:
    """The run directory ``path`` names: itself, or the single run inside it (``--out``)."""
    directories = readable_run_directories(path)
    if not directories:
        raise PoiseError(f"{argument} {path} holds no run; pass a directory written by poise run")
    if len(directories) > 1:
        shown = ", ".join(d.name for d in directories[:3]) + (
            ", ..." if len(directories) > 3 else ""
        )
        raise PoiseError(
            f"{argument} {path} holds {len(directories)} runs ({shown}); pass one run directory"
        )
    return directories[0]


def _labels(spec_a, spec_b, dir_a: Path, dir_b: Path) -> tuple[str, str]:
    """Name each run by what tells it apart (``poise`` vs ``baseline``), else by directory."""

    def value(spec, field: str) -> str:
        raw = getattr(spec, field, None)
        if field == "system_prompt":
            return (
                Path(raw).stem if raw and ("/" in raw or raw.endswith(".md")) else raw or "vanilla"
            )
        if isinstance(raw, dict):
            return ",".join(f"{k}={v}" for k, v in sorted(raw.items())) or "-"
        if isinstance(raw, list):
            return "+".join(raw) or "no oracle"
        return str(raw) if raw is not None else "default"

    differing = [f for f in IDENTITY if value(spec_a, f) != value(spec_b, f)]
    if differing:
        return (
            " / ".join(value(spec_a, f) for f in differing),
            " / ".join(value(spec_b, f) for f in differing),
        )
    if dir_a.name != dir_b.name:
        return dir_a.name, dir_b.name
    return str(dir_a), str(dir_b)
