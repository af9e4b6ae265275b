"""Run a pipeline over a benchmark: concurrent, judged, recorded, resumable.

For each selected sample the runner builds the pipeline's initial state (the image encoded
once), invokes the compiled graph, applies the judges, and appends one record line to
``records.jsonl``, flushed as soon as the sample finishes. A rerun into the same directory
skips what is recorded, retries what errored, and so ends with every sample recorded
exactly once, however the previous run ended.

Retries of model calls happen in one place, :mod:`poise.agents.retry` (at most
``--max-retries + 1`` attempts of at most ``--timeout`` seconds); the runner only bounds
concurrency and records what failed.

Sampling parameters (``--model-param``, ``--stage-model-param``) that differ from the
provider's defaults are part of the run's identity and its directory name; a run that sets
none keeps the name and identity runs had before parameters existed, so those directories
still resume. ``--epochs K`` asks every sample K times: a record is keyed by
``(sample_id, epoch)``, and the same resume rules hold per key.

One process writes a run directory at a time: the runner holds the directory's
:class:`~poise.eval.run.lock.RunLock` from the moment it reads the records until the summary is
written. A run interrupted by Ctrl-C still writes the summary of what it recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

from poise.agents.calls import response_blocked
from poise.agents.framing import frame_query, normalise_setting
from poise.agents.models.handle import ModelHandle, load_model
from poise.agents.models.registry import (
    MODEL_PARAMS,
    ParamValue,
    non_default_params,
    normalise_params,
)
from poise.agents.models.replay import BENCHMARK_KEY, EPOCH_KEY, SAMPLE_ID_KEY
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
from poise.eval.run.cost import PriceTable, cost_summary
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
from poise.graphs.cache import Scope, StageCache
from poise.graphs.registry import PipelineSpec, get_pipeline
from poise.graphs.state import PipelineContext, PipelineState, oracle_prefill, oracle_problem
from poise.secrets import redact

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
    # Sampling parameters as the user gave them (temperature, top_p, max_tokens, seed):
    # model_params for every call of the pipeline, stage_model_params per stage on top.
    model_params: dict[str, ParamValue] = Field(default_factory=dict)
    stage_model_params: dict[str, dict[str, ParamValue]] = Field(default_factory=dict)
    judge_model_params: dict[str, ParamValue] = Field(default_factory=dict)
    epochs: int = Field(default=1, ge=1, description="draws per sample (--epochs)")

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

    @field_validator("model_params", "judge_model_params")
    @classmethod
    def _canonical_params(cls, value: dict[str, Any]) -> dict[str, ParamValue]:
        """temperature=1 and temperature=1.0 are one run: floats stay floats, counts ints."""
        return normalise_params(value)

    @field_validator("stage_model_params")
    @classmethod
    def _canonical_stage_params(cls, value: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {
            stage: normalise_params(params, "--stage-model-param")
            for stage, params in value.items()
            if params
        }

    def stage_model(self, stage: str) -> str:
        return self.stage_models.get(stage, self.model)

    def params_for(self, stage: str | None = None) -> dict[str, ParamValue]:
        """The parameters a stage's calls carry: the run's, then the stage's own on top."""
        if stage is None:
            return dict(self.model_params)
        return {**self.model_params, **self.stage_model_params.get(stage, {})}

    def changed_params(self) -> dict[str, ParamValue]:
        """The run's parameters that differ from its model's defaults."""
        return non_default_params(self.model, self.model_params)

    def changed_stage_params(self) -> dict[str, dict[str, ParamValue]]:
        """Per stage, its parameters where ``--stage-model-param`` changed what it is asked.

        Compared on the stage's model: a stage set back to temperature 0 in a temperature-1
        run is a change, a stage given the run's own value is not.
        """
        out = {}
        for stage in sorted(self.stage_model_params):
            name = self.stage_model(stage)
            own = non_default_params(name, self.params_for(stage))
            if own != non_default_params(name, self.model_params):
                out[stage] = own
        return out

    def sets_temperature(self) -> bool:
        """Whether the user chose a temperature anywhere (for the run or for a stage)."""
        return "temperature" in self.model_params or any(
            "temperature" in p for p in self.stage_model_params.values()
        )

    def identity(self) -> dict[str, Any]:
        """What makes two runs comparable.

        The selection, the epochs and the judges may grow on a rerun; where the data and the
        server live (``data``, ``base_url``) may move without changing what was asked of
        which model. Sampling parameters count only where they differ from the defaults, and
        are left out when none do, so runs recorded before parameters existed keep their
        identity (and their ``run_id``).
        """
        identity = self.model_dump(
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
        if changed := self.changed_params():
            identity["model_params"] = changed
        if changed_stages := self.changed_stage_params():
            identity["stage_model_params"] = changed_stages
        return identity

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
        if changed := self.changed_params():
            parts.append(
                "params-"
                + "-".join(
                    f"{_SHORT[k]}{_number(changed[k])}" for k in MODEL_PARAMS if k in changed
                )
            )
        if changed_stages := self.changed_stage_params():
            parts.append(
                "stage-params-"
                + hashlib.sha256(json.dumps(changed_stages, sort_keys=True).encode()).hexdigest()[
                    :6
                ]
            )
        return "__".join(_slug(p) for p in parts)

    def judge_names(self) -> list[str]:
        if self.judges:
            return self.judges
        return [benchmark_spec(self.benchmark).default_judge(normalise_setting(self.setting))]


# Short names of the sampling parameters in a directory name: params-t1-p0.9-max256-seed7.
_SHORT = {"temperature": "t", "top_p": "p", "max_tokens": "max", "seed": "seed"}
assert set(_SHORT) == set(MODEL_PARAMS)


def _number(value: ParamValue) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


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
    selected: int = 0  # draws the selection names: samples x epochs
    already_recorded: int = 0  # of those, recorded by an earlier run (skipped now)
    epochs: int = 1

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


def check_spec(spec: RunSpec, pipeline: PipelineSpec, prompt_dirs: tuple[Path, ...] = ()) -> None:
    """Everything about a run that can be refused before a model is built (no keys needed):
    stages, prompts, setting, oracles, replays, epochs. A dry run checks the same."""
    for option, named in (
        ("--stage-model", spec.stage_models),
        ("--stage-model-param", spec.stage_model_params),
    ):
        unknown_stages = set(named) - set(pipeline.stage_names)
        if unknown_stages:
            raise PoiseError(
                f"{option}: pipeline {pipeline.name} has no stage "
                f"{', '.join(sorted(unknown_stages))}; its stages: {known_names(pipeline.stage_names)}"
            )
    check_epochs(spec)
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
    if problem := oracle_problem(spec.benchmark, frozenset(spec.oracle)):
        raise PoiseError(problem)
    if spec.system_prompt:
        get_prompt(spec.system_prompt, "system", prompt_dirs)  # an unknown prompt fails here
    replayed = [m for m in (spec.model, *spec.stage_models.values()) if m.startswith("replay/")]
    if replayed and (
        pipeline.name != "baseline" or spec.system_prompt or spec.oracle or spec.setting
    ):
        raise PoiseError(
            f"{replayed[0]} replays recorded final answers, so it cannot show the effect of a "
            "pipeline, system prompt, oracle or setting: use --pipeline baseline alone with it"
        )


def build_context(
    spec: RunSpec,
    pipeline: PipelineSpec,
    prompt_dirs: tuple[Path, ...] = (),
    stage_cache: StageCache | None = None,
) -> PipelineContext:
    """Models for every stage, the system prompt and the oracle set, checked up front.

    A stage with its own model or its own sampling parameters gets its own handle; handles
    of one model with the same parameters are shared.
    """
    check_spec(spec, pipeline, prompt_dirs)
    system_prompt = (
        get_prompt(spec.system_prompt, "system", prompt_dirs) if spec.system_prompt else None
    )
    cache: dict[str, ModelHandle] = {}

    def handle(name: str, params: dict[str, ParamValue]) -> ModelHandle:
        key = json.dumps([name, params], sort_keys=True)
        if key not in cache:
            cache[key] = load_model(name, base_url=spec.base_url, **params)
        return cache[key]

    own = sorted(set(spec.stage_models) | set(spec.stage_model_params))
    context = PipelineContext(
        model=handle(spec.model, spec.params_for()),
        stage_models={
            stage: handle(spec.stage_model(stage), spec.params_for(stage)) for stage in own
        },
        system_prompt=system_prompt,
        prompt_stages=frozenset(spec.prompt_stages) if spec.prompt_stages is not None else None,
        oracle=frozenset(spec.oracle),
        setting=spec.setting,
        stage_cache=stage_cache,
    )
    return with_epoch(context, 0)


def _batched(context: PipelineContext, directory: Path) -> PipelineContext:
    """The context with every stage's model answering through its provider's batch API."""
    from poise.agents.models.batching import enable_batching

    return dataclasses.replace(
        context,
        model=enable_batching(context.model, directory),
        stage_models={s: enable_batching(h, directory) for s, h in context.stage_models.items()},
    )


def check_epochs(spec: RunSpec) -> None:
    """Refuse repeated draws that can only repeat one answer (one line saying why)."""
    if spec.epochs > 1 and not spec.sets_temperature():
        raise PoiseError(
            f"--epochs {spec.epochs} asks each sample {spec.epochs} times, but models run at "
            "temperature 0 unless told otherwise, so every draw would be the same answer: "
            "add --model-param temperature=1 (or set temperature=0 explicitly to measure "
            "how often a greedy answer changes)"
        )


def _cache_scope(context: PipelineContext, epoch: int) -> Scope:
    """What the stage cache must key on besides a node's inputs: parameters and the epoch."""

    def scope(stage: str) -> dict[str, Any]:
        handle = context.model_for(stage)
        extra: dict[str, Any] = {}
        if changed := non_default_params(handle.name, handle.params):
            extra["params"] = changed
        if epoch:
            extra["epoch"] = epoch
        return extra

    return scope


def with_epoch(context: PipelineContext, epoch: int) -> PipelineContext:
    """The context of one epoch: the same models, a stage-cache view scoped to the epoch.

    Without the scope a sweep's shared cache would hand epoch 1 the answer of epoch 0, and a
    temperature-1 cell the answer of a temperature-0 cell.
    """
    cache = context.stage_cache
    if cache is None:
        return context
    root = getattr(cache, "cache", cache)  # a view of a view scopes the shared cache
    return dataclasses.replace(context, stage_cache=root.scoped(_cache_scope(context, epoch)))


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
    judges = [
        judge_with_params(name, options, spec.judge_model_params) for name in spec.judge_names()
    ]
    if spec.judge_model_params and not any(hasattr(j, "handle") for j in judges):
        raise PoiseError(
            f"--judge-model-param applies to LLM judges; {', '.join(spec.judge_names())} "
            "calls no model: add one with --judge, e.g. --judge mossbench-llm"
        )
    return judges


def judge_with_params(name: str, options: dict[str, Any], params: dict[str, ParamValue]) -> Judge:
    """A judge whose model (if it has one) is asked with ``params`` (--judge-model-param).

    An LLM judge is built as usual first, so its own default model and server apply; with
    parameters its model is then rebuilt with them and handed to the judge.
    """
    judge = get_judge(name, **options)
    handle = getattr(judge, "handle", None)
    if not params or not isinstance(handle, ModelHandle):
        return judge
    tuned = load_model(handle.name, base_url=options.get("base_url"), **params)
    return get_judge(name, **{**options, "handle": tuned})


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
        prices: PriceTable | None = None,
        batch: bool = False,
    ) -> None:
        self.spec = spec
        self.run_id = spec.run_id  # a hash of the spec's identity: once, not once per record
        self.batch = batch  # each stage round as one provider batch job (--batch)
        self.prices = prices  # the price table the summary's cost uses (None: the shipped one)
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
        if self.batch:
            context = _batched(context, self.directory)
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
        # One record per (sample, epoch); old records without an epoch read as epoch 0.
        kept = {r.key: r for r in existing if r.error is None}
        if len(kept) != len(existing) or _torn(records_path):
            write_records(records_path, list(kept.values()))  # drop errored/torn lines, retry them
        await self._add_missing_verdicts(kept, judges, records_path)
        epochs = self.spec.epochs
        # Epoch by epoch: a run stopped early holds whole epochs, not a few items drawn K times.
        todo = [(s, e) for e in range(epochs) for s in samples if (s.id, e) not in kept]
        if self.plan_callback:
            self.plan_callback(len(todo))
        started = time.perf_counter()
        try:
            new, errors = await self._run_samples(todo, pipeline, context, judges, records_path)
        except (asyncio.CancelledError, KeyboardInterrupt):
            # Ctrl-C: what finished is on disk; summarise it so the directory is complete.
            summary = summarize(
                self.directory, loaded=loaded, selected=len(samples), prices=self.prices
            )
            what = "samples" if epochs == 1 else f"draws ({len(samples)} samples x {epochs} epochs)"
            self.interrupted = (
                f"{self.directory}: {summary['records']} of {len(samples) * epochs} {what} recorded"
            )
            raise
        wall = time.perf_counter() - started
        summary = summarize(
            self.directory,
            prices=self.prices,
            loaded=loaded,
            selected=len(samples),
            wall_time_s=wall if new else None,
        )
        return RunResult(
            self.directory,
            summary,
            new_records=new,
            errors=errors,
            loaded=loaded,
            selected=len(samples) * epochs,
            already_recorded=len(samples) * epochs - len(todo),
            epochs=epochs,
        )

    async def _add_missing_verdicts(
        self, kept: dict[tuple[str, int], Record], judges: list[Judge], records_path: Path
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
                            record.to_sample(),
                            record.response,
                            blocked=response_blocked(record.calls),
                        )
            kept[record.key] = record.model_copy(update={"verdicts": verdicts})

        await asyncio.gather(*(one(r) for r in stale))
        write_records(records_path, list(kept.values()))

    async def _run_samples(
        self,
        todo: list[tuple[Sample, int]],
        pipeline: PipelineSpec,
        context: PipelineContext,
        judges: list[Judge],
        records_path: Path,
    ) -> tuple[int, int]:
        if not todo:
            return 0, 0
        # With --batch every sample takes part in each stage round (one batch per round).
        in_flight = len(todo) if self.batch else self.concurrency
        semaphore = self.semaphore or asyncio.Semaphore(in_flight)
        encode = _needs_images(context)
        contexts = {e: with_epoch(context, e) for e in sorted({e for _, e in todo})}
        counts = {"done": 0, "errors": 0, "ok": 0}
        abort: list[str] = []
        with (
            records_path.open("a", encoding="utf-8") as sink,
            Progress(self.directory.name, total=len(todo), enabled=self.show_progress) as bar,
        ):

            async def one(sample: Sample, epoch: int) -> None:
                if abort:
                    return
                async with semaphore:
                    if abort:
                        return
                    record = await self._run_one(
                        sample, pipeline, contexts[epoch], judges, encode, epoch
                    )
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

            await asyncio.gather(*(one(s, e) for s, e in todo))
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
        epoch: int = 0,
    ) -> Record:
        started = time.perf_counter()
        spec = self.spec
        prompt = context.system_prompt
        base = dict(
            run_id=self.run_id,
            benchmark=sample.benchmark,
            sample_id=sample.id,
            epoch=epoch,
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
                    "metadata": {
                        SAMPLE_ID_KEY: sample.id,
                        BENCHMARK_KEY: sample.benchmark,
                        EPOCH_KEY: epoch,
                    },
                    "run_name": f"{spec.pipeline}:{sample.id}" + (f":{epoch}" if epoch else ""),
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
                verdicts[judge.name] = await judge.judge(
                    sample, response, blocked=response_blocked(final.get("calls", []))
                )
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
    prices: PriceTable | None = None,
) -> dict[str, Any]:
    """Recompute ``summary.json`` from the run's records (the single source of truth).

    ``cost`` prices the tokens the providers reported at ``prices`` (the shipped, dated table
    when None), beside the dry-run estimate when ``estimate.json`` is in the directory.
    """
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
        "cost": cost_summary(directory, records, prices, run_id=spec.run_id),
    }
    if spec.model_params or spec.stage_model_params:
        summary["model_params"] = spec.model_params
        summary["stage_model_params"] = spec.stage_model_params
    epochs = 1 + max((r.epoch for r in records), default=0)
    if epochs > 1:
        summary["epochs"] = {
            "k": epochs,
            **{name: epoch_metrics(records, name, spec.benchmark) for name in judge_names},
        }
    write_json(directory / SUMMARY_FILE, summary)
    return summary


def epoch_metrics(records: list[Record], judge: str, benchmark: str) -> dict[str, Any]:
    """Repeated draws (``--epochs``): each item's probability, and the rate with its interval.

    For a refusal benchmark an item's value is the share of its draws the judge called a
    refusal; for a situational one, the share judged correct. The rate is the mean over
    items (each item weighs the same, however many of its draws finished), in percent, with
    a 95 % bootstrap interval over items (the draws of one item are not independent, so
    whole items are resampled: :func:`poise.eval.analysis.stats.bootstrap_items`).
    ``flip_items`` counts items whose draws disagree.
    """
    from poise.eval.analysis import stats

    kind = benchmark_spec(benchmark).kind
    measure = "refused" if kind == "refusal" else "correct"
    draws: dict[str, list[bool]] = defaultdict(list)
    group_of: dict[str, str] = {}
    for r in records:
        verdict = r.verdicts.get(judge)
        if r.error is not None or verdict is None or verdict.error is not None:
            continue
        draws[r.sample_id].append(bool(getattr(verdict, measure)))
        group_of[r.sample_id] = (
            str(r.stimulus_type) if kind == "refusal" and r.stimulus_type else r.variant
        )
    per_item = {sid: sum(v) / len(v) for sid, v in sorted(draws.items())}

    def block(ids: list[str]) -> dict[str, Any]:
        estimate = stats.bootstrap_items([[per_item[i], 1.0] for i in ids], stats.ratio)
        rate, ci95 = estimate.percent() if estimate else (None, None)
        return {
            "items": len(ids),
            "draws": sum(len(draws[i]) for i in ids),
            "rate": rate,
            "ci95": ci95,
            "flip_items": sum(1 for i in ids if 0 < per_item[i] < 1),
        }

    groups = sorted({g for g in group_of.values() if g})
    return {
        "measure": measure,
        "interval": stats.bootstrap_method(unit="items (an item's draws stay together)"),
        **block(list(per_item)),
        "by_group": {g: block([i for i in per_item if group_of[i] == g]) for g in groups},
        "per_item": {sid: round(p, 4) for sid, p in per_item.items()},
    }


def run_sync(runner: Runner) -> RunResult:
    return asyncio.run(runner.run())
