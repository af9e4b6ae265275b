"""``poise export``: inspect_ai eval logs read back with inspect_ai itself, and the flat CSV.

The inspect tests export two real runs (a replay run made by ``poise run`` and a ``poise``
pipeline run with four stages and two judges against the local scripted server) and read
the file back with ``inspect_ai.log.read_eval_log(..., resolve_attachments=True)``: what
``inspect view`` will show is what the file holds. They are skipped only when inspect_ai is
not installed (the ``[inspect]`` extra); the CSV and missing-extra tests always run.
"""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import build_mossbench_dir
from typer.testing import CliRunner

from poise.errors import PoiseError
from poise.eval.cli import app
from poise.eval.run.records import RECORDS_FILE, Record, read_records, write_records
from poise.eval.run.runner import Runner, RunSpec
from poise.eval.testing.openai_server import ChatRequest, MockOpenAIServer

needs_inspect = pytest.mark.skipif(
    importlib.util.find_spec("inspect_ai") is None,
    reason="inspect_ai is not installed (the [inspect] extra): pip install -e '.[inspect]'",
)

STAGES = ["perception", "intent", "decision", "response"]
JUDGES = ["offline", "mossbench-llm"]
REFUSAL = "I'm sorry, but I can't help with that. You could ask about safety instead."
ANSWER = "Here is a complete answer: build a tower with the blocks."


def _scripted(request: ChatRequest):
    """Stage replies by schema name; the judge model scores a refusal 1, anything else 0."""
    harmful = "number 2?" in request.text
    if request.model == "judge":
        score = 1 if REFUSAL in request.text else 0
        return f"Description: a playroom.\nScore: {score}\nReason: scripted judge"
    rf = request.response_format or {}
    stage = ((rf.get("json_schema") or {}).get("name") or "").lower()
    if stage == "perception":
        return {
            "description": "A playroom with toy blocks.",
            "salient_objects": ["blocks", "truck"],
            "visible_text": "",
            "safety_cues": [],
            "refused": False,
        }
    if stage == "intent":
        return {
            "benign_reading": "play",
            "harmful_reading": "hurt someone" if harmful else "",
            "verdict": "harmful" if harmful else "benign",
            "confidence": 0.9,
            "rationale": "scripted",
        }
    if stage == "decision":
        return {"decision": "refuse" if harmful else "comply", "risk": "", "rationale": "s"}
    return REFUSAL if "should not fulfil" in request.text else ANSWER


@pytest.fixture(scope="module")
def replay_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `poise run --model replay/gpt-4o --limit 10 --out tmp` writes."""
    out = tmp_path_factory.mktemp("replay")
    made = CliRunner().invoke(
        app,
        ["run", "--model", "replay/gpt-4o", "--limit", "10", "--out", str(out), "--no-progress"],
    )
    assert made.exit_code == 0, (made.output, made.exception)
    (directory,) = [p.parent for p in out.rglob("run.json")]
    return directory


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `poise` pipeline run (4 stages) judged by `offline` and `mossbench-llm`."""
    root = tmp_path_factory.mktemp("pipeline")
    data = build_mossbench_dir(root / "data", 4)
    with MockOpenAIServer(reply=_scripted) as server:
        spec = RunSpec(
            model="openai-compatible/vlm",
            base_url=server.base_url,
            data=str(data),
            pipeline="poise",
            system_prompt="calibrated",
            judges=JUDGES,
            judge_model="openai-compatible/judge",
        )
        result = asyncio.run(Runner(spec, root / "runs", progress=False, concurrency=4).run())
    return result.directory


def _export(*args: str) -> None:
    result = CliRunner().invoke(app, ["export", *args])
    assert result.exit_code == 0, (result.output, result.exception)


def _read(path: Path):
    from inspect_ai.log import read_eval_log

    return read_eval_log(str(path), resolve_attachments=True)


def _metrics(log) -> dict[str, dict[str, float]]:
    return {s.name: {k: m.value for k, m in s.metrics.items()} for s in log.results.scores}


@needs_inspect
def test_replay_run_reads_back_in_inspect(replay_run: Path, tmp_path: Path) -> None:
    from inspect_ai.event import ModelEvent, SpanBeginEvent

    out = tmp_path / "replay.eval"
    _export(str(replay_run), "--format", "inspect", "--out", str(out))
    log = _read(out)
    records = {r.sample_id: r for r in read_records(replay_run / RECORDS_FILE)}
    summary = json.loads((replay_run / "summary.json").read_text())

    assert log.status == "success"
    assert (log.eval.task, log.eval.model) == ("poise/mossbench", "replay/gpt-4o")
    assert log.eval.dataset.sample_ids == list(records)  # write order kept
    assert len(log.samples) == len(records) == 10
    for sample in log.samples:
        record = records[str(sample.id)]
        assert sample.input == record.query and sample.target == record.expected
        assert sample.output.completion == record.response
        verdict = record.verdicts["offline"]
        score = sample.scores["offline"]
        assert score.value == ("C" if verdict.correct else "I") and score.answer == verdict.label
        assert score.metadata["version"] == verdict.version
        spans = [e.name for e in sample.events if isinstance(e, SpanBeginEvent)]
        assert spans == ["init", "solvers", "baseline", "scorers", "offline"]
        (call,) = [e for e in sample.events if isinstance(e, ModelEvent)]
        assert call.role == "baseline" and call.output.completion == record.calls[0].output
        assert call.input[-1].text == record.query
    offline = _metrics(log)["offline"]
    assert offline["refusal_rate_pct"] == summary["metrics"]["offline"]["refusal_rate"]
    assert log.results.headline.metric == "refusal_rate_pct"


@needs_inspect
def test_pipeline_run_has_each_stage_every_judge_and_usage(
    pipeline_run: Path, tmp_path: Path
) -> None:
    from inspect_ai.event import InfoEvent, ModelEvent, ScoreEvent, SpanBeginEvent

    out = tmp_path / "pipeline.eval"
    _export(str(pipeline_run), "--out", str(out))  # --format inspect is the default
    log = _read(out)
    records = {r.sample_id: r for r in read_records(pipeline_run / RECORDS_FILE)}
    summary = json.loads((pipeline_run / "summary.json").read_text())
    assert len(log.samples) == len(records) == 4
    assert [step.solver for step in log.plan.steps] == STAGES

    for sample in log.samples:
        record = records[str(sample.id)]
        assert sample.input == record.query and sample.output.completion == record.response
        spans = {e.id: e.name for e in sample.events if isinstance(e, SpanBeginEvent)}
        assert list(spans.values()) == ["init", "solvers", *STAGES, "scorers", *JUDGES]
        models = [e for e in sample.events if isinstance(e, ModelEvent)]
        assert [m.role for m in models] == [c.stage for c in record.calls] == STAGES
        for event, call in zip(models, record.calls, strict=True):
            assert spans[event.span_id] == call.stage  # inside its stage's span
            assert event.output.completion == call.output
            assert event.input[-1].text == call.messages[-1]["content"]
            assert event.output.usage.input_tokens == call.input_tokens > 0
            assert event.output.usage.output_tokens == call.output_tokens
        infos = {e.source: e for e in sample.events if isinstance(e, InfoEvent)}
        assert set(infos) == set(record.stages)
        for stage, info in infos.items():
            assert info.data == record.stages[stage] and spans[info.span_id] == stage
        assert [e.scorer for e in sample.events if isinstance(e, ScoreEvent)] == JUDGES
        for judge in JUDGES:
            verdict = record.verdicts[judge]
            assert sample.scores[judge].answer == verdict.label
            assert sample.scores[judge].value == ("C" if verdict.correct else "I")
        assert sample.scores["mossbench-llm"].metadata["raw"].startswith("Description")
        usage = sample.model_usage["openai-compatible/vlm"]
        assert usage.input_tokens == sum(c.input_tokens for c in record.calls)
        assert usage.output_tokens == sum(c.output_tokens for c in record.calls)
        assert set(sample.role_usage) == set(STAGES)

    refused = {s.id for s in log.samples if s.scores["offline"].answer == "refuse"}
    assert refused == {"2"}  # the scripted harmful question, refused by the decision stage
    total = log.stats.model_usage["openai-compatible/vlm"]
    assert (total.input_tokens, total.output_tokens) == (
        summary["usage"]["input_tokens"],
        summary["usage"]["output_tokens"],
    )
    metrics = _metrics(log)
    for judge in JUDGES:
        assert metrics[judge]["refusal_rate_pct"] == summary["metrics"][judge]["refusal_rate"]
        assert metrics[judge]["accuracy"] == 0.75

    again = tmp_path / "again.eval"
    _export(str(pipeline_run), "--out", str(again))
    assert [s.model_dump() for s in _read(again).samples] == [s.model_dump() for s in log.samples]


@needs_inspect
def test_a_sweep_directory_gives_one_log_per_run(
    replay_run: Path, pipeline_run: Path, tmp_path: Path
) -> None:
    from inspect_ai.log import read_eval_log

    sweep = tmp_path / "sweep"
    for run in (replay_run, pipeline_run):
        shutil.copytree(run, sweep / run.name)
    _export(str(sweep), "--out", str(tmp_path / "logs"))
    files = sorted((tmp_path / "logs").glob("*.eval"))
    assert [f.stem for f in files] == sorted([replay_run.name, pipeline_run.name])
    assert {read_eval_log(str(f), header_only=True).eval.model for f in files} == {
        "replay/gpt-4o",
        "openai-compatible/vlm",
    }
    one_file = CliRunner().invoke(app, ["export", str(sweep), "--out", str(tmp_path / "x.eval")])
    assert isinstance(one_file.exception, PoiseError)
    assert "one .eval file per run" in str(one_file.exception)


def _old_run(root: Path) -> Path:
    """A run as an older Poise wrote it: sparse run.json, records lacking later fields."""
    directory = root / "old-run"
    directory.mkdir(parents=True)
    run = {"benchmark": "mossbench", "model": "openai/gpt-4o", "pipeline": "baseline"}
    (directory / "run.json").write_text(json.dumps(run))
    lines = [
        {  # no run_id, finished_at, latency_s; a verdict without judge or version
            "benchmark": "mossbench",
            "sample_id": 7,
            "expected": "comply",
            "query": "What is this?",
            "model": "openai/gpt-4o",
            "pipeline": "baseline",
            "calls": [{"stage": "baseline", "messages": [{"role": "human", "content": "What?"}]}],
            "response": '=HYPERLINK("http://x")',
            "verdicts": {"offline": {"label": "comply", "refused": False, "correct": True}},
        },
        {"sample_id": "8", "query": "Q8", "expected": "comply", "error": "APITimeoutError: t"},
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines) + '{"sample_id": "9", "que'
    (directory / RECORDS_FILE).write_text(text)
    return directory


@needs_inspect
def test_an_old_run_exports_with_missing_fields(tmp_path: Path) -> None:
    directory = _old_run(tmp_path)
    out = tmp_path / "old.eval"
    result = CliRunner().invoke(app, ["export", str(directory), "--out", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    log = _read(out)
    samples = {s.id: s for s in log.samples}
    assert set(samples) == {"7", "8"}
    assert samples["7"].scores["offline"].value == "C"
    assert samples["7"].output.completion.startswith("=HYPERLINK")
    assert samples["8"].error.message.startswith("APITimeoutError") and not samples["8"].scores
    assert log.results.completed_samples == 1


def test_an_old_run_exports_to_csv_and_says_what_it_left_out(tmp_path: Path) -> None:
    directory = _old_run(tmp_path)
    out = tmp_path / "old.csv"
    result = CliRunner().invoke(
        app, ["export", str(directory), "--format", "csv", "--out", str(out)]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert "1 line(s) of records.jsonl are not records" in " ".join(result.output.split())
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["sample_id"] for r in rows] == ["7", "8"]
    assert rows[0]["response"] == '\'=HYPERLINK("http://x")'
    assert rows[1]["error"].startswith("APITimeoutError")


def test_csv_is_one_formula_safe_capped_row_per_record(
    replay_run: Path, pipeline_run: Path, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    shutil.copytree(replay_run, sweep / replay_run.name)
    shutil.copytree(pipeline_run, sweep / pipeline_run.name)
    records_path = sweep / replay_run.name / RECORDS_FILE
    records: list[Record] = read_records(records_path)
    records[0].response = '=HYPERLINK("http://evil.example","click")'
    records[1].response = "@SUM(A1:A2)"
    records[2].response = "x" * 40_000
    records[3].stages = {"note": {"text": "-2+3", "items": ["+a", "b"]}}
    write_records(records_path, records)

    out = tmp_path / "all.csv"
    _export(str(sweep), "--format", "csv", "--out", str(out), "--max-cell-chars", "1000")
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert len(rows) == 10 + 4  # one row per record of both runs
    by_key = {(r["directory"], r["sample_id"]): r for r in rows}
    first = by_key[(replay_run.name, records[0].sample_id)]
    assert first["response"] == "'" + records[0].response
    assert by_key[(replay_run.name, records[1].sample_id)]["response"] == "'@SUM(A1:A2)"
    long = by_key[(replay_run.name, records[2].sample_id)]
    assert len(long["response"]) < 1_100 and "cut: 39000 more characters" in long["response"]
    assert long["response_chars"] == "40000"
    stage = by_key[(replay_run.name, records[3].sample_id)]
    assert stage["note.text"] == "'-2+3" and stage["note.items"] == "'+a; b"
    assert first["stimulus_type"] == "1" and first["offline.correct"] in ("True", "False")
    poise_rows = [r for r in rows if r["directory"] == pipeline_run.name]
    assert all(r["mossbench-llm.label"] for r in poise_rows)
    assert all(r["perception.description"] == "A playroom with toy blocks." for r in poise_rows)
    assert {int(r["calls"]) for r in poise_rows} == {4}
    assert all(not cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values())


def test_bad_format_and_out_are_one_line(replay_run: Path, tmp_path: Path) -> None:
    cli = CliRunner()
    bad = cli.invoke(app, ["export", str(replay_run), "--format", "xlsx"])
    assert isinstance(bad.exception, PoiseError) and "inspect, csv" in str(bad.exception)
    csv_out = cli.invoke(
        app, ["export", str(replay_run), "--format", "csv", "--out", str(tmp_path / "a.txt")]
    )
    assert isinstance(csv_out.exception, PoiseError) and "FILE.csv" in str(csv_out.exception)
    missing = cli.invoke(app, ["export", str(tmp_path / "nope"), "--format", "csv"])
    assert isinstance(missing.exception, PoiseError) and "does not exist" in str(missing.exception)


def test_missing_inspect_extra_is_one_line_naming_it(replay_run: Path, tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['inspect_ai'] = None; "
        f"sys.argv = ['poise', 'export', {str(replay_run)!r}, '--out', {str(tmp_path / 'x.eval')!r}]; "
        "from poise.eval.cli import main; main()"
    )
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert process.returncode == 2, process.stderr
    assert len(process.stderr.strip().splitlines()) == 1
    assert "[inspect]" in process.stderr and "pip install 'poise-safety[inspect]'" in process.stderr
    assert not (tmp_path / "x.eval").exists()


def test_the_export_package_ships_in_the_wheel() -> None:
    """pyproject lists packages one by one: a package left out installs without `poise export`."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    packages = config["tool"]["setuptools"]["packages"]
    assert "poise.eval.export" in packages, (
        'add "poise.eval.export" to [tool.setuptools] packages in pyproject.toml'
    )
