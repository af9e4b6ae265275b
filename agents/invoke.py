"""One model call, recorded: the mechanics every agent shares.

``ask`` sends messages to a stage's model and returns a :class:`Call` for the record.
``ask_structured`` also parses the reply into the agent's pydantic schema: through the
provider's own structured-output mechanism where it has one, with the tolerant JSON parser
as the fallback. Output that still cannot be parsed comes back as ``None`` with the raw text
and the parse error on the Call; the agent then applies its documented fallback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import cache
from typing import Any, TypeVar

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, ValidationError

from poise.agents.calls import Call, strip_images
from poise.agents.models.handle import ModelHandle
from poise.agents.parsing import ParseFailure, parse_json_object
from poise.agents.prompts import Prompt
from poise.agents.ratelimit import estimate_tokens, limiter_for, message_parts
from poise.agents.retry import call_with_retries

T = TypeVar("T", bound=BaseModel)
R = TypeVar("R")

# How each provider returns structured output natively. OpenAI-style servers take a JSON
# schema as ``response_format`` on the request itself (cheaper than a with_structured_output
# chain: ~8 ms of client CPU per call instead of ~14 ms); Anthropic answers through a forced
# tool call. Other providers (hf/, replay/) get the schema in the prompt and the tolerant parser.
RESPONSE_FORMAT_PROVIDERS = {"openai", "openai-compatible"}
TOOL_PROVIDERS = {"anthropic"}
STRUCTURED_PROVIDERS = RESPONSE_FORMAT_PROVIDERS | TOOL_PROVIDERS

# Model output kept per call: far above what the default max_tokens (1024) produces.
MAX_OUTPUT_CHARS = 32_000
TRUNCATION_MARKER = "\n[... truncated by Poise: {dropped} more characters not kept]"


def query_of(state: Mapping[str, Any]) -> str:
    """The query as the pipeline asks it: the framed ``query`` the runner sets, else the sample's."""
    return state.get("query") or state["sample"].query


def build_messages(
    model: ModelHandle,
    text: str,
    *,
    image_url: str | None = None,
    system: Prompt | str | None = None,
) -> list[BaseMessage]:
    """A system message (if any) and one user message with the image before the text."""
    messages: list[BaseMessage] = []
    system_text = system.text if isinstance(system, Prompt) else system
    if system_text:
        messages.append(SystemMessage(content=system_text))
    if image_url:
        messages.append(
            HumanMessage(content=[model.image_part(image_url), {"type": "text", "text": text}])
        )
    else:
        messages.append(HumanMessage(content=text))
    return messages


def _text_of(message: AIMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(
        part.get("text", "") if isinstance(part, dict) else str(part) for part in content
    )


def _usage(message: AIMessage | None) -> tuple[int | None, int | None]:
    usage = getattr(message, "usage_metadata", None) or {}
    return usage.get("input_tokens"), usage.get("output_tokens")


async def ask(
    model: ModelHandle,
    stage: str,
    messages: list[BaseMessage],
    config: RunnableConfig | None = None,
    **request: Any,
) -> tuple[str, Call]:
    """Plain text call; ``request`` options (e.g. ``response_format``) go to the provider."""
    started = time.perf_counter()
    reply = await _send(
        model, messages, lambda: model.chat.ainvoke(messages, config=config, **request)
    )
    return _recorded(model, stage, messages, reply, started)


async def _send(
    model: ModelHandle, messages: list[BaseMessage], attempt: Callable[[], Awaitable[R]]
) -> R:
    """The one path of every model request: rate limits, then the retry layer.

    Each attempt (a retry too) first waits for the model's ``--max-rpm`` / ``--max-tpm``
    budget, outside the attempt's time limit; the provider's reported usage then corrects
    the token estimate (:mod:`poise.agents.ratelimit`).
    """
    limits = None
    if type(model.chat).__module__ == "poise.agents.models.batching":
        # A batched call waits hours for its batch: --timeout bounds one HTTP request.
        from poise.agents.models.batching import batch_call_limits

        limits = batch_call_limits()
    limiter = limiter_for(model.name)
    if limiter is None:
        return await call_with_retries(attempt, provider=model.provider, limits=limits)
    texts, images = message_parts(messages)
    max_tokens = getattr(model.chat, "max_tokens", None) or getattr(
        model.chat, "max_output_tokens", None
    )
    output = limiter.expected_output(max_tokens if isinstance(max_tokens, int) else None)
    estimate = estimate_tokens(texts, images, output)
    charged: list[int] = []

    async def wait_for_budget() -> None:
        charged.append(await limiter.acquire(estimate))

    reply = await call_with_retries(
        attempt, provider=model.provider, before=wait_for_budget, limits=limits
    )
    raw = reply.get("raw") if isinstance(reply, dict) else reply
    limiter.settle(charged[-1] if charged else estimate, *_usage(raw))
    return reply


def cap_text(text: str, limit: int = MAX_OUTPUT_CHARS) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters with a visible marker; and whether it was cut.

    A model that ignores ``max_tokens`` (or a hostile server) can send megabytes; each
    stage's output is copied into the next stage's prompt and into the record, so one 5 MB
    reply made an 80 MB records file. What is kept, forwarded and judged is the capped text.
    """
    if len(text) <= limit:
        return text, False
    return text[:limit] + TRUNCATION_MARKER.format(dropped=len(text) - limit), True


def _recorded(
    model: ModelHandle,
    stage: str,
    messages: list[BaseMessage],
    reply: AIMessage | None,
    started: float,
) -> tuple[str, Call]:
    """The reply's text (a tool call's arguments as JSON) and the Call for the record."""
    text = _text_of(reply) if reply is not None else ""
    if not text and reply is not None and reply.tool_calls:
        text = json.dumps(reply.tool_calls[0].get("args", {}))
    blocked = _block_reason(model, reply)
    if blocked:  # what a filter let through before it stopped is not the model's answer
        text = ""
    text, truncated = cap_text(text)
    tokens_in, tokens_out = _usage(reply)
    call = Call(
        stage=stage,
        model=model.name,
        messages=strip_images(messages),
        output=text,
        latency_s=round(time.perf_counter() - started, 4),
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        truncated=truncated,
        blocked=blocked,
    )
    return text, call


def _block_reason(model: ModelHandle, reply: AIMessage | None) -> str | None:
    """The provider's structured "my safety filter stopped this" signal, if it sent one."""
    if reply is None or model.provider != "google":
        return None
    from poise.agents.models.google import block_reason

    return block_reason(reply.response_metadata)


async def ask_structured(
    model: ModelHandle,
    stage: str,
    messages: list[BaseMessage],
    schema: type[T],
    config: RunnableConfig | None = None,
) -> tuple[T | None, Call]:
    """Structured call: native structured output where available, tolerant parse otherwise."""
    if model.provider in RESPONSE_FORMAT_PROVIDERS:
        text, call = await ask(
            model, stage, messages, config, response_format=_response_format(schema)
        )
        return _parse_into(text, schema, call)
    if model.provider in TOOL_PROVIDERS:
        return await _ask_with_tool(model, stage, messages, schema, config)
    text, call = await ask(model, stage, messages, config)
    return _parse_into(text, schema, call)


async def _ask_with_tool(
    model: ModelHandle,
    stage: str,
    messages: list[BaseMessage],
    schema: type[T],
    config: RunnableConfig | None,
) -> tuple[T | None, Call]:
    """Structured output through the provider's tool calling (with_structured_output)."""
    started = time.perf_counter()
    bound = model.structured(_json_schema(schema))
    result: dict[str, Any] = await _send(
        model, messages, lambda: bound.ainvoke(messages, config=config)
    )
    text, call = _recorded(model, stage, messages, result.get("raw"), started)
    parsed = result.get("parsed")
    if isinstance(parsed, dict):
        try:
            return schema.model_validate(parsed), call
        except ValidationError as exc:
            return _parse_into(text, schema, call, native_error=exc.errors()[0]["msg"])
    return _parse_into(text, schema, call, native_error=result.get("parsing_error"))


@cache
def _response_format(schema: type[BaseModel]) -> dict[str, Any]:
    """OpenAI's JSON-schema response format (not strict: our schemas have optional fields)."""
    body = _json_schema(schema)
    return {"type": "json_schema", "json_schema": {"name": body["title"], "schema": body}}


@cache
def _json_schema(schema: type[BaseModel]) -> dict[str, Any]:
    """The schema as JSON, titled with the class name (the name providers see)."""
    return {"title": schema.__name__, **schema.model_json_schema()}


def _parse_into(
    text: str, schema: type[T], call: Call, native_error: object = None
) -> tuple[T | None, Call]:
    try:
        return parse_json_object(text, schema), call
    except ParseFailure as exc:
        detail = (
            f"{exc}" if native_error is None else f"{exc} (provider: {str(native_error)[:200]})"
        )
        return None, call.model_copy(update={"parse_error": detail})
