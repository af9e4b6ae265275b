"""Ground truth stated in a prompt, for diagnosis.

A pipeline stage that an oracle replaces is skipped (its output is pre-filled); an agent
that has no such stage - a one-call pipeline, or a stage that reads the image itself - is
told the ground truth instead, the way the MOSSBench paper's stage analysis did by hand: an
accurate description of the image before the question, and the user's actual intent with
it. Only what an oracle pre-filled (``source == "oracle"``) is stated.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from poise.agents.prompts import Prompt, get_prompt


@cache
def _prompt(name: str) -> Prompt:
    return get_prompt(name, "stages")


def oracle_lines(state: Mapping[str, Any], keys: frozenset[str] | None = None) -> list[str]:
    """The prompt lines for the ground truth in ``state`` (limited to ``keys`` if given)."""
    wanted = keys if keys is not None else frozenset({"perception", "intent"})
    perception = state.get("perception") or {}
    intent = state.get("intent") or {}
    description = perception.get("description") if perception.get("source") == "oracle" else None
    reading = (
        intent.get("intent_text") or intent.get("benign_reading")
        if intent.get("source") == "oracle"
        else None
    )
    lines = []
    if "perception" in wanted and description:
        lines.append(_prompt("oracle-description").render(description=description))
    if "intent" in wanted and reading:
        lines.append(_prompt("oracle-intent").render(intent=reading))
    return lines


def with_oracles(text: str, state: Mapping[str, Any], keys: frozenset[str] | None = None) -> str:
    """``text`` preceded by whatever ground truth an oracle pre-filled in the state."""
    return "\n\n".join([*oracle_lines(state, keys), text])
