"""The researcher's workflow through the CLI: sweep -> diagnose -> report, on a MOSSBench subset
and the MSSBench fixture, against a local OpenAI-compatible server."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import build_mossbench_dir
from mssbench_fixture import build_mssbench_fixture
from test_mssbench_run import image_aware
from typer.testing import CliRunner

from poise.eval.cli import app
from poise.eval.testing.openai_server import MockOpenAIServer


def test_sweep_diagnose_report(tmp_path: Path) -> None:
    mossbench = build_mossbench_dir(tmp_path / "mossbench", 6)
    mssbench = build_mssbench_fixture(tmp_path / "mssbench", quirks=False)
    sweep_dir = tmp_path / "sweep"
    cli = CliRunner()
    with MockOpenAIServer(reply=image_aware) as server:
        result = cli.invoke(
            app,
            [
                "sweep",
                "--benchmarks",
                "mossbench,mssbench-chat",
                "--models",
                "openai-compatible/vlm",
                "--pipelines",
                "baseline,poise",
                "--system-prompts",
                "vanilla,safety,calibrated",
                "--data",
                f"mossbench={mossbench}",
                "--data",
                f"mssbench-chat={mssbench}",
                "--base-url",
                server.base_url,
                "--out",
                str(sweep_dir),
                "--no-progress",
                "--concurrency",
                "8",
            ],
        )
        assert result.exit_code == 0, result.output
        assert "saved by reusing shared stages" in result.output
        sweep = json.loads((sweep_dir / "sweep.json").read_text())
        assert len(sweep["cells"]) == 12 and sweep["calls_saved"] > 0
        # poise on 6 + 24 samples x 3 prompts: perception and intent run once per sample
        assert sweep["calls_saved"] == (6 + 24) * 2 * 2

        diagnosed = cli.invoke(app, ["diagnose", str(sweep_dir), "--no-progress"])
        assert diagnosed.exit_code == 0, diagnosed.output
    assert len(list(sweep_dir.glob("*/diagnosis.json"))) == 12

    report = tmp_path / "report.html"
    made = cli.invoke(app, ["report", str(sweep_dir), "--out", str(report)])
    assert made.exit_code == 0, made.output
    page = report.read_text()
    assert "mssbench-chat" in page and "calibrated" in page
    assert (tmp_path / "report.md").is_file()
