"""What one model call leaves behind, for the record.

Every agent appends a :class:`Call` per model call to the pipeline state, so a record shows
each stage's input and output. Messages are stored without image bytes (an image becomes the
placeholder ``<image>``) so that records stay small and readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

IMAGE_PLACEHOLDER = "<image>"


class Call(BaseModel):
    stage: str = Field(description="pipeline stage, e.g. 'perception' or 'baseline'")
    model: str = Field(description="provider/model name of the model that answered")
    messages: list[dict[str, Any]] = Field(description="role + text; images as '<image>'")
    output: str = Field(default="", description="the model's raw text output")
    latency_s: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached: bool = Field(default=False, description="reused from an earlier run, not re-asked")
    parse_error: str | None = Field(default=None, description="why structured output failed")
    truncated: bool = Field(
        default=False, description="output was longer than Poise keeps and was cut (marked)"
    )
    blocked: str | None = Field(
        default=None,
        description="the provider's safety filter stopped this call, with its reason "
        "(e.g. 'finish:SAFETY', 'prompt:PROHIBITED_CONTENT'); the output is then empty",
    )


def response_blocked(calls: Sequence[Call | dict[str, Any]]) -> str | None:
    """The block reason of the call the final response came from (the last one), else None.

    Every pipeline answers with its last call, so a judge that must tell a provider block
    from a refusal in words reads this rather than the (empty) text. Plain dicts (a record
    read as JSON) are accepted too.
    """
    if not calls:
        return None
    last = calls[-1]
    return last.get("blocked") if isinstance(last, dict) else last.blocked


def strip_images(messages: list[Any]) -> list[dict[str, Any]]:
    """LangChain messages -> plain dicts with text only, images replaced by a placeholder."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = getattr(message, "type", None) or message.get("role", "user")
        content = getattr(message, "content", None)
        if content is None and isinstance(message, dict):
            content = message.get("content", "")
        if isinstance(content, list):
            parts = []
            for part in content:
                if isinstance(part, str):
                    parts.append(part)
                elif part.get("type") == "text":
                    parts.append(part.get("text", ""))
                else:
                    parts.append(IMAGE_PLACEHOLDER)
            content = "\n".join(parts)
        out.append({"role": role, "content": content})
    return out
