"""Intervals, cost and sampling parameters in the terminal tables and the report.

Benchmarks are chosen by their spec's kind, not named, so these tests follow the registry.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from poise.agents.calls import Call
from poise.benchmarks.registry import benchmark_specs
from poise.eval.judges.base import Verdict
from poise.eval.report.build import build_report
from poise.eval.report.model import load_runs, n_label, params_label
from poise.eval.report.rows import interval_note
from poise.eval.report.tables import print_run_tables
from poise.eval.run.cost import ESTIMATE_FILE, cost_summary, parse_prices
from poise.eval.run.records import Record, write_records

REFUSAL = next(s.name for s in benchmark_specs() if s.kind == "refusal" and not s.contrast_of)
SITUATIONAL = next(s.name for s in benchmark_specs() if s.kind == "situational")
WILSON = "Wilson 95%"
SCENARIOS = "bootstrap over scenarios 95% (BCa, 9999 resamples, seed 0)"
PAIRS = "bootstrap over pairs 95% (BCa, 9999 resamples, seed 0)"
PRICES = """schema = 1
[providers.openai]
as_of = 2025-08-15
source = "https://example.test/pricing"
[[providers.openai.models]]
match = "gpt-4o*"
input = 2.50
output = 10.00
"""


def _rate(value: float, ci: list[float] | None, n: int = 100) -> dict:
    out = {"n": n, "refusal_rate": value, "ci95": ci, "interval": WILSON if ci else None}
    return {k: v for k, v in out.items() if v is not None}


def _refusal_summary(with_ci: bool, **extra: object) -> dict:
    ci = [52.4, 63.4] if with_ci else None
    metrics = {
        **_rate(58.0, ci, 300),
        "by_type": {t: _rate(50.0 + int(t), ci) for t in ("1", "2", "3")},
        "answered_only": _rate(40.0, ci),
    }
    return {
        "benchmark": REFUSAL,
        "model": "openai/gpt-4o",
        "pipeline": "cot",  # not the published protocol: only the measured table
        "system_prompt": "vanilla",
        "directory": "/runs/r1",
        "errors": 0,
        "wall_time_s": 1.0,
        "usage": {"calls": 3, "input_tokens": 10, "output_tokens": 5},
        "metrics": {"j": metrics},
        **extra,
    }


def _print(summaries: list[dict]) -> str:
    console = Console(record=True, width=400)
    print_run_tables(console, summaries)
    return console.export_text()


def test_terminal_refusal_table_shows_intervals_params_and_items_x_draws() -> None:
    summary = _refusal_summary(
        True,
        model_params={"temperature": 1, "top_p": 0.9},
        epochs={"k": 3, "j": {"items": 100}},
    )
    text = _print([summary])
    assert "58.0 [52.4, 63.4]" in text and "51.0 [52.4, 63.4]" in text
    assert "openai/gpt-4o (t=1 p=0.9)" in text
    assert "100 x 3" in text
    assert text.count("95% intervals: Wilson") == 1


def test_an_old_summary_without_intervals_prints_the_bare_number() -> None:
    text = _print([_refusal_summary(False)])
    assert "58.0" in text and "[" not in text.split("Refusal rate")[1].split("\n", 3)[3]
    assert "95% intervals" not in text


def test_terminal_situational_table_names_each_interval_method_once() -> None:
    metrics = {
        "n_safe": 10,
        "n_unsafe": 10,
        "safe_accuracy": 90.0,
        "safe_accuracy_ci95": [59.6, 98.2],
        "unsafe_accuracy": 30.0,
        "unsafe_accuracy_ci95": [10.8, 60.3],
        "interval": WILSON,
        "average": 60.0,
        "average_ci95": [45.0, 75.0],
        "average_interval": SCENARIOS,
        "pairs": {"n": 10, "both_right": 20.0, "ci95": [0.0, 40.0], "interval": PAIRS},
        "unparseable": 0,
    }
    summary = {
        **_refusal_summary(True),
        "benchmark": SITUATIONAL,
        "setting": None,
        "metrics": {"j": metrics},
    }
    text = _print([summary])
    assert "90.0 [59.6, 98.2]" in text and "60.0 [45.0, 75.0]" in text
    assert "20.0 [0.0, 40.0]" in text
    assert (
        "95% intervals: Wilson; average: bootstrap over scenarios (BCa, 9999 resamples, seed 0); "
        "pairs: bootstrap over pairs (BCa, 9999 resamples, seed 0)"
    ) in text


def test_interval_note_groups_figures_sharing_a_method() -> None:
    same = {"interval": WILSON, "average_interval": SCENARIOS, "pairs": {"interval": SCENARIOS}}
    assert interval_note([same]) == (
        "95% intervals: Wilson; average and pairs: bootstrap over scenarios "
        "(BCa, 9999 resamples, seed 0)"
    )
    assert interval_note([{"refusal_rate": 5.0}, None]) == ""


def test_labels_for_params_and_draws() -> None:
    assert params_label({"top_p": 0.9, "temperature": 1.0}, {}) == "t=1 p=0.9"
    assert params_label({}, {"decision": {"temperature": 0}}) == "decision: t=0"
    assert n_label(300, 100, 3) == "100 x 3" and n_label(290, 100, 3) == "100 x 3 (290 judged)"
    assert n_label(100, 100, 1) == "100"


# --------------------------------------------------------------------------- report


def _records(model: str, epochs: int = 1, usage: bool = True) -> list[Record]:
    out = []
    for epoch in range(epochs):
        for i in range(10):
            refused = (i + epoch) % 4 == 0
            out.append(
                Record(
                    run_id="r",
                    benchmark=REFUSAL,
                    sample_id=str(i),
                    epoch=epoch,
                    variant="benign",
                    expected="comply",
                    stimulus_type=1 + i % 3,
                    query=f"q{i}",
                    model=model,
                    pipeline="baseline",
                    response="no" if refused else "yes",
                    calls=[
                        Call(
                            stage="baseline",
                            model=model,
                            messages=[],
                            input_tokens=1000 if usage or i else None,
                            output_tokens=200 if usage or i else None,
                        )
                    ],
                    verdicts={
                        "j": Verdict(
                            judge="j",
                            label="refuse" if refused else "comply",
                            refused=refused,
                            correct=not refused,
                        )
                    },
                )
            )
    return out


def _run(root: Path, name: str, model: str, params: dict, epochs: int = 1, **kw: object) -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    spec = {
        "benchmark": REFUSAL,
        "model": model,
        "pipeline": "baseline",
        "judges": ["j"],
        "model_params": params,
        "epochs": epochs,
    }
    (directory / "run.json").write_text(json.dumps(spec), encoding="utf-8")
    records = _records(model, epochs, **kw)
    write_records(directory / "records.jsonl", records)
    return directory


def _summarise(directory: Path, estimate: dict | None = None) -> None:
    """summary.json with the cost entry the runner writes (priced at a test table)."""
    if estimate is not None:
        (directory / ESTIMATE_FILE).write_text(json.dumps(estimate), encoding="utf-8")
    from poise.eval.run.records import read_records

    records = read_records(directory / "records.jsonl")
    cost = cost_summary(directory, records, parse_prices(PRICES, "prices.toml"))
    summary = {"directory": str(directory), "cost": cost}
    (directory / "summary.json").write_text(json.dumps(summary), encoding="utf-8")


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    cold = _run(root, "cold", "openai/gpt-4o", {"temperature": 0}, usage=False)
    hot = _run(root, "hot", "openai/gpt-4o", {"temperature": 1, "top_p": 0.9}, epochs=2)
    other = _run(root, "other", "acme/model-x", {})
    estimate = {
        "calls": 10,
        "input_tokens": 8000,
        "output_tokens": 4000,
        "cost": {"usd": 0.05, "text": "$0.05"},
    }
    _summarise(cold)
    _summarise(hot, estimate)
    _summarise(other)
    return root


def test_runs_differing_only_in_params_do_not_collide(runs: Path) -> None:
    warnings: list[str] = []
    loaded = {r.directory.name: r for r in load_runs([runs], None, warnings)}
    assert loaded["cold"].config_key != loaded["hot"].config_key
    assert loaded["hot"].config_label == "gpt-4o · baseline · vanilla · t=1 p=0.9"
    assert loaded["cold"].config_label == "gpt-4o · baseline · vanilla · t=0"
    assert loaded["hot"].epochs == 2 and not warnings


def test_report_has_intervals_draws_and_a_cost_section(runs: Path, tmp_path: Path) -> None:
    result = build_report([runs], tmp_path / "out" / "report.html")
    md = result.markdown.read_text(encoding="utf-8")
    assert not [w for w in result.warnings if "pairings" in w]
    assert "| gpt-4o (t=1 p=0.9) | baseline | vanilla | - | j | 10 x 2 |" in md
    assert (
        "95% intervals: Wilson; rates of repeated draws: bootstrap over samples "
        "(BCa, 9999 resamples, seed 0)"
    ) in md
    cost = md.split("## Cost", 1)[1]
    assert "| run | calls | reused | input tok | output tok | cost | estimated |" in cost
    assert "| hot | 20 | 0 | 20,000 | 4,000 | $0.09 | $0.05 |" in cost
    assert "| total | 40 | 0 |" in cost and "+ no price for acme/model-x" in cost
    assert "Prices: prices.toml (list prices as of openai 2025-08-15)" in cost
    assert "hot: recorded / estimated: calls 2, input tokens 2.5, output tokens 1" in cost
    assert "cold: 1 calls reported no usage" in cost
    # the published comparison tells the two runs of one model apart by their parameters
    assert "| gpt-4o t=1 p=0.9 (GPT-4o) | j | 25.0 [0.0, 50.0] / 6 / 14 |" in md
    assert "no price for acme/model-x: their calls are not in the cost" in cost
    page = result.html.read_text(encoding="utf-8")
    assert "<section id='cost'><h2>Cost</h2>" in page and "<a href='#cost'>Cost</a>" in page
    assert "no price for acme/model-x" in page and "$0.00" not in cost


def test_a_report_without_cost_in_its_summaries_omits_the_section(tmp_path: Path) -> None:
    _run(tmp_path / "runs", "plain", "openai/gpt-4o", {})
    result = build_report([tmp_path / "runs"], tmp_path / "report.html")
    assert "## Cost" not in result.markdown.read_text(encoding="utf-8")
    assert "id='cost'" not in result.html.read_text(encoding="utf-8")
