"""Runs as one flat CSV: one row per record, safe to open in a spreadsheet.

Why a separate export when ``load_records`` exists: the DataFrame is for analysis in Python,
this file is for people who open results in Excel or LibreOffice, where two things go wrong
with model output. A cell starting with ``=``, ``+``, ``-`` or ``@`` runs as a formula, so
every text cell goes through :func:`poise.eval.csvsafe.neutralise`; and a cell longer than
32,767 characters is cut or breaks the row, so text cells are capped (a marker says how much
was cut; the full text stays in ``records.jsonl``).

Columns: the run (directory, id, benchmark, setting, model, pipeline, system prompt, oracle),
the sample, the final response and error, latency, calls and tokens (reused calls counted
apart, as in ``summary.json``), ``<judge>.<field>`` for every judge's verdict, and
``<stage>.<field>`` for each stage's scalar outputs (a list of scalars is joined with "; ").
Columns are the union over all rows, so runs of different pipelines share one file.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from poise.eval.csvsafe import neutralise
from poise.eval.export.source import RunData
from poise.eval.run.records import Record

# Excel's limit is 32,767 characters per cell; the marker and the quote prefix fit below it.
MAX_CELL_CHARS = 32_000
VERDICT_FIELDS = ("label", "refused", "correct", "score", "evidence", "error", "model", "version")
VERDICT_FIELDS += ("raw",)


def cap(value: Any, limit: int = MAX_CELL_CHARS) -> Any:
    """Text longer than ``limit`` is cut, with a marker saying how many characters went."""
    if not isinstance(value, str) or len(value) <= limit:
        return value
    cut = len(value) - limit
    return value[:limit] + f" ... [cut: {cut} more characters; the full text is in records.jsonl]"


def record_row(record: Record, run: RunData) -> dict[str, Any]:
    """One record as flat cells (not yet capped or neutralised)."""
    spec = run.spec
    made = [c for c in record.calls if not c.cached]
    row: dict[str, Any] = {
        "directory": run.directory.name,
        "run_id": record.run_id,
        "benchmark": record.benchmark,
        "setting": spec.setting,
        "model": record.model,
        "pipeline": record.pipeline,
        "system_prompt": record.system_prompt.name if record.system_prompt else "vanilla",
        "oracle": "; ".join(record.oracle),
        "sample_id": record.sample_id,
        "variant": record.variant,
        "expected": record.expected,
        "stimulus_type": record.stimulus_type,
        "category": record.category,
        "pair_id": record.pair_id,
        "query": record.query,
        "image": record.image,
        "response": record.response,
        "response_chars": len(record.response) if record.response is not None else None,
        "error": record.error,
        "latency_s": record.latency_s,
        "finished_at": record.finished_at,
        "calls": len(made),
        "reused_calls": len(record.calls) - len(made),
        "input_tokens": sum(c.input_tokens or 0 for c in made),
        "output_tokens": sum(c.output_tokens or 0 for c in made),
        "parse_errors": sum(1 for c in record.calls if c.parse_error),
    }
    for name, verdict in record.verdicts.items():
        for field in VERDICT_FIELDS:
            row[f"{name}.{field}"] = getattr(verdict, field)
    for stage, output in record.stages.items():
        if isinstance(output, dict):
            for key, value in output.items():
                row[f"{stage}.{key}"] = _scalar(value)
        else:
            row[stage] = _scalar(output)
    return row


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, list) and all(isinstance(v, (str, int, float, bool)) for v in value):
        return "; ".join(str(v) for v in value)
    return json.dumps(value, ensure_ascii=False, default=str)


def export_csv(runs: list[RunData], out: Path, *, max_cell_chars: int = MAX_CELL_CHARS) -> int:
    """Write every record of ``runs`` to ``out`` (replaced atomically); returns the row count."""
    rows = [record_row(record, run) for run in runs for record in run.records]
    fields = list(dict.fromkeys(key for row in rows for key in row))
    if not rows:  # still a file with a header, so a script reading it does not break
        fields = ["directory", "run_id", "sample_id"]
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            # Judge and stage names become headers: neutralised like any other text.
            writer.writerow([neutralise(cap(f, max_cell_chars)) for f in fields])
            for row in rows:
                writer.writerow([neutralise(cap(row.get(f), max_cell_chars)) for f in fields])
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(rows)
