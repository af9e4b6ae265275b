"""Google Gemini models (``google/gemini-2.0-flash``) through LangChain's Google GenAI integration.

Built with ``init_chat_model(..., model_provider="google_genai")`` like the other API
providers (``api.py``), with four Google-specific choices, each for a reason:

- ``model_provider`` is named: from the model name alone LangChain would pick Vertex AI.
- ``vertexai=False`` and an explicit ``base_url``: a stray ``GOOGLE_GENAI_USE_VERTEXAI`` or
  ``LANGSMITH_GATEWAY`` in the environment must not send ``GOOGLE_API_KEY`` anywhere but
  Google (or the host the user named with ``--base-url``, which Poise announces once).
- ``max_retries=1``: the SDK counts *attempts*, and one attempt is no SDK retry.
  :mod:`poise.agents.retry` stays the one retry layer (it reads Google's 429 and its
  ``retryDelay``). ``0`` would mean "the SDK default" in some google-genai versions.
- The SDK's "empty response" warning (a multi-line dump on every safety block) is silenced:
  the block is recorded on the call instead (:func:`block_reason`, ``Call.blocked``).

Safety settings are left at Google's defaults: the benchmarks measure the provider as shipped.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from poise.agents.models.api import API_DEFAULTS, note_custom_host
from poise.agents.models.registry import register_provider
from poise.agents.retry import call_limits
from poise.errors import PoiseError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

KEY_VARIABLE = "GOOGLE_API_KEY"
GOOGLE_BASE_URL = "https://generativelanguage.googleapis.com/"
_SDK_ATTEMPTS = 1  # one attempt per request: no SDK retries

# Finish reasons meaning "Google's filter stopped the answer" (not STOP / MAX_TOKENS).
# RECITATION (a copyright stop) is left out: it is not a safety decision.
BLOCK_FINISH_REASONS = frozenset(
    {
        "SAFETY",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
    }
)


def _google_key() -> str:
    key = os.environ.get(KEY_VARIABLE, "").strip()
    if not key:
        raise PoiseError(f"google needs an API key: set the environment variable {KEY_VARIABLE}")
    return key


@register_provider(
    "google",
    f"Google Gemini models via the Gemini API ({KEY_VARIABLE})",
    example="google/gemini-2.0-flash",
    defaults=API_DEFAULTS,
)
def make_google(model: str, *, base_url: str | None = None, **params: Any) -> BaseChatModel:
    from langchain.chat_models import init_chat_model

    key = _google_key()
    base_url = base_url or os.environ.get("GOOGLE_GEMINI_BASE_URL")  # the SDK would read it
    if base_url:
        note_custom_host("google", KEY_VARIABLE, base_url)
    for name, value in API_DEFAULTS.items():  # temperature 0, max_tokens 1024; seed and top_p
        params.setdefault(name, value)  # pass through (generationConfig.seed / topP)
    params.setdefault("timeout", call_limits().timeout_s)
    params["max_retries"] = _SDK_ATTEMPTS
    logging.getLogger("langchain_google_genai.chat_models").addHandler(logging.NullHandler())
    return init_chat_model(
        model,
        model_provider="google_genai",
        api_key=key,
        base_url=base_url or GOOGLE_BASE_URL,
        vertexai=False,
        **params,
    )


def block_reason(response_metadata: dict[str, Any] | None) -> str | None:
    """Why Google blocked an answer, from LangChain's ``response_metadata``; None if it did not.

    ``prompt:REASON`` when the prompt itself was blocked (no candidate at all,
    ``promptFeedback.blockReason``), ``finish:REASON`` when the answer was stopped
    (``finishReason`` SAFETY, PROHIBITED_CONTENT, ...). The reasons are Google's own names.
    """
    meta = response_metadata or {}
    feedback = meta.get("prompt_feedback") or {}
    reason = feedback.get("block_reason") if isinstance(feedback, dict) else None
    if reason:  # a google.genai str enum (BlockedReason.SAFETY) or its value
        return "prompt:" + str(getattr(reason, "value", reason))
    finish = meta.get("finish_reason")
    finish = str(getattr(finish, "value", finish)) if finish else None
    if finish in BLOCK_FINISH_REASONS:
        return "finish:" + finish
    return None
