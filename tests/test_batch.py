"""``--batch``: a poise run through the OpenAI / Anthropic batch APIs of a local fake.

The runner integration (the CLI flag, handing the run directory to the handles) lives in
files other sessions own; these tests apply the hook the way the runner will, by wrapping
``load_model`` in :func:`poise.agents.models.batching.enable_batching`.

Run as a script (``python tests/test_batch.py child ...``) it is the child process that the
SIGKILL test kills while its batch is pending.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

from conftest import build_mossbench_dir  # noqa: E402

from poise.agents.models import batching  # noqa: E402
from poise.agents.models.batching import STATE_FILE, enable_batching  # noqa: E402
from poise.eval.run import runner as runner_module  # noqa: E402
from poise.eval.run.records import read_records  # noqa: E402
from poise.eval.run.runner import Runner, RunSpec, Selection  # noqa: E402
from poise.eval.testing.batch_server import FakeBatchAPI  # noqa: E402

N = 8
KEYS = {"openai": "sk-test-openai-batch", "anthropic": "sk-ant-test-batch"}
MODELS = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-test"}
STAGES = ["perception", "intent", "decision", "response"]
NODES = ["perceive", "infer_intent", "decide", "answer"]  # the poise graph's node names


def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEYS["openai"])
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEYS["anthropic"])
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


def _base_url(server: FakeBatchAPI, vendor: str) -> str:
    return server.openai_base_url if vendor == "openai" else server.anthropic_base_url


def _spec(server: FakeBatchAPI, vendor: str, data: Path) -> RunSpec:
    return RunSpec(
        benchmark="mossbench",
        data=str(data),
        model=MODELS[vendor],
        pipeline="poise",
        base_url=_base_url(server, vendor),
        selection=Selection(limit=N),
    )


def _batched_loading(spec: RunSpec, out: Path, progress: list[Any] | None = None) -> Any:
    """What the runner will do under --batch: every handle batched, state in the run dir."""
    real = runner_module.load_model
    directory = out / spec.directory_name()

    def load(name: str, **kwargs: Any) -> Any:
        return enable_batching(
            real(name, **kwargs),
            directory,
            progress.append if progress is not None else None,
            settle_s=0.2,
            poll_s=0.01,
        )

    return load


def _run(spec: RunSpec, out: Path, *, batch: bool, progress: list[Any] | None = None) -> Any:
    original = runner_module.load_model
    if batch:
        runner_module.load_model = _batched_loading(spec, out, progress)
    try:
        return asyncio.run(Runner(spec, out, progress=False, concurrency=N).run())
    finally:
        runner_module.load_model = original


def _records(result: Any) -> dict[str, Any]:
    return {r.sample_id: r for r in read_records(result.directory / "records.jsonl")}


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_a_batched_run_records_what_a_normal_run_records(
    vendor: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(monkeypatch)
    data = build_mossbench_dir(tmp_path / "data", N)
    progress: list[Any] = []
    with FakeBatchAPI(polls=2) as server:
        spec = _spec(server, vendor, data)
        normal = _records(_run(spec, tmp_path / "normal", batch=False))
        assert server.sync_calls == N * 4 and not server.created
        batched_result = _run(spec, tmp_path / "batched", batch=True, progress=progress)
        batched = _records(batched_result)
        assert server.sync_calls == N * 4  # nothing went the normal way

        # one batch per stage round, of all N samples, one model each
        created = server.batches(vendor)
        assert len(created) == len(STAGES)
        assert [len(b["custom_ids"]) for b in created] == [N] * len(STAGES)
        assert all(b["model"] == MODELS[vendor].split("/", 1)[1] for b in created)
        for batch, node in zip(created, NODES, strict=True):
            assert all(f"-{node}-" in cid for cid in batch["custom_ids"])
        # keys only to their provider
        assert server.keys == {vendor: {KEYS[vendor]}, **{v: set() for v in KEYS if v != vendor}}

    assert sorted(normal) == sorted(batched) == [str(i) for i in range(1, N + 1)]
    for sample_id, expected in normal.items():
        got = batched[sample_id]
        assert got.error is None and expected.error is None
        assert [c.stage for c in got.calls] == [c.stage for c in expected.calls] == STAGES
        for a, b in zip(got.calls, expected.calls, strict=True):
            assert (a.output, a.input_tokens, a.output_tokens, a.messages, a.parse_error) == (
                b.output,
                b.input_tokens,
                b.output_tokens,
                b.messages,
                b.parse_error,
            )
            assert a.input_tokens and a.output_tokens
        assert got.stages == expected.stages and got.response == expected.response
        assert got.verdicts == expected.verdicts
    assert progress and all(p.provider == vendor for p in progress)
    assert sum(p.finished for p in progress) == len(STAGES)
    state = json.loads((batched_result.directory / STATE_FILE).read_text())
    assert len(state["batches"]) == len(STAGES) and len(state["requests"]) == N * len(STAGES)


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_the_batched_message_equals_langchains_own(
    vendor: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Content, usage, response metadata and extra fields, plain and structured."""
    from langchain_core.messages import HumanMessage, SystemMessage
    from pydantic import BaseModel

    from poise.agents.models.handle import load_model

    class Verdict(BaseModel):
        harmful: bool
        reason: str

    _env(monkeypatch)
    schema = {"title": "Verdict", **Verdict.model_json_schema()}
    fmt = {"type": "json_schema", "json_schema": {"name": "Verdict", "schema": schema}}
    messages = [SystemMessage(content="Be brief."), HumanMessage(content="Is this safe?")]

    async def both(server: FakeBatchAPI) -> list[tuple[Any, Any]]:
        handle = load_model(MODELS[vendor], base_url=_base_url(server, vendor))
        batched = enable_batching(handle, tmp_path, None, settle_s=0.05, poll_s=0.01)
        pairs = [(await handle.chat.ainvoke(messages), await batched.chat.ainvoke(messages))]
        if vendor == "openai":
            pairs.append(
                (
                    await handle.chat.ainvoke(messages, response_format=fmt),
                    await batched.chat.ainvoke(messages, response_format=fmt),
                )
            )
        else:
            normal = await handle.structured(schema).ainvoke(messages)
            via_batch = await batched.structured(schema).ainvoke(messages)
            assert normal["parsed"] == via_batch["parsed"] and via_batch["parsed"]
            pairs.append((normal["raw"], via_batch["raw"]))
        return pairs

    with FakeBatchAPI(polls=1) as server:
        pairs = asyncio.run(both(server))
        assert len(server.created) == 2
    for normal, via_batch in pairs:
        assert via_batch.content == normal.content
        assert via_batch.usage_metadata == normal.usage_metadata
        assert via_batch.response_metadata == normal.response_metadata
        assert via_batch.additional_kwargs == normal.additional_kwargs
        assert via_batch.tool_calls == normal.tool_calls


def test_a_failed_request_in_a_completed_batch_is_that_samples_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(monkeypatch)
    data = build_mossbench_dir(tmp_path / "data", N)
    failing = {"on": True}

    def fail(custom_id: str, body: dict[str, Any]) -> bool:
        return failing["on"] and custom_id.startswith("s3-infer_intent-")

    with FakeBatchAPI(polls=2, fail=fail) as server:
        spec = _spec(server, "openai", data)
        result = _run(spec, tmp_path / "out", batch=True)
        assert result.errors == 1 and len(server.created) == 4
        records = read_records(result.directory / "records.jsonl")
        bad = [r for r in records if r.error]
        assert [r.sample_id for r in bad] == ["3"]
        assert "made to fail" in bad[0].error and "HTTP 400" in bad[0].error
        assert len(records) == N
        state = json.loads((result.directory / STATE_FILE).read_text())
        assert not any(cid.startswith("s3-infer_intent-") for cid in state["requests"])

        failing["on"] = False  # the rerun submits the failed call anew, nothing else
        again = _run(spec, tmp_path / "out", batch=True)
        assert again.new_records == 1 and again.errors == 0
        new = server.created[4:]
        assert [len(b["custom_ids"]) for b in new] == [1, 1, 1]  # intent, decision, response
        assert new[0]["custom_ids"][0].startswith("s3-infer_intent-")
        records = read_records(result.directory / "records.jsonl")
        assert sorted(r.sample_id for r in records) == [str(i) for i in range(1, N + 1)]
        assert all(r.error is None for r in records)


def _child(base_url: str, out: str, data: str, vendor: str) -> None:
    """The process the SIGKILL test kills: a batched run whose first batch never ends."""
    server = FakeBatchAPI()  # only for its URL helpers' shape; the real one is the parent's
    del server
    spec = RunSpec(
        benchmark="mossbench",
        data=data,
        model=MODELS[vendor],
        pipeline="poise",
        base_url=base_url,
        selection=Selection(limit=N),
    )
    _run(spec, Path(out), batch=True)


def test_sigkill_while_a_batch_is_pending_then_rerun_collects_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(monkeypatch)
    data = build_mossbench_dir(tmp_path / "data", N)
    out = tmp_path / "out"
    vendor = "anthropic"
    with FakeBatchAPI(polls=10**9) as server:  # pending until the parent says otherwise
        spec = _spec(server, vendor, data)
        state_file = out / spec.directory_name() / STATE_FILE
        env = {k: v for k, v in os.environ.items() if "TOKEN" not in k}
        child = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "child",
                _base_url(server, vendor),
                str(out),
                str(data),
                vendor,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not (state_file.is_file() and server.created):
                assert child.poll() is None, child.stderr.read() if child.stderr else ""
                assert time.monotonic() < deadline, "the child never submitted a batch"
                time.sleep(0.05)
            time.sleep(0.1)  # a few polls of the pending batch
            os.kill(child.pid, signal.SIGKILL)  # only the process this test started
        finally:
            child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL
        assert len(server.created) == 1
        first = server.created[0]
        assert len(first["custom_ids"]) == N
        assert not (out / spec.directory_name() / "records.jsonl").read_text().strip()

        server.polls = 2
        result = _run(spec, out, batch=True)
        assert result.new_records == N and result.errors == 0
        # the pending batch was collected, not submitted again; the later stages were new
        assert len(server.created) == len(STAGES)
        resubmitted = {c for b in server.created[1:] for c in b["custom_ids"]}
        assert not resubmitted & set(first["custom_ids"])
        records = read_records(out / spec.directory_name() / "records.jsonl")
        assert sorted(r.sample_id for r in records) == [str(i) for i in range(1, N + 1)]
        assert all(r.error is None and len(r.calls) == len(STAGES) for r in records)

        again = _run(spec, out, batch=True)  # all recorded: nothing asked
        assert again.new_records == 0 and len(server.created) == len(STAGES)


def test_a_batch_outlasting_the_timeout_is_waited_for_under_batch_call_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--timeout bounds one HTTP request; a batched call waits for its batch (the line the
    call path adds: ``limits=batch_call_limits()`` for a batched handle)."""
    from langchain_core.messages import HumanMessage

    from poise.agents.models.handle import load_model
    from poise.agents.retry import call_with_retries, configure_calls, reset_calls

    _env(monkeypatch)
    configure_calls(timeout_s=0.05, max_retries=0)
    try:
        with FakeBatchAPI(polls=6) as server:
            handle = load_model(MODELS["openai"], base_url=server.openai_base_url)
            batched = enable_batching(handle, tmp_path, None, settle_s=0.05, poll_s=0.05)
            assert batching.is_batched(batched.chat)

            async def call() -> Any:
                return await call_with_retries(
                    lambda: batched.chat.ainvoke([HumanMessage(content="hi")]),
                    provider="openai",
                    limits=batching.batch_call_limits(),
                )

            reply = asyncio.run(call())
            assert reply.content.startswith("Fake answer") and len(server.created) == 1
    finally:
        reset_calls()


def test_other_providers_are_left_as_they_are(tmp_path: Path) -> None:
    from poise.agents.models.handle import load_model

    handle = load_model("replay/gpt-4o")
    assert enable_batching(handle, tmp_path) is handle
    assert not batching.is_batched(handle.chat)


if __name__ == "__main__" and sys.argv[1:2] == ["child"]:
    _child(*sys.argv[2:6])


def test_runner_batch_flag_batches_every_stage_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`poise run --batch` (Runner(batch=True)) wraps every handle: one batch per stage round."""
    import functools

    _env(monkeypatch)
    fast = functools.partial(batching.enable_batching, settle_s=0.2, poll_s=0.01)
    monkeypatch.setattr(batching, "enable_batching", fast)
    data = build_mossbench_dir(tmp_path / "d", N)
    with FakeBatchAPI() as server:
        spec = _spec(server, "openai", data)
        result = asyncio.run(
            Runner(spec, tmp_path / "out", progress=False, concurrency=2, batch=True).run()
        )
        assert len(server.batches("openai")) == len(STAGES)
    records = _records(result)
    assert len(records) == N and all(r.error is None for r in records.values())
    assert (result.directory / STATE_FILE).is_file()
