"""The direct answer: one call to the base model with the image and the query.

This is what the benchmarks' papers measure. For diagnosis it also takes ground truth the way
the MOSSBench paper's stage analysis did by hand: an oracle description of the image is put
before the question, and an oracle intent is stated with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig

from poise.agents.invoke import ask, build_messages, query_of
from poise.agents.models.handle import ModelHandle
from poise.agents.oracles import with_oracles
from poise.agents.prompts import Prompt

STAGE = "baseline"


def question_with_oracles(state: Mapping[str, Any]) -> str:
    """The query, preceded by whatever ground truth an oracle pre-filled in the state."""
    return with_oracles(query_of(state), state)


async def answer_directly(
    state: Mapping[str, Any], model: ModelHandle, system: Prompt | None, config: RunnableConfig
) -> dict[str, Any]:
    messages = build_messages(
        model, question_with_oracles(state), image_url=state.get("image_url"), system=system
    )
    text, call = await ask(model, STAGE, messages, config)
    return {"response": text, "calls": [call]}
