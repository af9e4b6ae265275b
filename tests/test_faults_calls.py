"""Model calls against a misbehaving server: one retry layer, Retry-After, output caps, keys.

These run the real CLI in this process (``poise.eval.cli.main``) against the fault server
over real HTTP, so the openai client, LangChain and Poise's retry layer are all exercised.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import build_mossbench_dir, cli
from fault_server import FaultServer

from poise.agents import retry
from poise.agents.invoke import MAX_OUTPUT_CHARS
from poise.agents.models import api

FOREIGN_KEY = "sk-foreign-openai-KEY-0123456789"


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("POISE_OPENAI_COMPATIBLE_KEY", "ANTHROPIC_API_KEY", "POISE_MAX_RETRIES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", FOREIGN_KEY)
    api._noted_hosts.clear()
    yield
    retry.reset_calls()


def run_args(server: FaultServer, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--model",
        "openai-compatible/vlm",
        "--base-url",
        server.base_url,
        "--data",
        str(data),
        "--out",
        str(out),
        "--no-progress",
        "--limit",
        "1",
        *extra,
    ]


def records(out: Path) -> list[dict]:
    (path,) = out.rglob("records.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_persistent_500_costs_max_retries_plus_one_requests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was 28 requests per call (SDK retries x graph node retries); now exactly 3."""
    data = build_mossbench_dir(tmp_path / "d", 2)
    with FaultServer(mode="status", status=500, retry_after=0) as server:
        code, err = cli(capsys, *run_args(server, data, tmp_path / "out", "--max-retries", "2"))
        assert server.count == 3
    assert code == 2 and "Traceback" not in err
    assert "500" in records(tmp_path / "out")[0]["error"]


def test_429_honours_retry_after(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = build_mossbench_dir(tmp_path / "d", 2)
    with FaultServer(mode="status", status=429, retry_after=0.4) as server:
        started = time.monotonic()
        cli(capsys, *run_args(server, data, tmp_path / "out", "--max-retries", "2"))
        gaps = [b.at - a.at for a, b in zip(server.seen, server.seen[1:], strict=False)]
    assert server.count == 3
    assert all(gap >= 0.38 for gap in gaps), gaps  # waited as told, not the 0.5 s backoff's jitter
    assert time.monotonic() - started < 10


def test_retry_after_is_capped() -> None:
    class Response:
        headers = {"retry-after": "3600"}

    class RateLimited(Exception):
        response = Response()

    assert retry.delay_before_retry(RateLimited(), 0) == retry.RETRY_AFTER_CAP_S == 60
    limits = retry.CallLimits(timeout_s=60, max_retries=3)
    assert limits.worst_case_s() == 4 * 60 + 3 * 60


def test_a_5mb_reply_is_capped_marked_and_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = build_mossbench_dir(tmp_path / "d", 2)
    with FaultServer(mode="huge") as server:
        code, err = cli(capsys, *run_args(server, data, tmp_path / "out"))
        sent = server.seen[0].body
    assert code == 0, err
    assert sent.get("max_tokens") or sent.get("max_completion_tokens")  # a default is sent
    (path,) = (tmp_path / "out").rglob("records.jsonl")
    assert path.stat().st_size < 3 * MAX_OUTPUT_CHARS  # was 5 MB+ per call
    (record,) = records(tmp_path / "out")
    (call,) = record["calls"]
    assert call["truncated"] is True
    assert "truncated by Poise" in call["output"] and "truncated by Poise" in record["response"]


def test_openai_compatible_never_sends_the_openai_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = build_mossbench_dir(tmp_path / "d", 2)
    with FaultServer() as server:
        code, err = cli(capsys, *run_args(server, data, tmp_path / "a"))
        assert code == 0, err
        monkeypatch.setenv("POISE_OPENAI_COMPATIBLE_KEY", "own-server-key")
        code, err = cli(capsys, *run_args(server, data, tmp_path / "b"))
        assert code == 0, err
        auth = [seen.headers.get("authorization", "") for seen in server.seen]
    assert all(FOREIGN_KEY.lower() not in a.lower() for a in auth), auth
    assert auth[-1] == "Bearer own-server-key"


def test_openai_with_a_custom_base_url_says_where_the_key_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = build_mossbench_dir(tmp_path / "d", 2)
    with FaultServer() as server:
        args = run_args(server, data, tmp_path / "out")
        args[args.index("openai-compatible/vlm")] = "openai/gpt-4o"
        code, err = cli(capsys, *args)
    assert code == 0, err
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "OPENAI_API_KEY" in notes[0] and server.base_url in notes[0]
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert FOREIGN_KEY not in path.read_text(errors="replace")
