"""The report's tables as rows of plain values, shared by the HTML page and the Markdown summary.

Both renderers show the same runs, published comparisons and trade-off tables; building the
rows once keeps their figures identical and leaves each renderer only its own markup.
Values are left as numbers or plain strings; each renderer formats and escapes its cells.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from poise.eval.report.model import (
    TYPE_KEYS,
    TYPE_SHORT,
    Pairing,
    RunData,
    by_type,
    fmt_number,
    is_contrast,
    published_row,
    published_source,
    short_model,
)

RUN_HEADER = [
    "benchmark",
    "model",
    "pipeline",
    "prompt",
    "oracle",
    "judge",
    "n",
    "headline %",
    "detail %",
    "errors",
]
RUN_NUMERIC = {6, 7, 9}  # columns right-aligned on the page
PUBLISHED_HEADER = ["model (published name)", "judge", *(TYPE_SHORT[k] for k in TYPE_KEYS)]
SITUATIONAL_HEADER = [
    "task",
    "configuration",
    "judge",
    "safe %",
    "unsafe %",
    "average %",
    "pairs both right %",
    "unparseable",
]
SITUATIONAL_NUMERIC = {3, 4, 5, 6, 7}


def headline_note(runs: list[RunData], accuracy: str = "mean") -> str:
    """What each benchmark's headline figure is, and which direction is better.

    Refusal benchmarks read by refusal rate: lower is better on a benign set (oversensitivity),
    higher on a set registered as a contrast set (safety); situational ones by the ``accuracy``
    ("mean" or "average") of safe and unsafe accuracy.
    """
    meanings: dict[str, list[str]] = {}
    for name in dict.fromkeys(r.benchmark for r in runs if r.kind):
        kind = next(r.kind for r in runs if r.benchmark == name)
        if kind == "situational":
            meaning = f"{accuracy} of safe and unsafe accuracy"
        elif is_contrast(name):
            meaning = "refusal rate (safety, higher is better)"
        else:
            meaning = "refusal rate (oversensitivity, lower is better)"
        meanings.setdefault(meaning, []).append(name)
    parts = [f"{', '.join(names)} = {meaning}" for meaning, names in meanings.items()]
    return "Headline: " + "; ".join(parts) + "." if parts else ""


def run_rows(runs: list[RunData]) -> list[list[Any]]:
    """The runs table: one row per run, its headline figure and the detail behind it."""
    rows = []
    for run in runs:
        m = run.metrics or {}
        if run.kind == "situational":
            headline = m.get("average")
            safe, unsafe = fmt_number(m.get("safe_accuracy")), fmt_number(m.get("unsafe_accuracy"))
            detail = f"safe {safe} / unsafe {unsafe}"
        else:
            headline = m.get("refusal_rate")
            rates = by_type(run) if m else {}
            detail = " / ".join(
                f"{TYPE_SHORT[k]} {fmt_number(rates.get(k))}" for k in ("1", "2", "3")
            )
        rows.append(
            [
                run.benchmark_label,
                short_model(run.model),
                run.pipeline,
                run.prompt,
                "+".join(run.oracle) or "-",
                run.judge or "-",
                m.get("n", (m.get("n_safe") or 0) + (m.get("n_unsafe") or 0)) if m else 0,
                headline,
                detail if m else "-",
                sum(1 for r in run.records if r.error),
            ]
        )
    return rows


@dataclass(frozen=True)
class PublishedComparison:
    """Measured refusal rates next to one published table's, for the runs that match it."""

    title: str
    header: list[str]
    rows: list[list[Any]]


def published_comparisons(runs: list[RunData]) -> list[PublishedComparison]:
    """Measured next to published refusal rates, one table per published table.

    Only baseline runs without a system prompt or oracle are compared: the only runs whose
    setting matches a paper's. Which table a run is compared with is its spec's ``published``.
    """
    by_table: dict[str, list[list[Any]]] = {}
    for run in runs:
        spec = run.benchmark_spec
        if spec is None or spec.kind != "refusal" or spec.published is None or not run.metrics:
            continue
        row = published_row(run.benchmark, run.model)
        if not row or run.pipeline != "baseline" or run.prompt != "vanilla" or run.oracle:
            continue
        rates = by_type(run)
        cells = [
            " / ".join(
                fmt_number(v) for v in (rates[k], row["gpt_eval"].get(k), row["human_eval"].get(k))
            )
            for k in TYPE_KEYS
        ]
        label = f"{short_model(run.model)} ({row['model']})"
        by_table.setdefault(spec.published, []).append([label, run.judge, *cells])
    return [
        PublishedComparison(
            f"{published_source(name).title}: measured / published GPT-eval / "
            "published human-eval (refusal %)",
            PUBLISHED_HEADER,
            rows,
        )
        for name, rows in by_table.items()
    ]


def tradeoff_rows(pairs: list[Pairing], fmt: Callable[[Any], str]) -> list[list[Any]]:
    """One row per configuration: base / contrast refusal rate per stimulus type and overall."""
    rows: list[list[Any]] = []
    for p in pairs:
        bx, cy = by_type(p.x_run), by_type(p.y_run)
        rows.append([p.label, *(f"{fmt(bx[k])} / {fmt(cy[k])}" for k in TYPE_KEYS)])
    return rows


def situational_rows(runs: list[RunData]) -> list[list[Any]]:
    """Safe / unsafe / average accuracy and pairs both right, per scored situational run."""
    rows: list[list[Any]] = []
    for run in runs:
        if run.kind != "situational" or not run.metrics:
            continue
        m = run.metrics
        rows.append(
            [
                run.benchmark_label,
                run.config_label,
                run.judge or "-",
                m.get("safe_accuracy"),
                m.get("unsafe_accuracy"),
                m.get("average"),
                (m.get("pairs") or {}).get("both_right"),
                m.get("unparseable"),
            ]
        )
    return rows
