"""Which recorded verdicts are current: a judge's version against the one it recorded.

A verdict carries the version (content hash) of the judge that gave it. When the rules,
cue data, weights or prompt change, older verdicts are stale: a rerun or ``poise judge``
replaces them, and says so, rather than mixing two versions in one figure.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from poise.eval.judges.base import Judge
    from poise.eval.run.records import Record


def needs_verdict(record: Record, judge: Judge) -> bool:
    """Whether ``record`` lacks a current verdict of ``judge`` (none yet, or an older version).

    Errored records get no verdict. A judge without a ``version`` (a user's own judge
    written before versions existed) is taken as it is: its recorded verdicts stay.
    """
    if record.error is not None:
        return False
    verdict = record.verdicts.get(judge.name)
    if verdict is None:
        return True
    version = getattr(judge, "version", None)
    return version is not None and verdict.version != version


def stale_versions(records: list[Record], judge: Judge) -> dict[str | None, int]:
    """Recorded versions of ``judge`` that differ from its current one, with their counts."""
    counts: dict[str | None, int] = {}
    for record in records:
        verdict = record.verdicts.get(judge.name)
        if verdict is not None and needs_verdict(record, judge):
            counts[verdict.version] = counts.get(verdict.version, 0) + 1
    return counts


def announce_replacement(directory: Path, judge: Judge, records: list[Record]) -> None:
    """One line on stderr when verdicts of an older version of ``judge`` are replaced."""
    stale = stale_versions(records, judge)
    if not stale:
        return
    old = ", ".join(f"{n} of {v or 'unversioned'}" for v, n in sorted(stale.items(), key=str))
    print(
        f"{directory.name}: replacing {sum(stale.values())} {judge.name} verdicts of an older "
        f"version ({old}) with version {getattr(judge, 'version', '?')}",
        file=sys.stderr,
    )
