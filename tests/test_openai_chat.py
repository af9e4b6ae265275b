"""FastChatOpenAI behaves as ChatOpenAI did: each scenario runs with both clients (the old one
forced by ``POISE_OPENAI_CLIENT=langchain``) against the same local server and compares what
Poise sees: request body and headers, key rules, usage, errors and their classes, retries
(Retry-After through poise.agents.retry), timeouts, refused connections, structured output."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel

from poise.agents import retry
from poise.agents.invoke import ask, ask_structured
from poise.agents.models.handle import load_model
from poise.agents.models.openai_chat import FastChatOpenAI
from poise.eval.testing.openai_server import MockOpenAIServer

PNG = (  # a 1x1 PNG
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4"
    "DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)
MESSAGES = [
    SystemMessage(content="be brief"),
    HumanMessage(
        content=[
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": PNG}},
        ]
    ),
]
CLIENTS = ["fast", "langchain"]
# Headers whose values legitimately differ between two clients (connection details).
VOLATILE = {"content-length", "host", "connection", "accept-encoding", "x-stainless-read-timeout"}


class Verdict(BaseModel):
    answer: str
    refused: bool | None = None


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Any:
    for variable in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "POISE_OPENAI_COMPATIBLE_KEY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("POISE_OPENAI_CLIENT", raising=False)
    retry.reset_calls()
    yield
    retry.reset_calls()


def _model(client: str, monkeypatch: pytest.MonkeyPatch, name: str, base_url: str, **params: Any):
    if client == "langchain":
        monkeypatch.setenv("POISE_OPENAI_CLIENT", "langchain")
    else:
        monkeypatch.delenv("POISE_OPENAI_CLIENT", raising=False)
    handle = load_model(name, base_url=base_url, **params)
    assert isinstance(handle.chat, FastChatOpenAI) == (client == "fast")
    return handle


def _run_both(monkeypatch, scenario, name="openai-compatible/mock-model", **server_kw):
    out = {}
    for client in CLIENTS:
        with MockOpenAIServer(**server_kw) as server:
            model = _model(client, monkeypatch, name, server.base_url)
            out[client] = (asyncio.run(scenario(model)), server.requests, server.request_count)
    return out


def test_text_call_same_body_record_and_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(model):
        text, call = await ask(model, "answer", MESSAGES)
        return text, call.input_tokens, call.output_tokens

    both = _run_both(monkeypatch, scenario)
    assert both["fast"][0] == both["langchain"][0]
    fast_body, lc_body = both["fast"][1][-1].raw, both["langchain"][1][-1].raw
    assert fast_body == lc_body
    assert fast_body["max_completion_tokens"] == 1024 and fast_body["temperature"] == 0.0
    assert fast_body["stream"] is False


def test_sampling_params_reach_the_body(monkeypatch: pytest.MonkeyPatch) -> None:
    bodies = {}
    for client in CLIENTS:
        with MockOpenAIServer() as server:
            model = _model(
                client,
                monkeypatch,
                "openai-compatible/m",
                server.base_url,
                temperature=0.7,
                top_p=0.9,
                seed=3,
                max_tokens=50,
            )
            asyncio.run(ask(model, "answer", MESSAGES))
            bodies[client] = server.requests[-1].raw
    assert bodies["fast"] == bodies["langchain"]


def test_structured_call_same_body_and_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(model):
        parsed, call = await ask_structured(model, "judge", MESSAGES, Verdict)
        return parsed, call.input_tokens, call.output_tokens

    both = _run_both(monkeypatch, scenario)
    assert both["fast"][0] == both["langchain"][0]
    assert both["fast"][1][-1].raw == both["langchain"][1][-1].raw


def test_same_headers_and_key_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
    seen: dict[str, dict[str, str]] = {}
    import http.server

    original = http.server.BaseHTTPRequestHandler.parse_request

    def parse_request(self):  # record every request's headers
        ok = original(self)
        if ok and self.command == "POST":
            seen[client] = {k.lower(): v for k, v in self.headers.items()}
        return ok

    monkeypatch.setattr(http.server.BaseHTTPRequestHandler, "parse_request", parse_request)
    for client in CLIENTS:
        with MockOpenAIServer() as server:
            model = _model(client, monkeypatch, "openai-compatible/m", server.base_url)
            asyncio.run(ask(model, "answer", MESSAGES))
    fast = {k: v for k, v in seen["fast"].items() if k not in VOLATILE}
    lc = {k: v for k, v in seen["langchain"].items() if k not in VOLATILE}
    assert fast == lc
    assert fast["authorization"] == "Bearer EMPTY"  # never OPENAI_API_KEY to another server
    monkeypatch.setenv("POISE_OPENAI_COMPATIBLE_KEY", "own-key")
    with MockOpenAIServer(require_api_key="own-key") as server:
        client = "fast"
        model = _model("fast", monkeypatch, "openai-compatible/m", server.base_url)
        text, _ = asyncio.run(ask(model, "answer", MESSAGES))
        assert text and seen["fast"]["authorization"] == "Bearer own-key"
    with MockOpenAIServer(require_api_key="sk-openai-secret") as server:
        model = _model("fast", monkeypatch, "openai/gpt-4o", server.base_url)
        text, _ = asyncio.run(ask(model, "answer", MESSAGES))
        assert text


@pytest.mark.parametrize("status", [400, 401, 429, 500])
def test_errors_same_class_and_message(monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    retry.configure_calls(max_retries=0)
    errors = {}
    for client in CLIENTS:
        with MockOpenAIServer(fail_every=1, fail_status=status) as server:
            model = _model(client, monkeypatch, "openai-compatible/m", server.base_url)
            with pytest.raises(Exception) as info:  # noqa: B017 - compared below  # noqa: B017 - compared below
                asyncio.run(model.chat.ainvoke(MESSAGES))
            errors[client] = info.value
    fast, lc = errors["fast"], errors["langchain"]
    assert type(fast) is type(lc)
    assert str(fast) == str(lc)
    assert fast.status_code == lc.status_code == status
    assert retry.is_transient(fast) == retry.is_transient(lc)


def test_retry_after_through_the_one_retry_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    import openai

    retry.configure_calls(max_retries=2)
    counts = {}
    for client in CLIENTS:
        with MockOpenAIServer(fail_every=1, fail_status=429, retry_after=0.05) as server:
            model = _model(client, monkeypatch, "openai-compatible/m", server.base_url)
            with pytest.raises(openai.RateLimitError):
                asyncio.run(ask(model, "answer", MESSAGES))
            counts[client] = server.request_count
            fresh = _model(client, monkeypatch, "openai-compatible/m", server.base_url)
            assert retry.retry_after_s(_last_error(fresh)) == pytest.approx(0.05)
    assert counts == {"fast": 3, "langchain": 3}  # no retries inside the client


def _last_error(model) -> BaseException:
    try:
        asyncio.run(model.chat.ainvoke(MESSAGES))
    except Exception as exc:  # noqa: BLE001 - the error is what we look at
        return exc
    raise AssertionError("expected an error")


def test_timeout_and_refused_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    retry.configure_calls(timeout_s=0.3, max_retries=0)
    messages = {}
    for client in CLIENTS:
        with MockOpenAIServer(latency=1.0) as server:
            model = _model(client, monkeypatch, "openai-compatible/m", server.base_url)
            with pytest.raises(TimeoutError) as info:
                asyncio.run(ask(model, "answer", MESSAGES))
            messages[client] = str(info.value)
    assert messages["fast"] == messages["langchain"]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    refused = {}
    for client in CLIENTS:
        model = _model(client, monkeypatch, "openai-compatible/m", f"http://127.0.0.1:{port}/v1")
        with pytest.raises(Exception) as info:  # noqa: B017 - compared below
            asyncio.run(model.chat.ainvoke(MESSAGES))
        refused[client] = info.value
    assert type(refused["fast"]) is type(refused["langchain"])
    assert str(refused["fast"]) == str(refused["langchain"])
    assert retry.is_transient(refused["fast"])


def test_structured_reply_cut_by_length(monkeypatch: pytest.MonkeyPatch) -> None:
    import openai

    import poise.eval.testing.openai_server as mock_server

    original = mock_server._completion

    def cut(request, answer):
        completion = original(request, answer)
        completion["choices"][0]["finish_reason"] = "length"
        return completion

    monkeypatch.setattr(mock_server, "_completion", cut)
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "Verdict", "schema": Verdict.model_json_schema()},
    }
    for client in CLIENTS:
        with MockOpenAIServer() as server:
            model = _model(client, monkeypatch, "openai-compatible/m", server.base_url)
            with pytest.raises(openai.LengthFinishReasonError):
                asyncio.run(model.chat.ainvoke(MESSAGES, response_format=fmt))


def test_reasoning_models_and_other_params_keep_chatopenai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert not isinstance(load_model("openai/o3-mini").chat, FastChatOpenAI)
    assert not isinstance(load_model("openai/gpt-5").chat, FastChatOpenAI)
    assert isinstance(load_model("openai/gpt-4o").chat, FastChatOpenAI)
    lc = load_model("openai-compatible/m", base_url="http://127.0.0.1:1/v1", logprobs=True)
    assert not isinstance(lc.chat, FastChatOpenAI)
