"""Re-judging past runs and comparing judges, without calling the evaluated model again.

``rejudge`` adds one judge's verdicts to every record of a run directory (keyed by judge
name, so another judge's verdicts are never overwritten) and rewrites the summary. It is
resumable: records that already carry the judge's verdict are skipped, and progress is
saved atomically every few seconds.

Verdicts carry their judge's version (a content hash of its rules, data or prompt). A
verdict of an older version is stale: re-judging replaces it, says so, and a summary never
mixes two versions of one judge (:func:`poise.eval.analysis.metrics.judge_version`).
"""

from __future__ import annotations

import asyncio
import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poise.agents.calls import response_blocked
from poise.errors import PoiseError
from poise.eval.judges.agreement import agreement_rate, cohen_kappa, confusion_matrix
from poise.eval.judges.base import Judge
from poise.eval.judges.versions import announce_replacement, needs_verdict
from poise.eval.run.records import RECORDS_FILE, RUN_FILE, Record, read_records, write_records
from poise.eval.run.runner import summarize

SAVE_EVERY_S = 5.0


def run_directories(path: Path) -> list[Path]:
    """A run directory itself, or every run directory below a sweep directory."""
    if (path / RUN_FILE).is_file():
        return [path]
    found = sorted(p.parent for p in path.rglob(RUN_FILE))
    if not found:
        raise PoiseError(
            f"{path} holds no run (no {RUN_FILE}); pass a directory that poise run wrote"
        )
    return found


async def rejudge(
    directory: Path, judge: Judge, *, concurrency: int = 8, progress: Any = None
) -> int:
    """Judge every record of one run that lacks a current verdict of ``judge``; returns how many.

    Records judged by an older version of ``judge`` are re-judged and their verdicts
    replaced (announced on stderr); other judges' verdicts are never touched.
    """
    path = directory / RECORDS_FILE
    records = read_records(path)
    announce_replacement(directory, judge, records)
    todo = [i for i, r in enumerate(records) if needs_verdict(r, judge)]
    semaphore = asyncio.Semaphore(max(1, concurrency))
    last_save = time.monotonic()
    done = 0

    async def one(index: int) -> None:
        nonlocal last_save, done
        record = records[index]
        async with semaphore:
            verdict = await judge.judge(
                record.to_sample(), record.response, blocked=response_blocked(record.calls)
            )
        records[index] = record.model_copy(
            update={"verdicts": {**record.verdicts, judge.name: verdict}}
        )
        done += 1
        if progress:
            progress()
        if time.monotonic() - last_save > SAVE_EVERY_S:
            write_records(path, records)
            last_save = time.monotonic()

    await asyncio.gather(*(one(i) for i in todo))
    write_records(path, records)
    summarize(directory)
    return done


@dataclass
class Agreement:
    judges: tuple[str, str]
    n: int
    basis: str  # "label" when both judges share a label set, else "refused"/"correct"
    agreement: float
    kappa: float
    confusion: dict[str, dict[str, int]]
    disagreements: list[dict[str, Any]]


def _basis(records: list[Record], a: str, b: str) -> str:
    """Compare labels when both judges use one label set, else the paper's binary refusal."""
    labels_a = {r.verdicts[a].label for r in records}
    labels_b = {r.verdicts[b].label for r in records}
    binary = all(
        r.verdicts[a].refused is not None and r.verdicts[b].refused is not None for r in records
    )
    if labels_a == labels_b or (not binary and (labels_a <= labels_b or labels_b <= labels_a)):
        return "label"
    return "refused" if binary else "correct"


def _value(record: Record, judge: str, basis: str) -> str:
    verdict = record.verdicts[judge]
    return verdict.label if basis == "label" else str(getattr(verdict, basis))


def agree(directories: list[Path], a: str, b: str) -> Agreement:
    """Confusion matrix, agreement rate and Cohen's kappa of judges a and b over the runs."""
    records = [
        r
        for d in directories
        for r in read_records(d / RECORDS_FILE)
        if a in r.verdicts
        and b in r.verdicts
        and not r.verdicts[a].error
        and not r.verdicts[b].error
    ]
    if not records:
        raise PoiseError(
            f"no record carries verdicts of both {a} and {b}; run: poise judge RUN_DIR --judge NAME"
        )
    basis = _basis(records, a, b)
    va = [_value(r, a, basis) for r in records]
    vb = [_value(r, b, basis) for r in records]
    disagreements = [
        {
            "run": r.run_id,
            "sample_id": r.sample_id,
            "model": r.model,
            "response_excerpt": (r.response or "")[:200].replace("\n", " "),
            a: r.verdicts[a].label,
            b: r.verdicts[b].label,
        }
        for r, x, y in zip(records, va, vb, strict=True)
        if x != y
    ]
    return Agreement(
        judges=(a, b),
        n=len(records),
        basis=basis,
        agreement=agreement_rate(va, vb),
        kappa=cohen_kappa(va, vb),
        confusion=confusion_matrix(va, vb),
        disagreements=disagreements,
    )


def write_disagreements(agreement: Agreement, path: Path) -> None:
    """The disagreements as CSV; model output in a cell can never start a formula."""
    from poise.eval.csvsafe import safe_rows

    a, b = agreement.judges
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["run", "sample_id", "model", "response_excerpt", a, b]
        )
        writer.writeheader()
        writer.writerows(safe_rows(agreement.disagreements))
