"""A chat model together with the name it was built from.

Agents need three things from a model: to call it, to name it in the record, and to put an
image into a message in the provider's own format. ``ModelHandle`` bundles those, with the
sampling parameters the user set for it (``params``; empty means the provider's defaults),
which the stage cache keys on: two handles of one model at two temperatures answer differently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel

from poise.agents.models.registry import MODEL_PARAMS, get_chat_model, split_model_name


@dataclass(frozen=True)
class ModelHandle:
    name: str  # provider/model, as the user wrote it
    chat: BaseChatModel
    params: dict[str, Any] = field(
        default_factory=dict, hash=False
    )  # user-set temperature, top_p, ...
    _structured: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def structured(self, schema: dict[str, Any]) -> Any:
        """The chat model bound to a JSON schema (raw reply included), built once per schema.

        Building the bound runnable costs more CPU than sending a request; agents ask for
        the same few schemas thousands of times in a run.
        """
        key = schema["title"]
        if key not in self._structured:
            self._structured[key] = self.chat.with_structured_output(schema, include_raw=True)
        return self._structured[key]

    @property
    def provider(self) -> str:
        return self.name.partition("/")[0]

    def image_part(self, data_url: str) -> dict[str, Any]:
        """An image content block in the provider's native format."""
        if self.provider == "anthropic":
            header, _, data = data_url.partition(",")
            media_type = header.removeprefix("data:").split(";")[0] or "image/png"
            return {
                "type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data},
            }
        return {"type": "image_url", "image_url": {"url": data_url}}


def load_model(name: str, *, base_url: str | None = None, **params: Any) -> ModelHandle:
    """Build a :class:`ModelHandle` from a ``provider/model`` name.

    ``params`` (temperature, top_p, max_tokens, seed, or a provider's own load options) go
    to the provider's factory; the sampling ones are kept on the handle as well.
    """
    split_model_name(name)  # one-line error for a malformed or unknown name, before any import
    sampling = {k: v for k, v in sorted(params.items()) if k in MODEL_PARAMS}
    return ModelHandle(
        name=name, chat=get_chat_model(name, base_url=base_url, **params), params=sampling
    )
