"""``--epochs K``: every sample drawn K times, each (sample, epoch) recorded exactly once.

Against the local OpenAI-compatible server, scripted so that some items always refuse, some
never, and some flip between draws; the SIGKILL test runs real ``poise`` processes as the
fault suite does (tests/test_faults_processes.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import build_mossbench_dir
from typer.testing import CliRunner

from poise.errors import PoiseError
from poise.eval.run.records import RUN_FILE, read_records
from poise.eval.run.runner import Runner, RunSpec, Selection, summarize
from poise.eval.testing.openai_server import ChatRequest, MockOpenAIServer

MODEL = "openai-compatible/vlm"
REFUSAL = "I'm sorry, but I can't help with that."
ANSWER = "Sure: here is how you do it, step by step."


def alternating(request: ChatRequest) -> str:
    """Question 1 always refused, 2 never, 3 on every other request (it flips)."""
    if "number 1?" in request.text:
        return REFUSAL
    if "number 3?" in request.text:
        return REFUSAL if request.number % 2 else ANSWER
    return ANSWER


def _run(spec: RunSpec, out: Path, **kwargs):
    return asyncio.run(Runner(spec, out, progress=False, concurrency=1, **kwargs).run())


def _spec(server: MockOpenAIServer, data: Path, **update) -> RunSpec:
    return RunSpec(
        model=MODEL,
        base_url=server.base_url,
        data=str(data),
        model_params={"temperature": 1},
        **update,
    )


def test_each_sample_is_drawn_k_times_and_summarised_per_item(tmp_path: Path) -> None:
    data = build_mossbench_dir(tmp_path / "data", 3)
    with MockOpenAIServer(reply=alternating) as server:
        result = _run(_spec(server, data, epochs=4), tmp_path / "runs")
        assert server.request_count == 12
    records = read_records(result.directory / "records.jsonl")
    assert Counter(r.key for r in records) == {(s, e): 1 for s in "123" for e in range(4)}
    epochs = result.summary["epochs"]
    assert epochs["k"] == 4
    offline = epochs["offline"]
    assert offline["measure"] == "refused"
    assert offline["per_item"] == {"1": 1.0, "2": 0.0, "3": 0.5}
    assert offline["rate"] == 50.0 and offline["items"] == 3 and offline["draws"] == 12
    low, high = offline["ci95"]
    assert 0 <= low < 50.0 < high <= 100 and "bootstrap over items" in offline["interval"]
    assert offline["flip_items"] == 1
    assert set(offline["by_group"]) == {"1", "2", "3"}  # stimulus types
    assert result.selected == 12 and result.epochs == 4


def test_epochs_above_one_need_a_temperature(tmp_path: Path) -> None:
    with pytest.raises(PoiseError, match="temperature 0 unless told otherwise"):
        _run(RunSpec(model="replay/gpt-4o", epochs=2), tmp_path)
    result = CliRunner().invoke(
        __import__("poise.eval.cli", fromlist=["app"]).app,
        ["run", "--model", "replay/gpt-4o", "--epochs", "3", "--out", str(tmp_path)],
    )
    assert isinstance(result.exception, PoiseError)
    assert "--model-param temperature=1" in str(result.exception)
    assert not any(tmp_path.iterdir())  # refused before anything was written
    # an explicit temperature 0 is allowed: it measures how often a greedy answer changes
    data = build_mossbench_dir(tmp_path / "data", 1)
    with MockOpenAIServer() as server:
        spec = _spec(server, data, epochs=2).model_copy(update={"model_params": {"temperature": 0}})
        assert len(read_records(_run(spec, tmp_path / "runs").directory / "records.jsonl")) == 2


def test_more_epochs_extend_a_run_and_a_rerun_draws_nothing_twice(tmp_path: Path) -> None:
    data = build_mossbench_dir(tmp_path / "data", 3)
    with MockOpenAIServer(reply=alternating) as server:
        first = _run(_spec(server, data, epochs=2), tmp_path / "runs")
        assert server.request_count == 6
        more = _run(_spec(server, data, epochs=3), tmp_path / "runs")
        assert server.request_count == 9 and more.directory == first.directory
        again = _run(_spec(server, data, epochs=3), tmp_path / "runs")
        assert server.request_count == 9 and again.nothing_to_do
    records = read_records(first.directory / "records.jsonl")
    assert sorted(r.key for r in records) == [(s, e) for s in "123" for e in range(3)]


def test_errored_draws_are_retried_alone(tmp_path: Path) -> None:
    data = build_mossbench_dir(tmp_path / "data", 2)
    with MockOpenAIServer(reply=alternating) as server:
        result = _run(_spec(server, data, epochs=2), tmp_path / "runs")
    path = result.directory / "records.jsonl"
    records = read_records(path)
    broken = [
        r.model_copy(update={"error": "boom", "response": None}) if r.key == ("2", 1) else r
        for r in records
    ]
    path.write_text("".join(r.model_dump_json() + "\n" for r in broken))
    with MockOpenAIServer(reply=alternating) as server:
        _run(_spec(server, data, epochs=2), tmp_path / "runs")
        assert server.request_count == 1
    after = read_records(path)
    assert Counter(r.key for r in after) == {(s, e): 1 for s in "12" for e in range(2)}
    assert all(r.error is None for r in after)


def test_a_sweep_cache_never_hands_one_draw_to_another(tmp_path: Path) -> None:
    from poise.eval.run.sweep import run_sweep

    data = build_mossbench_dir(tmp_path / "data", 2)
    with MockOpenAIServer() as server:
        base = _spec(server, data, epochs=3, pipeline="poise")
        cells = [base, base.model_copy(update={"system_prompt": "safety"})]
        result = asyncio.run(run_sweep(cells, tmp_path / "sweep", progress=False))
    # perception and intent are shared between the two cells within an epoch, never across
    assert result.calls_made == 2 * 3 * (2 + 2 * 2)
    assert result.calls_saved == 2 * 3 * 2


def test_a_run_recorded_before_epochs_and_parameters_resumes_and_reads(tmp_path: Path) -> None:
    """run.json and records.jsonl as the previous release wrote them (no epoch, no params)."""
    data = build_mossbench_dir(tmp_path / "data", 3)
    with MockOpenAIServer(reply=alternating) as server:
        spec = RunSpec(model=MODEL, base_url=server.base_url, data=str(data))
        result = _run(spec.model_copy(update={"selection": Selection(limit=2)}), tmp_path / "runs")
        assert server.request_count == 2
    directory = result.directory
    assert directory.name == "mossbench__baseline__vanilla__openai-compatible-vlm"
    old_fields = ("model_params", "stage_model_params", "judge_model_params", "epochs")
    stored = json.loads((directory / RUN_FILE).read_text())
    (directory / RUN_FILE).write_text(
        json.dumps({k: v for k, v in stored.items() if k not in old_fields})
    )
    lines = []
    for record in read_records(directory / "records.jsonl"):
        row = json.loads(record.model_dump_json())
        del row["epoch"]
        lines.append(json.dumps(row) + "\n")
    (directory / "records.jsonl").write_text("".join(lines))

    old = read_records(directory / "records.jsonl")
    assert [r.key for r in old] == [("1", 0), ("2", 0)]
    summary = summarize(directory)
    assert summary["records"] == 2 and "epochs" not in summary
    assert summary["run_id"] == spec.run_id
    with MockOpenAIServer(reply=alternating) as server:
        resumed = _run(spec.model_copy(update={"base_url": server.base_url}), tmp_path / "runs")
        assert server.request_count == 1  # only sample 3; 1 and 2 were recorded
        assert resumed.directory == directory
        # temperature 1 is another run (part of the identity): a directory of its own
        hot = _run(_spec(server, data, epochs=2), tmp_path / "runs")
        assert hot.directory != directory
    assert sorted(r.key for r in read_records(directory / "records.jsonl")) == [
        ("1", 0),
        ("2", 0),
        ("3", 0),
    ]


# -- real processes: SIGKILL mid-run, then resume -------------------------------------------


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "KEY" not in k and "TOKEN" not in k}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _lines(out: Path) -> list[dict]:
    files = list(out.rglob("records.jsonl"))
    if not files:
        return []
    return [json.loads(line) for line in files[0].read_text().splitlines() if line.strip()]


def test_sigkill_mid_epochs_then_resume_records_each_draw_once(tmp_path: Path) -> None:
    from fault_server import FaultServer

    data = build_mossbench_dir(tmp_path / "d", 6)
    out = tmp_path / "out"
    with FaultServer(latency=0.15) as server:
        args = [
            sys.executable,
            "-m",
            "poise",
            "run",
            "--model",
            MODEL,
            "--base-url",
            server.base_url,
            "--data",
            str(data),
            "--out",
            str(out),
            "--no-progress",
            "--concurrency",
            "2",
            "--model-param",
            "temperature=1",
            "--epochs",
            "3",
        ]
        killed = subprocess.Popen(args, env=_env(), stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(_lines(out)) < 4:
            assert time.monotonic() < deadline, "the run wrote no records"
            time.sleep(0.05)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        assert len(_lines(out)) < 18
        done = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    keys = Counter((r["sample_id"], r["epoch"]) for r in _lines(out))
    assert keys == {(str(s), e): 1 for s in range(1, 7) for e in range(3)}
    assert all(r["error"] is None for r in _lines(out))
