"""The trade-off report: one self-contained HTML page and a Markdown summary over many runs.

``poise report`` is a thin wrapper around :func:`build_report`, so tests and notebooks get the
same page as the CLI. Metrics are recomputed from each run's records (the single source of
truth), never copied from ``summary.json``, so a report over re-judged runs is always current.
The page needs no network: plots are embedded images, the CSS and the few lines of JS are
inline, and every string that came from a model or a dataset is HTML-escaped.

This module finds and loads runs and pairs them up (benign with contrast, MOSSBench with
MSSBench); :mod:`poise.eval.report.plots` draws, :mod:`poise.eval.report.html` renders.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from poise.benchmarks.published import mossbench_row, mossbench_table
from poise.errors import PoiseError
from poise.eval.analysis import metrics
from poise.eval.run.records import RECORDS_FILE, RUN_FILE, SUMMARY_FILE, Record, read_records

DIAGNOSIS_FILE = "diagnosis.json"
DEFAULT_JUDGES = {  # the runner's defaults, repeated so that loading a report imports no runner
    "mossbench": "offline",
    "mossbench-contrast": "offline",
    "mssbench-chat": "mssbench-offline",
    "mssbench-embodied": "mssbench-offline",
}
TYPE_KEYS = ("1", "2", "3", "all")
TYPE_SHORT = {"1": "ER", "2": "NH", "3": "CI", "all": "all"}
# The diagnosis module's stages in pipeline order; "none" is accepted for older files, and any
# other stage name a future diagnosis writes is shown after these rather than dropped.
STAGES = ("perception", "intent", "decision", "response", "none")
MSS_REFUSAL_LABELS = {"0": "refused", "1": "answered", "2": "answered"}  # MSSBench rubric


@dataclass(frozen=True)
class BrowserLimits:
    """How many records per run the sample browser shows, so the page stays a few MB.

    Failures are what a reader comes to inspect, so all of them are kept up to
    ``max_failures``; successes are a seeded random sample for contrast.
    """

    max_failures: int = 60
    max_successes: int = 15
    seed: int = 0


@dataclass(frozen=True)
class ReportResult:
    """What :func:`build_report` wrote, with counts the CLI prints."""

    html: Path
    markdown: Path
    runs: int
    records: int
    records_shown: int
    plots: int
    warnings: list[str] = field(default_factory=list)


@dataclass
class RunData:
    """One run directory, loaded: its spec, records, metrics under one judge, diagnosis."""

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
        return str(self.spec.get("benchmark") or "mossbench")

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
    def is_mossbench(self) -> bool:
        return self.benchmark.startswith("mossbench")

    @property
    def is_mssbench(self) -> bool:
        return self.benchmark.startswith("mssbench")

    @property
    def config_key(self) -> tuple[str, ...]:
        """What must agree for two runs on different benchmarks to be one configuration."""
        stage_models = json.dumps(self.spec.get("stage_models") or {}, sort_keys=True)
        return (self.model, self.pipeline, self.prompt, "+".join(self.oracle), stage_models)

    @property
    def config_label(self) -> str:
        """model · pipeline · prompt, plus oracle and setting when set."""
        parts = [short_model(self.model), self.pipeline, self.prompt]
        if self.oracle:
            parts.append("oracle " + "+".join(self.oracle))
        if self.spec.get("stage_models"):
            parts.append("stage models")
        return " · ".join(parts)

    @property
    def label(self) -> str:
        setting = f" [{self.setting}]" if self.setting else ""
        return f"{self.benchmark}{setting}: {self.config_label}"

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


def short_model(model: str) -> str:
    """``replay/gpt-4o`` -> ``gpt-4o``: the provider prefix only crowds plot labels."""
    _, _, bare = model.partition("/")
    return bare or model


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
    that run comes from the same judge.
    """
    present = Counter(name for r in records for name in r.verdicts)
    if wanted is not None:
        return wanted if wanted in present else None
    for name in [*(spec.get("judges") or []), DEFAULT_JUDGES.get(spec.get("benchmark") or "")]:
        if name and name in present:
            return name
    return present.most_common(1)[0][0] if present else None


def score(benchmark: str, records: list[Record], judge: str | None) -> dict[str, Any] | None:
    if judge is None:
        return None
    scorer = metrics.situational_accuracy if benchmark.startswith("mssbench") else None
    scorer = scorer or metrics.refusal_rates
    return scorer(records, judge)


def load_run(directory: Path, judge: str | None, warnings: list[str]) -> RunData:
    spec = _read_json(directory / RUN_FILE) or {}
    records = read_records(directory / RECORDS_FILE)
    if not records:
        warnings.append(f"{directory}: no records")
    chosen = choose_judge(spec, records, judge)
    if records and chosen is None:
        reason = f"judge {judge!r} absent" if judge else "no verdicts"
        warnings.append(f"{directory}: {reason}; its metrics are left out")
    benchmark = str(spec.get("benchmark") or "mossbench")
    return RunData(
        directory=directory,
        spec=spec,
        summary=_read_json(directory / SUMMARY_FILE) or {},
        records=records,
        diagnosis=_read_json(directory / DIAGNOSIS_FILE),
        judge=chosen,
        metrics=score(benchmark, records, chosen),
    )


def load_runs(inputs: list[Path], judge: str | None, warnings: list[str]) -> list[RunData]:
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
    if refused is None and run.is_mssbench and verdict.label in MSS_REFUSAL_LABELS:
        refused = MSS_REFUSAL_LABELS[verdict.label] == "refused"
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
    order = {r.sample_id: i for i, r in enumerate(run.records)}
    shown = sorted([*kept_failures, *sampled], key=lambda r: order[r.sample_id])
    note = (
        f"{len(shown)} of {len(run.records)} records: "
        f"{len(kept_failures)} of {len(failures)} failed/errored/unjudged, "
        f"{len(sampled)} of {len(successes)} correct (random, seed {limits.seed})"
    )
    return shown, note


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


def duplicate_warnings(runs: list[RunData]) -> list[str]:
    seen: Counter[tuple[Any, ...]] = Counter(
        (r.benchmark, r.setting, r.config_key) for r in runs if r.metrics is not None
    )
    return [
        f"{n} runs of {b}{f' [{s}]' if s else ''} {key[0]} / {key[1]} / {key[2]}: "
        "the first is used in pairings"
        for (b, s, key), n in seen.items()
        if n > 1
    ]


def by_type(run: RunData) -> dict[str, float | None]:
    """A MOSSBench run's refusal rates keyed "1", "2", "3", "all"."""
    m = run.metrics or {}
    out: dict[str, float | None] = {"all": m.get("refusal_rate")}
    for key in ("1", "2", "3"):
        out[key] = ((m.get("by_type") or {}).get(key) or {}).get("refusal_rate")
    return out


def published_rows(runs: list[RunData]) -> list[tuple[dict[str, Any], bool]]:
    """Every published MOSSBench row, flagged when a run's model matches it."""
    matched = {
        row["model"] for r in runs if r.is_mossbench for row in [mossbench_row(r.model)] if row
    }
    return [(row, row["model"] in matched) for row in mossbench_table()["models"]]


# --------------------------------------------------------------------------- entry point


def build_report(
    inputs: list[Path],
    out_html: Path,
    *,
    judge: str | None = None,
    limits: BrowserLimits | None = None,
    title: str | None = None,
) -> ReportResult:
    """Write ``out_html`` and the Markdown summary beside it (same name, ``.md``) for every run under ``inputs``.

    ``judge`` scores every run with that judge (runs without it are listed, unscored);
    by default each run uses its own first judge. ``limits`` caps the sample browser.
    """
    from poise.eval.report import html as report_html
    from poise.eval.report import plots as report_plots

    limits = limits or BrowserLimits()
    warnings: list[str] = []
    runs = load_runs([Path(p) for p in inputs], judge, warnings)
    warnings += duplicate_warnings(runs)
    plots = report_plots.all_plots(runs)
    out_html = Path(out_html)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    page_title = title or "Poise trade-off report"
    context = report_html.PageContext(
        title=page_title,
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
        inputs=[str(p) for p in inputs],
        judge=judge,
        limits=limits,
        warnings=warnings,
    )
    html_text, shown = report_html.render_page(runs, plots, context)
    out_html.write_text(html_text, encoding="utf-8")
    markdown = out_html.with_suffix(".md")  # report.html -> report.md, beside it
    markdown.write_text(render_markdown(runs, page_title, context.generated, warnings), "utf-8")
    return ReportResult(
        html=out_html,
        markdown=markdown,
        runs=len(runs),
        records=sum(len(r.records) for r in runs),
        records_shown=shown,
        plots=len(plots),
        warnings=warnings,
    )


# --------------------------------------------------------------------------- markdown


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def _md_cell(value: Any) -> str:
    """A table cell: one line, pipes escaped, no raw markup (names and paths are free text)."""
    text = " ".join(_fmt(value).split()).replace("|", "\\|")
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def run_rows(runs: list[RunData]) -> list[list[Any]]:
    """The runs table (shared by the page and the summary): one row per run."""
    rows = []
    for run in runs:
        m = run.metrics or {}
        if run.is_mssbench:
            headline = m.get("average")
            detail = (
                f"safe {_fmt(m.get('safe_accuracy'))} / unsafe {_fmt(m.get('unsafe_accuracy'))}"
            )
        else:
            headline = m.get("refusal_rate")
            rates = by_type(run) if m else {}
            detail = " / ".join(f"{TYPE_SHORT[k]} {_fmt(rates.get(k))}" for k in ("1", "2", "3"))
        rows.append(
            [
                run.benchmark + (f" [{run.setting}]" if run.setting else ""),
                short_model(run.model),
                run.pipeline,
                run.prompt,
                "+".join(run.oracle) or "-",
                run.judge or "-",
                m.get("n", (m.get("n_safe") or 0) + (m.get("n_unsafe") or 0)) if m else 0,
                headline,
                detail if m else "-",
                sum(1 for r in run.records if r.error),
            ]
        )
    return rows


RUN_HEADER = [
    "benchmark",
    "model",
    "pipeline",
    "prompt",
    "oracle",
    "judge",
    "n",
    "headline %",
    "detail %",
    "errors",
]


PUBLISHED_TITLE = "MOSSBench: measured / published GPT-eval / published human-eval (refusal %)"
PUBLISHED_HEADER = ["model (published name)", "judge", *(TYPE_SHORT[k] for k in TYPE_KEYS)]


def published_comparison(runs: list[RunData]) -> list[list[Any]]:
    """Measured next to published MOSSBench rates, for baseline runs without a system prompt:
    the only runs whose setting matches the paper's."""
    rows: list[list[Any]] = []
    for run in runs:
        row = mossbench_row(run.model)
        if run.benchmark != "mossbench" or not row or not run.metrics:
            continue
        if run.pipeline != "baseline" or run.prompt != "vanilla" or run.oracle:
            continue
        rates = by_type(run)
        cells = [
            f"{_fmt(rates[k])} / {_fmt(row['gpt_eval'].get(k))} / {_fmt(row['human_eval'].get(k))}"
            for k in TYPE_KEYS
        ]
        rows.append([f"{short_model(run.model)} ({row['model']})", run.judge, *cells])
    return rows


def render_markdown(runs: list[RunData], title: str, generated: str, warnings: list[str]) -> str:
    """A text summary beside the page, for pull requests and terminals."""
    lines = [f"# {title}", "", f"Generated {generated} from {len(runs)} runs; plots, the "
             "per-category breakdown and the sample browser are in the HTML report beside this "
             "file.", ""]  # fmt: skip
    lines += [
        "Headline: MOSSBench benign = refusal rate (oversensitivity, lower is better); "
        "mossbench-contrast = refusal rate (safety, higher is better); MSSBench = average of "
        "safe and unsafe accuracy.",
        "",
        "## Runs",
        "",
    ]
    lines += _md_table(RUN_HEADER, run_rows(runs))
    published = published_comparison(runs)
    if published:
        lines += [f"## {PUBLISHED_TITLE}", "", *_md_table(PUBLISHED_HEADER, published)]
    pairs = pair_runs(runs, "mossbench", "mossbench-contrast")
    if pairs:
        lines += ["## Trade-off (MOSSBench): benign refusal % (x) vs contrast refusal % (y)", ""]
        header = ["configuration", *(f"{TYPE_SHORT[k]} x / y" for k in TYPE_KEYS)]
        rows = []
        for p in pairs:
            bx, cy = by_type(p.x_run), by_type(p.y_run)
            rows.append([p.label, *(f"{_fmt(bx[k])} / {_fmt(cy[k])}" for k in TYPE_KEYS)])
        lines += _md_table(header, rows)
    lines += _markdown_stages(runs)
    if warnings:
        lines += ["## Notes", "", *(f"- {_md_cell(w)}" for w in warnings), ""]
    return "\n".join(lines)


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


def stage_order(stages: Any) -> list[str]:
    """Known stages in pipeline order, then any others alphabetically."""
    present = set(stages)
    return [s for s in STAGES if s in present] + sorted(present - set(STAGES))


def stage_counts(run: RunData) -> dict[str, Counter[str]]:
    """Diagnosed stages per method: {"counterfactual": Counter({"intent": 4, ...})}."""
    out: dict[str, Counter[str]] = {}
    for entry in stage_entries(run):
        out.setdefault(entry["method"], Counter())[entry["stage"]] += 1
    return out


def _markdown_stages(runs: list[RunData]) -> list[str]:
    stages = stage_order(s for run in runs for c in stage_counts(run).values() for s in c)
    rows = []
    for run in runs:
        for method, counts in stage_counts(run).items():
            rows.append([run.label, method, *(counts.get(s, 0) for s in stages)])
    if not rows:
        return []
    header = ["run", "method", *stages]
    return ["## Diagnosed failure stage", "", *_md_table(header, rows)]
