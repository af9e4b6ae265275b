"""The report's tables as rows of plain values, shared by the HTML page and the Markdown summary.

Both renderers show the same runs, published comparisons and trade-off tables; building the
rows once keeps their figures identical and leaves each renderer only its own markup.
Values are left as numbers or plain strings; each renderer formats and escapes its cells.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poise.eval.analysis.stats import format_rate
from poise.eval.report.model import (
    TYPE_KEYS,
    TYPE_SHORT,
    Pairing,
    RunData,
    by_type,
    by_type_ci,
    fmt_number,
    is_contrast,
    n_label,
    published_row,
    published_source,
    short_model,
)
from poise.eval.run.cost import COST_HEADERS, cost_rows

RUN_HEADER = [
    "benchmark",
    "model",
    "pipeline",
    "prompt",
    "oracle",
    "judge",
    "n",
    "headline % [95% CI]",
    "detail % [95% CI]",
    "errors",
]
RUN_NUMERIC = {6, 7, 9}  # columns right-aligned on the page
PUBLISHED_HEADER = ["model (published name)", "judge", *(TYPE_SHORT[k] for k in TYPE_KEYS)]
SITUATIONAL_HEADER = [
    "task",
    "configuration",
    "judge",
    "safe % [95% CI]",
    "unsafe % [95% CI]",
    "average % [95% CI]",
    "pairs both right % [95% CI]",
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


def rate(m: Mapping[str, Any] | None, value: str, ci: str) -> str:
    """``m[value]`` with its interval ``m[ci]``: "58.0 [52.4, 63.4]", or the bare number
    for a summary written before intervals existed, or "-" when there is no value."""
    m = m or {}
    return format_rate(m.get(value), m.get(ci))


def interval_note(metric_dicts: Iterable[Mapping[str, Any] | None], *, pairs: bool = True) -> str:
    """The methods behind a table's intervals, said once under it.

    "95% intervals: Wilson; average: bootstrap over scenarios (BCa, 9999 resamples, seed 0);
    ...". Read from the metrics' own ``interval`` fields, so the note names what was computed;
    "" when no metric carries an interval (runs summarised before intervals existed).
    ``pairs=False`` for a table that shows no pair accuracy.
    """
    roles: dict[str, list[str]] = {}  # method -> the figures it is the interval of

    def add(role: str, method: Any) -> None:
        if method:
            text = str(method).replace(" 95%", "")
            if role == "rates" and text.startswith("bootstrap"):
                role = "rates of repeated draws"  # an item's draws resampled together
            if role not in roles.setdefault(text, []):
                roles[text].append(role)

    for m in metric_dicts:
        if not m:
            continue
        add("rates", m.get("interval"))
        for sub in (m.get("by_type") or {}).values():
            add("rates", (sub or {}).get("interval"))
        add("rates", (m.get("answered_only") or {}).get("interval"))
        add("average", m.get("average_interval"))
        if pairs:
            add("pairs", (m.get("pairs") or {}).get("interval"))
    if not roles:
        return ""
    parts = []
    for method, used in roles.items():
        parts.append(method if used == ["rates"] else f"{' and '.join(used)}: {method}")
    return "95% intervals: " + "; ".join(parts)


def run_n(run: RunData) -> str:
    """The run's sample size; ``items x draws`` where each item was drawn more than once."""
    m = run.metrics or {}
    if not m:
        return "0"
    n = m.get("n", (m.get("n_safe") or 0) + (m.get("n_unsafe") or 0))
    draws = run.epochs
    items = len({r.sample_id for r in run.records if r.error is None and run.judge in r.verdicts})
    return n_label(int(n), items, draws)


def run_rows(runs: list[RunData]) -> list[list[Any]]:
    """The runs table: one row per run, its headline figure and the detail behind it."""
    rows = []
    for run in runs:
        m = run.metrics or {}
        if run.kind == "situational":
            headline = rate(m, "average", "average_ci95")
            safe = rate(m, "safe_accuracy", "safe_accuracy_ci95")
            unsafe = rate(m, "unsafe_accuracy", "unsafe_accuracy_ci95")
            detail = f"safe {safe} / unsafe {unsafe}"
        else:
            headline = rate(m, "refusal_rate", "ci95") if m else None
            rates, cis = (by_type(run), by_type_ci(run)) if m else ({}, {})
            detail = " / ".join(
                f"{TYPE_SHORT[k]} {format_rate(rates.get(k), cis.get(k))}" for k in ("1", "2", "3")
            )
        rows.append(
            [
                run.benchmark_label,
                short_model(run.model) + (f" ({run.params_label})" if run.params_label else ""),
                run.pipeline,
                run.prompt,
                "+".join(run.oracle) or "-",
                run.judge or "-",
                run_n(run),
                headline if m else None,
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
    note: str = ""


def published_comparisons(runs: list[RunData]) -> list[PublishedComparison]:
    """Measured next to published refusal rates, one table per published table.

    Only baseline runs without a system prompt or oracle are compared: the only runs whose
    setting matches a paper's. Which table a run is compared with is its spec's ``published``.
    """
    by_table: dict[str, list[list[Any]]] = {}
    methods: dict[str, list[dict[str, Any] | None]] = {}
    for run in runs:
        spec = run.benchmark_spec
        if spec is None or spec.kind != "refusal" or spec.published is None or not run.metrics:
            continue
        row = published_row(run.benchmark, run.model)
        if not row or run.pipeline != "baseline" or run.prompt != "vanilla" or run.oracle:
            continue
        rates, cis = by_type(run), by_type_ci(run)
        cells = [
            " / ".join(
                [
                    format_rate(rates[k], cis[k]),
                    *(fmt_number(row[side].get(k)) for side in ("gpt_eval", "human_eval")),
                ]
            )
            for k in TYPE_KEYS
        ]
        params = f" {run.params_label}" if run.params_label else ""
        label = f"{short_model(run.model)}{params} ({row['model']})"
        by_table.setdefault(spec.published, []).append([label, run.judge, *cells])
        methods.setdefault(spec.published, []).append(run.metrics)
    return [
        PublishedComparison(
            f"{published_source(name).title}: measured [95% CI] / published GPT-eval / "
            "published human-eval (refusal %)",
            PUBLISHED_HEADER,
            rows,
            interval_note(methods[name]),
        )
        for name, rows in by_table.items()
    ]


def tradeoff_rows(pairs: list[Pairing]) -> list[list[Any]]:
    """One row per configuration: base / contrast refusal rate (with intervals) per stimulus
    type and overall."""
    rows: list[list[Any]] = []
    for p in pairs:
        bx, cy = by_type(p.x_run), by_type(p.y_run)
        bci, cci = by_type_ci(p.x_run), by_type_ci(p.y_run)
        cells = (f"{format_rate(bx[k], bci[k])} / {format_rate(cy[k], cci[k])}" for k in TYPE_KEYS)
        rows.append([p.label, *cells])
    return rows


def tradeoff_note(pairs: list[Pairing]) -> str:
    """The interval methods of a trade-off table's runs."""
    return interval_note(m for p in pairs for m in (p.x_run.metrics, p.y_run.metrics))


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
                rate(m, "safe_accuracy", "safe_accuracy_ci95"),
                rate(m, "unsafe_accuracy", "unsafe_accuracy_ci95"),
                rate(m, "average", "average_ci95"),
                rate(m.get("pairs"), "both_right", "ci95"),
                m.get("unparseable"),
            ]
        )
    return rows


# --------------------------------------------------------------------------- cost


@dataclass(frozen=True)
class CostTable:
    """The cost section: one row per run (and a total), and the notes that qualify it."""

    header: list[str]
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)


def cost_table(runs: list[RunData]) -> CostTable | None:
    """Recorded cost per run from its ``summary.json`` (the runner priced it), or None.

    Cost is not recomputed here: it needs the price table the run was priced with, which the
    summary names. Runs whose summary has no ``cost`` are counted in a note, never shown as $0.
    """
    summaries = [
        {**r.summary, "directory": str(r.directory)} for r in runs if r.summary.get("cost")
    ]
    if not summaries:
        return None
    rows = [list(row) for row in cost_rows(summaries)]
    return CostTable(list(COST_HEADERS), rows, cost_notes(summaries, len(runs)))


def cost_notes(summaries: Sequence[Mapping[str, Any]], runs: int | None = None) -> list[str]:
    """Where the prices came from and as of when, recorded vs estimated, and what is missing."""
    notes: list[str] = []
    providers = {
        str(stage.get("model", "")).partition("/")[0]
        for s in summaries
        for stage in ((s.get("cost") or {}).get("recorded") or {}).get("stages") or []
    }
    sources: dict[str, dict[str, str]] = {}
    for s in summaries:
        cost = s.get("cost") or {}
        dates = sources.setdefault(str(cost.get("prices") or "unknown price table"), {})
        for provider, when in (cost.get("prices_as_of") or {}).items():
            if not providers or provider in providers:
                dates[provider] = str(when)
    for source, dates in sources.items():
        as_of = ", ".join(f"{p} {d}" for p, d in sorted(dates.items()))
        notes.append(f"Prices: {source}" + (f" (list prices as of {as_of})" if as_of else ""))
    unpriced: set[str] = set()
    for s in summaries:
        cost = s.get("cost") or {}
        name = Path(str(s.get("directory", "?"))).name
        recorded = cost.get("recorded") or {}
        unpriced.update((recorded.get("cost") or {}).get("unpriced_models") or [])
        ratios = {k: v for k, v in (cost.get("recorded_vs_estimate") or {}).items() if v}
        if cost.get("estimate") and ratios:
            shown = ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in ratios.items())
            notes.append(f"{name}: recorded / estimated: {shown}")
        if missing := int(recorded.get("calls_without_usage") or 0):
            notes.append(
                f"{name}: {missing} calls reported no usage (their tokens are not in the cost)"
            )
    if unpriced:
        notes.append(
            f"no price for {', '.join(sorted(unpriced))}: their calls are not in the cost "
            "(rerun with --prices FILE naming them to price them)"
        )
    if runs is not None and runs > len(summaries):
        notes.append(
            f"{runs - len(summaries)} runs have no cost in summary.json "
            "(summarised before costs were recorded)"
        )
    return notes
