"""The fault suite: real ``poise`` processes against a misbehaving server on 127.0.0.1.

Two writers at once, a run and a judge at once, SIGKILL and Ctrl-C mid-run, a server that
never answers. Every test is bounded in time (subprocess timeouts; the fault server stops by
itself) and checks the run directory afterwards: every sample recorded exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from conftest import build_mossbench_dir
from fault_server import FaultServer

from poise.eval.run.lock import HOLDER_FILE

MODEL = "openai-compatible/vlm"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "KEY" not in k and "TOKEN" not in k}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _args(server: FaultServer, data: Path, out: Path, *extra: str) -> list[str]:
    return [
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
        *extra,
    ]


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err


def _wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def _run_dir(out: Path) -> Path:
    return next(p.parent for p in out.rglob("run.json"))


def _lines(out: Path) -> list[dict]:
    files = list(out.rglob("records.jsonl"))
    if not files:
        return []
    return [json.loads(line) for line in files[0].read_text().splitlines() if line.strip()]


def _complete_lines(out: Path) -> int:
    files = list(out.rglob("records.jsonl"))
    return files[0].read_text().count("\n") if files else 0


def _exactly_once(out: Path, n: int) -> None:
    ids = [r["sample_id"] for r in _lines(out)]
    assert sorted(ids, key=int) == [str(i) for i in range(1, n + 1)], ids
    assert all(r["error"] is None for r in _lines(out))


def test_second_writers_are_refused_at_once_or_wait_with_wait(tmp_path: Path) -> None:
    """A run and a judge started while a run writes exit 2 naming the holder; --wait waits."""
    data = build_mossbench_dir(tmp_path / "d", 20)
    out = tmp_path / "out"
    # 20 samples x 1 s / 2 in flight: the first run writes for ~10 s, longer than the other
    # processes take to start even on a loaded machine.
    with FaultServer(latency=1.0) as server:
        first = _start(_args(server, data, out, "--concurrency", "2"))
        _wait_for(lambda: any(out.rglob(HOLDER_FILE)) and any(out.rglob("run.json")))
        run_dir = _run_dir(out)
        started = time.monotonic()
        second_run = _start(_args(server, data, out, "--concurrency", "2"))
        judge = [sys.executable, "-m", "poise", "judge", str(run_dir), "--no-progress"]
        second_judge = _start(judge)
        waiting_judge = _start([*judge, "--wait"])
        for proc in (second_run, second_judge):
            code, err = _finish(proc)
            assert code == 2, err
            lines = [line for line in err.splitlines() if line.strip()]
            assert lines[-1].startswith("error:") and "Traceback" not in err, err
            assert f"pid {first.pid}" in err and "since" in err and "--wait" in err, err
        assert time.monotonic() - started < 20  # at once, not after the first run
        assert first.poll() is None, "the first run should still be writing"
        assert _finish(first)[0] == 0
        code, err = _finish(waiting_judge)
        assert code == 0, err
    _exactly_once(out, 20)
    assert not (run_dir / HOLDER_FILE).exists()


def test_sigkill_then_ctrl_c_then_resume_records_every_sample_once(tmp_path: Path) -> None:
    """A stale lock from a killed run does not block; Ctrl-C says so and summarises."""
    data = build_mossbench_dir(tmp_path / "d", 24)
    out = tmp_path / "out"
    with FaultServer(latency=0.15) as server:
        killed = _start(_args(server, data, out, "--concurrency", "2"))
        _wait_for(lambda: _complete_lines(out) >= 3)
        killed.send_signal(signal.SIGKILL)
        _finish(killed)
        run_dir = _run_dir(out)
        assert (run_dir / HOLDER_FILE).exists()  # the stale holder note is left behind ...

        interrupted = _start(_args(server, data, out, "--concurrency", "2"))  # ... not blocking
        before = _complete_lines(out)
        _wait_for(lambda: _complete_lines(out) >= before + 3)
        interrupted.send_signal(signal.SIGINT)
        code, err = _finish(interrupted, timeout=30)
        assert code == 130, err
        assert "interrupted:" in err and "rerun the same command" in err, err
        assert "Traceback" not in err and "Aborted" not in err, err
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["records"] == len(_lines(out)) < 24

        code, err = _finish(_start(_args(server, data, out, "--concurrency", "4")))
        assert code == 0, err
        _exactly_once(out, 24)
        code, err = _finish(_start(_args(server, data, out)))
        assert code == 0 and "already recorded" in err, err
        # only the requests in flight at the kill and at Ctrl-C (concurrency 2) were asked twice
        assert server.count <= 24 + 2 + 2


def test_a_server_that_never_answers_ends_the_run_within_the_timeout(tmp_path: Path) -> None:
    """--timeout 1 --max-retries 1: two attempts of 1 s, then the sample is recorded errored."""
    data = build_mossbench_dir(tmp_path / "d", 3)
    out = tmp_path / "out"
    with FaultServer(mode="hang", lifetime=40) as server:
        started = time.monotonic()
        args = _args(server, data, out, "--limit", "1", "--timeout", "1", "--max-retries", "1")
        code, err = _finish(_start(args), timeout=40)
        elapsed = time.monotonic() - started
        assert server.count == 2
    assert elapsed < 12, elapsed  # was about an hour per call
    assert code == 2 and "Traceback" not in err, err
    (record,) = _lines(out)
    assert "timeout" in record["error"].lower()
