"""The report's plots, drawn with matplotlib's object API and embedded as SVG data URIs.

Why ``Figure`` and not pyplot: no global backend state, so a report can be built in a test,
a server or a notebook without touching the user's matplotlib configuration (and never needs a
display). Why data URIs inside ``<img>``: the page stays one file, and an SVG loaded as an
image runs no script, so a model name in a label can never become markup.

Which plot a benchmark gets follows its spec: refusal benchmarks get refusal-rate bars and,
paired with their registered contrast set, the trade-off; situational ones get safe-vs-unsafe
accuracy; published points come from the spec's published table. No benchmark is named here.
"""

from __future__ import annotations

import base64
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from poise.benchmarks import published
from poise.eval.report.model import (
    TYPE_KEYS,
    ContrastSet,
    RunData,
    benchmark_title,
    benchmarks_of,
    by_type,
    contrast_sets,
    is_contrast,
    pair_runs,
    published_row,
    published_rows,
    published_source,
    scored,
    short_model,
    spec_of,
    stage_counts,
    stage_entries,
    stage_order,
)

TYPE_TITLES = {
    "1": "Exaggerated Risk (ER)",
    "2": "Negated Harm (NH)",
    "3": "Counterintuitive (CI)",
    "all": "Overall",
}
GROUP_LABELS = {"1": "ER", "2": "NH", "3": "CI", "all": "all"}
PALETTE = (
    "#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2",
    "#b279a2", "#eeca3b", "#9d755d", "#ff9da6", "#79706e",
)  # fmt: skip
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
PUBLISHED_MARKERS = ("x", "+", "1", "2", "3", "4")  # line markers: never a pipeline's
STAGE_COLORS = {
    "perception": "#4c78a8",
    "intent": "#f58518",
    "decision": "#e45756",
    "response": "#b279a2",
    "none": "#bab0ac",
}
RC = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e6e6e6",
    "grid.linewidth": 0.6,
    "legend.fontsize": 7.5,
    "svg.hashsalt": "poise-report",  # stable element ids: identical runs give identical pages
    "svg.fonttype": "path",  # text as paths: the page needs no font and renders the same anywhere
}


def published_accuracy(benchmark: str) -> tuple[str | None, dict[str, tuple[float, float]]]:
    """A situational benchmark's published (safe, unsafe) accuracy % per model, and its setting.

    Real (x, y) pairs, so they can sit in the safe-vs-unsafe plot as a reference. A published
    situational table keys them by setting (the spec's default, its first) and benchmark.
    """
    spec = spec_of(benchmark)
    if spec is None or spec.published is None or not spec.settings:
        return None, {}
    setting = spec.settings[0]
    out: dict[str, tuple[float, float]] = {}
    for row in published.published_table(spec.published)["models"]:
        cell = (row.get(setting) or {}).get(benchmark)
        if cell:
            out[row["model"]] = (cell["safe"], cell["unsafe"])
    return setting, out


@dataclass(frozen=True)
class Plot:
    """One embedded figure: which page section it belongs to, its caption, its data URI.

    ``subject`` names the benchmark a section's plot is about where the page pairs the plot
    with a table (a trade-off plot: its contrast set).
    """

    section: str  # tradeoff | situational | bars | stages
    title: str
    caption: str
    uri: str
    subject: str | None = None


class Style:
    """Colours by model and markers by pipeline, the same in every plot of a report."""

    def __init__(self, runs: list[RunData]) -> None:
        models = sorted({r.model for r in runs})
        pipelines = sorted({r.pipeline for r in runs})
        self.colors = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}
        self.markers = {p: MARKERS[i % len(MARKERS)] for i, p in enumerate(pipelines)}
        self.published_colors: dict[str, str] = {}
        for run in runs:
            row = published_row(run.benchmark, run.model)
            if row:
                self.published_colors.setdefault(row["model"], self.colors[run.model])

    def legend(self, runs: Iterable[RunData]) -> list[Any]:
        runs = list(runs)
        handles: list[Any] = [
            Line2D([], [], ls="", marker="o", color=self.colors[m], label=short_model(m))
            for m in sorted({r.model for r in runs})
        ]
        handles += [
            Line2D([], [], ls="", marker=self.markers[p], color="#555", mfc="none", label=p)
            for p in sorted({r.pipeline for r in runs})
        ]
        return handles


def mpl_text(text: str) -> str:
    """Free text for a matplotlib label: a '$' would start mathtext and can raise."""
    return str(text).replace("$", r"\$")


def encode(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _percent_axes(ax: Axes, *, xlabel: str, ylabel: str | None) -> None:
    ax.set_xlim(-3, 103)
    ax.set_ylim(-3, 103)
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.set_aspect("equal", adjustable="box")


def _scatter(ax: Axes, style: Style, run: RunData, x: float, y: float, note: str | None) -> None:
    ax.scatter(
        [x],
        [y],
        color=style.colors[run.model],
        marker=style.markers[run.pipeline],
        s=48,
        edgecolor="white",
        linewidth=0.7,
        zorder=3,
    )
    if note:
        ax.annotate(
            mpl_text(note),
            (x, y),
            xytext=(4, 3),
            textcoords="offset points",
            fontsize=6.5,
            color="#333",
        )


def _point_note(run: RunData, prompts_vary: bool, with_setting: bool = False) -> str | None:
    parts = []
    if prompts_vary:
        parts.append(run.prompt)
    if run.oracle:
        parts.append("oracle " + "+".join(run.oracle))
    if with_setting and run.setting:
        parts.append(run.setting)
    return ", ".join(parts) or None


def _published_rug(
    ax: Axes, rows: list[tuple[dict[str, Any], bool]], key: str, style: Style
) -> None:
    """Published refusal rates of the base set as ticks on the x axis (they have no y value)."""
    transform = ax.get_xaxis_transform()
    for row, matched in rows:
        x = (row.get("gpt_eval") or {}).get(key)
        if x is None:
            continue
        color = style.published_colors.get(row["model"], "#999") if matched else "#b5b5b5"
        ax.plot([x, x], [0, 0.05 if matched else 0.03], color=color, lw=1.4, transform=transform)
        if matched:
            ax.text(
                x,
                0.06,
                mpl_text(row["model"]),
                rotation=90,
                fontsize=6,
                color=color,
                ha="center",
                va="bottom",
                transform=transform,
            )


def _corner_hint(ax: Axes, text: str) -> None:
    """Which corner is better, above the panel where it cannot hide a point."""
    ax.text(1.0, 1.01, text, transform=ax.transAxes, fontsize=6.5, color="#888", ha="right",
            va="bottom")  # fmt: skip


def tradeoff_plot(contrast: ContrastSet, runs: list[RunData], style: Style) -> Plot | None:
    """MOSSBench Fig. 4 for any contrast set: base refusal (x) vs contrast refusal (y) by type."""
    pairs = contrast.pairs
    if not pairs:
        return None
    base, harmful = contrast.base, contrast.contrast
    prompts_vary = len({p.x_run.prompt for p in pairs}) > 1
    rows = published_rows(runs, base, [harmful])
    fig = Figure(figsize=(14, 4.2))
    axes = fig.subplots(1, 4, sharey=True)
    for ax, key in zip(axes, TYPE_KEYS, strict=True):
        _percent_axes(ax, xlabel=mpl_text(f"{base} refusal % (oversensitivity)"), ylabel=None)
        ax.set_title(TYPE_TITLES[key], loc="left")
        _published_rug(ax, rows, key, style)
        _corner_hint(ax, "better: top left")
        for p in pairs:
            x, y = by_type(p.x_run)[key], by_type(p.y_run)[key]
            if x is not None and y is not None:
                _scatter(ax, style, p.y_run, x, y, _point_note(p.y_run, prompts_vary))
    axes[0].set_ylabel(mpl_text(f"{harmful} refusal % (safety)"))
    handles = style.legend([p.x_run for p in pairs])
    if rows:
        handles.append(
            Line2D([], [], ls="", marker="|", ms=9, color="#999", label="published benign rate")
        )
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), frameon=False,
               bbox_to_anchor=(0.5, -0.03))  # fmt: skip
    caption = (
        f"{len(pairs)} configurations measured on both the benign set ({base}) and its harmful "
        f"contrast set ({harmful}), with the same model, pipeline and system prompt."
    )
    base_spec, harmful_spec = spec_of(base), spec_of(harmful)
    if rows and base_spec and base_spec.published:
        source = published_source(base_spec.published)
        caption += (
            f" Ticks on the x axis are the published benign refusal rates ({source.credit}), "
            "coloured and named for the models run here, grey for the rest"
        )
        no_y = harmful_spec is None or harmful_spec.published is None
        caption += (
            "; the contrast set has no published rates, so they have no y value." if no_y else "."
        )
    title = f"Oversensitivity vs safety ({benchmark_title(base)})"
    return Plot("tradeoff", title, caption, encode(fig), subject=harmful)


def situational_vs_benign_plot(runs: list[RunData], style: Style) -> Plot | None:
    """Benign refusal (x) against situational unsafe accuracy (y), where both were measured.

    Benign sets are the refusal benchmarks that are not a contrast set: refusing them is the
    oversensitivity that a situational benchmark's unsafe accuracy is traded against.
    """
    benign = [b for b in benchmarks_of(runs, "refusal") if not is_contrast(b)]
    situational = benchmarks_of(runs, "situational")
    panels = [(x, y, pair_runs(runs, x, y)) for x in benign for y in situational]
    panels = [(x, y, p) for x, y, p in panels if p]
    if not panels:
        return None
    fig = Figure(figsize=(3.8 * len(panels) + 0.6, 3.8))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    used: list[RunData] = []
    for ax, (x_bench, bench, pairs) in zip(axes, panels, strict=True):
        _percent_axes(
            ax,
            xlabel=mpl_text(f"{x_bench} benign refusal %"),
            ylabel=mpl_text(f"{bench} unsafe accuracy %"),
        )
        ax.set_title(mpl_text(bench if len(benign) == 1 else f"{bench} vs {x_bench}"), loc="left")
        _corner_hint(ax, "better: top left")
        prompts_vary = len({p.y_run.prompt for p in pairs}) > 1
        for p in pairs:
            x = (p.x_run.metrics or {}).get("refusal_rate")
            y = (p.y_run.metrics or {}).get("unsafe_accuracy")
            if x is not None and y is not None:
                _scatter(ax, style, p.y_run, x, y, _point_note(p.y_run, prompts_vary, True))
                used.append(p.y_run)
    fig.legend(handles=style.legend(used), loc="upper left", bbox_to_anchor=(0.98, 0.9),
               frameon=False)  # fmt: skip
    x_titles = " / ".join(dict.fromkeys(benchmark_title(x) for x, _, _ in panels))
    y_titles = " / ".join(dict.fromkeys(benchmark_title(y) for _, y, _ in panels))
    caption = (
        f"Over-refusal on benign {x_titles} items against recognising unsafe situations "
        f"({y_titles} unsafe accuracy) for configurations measured on both."
    )
    return Plot("situational", "Oversensitivity vs situational safety", caption, encode(fig))


def safe_unsafe_plot(runs: list[RunData], style: Style) -> Plot | None:
    """Situational safe accuracy (x) vs unsafe accuracy (y), with the published points."""
    benches = benchmarks_of(runs, "situational")
    if not benches:
        return None
    fig = Figure(figsize=(3.8 * len(benches) + 0.6, 3.8))
    axes = fig.subplots(1, len(benches), squeeze=False)[0]
    used: list[RunData] = []
    reference = {bench: published_accuracy(bench) for bench in benches}
    names = list(dict.fromkeys(n for b in benches for n in reference[b][1]))
    for ax, bench in zip(axes, benches, strict=True):
        _percent_axes(ax, xlabel="safe accuracy %", ylabel="unsafe accuracy %")
        ax.set_title(mpl_text(bench), loc="left")
        ax.plot([0, 100], [100, 0], ls="--", lw=0.8, color="#aaa")
        ax.text(52, 50, "average 50 (random)", fontsize=6.5, color="#999", rotation=-45)
        _corner_hint(ax, "better: top right")
        for name, (x, y) in reference[bench][1].items():
            marker = PUBLISHED_MARKERS[names.index(name) % len(PUBLISHED_MARKERS)]
            ax.scatter([x], [y], marker=marker, s=36, color="#777", linewidth=1.0, zorder=2)
        mine = scored(runs, bench)
        prompts_vary = len({r.prompt for r in mine}) > 1
        for run in mine:
            x, y = run.metrics.get("safe_accuracy"), run.metrics.get("unsafe_accuracy")
            if x is not None and y is not None:
                _scatter(ax, style, run, x, y, _point_note(run, prompts_vary, True))
                used.append(run)
    with_points = [b for b in benches if reference[b][1]]
    tables = dict.fromkeys(s.published for b in with_points if (s := spec_of(b)) and s.published)
    sources = [published_source(name) for name in tables if name]
    setting = "/".join(dict.fromkeys(str(reference[b][0]).upper() for b in with_points))
    judged = "; ".join(s.credit for s in sources)
    handles = style.legend(used)
    handles += [
        Line2D(
            [],
            [],
            ls="",
            marker=PUBLISHED_MARKERS[i % len(PUBLISHED_MARKERS)],
            color="#777",
            label=mpl_text(f"published {setting} ({judged}): {name}"),
        )  # fmt: skip
        for i, name in enumerate(names)
    ]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.98, 0.9), frameon=False)
    titles = " / ".join(dict.fromkeys(benchmark_title(b) for b in benches))
    caption = f"{titles}: answering in safe situations (x) against flagging unsafe ones (y)."
    if names:
        cited = "; ".join(s.authors for s in sources)
        caption += f" Grey line markers: published {setting}-setting results ({cited})."
    caption += " The dashed line is an average accuracy of 50, the random baseline."
    return Plot("situational", f"Situational safety ({titles})", caption, encode(fig))


def _grouped_bars(
    ax: Axes,
    groups: list[str],
    series: list[tuple[str, list[float | None], dict[str, Any]]],
) -> None:
    """Bars per group, one per series; a missing value is left as a gap, never as zero."""
    width = min(0.82 / max(1, len(series)), 0.3)  # one series must not be a wall
    for i, (label, values, kw) in enumerate(series):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        pts = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
        if pts:
            ax.bar([p[0] for p in pts], [p[1] for p in pts], width=width * 0.95,
                   label=mpl_text(label), **kw)  # fmt: skip
    ax.set_xticks(range(len(groups)), [mpl_text(g) for g in groups])
    ax.set_ylim(0, 100)
    ax.grid(axis="x", visible=False)


def _series_color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def refusal_bars(runs: list[RunData]) -> Plot | None:
    """Refusal rate per stimulus type, one panel per refusal benchmark, with published rows."""
    benches = benchmarks_of(runs, "refusal")
    if not benches:
        return None
    fig = Figure(figsize=(5.6 * len(benches), 3.4))
    axes = fig.subplots(1, len(benches), squeeze=False)[0]
    tables: dict[str, None] = {}
    for ax, bench in zip(axes, benches, strict=True):
        series: list[tuple[str, list[float | None], dict[str, Any]]] = []
        published_done: set[str] = set()
        spec = spec_of(bench)
        for i, run in enumerate(scored(runs, bench)):
            rates = by_type(run)
            color = _series_color(i)
            series.append((run.config_label, [rates[k] for k in TYPE_KEYS], {"color": color}))
            row = published_row(bench, run.model)
            if spec and spec.published and row and row["model"] not in published_done:
                # beside the model's first run, hatched in its colour: measured next to published
                published_done.add(row["model"])
                tables.setdefault(spec.published, None)
                kw = {"facecolor": "white", "edgecolor": color, "hatch": "////", "linewidth": 0.6}
                values = [row["gpt_eval"].get(k) for k in TYPE_KEYS]
                series.append((f"published: {row['model']} (GPT eval)", values, kw))
        _grouped_bars(ax, [GROUP_LABELS[k] for k in TYPE_KEYS], series)
        ax.set_title(mpl_text(f"{bench}: refusal % by stimulus type"))
        ax.set_ylabel("refusal %")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False,
                  fontsize=6.5)  # fmt: skip
    caption = (
        "Refusal rate per stimulus type. On a benign set lower is better (oversensitivity); "
        "on a contrast set higher is better."
    )
    if tables:
        judged = "; ".join(s.credit for s in map(published_source, tables))
        caption += (
            " Hatched bars, beside the first run of the same model and in its colour: the "
            f"paper's published rates ({judged})."
        )
    titles = " / ".join(dict.fromkeys(benchmark_title(b) for b in benches))
    return Plot("bars", f"{titles} refusal by stimulus type", caption, encode(fig))


def situational_bars(runs: list[RunData]) -> list[Plot]:
    """Safe and unsafe accuracy per category, one figure per situational benchmark."""
    plots = []
    for bench in benchmarks_of(runs, "situational"):
        mine = scored(runs, bench)
        categories = sorted({c for r in mine for c in (r.metrics.get("by_category") or {})})
        if not categories:
            continue
        fig = Figure(figsize=(max(6.0, 0.9 * len(categories) + 3), 4.6))
        axes = fig.subplots(2, 1, sharex=True)
        for ax, metric in zip(axes, ("safe_accuracy", "unsafe_accuracy"), strict=True):
            series = []
            for i, run in enumerate(mine):
                cats = run.metrics.get("by_category") or {}
                values = [(cats.get(c) or {}).get(metric) for c in categories]
                label = run.config_label + (f" [{run.setting}]" if run.setting else "")
                series.append((label, values, {"color": _series_color(i)}))
            _grouped_bars(ax, categories, series)
            ax.set_ylabel(metric.replace("_", " ") + " %")
        axes[0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=6.5)
        axes[1].tick_params(axis="x", labelrotation=25)
        for label in axes[1].get_xticklabels():
            label.set_horizontalalignment("right")
        axes[0].set_title(mpl_text(f"{bench}: accuracy by category"))
        caption = "Safe accuracy (answers in safe situations) and unsafe accuracy (flags or "
        caption += "declines in unsafe ones) per category; higher is better for both."
        plots.append(Plot("bars", f"{bench} by category", caption, encode(fig)))
    return plots


def _diagnosis_group(run: RunData, entry: dict[str, Any], by_id: dict[str, Any]) -> str:
    """The bar a diagnosed failure stacks into: its stimulus type, else its category.

    diagnosis.json rows carry both; older files carry only the sample id, so the record fills in.
    """
    record = by_id.get(entry["sample_id"])
    stype = entry.get("stimulus_type") or (record.stimulus_type if record else None)
    if run.kind == "refusal" and str(stype) in GROUP_LABELS:
        return GROUP_LABELS[str(stype)]
    category = entry.get("category") or (record.category if record else None)
    return str(category or "all")


def stage_plot(runs: list[RunData]) -> Plot | None:
    """Where failures arise (perception ... response), stacked per type or category."""
    panels = [(run, method) for run in runs for method in stage_counts(run)]
    if not panels:
        return None
    stages = stage_order(s for run, m in panels for s in stage_counts(run)[m])
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(4.6 * cols, 3.3 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (run, method) in zip(axes, panels, strict=False):
        by_id = {r.sample_id: r for r in run.records}
        counts: dict[str, Counter[str]] = {}
        for entry in stage_entries(run):
            if entry["method"] == method:
                group = _diagnosis_group(run, entry, by_id)
                counts.setdefault(group, Counter())[entry["stage"]] += 1
        groups = _group_order(counts, fixed=run.kind == "refusal")
        bottom = [0] * len(groups)
        for stage in stages:
            values = [counts[g].get(stage, 0) for g in groups]
            ax.bar(range(len(groups)), values, bottom=bottom, color=stage_color(stage),
                   width=0.5, label=stage)  # fmt: skip
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_xticks(range(len(groups)), [mpl_text(g) for g in groups])
        ax.set_xlim(-0.6, max(len(groups), 3) - 0.4)  # a lone group must not fill the panel
        ax.tick_params(axis="x", labelrotation=20 if len(groups) > 3 else 0)
        ax.set_title(mpl_text(f"{run.benchmark}: {run.config_label}\n({method})"), fontsize=7.5)
        ax.set_ylabel("diagnosed samples")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="x", visible=False)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    handles = [Patch(color=stage_color(s), label=mpl_text(s)) for s in stages]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False,
               bbox_to_anchor=(0.5, -0.06))  # fmt: skip
    fig.tight_layout()
    caption = (
        "The stage each diagnosed failure is attributed to, stacked per stimulus type or "
        "category, one panel per run and diagnosis method (pipeline: read from the recorded "
        "stage outputs; counterfactual: the first oracle that fixes it); from diagnosis.json."
    )
    return Plot("stages", "Stage-failure distribution", caption, encode(fig))


def stage_color(stage: str) -> str:
    return STAGE_COLORS.get(stage, "#79706e")


def _group_order(counts: dict[str, Counter[str]], *, fixed: bool) -> list[str]:
    """ER, NH, CI always for a refusal run (panels line up), then other groups alphabetically."""
    types = [g for g in ("ER", "NH", "CI") if fixed or g in counts]
    for group in types:
        counts.setdefault(group, Counter())
    return types + sorted(g for g in counts if g not in types)


def all_plots(runs: list[RunData]) -> list[Plot]:
    """Every plot the runs support, in page order; a plot without data is left out."""
    style = Style(runs)
    with rc_context(RC):
        candidates = [
            *(tradeoff_plot(c, runs, style) for c in contrast_sets(runs)),
            situational_vs_benign_plot(runs, style),
            safe_unsafe_plot(runs, style),
            refusal_bars(runs),
            *situational_bars(runs),
            stage_plot(runs),
        ]
    return [p for p in candidates if p is not None]
