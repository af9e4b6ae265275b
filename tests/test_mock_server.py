"""The mock OpenAI server, driven through the real ``openai`` and ``langchain_openai`` clients.

Why through the real clients: the server exists so that their request building, image
encoding, retries and structured-output parsing run end to end; a test with hand-made HTTP
would not show that those clients accept what the server sends.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from PIL import Image
from pydantic import BaseModel, Field

from poise.eval.testing.openai_server import (
    DEFAULT_TEXT,
    ChatRequest,
    MockOpenAIServer,
    schema_example,
)


class Verdict(BaseModel):
    """A structured answer like the pipeline's judges produce."""

    label: str = Field(description="comply or refuse")
    confidence: float
    reasons: list[str]


def png_data_url(colour: tuple[int, int, int], size: int = 8) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def client(server: MockOpenAIServer, **kwargs: Any) -> openai.OpenAI:
    kwargs.setdefault("api_key", "test")
    return openai.OpenAI(base_url=server.base_url, **kwargs)


def test_openai_client_chat_completion_and_models() -> None:
    with MockOpenAIServer(reply=lambda r: f"echo: {r.text}") as server:
        assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
        c = client(server)
        out = c.chat.completions.create(
            model="m",
            messages=[
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hello there"},
            ],
        )
        assert out.object == "chat.completion" and out.model == "m"
        assert out.choices[0].message.role == "assistant"
        assert out.choices[0].message.content == "echo: be brief\nhello there"
        assert out.choices[0].finish_reason == "stop"
        assert out.usage is not None and out.usage.prompt_tokens == 4
        assert out.usage.completion_tokens == 5 and out.usage.total_tokens == 9
        assert [m.id for m in c.models.list()] == ["mock-model"]
        assert server.request_count == 1 and server.failures == 0
        (req,) = server.requests
        assert req.system == "be brief" and req.model == "m" and req.number == 1
        assert req.raw["messages"][1]["content"] == "hello there"


def test_default_reply_is_fixed_text() -> None:
    with MockOpenAIServer() as server:
        out = client(server).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        assert out.choices[0].message.content == DEFAULT_TEXT


@pytest.mark.parametrize("colour", [(200, 30, 30), (20, 40, 220)])
def test_langchain_multimodal_reply_sees_the_pixels(colour: tuple[int, int, int]) -> None:
    def reply(req: ChatRequest) -> str:
        (image,) = req.images
        pixel = Image.open(io.BytesIO(image)).convert("RGB").getpixel((0, 0))
        return f"{req.text} -> {'red' if pixel[0] > pixel[2] else 'blue'} {pixel}"

    with MockOpenAIServer(reply=reply) as server:
        llm = ChatOpenAI(base_url=server.base_url, api_key="test", model="m")
        message = HumanMessage(
            content=[
                {"type": "text", "text": "What colour?"},
                {"type": "image_url", "image_url": {"url": png_data_url(colour)}},
            ]
        )
        out = llm.invoke([SystemMessage("Look carefully."), message])
        name = "red" if colour[0] > colour[2] else "blue"
        assert out.content == f"Look carefully.\nWhat colour? -> {name} {colour}"
        assert out.usage_metadata is not None and out.usage_metadata["input_tokens"] == 4


def test_langchain_default_structured_output_method_is_json_schema() -> None:
    answer = {"label": "comply", "confidence": 0.9, "reasons": ["benign"]}
    with MockOpenAIServer(reply=lambda r: answer) as server:
        llm = ChatOpenAI(base_url=server.base_url, api_key="test", model="m")
        out = llm.with_structured_output(Verdict).invoke("judge this")
        assert out == Verdict(**answer)
        (req,) = server.requests
        assert req.response_format is not None and req.response_format["type"] == "json_schema"
        assert req.json_schema is not None and set(req.json_schema["properties"]) == set(answer)
        assert not req.tools


@pytest.mark.parametrize("method", ["json_schema", "function_calling", "json_mode"])
def test_langchain_structured_output_methods(method: str) -> None:
    answer = {"label": "refuse", "confidence": 0.25, "reasons": ["a", "b"]}
    with MockOpenAIServer(reply=lambda r: answer) as server:
        llm = ChatOpenAI(base_url=server.base_url, api_key="test", model="m")
        structured = llm.with_structured_output(Verdict, method=method, include_raw=True)
        out = structured.invoke("judge this; answer in JSON")
        assert out["parsing_error"] is None and out["parsed"] == Verdict(**answer)
        (req,) = server.requests
        if method == "function_calling":
            assert req.tool_name == "Verdict" and req.tool_forced
            assert out["raw"].tool_calls[0]["args"] == answer
        else:
            assert req.response_format["type"] == method.replace("_mode", "_object")


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_default_reply_satisfies_structured_output(method: str) -> None:
    with MockOpenAIServer() as server:
        llm = ChatOpenAI(base_url=server.base_url, api_key="test", model="m")
        out = llm.with_structured_output(Verdict, method=method).invoke("judge")
        assert out == Verdict(label="", confidence=0.0, reasons=[])


def test_schema_example_follows_refs_unions_and_bounds() -> None:
    class Inner(BaseModel):
        n: int = Field(ge=3)
        tag: str | None

    class Outer(BaseModel):
        inner: Inner
        items: list[Inner] = Field(min_length=1)
        kind: str = Field(json_schema_extra={"enum": ["x", "y"]})

    value = schema_example(Outer.model_json_schema())
    assert value == {"inner": {"n": 3, "tag": ""}, "items": [{"n": 3, "tag": ""}], "kind": "x"}
    Outer.model_validate(value)


def test_dict_reply_without_tools_is_json_content() -> None:
    with MockOpenAIServer(reply=lambda r: {"a": 1}) as server:
        out = client(server).chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "json please"}],
            response_format={"type": "json_object"},
        )
        assert out.choices[0].message.content == '{"a": 1}'
        assert out.choices[0].message.tool_calls is None


def test_forced_tool_choice_picks_the_named_tool() -> None:
    tools = [
        {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
        for name in ("first", "second")
    ]
    with MockOpenAIServer(reply=lambda r: {"k": "v"}) as server:
        c = client(server)
        messages = [{"role": "user", "content": "call"}]
        forced = c.chat.completions.create(
            model="m",
            messages=messages,
            tools=tools,
            tool_choice={"type": "function", "function": {"name": "second"}},
        )
        auto = c.chat.completions.create(model="m", messages=messages, tools=tools)
        none = c.chat.completions.create(
            model="m", messages=messages, tools=tools, tool_choice="none"
        )
    call = forced.choices[0].message.tool_calls[0]
    assert call.function.name == "second" and call.function.arguments == '{"k": "v"}'
    assert (
        forced.choices[0].finish_reason == "tool_calls"
        and forced.choices[0].message.content is None
    )
    assert auto.choices[0].message.tool_calls[0].function.name == "first"
    assert (
        none.choices[0].message.content == '{"k": "v"}' and not none.choices[0].message.tool_calls
    )


def test_streaming_text_and_usage() -> None:
    with MockOpenAIServer(reply=lambda r: "one two  three") as server:
        stream = client(server).chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "count"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two  three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


def test_langchain_streaming_structured_output_via_tools() -> None:
    answer = {"label": "comply", "confidence": 1.0, "reasons": []}
    with MockOpenAIServer(reply=lambda r: answer) as server:
        llm = ChatOpenAI(base_url=server.base_url, api_key="test", model="m", streaming=True)
        assert (
            "".join(str(c.content) for c in llm.stream("hi"))
            == '{"label": "comply", "confidence": 1.0, "reasons": []}'
        )
        out = llm.with_structured_output(Verdict, method="function_calling").invoke("judge")
        assert out == Verdict(**answer)
        assert all(r.raw.get("stream") for r in server.requests)


@pytest.mark.parametrize("status", [500, 429])
def test_fail_every_two_is_absorbed_by_client_retries(status: int) -> None:
    with MockOpenAIServer(fail_every=2, fail_status=status, retry_after=0.01) as server:
        c = client(server, max_retries=2)
        for _ in range(3):
            out = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
            assert out.choices[0].message.content == DEFAULT_TEXT
        # ok, fail+ok, fail+ok: requests 2 and 4 were the injected failures
        assert server.request_count == 5 and server.failures == 2


def test_injected_failure_surfaces_without_retries() -> None:
    with MockOpenAIServer(fail_every=1, fail_status=429) as server:
        with pytest.raises(openai.RateLimitError) as info:
            client(server, max_retries=0).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}]
            )
        assert info.value.status_code == 429 and info.value.code == "rate_limit_exceeded"
        assert "injected failure on request 1" in info.value.message
        assert server.failures == 1


def test_concurrent_requests_overlap() -> None:
    with MockOpenAIServer(latency=0.2, reply=lambda r: r.text) as server:
        c = client(server)

        def call(i: int) -> str:
            out = c.chat.completions.create(
                model="m", messages=[{"role": "user", "content": f"n{i}"}]
            )
            return out.choices[0].message.content

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(call, range(16)))
        elapsed = time.perf_counter() - start
    assert results == [f"n{i}" for i in range(16)]
    assert 0.2 <= elapsed < 1.5, elapsed
    assert server.request_count == 16


def test_async_concurrent_requests_overlap() -> None:
    async def main(server: MockOpenAIServer) -> float:
        llm = ChatOpenAI(base_url=server.base_url, api_key="test", model="m")
        start = time.perf_counter()
        outs = await asyncio.gather(*(llm.ainvoke(f"q{i}") for i in range(16)))
        assert sorted(o.content for o in outs) == sorted(f"q{i}" for i in range(16))
        return time.perf_counter() - start

    with MockOpenAIServer(latency=0.2, reply=lambda r: r.text) as server:
        elapsed = asyncio.run(main(server))
    assert 0.2 <= elapsed < 1.5, elapsed


def test_require_api_key() -> None:
    with MockOpenAIServer(require_api_key="sk-right") as server:
        with pytest.raises(openai.AuthenticationError) as info:
            client(server, api_key="sk-wrong", max_retries=0).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}]
            )
        assert info.value.status_code == 401 and "sk-" not in str(info.value)
        with pytest.raises(openai.AuthenticationError):
            client(server, api_key="sk-wrong", max_retries=0).models.list()
        assert server.request_count == 0
        ok = client(server, api_key="sk-right").chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
        assert ok.choices[0].message.content == DEFAULT_TEXT and server.request_count == 1


def test_bad_input_answers_400_and_reply_errors_500() -> None:
    def reply(req: ChatRequest) -> str:
        raise ValueError("boom")

    with MockOpenAIServer(reply=reply) as server:
        c = client(server, max_retries=0)
        bad_image = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}]
        with pytest.raises(openai.BadRequestError, match="base64"):
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": bad_image}])
        with pytest.raises(openai.BadRequestError, match="messages"):
            c.chat.completions.create(model="m", messages=[])
        with pytest.raises(openai.InternalServerError, match="ValueError: boom"):
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert server.failures == 0 and [str(e) for e in server.errors] == ["boom"]


def test_stop_frees_the_port_and_is_idempotent() -> None:
    server = MockOpenAIServer().start()
    url = server.base_url
    c = client(server, max_retries=0, timeout=2)
    c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    server.stop()
    server.stop()
    with pytest.raises(openai.APIConnectionError):
        openai.OpenAI(base_url=url, api_key="t", max_retries=0, timeout=2).models.list()
    with pytest.raises(RuntimeError):
        _ = server.base_url
