"""API keys never reach what Poise writes: records, summaries, run files, error messages."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from conftest import build_mossbench_dir

from poise.errors import PoiseError
from poise.eval.run.records import read_records
from poise.eval.run.runner import Runner, RunSpec, summarize
from poise.eval.testing.openai_server import ChatRequest, MockOpenAIServer
from poise.secrets import redact

KEY = "sk-test-DO-NOT-LEAK-1234567890"
JUDGE_PROMPT_MARK = "Answer in exactly this format"  # only the mossbench-llm judge prompt says it


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A distinctive OpenAI key, and no SDK retries so that failures surface at once."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("POISE_MAX_RETRIES", "0")
    for other in ("POISE_OPENAI_COMPATIBLE_KEY", "ANTHROPIC_API_KEY", "HF_TOKEN"):
        monkeypatch.delenv(other, raising=False)


def _spec(server: MockOpenAIServer, data: Path, **extra: object) -> RunSpec:
    return RunSpec(model="openai/gpt-4o", base_url=server.base_url, data=str(data), **extra)


def _run(spec: RunSpec, out: Path) -> Path:
    runner = Runner(spec, out, progress=False)
    asyncio.run(runner.run())
    return runner.directory


def _assert_no_key_under(root: Path) -> list[Path]:
    """Every file below root is free of the key (and of its distinctive middle)."""
    files = [p for p in root.rglob("*") if p.is_file()]
    for path in files:
        data = path.read_bytes()
        assert KEY.encode() not in data, f"API key leaked into {path}"
        assert b"DO-NOT-LEAK" not in data, f"part of the API key leaked into {path}"
    return files


def test_a_successful_run_sends_the_key_but_never_writes_it(tmp_path: Path) -> None:
    """The server only answers the right key, so the key was really used; no file holds it."""
    data = build_mossbench_dir(tmp_path / "d", 3)
    with MockOpenAIServer(
        reply=lambda r: (
            "Description: answers.\nScore: 0\nReason: ok"
            if JUDGE_PROMPT_MARK in r.text
            else "Here is a helpful answer about the scene."
        ),
        require_api_key=KEY,
    ) as server:
        spec = _spec(server, data, judges=["offline", "mossbench-llm"], judge_model="openai/gpt-4o")
        directory = _run(spec, tmp_path / "out")
        assert server.request_count == 6  # 3 model calls and 3 judge calls, all authorised
    records = read_records(directory / "records.jsonl")
    assert len(records) == 3 and all(r.error is None for r in records)
    assert all(set(r.verdicts) == {"offline", "mossbench-llm"} for r in records)
    names = {p.name for p in _assert_no_key_under(tmp_path / "out")}
    assert {"records.jsonl", "summary.json", "run.json"} <= names


def test_rejected_key_errors_are_recorded_without_the_key(tmp_path: Path) -> None:
    """A 401 (not retried) on every sample: errors recorded, the run aborts, nothing leaks."""
    data = build_mossbench_dir(tmp_path / "d", 3)
    with MockOpenAIServer(require_api_key="sk-the-server-wants-another-key") as server:
        spec = _spec(server, data)
        runner = Runner(spec, tmp_path / "out", progress=False)
        with pytest.raises(PoiseError, match="samples all failed") as failure:
            asyncio.run(runner.run())
        assert server.request_count == 0  # refused before reaching the chat endpoint
    assert KEY not in str(failure.value)
    records = read_records(runner.directory / "records.jsonl")
    assert len(records) == 3 and all(r.error and "401" in r.error for r in records)
    summary = summarize(runner.directory)
    assert summary["errors"] == 3 and summary["error_examples"]
    names = {p.name for p in _assert_no_key_under(tmp_path / "out")}
    assert {"records.jsonl", "summary.json", "run.json"} <= names


def test_a_server_error_echoing_the_key_is_redacted(tmp_path: Path) -> None:
    """A 500 whose message repeats the key and its Authorization header is masked on record."""

    def reply(request: ChatRequest) -> str:
        if JUDGE_PROMPT_MARK in request.text:
            raise RuntimeError(f"upstream rejected api_key={KEY} (Authorization: Bearer {KEY})")
        return "Here is a helpful answer about the scene."

    data = build_mossbench_dir(tmp_path / "d", 3)
    with MockOpenAIServer(reply=reply, require_api_key=KEY) as server:
        spec = _spec(server, data, judges=["mossbench-llm"], judge_model="openai/gpt-4o")
        runner = Runner(spec, tmp_path / "out", progress=False)
        with pytest.raises(PoiseError, match="samples all failed") as failure:
            asyncio.run(runner.run())
        assert len(server.errors) == 3  # the judge calls really failed with the key echoed
    assert KEY not in str(failure.value)
    records = read_records(runner.directory / "records.jsonl")
    assert len(records) == 3
    for record in records:
        assert record.error and record.error.startswith("judge mossbench-llm:")
        assert "500" in record.error and "<OPENAI_API_KEY>" in record.error
    summarize(runner.directory)
    summary = json.loads((runner.directory / "summary.json").read_text(encoding="utf-8"))
    assert summary["errors"] == 3
    _assert_no_key_under(tmp_path / "out")


# -- redact ------------------------------------------------------------------------------------


def test_redact_masks_the_known_key_variables() -> None:
    """The value of a key variable is replaced by the variable's name."""
    text = redact(f"Error: Incorrect API key provided: {KEY}. Retry with {KEY}")
    assert KEY not in text and text.count("<OPENAI_API_KEY>") == 2


def test_redact_masks_key_values_of_any_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys set in the environment are masked even when they look like nothing in particular."""
    monkeypatch.setenv("POISE_OPENAI_COMPATIBLE_KEY", "local.server.secret.42")
    monkeypatch.setenv("HF_TOKEN", "abcdEFGHijkl")
    text = redact("key=local.server.secret.42 token=abcdEFGHijkl")
    assert text == "key=<POISE_OPENAI_COMPATIBLE_KEY> token=<HF_TOKEN>"


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-Abc123def456ghi789",
        "sk-ant-api03-AbCdEfGh12345678",
        "Bearer eyJhbGciOiJIUzI1NiJ9.abc",
        "Bearer  abcdefghijklmnop",
        "hf_AbCdEfGhIjKlMnOpQrSt",
    ],
)
def test_redact_masks_token_shaped_strings(secret: str) -> None:
    """Keys that are not in the environment are caught by their shape."""
    text = redact(f'{{"headers": {{"Authorization": "{secret}"}}, "status": 401}}')
    assert secret not in text and "<redacted>" in text
    assert text.startswith('{"headers"') and text.endswith('"status": 401}')


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I am sorry, I can't help with that.",
        "skip the sk- prefix; risk-free; ask-me",
        "sk-short",
        "Bearer of bad news",
        "hf_short",
    ],
)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    """Short or ordinary strings pass through unchanged."""
    assert redact(text) == text


def test_redact_ignores_very_short_variable_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-character value would mask every occurrence of the letter; it is not used."""
    monkeypatch.setenv("HF_TOKEN", "a")
    assert redact("a banana") == "a banana"
