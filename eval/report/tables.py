"""Terminal tables printed at the end of a run: what was measured, next to what was published.

They read the runner's summaries (``summary.json`` dicts). Which table a run lands in is its
benchmark spec's ``kind``; which published table it is compared with is the spec's
``published``; so a newly registered benchmark is tabled without an edit here.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from poise.benchmarks.registry import BenchmarkSpec
from poise.eval.analysis.stats import format_rate
from poise.eval.report.model import (
    benchmark_title,
    fmt_number,
    n_label,
    params_label,
    published_row,
    published_source,
    spec_of,
)
from poise.eval.report.rows import interval_note, rate

TYPE_LABELS = {"1": "ER", "2": "NH", "3": "CI"}


def _fmt(value: float | None) -> str:
    return fmt_number(value)


def _spec(summary: dict[str, Any]) -> BenchmarkSpec | None:
    return spec_of(str(summary.get("benchmark") or ""))


def _model(summary: dict[str, Any]) -> str:
    """The model, with its sampling parameters when the run set any: ``gpt-4o (t=1 p=0.9)``."""
    params = params_label(
        summary.get("model_params") or {}, summary.get("stage_model_params") or {}
    )
    return f"{summary['model']} ({params})" if params else str(summary["model"])


def _n(summary: dict[str, Any], judge: str, n: int) -> str:
    """``n``, or ``items x draws`` for a run with repeated draws (``--epochs``)."""
    epochs = summary.get("epochs") or {}
    draws = int(epochs.get("k") or 1)
    items = (epochs.get(judge) or {}).get("items")
    return n_label(n, int(items), draws) if draws > 1 and items else str(n)


def _note(console: Console, metric_dicts: list[dict[str, Any]]) -> None:
    """The interval methods under a table, once; nothing for summaries without intervals."""
    if text := interval_note(metric_dicts):
        console.print(text, highlight=False, soft_wrap=True)


def print_run_tables(console: Console, summaries: list[dict[str, Any]]) -> None:
    """One table per kind of benchmark, the published comparisons, then each run's directory."""
    refusal = [s for s in summaries if (spec := _spec(s)) and spec.kind == "refusal"]
    situational = [s for s in summaries if (spec := _spec(s)) and spec.kind == "situational"]
    if refusal:
        _refusal_table(console, refusal)
        tables = dict.fromkeys(spec.published for s in refusal if (spec := _spec(s)))
        for name in filter(None, tables):
            mine = [s for s in refusal if (spec := _spec(s)) and spec.published == name]
            _published_table(console, name, mine)
    if situational:
        _situational_table(console, situational)
    for s in summaries:
        console.print(
            f"{s['directory']}/  (records.jsonl, summary.json)", highlight=False, soft_wrap=True
        )


def _refusal_table(console: Console, summaries: list[dict[str, Any]]) -> None:
    table = Table(title="Refusal rate % (paper protocol: refuse + no response + blocked)")
    for col in ("benchmark", "model", "pipeline", "prompt", "judge"):
        table.add_column(col)
    for col in (
        "n",
        "all",
        "ER",
        "NH",
        "CI",
        "answered only",
        "errors",
        "wall s",
        "calls",
        "tokens",
    ):
        table.add_column(col, justify="right")
    for s in summaries:
        usage = s["usage"]
        for judge, m in s["metrics"].items():
            table.add_row(
                s["benchmark"],
                _model(s),
                s["pipeline"],
                s["system_prompt"],
                judge,
                _n(s, judge, m["n"]),
                rate(m, "refusal_rate", "ci95"),
                *(rate(m["by_type"][t], "refusal_rate", "ci95") for t in ("1", "2", "3")),
                rate(m["answered_only"], "refusal_rate", "ci95"),
                str(s["errors"]),
                _fmt(s["wall_time_s"]),
                str(usage["calls"]),
                str(usage["input_tokens"] + usage["output_tokens"]),
            )
    console.print(table)
    _note(console, [m for s in summaries for m in s["metrics"].values()])


def _published_table(console: Console, name: str, summaries: list[dict[str, Any]]) -> None:
    """Measured / published GPT-eval / published human-eval refusal rates for matched models."""
    rows = []
    methods: list[dict[str, Any]] = []
    for s in summaries:
        published = published_row(s["benchmark"], s["model"])
        if not published or s["pipeline"] != "baseline" or s["system_prompt"] != "vanilla":
            continue
        for judge, m in s["metrics"].items():
            measured = {
                "all": m["refusal_rate"],
                **{t: m["by_type"][t]["refusal_rate"] for t in ("1", "2", "3")},
            }
            cis = {
                "all": m.get("ci95"),
                **{t: m["by_type"][t].get("ci95") for t in ("1", "2", "3")},
            }
            params = params_label(s.get("model_params") or {}, s.get("stage_model_params") or {})
            model = f"{s['model']} {params}" if params else str(s["model"])
            rows.append((model, judge, measured, cis, published))
            methods.append(m)
    if not rows:
        return
    source = published_source(name)
    table = Table(
        title=f"Measured vs published ({source.title}, {source.authors}): "
        "measured [95% CI] / GPT-eval / human-eval"
    )
    for col in ("model", "judge", "all", "ER", "NH", "CI", "largest gap vs GPT-eval"):
        table.add_column(col)
    largest: dict[str, tuple[float, str]] = {"overall": (0.0, "-"), "per type": (0.0, "-")}
    for model, judge, measured, cis, published in rows:
        gaps = {
            k: abs(measured[k] - published["gpt_eval"][k])
            for k in measured
            if measured[k] is not None
        }
        worst = max(gaps, key=gaps.get) if gaps else None
        cells = [
            f"{format_rate(measured[k], cis[k])} / {_fmt(published['gpt_eval'][k])} / "
            f"{_fmt(published['human_eval'][k])}"
            for k in ("all", "1", "2", "3")
        ]
        worst_label = (
            "-" if worst is None else f"{_fmt(gaps[worst])} ({TYPE_LABELS.get(worst, worst)})"
        )
        table.add_row(f"{model} ({published['model']})", judge, *cells, worst_label)
        for key, gap in gaps.items():
            scope = "overall" if key == "all" else "per type"
            if gap > largest[scope][0]:
                largest[scope] = (gap, f"{model}, {TYPE_LABELS.get(key, 'all')}")
    console.print(table)
    _note(console, methods)
    console.print(
        f"largest gap to {source.judged_by}: "
        f"{_fmt(largest['overall'][0])} points overall ({largest['overall'][1]}), "
        f"{_fmt(largest['per type'][0])} points per stimulus type ({largest['per type'][1]})",
        highlight=False,
    )


def _default_setting(summary: dict[str, Any]) -> str:
    """The run's setting; None in a summary is the benchmark's default (its first)."""
    spec = _spec(summary)
    return summary.get("setting") or (spec.settings[0] if spec and spec.settings else "-")


def _situational_table(console: Console, summaries: list[dict[str, Any]]) -> None:
    titles = ", ".join(dict.fromkeys(benchmark_title(s["benchmark"]) for s in summaries))
    table = Table(title=f"Situational safety accuracy % ({titles})")
    for col in (
        "benchmark",
        "setting",
        "model",
        "pipeline",
        "prompt",
        "judge",
        "n",
        "safe",
        "unsafe",
        "average",
        "pairs both right",
        "unparseable",
        "errors",
        "calls",
    ):
        table.add_column(col)
    for s in summaries:
        for judge, m in s["metrics"].items():
            table.add_row(
                s["benchmark"],
                _default_setting(s),
                _model(s),
                s["pipeline"],
                s["system_prompt"],
                judge,
                _n(s, judge, (m.get("n_safe") or 0) + (m.get("n_unsafe") or 0)),
                rate(m, "safe_accuracy", "safe_accuracy_ci95"),
                rate(m, "unsafe_accuracy", "unsafe_accuracy_ci95"),
                rate(m, "average", "average_ci95"),
                rate(m["pairs"], "both_right", "ci95"),
                str(m["unparseable"]),
                str(s["errors"]),
                str(s["usage"]["calls"]),
            )
    console.print(table)
    _note(console, [m for s in summaries for m in s["metrics"].values()])
    for model, authors, text in _published_situational(summaries):
        console.print(f"published ({authors}) for {model}: {text}", highlight=False)


def _published_situational(summaries: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(model, the paper's authors, line) naming the paper's figures for each matched run.

    A published situational table gives per model an ``average`` per benchmark and pipeline,
    and safe / unsafe / average per setting and benchmark for the base model (``baseline``).
    """
    lines = []
    for s in summaries:
        spec = _spec(s)
        row = published_row(s["benchmark"], s["model"])
        if spec is None or spec.published is None or row is None:
            continue
        bench, pipeline = s["benchmark"], s["pipeline"]
        average = (row.get("average") or {}).get(bench, {}).get(pipeline)
        in_setting = row.get(_default_setting(s))
        detail = (
            in_setting.get(bench)
            if pipeline == "baseline" and isinstance(in_setting, dict)
            else None
        )
        if average is None and detail is None:
            continue
        source = published_source(spec.published)
        text = f"{bench} {pipeline}: paper's {row['model']}"
        if detail:
            text += f" safe {_fmt(detail['safe'])} / unsafe {_fmt(detail['unsafe'])} / average {_fmt(detail['average'])}"
        elif average is not None:
            text += f" average {_fmt(average)}"
        judges = ", ".join(s["metrics"]) or "no judge"
        text += f" (judge: {source.judged_by}; measured above by {judges})"
        lines.append((s["model"], source.authors, text))
    return lines
