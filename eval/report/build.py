"""The trade-off report: one self-contained HTML page and a Markdown summary over many runs.

``poise report`` is a thin wrapper around :func:`build_report`, so tests and notebooks get the
same page as the CLI. This module only orchestrates: :mod:`~poise.eval.report.model` loads and
scores the runs, :mod:`~poise.eval.report.plots` draws, :mod:`~poise.eval.report.html` and
:mod:`~poise.eval.report.markdown` render. The page needs no network: plots are embedded
images, the CSS and the few lines of JS are inline, and every string that came from a model
or a dataset is HTML-escaped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from poise.eval.report.html import PageContext, render_page
from poise.eval.report.markdown import render_markdown
from poise.eval.report.model import BrowserLimits, duplicate_warnings, load_runs
from poise.eval.report.plots import all_plots

__all__ = ["BrowserLimits", "ReportResult", "build_report"]


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


def build_report(
    inputs: list[Path],
    out_html: Path,
    *,
    judge: str | None = None,
    limits: BrowserLimits | None = None,
    title: str | None = None,
    generated: datetime | None = None,
) -> ReportResult:
    """Write ``out_html`` and the Markdown summary beside it (same name, ``.md``) for every run under ``inputs``.

    ``judge`` scores every run with that judge (runs without it are listed, unscored);
    by default each run uses its own first judge. ``limits`` caps the sample browser.
    ``generated`` is the time the page states (now by default); the page depends on nothing
    else outside the runs, so the same runs and time give the same bytes.
    """
    limits = limits or BrowserLimits()
    warnings: list[str] = []
    runs = load_runs([Path(p) for p in inputs], judge, warnings)
    warnings += duplicate_warnings(runs)
    plots = all_plots(runs)
    out_html = Path(out_html)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    page_title = title or "Poise trade-off report"
    context = PageContext(
        title=page_title,
        generated=(generated or datetime.now(UTC)).isoformat(timespec="seconds"),
        inputs=[str(p) for p in inputs],
        judge=judge,
        limits=limits,
        warnings=warnings,
    )
    html_text, shown = render_page(runs, plots, context)
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
