"""A lean OpenAI chat-completions client: the hot path of ``openai/`` and ``openai-compatible/``.

Why: against a fast local server (vLLM at tens of milliseconds per call) the client is the
bottleneck. Measured (``poise bench pipeline``, high-concurrency profile) most of the client's
CPU per call went to layers that add nothing to one non-streaming request: langchain_core's
callback set-up, langchain_openai's message conversion and its thread-pool hop, the openai
SDK's recursive ``transform`` of the params (the base64 image included), its request-option
models and ``parse()`` into pydantic models. This class builds the same body and headers
itself and sends them with one POST through the SDK's own HTTP client library (httpx2, with
the SDK's default timeout, pool limits and redirects); openai and langchain_openai are imported
only on an error path or when something needs the LangChain model (batching, tool binding).

What stays the same as ``ChatOpenAI`` (tests/test_openai_chat.py checks each):

* the body (model, ``stream: false``, messages, ``max_completion_tokens``, temperature and the
  other sampling parameters, ``response_format`` as given) and the SDK's headers;
* no retries of its own (:mod:`poise.agents.retry` is the one retry layer); ``timeout`` bounds
  each HTTP operation as the SDK's timeout does;
* errors: HTTP errors become the SDK's status errors (message ``Error code: 429 - ...``, the
  response attached so ``retry-after`` is honoured), then langchain_openai's own wrappers;
  transport failures become ``APIConnectionError`` / ``APITimeoutError``; a structured reply cut
  by ``length`` / ``content_filter`` raises what ``parse()`` raises;
* the AIMessage fields Poise reads: ``content`` (``""`` for null), ``tool_calls``,
  ``usage_metadata``, ``response_metadata``.

LangChain observability is kept: ``ainvoke`` takes the direct path only when nothing could see
the call (no callbacks, no tracing, no cache, no rate limiter, ``_agenerate`` not overridden as
batching does); otherwise the whole ``BaseChatModel`` path runs.
"""

from __future__ import annotations

import json
import os
import platform
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, PrivateAttr, SecretStr

from poise.agents.models import tls

try:  # orjson comes with langsmith on CPython; json otherwise (same bytes on the wire)
    import orjson

    _dumps = orjson.dumps
    _loads = orjson.loads
except ImportError:  # pragma: no cover - depends on the environment

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()

    _loads = json.loads

# Body fields this client sends as ChatOpenAI does (only when set). Anything else makes
# poise.agents.models.api build ChatOpenAI instead, so no parameter is silently dropped.
BODY_PARAMS = frozenset({"temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"})
_USAGE_FIELDS = dict.fromkeys(
    (
        "completion_tokens",
        "prompt_tokens",
        "total_tokens",
        "completion_tokens_details",
        "prompt_tokens_details",
    )
)
_SIMPLE_PART_TYPES = frozenset({"text", "image_url"})


def _simple_content(content: Any) -> bool:
    if isinstance(content, str):
        return True
    return isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") in _SIMPLE_PART_TYPES for p in content
    )


def message_dicts(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    """OpenAI chat messages: system/user text and image_url parts directly (as langchain_openai
    writes them), anything else through langchain_openai's own converter."""
    out = []
    for m in messages:
        kind = type(m)
        if kind is SystemMessage and isinstance(m.content, str) and not m.name:
            out.append({"content": m.content, "role": "system"})
        elif kind is HumanMessage and _simple_content(m.content) and not m.name:
            out.append({"content": m.content, "role": "user"})
        else:
            from langchain_openai.chat_models.base import _convert_message_to_dict

            out.append(_convert_message_to_dict(m))
    return out


def usage_metadata(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """As langchain_openai's ``_create_usage_metadata`` builds it (tokens feed the records)."""
    if not usage:
        return None
    input_tokens = usage.get("prompt_tokens") or 0
    output_tokens = usage.get("completion_tokens") or 0
    total_tokens = usage.get("total_tokens") or input_tokens + output_tokens
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    input_details = {
        "audio": prompt_details.get("audio_tokens"),
        "cache_read": prompt_details.get("cached_tokens"),
    }
    output_details = {
        "audio": completion_details.get("audio_tokens"),
        "reasoning": completion_details.get("reasoning_tokens"),
    }
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": total_tokens,
        "input_token_details": {k: v for k, v in input_details.items() if v is not None},
        "output_token_details": {k: v for k, v in output_details.items() if v is not None},
    }


def sdk_headers(api_key: str, timeout: float) -> dict[str, str]:
    """The headers the openai SDK sends (its default and auth headers), without importing it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        sdk_version = version("openai")
    except PackageNotFoundError:  # pragma: no cover
        sdk_version = "unknown"
    system = platform.system()
    machine = platform.machine().lower()
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "User-Agent": f"AsyncOpenAI/Python {sdk_version}",
        "X-Stainless-Lang": "python",
        "X-Stainless-Package-Version": sdk_version,
        "X-Stainless-OS": "MacOS" if system == "Darwin" else system,
        "X-Stainless-Arch": {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64"}.get(
            machine, machine
        ),
        "X-Stainless-Runtime": platform.python_implementation(),
        "X-Stainless-Runtime-Version": platform.python_version(),
        "X-Stainless-Async": "async:asyncio",
        "Authorization": f"Bearer {api_key}",
        "X-Stainless-Raw-Response": "true",
        "X-Stainless-Retry-Count": "0",
        "X-Stainless-Read-Timeout": str(float(timeout)),
    }
    for variable, header in (
        ("OPENAI_ORG_ID", "OpenAI-Organization"),
        ("OPENAI_PROJECT_ID", "OpenAI-Project"),
    ):
        if os.environ.get(variable):  # the SDK reads these for every client
            headers[header] = os.environ[variable]
    return headers


def default_http_client() -> Any:
    """``openai.DefaultAsyncHttpxClient``'s settings, without importing openai (0.3 s)."""
    import httpx2

    return httpx2.AsyncClient(
        verify=tls.context(),
        timeout=httpx2.Timeout(timeout=600.0, connect=5.0),
        limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=100),
        follow_redirects=True,
    )


class FastChatOpenAI(BaseChatModel):
    """OpenAI chat completions, non-streaming, one request per call, no retries of its own."""

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    model_name: str
    base_url: str = "https://api.openai.com/v1"
    api_key: SecretStr
    max_tokens: int | None = 1024
    timeout: float = 60.0
    body_params: dict[str, Any] = {}  # temperature, top_p, seed, ... (see BODY_PARAMS)
    http_async_client: Any = None

    _sdk: Any = PrivateAttr(default=None)
    _lc: Any = PrivateAttr(default=None)
    _headers: dict[str, str] = PrivateAttr(default_factory=dict)
    _url: str = PrivateAttr(default="")

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._headers = sdk_headers(self.api_key.get_secret_value(), self.timeout)
        self._url = self.base_url.rstrip("/") + "/chat/completions"
        if self.http_async_client is None:
            # One pool per model instance: a pool is bound to the loop that first used it.
            self.http_async_client = default_http_client()

    @property
    def temperature(self) -> float | None:
        return self.body_params.get("temperature")

    @property
    def _llm_type(self) -> str:
        return "openai-chat"  # what batching and LangChain's tracing key on

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, **self.body_params}

    # -- the LangChain model, for what is not the hot path ----------------------------------

    def langchain_model(self) -> Any:
        """The ``ChatOpenAI`` this client stands for (same key, URL, parameters, pool)."""
        if self._lc is None:
            from langchain_openai import ChatOpenAI

            self._lc = ChatOpenAI(
                model=self.model_name,
                api_key=self.api_key,
                base_url=self.base_url,
                max_tokens=self.max_tokens,
                timeout=self.timeout,
                max_retries=0,
                http_async_client=self.http_async_client,
                **self.body_params,
            )
        return self._lc

    # Batching (poise.agents.models.batching) builds its JSONL lines and reads the replies
    # with the provider's LangChain model: same payload and parser as a direct call.
    def _get_request_payload(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.langchain_model()._get_request_payload(*args, **kwargs)

    def _use_responses_api(self, payload: dict[str, Any]) -> bool:
        return self.langchain_model()._use_responses_api(payload)

    def _create_chat_result(self, *args: Any, **kwargs: Any) -> ChatResult:
        return self.langchain_model()._create_chat_result(*args, **kwargs)

    @property
    def root_async_client(self) -> Any:
        return self.langchain_model().root_async_client

    def bind_tools(self, *args: Any, **kwargs: Any) -> Any:
        return self.langchain_model().bind_tools(*args, **kwargs)

    def with_structured_output(self, *args: Any, **kwargs: Any) -> Any:
        return self.langchain_model().with_structured_output(*args, **kwargs)

    # -- the request ------------------------------------------------------------------------

    def payload(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """The body ChatOpenAI would send (key order aside)."""
        body: dict[str, Any] = {"model": self.model_name, "stream": False}
        body.update({k: v for k, v in self.body_params.items() if v is not None})
        body["messages"] = message_dicts(messages)
        if self.max_tokens is not None:
            body["max_completion_tokens"] = self.max_tokens
        if stop:
            body["stop"] = stop
        for key, value in kwargs.items():
            if key == "response_format" and not isinstance(value, dict):
                raise TypeError("FastChatOpenAI takes response_format as a dict (JSON schema)")
            body[key] = value
        return body

    async def _post(self, body: bytes) -> Any:
        import httpx2

        try:
            return await self.http_async_client.post(
                self._url, content=body, headers=self._headers, timeout=self.timeout
            )
        except httpx2.TimeoutException as exc:
            import openai

            raise openai.APITimeoutError(request=exc.request) from exc
        except httpx2.TransportError as exc:
            import openai

            raise openai.APIConnectionError(request=exc.request) from exc

    def _status_error(self, response: Any) -> Exception:
        """The SDK's own error for this response (class, message, body, headers)."""
        if self._sdk is None:
            import openai

            self._sdk = openai.AsyncOpenAI(
                api_key=self.api_key.get_secret_value(),
                base_url=self.base_url,
                max_retries=0,
                timeout=self.timeout,
                http_client=self.http_async_client,
            )
        return self._sdk._make_status_error_from_response(response)

    async def acomplete(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> AIMessage:
        structured = "response_format" in kwargs
        body = _dumps(self.payload(messages, stop, **kwargs))
        try:
            response = await self._post(body)
            if response.status_code >= 400:
                raise self._status_error(response)
        except Exception as exc:
            import openai  # every error raised above is an openai one (imported already)
            from langchain_openai.chat_models.base import (
                _handle_openai_api_error,
                _handle_openai_bad_request,
            )

            if isinstance(exc, openai.BadRequestError):
                _handle_openai_bad_request(exc)
            if isinstance(exc, openai.APIError):
                _handle_openai_api_error(exc)
            raise
        data = _loads(response.content)
        if not isinstance(data, dict) or data.get("error"):
            raise ValueError(data.get("error") if isinstance(data, dict) else data)
        choice = data["choices"][0]
        if structured and choice.get("finish_reason") in ("length", "content_filter"):
            import openai
            from openai.types.chat import ChatCompletion

            completion = ChatCompletion.construct(**data)
            if choice["finish_reason"] == "length":
                raise openai.LengthFinishReasonError(completion=completion)
            raise openai.ContentFilterFinishReasonError(completion=completion)
        message = self._message(data, choice)
        if structured:  # parse() with a dict schema: ChatOpenAI records parsed=None
            message.additional_kwargs = {"parsed": None, **message.additional_kwargs}
        return message

    def _message(self, data: dict[str, Any], choice: dict[str, Any]) -> AIMessage:
        raw = choice.get("message") or {}
        usage = data.get("usage")
        if isinstance(usage, dict):  # as the SDK's CompletionUsage.model_dump() shows it
            usage = {**_USAGE_FIELDS, **usage}
        meta = {
            "token_usage": usage,
            "model_provider": "openai",
            "model_name": data.get("model", self.model_name),
            "system_fingerprint": data.get("system_fingerprint"),
            "id": data.get("id"),
            "finish_reason": choice.get("finish_reason"),
            "logprobs": choice.get("logprobs"),
        }
        if data.get("service_tier"):
            meta["service_tier"] = data["service_tier"]
        if raw.get("tool_calls") or raw.get("function_call") or raw.get("audio"):
            from langchain_openai.chat_models.base import _convert_dict_to_message

            message = _convert_dict_to_message(raw)
            message.response_metadata = {**message.response_metadata, **meta}
            message.usage_metadata = usage_metadata(usage)
            return message
        extra = {"refusal": raw.get("refusal")} if "refusal" in raw else {}
        return AIMessage(
            content=raw.get("content") or "",
            additional_kwargs=extra,
            response_metadata=meta,
            usage_metadata=usage_metadata(usage),
        )

    # -- LangChain interface ----------------------------------------------------------------

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = await self.acomplete(messages, stop, **kwargs)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        raise NotImplementedError("FastChatOpenAI is async only (Poise calls ainvoke)")

    def _unobserved(self, config: Any) -> bool:
        """True when no callback, tracer, cache or rate limiter could see this call."""
        if type(self)._agenerate is not FastChatOpenAI._agenerate:
            return False  # a subclass (batching) answers another way
        if self.rate_limiter is not None or self.callbacks or self.cache not in (None, False):
            return False
        from langchain_core.globals import get_llm_cache

        if self.cache is None and get_llm_cache() is not None:
            return False
        from langchain_core.tracers.context import _tracing_v2_is_enabled

        if _tracing_v2_is_enabled():
            return False
        callbacks = (config or {}).get("callbacks")
        if callbacks is None:
            return True
        if isinstance(callbacks, list):
            return not callbacks
        return not getattr(callbacks, "handlers", True)

    async def ainvoke(
        self, input: Any, config: Any = None, *, stop: list[str] | None = None, **kwargs: Any
    ) -> AIMessage:
        if self._unobserved(config):
            return await self.acomplete(self._convert_input(input).to_messages(), stop, **kwargs)
        return await super().ainvoke(input, config, stop=stop, **kwargs)
