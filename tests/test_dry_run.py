"""`--dry-run` makes no model call and saves its estimate; a real run's summary prices the
tokens the server reported beside that estimate; a sweep totals cost and compares cells."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import build_mossbench_dir
from typer.testing import CliRunner

from poise.eval.cli import app
from poise.eval.testing.openai_server import MockOpenAIServer


def _invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_dry_run_calls_nothing_then_the_run_prices_what_it_used(tmp_path: Path) -> None:
    data = build_mossbench_dir(tmp_path / "d", 4)
    out = tmp_path / "runs"
    with MockOpenAIServer() as server:
        common = [
            "run",
            "--data",
            str(data),
            "--model",
            "openai-compatible/vlm",
            "--base-url",
            server.base_url,
            "--pipeline",
            "poise",
            "--out",
            str(out),
            "--no-progress",
        ]
        dry = _invoke(*common, "--dry-run")
        assert server.request_count == 0
        assert "dry run: no model was called" in dry.output
        (directory,) = [p for p in out.iterdir() if p.is_dir()]
        estimate = json.loads((directory / "estimate.json").read_text())
        assert estimate["calls"] == 4 * 4  # four stages per sample
        _invoke(*common)
        assert server.request_count == 16
    cost = json.loads((directory / "summary.json").read_text())["cost"]
    assert cost["recorded"]["calls"] == 16
    assert cost["estimate"]["calls"] == 16
    assert cost["recorded_vs_estimate"]["calls"] == 1.0


def test_sweep_totals_cost_and_compares_cells_that_share_samples(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    result = _invoke(
        "sweep",
        "--models",
        "replay/gpt-4o,replay/claude-3-haiku",
        "--limit",
        "40",
        "--out",
        str(out),
        "--no-progress",
    )
    sweep = json.loads((out / "sweep.json").read_text())
    assert sweep["cost"]["recorded"]["calls"] == 80
    assert sweep["comparisons"]["family"] == 1
    (comparison,) = sweep["comparisons"]["comparisons"]
    assert 0.0 <= comparison["p_value"] <= 1.0 and comparison["verdict"]
    assert "paired comparisons" in result.output
