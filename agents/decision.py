"""Safety decision agent: comply, comply with a note, or refuse.

Three outcomes rather than two because the benchmarks reward different behaviour: MOSSBench
penalises refusing benign requests, MSSBench rewards pointing out a situational risk. A
"note" lets the pipeline help and warn at once instead of trading one failure for the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, field_validator

from poise.agents import intent as intent_agent
from poise.agents import perception as perception_agent
from poise.agents.invoke import ask_structured, build_messages, query_of
from poise.agents.models.handle import ModelHandle
from poise.agents.prompts import Prompt, get_prompt

STAGE = "decision"
DECISIONS = ("comply", "comply_with_note", "refuse")
# Unparseable output: never a silent refusal of a possibly benign request, never a silent
# compliance without a note. Helping with a note is the only outcome that avoids both.
FALLBACK_DECISION = "comply_with_note"


def normalise_decision(value: Any) -> Any:
    """ "Comply with note", "comply-with-note" and "REFUSE." become the schema's values."""
    if not isinstance(value, str):
        return value
    return "_".join(value.strip().strip(".").lower().replace("-", " ").split())


class Decision(BaseModel):
    """The decision stage's structured output."""

    decision: Literal["comply", "comply_with_note", "refuse"]
    risk: str = ""
    rationale: str = ""

    @field_validator("decision", mode="before")
    @classmethod
    def _normalise(cls, value: Any) -> Any:
        return normalise_decision(value)


@cache
def _prompt() -> Prompt:
    return get_prompt(STAGE, "stages")


def fallback() -> dict[str, Any]:
    """The documented outcome for unparseable output (see ``FALLBACK_DECISION``)."""
    return Decision(decision=FALLBACK_DECISION).model_dump()


async def decide(
    state: Mapping[str, Any],
    model: ModelHandle,
    system: Prompt | None = None,
    config: RunnableConfig | None = None,
) -> dict[str, Any]:
    """Weigh query, perception and intent; returns ``{"decision": {...}, "calls": [call]}``.

    The intent is read only through :func:`poise.agents.intent.render`, so an oracle intent
    (the benchmark's intent text and harmfulness, no verdict or confidence) reaches the prompt
    as ground truth and the safety question stays this stage's to answer.
    """
    text = _prompt().render(
        query=query_of(state),
        perception=perception_agent.render(state.get("perception") or {}),
        intent=intent_agent.render(state.get("intent") or {}),
    )
    messages = build_messages(model, text, system=system)
    parsed, call = await ask_structured(model, STAGE, messages, Decision, config)
    if parsed is not None:
        output = parsed.model_dump()
    else:
        output = {**fallback(), "parse_error": call.parse_error}
    return {"decision": output, "calls": [call]}
