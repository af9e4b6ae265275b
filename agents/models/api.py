"""API providers: OpenAI, Anthropic and any OpenAI-compatible server, via LangChain.

Anthropic goes through ``langchain.chat_models.init_chat_model``. ``openai/`` and
``openai-compatible/`` go through :class:`poise.agents.models.openai_chat.FastChatOpenAI`, a
LangChain chat model that builds the same request as ``ChatOpenAI`` and sends it with one POST
(against a fast local server the SDK's layers cost more client CPU than the call itself; see
that module); models or parameters it does not cover (reasoning models whose parameters
langchain_openai rewrites, parameters outside its list) still get ``ChatOpenAI``, and
``POISE_OPENAI_CLIENT=langchain`` forces ``ChatOpenAI`` for every one. Retries are not: the SDKs are built with
``max_retries=0`` and :mod:`poise.agents.retry` is the one retry layer (at most
``--max-retries + 1`` attempts of at most ``--timeout`` seconds each).

Keys go only where the user sent them. ``openai-compatible/`` sends its own key
(``POISE_OPENAI_COMPATIBLE_KEY``) or none, never ``OPENAI_API_KEY``: a local or third-party
server must not receive the OpenAI key. ``openai/`` and ``anthropic/`` with a custom base URL
send their key to that host because the user named it; Poise says so once on stderr.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING

from poise.agents.models.registry import register_provider
from poise.agents.retry import call_limits
from poise.errors import PoiseError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

# Every provider answers at most this many tokens unless told otherwise: one unbounded
# reply is copied into each later stage's prompt and into the record. 1024 is the MOSSBench
# paper's setting for Claude, and far above what a refusal or an answer to its questions needs.
DEFAULT_MAX_TOKENS = 1024
# What every API model is asked when the user sets nothing (--model-param overrides these).
API_DEFAULTS = {"temperature": 0.0, "max_tokens": DEFAULT_MAX_TOKENS}
NO_KEY = "EMPTY"  # what an OpenAI-style client must send when a server takes no key
_noted_hosts: set[str] = set()


def _require_key(variable: str, provider: str) -> str:
    key = os.environ.get(variable, "").strip()
    if not key:
        raise PoiseError(f"{provider} needs an API key: set the environment variable {variable}")
    return key


def _init(model: str, provider: str, **params) -> BaseChatModel:
    """The LangChain chat model; sampling parameters (temperature, top_p, max_tokens, seed)
    become the client's fields, so every request carries them."""
    from langchain.chat_models import init_chat_model

    for key, value in API_DEFAULTS.items():
        params.setdefault(key, value)
    params["max_retries"] = 0  # poise.agents.retry is the one retry layer
    params.setdefault("timeout", call_limits().timeout_s)
    return init_chat_model(model, model_provider=provider, **params)


# Models whose parameters langchain_openai rewrites (o1: temperature 1; gpt-5: no temperature;
# pro models: the Responses API): they keep ChatOpenAI, which knows those rules.
_LANGCHAIN_ONLY_MODELS = re.compile(r"^(o\d|gpt-[5-9])", re.IGNORECASE)
_FAST_FIELDS = {"max_tokens", "timeout", "max_retries"}


def _openai_chat(model: str, *, api_key: str, base_url: str | None, **params) -> BaseChatModel:
    """FastChatOpenAI where it sends exactly what ChatOpenAI would, ChatOpenAI otherwise."""
    from poise.agents.models.openai_chat import BODY_PARAMS

    fast = (
        os.environ.get("POISE_OPENAI_CLIENT", "").strip().lower() != "langchain"
        and not _LANGCHAIN_ONLY_MODELS.match(model)
        and set(params) <= BODY_PARAMS | _FAST_FIELDS
    )
    if not fast:
        if base_url:
            params["base_url"] = base_url
        return _init(
            model, "openai", api_key=api_key, http_async_client=_own_async_client(), **params
        )
    from pydantic import SecretStr

    from poise.agents.models.openai_chat import FastChatOpenAI

    for key, value in API_DEFAULTS.items():
        params.setdefault(key, value)
    params.pop("max_retries", None)  # it never retries: poise.agents.retry is the one layer
    max_tokens = params.pop("max_tokens")
    timeout = params.pop("timeout", None) or call_limits().timeout_s
    return FastChatOpenAI(
        model_name=model,
        base_url=base_url or "https://api.openai.com/v1",
        api_key=SecretStr(api_key),
        max_tokens=max_tokens,
        timeout=timeout,
        body_params={k: (float(v) if k == "temperature" else v) for k, v in params.items()},
    )


def note_custom_host(provider: str, variable: str, base_url: str) -> None:
    """Say once per host that ``provider``'s key goes to a server the user named."""
    from poise.secrets import redact_url

    shown = redact_url(base_url) or base_url
    if shown in _noted_hosts:
        return
    _noted_hosts.add(shown)
    print(
        f"note: {provider}/ sends {variable} to {shown} (the base URL you gave); "
        "use openai-compatible/ for servers that must not receive it",
        file=sys.stderr,
    )


def _own_async_client() -> object:
    """A fresh async HTTP client per model instance.

    langchain-openai otherwise shares one cached client per base URL across instances; its
    connection pool is bound to the event loop that first used it, so a second run in a new
    loop (``asyncio.run`` twice, as tests and notebooks do) would fail "Event loop is closed".
    """
    import openai

    return openai.DefaultAsyncHttpxClient()


@register_provider(
    "openai",
    "OpenAI chat models (OPENAI_API_KEY)",
    example="openai/gpt-4o",
    defaults=API_DEFAULTS,
)
def make_openai(model: str, *, base_url: str | None = None, **params) -> BaseChatModel:
    key = _require_key("OPENAI_API_KEY", "openai")
    base_url = base_url or os.environ.get("OPENAI_BASE_URL")  # the SDK would read it anyway
    if base_url:
        note_custom_host("openai", "OPENAI_API_KEY", base_url)
    return _openai_chat(model, api_key=key, base_url=base_url, **params)


@register_provider(
    "anthropic",
    "Anthropic Claude models (ANTHROPIC_API_KEY)",
    example="anthropic/claude-3-opus-20240229",
    defaults=API_DEFAULTS,
)
def make_anthropic(model: str, *, base_url: str | None = None, **params) -> BaseChatModel:
    if params.get("seed") is not None:
        # The Messages API has no seed; sending one would fail on every call.
        raise PoiseError(
            "anthropic models take no seed: drop seed from --model-param / --stage-model-param "
            "(they take temperature, top_p, max_tokens)"
        )
    params.pop("seed", None)
    key = _require_key("ANTHROPIC_API_KEY", "anthropic")
    base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL")  # the SDK would read it anyway
    if base_url:
        params["base_url"] = base_url
        note_custom_host("anthropic", "ANTHROPIC_API_KEY", base_url)
    return _init(model, "anthropic", api_key=key, **params)


@register_provider(
    "openai-compatible",
    "any OpenAI-compatible server: vLLM, LM Studio, llama.cpp (--base-url; key optional)",
    example="openai-compatible/Qwen/Qwen2-VL-7B-Instruct",
    defaults=API_DEFAULTS,
)
def make_openai_compatible(model: str, *, base_url: str | None = None, **params) -> BaseChatModel:
    base_url = base_url or os.environ.get("OPENAI_BASE_URL")
    if not base_url:
        raise PoiseError(
            "openai-compatible models need a server: pass --base-url http://HOST:PORT/v1 "
            "(or set OPENAI_BASE_URL)"
        )
    # Local servers usually accept any key; a real one goes in POISE_OPENAI_COMPATIBLE_KEY.
    # Never OPENAI_API_KEY: that key belongs to api.openai.com, not to whatever server this is.
    key = os.environ.get("POISE_OPENAI_COMPATIBLE_KEY", "").strip() or NO_KEY
    return _openai_chat(model, api_key=key, base_url=base_url, **params)
