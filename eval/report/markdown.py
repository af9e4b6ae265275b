"""The Markdown summary written beside the page, for pull requests and terminals.

It carries the tables (runs, published comparisons, trade-offs, diagnosed stages) but no plots
or samples; the page beside it has those. Every cell is made safe for a Markdown table: one
line, pipes escaped, and no raw markup, since model names and paths are free text.
"""

from __future__ import annotations

from typing import Any

from poise.eval.report.model import (
    TYPE_KEYS,
    TYPE_SHORT,
    RunData,
    benchmark_title,
    contrast_sets,
    fmt_number,
    stage_counts,
    stage_order,
)
from poise.eval.report.rows import (
    RUN_HEADER,
    SITUATIONAL_HEADER,
    cost_table,
    headline_note,
    interval_note,
    published_comparisons,
    run_rows,
    situational_rows,
    tradeoff_note,
    tradeoff_rows,
)


def md_cell(value: Any) -> str:
    """A table cell: one line, pipes escaped, no raw markup (names and paths are free text)."""
    text = " ".join(fmt_number(value).split()).replace("|", "\\|")
    return text.replace("<", "&lt;").replace(">", "&gt;")


def md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table's lines, followed by a blank line."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def render_markdown(runs: list[RunData], title: str, generated: str, warnings: list[str]) -> str:
    """The summary's text: runs, published comparisons, trade-offs, diagnosed stages, notes."""
    lines = [f"# {title}", "", f"Generated {generated} from {len(runs)} runs; plots, the "
             "per-category breakdown and the sample browser are in the HTML report beside this "
             "file.", ""]  # fmt: skip
    note = headline_note(runs, accuracy="average")
    lines += [note, ""] if note else []
    lines += ["## Runs", "", *md_table(RUN_HEADER, run_rows(runs))]
    lines += _note(interval_note((r.metrics for r in runs), pairs=False))
    for table in published_comparisons(runs):
        lines += [f"## {table.title}", "", *md_table(table.header, table.rows), *_note(table.note)]
    situational = situational_rows(runs)
    if situational:
        lines += ["## Situational safety accuracy", "", *md_table(SITUATIONAL_HEADER, situational)]
        lines += _note(interval_note(r.metrics for r in runs if r.kind == "situational"))
    for contrast in contrast_sets(runs):
        if not contrast.pairs:
            continue
        lines += [
            f"## Trade-off ({benchmark_title(contrast.base)}): {contrast.base} refusal % (x) "
            f"vs {contrast.contrast} refusal % (y)",
            "",
        ]
        header = ["configuration", *(f"{TYPE_SHORT[k]} x / y" for k in TYPE_KEYS)]
        lines += md_table(header, tradeoff_rows(contrast.pairs))
        lines += _note(tradeoff_note(contrast.pairs))
    lines += _cost(runs)
    lines += _stages(runs)
    if warnings:
        lines += ["## Notes", "", *(f"- {md_cell(w)}" for w in warnings), ""]
    return "\n".join(lines)


def _note(text: str) -> list[str]:
    """A line under a table (its interval methods), escaped like a cell."""
    return [md_cell(text), ""] if text else []


def _cost(runs: list[RunData]) -> list[str]:
    """Recorded cost per run, with its total and notes; nothing when no summary carries cost."""
    table = cost_table(runs)
    if table is None:
        return []
    lines = ["## Cost", "", *md_table(table.header, table.rows)]
    return lines + [*(f"- {md_cell(n)}" for n in table.notes), ""] if table.notes else lines


def _stages(runs: list[RunData]) -> list[str]:
    """Diagnosed failure stages per run and method, as counts."""
    stages = stage_order(s for run in runs for c in stage_counts(run).values() for s in c)
    rows = []
    for run in runs:
        for method, counts in stage_counts(run).items():
            rows.append([run.label, method, *(counts.get(s, 0) for s in stages)])
    if not rows:
        return []
    header = ["run", "method", *stages]
    return ["## Diagnosed failure stage", "", *md_table(header, rows)]
