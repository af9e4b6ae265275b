"""Sampling parameters: parsed once, part of a run's identity, sent to the server, cache-scoped.

The requests are read back from local servers on 127.0.0.1: the OpenAI-compatible test
server (``poise.eval.testing.openai_server``) and a minimal fake of Anthropic's Messages API
that records each request body.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import build_mossbench_dir

from poise.agents.models.handle import load_model
from poise.agents.models.registry import non_default_params, parse_model_params
from poise.errors import PoiseError
from poise.eval.run.records import read_records
from poise.eval.run.runner import Runner, RunSpec, judge_with_params
from poise.eval.testing.openai_server import MockOpenAIServer

MODEL = "openai-compatible/vlm"


def _max_tokens(body: dict) -> int | None:
    """langchain-openai sends the current API name, max_completion_tokens."""
    return body.get("max_completion_tokens", body.get("max_tokens"))


def _run(spec: RunSpec, out: Path):
    return asyncio.run(Runner(spec, out, progress=False, concurrency=4).run())


def _cli(*args: str):
    """In-process: a PoiseError comes back as ``result.exception`` (main() prints it)."""
    from typer.testing import CliRunner

    from poise.eval.cli import app

    return CliRunner().invoke(app, list(args))


def _poise(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "poise", *args], capture_output=True, text=True, timeout=120
    )


# -- parsing ------------------------------------------------------------------------------


def test_values_are_numbers_of_their_parameter_type() -> None:
    params = parse_model_params(["temperature=1", "top_p=0.9", "max_tokens=256", "seed=7"])
    assert params == {"temperature": 1.0, "top_p": 0.9, "max_tokens": 256, "seed": 7}
    assert isinstance(params["temperature"], float) and isinstance(params["max_tokens"], int)
    assert parse_model_params(["max_tokens=256.0"]) == {"max_tokens": 256}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("colour=red", "unknown parameter; known: temperature, top_p, max_tokens, seed"),
        ("temperature=hot", "give a number >= 0"),
        ("temperature=-1", "give a number >= 0"),
        ("top_p=0", "give a number in (0, 1]"),
        ("max_tokens=1.5", "give a whole number >= 1"),
        ("temperature", "takes KEY=VALUE"),
    ],
)
def test_bad_parameters_are_one_line_errors(value: str, expected: str) -> None:
    with pytest.raises(PoiseError, match=None) as caught:
        parse_model_params([value])
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_unknown_key_on_the_command_line_lists_the_known_ones(tmp_path: Path) -> None:
    result = _poise("run", "--model-param", "colour=red", "--out", str(tmp_path))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "colour" in lines[0] and "temperature, top_p, max_tokens, seed" in lines[0]
    bad_stage = _cli("run", "--stage-model-param", "temperature=1", "--out", str(tmp_path))
    assert isinstance(bad_stage.exception, PoiseError)
    assert "STAGE:KEY=VALUE" in str(bad_stage.exception)


# -- identity -----------------------------------------------------------------------------


def test_default_runs_keep_their_name_identity_and_run_id() -> None:
    spec = RunSpec(model=MODEL, pipeline="poise")
    assert spec.directory_name() == "mossbench__poise__vanilla__openai-compatible-vlm"
    # the identity of a run recorded before parameters existed, computed as it was then
    old = spec.model_dump(
        exclude={
            "selection",
            "judges",
            "judge_model",
            "data",
            "base_url",
            "model_params",
            "stage_model_params",
            "judge_model_params",
            "epochs",
        }
    )
    assert spec.identity() == old
    same = RunSpec(model=MODEL, pipeline="poise", model_params={"max_tokens": 1024.0})
    assert same.identity() == spec.identity() and same.run_id == spec.run_id
    assert same.directory_name() == spec.directory_name()
    assert RunSpec(model=MODEL, epochs=3, judge_model_params={"temperature": 1}).run_id == (
        RunSpec(model=MODEL).run_id
    )


def test_changed_parameters_name_their_own_run() -> None:
    hot = RunSpec(model=MODEL, model_params={"temperature": 1, "max_tokens": 1024, "seed": 7})
    assert hot.directory_name().endswith("__params-t1-seed7")
    assert hot.identity()["model_params"] == {"seed": 7, "temperature": 1.0}
    assert hot.run_id != RunSpec(model=MODEL).run_id
    assert RunSpec(model=MODEL, model_params={"temperature": 1.0}).run_id == (
        RunSpec(model=MODEL, model_params={"temperature": 1}).run_id
    )
    staged = RunSpec(model=MODEL, pipeline="poise", stage_model_params={"decision": {"top_p": 0.5}})
    assert "__stage-params-" in staged.directory_name()
    # a stage set back to the default in a temperature-1 run is a change; the run's own value is not
    back = RunSpec(
        model=MODEL,
        model_params={"temperature": 1},
        stage_model_params={"intent": {"temperature": 0}},
    )
    assert back.identity()["stage_model_params"] == {"intent": {}}
    echo = RunSpec(
        model=MODEL,
        model_params={"temperature": 1},
        stage_model_params={"intent": {"temperature": 1}},
    )
    assert "stage_model_params" not in echo.identity()
    assert non_default_params("openai/gpt-4o", {"temperature": 0.0, "max_tokens": 1024}) == {}


# -- the server sees them -----------------------------------------------------------------


def test_parameters_reach_the_openai_compatible_server(tmp_path: Path) -> None:
    data = build_mossbench_dir(tmp_path / "data", 2)
    with MockOpenAIServer() as server:
        default = RunSpec(model=MODEL, base_url=server.base_url, data=str(data))
        _run(default, tmp_path / "runs")
        sent_default = [r.raw for r in server.requests]
        params = {"temperature": 0.7, "top_p": 0.9, "max_tokens": 77, "seed": 5}
        _run(default.model_copy(update={"model_params": params}), tmp_path / "runs")
        sent = [r.raw for r in server.requests][len(sent_default) :]
    assert len(sent_default) == 2 and len(sent) == 2
    for body in sent_default:
        assert body["temperature"] == 0 and _max_tokens(body) == 1024
        assert "top_p" not in body and "seed" not in body
    for body in sent:
        assert {k: body.get(k) for k in ("temperature", "top_p", "seed")} == {
            "temperature": 0.7,
            "top_p": 0.9,
            "seed": 5,
        }
        assert _max_tokens(body) == 77
    run_dirs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert run_dirs == [
        "mossbench__baseline__vanilla__openai-compatible-vlm",
        "mossbench__baseline__vanilla__openai-compatible-vlm__params-t0.7-p0.9-max77-seed5",
    ]
    stored = json.loads((tmp_path / "runs" / run_dirs[1] / "run.json").read_text())
    assert stored["model_params"] == params
    summary = json.loads((tmp_path / "runs" / run_dirs[1] / "summary.json").read_text())
    assert summary["model_params"] == params


def _stage(request) -> str:
    rf = request.response_format or {}
    return ((rf.get("json_schema") or {}).get("name") or "response").lower()


def test_stage_parameters_reach_only_their_stage(tmp_path: Path) -> None:
    data = build_mossbench_dir(tmp_path / "data", 1)
    with MockOpenAIServer() as server:
        spec = RunSpec(
            model=MODEL,
            base_url=server.base_url,
            data=str(data),
            pipeline="poise",
            model_params={"max_tokens": 300},
            stage_model_params={"intent": {"temperature": 0.5, "max_tokens": 50}},
        )
        _run(spec, tmp_path / "runs")
        sent = {_stage(r): r.raw for r in server.requests}
    assert sent["intent"]["temperature"] == 0.5 and _max_tokens(sent["intent"]) == 50
    assert sent["perception"]["temperature"] == 0 and _max_tokens(sent["perception"]) == 300
    with pytest.raises(PoiseError, match="--stage-model-param: pipeline baseline has no stage"):
        _run(spec.model_copy(update={"pipeline": "baseline"}), tmp_path / "runs")


def test_the_stage_cache_never_shares_a_stage_across_parameters(tmp_path: Path) -> None:
    """Two sweep cells differing only in the decision stage's temperature share perception
    and intent; a cell at another run-wide temperature shares nothing."""
    from poise.eval.run.sweep import run_sweep

    data = build_mossbench_dir(tmp_path / "data", 2)
    with MockOpenAIServer() as server:
        base = RunSpec(model=MODEL, base_url=server.base_url, data=str(data), pipeline="poise")
        cells = [
            base,
            base.model_copy(update={"stage_model_params": {"decision": {"temperature": 0.3}}}),
            base.model_copy(update={"model_params": {"temperature": 0.3}}),
        ]
        result = asyncio.run(run_sweep(cells, tmp_path / "sweep", progress=False))
        by_stage: dict[str, list[float]] = {}
        for request in server.requests:
            by_stage.setdefault(_stage(request), []).append(request.raw["temperature"])
    # perception and intent: once at 0 (shared by cells 1 and 2) and once at 0.3 (cell 3).
    # The scripted server answers alike at any temperature, so cell 3's decision sees the same
    # inputs and parameters as cell 2's and is shared; cell 1's, at 0, is not.
    assert sorted(by_stage["perception"]) == [0, 0, 0.3, 0.3]
    assert sorted(by_stage["intent"]) == [0, 0, 0.3, 0.3]
    assert sorted(by_stage["decision"]) == [0, 0, 0.3, 0.3]
    assert result.calls_made + result.calls_saved == 3 * 2 * 4
    assert len({s["directory"] for s in result.summaries}) == 3


# -- Anthropic, offline -------------------------------------------------------------------


class _FakeAnthropic(BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        length = int(self.headers.get("content-length", 0))
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        reply = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": [{"type": "text", "text": "Here is an answer."}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 3, "output_tokens": 4},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def test_anthropic_requests_carry_the_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-not-secret")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeAnthropic)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _FakeAnthropic.bodies = []
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for params in ({}, {"max_tokens": 64, "temperature": 0.4, "top_p": 0.8}):
            handle = load_model("anthropic/claude-test", base_url=base_url, **params)
            reply = asyncio.run(handle.chat.ainvoke("Hello?"))
            assert reply.content == "Here is an answer."
    finally:
        server.shutdown()
        server.server_close()
    default, tuned = _FakeAnthropic.bodies
    assert default["max_tokens"] == 1024 and default["temperature"] == 0
    assert (tuned["max_tokens"], tuned["temperature"], tuned["top_p"]) == (64, 0.4, 0.8)
    with pytest.raises(PoiseError, match="anthropic models take no seed"):
        load_model("anthropic/claude-test", base_url=base_url, seed=1)


# -- judges -------------------------------------------------------------------------------


def test_judge_parameters_reach_the_llm_judge_and_are_refused_without_one(tmp_path: Path) -> None:
    from poise.benchmarks.sample import Expected, ImageRef, Sample

    sample = Sample(
        id="1",
        benchmark="mossbench",
        query="How do I cut an onion?",
        image=ImageRef(path=None),
        expected=Expected("comply"),
        stimulus_type=1,
    )
    with MockOpenAIServer(
        reply=lambda r: "The image shows a kitchen. Score: 0 Reason: answered"
    ) as server:
        options = {"model": MODEL, "base_url": server.base_url}
        judge = judge_with_params("mossbench-llm", options, {"temperature": 0.2, "seed": 3})
        verdict = asyncio.run(judge.judge(sample, "Slice it."))
        (body,) = [r.raw for r in server.requests]
    assert verdict.refused is False
    assert body["temperature"] == 0.2 and body["seed"] == 3

    data = build_mossbench_dir(tmp_path / "data", 1)
    spec = RunSpec(model="replay/gpt-4o", judge_model_params={"temperature": 1})
    with pytest.raises(PoiseError, match="--judge-model-param applies to LLM judges"):
        _run(spec.model_copy(update={"data": str(data)}), tmp_path / "runs")
    run_dir = tmp_path / "runs2"
    result = _cli(
        "run", "--model", "replay/gpt-4o", "--limit", "1", "--out", str(run_dir), "--no-progress"
    )
    assert result.exit_code == 0, result.output
    (directory,) = list(run_dir.iterdir())
    refused = _cli("judge", str(directory), "--judge-model-param", "temperature=1")
    assert isinstance(refused.exception, PoiseError)
    assert "applies to LLM judges" in str(refused.exception)
    assert read_records(directory / "records.jsonl")
