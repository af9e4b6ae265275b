"""Terminal tables printed at the end of a run: what was measured, next to what was published."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from poise.benchmarks.published import mossbench_row, mssbench_row

TYPE_LABELS = {"1": "ER", "2": "NH", "3": "CI"}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}".rstrip("0").rstrip(".")


def print_run_tables(console: Console, summaries: list[dict[str, Any]]) -> None:
    refusal = [s for s in summaries if s["benchmark"].startswith("mossbench")]
    situational = [s for s in summaries if s["benchmark"].startswith("mssbench")]
    if refusal:
        _refusal_table(console, refusal)
        _published_table(console, [s for s in refusal if s["benchmark"] == "mossbench"])
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
                s["model"],
                s["pipeline"],
                s["system_prompt"],
                judge,
                str(m["n"]),
                _fmt(m["refusal_rate"]),
                *(_fmt(m["by_type"][t]["refusal_rate"]) for t in ("1", "2", "3")),
                _fmt(m["answered_only"]["refusal_rate"]),
                str(s["errors"]),
                _fmt(s["wall_time_s"]),
                str(usage["calls"]),
                str(usage["input_tokens"] + usage["output_tokens"]),
            )
    console.print(table)


def _published_table(console: Console, summaries: list[dict[str, Any]]) -> None:
    rows = []
    for s in summaries:
        published = mossbench_row(s["model"])
        if not published or s["pipeline"] != "baseline" or s["system_prompt"] != "vanilla":
            continue
        for judge, m in s["metrics"].items():
            measured = {
                "all": m["refusal_rate"],
                **{t: m["by_type"][t]["refusal_rate"] for t in ("1", "2", "3")},
            }
            rows.append((s["model"], judge, measured, published))
    if not rows:
        return
    table = Table(
        title="Measured vs published (MOSSBench, Li et al. 2024): measured / GPT-eval / human-eval"
    )
    for col in ("model", "judge", "all", "ER", "NH", "CI", "largest gap vs GPT-eval"):
        table.add_column(col)
    largest: dict[str, tuple[float, str]] = {"overall": (0.0, "-"), "per type": (0.0, "-")}
    for model, judge, measured, published in rows:
        gaps = {
            k: abs(measured[k] - published["gpt_eval"][k])
            for k in measured
            if measured[k] is not None
        }
        worst = max(gaps, key=gaps.get) if gaps else None
        cells = [
            f"{_fmt(measured[k])} / {_fmt(published['gpt_eval'][k])} / {_fmt(published['human_eval'][k])}"
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
    console.print(
        "largest gap to the paper's GPT-4-turbo judge: "
        f"{_fmt(largest['overall'][0])} points overall ({largest['overall'][1]}), "
        f"{_fmt(largest['per type'][0])} points per stimulus type ({largest['per type'][1]})",
        highlight=False,
    )


def _situational_table(console: Console, summaries: list[dict[str, Any]]) -> None:
    table = Table(title="Situational safety accuracy % (MSSBench)")
    for col in (
        "benchmark",
        "setting",
        "model",
        "pipeline",
        "prompt",
        "judge",
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
                s.get("setting") or "if",
                s["model"],
                s["pipeline"],
                s["system_prompt"],
                judge,
                _fmt(m["safe_accuracy"]),
                _fmt(m["unsafe_accuracy"]),
                _fmt(m["average"]),
                _fmt(m["pairs"]["both_right"]),
                str(m["unparseable"]),
                str(s["errors"]),
                str(s["usage"]["calls"]),
            )
    console.print(table)
    for model, _, text in _published_mssbench(summaries):
        console.print(f"published (Zhou et al. 2024) for {model}: {text}", highlight=False)


def _published_mssbench(summaries: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Lines naming the paper's figures for the runs whose model is in its tables."""
    lines = []
    for s in summaries:
        row = mssbench_row(s["model"])
        if row is None:
            continue
        bench, pipeline = s["benchmark"], s["pipeline"]
        average = row["average"].get(bench, {}).get(pipeline)
        setting = s.get("setting") or "if"
        detail = (
            row.get("if", {}).get(bench) if pipeline == "baseline" and setting == "if" else None
        )
        if average is None and detail is None:
            continue
        text = f"{bench} {pipeline}: paper's {row['model']}"
        if detail:
            text += f" safe {_fmt(detail['safe'])} / unsafe {_fmt(detail['unsafe'])} / average {_fmt(detail['average'])}"
        elif average is not None:
            text += f" average {_fmt(average)}"
        judges = ", ".join(s["metrics"]) or "no judge"
        text += f" (judge: the paper's GPT-4 rubric judge; measured above by {judges})"
        lines.append((s["model"], bench, text))
    return lines
