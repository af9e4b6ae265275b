"""``poise bench pipeline`` measures what it says: whole processes, phases that add up, start-up.

Figures are never asserted (they depend on the machine); what is checked is that each number
is measured from the run it describes: calls counted from the records, phases that sum to the
wall time, a first request that comes after the process started and before it ended.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from poise.errors import PoiseError
from poise.eval import bench


def test_todays_profile_runs_poise_in_its_own_process_and_splits_the_wall_time() -> None:
    result = bench._bench_today(
        samples=4, concurrency=2, latency=0.05, pipeline="baseline", sequential_samples=2
    )
    run = result["concurrent"]
    assert (run["samples"], run["calls"], run["errors"]) == (4, 4, 0)
    phases = run["startup_s"] + run["calls_s"] + run["tail_s"]
    assert phases == pytest.approx(run["wall_s"], abs=0.01)
    assert run["startup_s"] > 0 and run["tail_s"] > 0
    # Four calls of 50 ms, two at a time: the calls phase cannot be shorter than two rounds.
    assert run["calls_s"] >= 0.05
    assert result["ideal_wall_s"] == pytest.approx(4 * 0.05 / 2)
    assert result["ratio_to_ideal"] == pytest.approx(
        run["wall_s"] / result["ideal_wall_s"], rel=1e-2
    )
    assert result["sequential"]["samples"] == 2


def test_startup_reports_every_command_the_first_request_and_the_import_floor() -> None:
    result = bench.bench_startup(repeats=1, pipelines=("baseline",))
    assert set(result["commands_s"]) == set(bench.STARTUP_COMMANDS)
    assert all(seconds > 0 for seconds in result["commands_s"].values())
    assert result["run_to_first_request_s"]["baseline"] > 0
    assert result["import_floor_s"] > 0
    assert result["fastest_s"]["import_floor"] <= result["import_floor_s"]
    fastest = result["fastest_s"]["run_to_first_request"]["baseline"]
    assert fastest <= result["run_to_first_request_s"]["baseline"]
    assert "langchain_core" in result["import_floor"]


def test_a_failing_run_is_one_line_not_a_silent_zero(tmp_path: Path) -> None:
    data = bench.synthetic_mossbench(tmp_path / "data", 1)
    with bench._ServerProcess(0.0) as server, pytest.raises(PoiseError, match="poise run failed"):
        bench._process_run(
            server, data=data, out=tmp_path / "out", pipeline="no-such-pipeline", concurrency=1
        )


def test_the_server_reports_when_it_answered(tmp_path: Path) -> None:
    data = bench.synthetic_mossbench(tmp_path / "data", 2)
    with bench._ServerProcess(0.0) as server:
        assert server.stamps() is None  # nothing answered yet
        run = bench._process_run(
            server, data=data, out=tmp_path / "out", pipeline="baseline", concurrency=1
        )
        assert run["calls"] == 2
        assert server.stamps() is None  # the run took its stamps


def test_high_concurrency_counts_cpu_per_call_after_a_warm_up() -> None:
    result = bench.bench_high_concurrency(
        pipeline="baseline", concurrency=4, latency=0.0, samples=4, warmup_samples=1
    )
    assert result["warmup"]["samples"] == 1
    assert (result["run"]["samples"], result["run"]["calls"], result["run"]["errors"]) == (4, 4, 0)
    per_call = 1000 * result["run"]["cpu_s"] / result["run"]["calls"]
    assert result["client_cpu_ms_per_call"] == pytest.approx(per_call, abs=0.01)
    assert result["images"].startswith(("real", "synthetic"))


def test_profile_lists_the_top_functions_by_own_time_from_a_separate_run() -> None:
    result = bench.bench_high_concurrency(
        pipeline="baseline", concurrency=4, latency=0.0, samples=4, warmup_samples=1, profile=5
    )
    rows = result["profile"]["functions"]
    assert len(rows) == 5
    assert [r["own_s"] for r in rows] == sorted((r["own_s"] for r in rows), reverse=True)
    assert all(0 < r["share"] <= 1 and r["calls"] >= 1 for r in rows)
    assert not any(r["function"].startswith("/") for r in rows)  # no machine-specific paths
    packages = result["profile"]["packages"]
    assert "poise" in {p["package"] for p in packages}
    assert sum(p["share"] for p in packages) <= 1.0 + 1e-6


def test_profile_without_the_high_concurrency_run_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from conftest import cli

    code, err = cli(capsys, "bench", "pipeline", "--no-high-concurrency", "--profile", "5")
    assert code == 2 and "--profile profiles the high-concurrency run" in err
