"""The runner: records, summaries, resuming after errors and after SIGKILL, bad input."""

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

from poise.errors import PoiseError
from poise.eval import load_records
from poise.eval.run.records import read_records
from poise.eval.run.runner import Runner, RunSpec, Selection
from poise.eval.testing.openai_server import MockOpenAIServer


def _run(spec: RunSpec, out: Path, **kw):
    return asyncio.run(Runner(spec, out, progress=False, **kw).run())


def test_replay_run_writes_records_and_summary(tmp_path: Path) -> None:
    spec = RunSpec(model="replay/gpt-4o", selection=Selection(stimulus_types=[2], limit=10))
    result = _run(spec, tmp_path)
    records = read_records(result.directory / "records.jsonl")
    assert len(records) == 10 and {r.stimulus_type for r in records} == {2}
    assert all("offline" in r.verdicts and r.calls[0].stage == "baseline" for r in records)
    summary = json.loads((result.directory / "summary.json").read_text())
    assert summary["records"] == 10 and summary["metrics"]["offline"]["by_type"]["2"]["n"] == 10
    frame = load_records(result.directory)
    assert len(frame) == 10 and {"offline.label", "offline.refused", "sample_id"} <= set(
        frame.columns
    )


def test_rerun_skips_recorded_samples_and_extends(tmp_path: Path) -> None:
    first = _run(RunSpec(model="replay/gpt-4o", selection=Selection(limit=5)), tmp_path)
    again = _run(RunSpec(model="replay/gpt-4o", selection=Selection(limit=5)), tmp_path)
    assert first.new_records == 5 and again.new_records == 0
    more = _run(RunSpec(model="replay/gpt-4o", selection=Selection(limit=8)), tmp_path)
    assert more.new_records == 3
    ids = [r.sample_id for r in read_records(more.directory / "records.jsonl")]
    assert sorted(ids, key=int) == [str(i) for i in range(1, 9)]


def test_a_different_run_in_the_same_directory_is_refused(tmp_path: Path) -> None:
    result = _run(RunSpec(model="replay/gpt-4o", selection=Selection(limit=1)), tmp_path)
    spec = RunSpec(model="replay/gpt-4o", selection=Selection(limit=1))
    runner = Runner(spec, tmp_path, progress=False)
    (result.directory / "run.json").write_text(
        RunSpec(model="replay/claude-3-opus").model_dump_json()
    )
    with pytest.raises(PoiseError, match="holds a different run"):
        asyncio.run(runner.run())


def test_models_that_need_images_refuse_the_packaged_questions(tmp_path: Path) -> None:
    with MockOpenAIServer() as server:
        spec = RunSpec(model="openai-compatible/m", base_url=server.base_url)
        with pytest.raises(PoiseError, match="--data"):
            _run(spec, tmp_path)


def test_server_errors_are_recorded_then_retried_on_rerun(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("POISE_MAX_RETRIES", "0")  # let the failure surface instead of retrying
    data = build_mossbench_dir(tmp_path / "data", 9)
    broken = {"number 4", "number 7"}

    def flaky(request) -> str:
        if any(b in request.text for b in broken):
            raise RuntimeError("scripted failure")  # the mock server answers 500
        return "Here is a complete and helpful answer."

    with MockOpenAIServer(reply=flaky) as server:
        spec = RunSpec(model="openai-compatible/m", base_url=server.base_url, data=str(data))
        first = _run(spec, tmp_path / "out")
        assert first.errors == 2
        errored = [r for r in read_records(first.directory / "records.jsonl") if r.error]
        assert {r.sample_id for r in errored} == {"4", "7"} and "\n" not in errored[0].error
        broken.clear()
        second = _run(spec, tmp_path / "out")
    records = read_records(first.directory / "records.jsonl")
    assert Counter(r.sample_id for r in records) == Counter({str(i): 1 for i in range(1, 10)})
    assert all(r.error is None for r in records)
    assert second.new_records == first.errors


def test_sigkill_mid_run_then_rerun_records_every_sample_once(tmp_path: Path) -> None:
    data = build_mossbench_dir(tmp_path / "data", 12)
    out = tmp_path / "out"
    with MockOpenAIServer(reply=lambda r: "A helpful answer.", latency=0.4) as server:
        command = [
            sys.executable,
            "-m",
            "poise.eval.cli",
            "run",
            "--benchmark",
            "mossbench",
            "--data",
            str(data),
            "--model",
            "openai-compatible/m",
            "--base-url",
            server.base_url,
            "--out",
            str(out),
            "--concurrency",
            "2",
            "--no-progress",
        ]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        records_file = None
        deadline = time.time() + 60
        while time.time() < deadline:
            found = list(out.glob("*/records.jsonl"))
            if found and len(found[0].read_text().splitlines()) >= 3:
                records_file = found[0]
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert records_file is not None, process.stderr.read().decode()
        partial = len(read_records(records_file))
        assert 3 <= partial < 12
        rerun = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
    records = read_records(records_file)
    assert sorted((r.sample_id for r in records), key=int) == [str(i) for i in range(1, 13)]
    summary = json.loads((records_file.parent / "summary.json").read_text())
    assert summary["records"] == 12 and summary["errors"] == 0


def test_cli_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    def poise(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "poise.eval.cli", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    cases = [
        (("run", "--model", "nosuch/x", "--out", str(tmp_path)), "known providers"),
        (("run", "--pipeline", "nosuch", "--out", str(tmp_path)), "known pipelines"),
        (
            ("run", "--benchmark", "nosuch", "--model", "replay/gpt-4o", "--out", str(tmp_path)),
            "known benchmarks",
        ),
        (("run", "--system-prompt", "nosuch", "--out", str(tmp_path)), "unknown system prompt"),
        (("run", "--judge", "nosuch", "--out", str(tmp_path)), "known judges"),
        (("run", "--data", str(tmp_path / "none"), "--out", str(tmp_path)), "no such directory"),
        (("list", "nothing"), "unknown list"),
    ]
    env_free = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    for args, needle in cases:
        result = poise(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert needle in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    missing_key = subprocess.run(
        [
            sys.executable,
            "-m",
            "poise.eval.cli",
            "run",
            "--model",
            "openai/gpt-4o",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env_free,
        timeout=120,
    )
    assert missing_key.returncode == 2 and "OPENAI_API_KEY" in missing_key.stderr


def test_packaged_replays_refuse_the_contrast_set(tmp_path: Path) -> None:
    """Contrast pids repeat benign pids: replaying benign answers there would be silently wrong."""
    spec = RunSpec(
        benchmark="mossbench-contrast", model="replay/gpt-4o", selection=Selection(limit=5)
    )
    with pytest.raises(PoiseError, match="holds responses to mossbench, not mossbench-contrast"):
        _run(spec, tmp_path)


def test_rerun_with_a_new_judge_judges_the_recorded_samples(tmp_path: Path) -> None:
    first = _run(RunSpec(model="replay/gpt-4o", selection=Selection(limit=4)), tmp_path)
    with MockOpenAIServer(
        reply=lambda r: "Description: answers.\nScore: 0\nReason: it answers."
    ) as server:
        spec = RunSpec(
            model="replay/gpt-4o",
            judges=["offline", "mossbench-llm"],
            base_url=server.base_url,
            judge_model="openai-compatible/judge",
            selection=Selection(limit=4),
        )
        again = _run(spec, tmp_path)
        assert server.request_count == 4
    records = read_records(again.directory / "records.jsonl")
    assert again.directory == first.directory and again.new_records == 0
    assert all(set(r.verdicts) == {"offline", "mossbench-llm"} for r in records)
    assert {r.verdicts["mossbench-llm"].label for r in records} == {"comply"}


@pytest.mark.parametrize(
    "change",
    [{"pipeline": "poise"}, {"system_prompt": "safety"}, {"oracle": ["perception"]}],
)
def test_replay_only_runs_the_baseline(change: dict, tmp_path: Path) -> None:
    spec = RunSpec(model="replay/gpt-4o", selection=Selection(limit=2), **change)
    with pytest.raises(PoiseError, match="replays recorded final answers"):
        _run(spec, tmp_path)
