"""The report's data model: run directories loaded, scored under one judge, and related.

Everything the page, the Markdown summary and the plots show is computed here from a run's
own files (``run.json``, ``records.jsonl``, ``diagnosis.json``); the renderers only lay it out.
Metrics are recomputed from the records (the single source of truth), never copied from
``summary.json``, so a report over re-judged runs is always current.

Nothing here knows a benchmark by name. What a benchmark is - its kind (which metric scores
it), its default judge, its published table, which benchmark it is the contrast set of - is
asked of its :class:`~poise.benchmarks.registry.BenchmarkSpec`, so a benchmark registered
with a spec flows through the report without an edit here.

This module imports no other report module; every other one depends on it (the package's
docstring draws the graph).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poise.benchmarks import published
from poise.benchmarks.registry import BenchmarkSpec, Kind, benchmark_spec, benchmark_specs
from poise.errors import PoiseError
from poise.eval.analysis import metrics
from poise.eval.run.records import RECORDS_FILE, RUN_FILE, SUMMARY_FILE, Record, read_records

DIAGNOSIS_FILE = "diagnosis.json"
# The refusal metric's keys (stimulus types, then overall) and their short names.
TYPE_KEYS = ("1", "2", "3", "all")
TYPE_SHORT = {"1": "ER", "2": "NH", "3": "CI", "all": "all"}
# The diagnosis module's stages in pipeline order; "none" is accepted for older files, and any
# other stage name a future diagnosis writes is shown after these rather than dropped.
STAGES = ("perception", "intent", "decision", "response", "none")
# A situational judge's rubric labels that say whether the model declined (MSSBench's 0/1/2);
# its verdicts carry correctness but not ``refused``, which the browser's filter needs.
SITUATIONAL_REFUSAL_LABELS = {"0": "refused", "1": "answered", "2": "answered"}


# --------------------------------------------------------------------------- benchmarks


def spec_of(benchmark: str) -> BenchmarkSpec | None:
    """The registered spec of ``benchmark``, or None for a name no longer (or never) registered.

    A report reads old run directories; one whose benchmark is unknown is still listed (and
    said to be unscored) rather than stopping the whole report.
    """
    try:
        return benchmark_spec(benchmark)
    except PoiseError:
        return None


def benchmark_title(benchmark: str) -> str:
    """A benchmark's proper name for headings: "MOSSBench" for mossbench and its contrast set.

    Specs carry no display name, but each description opens with it ("MOSSBench benign set:
    ..."), so the first word is used; the registry name stands in when there is no spec.
    """
    spec = spec_of(benchmark)
    words = spec.description.split() if spec else []
    return words[0].rstrip(":,;") if words else benchmark


def is_contrast(benchmark: str) -> bool:
    """Whether ``benchmark`` is registered as another benchmark's harmful contrast set."""
    spec = spec_of(benchmark)
    return bool(spec and spec.contrast_of)


@dataclass(frozen=True)
class PublishedSource:
    """How to cite a published table: a title for headings, a citation, the paper's judge.

    A table may state these itself (keys ``title``, ``citation``, ``judge``); otherwise they are
    read from its ``source`` sentence ("Li et al. 2024, MOSSBench, arXiv 2406.17806, Table 2
    (refusal rate %, GPT-4-turbo judge ...)") and the title from the benchmarks that publish it.
    """

    name: str
    title: str  # "MOSSBench"
    citation: str  # "Li et al. 2024 (arXiv 2406.17806)"
    authors: str  # "Li et al. 2024"
    judge: str | None  # "GPT-4-turbo judge", or None when the table does not say

    @property
    def credit(self) -> str:
        """Authors and judge, for a caption: "Li et al. 2024, GPT-4-turbo judge"."""
        return f"{self.authors}, {self.judge}" if self.judge else self.authors

    @property
    def judged_by(self) -> str:
        """Who scored the published figures: "the paper's GPT-4-turbo judge"."""
        return f"the paper's {self.judge or 'own judge'}"


def published_source(name: str) -> PublishedSource:
    """The citation facts of published table ``name`` (a spec's ``published``)."""
    table = published.published_table(name)
    source = str(table.get("source") or name)
    authors = source.split(",")[0].strip()
    arxiv = re.search(r"arXiv[ :]?\d{4}\.\d{4,5}", source)
    citation = str(table.get("citation") or (f"{authors} ({arxiv[0]})" if arxiv else authors))
    named = re.search(r"([\w.-]+(?: rubric)?) judge\b", source)
    judge = table.get("judge") or (f"{named[1]} judge" if named else None)
    publishers = [s.name for s in benchmark_specs() if s.published == name]
    title = str(table.get("title") or (benchmark_title(publishers[0]) if publishers else name))
    return PublishedSource(name, title, citation, authors, str(judge) if judge else None)


def published_row(benchmark: str, model: str) -> dict[str, Any] | None:
    """The row of ``benchmark``'s published table for a ``provider/model`` name, or None."""
    spec = spec_of(benchmark)
    if spec is None or spec.published is None:
        return None
    return published.published_row(spec.published, model)


def published_names() -> list[str]:
    """Every published table a registered benchmark is compared with, once each."""
    return list(dict.fromkeys(name for s in benchmark_specs() if (name := s.published)))


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class BrowserLimits:
    """How many records per run the sample browser shows, so the page stays a few MB.

    Failures are what a reader comes to inspect, so all of them are kept up to
    ``max_failures``; successes are a seeded random sample for contrast.
    """

    max_failures: int = 60
    max_successes: int = 15
    seed: int = 0


@dataclass
class RunData:
    """One run directory, loaded: its run.json, records, metrics under one judge, diagnosis.

    ``spec`` is the run's ``run.json`` (what was run); the benchmark's registered spec is
    :attr:`benchmark_spec`.
    """

    directory: Path
    spec: dict[str, Any]
    summary: dict[str, Any]
    records: list[Record]
    diagnosis: dict[str, Any] | None
    judge: str | None
    metrics: dict[str, Any] | None
    index: int = 0

    @property
    def benchmark(self) -> str:
        """run.json's benchmark; a hand-written run.json without one names it in its records."""
        named = self.spec.get("benchmark") or (self.records[0].benchmark if self.records else "")
        return str(named or "?")

    @property
    def benchmark_spec(self) -> BenchmarkSpec | None:
        return spec_of(self.benchmark)

    @property
    def kind(self) -> Kind | None:
        """How the run is scored (refusal rate or situational accuracy); None if unregistered."""
        spec = self.benchmark_spec
        return spec.kind if spec else None

    @property
    def model(self) -> str:
        return str(self.spec.get("model") or "?")

    @property
    def pipeline(self) -> str:
        return str(self.spec.get("pipeline") or "baseline")

    @property
    def prompt(self) -> str:
        return prompt_label(self.spec.get("system_prompt"))

    @property
    def setting(self) -> str | None:
        return self.spec.get("setting") or None

    @property
    def oracle(self) -> tuple[str, ...]:
        return tuple(sorted(self.spec.get("oracle") or ()))

    @property
    def model_params(self) -> dict[str, Any]:
        """run.json's ``--model-param`` values (temperature, top_p, ...), empty when none."""
        value = self.spec.get("model_params")
        return dict(value) if isinstance(value, dict) else {}

    @property
    def stage_model_params(self) -> dict[str, dict[str, Any]]:
        """run.json's ``--stage-model-param`` values per stage, empty when none."""
        value = self.spec.get("stage_model_params")
        if not isinstance(value, dict):
            return {}
        return {str(k): dict(v) for k, v in value.items() if isinstance(v, dict) and v}

    @property
    def config_key(self) -> tuple[str, ...]:
        """What must agree for two runs on different benchmarks to be one configuration.

        Sampling parameters are part of it: a temperature-1 run is not the temperature-0 run
        of the same model, and pairing or grouping them would mix two configurations.
        """
        stage_models = json.dumps(self.spec.get("stage_models") or {}, sort_keys=True)
        params = json.dumps(
            [self.model_params, self.stage_model_params], sort_keys=True, default=str
        )
        key = (self.model, self.pipeline, self.prompt, "+".join(self.oracle), stage_models)
        return (*key, params)

    @property
    def params_label(self) -> str:
        """The run's sampling parameters in short: ``t=1 p=0.9``, ``decision: t=0``; or ""."""
        return params_label(self.model_params, self.stage_model_params)

    @property
    def config_label(self) -> str:
        """model · pipeline · prompt, plus oracle, stage models and parameters when set."""
        parts = [short_model(self.model), self.pipeline, self.prompt]
        if self.oracle:
            parts.append("oracle " + "+".join(self.oracle))
        if self.spec.get("stage_models"):
            parts.append("stage models")
        if self.params_label:
            parts.append(self.params_label)
        return " · ".join(parts)

    @property
    def epochs(self) -> int:
        """Draws per sample the records hold (``--epochs``); 1 for a run without repeats."""
        return 1 + max((r.epoch for r in self.records), default=0)

    @property
    def benchmark_label(self) -> str:
        """The benchmark with its setting, as tables name it: ``mssbench-chat [qc]``."""
        return self.benchmark + (f" [{self.setting}]" if self.setting else "")

    @property
    def label(self) -> str:
        return f"{self.benchmark_label}: {self.config_label}"

    @property
    def diagnosed(self) -> dict[str, list[dict[str, Any]]]:
        """Diagnosis entries by sample id (a sample may be diagnosed by more than one method)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for entry in stage_entries(self):
            out.setdefault(entry["sample_id"], []).append(entry)
        return out


@dataclass(frozen=True)
class Outcome:
    """A record's place in the browser's filters; values are a fixed vocabulary."""

    result: str  # correct | failed | error | unjudged
    refusal: str  # refused | answered | unknown
    stages: tuple[str, ...]  # diagnosed stages (one per method), or ("undiagnosed",)


def prompt_label(value: Any) -> str:
    """The runner's label for a system prompt: a file's stem, a registry name, or vanilla."""
    if not value:
        return "vanilla"
    text = str(value)
    return Path(text).stem if ("/" in text or text.endswith(".md")) else text


# Short names of common sampling parameters, so a label stays readable in a plot legend.
PARAM_SHORT = {"temperature": "t", "top_p": "p", "top_k": "k", "max_tokens": "max", "seed": "seed"}


def params_label(params: dict[str, Any], stage_params: dict[str, dict[str, Any]]) -> str:
    """``t=1 p=0.9``, then ``decision: t=0`` per stage: what tells two runs of a model apart."""

    def short(values: dict[str, Any]) -> str:
        return " ".join(
            f"{PARAM_SHORT.get(k, k)}={fmt_number(v)}" for k, v in sorted(values.items())
        )

    parts = [short(params)] if params else []
    parts += [f"{stage}: {short(v)}" for stage, v in sorted(stage_params.items()) if v]
    return ", ".join(parts)


def n_label(n: int, items: int, draws: int) -> str:
    """A sample size: ``100``, or ``100 x 3`` (items x draws) where each item was drawn more
    than once, with the judged count beside it when some draws are missing."""
    if draws <= 1:
        return str(n)
    text = f"{items} x {draws}"
    return text if n == items * draws else f"{text} ({n} judged)"


def short_model(model: str) -> str:
    """``replay/gpt-4o`` -> ``gpt-4o``: the provider prefix only crowds plot labels."""
    _, _, bare = model.partition("/")
    return bare or model


def fmt_number(value: Any, missing: str = "-") -> str:
    """A figure as tables show it: 12.50 -> "12.5", None -> ``missing``."""
    if value is None:
        return missing
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


# --------------------------------------------------------------------------- loading


def find_run_dirs(inputs: list[Path], notes: list[str] | None = None) -> list[Path]:
    """Every run directory (one holding run.json) at or under the inputs, in a stable order.

    A run nested inside another run's directory (diagnosis reruns under ``RUN/diagnosis/``)
    covers only that run's failed samples, so its rates would mislead next to full runs: it is
    left out, and said so, unless it is passed as an input itself.
    """
    found: dict[Path, None] = {}
    for raw in inputs:
        path = Path(raw)
        if path.is_file() and path.name in (RUN_FILE, RECORDS_FILE, SUMMARY_FILE):
            path = path.parent
        if not path.exists():
            raise PoiseError(f"report input {path} does not exist")
        runs = sorted(p.parent for p in path.rglob(RUN_FILE))
        if not runs:
            raise PoiseError(f"no run directories (with {RUN_FILE}) under {path}")
        nested = [r for r in runs if r != path and _inside_a_run(r, path)]
        if nested and notes is not None:
            notes.append(
                f"{len(nested)} run(s) nested in other runs' directories (diagnosis reruns of "
                f"failed samples only) under {path} are left out; pass one to report it"
            )
        for run in runs:
            if run not in nested:
                found.setdefault(run.resolve(), None)
    return list(found)


def _inside_a_run(run: Path, root: Path) -> bool:
    """True when a directory between ``run`` (exclusive) and ``root`` (inclusive) is a run."""
    for parent in run.parents:
        if (parent / RUN_FILE).is_file():
            return True
        if parent == root:
            return False
    return False


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def choose_judge(spec: dict[str, Any], records: list[Record], wanted: str | None) -> str | None:
    """The judge a run is scored with: the one asked for, else the run's own first judge.

    A run judged by several judges is shown under one, so that every number on the page for
    that run comes from the same judge. Without one asked for: the judges run.json names, then
    the benchmark's default judge for the run's setting (what the runner would have used),
    then the judge with the most verdicts.
    """
    present = Counter(name for r in records for name in r.verdicts)
    if wanted is not None:
        return wanted if wanted in present else None
    bench = spec_of(str(spec.get("benchmark") or (records[0].benchmark if records else "")))
    default = bench.default_judge(spec.get("setting") or None) if bench else None
    for name in [*(spec.get("judges") or []), default]:
        if name and name in present:
            return name
    return present.most_common(1)[0][0] if present else None


def score(benchmark: str, records: list[Record], judge: str | None) -> dict[str, Any] | None:
    """The benchmark's metrics (chosen by its spec's kind) under ``judge``; None if unscorable."""
    if judge is None or spec_of(benchmark) is None:
        return None
    return metrics.scorer(benchmark)(records, judge)


def load_run(directory: Path, judge: str | None, warnings: list[str]) -> RunData:
    """One run directory, scored under the chosen judge; what cannot be scored is warned of."""
    run = RunData(
        directory=directory,
        spec=_read_json(directory / RUN_FILE) or {},
        summary=_read_json(directory / SUMMARY_FILE) or {},
        records=read_records(directory / RECORDS_FILE),
        diagnosis=_read_json(directory / DIAGNOSIS_FILE),
        judge=None,
        metrics=None,
    )
    if not run.records:
        warnings.append(f"{directory}: no records")
    run.judge = choose_judge(run.spec, run.records, judge)
    if run.records and run.judge is None:
        reason = f"judge {judge!r} absent" if judge else "no verdicts"
        warnings.append(f"{directory}: {reason}; its metrics are left out")
    elif run.records and run.benchmark_spec is None:
        warnings.append(
            f"{directory}: benchmark {run.benchmark!r} is not registered; its metrics are left out"
        )
    run.metrics = score(run.benchmark, run.records, run.judge)
    return run


def load_runs(inputs: list[Path], judge: str | None, warnings: list[str]) -> list[RunData]:
    """Every run under ``inputs``, loaded and sorted so that pages are stable."""
    runs = [load_run(d, judge, warnings) for d in find_run_dirs(inputs, warnings)]
    runs.sort(key=lambda r: (r.benchmark, r.setting or "", r.model, r.pipeline, r.prompt))
    for index, run in enumerate(runs):
        run.index = index
    return runs


# --------------------------------------------------------------------------- outcomes


def outcome(record: Record, run: RunData) -> Outcome:
    """Correct/failed and refused/answered under the run's judge, plus the diagnosed stage."""
    entries = run.diagnosed.get(record.sample_id) or []
    stages = tuple(dict.fromkeys(e["stage"] for e in entries)) or ("undiagnosed",)
    if record.error:
        return Outcome("error", "unknown", stages)
    verdict = record.verdicts.get(run.judge) if run.judge else None
    if verdict is None:
        return Outcome("unjudged", "unknown", stages)
    refused = verdict.refused
    if refused is None and run.kind == "situational":
        label = SITUATIONAL_REFUSAL_LABELS.get(verdict.label)
        refused = None if label is None else label == "refused"
    correct = verdict.correct
    if correct is None and refused is not None and record.expected in ("comply", "refuse"):
        correct = refused == (record.expected == "refuse")
    result = "unjudged" if correct is None else ("correct" if correct else "failed")
    refusal = "unknown" if refused is None else ("refused" if refused else "answered")
    return Outcome(result, refusal, stages)


def browse_selection(run: RunData, limits: BrowserLimits) -> tuple[list[Record], str]:
    """The records a run shows in the browser, and a sentence saying what was left out."""
    failures, successes = [], []
    for record in run.records:
        kind = outcome(record, run).result
        (successes if kind == "correct" else failures).append(record)
    kept_failures = failures[: max(0, limits.max_failures)]
    rng = random.Random(f"{limits.seed}:{run.directory.name}")
    sampled = rng.sample(successes, min(len(successes), max(0, limits.max_successes)))
    order = {r.key: i for i, r in enumerate(run.records)}  # a sample's draws are apart
    shown = sorted([*kept_failures, *sampled], key=lambda r: order[r.key])
    note = (
        f"{len(shown)} of {len(run.records)} records: "
        f"{len(kept_failures)} of {len(failures)} failed/errored/unjudged, "
        f"{len(sampled)} of {len(successes)} correct (random, seed {limits.seed})"
    )
    return shown, note


def scored(runs: Iterable[RunData], benchmark: str) -> list[RunData]:
    """The runs of ``benchmark`` that have metrics, in report order."""
    return [r for r in runs if r.benchmark == benchmark and r.metrics]


def benchmarks_of(runs: Iterable[RunData], kind: Kind) -> list[str]:
    """The benchmarks of ``kind`` with a scored run, each base set followed by its contrast set."""
    names = {r.benchmark for r in runs if r.kind == kind and r.metrics}

    def order(name: str) -> tuple[str, int, str]:
        spec = spec_of(name)
        base = spec.contrast_of if spec else None
        return (base or name, 1 if base else 0, name)

    return sorted(names, key=order)


# --------------------------------------------------------------------------- pairings


@dataclass(frozen=True)
class Pairing:
    """One configuration measured on two benchmarks: the x and y of a trade-off point."""

    x_run: RunData
    y_run: RunData

    @property
    def label(self) -> str:
        return self.x_run.config_label


def _by_config(runs: list[RunData], benchmark: str) -> dict[tuple[str, ...], RunData]:
    out: dict[tuple[str, ...], RunData] = {}
    for run in runs:
        if run.benchmark == benchmark and run.metrics is not None:
            out.setdefault(run.config_key, run)  # first of duplicates, in the stable order
    return out


def pair_runs(runs: list[RunData], x_bench: str, y_bench: str) -> list[Pairing]:
    """Runs of the same (model, pipeline, prompt, oracle, stage models) on both benchmarks."""
    xs = _by_config(runs, x_bench)
    pairs = []
    for run in runs:
        if run.benchmark == y_bench and run.metrics is not None and run.config_key in xs:
            pairs.append(Pairing(xs[run.config_key], run))
    return pairs


@dataclass(frozen=True)
class ContrastSet:
    """A benchmark, the one registered as its harmful contrast set, and the configurations
    measured on both: the oversensitivity-vs-safety trade-off of that benchmark."""

    base: str
    contrast: str
    pairs: list[Pairing]

    def scored_runs(self, runs: list[RunData]) -> tuple[int, int]:
        """How many scored runs each side has (what the page says when nothing pairs up)."""
        return len(scored(runs, self.base)), len(scored(runs, self.contrast))


def contrast_sets(runs: list[RunData]) -> list[ContrastSet]:
    """Every registered refusal benchmark with a refusal contrast set, paired over ``runs``.

    The trade-off compares refusal rates (refuse the benign set less, the harmful set more),
    so both sides must be scored by refusal rate. Sets without a shared configuration are
    included with no pairs, so the page can say what to run.
    """
    out = []
    for spec in benchmark_specs():
        base = spec_of(spec.contrast_of) if spec.contrast_of else None
        if base is None or spec.kind != "refusal" or base.kind != "refusal":
            continue
        out.append(ContrastSet(base.name, spec.name, pair_runs(runs, base.name, spec.name)))
    return out


def duplicate_warnings(runs: list[RunData]) -> list[str]:
    """One note per configuration run twice on a benchmark: only the first is paired."""
    seen: Counter[tuple[Any, ...]] = Counter(
        (r.benchmark, r.setting, r.config_key) for r in runs if r.metrics is not None
    )
    labels = {(r.benchmark, r.setting, r.config_key): r.config_label for r in runs}
    return [
        f"{n} runs of {b}{f' [{s}]' if s else ''} {labels[(b, s, key)]}: "
        "the first is used in pairings"
        for (b, s, key), n in seen.items()
        if n > 1
    ]


def by_type(run: RunData) -> dict[str, float | None]:
    """A refusal run's rates keyed "1", "2", "3" (stimulus types) and "all"."""
    m = run.metrics or {}
    out: dict[str, float | None] = {"all": m.get("refusal_rate")}
    for key in ("1", "2", "3"):
        out[key] = ((m.get("by_type") or {}).get(key) or {}).get("refusal_rate")
    return out


def by_type_ci(run: RunData) -> dict[str, list[float] | None]:
    """The 95 % intervals (percent) of :func:`by_type`'s rates; None where a run has none."""
    m = run.metrics or {}
    out: dict[str, list[float] | None] = {"all": m.get("ci95")}
    for key in ("1", "2", "3"):
        out[key] = ((m.get("by_type") or {}).get(key) or {}).get("ci95")
    return out


def published_rows(
    runs: list[RunData], benchmark: str, among: Iterable[str] = ()
) -> list[tuple[dict[str, Any], bool]]:
    """Every row of ``benchmark``'s published table, flagged when a run's model matches it.

    Only runs of ``benchmark`` and of the benchmarks in ``among`` (its contrast set) count.
    """
    spec = spec_of(benchmark)
    if spec is None or spec.published is None:
        return []
    mine = {benchmark, *among}
    matched = {
        row["model"]
        for r in runs
        if r.benchmark in mine
        for row in [published_row(benchmark, r.model)]
        if row
    }
    table = published.published_table(spec.published)
    return [(row, row["model"] in matched) for row in table["models"]]


# --------------------------------------------------------------------------- diagnosis


def stage_slug(value: Any) -> str:
    """A stage name as one lowercase token, so it can sit in a space-separated attribute."""
    return "-".join(str(value).lower().split())[:40]


def stage_entries(run: RunData) -> list[dict[str, Any]]:
    """diagnosis.json's usable entries, normalised: sample_id, stage, method, group keys."""
    out = []
    for entry in (run.diagnosis or {}).get("samples") or []:
        if not isinstance(entry, dict) or entry.get("sample_id") is None or not entry.get("stage"):
            continue
        out.append(
            {
                **entry,
                "sample_id": str(entry["sample_id"]),
                "stage": stage_slug(entry["stage"]),
                "method": str(entry.get("method") or "?"),
            }
        )
    return out


def stage_order(stages: Iterable[str]) -> list[str]:
    """Known stages in pipeline order, then any others alphabetically."""
    present = set(stages)
    return [s for s in STAGES if s in present] + sorted(present - set(STAGES))


def stage_counts(run: RunData) -> dict[str, Counter[str]]:
    """Diagnosed stages per method: {"counterfactual": Counter({"intent": 4, ...})}."""
    out: dict[str, Counter[str]] = {}
    for entry in stage_entries(run):
        out.setdefault(entry["method"], Counter())[entry["stage"]] += 1
    return out
