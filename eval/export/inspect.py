"""A Poise run as an inspect_ai eval log, written through inspect_ai's own log API.

Why inspect_ai's API rather than writing the zip ourselves: the ``.eval`` format (zstd zip
members, attachments, pooled events) changes between inspect_ai releases, and only
``write_eval_log`` keeps up with it; the ``[inspect]`` extra pins the lower bound this was
tested with. inspect_ai is imported inside :func:`export_inspect` only: importing it takes
1.5-5 s, which no other ``poise`` command should pay.

The mapping (one run directory = one log: an inspect log is one task and one model):

* a record is an ``EvalSample``: ``input`` the query, ``target`` the expected behaviour,
  ``output`` the final response, ``messages`` the last call's input plus that response;
* the transcript copies the layout of a real ``inspect_ai.eval()``: an ``init`` span, a
  ``solvers`` span holding one ``solver`` span per pipeline stage (in pipeline order) with a
  ``ModelEvent`` per model call (``role`` = the stage) and an ``InfoEvent`` with the stage's
  structured output (an oracle stage has only the latter), then a ``scorers`` span with one
  ``ScoreEvent`` per judge, and an ``ErrorEvent`` for a sample that failed;
* each judge's verdict is a ``Score`` (``C``/``I`` from ``correct``, ``answer`` the label,
  the raw judge output and judge version in its metadata); a verdict with no ``correct`` is
  unscored;
* usage: per call on its event, per model and per stage on the sample, per model on the log.
  Calls reused from another cell of a sweep (``cached``) show their tokens on their event
  but are not added to the totals, as in ``summary.json``;
* the log's results carry Poise's own metrics (the numbers ``poise run`` prints, in %) and
  inspect's ``accuracy`` (a fraction, over scored verdicts).

Pitfalls handled (all observed with inspect_ai 0.3.285): a log's ``status`` defaults to
"started" (shown as still running); events default to a random uuid, the current time and
``time.monotonic()`` outside a running eval, message and eval ids are random too, so all are
set from the record to make two exports of one run read back identical; ``EvalError`` needs
a traceback (Poise keeps one line, repeated); ``EvalMetric.value`` cannot be None; inspect
collapses samples with the same id, so a duplicate id gets a suffix; ``recompute_metrics`` or
a score edit in the viewer rebuilds results from the declared scorers' metrics, which are
declared as inspect's accuracy and stderr so that they survive (Poise's % metrics do not).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from poise.errors import PoiseError
from poise.eval.export.source import RunData
from poise.eval.judges.base import Verdict
from poise.eval.run.records import RUN_FILE, Record

if TYPE_CHECKING:
    from inspect_ai.event import Event
    from inspect_ai.log import EvalLog, EvalMetric, EvalResults, EvalSample
    from inspect_ai.model import ChatMessage, ModelUsage
    from inspect_ai.scorer import Score

    from poise.agents.calls import Call

# LangChain message types (what Call.messages stores) -> inspect roles.
ROLES = {"human": "user", "user": "user", "ai": "assistant", "assistant": "assistant"}
ROLES |= {"system": "system", "developer": "system"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def require_inspect() -> None:
    """Fail with one line naming the ``[inspect]`` extra when inspect_ai is not installed."""
    from poise.extras import require

    require("inspect_ai", "inspect", "poise export --format inspect")


def export_inspect(run: RunData, out: Path) -> Path:
    """Write ``run`` as one ``.eval`` log at ``out`` (replaced atomically) and return it."""
    require_inspect()
    from inspect_ai.log import write_eval_log

    log = build_log(run)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed: an interrupted export never leaves half a log
    # where `inspect view` would list it. The ".eval" suffix tells inspect the format.
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".eval", dir=out.parent)
    os.close(fd)
    try:
        write_eval_log(log, tmp, format="eval")
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def build_log(run: RunData) -> EvalLog:
    """The whole eval log of one run (spec, plan, results, stats and samples)."""
    from inspect_ai.log import (
        EvalConfig,
        EvalDataset,
        EvalLog,
        EvalPlan,
        EvalPlanStep,
        EvalRevision,
        EvalSpec,
        EvalStats,
    )

    spec, records = run.spec, run.records
    ids = _unique_ids(records)
    judges = _judge_order(run)
    stages: list[str] = []
    for record in records:
        stages.extend(s for s in _stage_order(record) if s not in stages)
    starts = [_started(r) for r in records]
    ends = [_finished(r) for r in records]
    created = min(starts) if starts else _run_time(run)
    provenance = run.run.get("provenance") if isinstance(run.run.get("provenance"), dict) else {}
    git = provenance.get("git") if isinstance(provenance.get("git"), dict) else {}
    packages = provenance.get("packages") if isinstance(provenance.get("packages"), dict) else {}
    system_prompt = spec.system_prompt or "vanilla"
    selected = run.summary.get("samples_selected")
    eval_spec = EvalSpec(
        eval_id=f"poise-{run.run_id}",  # random per export otherwise
        run_id=run.run_id,
        task_id=run.run_id,
        created=created.isoformat(),
        task=f"poise/{spec.benchmark}",
        task_display_name=f"{spec.benchmark} · {spec.pipeline} · {system_prompt} · {spec.model}",
        task_args={"setting": spec.setting, "selection": spec.selection.model_dump()},
        solver=spec.pipeline,
        solver_args={
            "system_prompt": system_prompt,
            "prompt_stages": spec.prompt_stages,
            "stage_models": spec.stage_models,
            "oracle": spec.oracle,
            "judge_model": spec.judge_model,
        },
        dataset=EvalDataset(
            name=spec.benchmark,
            location=spec.data,
            samples=len(records),
            sample_ids=[ids[id(r)] for r in records],
        ),
        model=spec.model,
        model_base_url=spec.base_url,
        config=EvalConfig(epochs=1, fail_on_error=False, limit=spec.selection.limit),
        revision=EvalRevision(
            type="git", origin="poise", commit=str(git["commit"]), dirty=git.get("dirty")
        )
        if git.get("commit")
        else None,
        packages={
            "poise": str(provenance.get("poise") or ""),
            **{k: str(v) for k, v in packages.items() if v},
        },
        metadata={"poise_run": run.run, "poise_directory": run.directory.name},
        # EvalScorer is not exported by inspect_ai: plain dicts are validated by EvalSpec.
        scorers=[
            {
                "name": judge,
                "options": {},
                "metrics": [{"name": "inspect_ai/accuracy"}, {"name": "inspect_ai/stderr"}],
            }
            for judge in judges
        ],
    )
    plan = EvalPlan(
        name=spec.pipeline, steps=[EvalPlanStep(solver=stage, params={}) for stage in stages]
    )
    calls = [c for r in records for c in r.calls]
    stats = EvalStats(
        started_at=created.isoformat(),
        completed_at=(max(ends) if ends else created).isoformat(),
        model_usage=_usage_by(calls, lambda c: c.model),
    )
    killed = isinstance(selected, int) and len(records) < selected
    return EvalLog(
        # "started" (the default) shows as a running eval; a run stopped before it recorded
        # every selected sample is "cancelled"; sample errors keep "success", as inspect does
        # with fail_on_error=False.
        status="cancelled" if killed else "success",
        eval=eval_spec,
        plan=plan,
        results=_results(run, judges),
        stats=stats,
        samples=[_sample(record, ids[id(record)], run) for record in records],
    )


def _unique_ids(records: list[Record]) -> dict[int, str]:
    """Sample ids, made unique: inspect keeps one sample per id and drops the others."""
    seen: Counter[str] = Counter()
    out: dict[int, str] = {}
    for record in records:
        seen[record.sample_id] += 1
        n = seen[record.sample_id]
        out[id(record)] = record.sample_id if n == 1 else f"{record.sample_id}#{n}"
    return out


def _judge_order(run: RunData) -> list[str]:
    """The run's own judges first (the first one is the headline), then any added later."""
    try:
        declared = run.spec.judge_names()
    except PoiseError:  # a benchmark this Poise no longer knows
        declared = []
    present = [name for r in run.records for name in r.verdicts]
    return [n for n in dict.fromkeys([*declared, *present]) if n in set(present)]


def _ts(value: str | None) -> datetime:
    try:
        moment = datetime.fromisoformat(value or "")
    except ValueError:
        return EPOCH
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _finished(record: Record) -> datetime:
    return _ts(record.finished_at)


def _started(record: Record) -> datetime:
    return _finished(record) - timedelta(seconds=max(record.latency_s, 0.0))


def _run_time(run: RunData) -> datetime:
    path = run.directory / RUN_FILE
    return datetime.fromtimestamp(path.stat().st_mtime, UTC) if path.exists() else EPOCH


def _stage_order(record: Record) -> list[str]:
    """Stages in pipeline order: those with calls in call order, the others where they ran.

    A stage can have calls but no structured output (poise's ``response``), or output but no
    call (a stage replaced by the oracle); the latter goes before the first later stage of
    the ``stages`` dict that has a call, which is where the pipeline ran it.
    """
    order = list(dict.fromkeys(c.stage for c in record.calls))
    listed = list(record.stages)
    for i, stage in enumerate(listed):
        if stage in order:
            continue
        later = [s for s in listed[i + 1 :] if s in order]
        order.insert(order.index(later[0]) if later else len(order), stage)
    return order


def _usage(calls: Iterable[Call]) -> ModelUsage:
    """Summed tokens of calls that were made (a reused call was paid for elsewhere)."""
    from inspect_ai.model import ModelUsage

    made = [c for c in calls if not c.cached]
    tokens_in = sum(c.input_tokens or 0 for c in made)
    tokens_out = sum(c.output_tokens or 0 for c in made)
    return ModelUsage(
        input_tokens=tokens_in, output_tokens=tokens_out, total_tokens=tokens_in + tokens_out
    )


def _usage_by(calls: list[Call], key: Any) -> dict[str, ModelUsage]:
    groups: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        groups[key(call)].append(call)
    return {name: _usage(group) for name, group in groups.items()}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # an old record's content parts
        return "\n".join(
            part if isinstance(part, str) else str(part.get("text", "<image>"))
            for part in content
            if isinstance(part, (str, dict))
        )
    return "" if content is None else str(content)


def _messages(raw: list[dict[str, Any]], prefix: str) -> list[ChatMessage]:
    from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageUser

    kinds = {"user": ChatMessageUser, "assistant": ChatMessageAssistant}
    kinds["system"] = ChatMessageSystem
    out: list[ChatMessage] = []
    for i, message in enumerate(raw):
        role = ROLES.get(str(message.get("role") or message.get("type") or "user"), "user")
        out.append(kinds[role](id=f"{prefix}-{i}", content=_text(message.get("content"))))
    return out


def _score(verdict: Verdict) -> Score:
    """C/I from ``correct`` (inspect colours them and its accuracy maps them to 1/0).

    An unparseable judge output stays I (Poise counts it wrong, as the papers do) with
    ``reason="grader_failed"``; a verdict without ``correct`` is unscored.
    """
    from inspect_ai.scorer import CORRECT, INCORRECT, Score

    metadata = verdict.model_dump(exclude={"judge"})
    reason = "grader_failed" if verdict.error else None
    explanation = verdict.evidence or verdict.error or None
    if verdict.correct is None:
        return Score.unscored(
            reason=reason, answer=verdict.label, explanation=explanation, metadata=metadata
        )
    return Score(
        value=CORRECT if verdict.correct else INCORRECT,
        answer=verdict.label,
        explanation=explanation,
        reason=reason,
        metadata=metadata,
    )


def _sample(record: Record, sample_id: str, run: RunData) -> EvalSample:
    from inspect_ai.dataset import Sample
    from inspect_ai.event import (
        ErrorEvent,
        InfoEvent,
        ModelEvent,
        SampleInitEvent,
        ScoreEvent,
        SpanBeginEvent,
        SpanEndEvent,
    )
    from inspect_ai.log import EvalError, EvalSample
    from inspect_ai.model import (
        ChatCompletionChoice,
        ChatMessageAssistant,
        ChatMessageUser,
        GenerateConfig,
        ModelOutput,
    )

    started = _started(record)
    key = f"{record.run_id}-{sample_id}"
    events: list[Event] = []
    clock = 0.0  # seconds since the sample started; Poise keeps no per-call timestamps

    def at(span: str | None) -> dict[str, Any]:
        """Deterministic uuid, timestamp and working_start (their defaults are random/now)."""
        return {
            "uuid": f"{key}-e{len(events)}",
            "span_id": span,
            "timestamp": started + timedelta(seconds=clock),
            "working_start": clock,
        }

    metadata: dict[str, Any] = {
        "variant": record.variant,
        "stimulus_type": record.stimulus_type,
        "category": record.category,
        "pair_id": record.pair_id,
        "image": record.image,
        "pipeline": record.pipeline,
        "system_prompt": record.system_prompt.name if record.system_prompt else "vanilla",
        "oracle": record.oracle,
        "run_id": record.run_id,
        "sample_id": record.sample_id,
    }
    init = f"{key}-init"
    events.append(SpanBeginEvent(id=init, name="init", type="init", **at(init)))
    events.append(
        SampleInitEvent(
            sample=Sample(
                id=sample_id, input=record.query, target=record.expected, metadata=metadata
            ),
            state={"messages": [{"role": "user", "content": record.query}]},
            **at(init),
        )
    )
    events.append(SpanEndEvent(id=init, **at(init)))

    solvers = f"{key}-solvers"
    events.append(SpanBeginEvent(id=solvers, name="solvers", type="solvers", **at(solvers)))
    calls_of: dict[str, list[Call]] = defaultdict(list)
    for call in record.calls:
        calls_of[call.stage].append(call)
    for stage in _stage_order(record):
        span = f"{key}-stage-{stage}"
        events.append(
            SpanBeginEvent(id=span, name=stage, type="solver", parent_id=solvers, **at(span))
        )
        for k, call in enumerate(calls_of.get(stage, [])):
            prefix = f"{key}-{stage}-{k}"
            where = at(span)
            has_tokens = call.input_tokens is not None or call.output_tokens is not None
            events.append(
                ModelEvent(
                    model=call.model,
                    role=stage,
                    input=_messages(call.messages, prefix),
                    tools=[],
                    tool_choice="none",
                    config=GenerateConfig(),
                    output=ModelOutput(
                        model=call.model,
                        choices=[
                            ChatCompletionChoice(
                                message=ChatMessageAssistant(
                                    id=f"{prefix}-out",
                                    content=call.output,
                                    model=call.model,
                                    source="generate",
                                ),
                                stop_reason="stop",
                            )
                        ],
                        # the call's own tokens, even if reused: they show what it took
                        usage=_usage([call.model_copy(update={"cached": False})])
                        if has_tokens
                        else None,
                        time=call.latency_s,
                    ),
                    cache="read" if call.cached else None,
                    completed=where["timestamp"] + timedelta(seconds=call.latency_s),
                    working_time=call.latency_s,
                    metadata={
                        "cached": call.cached,
                        "parse_error": call.parse_error,
                        "truncated": call.truncated,
                    },
                    **where,
                )
            )
            clock += max(call.latency_s, 0.0)
        if stage in record.stages:
            events.append(
                InfoEvent(
                    source=stage,
                    data=record.stages[stage],
                    metadata={"oracle": stage in record.oracle},
                    **at(span),
                )
            )
        events.append(SpanEndEvent(id=span, **at(span)))
    events.append(SpanEndEvent(id=solvers, **at(solvers)))

    scores: dict[str, Score] = {}
    if record.verdicts:
        scorers = f"{key}-scorers"
        events.append(SpanBeginEvent(id=scorers, name="scorers", type="scorers", **at(scorers)))
        for name, verdict in record.verdicts.items():
            scores[name] = _score(verdict)
            span = f"{key}-scorer-{name}"
            events.append(
                SpanBeginEvent(id=span, name=name, type="scorer", parent_id=scorers, **at(span))
            )
            events.append(
                ScoreEvent(
                    score=scores[name],
                    target=record.expected,
                    scorer=name,
                    intermediate=False,
                    **at(span),
                )
            )
            events.append(SpanEndEvent(id=span, **at(span)))
        events.append(SpanEndEvent(id=scorers, **at(scorers)))

    error = None
    if record.error:
        # Poise keeps a one-line error and no traceback; all three fields are required.
        error = EvalError(message=record.error, traceback=record.error, traceback_ansi=record.error)
        clock = max(clock, record.latency_s)
        events.append(ErrorEvent(error=error, **at(None)))

    last = record.calls[-1] if record.calls else None
    messages = (
        _messages(last.messages, f"{key}-final")
        if last and last.messages
        else [ChatMessageUser(id=f"{key}-final-0", content=record.query)]
    )
    if record.response is not None:
        messages.append(
            ChatMessageAssistant(
                id=f"{key}-final-out",
                content=record.response,
                model=record.model,
                source="generate",
            )
        )
        output = ModelOutput(
            model=record.model,
            choices=[ChatCompletionChoice(message=messages[-1], stop_reason="stop")],
            usage=_usage(record.calls),
        )
    else:
        output = ModelOutput(model=record.model, error=record.error)

    return EvalSample(
        id=sample_id,
        epoch=1,
        input=record.query,
        target=record.expected,
        messages=messages,
        output=output,
        scores=scores or None,
        metadata=metadata,
        events=events,
        model_usage=_usage_by(record.calls, lambda c: c.model),
        role_usage=_usage_by(record.calls, lambda c: c.stage),
        started_at=started.isoformat(),
        completed_at=_finished(record).isoformat(),
        total_time=record.latency_s,
        working_time=sum(max(c.latency_s, 0.0) for c in record.calls),
        uuid=key,
        error=error,
    )


def _results(run: RunData, judges: list[str]) -> EvalResults:
    from inspect_ai.log import EvalResults, EvalScore, HeadlineMetric

    records = run.records
    scores = []
    for judge in judges:
        verdicts = [r.verdicts[judge] for r in records if judge in r.verdicts]
        scored = [v.correct for v in verdicts if v.correct is not None]
        metrics, note = _poise_metrics(run, judge)
        if scored:
            metrics["accuracy"] = _metric("accuracy", sum(scored) / len(scored))
        scores.append(
            EvalScore(
                name=judge,
                scorer=judge,
                scored_samples=len(scored),
                unscored_samples=len(records) - len(scored),
                metrics=metrics,
                metadata={
                    "labels": dict(Counter(v.label for v in verdicts)),
                    "versions": sorted({v.version or "unversioned" for v in verdicts}),
                    "note": note,
                },
            )
        )
    headline = None
    if scores:
        first = scores[0]
        preferred = ("refusal_rate_pct", "average_accuracy_pct", "accuracy")
        metric = next((m for m in preferred if m in first.metrics), None)
        if metric:
            headline = HeadlineMetric(scorer=first.scorer, score=first.name, metric=metric)
    return EvalResults(
        total_samples=len(records),
        completed_samples=sum(1 for r in records if not r.error),
        scores=scores,
        headline=headline,
    )


def _metric(name: str, value: float, group: str | None = None) -> EvalMetric:
    from inspect_ai.log import EvalMetric

    return EvalMetric(name=name, value=value, group=group)


def _poise_metrics(run: RunData, judge: str) -> tuple[dict[str, EvalMetric], str | None]:
    """Poise's figures for ``judge`` (what ``poise run`` prints), as inspect metrics.

    None when they cannot be computed (a benchmark this Poise does not know, or verdicts of
    two judge versions, which Poise refuses to mix): the samples are exported all the same.
    """
    from poise.eval.analysis import metrics as poise_metrics

    try:
        figures = poise_metrics.scorer(run.spec.benchmark)(run.records, judge)
    except PoiseError as exc:
        return {}, f"no Poise metrics: {exc}"
    out: dict[str, EvalMetric] = {}

    def add(name: str, value: Any, group: str | None = None) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[f"{group}.{name}" if group else name] = _metric(name, float(value), group)

    add("refusal_rate_pct", figures.get("refusal_rate"))
    add("answered_only_refusal_rate_pct", (figures.get("answered_only") or {}).get("refusal_rate"))
    for number, block in (figures.get("by_type") or {}).items():
        add(str(block.get("name") or number), block.get("refusal_rate"), "refusal_rate_pct_by_type")
    add("average_accuracy_pct", figures.get("average"))
    add("safe_accuracy_pct", figures.get("safe_accuracy"))
    add("unsafe_accuracy_pct", figures.get("unsafe_accuracy"))
    add("pairs_both_right_pct", (figures.get("pairs") or {}).get("both_right"))
    for category, block in (figures.get("by_category") or {}).items():
        add(str(category), block.get("average"), "average_accuracy_pct_by_category")
    return out, None
