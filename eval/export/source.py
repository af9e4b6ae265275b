"""Reading a run directory for export, leniently, so that old runs export too.

``read_records`` (the runner's reader) drops any line that does not validate against today's
:class:`Record`, which is right for resuming a run (a torn line is re-run) but would make an
export of an older run silently lose samples. Here a line that parses as JSON but lacks a
field a newer Poise requires gets it from ``run.json`` (run id, benchmark, model, pipeline),
from the dictionary key (a verdict's judge) or a neutral default; only lines that are not a
JSON object, or still do not validate, are skipped, and they are counted so the command can
say so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from poise.errors import PoiseError
from poise.eval.judges.rejudge import run_directories
from poise.eval.run.records import RECORDS_FILE, RUN_FILE, SUMMARY_FILE, Record
from poise.eval.run.runner import RunSpec, read_run_spec


@dataclass
class RunData:
    """One run directory as the exporters need it."""

    directory: Path
    spec: RunSpec
    run: dict[str, Any]  # run.json as written (provenance and any fields RunSpec ignores)
    records: list[Record]
    summary: dict[str, Any] = field(default_factory=dict)
    skipped_lines: list[int] = field(default_factory=list)  # 1-based line numbers

    @property
    def run_id(self) -> str:
        """The id the records carry (it is the spec's hash; old records may predate a field)."""
        return self.records[0].run_id if self.records else self.spec.run_id


def collect_runs(paths: list[Path]) -> list[RunData]:
    """Every run directory at or below ``paths``, each read leniently; duplicates once."""
    directories: list[Path] = []
    for path in paths:
        if not path.exists():
            raise PoiseError(
                f"{path} does not exist; pass run or sweep directories written by poise run"
            )
        if not path.is_dir():
            raise PoiseError(
                f"{path} is a file; pass a run or sweep directory written by poise run"
            )
        for directory in run_directories(path):
            if directory.resolve() not in {d.resolve() for d in directories}:
                directories.append(directory)
    return [load_run(directory) for directory in directories]


def load_run(directory: Path) -> RunData:
    """run.json, summary.json (if any) and every usable record of one run directory."""
    spec = read_run_spec(directory)  # a corrupt run.json is a one-line error naming it
    run = _json_object(directory / RUN_FILE) or {}
    summary = _json_object(directory / SUMMARY_FILE) or {}
    records, skipped = _read_lenient(directory / RECORDS_FILE, spec)
    return RunData(directory, spec, run, records, summary, skipped)


def _json_object(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _read_lenient(path: Path, spec: RunSpec) -> tuple[list[Record], list[int]]:
    if not path.is_file():
        return [], []
    fallback_time = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
    records: list[Record] = []
    skipped: list[int] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                if not isinstance(raw, dict):
                    raise ValueError("not a JSON object")
                records.append(Record.model_validate(_fill(raw, spec, number, fallback_time)))
            except ValueError:  # json and pydantic errors: a torn or foreign line
                skipped.append(number)
    return records, skipped


def _fill(raw: dict[str, Any], spec: RunSpec, number: int, when: str) -> dict[str, Any]:
    """Defaults for fields an older Poise did not write; what is present is kept as is."""
    out = dict(raw)
    out.setdefault("run_id", spec.run_id)
    out.setdefault("benchmark", spec.benchmark)
    out.setdefault("model", spec.model)
    out.setdefault("pipeline", spec.pipeline)
    out.setdefault("sample_id", f"line-{number}")
    out.setdefault("expected", "")
    out.setdefault("query", "")
    # The record's own default would be "now": an export must not invent a different time
    # each time it runs, so the records file's modification time stands in.
    if not out.get("finished_at"):
        out["finished_at"] = when
    if out.get("latency_s") is None:
        out["latency_s"] = 0.0
    for key in ("stages", "verdicts"):
        if not isinstance(out.get(key), dict):
            out[key] = {}
    if not isinstance(out.get("calls"), list):
        out["calls"] = []
    if not isinstance(out.get("oracle"), list):
        out["oracle"] = []
    out["sample_id"] = str(out["sample_id"])
    verdicts = {}
    for name, verdict in out["verdicts"].items():
        if isinstance(verdict, dict):
            verdict = {"judge": name, "label": "", **verdict}
        verdicts[name] = verdict
    out["verdicts"] = verdicts
    calls = []
    for call in out["calls"]:
        if isinstance(call, dict):
            call = {"stage": out["pipeline"], "model": out["model"], "messages": [], **call}
            if call.get("output") is None:
                call["output"] = ""
            if call.get("latency_s") is None:
                call["latency_s"] = 0.0
        calls.append(call)
    out["calls"] = calls
    return out
