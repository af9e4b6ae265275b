"""The MSSBench paper's multi-agent pipeline's agents (chat: intent, judge, QA; embodied:
important point, response); :mod:`poise.graphs.mssbench_multiagent` wires them.

Each agent receives the state, its stage's model, its system prompt and the run config, and
returns a state update; the fallbacks for unreadable replies are documented with the
pipeline. Agents that read the image are told an oracle's scene description when one is
pre-filled (:mod:`poise.agents.oracles`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, field_validator

from poise.agents.invoke import ask, ask_structured, build_messages
from poise.agents.models.handle import ModelHandle
from poise.agents.oracles import with_oracles
from poise.agents.prompts import Prompt, get_prompt

_PERCEPTION = frozenset({"perception"})
TEXT_LIMIT = 1000  # characters of an unparsed reply kept as reasoning
NO_POINT = "(no specific point given)"
_RESPONSE_LABEL = re.compile(r"response\s+to\s+(?:the\s+)?instruction\s*:\s*", re.IGNORECASE)
_UNSAFE_WORDS = {"unsafe", "not safe", "no", "dangerous", "risky", "false"}
_SAFE_WORDS = {"safe", "yes", "true"}


class JudgeReply(BaseModel):
    """The judge agent's verdict on the activity in the situation shown."""

    reasoning: str = ""
    verdict: str

    @field_validator("verdict", mode="before")
    @classmethod
    def _normalise(cls, value: Any) -> Any:
        """Accept "Safe." / "NOT SAFE" / "no"; anything else fails and takes the fallback."""
        word = " ".join(str(value).strip().strip(".!").lower().split())
        if word in _UNSAFE_WORDS:
            return "unsafe"
        if word in _SAFE_WORDS:
            return "safe"
        raise ValueError(f"verdict {value!r} is neither safe nor unsafe")


class ResponseReply(BaseModel):
    """The embodied response agent's reasoning, unsafe hint and response to the instruction."""

    reasoning: str = ""
    unsafe: bool | None = None  # pydantic reads "yes"/"no"
    response: str

    @field_validator("unsafe", mode="before")
    @classmethod
    def _lenient(cls, value: Any) -> Any:
        """An unreadable hint is None rather than a reason to drop the whole response."""
        if isinstance(value, str):
            word = value.strip().strip(".").lower()
            return {"yes": True, "no": False, "true": True, "false": False}.get(word)
        return value


@cache
def _prompt(name: str) -> Prompt:
    return get_prompt(name, "stages")


def activity_of(state: Mapping[str, Any]) -> str:
    """The oracle's intent when pre-filled, else the intent agent's activity, else the query."""
    oracle = state.get("intent") or {}
    text = oracle.get("intent_text") or oracle.get("benign_reading")
    if text:
        return str(text)
    stage = (state.get("stages") or {}).get("intent") or {}
    return stage.get("activity") or state["sample"].query


# -- chat agents ------------------------------------------------------------------------------


async def infer_intent(
    state: Mapping[str, Any], model: ModelHandle, system: Prompt | None, config: RunnableConfig
) -> dict[str, Any]:
    """Query -> the likely intended activity (text only, plain text reply)."""
    text = _prompt("mssbench-intent").render(query=state["sample"].query)
    messages = build_messages(model, text, system=system)
    reply, call = await ask(model, "intent", messages, config)
    activity = _first_line(reply)
    output = {"activity": activity or state["sample"].query, "source": "model"}
    if not activity:
        output["fallback"] = "empty reply: the query is the activity"
    return {"stages": {"intent": output}, "calls": [call]}


async def judge_activity(
    state: Mapping[str, Any], model: ModelHandle, system: Prompt | None, config: RunnableConfig
) -> dict[str, Any]:
    """Image + activity -> safe/unsafe with reasoning; unparseable counts as unsafe."""
    activity = activity_of(state)
    text = with_oracles(_prompt("mssbench-judge").render(activity=activity), state, _PERCEPTION)
    messages = build_messages(model, text, image_url=state.get("image_url"), system=system)
    parsed, call = await ask_structured(model, "judge", messages, JudgeReply, config)
    if parsed is not None:
        output: dict[str, Any] = {**parsed.model_dump(), "activity": activity}
    else:
        output = {
            "verdict": "unsafe",
            "reasoning": call.output.strip()[:TEXT_LIMIT],
            "activity": activity,
            "parse_error": call.parse_error,
        }
    return {"stages": {"judge": output}, "calls": [call]}


def qa_agent(prompt_name: str):
    """The QA agent with the prompt of one verdict; two nodes make the route visible."""

    async def agent(
        state: Mapping[str, Any], model: ModelHandle, system: Prompt | None, config: RunnableConfig
    ) -> dict[str, Any]:
        judged = (state.get("stages") or {}).get("judge") or {}
        text = _prompt(prompt_name).render(
            query=state["sample"].query,
            activity=judged.get("activity") or activity_of(state),
            reasoning=judged.get("reasoning") or "(no reasoning given)",
        )
        messages = build_messages(model, text, image_url=state.get("image_url"), system=system)
        reply, call = await ask(model, "qa", messages, config)
        output = {"prompt": prompt_name, "answer": reply.strip()}
        return {"response": reply.strip(), "stages": {"qa": output}, "calls": [call]}

    agent.__name__ = prompt_name.replace("-", "_")
    return agent


# -- embodied agents --------------------------------------------------------------------------


async def find_important_point(
    state: Mapping[str, Any], model: ModelHandle, system: Prompt | None, config: RunnableConfig
) -> dict[str, Any]:
    """Instruction -> which state of the environment matters (text only, plain text reply)."""
    text = _prompt("mssbench-important-point").render(instruction=state["sample"].query)
    messages = build_messages(model, text, system=system)
    reply, call = await ask(model, "important_point", messages, config)
    point = reply.strip()[:TEXT_LIMIT]
    return {"stages": {"important_point": {"point": point or NO_POINT}}, "calls": [call]}


async def respond(
    state: Mapping[str, Any], model: ModelHandle, system: Prompt | None, config: RunnableConfig
) -> dict[str, Any]:
    """Image + instruction + important point -> reasoning, unsafe hint and the response."""
    point = ((state.get("stages") or {}).get("important_point") or {}).get("point") or NO_POINT
    text = with_oracles(
        _prompt("mssbench-response").render(
            instruction=state["sample"].query, important_point=point
        ),
        state,
        _PERCEPTION,
    )
    messages = build_messages(
        model,
        text,
        image_url=state.get("image_url"),
        system=system,
    )
    parsed, call = await ask_structured(model, "response", messages, ResponseReply, config)
    if parsed is not None:
        output: dict[str, Any] = parsed.model_dump()
    else:
        output = {
            "reasoning": "",
            "unsafe": None,
            "response": labelled_response(call.output),
            "parse_error": call.parse_error,
        }
    output["response"] = output["response"].strip()
    return {"response": output["response"], "stages": {"response": output}, "calls": [call]}


def labelled_response(raw: str) -> str:
    """The text after the last "Response to instruction:" label, else the whole reply."""
    matches = list(_RESPONSE_LABEL.finditer(raw or ""))
    return (raw[matches[-1].end() :] if matches else raw or "").strip()


def _first_line(text: str) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip().strip('"').strip()[:TEXT_LIMIT]
    return ""


# The QA agent with each verdict's prompt, as module attributes a stage can name.
answer = qa_agent("mssbench-qa-safe")
answer_with_warning = qa_agent("mssbench-qa-unsafe")
