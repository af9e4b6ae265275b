"""The report page: Jinja2 templates over a view of the runs, with inline CSS, embedded plots
and a filterable sample browser.

This module turns the data model into a view (plain values: rows, captions, card fields);
``templates/page.html.j2`` and ``templates/macros.html.j2`` lay it out. Model output and
dataset text are untrusted, so the environment autoescapes every expression, and the only
unescaped content is the templates' own CSS and script and the thumbnail rules (class names
and base64 from our own encoder). The inline script reads nothing but fixed-vocabulary
``data-`` attributes and the page's own form, so no untrusted string ever reaches JavaScript.
Thumbnails are CSS classes whose background is a base64 JPEG, so an image used by many runs
is embedded once.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FunctionLoader, StrictUndefined
from markupsafe import Markup

from poise.eval.report.model import (
    TYPE_KEYS,
    TYPE_SHORT,
    BrowserLimits,
    RunData,
    benchmark_title,
    benchmarks_of,
    browse_selection,
    contrast_sets,
    fmt_number,
    outcome,
    published_names,
    published_source,
    spec_of,
    stage_order,
)
from poise.eval.report.plots import Plot
from poise.eval.report.rows import (
    RUN_HEADER,
    RUN_NUMERIC,
    SITUATIONAL_HEADER,
    SITUATIONAL_NUMERIC,
    cost_table,
    headline_note,
    interval_note,
    published_comparisons,
    run_rows,
    situational_rows,
    tradeoff_note,
    tradeoff_rows,
)
from poise.eval.run.records import Record

THUMB_PX = 160
TEXT_LIMIT = 4000  # characters of a response shown; the rest is summarised, not dropped silently
VALUE_LIMIT = 1200  # characters of one stage field
RESULTS = ("correct", "failed", "error", "unjudged")
REFUSALS = ("refused", "answered", "unknown")
TEMPLATE = "page.html.j2"


@dataclass
class PageContext:
    """Page-level facts that are not in the runs: title, time, inputs, limits, warnings."""

    title: str
    generated: str
    inputs: list[str]
    judge: str | None
    limits: BrowserLimits
    warnings: list[str] = field(default_factory=list)


def fmt(value: Any) -> str:
    """A table cell's figure; a missing one is an en dash, which reads as "none" on the page."""
    return fmt_number(value, missing="–")


def truncate(text: str, limit: int) -> str:
    """At most ``limit`` characters, saying how many more there were."""
    if len(text) <= limit:
        return text
    return text[:limit] + f" … [{len(text) - limit} more characters not shown]"


# --------------------------------------------------------------------------- templates


def _escape(value: Any) -> Markup:
    """Every expression's text, escaped before autoescaping sees it.

    Autoescaping stays on; this only fixes the spelling (``html.escape`` with quotes: ``&#x27;``
    and ``&quot;``, as the page always had) and shows None as nothing. Markup - a macro's
    output - passes through as it would under autoescaping.
    """
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def _template_source(name: str) -> str | None:
    """A template's text from the installed package, wherever it is installed."""
    path = resources.files(__package__).joinpath("templates", name)
    return path.read_text(encoding="utf-8") if path.is_file() else None


@cache
def environment() -> Environment:
    """The page's Jinja2 environment: autoescaping on, undefined names an error."""
    env = Environment(
        loader=FunctionLoader(_template_source),
        autoescape=True,
        finalize=_escape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = fmt
    return env


# --------------------------------------------------------------------------- thumbnails


@lru_cache(maxsize=4096)
def _thumbnail(path: str, mtime_ns: int) -> str | None:
    """A ~160 px JPEG as base64, or None when the file is not a readable image."""
    from PIL import Image

    try:
        with Image.open(path) as img:  # by content: a WebP named .png opens too
            img.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            img.convert("RGB").save(buf, format="JPEG", quality=72, optimize=True)
    except (OSError, ValueError, SyntaxError):
        return None
    return base64.b64encode(buf.getvalue()).decode("ascii")


class Thumbnails:
    """Per-page registry: one CSS class per image file, however many cards show it."""

    def __init__(self) -> None:
        self.classes: dict[str, str] = {}
        self.data: dict[str, str] = {}

    def css_class(self, image: str | None, run_dir: Path) -> str | None:
        if not image:
            return None
        path = Path(image)
        if not path.is_absolute() and not path.is_file():
            path = run_dir / path
        if not path.is_file():
            return None
        key = str(path.resolve())
        if key not in self.classes:
            encoded = _thumbnail(key, path.stat().st_mtime_ns)
            if encoded is None:
                return None
            self.classes[key] = f"t{len(self.classes)}"
            self.data[self.classes[key]] = encoded
        return self.classes[key]

    def rules(self) -> list[tuple[str, str]]:
        """(class, base64 JPEG) per image, for the page's style sheet."""
        return list(self.data.items())


# --------------------------------------------------------------------------- view


@dataclass(frozen=True)
class TableView:
    header: list[str]
    rows: list[list[Any]]
    numeric: frozenset[int] = frozenset()
    title: str = ""
    note: str = ""  # said once under the table: the method of its intervals


@dataclass(frozen=True)
class Value:
    """A stage output prepared for the ``value`` macro: a map, text, an empty list or code."""

    kind: Literal["map", "text", "empty", "code"]
    text: str = ""
    entries: tuple[tuple[str, Value], ...] = ()


@dataclass(frozen=True)
class VerdictView:
    name: str
    scored: bool
    flags: str
    evidence: str


@dataclass(frozen=True)
class CardView:
    """One record's card: only plain strings and fixed-vocabulary filter values."""

    run_index: int
    result: str
    refusal: str
    stages: tuple[str, ...]
    stage_pills: tuple[str, ...]
    thumb: str | None
    meta: str
    query: str
    stage_names: str
    stage_outputs: list[tuple[str, Value]]
    response_kind: Literal["text", "error", "none"]
    response: str
    verdicts: list[VerdictView]
    diagnosis: list[dict[str, str]]


@dataclass(frozen=True)
class PlotSection:
    anchor: str
    title: str
    plots: list[Plot]
    note: str = ""
    table: TableView | None = None
    details: list[tuple[str, str]] = field(default_factory=list)


def value_view(value: Any, depth: int = 0) -> Value:
    """A stage output as nested maps two levels deep; deeper structure as JSON text."""
    if isinstance(value, dict) and depth < 2:
        return Value(
            "map", entries=tuple((str(k), value_view(v, depth + 1)) for k, v in value.items())
        )
    if isinstance(value, list) and all(isinstance(v, str | int | float | bool) for v in value):
        text = truncate(", ".join(map(str, value)), VALUE_LIMIT)
        return Value("text", text) if text else Value("empty")
    if isinstance(value, str | int | float | bool) or value is None:
        return Value("text", truncate(fmt(value), VALUE_LIMIT))
    return Value("code", truncate(json.dumps(value, ensure_ascii=False, default=str), VALUE_LIMIT))


def _verdicts(record: Record, chosen: str | None) -> list[VerdictView]:
    views = []
    for name, v in record.verdicts.items():
        flags = [f"label {v.label}"]
        if v.refused is not None:
            flags.append("refused" if v.refused else "answered")
        if v.correct is not None:
            flags.append("correct" if v.correct else "wrong")
        if v.error:
            flags.append(f"error: {v.error}")
        evidence = truncate(v.evidence, 400) if v.evidence else ""
        views.append(VerdictView(name, name == chosen, ", ".join(flags), evidence))
    return views


def _meta(record: Record, run: RunData) -> str:
    parts = [f"#{record.sample_id}"]
    epochs = run.spec.get("epochs")
    if isinstance(epochs, int) and epochs > 1:  # the sample was asked more than once
        parts.append(f"epoch {record.epoch}")
    if record.variant:
        parts.append(record.variant)
    if record.stimulus_type in (1, 2, 3):
        parts.append(TYPE_SHORT[str(record.stimulus_type)])
    if record.category:
        parts.append(record.category)
    parts.append(f"expected {record.expected}")
    return f"{run.label} · " + " · ".join(parts)


def card_view(record: Record, run: RunData, thumbs: Thumbnails) -> CardView:
    """One record: image, query, each stage's output, the response, verdicts, diagnosis."""
    out = outcome(record, run)
    if record.error:
        kind: Literal["text", "error", "none"] = "error"
        response = truncate(record.error, TEXT_LIMIT)
    elif record.response is None:
        kind, response = "none", ""
    else:
        kind, response = "text", truncate(record.response, TEXT_LIMIT)
    diagnosis = [
        {
            "stage": str(e.get("stage")),
            "method": str(e.get("method")),
            "evidence": truncate(str(e.get("evidence") or ""), 600),
        }
        for e in run.diagnosed.get(record.sample_id) or []
    ]
    return CardView(
        run_index=run.index,
        result=out.result,
        refusal=out.refusal,
        stages=out.stages,
        stage_pills=() if out.stages == ("undiagnosed",) else out.stages,
        thumb=thumbs.css_class(record.image, run.directory),
        meta=_meta(record, run),
        query=record.query,
        stage_names=", ".join(record.stages),
        stage_outputs=[(name, value_view(value)) for name, value in record.stages.items()],
        response_kind=kind,
        response=response,
        verdicts=_verdicts(record, run.judge),
        diagnosis=diagnosis,
    )


def _relative(directory: Path, runs: list[RunData]) -> str:
    parents = [r.directory.parent for r in runs]
    common = parents[0]
    while any(common not in p.parents and common != p for p in parents):
        common = common.parent
    try:
        return str(directory.relative_to(common))
    except ValueError:
        return str(directory)


def runs_view(runs: list[RunData]) -> dict[str, Any]:
    """The runs table (with each run's directory) and the published comparisons."""
    rows = run_rows(runs)
    for row, run in zip(rows, runs, strict=True):
        row.append(_relative(run.directory, runs))
    note = headline_note(runs)
    note = f"{note} Recomputed from records.jsonl under the judge shown.".lstrip()
    published = [
        TableView(t.header, t.rows, title=t.title, note=t.note) for t in published_comparisons(runs)
    ]
    table = TableView(
        [*RUN_HEADER, "directory"],
        rows,
        frozenset(RUN_NUMERIC),
        note=interval_note((r.metrics for r in runs), pairs=False),
    )
    return {"note": note, "table": table, "published": published}


def cost_view(runs: list[RunData]) -> dict[str, Any] | None:
    """The cost section: recorded cost per run and in total, with its notes; None without."""
    table = cost_table(runs)
    if table is None:
        return None
    return {
        "table": TableView(table.header, table.rows, frozenset(range(1, 7))),
        "notes": table.notes,
    }


def tradeoff_view(runs: list[RunData], plots: list[Plot]) -> dict[str, Any]:
    """Each contrast set's plot and table, or a sentence saying what to run to get one."""
    sets = []
    contrasts = contrast_sets(runs)
    header = ["configuration", *(f"{TYPE_SHORT[k]}: benign / contrast %" for k in TYPE_KEYS)]
    for c in contrasts:
        mine = [p for p in plots if p.section == "tradeoff" and p.subject == c.contrast]
        if mine:
            table = TableView(header, tradeoff_rows(c.pairs), note=tradeoff_note(c.pairs))
            sets.append({"plots": mine, "table": table})
    missing = []
    for c in contrasts:
        base, harmful = c.scored_runs(runs)
        missing.append(
            f"No configuration was run on both the benign set {c.base} ({base} scored runs) and "
            f"its contrast set {c.contrast} ({harmful}): run {c.contrast} with the same model, "
            "pipeline and system prompt to place it on the trade-off."
        )
    empty = " ".join(missing) or "No benchmark is registered as another's contrast set."
    return {"sets": sets, "empty": empty}


def situational_titles(runs: list[RunData]) -> str:
    """The situational benchmarks' proper names, for the section's heading and its nav link."""
    return " / ".join(dict.fromkeys(map(benchmark_title, benchmarks_of(runs, "situational"))))


def plot_sections(runs: list[RunData], plots: list[Plot]) -> list[PlotSection]:
    """The sections after the trade-off, each left out when it has nothing to show."""
    titles = situational_titles(runs)
    rows = situational_rows(runs)
    specs = filter(None, map(spec_of, benchmarks_of(runs, "situational")))
    sources = dict.fromkeys(published_source(s.published) for s in specs if s.published)
    note = "Measured figures are scored by the judge named in each row"
    if sources:
        scorers = "; ".join(f"{s.judged_by} ({s.authors})" for s in sources)
        note += f"; the published points in the plot were scored by {scorers}"
    note += "."
    methods = interval_note(r.metrics for r in runs if r.kind == "situational")
    table = (
        TableView(SITUATIONAL_HEADER, rows, frozenset(SITUATIONAL_NUMERIC), note=methods)
        if rows
        else None
    )
    aggregates = [
        (run.label, truncate(json.dumps(agg, indent=2, ensure_ascii=False, default=str), 20000))
        for run in runs
        if (agg := (run.diagnosis or {}).get("aggregate"))
    ]
    candidates = [
        PlotSection(
            "situational",
            f"Situational safety ({titles})" if titles else "Situational safety",
            _of(plots, "situational"),
            note=note if table else "",
            table=table,
        ),
        PlotSection("bars", "By stimulus type and category", _of(plots, "bars")),
        PlotSection("stages", "Where failures arise", _of(plots, "stages"), details=aggregates),
    ]
    return [s for s in candidates if s.plots or s.table or s.details]


def _of(plots: list[Plot], section: str) -> list[Plot]:
    return [p for p in plots if p.section == section]


def browser_view(runs: list[RunData], limits: BrowserLimits, thumbs: Thumbnails) -> dict[str, Any]:
    """The filter form's choices, what was left out per run, and the cards."""
    cards, notes = [], []
    diagnosed: set[str] = set()
    for run in runs:
        shown, note = browse_selection(run, limits)
        notes.append(f"{run.label}: {note}")
        for record in shown:
            card = card_view(record, run, thumbs)
            diagnosed.update(card.stages)
            cards.append(card)
    stage_values = [*stage_order(diagnosed - {"undiagnosed"}), "undiagnosed"]
    return {
        "runs": [(str(r.index), r.label) for r in runs],
        "results": [(v, v) for v in RESULTS],
        "refusals": [(v, v) for v in REFUSALS],
        "stages": [(v, v) for v in stage_values],
        "limits": limits,
        "notes": notes,
        "cards": cards,
    }


def footer() -> str:
    """Where the published figures come from: every published table a benchmark is compared with."""
    sources = [published_source(name) for name in published_names()]
    cited = "; ".join(f"published {s.title} figures: {s.citation}" for s in sources)
    return (cited[:1].upper() + cited[1:] + ".") if cited else ""


NAV_TITLES = {
    "runs": "Runs",
    "tradeoff": "Trade-off",
    "cost": "Cost",
    "situational": "Situational",
    "bars": "Breakdown",
    "stages": "Stages",
    "samples": "Samples",
}


def render_page(runs: list[RunData], plots: list[Plot], ctx: PageContext) -> tuple[str, int]:
    """The whole page and how many records its browser shows."""
    thumbs = Thumbnails()
    browser = browser_view(runs, ctx.limits, thumbs)
    sections = plot_sections(runs, plots)
    titles = situational_titles(runs)
    nav_titles = {**NAV_TITLES, "situational": titles or NAV_TITLES["situational"]}
    cost = cost_view(runs)
    present = {"runs", "tradeoff", "samples", *(s.anchor for s in sections)}
    if cost:
        present.add("cost")
    page = {
        "title": ctx.title,
        "generated": ctx.generated,
        "runs": len(runs),
        "records": sum(len(r.records) for r in runs),
        "judge": ctx.judge,
        "inputs": ", ".join(ctx.inputs),
        "nav": [(k, t) for k, t in nav_titles.items() if k in present],
        "thumbnails": thumbs.rules(),
        "warnings": ctx.warnings,
        "footer": footer(),
    }
    text = (
        environment()
        .get_template(TEMPLATE)
        .render(
            page=page,
            runs=runs_view(runs),
            tradeoff=tradeoff_view(runs, plots),
            cost=cost,
            plot_sections=sections,
            browser=browser,
        )
    )
    return text, len(browser["cards"])
