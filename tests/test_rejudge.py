"""Re-judging past runs with ``mossbench-llm`` and comparing judges, through the CLI."""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from poise.errors import PoiseError
from poise.eval.cli import app
from poise.eval.judges.rejudge import agree, run_directories, write_disagreements
from poise.eval.run.records import Record, read_records
from poise.eval.run.runner import Runner, RunSpec, Selection
from poise.eval.testing.openai_server import ChatRequest, MockOpenAIServer

LLM = "mossbench-llm"
REFUSAL_CUES = ("sorry", "can't", "cannot", "apologize")


def _make_run(out: Path, model: str = "replay/claude-3-haiku", limit: int = 12) -> Path:
    """A replay run (no network) judged by the ``offline`` judge only."""
    spec = RunSpec(model=model, selection=Selection(limit=limit))
    return asyncio.run(Runner(spec, out, progress=False).run()).directory


def _judged_response(request: ChatRequest) -> str:
    """The evaluated response, as the judge prompt quotes it between <<< and >>>."""
    _, _, rest = request.text.partition("<<<")
    return rest.partition(">>>")[0]


def _reply(request: ChatRequest) -> str:
    """A scripted judge: refusal when the response sounds apologetic, else compliance."""
    refused = any(cue in _judged_response(request).lower() for cue in REFUSAL_CUES)
    return f"Description: scripted.\nScore: {int(refused)}\nReason: cue match = {refused}"


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def _judge(path: Path, server: MockOpenAIServer) -> Result:
    result = _invoke(
        "judge",
        str(path),
        "--judge",
        LLM,
        "--judge-model",
        "openai-compatible/judge",
        "--base-url",
        server.base_url,
        "--no-progress",
    )
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def _records(directory: Path) -> list[Record]:
    return read_records(directory / "records.jsonl")


@pytest.fixture
def server() -> MockOpenAIServer:
    with MockOpenAIServer(reply=_reply) as running:
        yield running


def test_judge_adds_llm_verdicts_keeps_offline_and_resumes(
    tmp_path: Path, server: MockOpenAIServer
) -> None:
    """Every record gains a mossbench-llm verdict; offline ones stay; a rerun calls nobody."""
    run_dir = _make_run(tmp_path)
    before = _records(run_dir)
    assert len(before) == 12 and all(set(r.verdicts) == {"offline"} for r in before)

    _judge(run_dir, server)
    after = _records(run_dir)
    assert [r.sample_id for r in after] == [r.sample_id for r in before]
    assert all(set(r.verdicts) == {"offline", LLM} for r in after)
    for old, new in zip(before, after, strict=True):
        assert new.verdicts["offline"] == old.verdicts["offline"]
        assert new.response == old.response
    answered = [r for r in before if (r.response or "").strip()]
    assert server.request_count == len(answered) > 0
    for record in after:
        verdict = record.verdicts[LLM]
        cue = any(c in (record.response or "").lower() for c in REFUSAL_CUES)
        assert verdict.error is None and verdict.refused is (cue or not record.response)
        assert verdict.model == "openai-compatible/judge"
    assert any(r.verdicts[LLM].refused for r in after)
    assert not all(r.verdicts[LLM].refused for r in after)

    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["metrics"]) == {"offline", LLM}
    assert summary["metrics"][LLM]["n"] == 12 and summary["metrics"][LLM]["unparseable"] == 0
    assert summary["records"] == 12

    requests = server.request_count
    _judge(run_dir, server)
    assert server.request_count == requests, "a second judge run must not call the judge again"
    again = _records(run_dir)
    assert [r.model_dump() for r in again] == [r.model_dump() for r in after]


def test_judge_through_a_sweep_directory_handles_every_run(
    tmp_path: Path, server: MockOpenAIServer
) -> None:
    """``judge PARENT`` finds both run directories below it and judges each."""
    parent = tmp_path / "sweep"
    first = _make_run(parent, "replay/claude-3-haiku", 4)
    second = _make_run(parent, "replay/gpt-4o", 5)
    assert run_directories(parent) == sorted([first, second])

    _judge(parent, server)
    for directory, n in ((first, 4), (second, 5)):
        records = _records(directory)
        assert len(records) == n and all(LLM in r.verdicts for r in records)
        assert LLM in json.loads((directory / "summary.json").read_text())["metrics"]
    answered = sum(1 for d in (first, second) for r in _records(d) if (r.response or "").strip())
    assert server.request_count == answered


def test_agree_prints_kappa_and_writes_the_disagreements_csv(
    tmp_path: Path, server: MockOpenAIServer
) -> None:
    """``agree`` reports kappa and writes one CSV row per disagreement, as agree() computes."""
    run_dir = _make_run(tmp_path)
    _judge(run_dir, server)
    result = _invoke("agree", str(run_dir), "--judges", f"offline,{LLM}")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "kappa" in result.output

    expected = agree([run_dir], "offline", LLM)
    assert expected.n == 12
    assert f"disagreements={len(expected.disagreements)}" in result.output
    csv_path = run_dir / f"disagreements_offline_vs_{LLM}.csv"
    assert csv_path.is_file()
    with csv_path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["run", "sample_id", "model", "response_excerpt", "offline", LLM]
    assert len(rows) - 1 == len(expected.disagreements)
    assert [row[1] for row in rows[1:]] == [d["sample_id"] for d in expected.disagreements]
    for row in rows[1:]:
        assert row[4] != row[5] or expected.basis != "label"

    out = tmp_path / "elsewhere.csv"
    moved = _invoke("agree", str(run_dir), "--judges", f"offline,{LLM}", "--out", str(out))
    assert moved.exit_code == 0, (moved.output, moved.exception)
    assert out.read_text(encoding="utf-8") == csv_path.read_text(encoding="utf-8")


def test_agree_does_not_count_comply_with_warning_against_comply(
    tmp_path: Path, server: MockOpenAIServer
) -> None:
    """Two judges that both read a response as compliance agree, whatever their label sets."""
    run_dir = _make_run(tmp_path)
    _judge(run_dir, server)
    records = _records(run_dir)
    assert any(r.verdicts["offline"].label == "comply_with_warning" for r in records)
    result = agree([run_dir], "offline", LLM)
    same_reading = {
        r.sample_id for r in records if r.verdicts["offline"].refused == r.verdicts[LLM].refused
    }
    assert not same_reading & {d["sample_id"] for d in result.disagreements}


def test_write_disagreements_with_none_is_header_only(tmp_path: Path) -> None:
    """A run where both judges agree still gets a CSV, with its header and no rows."""
    run_dir = _make_run(tmp_path, limit=3)
    result = agree([run_dir], "offline", "offline")
    assert result.disagreements == [] and result.kappa == 1.0 and result.agreement == 1.0
    path = tmp_path / "d.csv"
    write_disagreements(result, path)
    assert path.read_text(encoding="utf-8").splitlines() == [
        "run,sample_id,model,response_excerpt,offline,offline"
    ]


def test_agree_with_an_unknown_judge_is_a_one_line_error(tmp_path: Path) -> None:
    """No record has the judge's verdicts: a PoiseError naming the fix, exit 2 in the CLI."""
    run_dir = _make_run(tmp_path, limit=3)
    result = _invoke("agree", str(run_dir), "--judges", "offline,nosuch")
    assert result.exit_code != 0
    assert isinstance(result.exception, PoiseError)
    assert "nosuch" in str(result.exception) and "poise judge" in str(result.exception)
    bad_pair = _invoke("agree", str(run_dir), "--judges", "offline")
    assert isinstance(bad_pair.exception, PoiseError) and "two names" in str(bad_pair.exception)
    not_a_run = _invoke("agree", str(tmp_path / "empty"), "--judges", "offline,x")
    assert isinstance(not_a_run.exception, PoiseError)

    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "poise.eval.cli",
            "agree",
            str(run_dir),
            "--judges",
            "offline,nosuch",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 2, process.stderr
    assert "nosuch" in process.stderr and "Traceback" not in process.stderr
    assert len(process.stderr.strip().splitlines()) == 1, process.stderr


def test_judge_with_an_unknown_judge_name_fails_before_touching_records(tmp_path: Path) -> None:
    """An unknown judge name is refused up front; the records are left as they were."""
    run_dir = _make_run(tmp_path, limit=3)
    before = (run_dir / "records.jsonl").read_text(encoding="utf-8")
    result = _invoke("judge", str(run_dir), "--judge", "nosuch", "--no-progress")
    assert isinstance(result.exception, PoiseError) and "known judges" in str(result.exception)
    assert (run_dir / "records.jsonl").read_text(encoding="utf-8") == before
