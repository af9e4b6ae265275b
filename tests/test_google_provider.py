"""The ``google/`` provider end to end against a local fake Gemini API (no network).

The real langchain-google-genai and google-genai clients build and send every request; the
fake (:mod:`poise.eval.testing.gemini_server`) answers as Google does, including safety
blocks and 429s with ``RetryInfo``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import build_mossbench_dir

from poise.agents import ratelimit, retry
from poise.agents.calls import Call, response_blocked
from poise.agents.invoke import ask, build_messages
from poise.agents.models import api
from poise.agents.models.google import block_reason
from poise.agents.models.handle import ModelHandle, load_model
from poise.agents.models.registry import providers
from poise.errors import PoiseError
from poise.eval.cli import main
from poise.eval.testing.gemini_server import DEFAULT_TEXT, FakeGemini

GOOGLE_KEY = "AIza-test-google-KEY-0123456789"
OTHER_KEYS = {"OPENAI_API_KEY": "sk-openai-KEY-x", "ANTHROPIC_API_KEY": "sk-ant-KEY-y"}
MODEL = "google/gemini-2.0-flash"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", GOOGLE_KEY)
    for name, value in OTHER_KEYS.items():
        monkeypatch.setenv(name, value)
    api._noted_hosts.clear()
    yield
    retry.reset_calls()
    ratelimit.reset_rate_limits()


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


def png_data_url() -> str:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def model(server: FakeGemini) -> ModelHandle:
    return load_model(MODEL, base_url=server.base_url)


def one_call(server: FakeGemini, text: str, image: bool = False) -> tuple[str, Call]:
    handle = model(server)
    messages = build_messages(
        handle, text, image_url=png_data_url() if image else None, system="Be careful."
    )
    return asyncio.run(ask(handle, "baseline", messages))


def test_google_is_a_registered_provider() -> None:
    assert "google" in providers()
    assert providers()["google"].example == MODEL


def test_a_normal_answer_with_the_image_sent_as_inline_data(gemini: FakeGemini) -> None:
    text, call = one_call(gemini, "What is in this image?", image=True)

    assert text.startswith(DEFAULT_TEXT) and "image/png" in text
    assert call.blocked is None and call.output == text
    assert call.input_tokens and call.output_tokens
    (request,) = gemini.requests
    assert request.model == "gemini-2.0-flash"
    assert request.system == "Be careful."
    assert request.texts == ["What is in this image?"]
    ((mime, data),) = request.images
    assert mime == "image/png" and data.startswith(b"\x89PNG")
    config = request.body["generationConfig"]
    assert config["temperature"] == 0 and config["maxOutputTokens"] == api.DEFAULT_MAX_TOKENS


def test_a_safety_stopped_answer_is_recorded_with_its_reason(gemini: FakeGemini) -> None:
    text, call = one_call(gemini, "How do I do this? [[SAFETY]]", image=True)

    assert text == "" and call.output == ""
    assert call.blocked == "finish:SAFETY"
    assert response_blocked([call]) == "finish:SAFETY"


def test_a_blocked_prompt_is_recorded_with_its_reason(gemini: FakeGemini) -> None:
    text, call = one_call(gemini, "[[PROMPT_BLOCK:PROHIBITED_CONTENT]] tell me")

    assert text == ""
    assert call.blocked == "prompt:PROHIBITED_CONTENT"
    assert call.input_tokens is None  # LangChain drops usage on a prompt block


def test_other_finish_reasons() -> None:
    assert block_reason({"finish_reason": "STOP"}) is None
    assert block_reason({"finish_reason": "MAX_TOKENS"}) is None
    assert block_reason({"finish_reason": "RECITATION"}) is None  # copyright, not safety
    assert block_reason({"finish_reason": "IMAGE_SAFETY"}) == "finish:IMAGE_SAFETY"
    assert block_reason({"prompt_feedback": {"block_reason": None}}) is None
    assert block_reason(None) is None


def test_old_records_without_the_field_still_load() -> None:
    old = {"stage": "baseline", "model": "openai/gpt-4o", "messages": [], "output": "hi"}
    assert Call.model_validate(old).blocked is None
    assert response_blocked([old, {**old, "blocked": "prompt:SAFETY"}]) == "prompt:SAFETY"
    assert response_blocked([]) is None


def test_429_is_retried_by_poise_with_google_retry_delay(gemini: FakeGemini) -> None:
    retry.configure_calls(max_retries=3)
    gemini.fail_next(429, times=2)

    text, call = one_call(gemini, "hello")

    assert text.startswith(DEFAULT_TEXT)
    assert gemini.attempts == 3  # two 429s then the answer: the SDK itself never retries


def test_429_exception_carries_google_retry_delay(gemini: FakeGemini) -> None:
    gemini.fail_next(429, retry_delay="1.5s")
    handle = model(gemini)
    with pytest.raises(Exception) as caught:
        asyncio.run(handle.chat.ainvoke("hello"))
    assert retry.is_transient(caught.value)
    assert retry.retry_after_s(caught.value) == 1.5
    assert gemini.attempts == 1


def test_retries_stop_at_max_retries_and_4xx_is_not_retried(gemini: FakeGemini) -> None:
    retry.configure_calls(max_retries=1)
    gemini.fail_next(503, times=5)
    with pytest.raises(Exception) as caught:
        one_call(gemini, "hello")
    assert retry.is_transient(caught.value)
    assert gemini.attempts == 2

    gemini.fail_next(400, times=1)
    before = gemini.attempts
    gemini._failures.clear()
    gemini.fail_next(400)
    with pytest.raises(Exception) as caught:
        one_call(gemini, "hello")
    assert not retry.is_transient(caught.value)
    assert gemini.attempts == before + 1


def test_the_key_goes_only_to_the_named_server_which_is_announced(
    gemini: FakeGemini, capsys: pytest.CaptureFixture[str]
) -> None:
    one_call(gemini, "hello")
    one_call(gemini, "hello again")

    assert gemini.keys_seen() == {GOOGLE_KEY}
    err = capsys.readouterr().err
    assert err.count("note: google/ sends GOOGLE_API_KEY to") == 1
    assert gemini.base_url in err and GOOGLE_KEY not in err


def test_without_a_key_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_API_KEY")
    monkeypatch.setenv("GEMINI_API_KEY", "not-read-by-poise")
    with pytest.raises(PoiseError, match="set the environment variable GOOGLE_API_KEY"):
        load_model(MODEL)


def test_without_base_url_the_real_google_host_is_pinned() -> None:
    handle = load_model(MODEL)
    assert "generativelanguage.googleapis.com" in str(handle.chat.base_url)


def cli(*args: str) -> int:
    argv = sys.argv
    sys.argv = ["poise", *args]
    try:
        main()
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv


def test_poise_run_with_a_google_model(
    gemini: FakeGemini, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = build_mossbench_dir(tmp_path / "mossbench", 3)
    out = tmp_path / "runs"
    code = cli(
        "run", "--model", MODEL, "--base-url", gemini.base_url, "--data", str(data),
        "--out", str(out), "--pipeline", "baseline", "--no-progress",
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    (records_file,) = out.glob("*/records.jsonl")
    records = [json.loads(line) for line in records_file.read_text().splitlines()]
    assert len(records) == 3 and all(r["error"] is None for r in records)
    assert all(r["calls"][0]["blocked"] is None for r in records)
    assert all(r["response"].startswith(DEFAULT_TEXT) for r in records)
    assert all(len(req.images) == 1 for req in gemini.requests)
    for path in out.rglob("*"):
        if path.is_file():
            assert GOOGLE_KEY not in path.read_text(errors="replace")


def test_dropped_connections_of_either_http_client_are_transient() -> None:
    import aiohttp
    import httpx2

    assert retry.is_transient(aiohttp.ServerDisconnectedError())
    assert retry.is_transient(httpx2.ReadError("reset"))
    assert not retry.is_transient(ValueError("a bug"))


def test_sampling_parameters_reach_the_generation_config(gemini: FakeGemini) -> None:
    handle = load_model(MODEL, base_url=gemini.base_url, temperature=0.5, top_p=0.9, seed=7)
    asyncio.run(ask(handle, "baseline", build_messages(handle, "hi")))
    config = gemini.requests[0].body["generationConfig"]
    assert config["temperature"] == 0.5 and config["topP"] == 0.9 and config["seed"] == 7
    assert providers()["google"].defaults == api.API_DEFAULTS
