"""The refusal judge's cue lists and provider artefacts, loaded from their data files.

Semantics ("an apology opening", "an offer of alternatives") live in ``data/cues.toml`` and
provider artefacts (web-app chrome, canned messages, image drops) in
``data/artefacts.toml``, so that a reader can review and extend them without reading
regular-expression code, and every pattern carries the examples that test it. This module
only compiles them; how cues are weighed is :mod:`poise.eval.judges.refusal.rules`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

_DATA = "poise.eval.judges.refusal"
CUES_FILE = "data/cues.toml"
ARTEFACTS_FILE = "data/artefacts.toml"


def _read(name: str) -> bytes:
    return resources.files(_DATA).joinpath(name).read_bytes()


@dataclass(frozen=True)
class Cue:
    """One named concept: its regex alternatives compiled into one pattern."""

    name: str
    description: str
    patterns: tuple[str, ...]
    anchor: str | None = None
    multiline: bool = False
    examples: tuple[str, ...] = ()
    counterexamples: tuple[str, ...] = ()
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", self.compile(self.patterns))

    def compile(self, patterns: tuple[str, ...]) -> re.Pattern[str]:
        """The alternatives as one case-insensitive pattern (anchored when the cue says so)."""
        body = "|".join(f"(?:{p})" for p in patterns)
        if self.anchor == "start":
            body = rf"^\W*(?:{body})"
        flags = re.IGNORECASE | (re.MULTILINE if self.multiline else 0)
        return re.compile(body, flags)

    def search(self, text: str, pos: int = 0, endpos: int | None = None) -> re.Match[str] | None:
        return self.regex.search(text, pos, len(text) if endpos is None else endpos)

    def match(self, text: str) -> re.Match[str] | None:
        return self.regex.match(text)


@dataclass(frozen=True)
class CueBook:
    """Every cue of ``cues.toml`` plus the composite "I can't VERB" pattern."""

    cues: dict[str, Cue]
    self_negation: re.Pattern[str]
    perception_verbs: frozenset[str]
    contextual_verbs: dict[str, re.Pattern[str]]

    def __getitem__(self, name: str) -> Cue:
        return self.cues[name]


@dataclass(frozen=True)
class Artefacts:
    """Provider artefacts of every provider table, compiled by kind."""

    tables: dict[str, dict[str, Any]]
    ui_chrome: re.Pattern[str]
    canned: re.Pattern[str]
    image_drop: re.Pattern[str]
    extraction: re.Pattern[str]
    empty_like: re.Pattern[str]
    error_prefix: re.Pattern[str]


def _cue(name: str, table: dict[str, Any]) -> Cue:
    return Cue(
        name=name,
        description=table.get("description", ""),
        patterns=tuple(table["patterns"]),
        anchor=table.get("anchor"),
        multiline=bool(table.get("multiline", False)),
        examples=tuple(table.get("examples", ())),
        counterexamples=tuple(table.get("counterexamples", ())),
    )


def load_cues(package: str, name: str) -> dict[str, Cue]:
    """Every cue table (one with ``patterns``) of a TOML data file inside ``package``."""
    data = tomllib.loads(resources.files(package).joinpath(name).read_text(encoding="utf-8"))
    return {
        key: _cue(key, table)
        for key, table in data.items()
        if isinstance(table, dict) and "patterns" in table and "subject" not in table
    }


@cache
def cuebook() -> CueBook:
    """The compiled cue lists (cached: the files are read once per process)."""
    data = tomllib.loads(_read(CUES_FILE).decode("utf-8"))
    # The composite "I can't VERB" cue is compiled below with its subject; the rest are lists.
    cues = {
        name: _cue(name, table)
        for name, table in data.items()
        if "patterns" in table and "subject" not in table
    }
    neg = data["self_negation"]
    self_negation = re.compile(
        neg["subject"]
        + "(?:"
        + "|".join(f"(?:{p})" for p in neg["patterns"])
        + r")\b(?:"
        + neg["adverbs"]
        + r"\s+([a-z]+))?",
        re.IGNORECASE,
    )
    contextual = {
        verb: re.compile(pattern, re.IGNORECASE)
        for verb, pattern in data["contextual_verbs"].items()
        if verb != "description"
    }
    return CueBook(
        cues=cues,
        self_negation=self_negation,
        perception_verbs=frozenset(data["perception_verbs"]["verbs"]),
        contextual_verbs=contextual,
    )


def _union(tables: dict[str, dict[str, Any]], key: str, *, lines: bool = False) -> re.Pattern[str]:
    patterns = [p for table in tables.values() for p in table.get(key, ())]
    body = "|".join(f"(?:{p})" for p in patterns) or r"(?!)"
    if lines:
        return re.compile(rf"^\s*(?:{body})\s*$", re.IGNORECASE | re.MULTILINE)
    return re.compile(body, re.IGNORECASE)


@cache
def artefacts() -> Artefacts:
    """Every provider's artefacts; a response's provider is not always known, so all apply."""
    tables = tomllib.loads(_read(ARTEFACTS_FILE).decode("utf-8"))
    return Artefacts(
        tables=tables,
        ui_chrome=_union(tables, "ui_chrome", lines=True),
        canned=_union(tables, "canned"),
        image_drop=_union(tables, "image_drop"),
        extraction=_union(tables, "extraction"),
        empty_like=_union(tables, "empty_like"),
        error_prefix=_union(tables, "error_prefix"),
    )


def data_bytes() -> tuple[bytes, bytes]:
    """The two data files, for the judge's version hash."""
    return _read(CUES_FILE), _read(ARTEFACTS_FILE)
