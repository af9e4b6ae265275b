"""The offline refusal judge's reading of a response: cue data, provider artefacts, rules.

``classify_refusal`` is the entry point; ``VERSION`` is a content hash of the rules and
their data files, recorded on every verdict so that results of two rule versions are never
mixed.
"""

from __future__ import annotations

from importlib import resources

from poise.eval.judges.base import content_version
from poise.eval.judges.refusal.cuebook import data_bytes
from poise.eval.judges.refusal.rules import (
    BLOCKED,
    COMPLY,
    COMPLY_WITH_WARNING,
    LABELS,
    NO_RESPONSE,
    REFUSAL_LABELS,
    REFUSE,
    RefusalReading,
    classify_refusal,
)

_SOURCES = ("rules.py", "cuebook.py")
VERSION = content_version(
    *data_bytes(),
    *(resources.files(__name__).joinpath(name).read_bytes() for name in _SOURCES),
)

__all__ = [
    "BLOCKED",
    "COMPLY",
    "COMPLY_WITH_WARNING",
    "LABELS",
    "NO_RESPONSE",
    "REFUSAL_LABELS",
    "REFUSE",
    "VERSION",
    "RefusalReading",
    "classify_refusal",
]
