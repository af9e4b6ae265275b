"""Run a pipeline over a benchmark: concurrent, judged, recorded, resumable.

For each selected sample the runner builds the pipeline's initial state (the image encoded
once), invokes the compiled graph, applies the judges, and appends one record line to
``records.jsonl``, flushed as soon as the sample finishes. A rerun into the same directory
skips what is recorded, retries what errored, and so ends with every sample recorded
exactly once, however the previous run ended.

Retries of model calls happen in one place, :mod:`poise.agents.retry` (at most
``--max-retries + 1`` attempts of at most ``--timeout`` seconds); the runner only bounds
concurrency and records what failed.

One process writes a run directory at a time: the runner holds the directory's
:class:`~poise.eval.run.lock.RunLock` from the moment it reads the records until the summary is
written. A run interrupted by Ctrl-C still writes the summary of what it recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

from poise.agents.framing import frame_query, normalise_setting
from poise.agents.models.handle import ModelHandle, load_model
from poise.agents.models.replay import BENCHMARK_KEY, SAMPLE_ID_KEY
from poise.agents.prompts import get_prompt
from poise.benchmarks.filters import select
from poise.benchmarks.registry import (
    LoadedBenchmark,
    benchmark_spec,
    benchmark_specs,
    load_benchmark,
)
from poise.benchmarks.sample import Sample
from poise.errors import PoiseError, known_names
from poise.eval.analysis import metrics
from poise.eval.judges.base import Judge, Verdict, get_judge
from poise.eval.judges.versions import announce_replacement, needs_verdict
from poise.eval.run.lock import RunLock
from poise.eval.run.progress import Progress
from poise.eval.run.provenance import provenance
from poise.eval.run.records import (
    RECORDS_FILE,
    RUN_FILE,
    SUMMARY_FILE,
    PromptRef,
    Record,
    read_records,
    write_json,
    write_records,
)
from poise.secrets import redact
from poise.graphs.cache import StageCache
from poise.graphs.registry import PipelineSpec, get_pipeline
from poise.graphs.state import PipelineContext, PipelineState, oracle_prefill

ABORT_AFTER_FIRST_FAILURES = 5


class Selection(BaseModel):
    stimulus_types: list[int] = Field(default_factory=list)
    ids: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    sample: int | None = None
    seed: int = 0
    limit: int | None = None


class RunSpec(BaseModel):
    """Everything that defines a run's results; stored as ``run.json`` in its directory."""

    benchmark: str = "mossbench"
    data: str | None = None
    model: str
    base_url: str | None = None
    pipeline: str = "baseline"
    system_prompt: str | None = None
    prompt_stages: list[str] | None = None
    stage_models: dict[str, str] = Field(default_factory=dict)
    oracle: list[str] = Field(default_factory=list)
    judges: list[str] = Field(default_factory=list)
    judge_model: str | None = None
    setting: str | None = None
    selection: Selection = Field(default_factory=Selection)

    @field_validator("system_prompt")
    @classmethod
    def _vanilla_is_none(cls, value: str | None) -> str | None:
        """``vanilla`` names the absence of a system prompt; one spelling keeps one identity."""
        return None if value in (None, "", "vanilla") else value

    @field_validator("setting")
    @classmethod
    def _default_setting_is_none(cls, value: str | None) -> str | None:
        """MSSBench's default setting (if) is stored as None, its other names canonically."""
        name = normalise_setting(value)
        return None if name == "if" else name

    def identity(self) -> dict[str, Any]:
        """What makes two runs comparable.

        The selection and the judges may grow on a rerun; where the data and the server live
        (``data``, ``base_url``) may move without changing what was asked of which model.
        """
        return self.model_dump(exclude={"selection", "judges", "judge_model", "data", "base_url"})

    @property
    def run_id(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def directory_name(self) -> str:
        parts = [self.benchmark, self.pipeline, _prompt_label(self.system_prompt), self.model]
        if self.setting:
            parts.insert(1, self.setting)
        if self.oracle:
            parts.append("oracle-" + "+".join(sorted(self.oracle)))
        if self.stage_models:
            parts.append(
                "stages-"
                + hashlib.sha256(
                    json.dumps(self.stage_models, sort_keys=True).encode()
                ).hexdigest()[:6]
            )
        return "__".join(_slug(p) for p in parts)

    def judge_names(self) -> list[str]:
        if self.judges:
            return self.judges
        return [benchmark_spec(self.benchmark).default_judge(normalise_setting(self.setting))]


def _prompt_label(value: str | None) -> str:
    if not value:
        return "vanilla"
    return Path(value).stem if ("/" in value or value.endswith(".md")) else value


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in text).strip("-")


@dataclass
class RunResult:
    directory: Path
    summary: dict[str, Any]
    new_records: int = 0
    errors: int = 0
    loaded: LoadedBenchmark | None = None
    selected: int = 0  # samples the selection names
    already_recorded: int = 0  # of those, recorded by an earlier run (skipped now)

    @property
    def nothing_to_do(self) -> bool:
        """Every selected sample was recorded before: this run asked no model anything."""
        return self.selected > 0 and self.already_recorded >= self.selected


def read_run_spec(directory: Path) -> RunSpec:
    """The RunSpec stored in a run directory; an unreadable run.json is a one-line error."""
    path = directory / RUN_FILE
    try:
        return RunSpec.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PoiseError(f"{directory} is not a run directory (no {RUN_FILE})") from None
    except (ValueError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PoiseError(
            f"{path} is corrupt ({reason[:120]}); restore it, or remove {directory} and rerun"
        ) from None


def make_directory(path: Path, option: str = "--out") -> None:
    """Create ``path`` (and parents); an unwritable place is a one-line error naming it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise PoiseError(
            f"cannot create {path}: a file is in the way; pass {option} a directory"
        ) from None
    except NotADirectoryError:
        raise PoiseError(
            f"cannot create {path}: part of the path is a file; pass {option} a directory"
        ) from None
    except OSError as exc:
        raise PoiseError(
            f"cannot create {path}: {exc.strerror or exc}; pass {option} a writable directory"
        ) from None


def build_context(
    spec: RunSpec,
    pipeline: PipelineSpec,
    prompt_dirs: tuple[Path, ...] = (),
    stage_cache: StageCache | None = None,
) -> PipelineContext:
    """Models for every stage, the system prompt and the oracle set, checked up front."""
    unknown_stages = set(spec.stage_models) - set(pipeline.stage_names)
    if unknown_stages:
        raise PoiseError(
            f"pipeline {pipeline.name} has no stage {', '.join(sorted(unknown_stages))}; "
            f"its stages: {known_names(pipeline.stage_names)}"
        )
    if spec.prompt_stages is not None:
        bad = set(spec.prompt_stages) - set(pipeline.stage_names)
        if bad:
            raise PoiseError(
                f"--prompt-stages {', '.join(sorted(bad))}: pipeline {pipeline.name} stages are {known_names(pipeline.stage_names)}"
            )
    setting = normalise_setting(spec.setting)
    settings = benchmark_spec(spec.benchmark).settings
    if setting != "if" and setting not in settings:
        with_settings = [b.name for b in benchmark_specs() if setting in b.settings]
        raise PoiseError(
            f"--setting {spec.setting} does not apply to {spec.benchmark}; "
            f"benchmarks with that setting: {', '.join(with_settings) or 'none'}"
        )
    if setting != "if" and pipeline.name != "baseline":
        raise PoiseError(
            f"--setting {spec.setting} frames a single call: use --pipeline baseline "
            f"(pipeline {pipeline.name} has its own prompts)"
        )
    bad_oracle = set(spec.oracle) - set(pipeline.oracle_stages)
    if bad_oracle:
        raise PoiseError(
            f"--oracle {', '.join(sorted(bad_oracle))} is not available for pipeline {pipeline.name}; "
            f"it supports: {known_names(pipeline.oracle_stages)}"
        )
    system_prompt = (
        get_prompt(spec.system_prompt, "system", prompt_dirs) if spec.system_prompt else None
    )
    replayed = [m for m in (spec.model, *spec.stage_models.values()) if m.startswith("replay/")]
    if replayed and (
        pipeline.name != "baseline" or spec.system_prompt or spec.oracle or spec.setting
    ):
        raise PoiseError(
            f"{replayed[0]} replays recorded final answers, so it cannot show the effect of a "
            "pipeline, system prompt, oracle or setting: use --pipeline baseline alone with it"
        )
    cache: dict[str, ModelHandle] = {}

    def handle(name: str) -> ModelHandle:
        if name not in cache:
            cache[name] = load_model(name, base_url=spec.base_url)
        return cache[name]

    return PipelineContext(
        model=handle(spec.model),
        stage_models={stage: handle(name) for stage, name in spec.stage_models.items()},
        system_prompt=system_prompt,
        prompt_stages=frozenset(spec.prompt_stages) if spec.prompt_stages is not None else None,
        oracle=frozenset(spec.oracle),
        setting=spec.setting,
        stage_cache=stage_cache,
    )


def build_judges(spec: RunSpec) -> list[Judge]:
    """The run's judges.

    ``--base-url`` names the evaluated model's server. An ``openai-compatible/`` judge (which
    sends no foreign key) or one of the model's own provider goes there too; an ``openai/`` or
    ``anthropic/`` judge of a run against another provider's server goes to its own API, so
    its key never reaches the server of the model under test.
    """
    options: dict[str, Any] = {"setting": spec.setting}
    if spec.judge_model:
        options["model"] = spec.judge_model
        provider = spec.judge_model.partition("/")[0]
        shares_server = provider in ("openai-compatible", spec.model.partition("/")[0])
        options["base_url"] = spec.base_url if shares_server else None
    return [get_judge(name, **options) for name in spec.judge_names()]


def _needs_images(context: PipelineContext) -> bool:
    models = [context.model, *context.stage_models.values()]
    return any(m.provider != "replay" for m in models)


async def initial_state(sample: Sample, context: PipelineContext, *, encode: bool) -> PipelineState:
    """The state a pipeline starts from: the sample, its image encoded once, oracle pre-fills.

    An oracle stage is a pre-fill: the graph sees the stage's output already present and
    skips the node, so diagnosis never needs a second copy of a pipeline.
    """
    image_url = None
    if encode and sample.image.path is not None:
        image_url = await asyncio.to_thread(sample.image.data_url)
    state: PipelineState = {
        "sample": sample,
        "query": frame_query(sample, context.setting),
        "image_url": image_url,
        "calls": [],
        "stages": {},
    }
    state.update(oracle_prefill(sample, context.oracle))  # type: ignore[typeddict-item]
    return state


def _stage_outputs(final: dict[str, Any]) -> dict[str, Any]:
    stages = dict(final.get("stages") or {})
    for key in ("perception", "intent", "decision"):
        if final.get(key) is not None:
            stages[key] = final[key]
    return stages


class Runner:
    """One run: a benchmark x a model x a pipeline x a system prompt, into one directory."""

    def __init__(
        self,
        spec: RunSpec,
        out_root: Path,
        *,
        concurrency: int = 8,
        progress: bool = True,
        prompt_dirs: tuple[Path, ...] = (),
        semaphore: asyncio.Semaphore | None = None,
        progress_callback: Any = None,
        plan_callback: Any = None,
        stage_cache: StageCache | None = None,
        loaded_callback: Any = None,
        wait: bool = False,
    ) -> None:
        self.spec = spec
        self.directory = out_root / spec.directory_name()
        self.concurrency = max(1, concurrency)
        self.show_progress = progress
        self.prompt_dirs = prompt_dirs
        self.semaphore = semaphore
        self.progress_callback = progress_callback  # called with each new Record
        self.plan_callback = plan_callback  # called once with the number of samples to run
        self.stage_cache = stage_cache  # shared by the runs of a sweep or a diagnosis
        self.loaded_callback = loaded_callback  # called with the LoadedBenchmark, before running
        self.wait = wait  # wait for another writer of the directory instead of failing
        self.interrupted: str | None = None  # set when Ctrl-C stopped the run: what was kept

    def prepare(self) -> tuple[LoadedBenchmark, list[Sample]]:
        loaded = load_benchmark(self.spec.benchmark, self.spec.data)
        sel = self.spec.selection
        samples = select(
            loaded.samples,
            stimulus_types=set(sel.stimulus_types) or None,
            ids=set(sel.ids) or None,
            exclude=set(sel.exclude) or None,
            categories=set(sel.categories) or None,
            sample=sel.sample,
            seed=sel.seed,
            limit=sel.limit,
        )
        if not samples:
            raise PoiseError(
                f"no samples selected from {loaded.source} ({len(loaded.samples)} loaded): "
                "loosen --ids / --exclude / --types / --categories"
            )
        return loaded, samples

    def _check_directory(self) -> None:
        run_file = self.directory / RUN_FILE
        if run_file.is_file():
            previous = read_run_spec(self.directory)
            if previous.identity() != self.spec.identity():
                raise PoiseError(
                    f"{self.directory} holds a different run ({previous.model} / {previous.pipeline}); "
                    "pass another --out or remove the directory"
                )
        stored = json.loads(redact(self.spec.model_dump_json()))
        stored["provenance"] = provenance()  # what produced the latest records; never secrets
        try:
            write_json(run_file, stored)
        except OSError as exc:
            raise PoiseError(
                f"cannot write {run_file}: {exc.strerror or exc}; pass --out a writable directory"
            ) from None

    async def run(self) -> RunResult:
        pipeline = get_pipeline(self.spec.pipeline)
        context = build_context(self.spec, pipeline, self.prompt_dirs, self.stage_cache)
        judges = build_judges(self.spec)
        loaded, samples = self.prepare()
        if self.loaded_callback:
            self.loaded_callback(loaded)
        encode = _needs_images(context)
        if encode and samples and all(s.image.path is None for s in samples):
            raise PoiseError(
                f"{self.spec.benchmark} was loaded without images (packaged questions only); "
                f"model {self.spec.model} needs them: pass --data DIR (or a hub id)"
            )
        make_directory(self.directory)
        lock = RunLock(self.directory)
        await lock.acquire_async(wait=self.wait)
        try:
            return await self._run_locked(loaded, samples, pipeline, context, judges)
        finally:
            lock.release()

    async def _run_locked(
        self,
        loaded: LoadedBenchmark,
        samples: list[Sample],
        pipeline: PipelineSpec,
        context: PipelineContext,
        judges: list[Judge],
    ) -> RunResult:
        """Everything that reads or writes the directory, under its lock."""
        self._check_directory()
        records_path = self.directory / RECORDS_FILE
        existing = read_records(records_path)
        kept = {r.sample_id: r for r in existing if r.error is None}
        if len(kept) != len(existing) or _torn(records_path):
            write_records(records_path, list(kept.values()))  # drop errored/torn lines, retry them
        await self._add_missing_verdicts(kept, judges, records_path)
        todo = [s for s in samples if s.id not in kept]
        if self.plan_callback:
            self.plan_callback(len(todo))
        started = time.perf_counter()
        try:
            new, errors = await self._run_samples(todo, pipeline, context, judges, records_path)
        except (asyncio.CancelledError, KeyboardInterrupt):
            # Ctrl-C: what finished is on disk; summarise it so the directory is complete.
            summary = summarize(self.directory, loaded=loaded, selected=len(samples))
            self.interrupted = (
                f"{self.directory}: {summary['records']} of {len(samples)} samples recorded"
            )
            raise
        wall = time.perf_counter() - started
        summary = summarize(
            self.directory, loaded=loaded, selected=len(samples), wall_time_s=wall if new else None
        )
        return RunResult(
            self.directory,
            summary,
            new_records=new,
            errors=errors,
            loaded=loaded,
            selected=len(samples),
            already_recorded=len(samples) - len(todo),
        )

    async def _add_missing_verdicts(
        self, kept: dict[str, Record], judges: list[Judge], records_path: Path
    ) -> None:
        """A rerun that names a new judge also judges the samples recorded before."""
        stale = [r for r in kept.values() if any(needs_verdict(r, j) for j in judges)]
        if not stale:
            return
        for judge in judges:
            announce_replacement(self.directory, judge, stale)
        semaphore = self.semaphore or asyncio.Semaphore(self.concurrency)

        async def one(record: Record) -> None:
            verdicts = dict(record.verdicts)
            for judge in judges:
                if needs_verdict(record, judge):
                    async with semaphore:
                        verdicts[judge.name] = await judge.judge(
                            record.to_sample(), record.response
                        )
            kept[record.sample_id] = record.model_copy(update={"verdicts": verdicts})

        await asyncio.gather(*(one(r) for r in stale))
        write_records(records_path, list(kept.values()))

    async def _run_samples(
        self,
        todo: list[Sample],
        pipeline: PipelineSpec,
        context: PipelineContext,
        judges: list[Judge],
        records_path: Path,
    ) -> tuple[int, int]:
        if not todo:
            return 0, 0
        semaphore = self.semaphore or asyncio.Semaphore(self.concurrency)
        encode = _needs_images(context)
        counts = {"done": 0, "errors": 0, "ok": 0}
        abort: list[str] = []
        with (
            records_path.open("a", encoding="utf-8") as sink,
            Progress(self.directory.name, total=len(todo), enabled=self.show_progress) as bar,
        ):

            async def one(sample: Sample) -> None:
                if abort:
                    return
                async with semaphore:
                    if abort:
                        return
                    record = await self._run_one(sample, pipeline, context, judges, encode)
                sink.write(record.model_dump_json() + "\n")
                sink.flush()
                counts["done"] += 1
                if record.error:
                    counts["errors"] += 1
                    if counts["ok"] == 0 and counts["errors"] >= min(
                        ABORT_AFTER_FIRST_FAILURES, len(todo)
                    ):
                        abort.append(record.error)
                else:
                    counts["ok"] += 1
                bar.advance(record)
                if self.progress_callback:
                    self.progress_callback(record)

            await asyncio.gather(*(one(s) for s in todo))
        if abort:
            raise PoiseError(
                f"the first {counts['errors']} samples all failed, stopping: {abort[0]}"
            )
        return counts["done"], counts["errors"]

    async def _run_one(
        self,
        sample: Sample,
        pipeline: PipelineSpec,
        context: PipelineContext,
        judges: list[Judge],
        encode: bool,
    ) -> Record:
        started = time.perf_counter()
        spec = self.spec
        prompt = context.system_prompt
        base = dict(
            run_id=spec.run_id,
            benchmark=sample.benchmark,
            sample_id=sample.id,
            variant=sample.variant,
            expected=sample.expected.value,
            stimulus_type=sample.stimulus_type,
            category=sample.category,
            pair_id=sample.pair_id,
            query=sample.query,
            image=str(sample.image.path) if sample.image.path else None,
            model=spec.model,
            pipeline=spec.pipeline,
            system_prompt=PromptRef(name=prompt.name, sha256=prompt.sha256) if prompt else None,
            oracle=sorted(context.oracle),
        )
        try:
            state = await initial_state(sample, context, encode=encode)
            final = await pipeline.graph.ainvoke(
                state,
                context=context,
                config={
                    "metadata": {SAMPLE_ID_KEY: sample.id, BENCHMARK_KEY: sample.benchmark},
                    "run_name": f"{spec.pipeline}:{sample.id}",
                },
            )
        except Exception as exc:  # recorded, retried on the next run; never a traceback
            return Record(
                **base, error=_one_line(exc), latency_s=round(time.perf_counter() - started, 3)
            )
        response = final.get("response")
        verdicts: dict[str, Verdict] = {}
        for judge in judges:
            try:
                verdicts[judge.name] = await judge.judge(sample, response)
            except Exception as exc:
                return Record(
                    **base,
                    calls=final.get("calls", []),
                    stages=_stage_outputs(final),
                    response=response,
                    error=f"judge {judge.name}: {_one_line(exc)}",
                )
        return Record(
            **base,
            calls=final.get("calls", []),
            stages=_stage_outputs(final),
            response=response,
            verdicts=verdicts,
            latency_s=round(time.perf_counter() - started, 3),
        )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = "" if isinstance(exc, PoiseError) else f"{exc.__class__.__name__}: "
    return redact(f"{name}{text}")[:500]


def _torn(path: Path) -> bool:
    """True when the file ends without a newline (a write cut short by a kill)."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with path.open("rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1) != b"\n"


def summarize(
    directory: Path,
    *,
    loaded: LoadedBenchmark | None = None,
    selected: int | None = None,
    wall_time_s: float | None = None,
) -> dict[str, Any]:
    """Recompute ``summary.json`` from the run's records (the single source of truth)."""
    spec = read_run_spec(directory)
    records = read_records(directory / RECORDS_FILE)
    previous: dict[str, Any] = {}
    if (directory / SUMMARY_FILE).is_file():
        try:
            previous = json.loads((directory / SUMMARY_FILE).read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            previous = {}
    judge_names = sorted({name for r in records for name in r.verdicts})
    scorer = metrics.scorer(spec.benchmark)
    summary: dict[str, Any] = {
        "run_id": spec.run_id,
        "directory": str(directory),
        "benchmark": spec.benchmark,
        "model": spec.model,
        "pipeline": spec.pipeline,
        "system_prompt": _prompt_label(spec.system_prompt),
        "setting": spec.setting,
        "oracle": spec.oracle,
        "stage_models": spec.stage_models,
        "samples_selected": selected if selected is not None else previous.get("samples_selected"),
        "records": len(records),
        "errors": sum(1 for r in records if r.error),
        "error_examples": sorted({r.error for r in records if r.error})[:5],
        "wall_time_s": round(wall_time_s, 2)
        if wall_time_s is not None
        else previous.get("wall_time_s"),
        "usage": metrics.usage(records),
        "data_source": loaded.source if loaded else previous.get("data_source"),
        "missing_images": loaded.missing_images if loaded else previous.get("missing_images", []),
        "metrics": {name: scorer(records, name) for name in judge_names},
    }
    write_json(directory / SUMMARY_FILE, summary)
    return summary


def run_sync(runner: Runner) -> RunResult:
    return asyncio.run(runner.run())
