"""System-prompt (and model, pipeline, benchmark) sweeps: a grid of ordinary runs.

Each cell is a normal run in its own directory, so everything that works on a run (resume,
``poise judge``, ``poise report``) works on a cell. The cells run concurrently within one
concurrency budget (one shared semaphore), behind one progress display, and share one
:class:`~poise.graphs.cache.StageCache`: a stage whose inputs two cells share (same sample,
model, stage prompt and upstream outputs) runs once. A ``poise`` sweep over k system prompts
that touch only the decision and response stages so costs about N*(2+2k) calls, not 4*N*k.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poise.eval.run.cost import PriceTable, cost_total
from poise.eval.run.progress import Progress
from poise.eval.run.records import write_json
from poise.eval.run.runner import Runner, RunSpec, make_directory
from poise.graphs.cache import StageCache

SWEEP_FILE = "sweep.json"


def plan(
    *,
    benchmarks: list[str],
    models: list[str],
    pipelines: list[str],
    system_prompts: list[str | None],
    base: RunSpec,
) -> list[RunSpec]:
    """Every combination as a RunSpec that copies the rest of ``base``."""
    return [
        base.model_copy(
            update={"benchmark": b, "model": m, "pipeline": p, "system_prompt": s}, deep=True
        )
        for b, m, p, s in itertools.product(benchmarks, models, pipelines, system_prompts)
    ]


@dataclass
class SweepResult:
    directory: Path
    summaries: list[dict[str, Any]]
    calls_made: int
    calls_saved: int
    wall_time_s: float
    cost: dict[str, Any] = field(default_factory=dict)
    comparisons: dict[str, Any] = field(default_factory=dict)


async def run_sweep(
    specs: list[RunSpec],
    out: Path,
    *,
    concurrency: int = 8,
    progress: bool = True,
    prompt_dirs: tuple[Path, ...] = (),
    wait: bool = False,
    prices: PriceTable | None = None,
) -> SweepResult:
    """Run every cell concurrently; each cell holds its own run directory's lock.

    ``sweep.json`` adds the cells' total cost and the paired comparisons of cells that share
    samples (exact McNemar, Holm-corrected across the sweep).
    """
    make_directory(out)
    semaphore = asyncio.Semaphore(max(1, concurrency))
    cache = StageCache()
    started = time.perf_counter()
    with Progress(f"sweep: {len(specs)} cells", enabled=progress) as display:
        runners = [
            Runner(
                spec,
                out,
                concurrency=concurrency,
                progress=False,
                prompt_dirs=prompt_dirs,
                semaphore=semaphore,
                progress_callback=display.advance,
                plan_callback=display.grow,
                stage_cache=cache,
                wait=wait,
                prices=prices,
            )
            for spec in specs
        ]
        results = await asyncio.gather(*(r.run() for r in runners))
    summaries = [r.summary for r in results]
    made = sum(s["usage"]["calls"] for s in summaries)
    saved = sum(s["usage"]["reused_calls"] for s in summaries)
    wall = time.perf_counter() - started
    cost = cost_total(summaries)
    comparisons = _comparisons(summaries)
    write_json(
        out / SWEEP_FILE,
        {
            "cells": [
                {
                    "directory": s["directory"],
                    "benchmark": s["benchmark"],
                    "model": s["model"],
                    "pipeline": s["pipeline"],
                    "system_prompt": s["system_prompt"],
                }
                for s in summaries
            ],
            "calls_made": made,
            "calls_saved": saved,
            "wall_time_s": round(wall, 2),
            "cost": cost,
            "comparisons": comparisons,
        },
    )
    return SweepResult(out, summaries, made, saved, wall, cost, comparisons)


def _comparisons(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Paired tests between the cells of one benchmark that share samples (Holm across all)."""
    from poise.eval.analysis.compare import compare_cells
    from poise.eval.run.records import RECORDS_FILE, read_records

    cells = {
        Path(s["directory"]).name: read_records(Path(s["directory"]) / RECORDS_FILE)
        for s in summaries
    }
    if len(cells) < 2:
        return {}
    try:
        return compare_cells(cells, judge=None, pairs=None)
    except Exception as exc:  # a comparison is a summary extra: never lose the sweep over it
        return {"error": f"{exc.__class__.__name__}: {exc}"}
