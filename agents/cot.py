"""The one-call chain-of-thought agent (the MSSBench paper's 1-step CoT baseline).

One structured reply describes the image, infers the intent, decides and answers; the
pipeline ``cot`` (:mod:`poise.graphs.cot`) runs it as its only stage. For diagnosis, oracle
perception and intent are stated before the task (there is no stage to replace).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, field_validator

from poise.agents.decision import normalise_decision
from poise.agents.invoke import ask_structured, build_messages, query_of
from poise.agents.models.handle import ModelHandle
from poise.agents.oracles import with_oracles
from poise.agents.prompts import Prompt, get_prompt

STAGE = "cot"


class CotReply(BaseModel):
    """The one structured reply. Only ``answer`` is required: it is what the user sees.

    ``decision`` is free text (normalised) rather than a closed set, so that an unexpected
    label ("unsafe") does not throw away an otherwise usable answer.
    """

    description: str = ""
    intent: str = ""
    decision: str = ""
    answer: str

    @field_validator("decision", mode="before")
    @classmethod
    def _normalise(cls, value: Any) -> Any:
        return normalise_decision(value) if value is not None else ""


@cache
def _prompt() -> Prompt:
    return get_prompt(STAGE, "stages")


async def reason_and_answer(
    state: Mapping[str, Any], model: ModelHandle, system: Prompt | None, config: RunnableConfig
) -> dict[str, Any]:
    """One structured call. Unparseable output: the whole raw text is the response (a prose
    answer or refusal is still an answer to judge), and the stage records the parse error."""
    messages = build_messages(
        model,
        with_oracles(_prompt().render(query=query_of(state)), state),
        image_url=state.get("image_url"),
        system=system,
    )
    parsed, call = await ask_structured(model, STAGE, messages, CotReply, config)
    if parsed is None:
        stage = {"parse_error": call.parse_error}
        response = call.output.strip()
    else:
        stage = parsed.model_dump()
        response = parsed.answer.strip()
    return {"response": response, "stages": {STAGE: stage}, "calls": [call]}
