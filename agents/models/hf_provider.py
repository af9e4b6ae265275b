"""``hf/<repo or path>``: the provider entry for local transformers models.

Registering is all this module does: the model class (:mod:`poise.agents.models.hf`, torch,
transformers, LangChain) is imported when a model is built, so listing providers stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from poise.agents.models.registry import register_provider

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

# The model's own default (poise.agents.models.hf.DEFAULT_MAX_NEW_TOKENS; a test checks they
# agree), written here so that registering does not import the model module.
DEFAULT_MAX_NEW_TOKENS = 512


@register_provider(
    "hf",
    "local transformers vision-language model (one GPU, no server)",
    example="hf/Qwen/Qwen2-VL-2B-Instruct",
    defaults={"temperature": 0.0, "max_tokens": DEFAULT_MAX_NEW_TOKENS},
)
def make_hf(model: str, *, base_url: str | None = None, **params: Any) -> BaseChatModel:
    """Load ``model`` (a hub repo id or a local directory) in this process."""
    from poise.agents.models import hf

    return hf.make_hf(model, base_url=base_url, **params)
