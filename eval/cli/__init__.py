"""The ``poise`` command line.

Every user-fixable problem surfaces as one line on stderr and exit status 2 (see
:class:`poise.errors.PoiseError`); tracebacks are for bugs only.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from poise.errors import Interrupted, PoiseError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Poise: measure multimodal safety reasoning (oversensitivity and situational safety).",
    pretty_exceptions_enable=False,
)
# Wide enough for the result tables when the output is a pipe or a CI log.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


# Options shared by every command that calls models or writes run directories.
TimeoutOption = Annotated[
    float | None,
    typer.Option(
        help="seconds one attempt of a model call may take before it is cut off (default 60)"
    ),
]
MaxRetriesOption = Annotated[
    int | None,
    typer.Option(help="retries of a failed model call (429, 5xx, timeout); default 3"),
]
WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait", help="if another poise process is writing the run directory, wait for it"
    ),
]


def _at_least(value: int | float | None, minimum: int, option: str, meaning: str) -> None:
    """Refuse a number below ``minimum`` with one line (typer would print a box)."""
    if value is not None and value < minimum:
        raise PoiseError(f"{option} {value} is not allowed: {meaning}")


def _limits(timeout: float | None, max_retries: int | None) -> None:
    """Check and apply --timeout / --max-retries for every model call of this process."""
    from poise.agents.retry import configure_calls

    if timeout is not None and not timeout > 0:
        raise PoiseError(f"--timeout {timeout} is not allowed: give seconds > 0, e.g. --timeout 60")
    _at_least(max_retries, 0, "--max-retries", "give 0 (no retries) or more")
    configure_calls(timeout_s=timeout, max_retries=max_retries)


def _check_selection(
    limit: int | None, sample: int | None, concurrency: int, what: str = "samples"
) -> None:
    _at_least(limit, 1, "--limit", "give the number of samples to run, 1 or more")
    _at_least(sample, 1, "--sample", "give the size of the random subset, 1 or more")
    _at_least(concurrency, 1, "--concurrency", f"give the number of {what} in flight, 1 or more")


def _interrupted(detail: str) -> Interrupted:
    return Interrupted(
        f"interrupted: {detail}; what finished is recorded and summarised; "
        "rerun the same command to resume"
    )


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    out = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key.strip() or not val.strip():
            raise PoiseError(f"{option} takes STAGE=PROVIDER/MODEL, got {value!r}")
        out[key.strip()] = val.strip()
    return out


def _offline_models(benchmarks: list[str], option: str = "--models") -> list[str]:
    """The models whose answers ship with the benchmarks (the no-key default)."""
    from poise.benchmarks.registry import benchmark_spec

    models = [m for b in benchmarks for m in benchmark_spec(b).offline_models]
    if not models:
        raise PoiseError(f"{option} is required for this benchmark, e.g. {option} openai/gpt-4o")
    return list(dict.fromkeys(models))


def _run_directories(path: Path) -> list[Path]:
    """The run directories at or under ``path``, each with a readable run.json.

    A directory being written by another process is fine to read (rewrites are atomic);
    a corrupt run.json is a one-line error naming the file.
    """
    from poise.eval.judges.rejudge import run_directories
    from poise.eval.run.runner import read_run_spec

    if not path.exists():
        raise PoiseError(
            f"{path} does not exist; pass run or sweep directories written by poise run"
        )
    directories = run_directories(path) if path.is_dir() else run_directories(path.parent)
    for directory in directories:
        read_run_spec(directory)
    return directories


@app.command()
def run(
    benchmark: Annotated[
        str, typer.Option(help="mossbench, mossbench-contrast, mssbench-chat, mssbench-embodied")
    ] = "mossbench",
    model: Annotated[
        list[str] | None,
        typer.Option(
            help="PROVIDER/MODEL (repeat or comma-separate for several). Default: the four packaged replay/ models"
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(help="data directory or hub id (default: packaged questions, or the hub)"),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(help="server for openai-compatible/ models, e.g. http://localhost:8000/v1"),
    ] = None,
    pipeline: Annotated[
        str, typer.Option(help="pipeline name (poise list pipelines)")
    ] = "baseline",
    system_prompt: Annotated[
        str | None, typer.Option(help="system prompt name (poise list prompts) or file path")
    ] = None,
    prompt_stages: Annotated[
        str | None, typer.Option(help="comma-separated stages the system prompt applies to")
    ] = None,
    prompt_dir: Annotated[
        list[Path] | None, typer.Option(help="extra directory of system prompt files")
    ] = None,
    stage_model: Annotated[
        list[str] | None, typer.Option(help="STAGE=PROVIDER/MODEL, per-stage model")
    ] = None,
    oracle: Annotated[
        list[str] | None, typer.Option(help="replace a stage with ground truth: perception, intent")
    ] = None,
    judge: Annotated[
        list[str] | None, typer.Option(help="judge name(s) (poise list judges)")
    ] = None,
    judge_model: Annotated[str | None, typer.Option(help="PROVIDER/MODEL for LLM judges")] = None,
    setting: Annotated[
        str | None, typer.Option(help="MSSBench setting: if, qc, ic, ic-cap")
    ] = None,
    out: Annotated[Path, typer.Option(help="directory that holds run directories")] = Path("runs"),
    limit: Annotated[int | None, typer.Option(help="first N samples (after filters)")] = None,
    sample: Annotated[int | None, typer.Option(help="a seeded random subset of N samples")] = None,
    seed: Annotated[int, typer.Option(help="seed for --sample")] = 0,
    types: Annotated[
        str | None, typer.Option(help="MOSSBench stimulus types: 1,2,3 or ER,NH,CI")
    ] = None,
    ids: Annotated[str | None, typer.Option(help="comma-separated sample ids")] = None,
    exclude: Annotated[
        str | None, typer.Option(help="comma-separated sample ids to leave out")
    ] = None,
    categories: Annotated[str | None, typer.Option(help="comma-separated categories")] = None,
    concurrency: Annotated[int, typer.Option(help="samples in flight at once")] = 8,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    timeout: TimeoutOption = None,
    max_retries: MaxRetriesOption = None,
    wait: WaitOption = False,
) -> None:
    """Run MODEL(s) through a PIPELINE on a BENCHMARK, judge, record and summarise.

    With no options: re-judge the published MOSSBench responses of four models offline and
    print the measured refusal rates next to the paper's.
    """
    from poise.benchmarks.filters import parse_stimulus_types
    from poise.eval.report.tables import print_run_tables
    from poise.eval.run.runner import Runner, RunSpec, Selection

    _check_selection(limit, sample, concurrency)
    _limits(timeout, max_retries)
    models = _split(model) or _offline_models([benchmark], "--model")
    selection = Selection(
        stimulus_types=sorted(parse_stimulus_types([types])) if types else [],
        ids=_split([ids]) if ids else [],
        exclude=_split([exclude]) if exclude else [],
        categories=_split([categories]) if categories else [],
        sample=sample,
        seed=seed,
        limit=limit,
    )
    results = []
    announced: list[str] = []

    def announce(loaded) -> None:
        """Say once, before the first run starts, what was loaded and what is missing."""
        if not announced:
            announced.append(loaded.summary_line())
            err_console.print(announced[0], highlight=False)

    for name in models:
        spec = RunSpec(
            benchmark=benchmark,
            data=data,
            model=name,
            base_url=base_url,
            pipeline=pipeline,
            system_prompt=system_prompt,
            prompt_stages=_split([prompt_stages]) if prompt_stages is not None else None,
            stage_models=_pairs(stage_model, "--stage-model"),
            oracle=sorted(set(_split(oracle))),
            judges=_split(judge),
            judge_model=judge_model,
            setting=setting,
            selection=selection,
        )
        runner = Runner(
            spec,
            out,
            concurrency=concurrency,
            progress=progress,
            prompt_dirs=tuple(prompt_dir or ()),
            loaded_callback=announce,
            wait=wait,
        )
        try:
            result = asyncio.run(runner.run())
        except KeyboardInterrupt:
            raise _interrupted(runner.interrupted or f"{runner.directory}") from None
        if result.nothing_to_do:
            err_console.print(
                f"{result.directory.name}: all {result.selected} selected samples were already "
                "recorded; nothing new was run (raise --limit, or use another --out for a fresh run)",
                highlight=False,
            )
        results.append(result)
    print_run_tables(console, [r.summary for r in results])


@app.command()
def sweep(
    benchmarks: Annotated[str, typer.Option(help="comma-separated benchmarks")] = "mossbench",
    models: Annotated[
        str | None,
        typer.Option(
            help="comma-separated PROVIDER/MODEL names "
            "[default: the models whose answers ship with the benchmarks]"
        ),
    ] = None,
    pipelines: Annotated[str, typer.Option(help="comma-separated pipelines")] = "baseline",
    system_prompts: Annotated[
        str, typer.Option(help="comma-separated prompt names or paths; vanilla = none")
    ] = "vanilla",
    out: Annotated[Path, typer.Option(help="sweep directory (one run directory per cell)")] = Path(
        "runs/sweep"
    ),
    data: Annotated[
        list[str] | None, typer.Option(help="BENCHMARK=DIR (or a bare DIR for every benchmark)")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="server for openai-compatible/ models")
    ] = None,
    prompt_dir: Annotated[
        list[Path] | None, typer.Option(help="extra directory of system prompt files")
    ] = None,
    prompt_stages: Annotated[
        str | None, typer.Option(help="comma-separated stages the system prompt applies to")
    ] = None,
    judge: Annotated[list[str] | None, typer.Option(help="judge name(s)")] = None,
    judge_model: Annotated[str | None, typer.Option(help="PROVIDER/MODEL for LLM judges")] = None,
    setting: Annotated[
        str | None, typer.Option(help="MSSBench setting: if, qc, ic, ic-cap")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="first N samples of each benchmark")] = None,
    sample: Annotated[int | None, typer.Option(help="a seeded random subset of N samples")] = None,
    seed: Annotated[int, typer.Option(help="seed for --sample")] = 0,
    types: Annotated[str | None, typer.Option(help="MOSSBench stimulus types")] = None,
    concurrency: Annotated[int, typer.Option(help="requests in flight across the whole grid")] = 8,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    timeout: TimeoutOption = None,
    max_retries: MaxRetriesOption = None,
    wait: WaitOption = False,
) -> None:
    """Run a grid of benchmarks x models x pipelines x system prompts, reusing shared stages."""
    from poise.benchmarks.filters import parse_stimulus_types
    from poise.eval.report.tables import print_run_tables
    from poise.eval.run.runner import RunSpec, Selection
    from poise.eval.run.sweep import plan, run_sweep

    _check_selection(limit, sample, concurrency, "requests")
    _limits(timeout, max_retries)
    data_by_benchmark: dict[str, str] = {}
    for value in data or []:
        key, sep, path = value.partition("=")
        if sep:
            data_by_benchmark[key] = path
        else:
            data_by_benchmark["*"] = value
    base = RunSpec(
        model="placeholder/x",
        base_url=base_url,
        prompt_stages=_split([prompt_stages]) if prompt_stages is not None else None,
        judges=_split(judge),
        judge_model=judge_model,
        setting=setting,
        selection=Selection(
            stimulus_types=sorted(parse_stimulus_types([types])) if types else [],
            sample=sample,
            seed=seed,
            limit=limit,
        ),
    )
    prompts = [None if p == "vanilla" else p for p in _split([system_prompts])]
    chosen = _split([benchmarks])
    model_names = _split([models]) if models else _offline_models(chosen)
    specs = plan(
        benchmarks=chosen,
        models=model_names,
        pipelines=_split([pipelines]),
        system_prompts=prompts,
        base=base,
    )
    for spec in specs:
        spec.data = data_by_benchmark.get(spec.benchmark, data_by_benchmark.get("*"))
    try:
        result = asyncio.run(
            run_sweep(
                specs,
                out,
                concurrency=concurrency,
                progress=progress,
                prompt_dirs=tuple(prompt_dir or ()),
                wait=wait,
            )
        )
    except KeyboardInterrupt:
        raise _interrupted(f"sweep {out}") from None
    print_run_tables(console, result.summaries)
    console.print(
        f"sweep: {len(specs)} cells in {result.wall_time_s:.1f}s; model calls made {result.calls_made}, "
        f"saved by reusing shared stages {result.calls_saved}; {out}/sweep.json",
        highlight=False,
    )


@app.command("list")
def list_(
    what: Annotated[str, typer.Argument(help="benchmarks, models, pipelines, prompts or judges")],
    prompt_dir: Annotated[
        list[Path] | None, typer.Option(help="extra directory of system prompt files")
    ] = None,
) -> None:
    """List what Poise knows by name."""
    from rich.table import Table

    table = Table(show_header=True, header_style="bold")
    if what == "benchmarks":
        from poise.benchmarks.registry import benchmark_names

        rows = benchmark_names().items()
    elif what == "models":
        from poise.agents.models.registry import providers

        table.add_column("provider")
        table.add_column("example")
        table.add_column("description")
        for p in providers().values():
            table.add_row(p.name, p.example, p.description)
        console.print(table)
        return
    elif what == "pipelines":
        from poise.graphs.registry import pipeline_names

        rows = pipeline_names().items()
    elif what == "prompts":
        from poise.agents.prompts import list_prompts

        rows = [
            (p.name, p.description)
            for p in list_prompts("system", tuple(prompt_dir or ())).values()
        ]
    elif what == "judges":
        from poise.eval.judges.base import judge_names

        rows = judge_names().items()
    else:
        raise PoiseError(
            f"unknown list {what!r}; choose benchmarks, models, pipelines, prompts or judges"
        )
    table.add_column("name")
    table.add_column("description")
    for name, description in rows:
        table.add_row(name, description)
    console.print(table)


@app.command()
def judge(
    run_dir: Annotated[Path, typer.Argument(help="a run directory, or a sweep directory of runs")],
    judge: Annotated[str, typer.Option(help="judge name (poise list judges)")] = "offline",
    judge_model: Annotated[str | None, typer.Option(help="PROVIDER/MODEL for LLM judges")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="server for an openai-compatible/ judge")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="judge calls in flight at once")] = 8,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    timeout: TimeoutOption = None,
    max_retries: MaxRetriesOption = None,
    wait: WaitOption = False,
) -> None:
    """Add a judge's verdicts to past runs (other judges' verdicts are kept) and re-summarise."""
    from poise.eval.judges.base import get_judge
    from poise.eval.judges.rejudge import rejudge
    from poise.eval.report.tables import print_run_tables
    from poise.eval.run.lock import RunLock
    from poise.eval.run.progress import Progress
    from poise.eval.run.records import RECORDS_FILE, read_records
    from poise.eval.run.runner import read_run_spec, summarize

    _check_selection(None, None, concurrency, "judge calls")
    _limits(timeout, max_retries)
    directories = _run_directories(run_dir)
    options = {"model": judge_model, "base_url": base_url} if judge_model else {}
    the_judge = get_judge(judge, **options)
    summaries = []
    current: list[Path] = []

    async def judge_all() -> None:
        # One event loop for every directory: the judge's HTTP client belongs to it.
        for directory in directories:
            lock = RunLock(directory)
            await lock.acquire_async(wait=wait)  # poise run must not append meanwhile
            current[:] = [directory]
            try:
                read_run_spec(directory)
                total = sum(
                    1 for r in read_records(directory / RECORDS_FILE) if judge not in r.verdicts
                )
                with Progress(f"{judge}: {directory.name}", total=total, enabled=progress) as bar:
                    added = await rejudge(
                        directory, the_judge, concurrency=concurrency, progress=bar.advance
                    )
                err_console.print(f"{directory.name}: {added} new {judge} verdicts")
                summaries.append(summarize(directory))
            finally:
                lock.release()

    try:
        asyncio.run(judge_all())
    except KeyboardInterrupt:
        raise _interrupted(f"judging {current[0] if current else run_dir}") from None
    print_run_tables(console, summaries)


@app.command()
def agree(
    run_dir: Annotated[Path, typer.Argument(help="a run directory, or a sweep directory of runs")],
    judges: Annotated[str, typer.Option(help="two judge names, comma-separated: A,B")],
    out: Annotated[
        Path | None, typer.Option(help="CSV of disagreements (default: in RUN_DIR)")
    ] = None,
) -> None:
    """Compare two judges' verdicts: confusion matrix, agreement, Cohen's kappa, disagreements."""
    from rich.table import Table

    from poise.eval.judges.rejudge import agree as compare
    from poise.eval.judges.rejudge import write_disagreements

    names = _split([judges])
    if len(names) != 2:
        raise PoiseError(f"--judges takes two names, A,B; got {judges!r}")
    result = compare(_run_directories(run_dir), names[0], names[1])
    labels = sorted(set(result.confusion) | {k for row in result.confusion.values() for k in row})
    table = Table(title=f"{names[0]} (rows) vs {names[1]} (columns), by {result.basis}")
    table.add_column("")
    for label in labels:
        table.add_column(label, justify="right")
    for label in labels:
        row = result.confusion.get(label, {})
        table.add_row(label, *(str(row.get(other, 0)) for other in labels))
    console.print(table)
    console.print(
        f"n={result.n}  agreement={100 * result.agreement:.1f}%  Cohen's kappa={result.kappa:.3f}  "
        f"disagreements={len(result.disagreements)}"
    )
    preview = Table(title="disagreements (first 10)")
    for col in ("sample_id", "model", names[0], names[1], "response_excerpt"):
        preview.add_column(col, overflow="fold")
    for row in result.disagreements[:10]:
        preview.add_row(
            row["sample_id"],
            row["model"],
            row[names[0]],
            row[names[1]],
            row["response_excerpt"][:100],
        )
    console.print(preview)
    target = out or (run_dir / f"disagreements_{names[0]}_vs_{names[1]}.csv")
    write_disagreements(result, target)  # neutralises formula-like cells itself
    console.print(f"CSV: {target}")


@app.command()
def diagnose(
    run_dir: Annotated[Path, typer.Argument(help="a run directory, or a sweep directory of runs")],
    judge: Annotated[
        str | None,
        typer.Option(help="judge whose verdicts define failure (default: the run's first)"),
    ] = None,
    method: Annotated[
        str, typer.Option(help="pipeline, counterfactual, or both comma-separated")
    ] = "pipeline,counterfactual",
    concurrency: Annotated[
        int, typer.Option(help="samples in flight for counterfactual reruns")
    ] = 8,
    judge_model: Annotated[
        str | None,
        typer.Option(
            help="PROVIDER/MODEL comparing perceptions with the ground truth (default: offline)"
        ),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="server for openai-compatible/ models")
    ] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    timeout: TimeoutOption = None,
    max_retries: MaxRetriesOption = None,
    wait: WaitOption = False,
) -> None:
    """Name the stage (perception, intent, decision) where each failed sample went wrong."""
    from rich.table import Table

    from poise.eval.analysis.diagnosis import diagnose as run_diagnosis
    from poise.eval.run.lock import RunLock

    _check_selection(None, None, concurrency)
    _limits(timeout, max_retries)

    methods = tuple(_split([method]))
    unknown = set(methods) - {"pipeline", "counterfactual"}
    if unknown:
        raise PoiseError(
            f"unknown --method {', '.join(sorted(unknown))}; use pipeline and/or counterfactual"
        )
    for directory in _run_directories(run_dir):
        lock = RunLock(directory)
        lock.acquire(wait=wait)
        try:
            result = run_diagnosis(
                directory,
                judge=judge,
                methods=methods,
                concurrency=concurrency,
                progress=progress,
                judge_model=judge_model,
                base_url=base_url,
            )
        except KeyboardInterrupt:
            raise _interrupted(f"diagnosing {directory}") from None
        finally:
            lock.release()
        if not result["failures"]:
            console.print(f"{directory.name}: no failures ({result['judge']})", highlight=False)
            continue
        table = Table(
            title=f"{directory.name}: {result['failures']} failures of {result['samples_judged']} ({result['judge']})"
        )
        for col in ("method", "group", "n", "perception", "intent", "decision", "response"):
            table.add_column(col)
        for name, groups in result["aggregate"].items():
            for group, shares in groups.items():
                table.add_row(
                    name,
                    group,
                    str(shares["n"]),
                    *(
                        f"{100 * shares.get(stage, 0):.0f}%"
                        for stage in ("perception", "intent", "decision", "response")
                    ),
                )
        console.print(table)
        agreement = result["agreement"]
        if agreement["n"]:
            console.print(f"methods agree on {agreement['agree']}/{agreement['n']} samples")
        for note in result["notes"]:
            console.print(f"note: {note}")
        console.print(f"{directory}/diagnosis.json, diagnosis.csv", highlight=False)


@app.command()
def report(
    inputs: Annotated[list[Path], typer.Argument(help="run or sweep directories")],
    out: Annotated[
        Path, typer.Option(help="HTML file to write; the Markdown summary goes beside it (.md)")
    ] = Path("report.html"),
    judge: Annotated[str | None, typer.Option(help="score every run with this judge")] = None,
    title: Annotated[str | None, typer.Option(help="page title")] = None,
    max_failures: Annotated[
        int, typer.Option(help="sample browser: failed records shown per run")
    ] = 60,
    max_successes: Annotated[
        int, typer.Option(help="sample browser: correct records shown per run (seeded sample)")
    ] = 15,
) -> None:
    """Write the trade-off report: one self-contained HTML page and a Markdown summary."""
    from poise.eval.report.build import BrowserLimits, build_report

    for path in inputs:
        if not path.exists():
            raise PoiseError(
                f"{path} does not exist; pass run or sweep directories written by poise run"
            )
        _run_directories(path)  # a corrupt run.json is one line here, not a "?" in the page
    limits = BrowserLimits(max_failures=max_failures, max_successes=max_successes)
    result = build_report(list(inputs), out, judge=judge, title=title, limits=limits)
    console.print(f"report: {result.html}   summary: {result.markdown}", highlight=False)


@app.command()
def bench(
    what: Annotated[str, typer.Argument(help="pipeline or judge")],
    samples: Annotated[int, typer.Option(help="pipeline: samples in the concurrent run")] = 300,
    concurrency: Annotated[int, typer.Option(help="pipeline: samples in flight")] = 16,
    latency: Annotated[
        float, typer.Option(help="pipeline: server latency per request, seconds")
    ] = 0.2,
    pipeline: Annotated[str, typer.Option(help="pipeline: which pipeline")] = "poise",
    sequential_samples: Annotated[
        int, typer.Option(help="pipeline: samples in the sequential run")
    ] = 20,
    benchmark: Annotated[
        str,
        typer.Option(help="judge: whose offline judge, mossbench (refusal) or mssbench (4-class)"),
    ] = "mossbench",
) -> None:
    """Measure speed: a pipeline against a local server with fixed latency, or the offline judges
    against their labelled sets."""
    import json

    from poise.eval import bench as benchmarks

    if what == "pipeline":
        result = benchmarks.bench_pipeline(
            samples=samples,
            concurrency=concurrency,
            latency=latency,
            pipeline=pipeline,
            sequential_samples=sequential_samples,
        )
        c = result["concurrent"]
        console.print(
            f"{pipeline}: {c['samples']} samples, {c['calls']} calls, latency {latency}s, concurrency {concurrency}\n"
            f"  measured {c['wall_s']:.2f}s   ideal (calls x latency / concurrency) {result['ideal_wall_s']:.2f}s"
            f"   ratio {result['ratio_to_ideal']:.2f}x\n"
            f"  sequential {result['sequential_wall_s_for_all_samples']:.1f}s ({result['note']})"
            f"   speedup {result['speedup_vs_sequential']:.1f}x\n"
            f"  CPU {c['cpu_ms_per_sample']:.1f} ms per sample (image encoding, graph, client), errors {c['errors']}",
            highlight=False,
        )
    elif what == "judge":
        from poise.eval.judges.quality_report import judge_report

        result = judge_report(console, benchmark)
    else:
        raise PoiseError(f"unknown bench {what!r}; choose pipeline or judge")
    console.print_json(json.dumps(result, default=str))


def main() -> None:
    """Entry point: PoiseError -> one line on stderr, exit 2."""
    try:
        app()
    except PoiseError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except Interrupted as exc:
        err_console.print(str(exc), highlight=False, soft_wrap=True)
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print(
            "interrupted: what finished is recorded; rerun the same command to resume"
        )
        sys.exit(130)
    except OSError as exc:  # the environment (disk full, permissions), not a Poise bug
        where = f": {exc.filename}" if exc.filename else ""
        err_console.print(
            f"[bold red]error:[/] {exc.strerror or exc}{where}; check the path and its permissions",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
