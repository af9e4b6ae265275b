"""The one record schema: a line of ``records.jsonl`` per sample and epoch.

A run with ``--epochs K`` asks each sample K times; each answer is its own record, keyed by
``(sample_id, epoch)``. Records written before epochs existed have no ``epoch`` field and
read as epoch 0, which is what they were.

A record is the single source of truth for a run. Metrics, re-judging, diagnosis and
reports are recomputed from records, never from in-memory state, so any past run can be
re-judged and re-reported.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from poise.agents.calls import Call
from poise.benchmarks.sample import Expected, ImageRef, Sample
from poise.eval.judges.base import Verdict

RECORDS_FILE = "records.jsonl"
SUMMARY_FILE = "summary.json"
RUN_FILE = "run.json"


class PromptRef(BaseModel):
    name: str
    sha256: str = ""


class Record(BaseModel):
    run_id: str
    benchmark: str
    sample_id: str
    epoch: int = Field(default=0, description="which draw of the sample (0 .. --epochs - 1)")
    variant: str = ""
    expected: str
    stimulus_type: int | None = None
    category: str | None = None
    pair_id: str | None = None
    query: str
    image: str | None = Field(default=None, description="image path, for reports")
    model: str
    pipeline: str
    system_prompt: PromptRef | None = None
    oracle: list[str] = Field(default_factory=list, description="stages replaced by ground truth")
    stages: dict[str, Any] = Field(
        default_factory=dict, description="each stage's structured output"
    )
    calls: list[Call] = Field(default_factory=list)
    response: str | None = None
    verdicts: dict[str, Verdict] = Field(default_factory=dict)
    error: str | None = None
    latency_s: float = 0.0
    finished_at: str = Field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds")
    )

    @property
    def key(self) -> tuple[str, int]:
        """What a run records exactly once: one sample's one draw."""
        return (self.sample_id, self.epoch)

    def to_sample(self) -> Sample:
        """Enough of the sample for a judge: query, image, side and expected behaviour."""
        return Sample(
            id=self.sample_id,
            benchmark=self.benchmark,
            variant=self.variant,
            query=self.query,
            image=ImageRef(path=Path(self.image) if self.image else None),
            expected=Expected(self.expected),
            stimulus_type=self.stimulus_type,
            category=self.category,
            pair_id=self.pair_id,
        )


def read_records(path: Path) -> list[Record]:
    """Every complete record in a records file; a torn last line (a killed run) is skipped."""
    records = []
    if not path.is_file():
        return records
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(Record.model_validate_json(line))
            except ValueError:
                continue  # a partial line from a process killed mid-write
    return records


def write_records(path: Path, records: list[Record]) -> None:
    """Rewrite a records file atomically (used when re-judging or dropping errored samples).

    Readers (``report``, ``diagnose``, ``load_records``) see the old file or the new one,
    never a mix: the new content goes to a temporary file of its own, is synced to disk, and
    replaces the old one in one rename.
    """
    _atomic_write(path, "".join(record.model_dump_json() + "\n" for record in records))


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a uniquely named temporary file and one rename.

    The temporary name is unique per call, so two writers never share (and unlink) one
    temporary file; the run-directory lock keeps them from racing on the final name.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make results unreadable to the group
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _flatten(record: Record) -> dict[str, Any]:
    row = record.model_dump(exclude={"calls", "verdicts", "stages"})
    row["system_prompt"] = record.system_prompt.name if record.system_prompt else None
    row["oracle"] = ",".join(record.oracle)
    row["n_calls"] = len(record.calls)
    row["input_tokens"] = sum(c.input_tokens or 0 for c in record.calls)
    row["output_tokens"] = sum(c.output_tokens or 0 for c in record.calls)
    for name, verdict in record.verdicts.items():
        row[f"{name}.label"] = verdict.label
        row[f"{name}.refused"] = verdict.refused
        row[f"{name}.correct"] = verdict.correct
    for stage, output in record.stages.items():
        if isinstance(output, dict):
            for key, value in output.items():
                if isinstance(value, (str, int, float, bool)) or value is None:
                    row[f"{stage}.{key}"] = value
    return row


def load_records(path: str | Path):
    """Records of a run directory (or a records.jsonl, or a sweep directory) as a DataFrame.

    One row per sample; verdicts become ``<judge>.label`` / ``.refused`` / ``.correct``
    columns and scalar stage outputs ``<stage>.<field>`` columns.
    """
    import pandas as pd

    path = Path(path)
    files = [path] if path.is_file() else sorted(path.rglob(RECORDS_FILE))
    rows = [_flatten(r) for f in files for r in read_records(f)]
    return pd.DataFrame(rows)


def write_json(path: Path, payload: Any) -> None:
    """Write a JSON file atomically (readers never see half of it)."""
    _atomic_write(path, json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")
