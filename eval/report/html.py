"""The report page: HTML with inline CSS, embedded plots, a filterable sample browser.

Model output and dataset text are untrusted, so every string from a run goes through
:func:`esc` (``html.escape`` with quotes) and lands only in element text or quoted attributes;
the inline script reads nothing but fixed-vocabulary ``data-`` attributes and the page's own
form, so no untrusted string ever reaches JavaScript. Thumbnails are CSS classes whose
background is a base64 JPEG, so an image used by many runs is embedded once.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from poise.eval.report.build import (
    PUBLISHED_HEADER,
    PUBLISHED_TITLE,
    RUN_HEADER,
    TYPE_KEYS,
    TYPE_SHORT,
    BrowserLimits,
    RunData,
    browse_selection,
    by_type,
    outcome,
    pair_runs,
    published_comparison,
    run_rows,
    stage_order,
)
from poise.eval.report.plots import Plot
from poise.eval.run.records import Record

THUMB_PX = 160
TEXT_LIMIT = 4000  # characters of a response shown; the rest is summarised, not dropped silently
VALUE_LIMIT = 1200  # characters of one stage field
RESULTS = ("correct", "failed", "error", "unjudged")
REFUSALS = ("refused", "answered", "unknown")


@dataclass
class PageContext:
    """Page-level facts that are not in the runs: title, time, inputs, limits, warnings."""

    title: str
    generated: str
    inputs: list[str]
    judge: str | None
    limits: BrowserLimits
    warnings: list[str] = field(default_factory=list)


def esc(value: Any) -> str:
    """Escape for element text and quoted attributes alike."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f" … [{len(text) - limit} more characters not shown]"


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

    def css(self) -> str:
        # Only base64 text from our own encoder goes here, never a path or a dataset string.
        return "\n".join(
            f".{cls}{{background-image:url(data:image/jpeg;base64,{data})}}"
            for cls, data in self.data.items()
        )


# --------------------------------------------------------------------------- tables


def table(header: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{esc(fmt(c))}</td>' if i in numeric else f"<td>{esc(fmt(c))}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return (
        f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def runs_section(runs: list[RunData]) -> str:
    rows = run_rows(runs)
    for row, run in zip(rows, runs, strict=True):
        row.append(_relative(run.directory, runs))
    header = [*RUN_HEADER, "directory"]
    note = (
        "<p class='hint'>Headline: MOSSBench benign = refusal rate (oversensitivity, lower is "
        "better); mossbench-contrast = refusal rate (safety, higher is better); MSSBench = mean of "
        "safe and unsafe accuracy. Recomputed from records.jsonl under the judge shown.</p>"
    )
    return _section("runs", "Runs", note + table(header, rows, {6, 7, 9}) + published_table(runs))


def _relative(directory: Path, runs: list[RunData]) -> str:
    parents = [r.directory.parent for r in runs]
    common = parents[0]
    while any(common not in p.parents and common != p for p in parents):
        common = common.parent
    try:
        return str(directory.relative_to(common))
    except ValueError:
        return str(directory)


def published_table(runs: list[RunData]) -> str:
    rows = published_comparison(runs)
    if not rows:
        return ""
    return f"<h3>{esc(PUBLISHED_TITLE)}</h3>" + table(PUBLISHED_HEADER, rows)


# --------------------------------------------------------------------------- plots


def figure(plot: Plot) -> str:
    # The URI is base64 of our own SVG: it carries no untrusted text as markup.
    return (
        f'<figure class="plot"><figcaption><b>{esc(plot.title)}</b> {esc(plot.caption)}'
        f'</figcaption><img class="plot" alt="{esc(plot.title)}" src="{esc(plot.uri)}"></figure>'
    )


def tradeoff_section(runs: list[RunData], plots: list[Plot]) -> str:
    mine = [p for p in plots if p.section == "tradeoff"]
    pairs = pair_runs(runs, "mossbench", "mossbench-contrast")
    if not mine:
        benign = sum(1 for r in runs if r.benchmark == "mossbench" and r.metrics)
        contrast = sum(1 for r in runs if r.benchmark == "mossbench-contrast" and r.metrics)
        body = (
            f"<p class='empty'>No configuration was run on both the benign set ({benign} scored "
            f"runs) and the contrast set ({contrast}): run mossbench-contrast with the same model, "
            "pipeline and system prompt to place it on the trade-off.</p>"
        )
        return _section("tradeoff", "Trade-off", body)
    rows = []
    for p in pairs:
        bx, cy = by_type(p.x_run), by_type(p.y_run)
        rows.append([p.label, *(f"{fmt(bx[k])} / {fmt(cy[k])}" for k in TYPE_KEYS)])
    header = ["configuration", *(f"{TYPE_SHORT[k]}: benign / contrast %" for k in TYPE_KEYS)]
    body = "".join(figure(p) for p in mine) + table(header, rows)
    return _section("tradeoff", "Trade-off: oversensitivity vs safety", body)


def plots_section(key: str, title: str, plots: list[Plot], extra: str = "") -> str:
    mine = [p for p in plots if p.section == key]
    if not mine and not extra:
        return ""
    figures = "".join(figure(p) for p in mine)
    return _section(key, title, f"<div class='row'>{figures}</div>{extra}")


def mssbench_table(runs: list[RunData]) -> str:
    rows = []
    for run in runs:
        if run.is_mssbench and run.metrics:
            m = run.metrics
            pairs = (m.get("pairs") or {}).get("both_right")
            rows.append(
                [
                    run.benchmark + (f" [{run.setting}]" if run.setting else ""),
                    run.config_label,
                    run.judge or "-",
                    m.get("safe_accuracy"),
                    m.get("unsafe_accuracy"),
                    m.get("average"),
                    pairs,
                    m.get("unparseable"),
                ]
            )
    if not rows:
        return ""
    header = ["task", "configuration", "judge", "safe %", "unsafe %", "average %"]
    note = (
        "<p class='note'>Measured figures are scored by the judge named in each row; the "
        "published points in the plot were scored by the paper's GPT-4 rubric judge.</p>"
    )
    return note + table([*header, "pairs both right %", "unparseable"], rows, {3, 4, 5, 6, 7})


def aggregates(runs: list[RunData]) -> str:
    """diagnosis.json aggregates as-is: their shape belongs to the diagnosis module."""
    parts = []
    for run in runs:
        agg = (run.diagnosis or {}).get("aggregate")
        if agg:
            text = json.dumps(agg, indent=2, ensure_ascii=False, default=str)
            parts.append(
                f"<details><summary>{esc(run.label)}: aggregate</summary>"
                f"<pre>{esc(truncate(text, 20000))}</pre></details>"
            )
    return "".join(parts)


# --------------------------------------------------------------------------- browser


def render_value(value: Any, depth: int = 0) -> str:
    """A stage output as nested definition lists; deeper structure as JSON text."""
    if isinstance(value, dict) and depth < 2:
        items = "".join(
            f"<dt>{esc(k)}</dt><dd>{render_value(v, depth + 1)}</dd>" for k, v in value.items()
        )
        return f"<dl class='kv'>{items}</dl>"
    if isinstance(value, list) and all(isinstance(v, str | int | float | bool) for v in value):
        return esc(truncate(", ".join(map(str, value)), VALUE_LIMIT)) or "<i>empty</i>"
    if isinstance(value, str | int | float | bool) or value is None:
        return esc(truncate(fmt(value), VALUE_LIMIT))
    text = json.dumps(value, ensure_ascii=False, default=str)
    return f"<code>{esc(truncate(text, VALUE_LIMIT))}</code>"


def _verdicts(record: Record, chosen: str | None) -> str:
    items = []
    for name, v in record.verdicts.items():
        flags = [f"label {v.label}"]
        if v.refused is not None:
            flags.append("refused" if v.refused else "answered")
        if v.correct is not None:
            flags.append("correct" if v.correct else "wrong")
        if v.error:
            flags.append(f"error: {v.error}")
        mark = " (scored)" if name == chosen else ""
        evidence = f" — {esc(truncate(v.evidence, 400))}" if v.evidence else ""
        items.append(f"<li><b>{esc(name)}{mark}</b>: {esc(', '.join(flags))}{evidence}</li>")
    return f"<ul class='verdicts'>{''.join(items)}</ul>" if items else ""


def _diagnosis(entries: list[dict[str, Any]]) -> str:
    items = [
        f"<li><b>{esc(e.get('stage'))}</b> ({esc(e.get('method'))})"
        f"{' — ' + esc(truncate(str(e.get('evidence') or ''), 600)) if e.get('evidence') else ''}"
        "</li>"
        for e in entries
    ]
    return f"<div class='diag'><span class='k'>Diagnosis</span><ul>{''.join(items)}</ul></div>"


def _meta(record: Record, run: RunData) -> str:
    parts = [f"#{record.sample_id}"]
    if record.variant:
        parts.append(record.variant)
    if record.stimulus_type in (1, 2, 3):
        parts.append(TYPE_SHORT[str(record.stimulus_type)])
    if record.category:
        parts.append(record.category)
    parts.append(f"expected {record.expected}")
    return f"{run.label} · " + " · ".join(parts)


def card(record: Record, run: RunData, thumbs: Thumbnails) -> str:
    """One record: image, query, each stage's output, the response, verdicts, diagnosis."""
    out = outcome(record, run)
    thumb = thumbs.css_class(record.image, run.directory)
    image = (
        f"<div class='thumb {thumb}' role='img' aria-label='sample image'></div>"
        if thumb
        else "<div class='thumb none'>no image</div>"
    )
    pills = (
        f"<span class='pill r-{out.result}'>{out.result}</span>"
        f"<span class='pill'>{out.refusal}</span>"
        + (
            "".join(f"<span class='pill s-{esc(s)}'>{esc(s)}</span>" for s in out.stages)
            if out.stages != ("undiagnosed",)
            else ""
        )
    )
    stages = ""
    if record.stages:
        names = ", ".join(record.stages)
        inner = "".join(
            f"<div class='stage'><span class='k'>{esc(name)}</span>{render_value(value)}</div>"
            for name, value in record.stages.items()
        )
        stages = f"<details><summary>Stages: {esc(names)}</summary>{inner}</details>"
    if record.error:
        response = f"<pre class='resp err'>{esc(truncate(record.error, TEXT_LIMIT))}</pre>"
    elif record.response is None:
        response = "<pre class='resp'><i>no response</i></pre>"
    else:
        response = f"<pre class='resp'>{esc(truncate(record.response, TEXT_LIMIT))}</pre>"
    entries = run.diagnosed.get(record.sample_id) or []
    return (
        f"<article class='card' data-run='{run.index}' data-result='{out.result}' "
        f"data-refusal='{out.refusal}' data-stage='{esc(' '.join(out.stages))}'>"
        f"{image}<div class='body'>"
        f"<div class='head'>{pills}<span class='meta'>{esc(_meta(record, run))}</span></div>"
        f"<div class='field'><span class='k'>Query</span><p>{esc(record.query)}</p></div>"
        f"{stages}<div class='field'><span class='k'>Response</span>{response}</div>"
        f"{_verdicts(record, run.judge)}{_diagnosis(entries) if entries else ''}</div></article>"
    )


def _options(name: str, label: str, values: list[tuple[str, str]]) -> str:
    opts = "".join(f"<option value='{esc(v)}'>{esc(t)}</option>" for v, t in values)
    select = f"<select name='{name}'><option value=''>all</option>{opts}</select>"
    return f"<label>{esc(label)} {select}</label>"


def browser_section(
    runs: list[RunData], limits: BrowserLimits, thumbs: Thumbnails
) -> tuple[str, int]:
    cards, notes = [], []
    diagnosed: set[str] = set()
    for run in runs:
        shown, note = browse_selection(run, limits)
        notes.append(f"<li>{esc(run.label)}: {esc(note)}</li>")
        for record in shown:
            diagnosed.update(outcome(record, run).stages)
            cards.append(card(record, run, thumbs))
    stage_values = [*stage_order(diagnosed - {"undiagnosed"}), "undiagnosed"]
    filters = (
        "<form id='filters' class='filters' autocomplete='off'>"
        + _options("run", "Run", [(str(r.index), r.label) for r in runs])
        + _options("result", "Outcome", [(v, v) for v in RESULTS])
        + _options("refusal", "Response", [(v, v) for v in REFUSALS])
        + _options("stage", "Diagnosed stage", [(v, v) for v in stage_values])
        + "<label>Text <input type='search' name='q' placeholder='query, response…'></label>"
        + "<span id='filter-count' class='count'></span></form>"
    )
    left_out = (
        f"<details class='leftout'><summary>Not every record is shown: the browser keeps up to "
        f"{limits.max_failures} failed, errored or unjudged records and {limits.max_successes} "
        f"random correct ones per run (seed {limits.seed}); records.jsonl in each run directory "
        f"has them all.</summary><ul>{''.join(notes)}</ul></details>"
    )
    body = filters + left_out + f"<div id='cards'>{''.join(cards)}</div>"
    return _section("samples", "Sample browser", body), len(cards)


# --------------------------------------------------------------------------- page


def _section(anchor: str, title: str, body: str) -> str:
    return f"<section id='{anchor}'><h2>{esc(title)}</h2>{body}</section>"


def render_page(runs: list[RunData], plots: list[Plot], ctx: PageContext) -> tuple[str, int]:
    """The whole page and how many records its browser shows."""
    thumbs = Thumbnails()
    browser, shown = browser_section(runs, ctx.limits, thumbs)
    stage_extra = aggregates(runs)
    sections = [
        runs_section(runs),
        tradeoff_section(runs, plots),
        plots_section("mssbench", "Situational safety (MSSBench)", plots, mssbench_table(runs)),
        plots_section("bars", "By stimulus type and category", plots),
        plots_section("stages", "Where failures arise", plots, stage_extra),
        browser,
    ]
    nav_titles = {
        "runs": "Runs",
        "tradeoff": "Trade-off",
        "mssbench": "MSSBench",
        "bars": "Breakdown",
        "stages": "Stages",
        "samples": "Samples",
    }
    present = [k for k in nav_titles if f"<section id='{k}'>" in "".join(sections)]
    nav = "".join(f"<a href='#{k}'>{nav_titles[k]}</a>" for k in present)
    judge = f"judge {esc(ctx.judge)}" if ctx.judge else "each run's own first judge"
    warnings = "".join(f"<li>{esc(w)}</li>" for w in ctx.warnings)
    notes = f"<section id='notes'><h2>Notes</h2><ul>{warnings}</ul></section>" if warnings else ""
    header = (
        f"<header><h1>{esc(ctx.title)}</h1><p class='sub'>{len(runs)} runs · "
        f"{sum(len(r.records) for r in runs)} records · scored with {judge} · generated "
        f"{esc(ctx.generated)}</p><p class='sub inputs'>Inputs: {esc(', '.join(ctx.inputs))}</p>"
        f"<nav>{nav}</nav></header>"
    )
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        # No network: a policy that forbids every fetch except the page's own inline parts.
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>{esc(ctx.title)}</title><style>{CSS}\n{thumbs.css()}</style></head>"
        f"<body>{header}<main>{''.join(sections)}{notes}</main>"
        f"<footer>Poise report. Published MOSSBench rates: Li et al. 2024 (arXiv 2406.17806); "
        f"published MSSBench results: Zhou et al. 2024 (arXiv 2410.06172).</footer>"
        f"<script>{JS}</script></body></html>\n"
    )
    return page, shown


CSS = """
:root{--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--bg:#f6f8fa;--ok:#1a7f37;--bad:#cf222e;
--warn:#9a6700;--accent:#0969da}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:var(--fg);background:#fff}
header{padding:18px 28px 8px;border-bottom:1px solid var(--line);background:var(--bg)}
h1{font-size:20px;margin:0 0 2px}h2{font-size:17px;margin:28px 0 10px;padding-bottom:4px;
border-bottom:1px solid var(--line)}h3{font-size:14px;margin:18px 0 6px}
.sub{color:var(--muted);margin:0;font-size:12.5px}.inputs{word-break:break-all}
nav{margin-top:8px}nav a{margin-right:14px;color:var(--accent);text-decoration:none;font-weight:600}
main{padding:0 28px 28px;max-width:1500px}
footer{color:var(--muted);font-size:12px;padding:12px 28px;border-top:1px solid var(--line)}
.hint,.empty{color:var(--muted);font-size:12.5px}
table.data{border-collapse:collapse;font-size:12.5px;margin:6px 0 12px;width:auto}
table.data th,table.data td{border:1px solid var(--line);padding:3px 8px;text-align:left;
vertical-align:top}
table.data th{background:var(--bg);font-weight:600}
table.data tbody tr:nth-child(even){background:#fbfcfd}
td.num{text-align:right;font-variant-numeric:tabular-nums}
figure.plot{margin:10px 0 20px}.row{display:flex;flex-wrap:wrap;gap:0 32px}
.row figure.plot{flex:1 1 460px;min-width:0}
figure.plot img{max-width:100%;height:auto;display:block}
figcaption{font-size:12.5px;color:var(--muted);margin-bottom:6px;max-width:1100px}
figcaption b{color:var(--fg)}
details{margin:4px 0}summary{cursor:pointer;color:var(--muted)}
.filters{display:flex;flex-wrap:wrap;gap:10px 16px;align-items:center;padding:8px 10px;
background:var(--bg);border:1px solid var(--line);border-radius:6px;position:sticky;top:0;
z-index:1}
.filters label{font-size:12.5px;color:var(--muted)}
.filters select,.filters input{font:inherit;font-size:12.5px;padding:2px 4px;max-width:320px}
.count{margin-left:auto;font-weight:600;font-size:12.5px}
#cards{display:grid;grid-template-columns:1fr;gap:10px;margin-top:10px}
.card{display:flex;gap:12px;border:1px solid var(--line);border-radius:6px;padding:10px;
background:#fff}
.card[hidden]{display:none}
.thumb{flex:0 0 140px;height:140px;background:#eee center/contain no-repeat;border-radius:4px}
.thumb.none{display:flex;align-items:center;justify-content:center;color:var(--muted);
font-size:12px}
.body{flex:1;min-width:0}
.head{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin-bottom:4px}
.meta{color:var(--muted);font-size:12px}
.pill{font-size:11px;font-weight:600;padding:1px 7px;border-radius:10px;background:#eaeef2}
.r-correct{background:#dafbe1;color:var(--ok)}.r-failed{background:#ffebe9;color:var(--bad)}
.r-error{background:#fff8c5;color:var(--warn)}
.s-perception{background:#dbe7f3}.s-intent{background:#fde5cc}.s-decision{background:#f9d7d8}
.s-response{background:#eddcf0}
.k{display:block;font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);
font-weight:600}
.field p{margin:0 0 4px}
pre.resp{white-space:pre-wrap;word-break:break-word;margin:0 0 4px;font:12.5px/1.4 ui-monospace,
SFMono-Regular,Menlo,Consolas,monospace;background:var(--bg);padding:6px 8px;border-radius:4px;
max-height:260px;overflow:auto}
pre.err{color:var(--bad)}
.stage{margin:4px 0 6px 10px}
dl.kv{margin:0;display:grid;grid-template-columns:max-content 1fr;gap:1px 10px;font-size:12.5px}
dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;word-break:break-word}
ul.verdicts,.diag ul{margin:2px 0;padding-left:18px;font-size:12.5px}
.leftout{font-size:12.5px}
section pre{font-size:12px}
"""

JS = """
(function () {
  "use strict";
  var form = document.getElementById("filters");
  var cards = Array.prototype.slice.call(document.querySelectorAll("#cards .card"));
  var count = document.getElementById("filter-count");
  var keys = ["run", "result", "refusal", "stage"];
  function val(name) { var el = form.elements[name]; return el ? el.value : ""; }
  function apply() {
    var want = {}, text = val("q").trim().toLowerCase(), shown = 0;
    keys.forEach(function (k) { want[k] = val(k); });
    cards.forEach(function (card) {
      var ok = keys.every(function (k) {
        if (!want[k]) { return true; }
        return (" " + (card.dataset[k] || "") + " ").indexOf(" " + want[k] + " ") !== -1;
      });
      if (ok && text) { ok = card.textContent.toLowerCase().indexOf(text) !== -1; }
      card.hidden = !ok;
      if (ok) { shown += 1; }
    });
    count.textContent = "showing " + shown + " of " + cards.length + " browsable records";
    document.body.dataset.visible = String(shown);
  }
  function fromHash() {
    var params = new URLSearchParams(window.location.hash.slice(1));
    params.forEach(function (value, key) {
      var el = form.elements[key];
      if (el) { el.value = value; }
    });
  }
  form.addEventListener("input", apply);
  form.addEventListener("change", apply);
  form.addEventListener("submit", function (e) { e.preventDefault(); });
  window.addEventListener("hashchange", function () { fromHash(); apply(); });
  window.addEventListener("load", function () {
    var plots = document.querySelectorAll("img.plot"), loaded = 0;
    plots.forEach(function (img) { if (img.complete && img.naturalWidth > 0) { loaded += 1; } });
    document.body.dataset.plots = loaded + "/" + plots.length;
  });
  fromHash();
  apply();
  document.body.dataset.ready = "1";
})();
"""
