"""The papers' published figures, looked up by the model a run used.

A run's model name (``replay/gpt-4o``, ``openai/gpt-4o``, ``hf/llava-hf/llava-1.5-7b-hf``)
is matched against the published tables through an alias list, so ``poise run`` can print
the paper's row next to what it measured.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def published_table(name: str) -> dict[str, Any]:
    """A published table by name (a benchmark spec's ``published``): data/published/NAME.json."""
    path = resources.files("poise.benchmarks").joinpath("data", "published", f"{name}.json")
    return json.loads(path.read_text(encoding="utf-8"))


def mossbench_table() -> dict[str, Any]:
    return published_table("mossbench")


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def mssbench_table() -> dict[str, Any]:
    return published_table("mssbench")


def published_row(name: str, model: str) -> dict[str, Any] | None:
    """The row of published table ``name`` for a ``provider/model`` name, or None."""
    return _row(published_table(name), model)


def _row(table: dict[str, Any], model: str) -> dict[str, Any] | None:
    aliases = table["aliases"]
    _, _, bare = model.partition("/")
    target = aliases.get(model) or aliases.get(bare) or bare or model
    by_name = {_normalise(row["model"]): row for row in table["models"]}
    return by_name.get(_normalise(target))


def mossbench_row(model: str) -> dict[str, Any] | None:
    """The published MOSSBench row for a ``provider/model`` name, or None."""
    return _row(mossbench_table(), model)


def mssbench_row(model: str) -> dict[str, Any] | None:
    """The published MSSBench row (averages per pipeline, IF safe/unsafe) or None."""
    return _row(mssbench_table(), model)
