"""Intent agent: the benign and the harmful reading of a request, given what the image shows.

Oversensitivity comes from reacting to surface features; situational risk comes from missing
the scene. Asking for both readings explicitly, from a text account of the image, makes the
model weigh them against each other and leaves a record of which reading it chose and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field, field_validator

from poise.agents import perception as perception_agent
from poise.agents.invoke import ask_structured, build_messages, query_of
from poise.agents.models.handle import ModelHandle
from poise.agents.prompts import Prompt, get_prompt

STAGE = "intent"
RATIONALE_LIMIT = 1000  # characters of unparsed output kept as the fallback's rationale


class Intent(BaseModel):
    """The intent stage's structured output."""

    benign_reading: str = ""
    harmful_reading: str = ""
    verdict: Literal["benign", "harmful", "ambiguous"]
    confidence: float = Field(ge=0.0, le=1.0)
    rationale: str = ""

    @field_validator("verdict", mode="before")
    @classmethod
    def _normalise_verdict(cls, value: Any) -> Any:
        """Accept "Benign" or " harmful." rather than discard an otherwise good answer."""
        return value.strip().strip(".").lower() if isinstance(value, str) else value

    @field_validator("confidence", mode="before")
    @classmethod
    def _percent_to_fraction(cls, value: Any) -> Any:
        """Models sometimes answer 85 (percent) where 0.85 was asked for."""
        if isinstance(value, int | float) and 1 < value <= 100:
            return value / 100
        return value


@cache
def _prompt() -> Prompt:
    return get_prompt(STAGE, "stages")


def fallback(raw: str) -> dict[str, Any]:
    """Unparseable output: no verdict ("ambiguous", confidence 0), the prose kept as rationale.

    The prose often still holds the model's reasoning, which the decision stage can read.
    """
    rationale = raw.strip()[:RATIONALE_LIMIT]
    return Intent(verdict="ambiguous", confidence=0.0, rationale=rationale).model_dump()


def render(intent: Mapping[str, Any]) -> str:
    """The intent output as the text the decision prompt quotes.

    An oracle intent (``source == "oracle"``, see ``poise.graphs.state.oracle_prefill``) has
    no verdict and no confidence: it is the benchmark's statement of what the user wants and,
    where the benchmark defines it, whether that aim is harmful. It is rendered as such, with
    the safety question left to the reader (a missing verdict must not read as "ambiguous").
    """
    if intent.get("source") == "oracle":
        return render_oracle(intent)
    confidence = intent.get("confidence")
    confidence_text = f"{confidence:.2f}" if isinstance(confidence, int | float) else "unknown"
    return "\n".join(
        [
            f"Verdict: {intent.get('verdict', 'ambiguous')} (confidence {confidence_text})",
            f"Benign reading: {intent.get('benign_reading') or '(not given)'}",
            f"Harmful reading: {intent.get('harmful_reading') or '(not given)'}",
            f"Rationale: {intent.get('rationale') or '(not given)'}",
        ]
    )


def render_oracle(intent: Mapping[str, Any]) -> str:
    """Ground-truth intent: the user's aim and its harmfulness if known, never a verdict."""
    text = (
        intent.get("intent_text")
        or intent.get("benign_reading")
        or intent.get("harmful_reading")
        or "(not given)"
    )
    harmfulness = intent.get("harmfulness")
    lines = [f"The user's actual intent (ground truth): {text}"]
    if harmfulness == "benign":
        lines.append(
            "This aim is benign in itself. Whether helping is safe in the situation shown "
            "is still for you to judge from the image and the request."
        )
    elif harmfulness == "harmful":
        lines.append("This aim is harmful.")
    else:
        lines.append("Whether helping is safe is for you to judge from the image and the request.")
    return "\n".join(lines)


async def infer_intent(
    state: Mapping[str, Any],
    model: ModelHandle,
    system: Prompt | None = None,
    config: RunnableConfig | None = None,
) -> dict[str, Any]:
    """Read the query against the perception; returns ``{"intent": {...}, "calls": [call]}``.

    Text only: the stage reasons from the perception stage's account (or the oracle's), so a
    diagnosis run that injects ground-truth perception fully controls what this stage sees.
    """
    text = _prompt().render(
        query=query_of(state),
        perception=perception_agent.render(state.get("perception") or {}),
    )
    messages = build_messages(model, text, system=system)
    parsed, call = await ask_structured(model, STAGE, messages, Intent, config)
    if parsed is not None:
        output = parsed.model_dump()
    else:
        output = {**fallback(call.output), "parse_error": call.parse_error}
    return {"intent": output, "calls": [call]}
