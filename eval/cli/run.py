"""``poise run`` and ``poise sweep``: run pipelines x models on benchmarks, judge, record."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from poise.errors import PoiseError
from poise.eval.cli.app import app, console, err_console
from poise.eval.cli.common import (
    DryRunOption,
    MaxRetriesOption,
    MaxRpmOption,
    MaxTpmOption,
    PricesOption,
    TimeoutOption,
    WaitOption,
    apply_call_limits,
    at_least,
    check_selection,
    interrupted,
    offline_models,
    parse_pairs,
    pending_samples,
    print_estimates,
    split_csv,
)

# Sampling parameters, shared by run and sweep (judge takes JudgeModelParamOption too).
ModelParamOption = Annotated[
    list[str] | None,
    typer.Option(
        help="KEY=VALUE for every model call (repeat): temperature, top_p, max_tokens, seed. "
        "Defaults: temperature 0, max_tokens 1024 (hf/: 512)"
    ),
]
StageModelParamOption = Annotated[
    list[str] | None,
    typer.Option(help="STAGE:KEY=VALUE for one stage's calls (repeat), over --model-param"),
]
JudgeModelParamOption = Annotated[
    list[str] | None,
    typer.Option(help="KEY=VALUE for an LLM judge's calls (repeat): temperature, top_p, ..."),
]
EpochsOption = Annotated[
    int,
    typer.Option(help="draws per sample; K > 1 needs a temperature (--model-param temperature=1)"),
]


def parse_stage_model_params(values: list[str] | None) -> dict[str, dict[str, float | int]]:
    """``["decision:temperature=1"]`` -> ``{"decision": {"temperature": 1.0}}``."""
    from poise.agents.models.registry import MODEL_PARAMS, parse_model_params

    out: dict[str, dict[str, float | int]] = {}
    for value in values or []:
        stage, sep, pair = value.partition(":")
        if not sep or not stage.strip() or "=" not in pair:
            raise PoiseError(
                f"--stage-model-param takes STAGE:KEY=VALUE (keys: {', '.join(MODEL_PARAMS)}), "
                f"got {value!r}"
            )
        out.setdefault(stage.strip(), {}).update(parse_model_params([pair], "--stage-model-param"))
    return out


def print_epoch_lines(summaries: list[dict]) -> None:
    """One line per run and judge drawn more than once: the rate over items, its interval."""
    for summary in summaries:
        epochs = summary.get("epochs")
        if not epochs:
            continue
        for judge, block in epochs.items():
            if not isinstance(block, dict) or block.get("rate") is None:
                continue
            low, high = block["ci95"] or (None, None)
            interval = f" [{low:g}, {high:g}]" if low is not None else ""
            console.print(
                f"{Path(summary['directory']).name}: {judge} {block['measure']} "
                f"{block['rate']:g}%{interval} over {block['items']} items x {epochs['k']} epochs "
                f"(mean per-item probability; {block['interval']}); "
                f"{block['flip_items']} items changed between draws",
                highlight=False,
                soft_wrap=True,
            )


def sampling_options(
    model_param: list[str] | None,
    stage_model_param: list[str] | None,
    judge_model_param: list[str] | None,
    epochs: int,
) -> dict[str, object]:
    """The RunSpec fields of the sampling options, checked (one line per problem)."""
    from poise.agents.models.registry import parse_model_params
    from poise.eval.run.runner import RunSpec, check_epochs

    at_least(epochs, 1, "--epochs", "give the number of draws per sample, 1 or more")
    fields: dict[str, object] = {
        "model_params": parse_model_params(model_param),
        "stage_model_params": parse_stage_model_params(stage_model_param),
        "judge_model_params": parse_model_params(judge_model_param, "--judge-model-param"),
        "epochs": epochs,
    }
    check_epochs(RunSpec(model="any/model", **fields))  # before any data is loaded
    return fields


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
    model_param: ModelParamOption = None,
    stage_model_param: StageModelParamOption = None,
    judge_model_param: JudgeModelParamOption = None,
    epochs: EpochsOption = 1,
    timeout: TimeoutOption = None,
    max_retries: MaxRetriesOption = None,
    max_rpm: MaxRpmOption = None,
    max_tpm: MaxTpmOption = None,
    wait: WaitOption = False,
    dry_run: DryRunOption = False,
    prices: PricesOption = None,
    batch: Annotated[
        bool,
        typer.Option(
            help="send each stage round as one batch job (openai/, anthropic/; answered "
            "within 24 h at the vendors' batch discount; rerun the same command to resume)"
        ),
    ] = False,
) -> None:
    """Run MODEL(s) through a PIPELINE on a BENCHMARK, judge, record and summarise.

    With no options: re-judge the published MOSSBench responses of four models offline and
    print the measured refusal rates next to the paper's.
    """
    from poise.benchmarks.filters import parse_stimulus_types
    from poise.eval.run.cost import load_prices
    from poise.eval.run.runner import Runner, RunSpec, Selection

    price_table = load_prices(prices)
    estimates = []
    check_selection(limit, sample, concurrency)
    apply_call_limits(timeout, max_retries, max_rpm=max_rpm, max_tpm=max_tpm)
    sampling = sampling_options(model_param, stage_model_param, judge_model_param, epochs)
    models = split_csv(model) or offline_models([benchmark], "--model")
    if batch:
        _check_batch(models, parse_pairs(stage_model, "--stage-model"))
    selection = Selection(
        stimulus_types=sorted(parse_stimulus_types([types])) if types else [],
        ids=split_csv([ids]) if ids else [],
        exclude=split_csv([exclude]) if exclude else [],
        categories=split_csv([categories]) if categories else [],
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
            prompt_stages=split_csv([prompt_stages]) if prompt_stages is not None else None,
            stage_models=parse_pairs(stage_model, "--stage-model"),
            oracle=sorted(set(split_csv(oracle))),
            judges=split_csv(judge),
            judge_model=judge_model,
            setting=setting,
            selection=selection,
            **sampling,
        )
        runner = Runner(
            spec,
            out,
            concurrency=concurrency,
            progress=progress,
            prompt_dirs=tuple(prompt_dir or ()),
            loaded_callback=announce,
            wait=wait,
            prices=price_table,
            batch=batch,
        )
        if dry_run:
            estimates.append(_estimate(runner, price_table, prompt_dir))
            continue
        try:
            result = asyncio.run(runner.run())
        except KeyboardInterrupt:
            raise interrupted(runner.interrupted or f"{runner.directory}") from None
        if result.nothing_to_do:
            what = "samples" if result.epochs == 1 else "draws (samples x epochs)"
            err_console.print(
                f"{result.directory.name}: all {result.selected} selected {what} were already "
                "recorded; nothing new was run (raise --limit or --epochs, or use another --out "
                "for a fresh run)",
                highlight=False,
            )
        results.append(result)
    if dry_run:
        print_estimates(console, estimates, price_table)
        return
    from poise.eval.report.tables import print_run_tables  # after the run: not on its way

    print_run_tables(console, [r.summary for r in results])
    print_epoch_lines([r.summary for r in results])


def _check_batch(models: list[str], stage_models: dict[str, str]) -> None:
    """--batch needs every model to be one whose provider has a batch API."""
    from poise.agents.models.batching import BATCH_PROVIDERS

    for name in [*models, *stage_models.values()]:
        if name.partition("/")[0] not in BATCH_PROVIDERS:
            raise PoiseError(
                f"--batch works with {', '.join(p + '/' for p in BATCH_PROVIDERS)} models; "
                f"{name} answers directly: drop --batch"
            )


def _estimate(runner, price_table, prompt_dir):
    """A dry run of one run: checked like a real one, estimated offline, saved beside it."""
    from poise.eval.run.cost import estimate_run, save_estimate
    from poise.eval.run.runner import check_spec
    from poise.graphs.registry import get_pipeline

    check_spec(runner.spec, get_pipeline(runner.spec.pipeline), tuple(prompt_dir or ()))
    estimate = estimate_run(
        runner.spec,
        pending_samples(runner),
        prices=price_table,
        prompt_dirs=tuple(prompt_dir or ()),
    )
    save_estimate(runner.directory, estimate)
    return estimate


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
    model_param: ModelParamOption = None,
    stage_model_param: StageModelParamOption = None,
    judge_model_param: JudgeModelParamOption = None,
    epochs: EpochsOption = 1,
    timeout: TimeoutOption = None,
    max_retries: MaxRetriesOption = None,
    max_rpm: MaxRpmOption = None,
    max_tpm: MaxTpmOption = None,
    wait: WaitOption = False,
    dry_run: DryRunOption = False,
    prices: PricesOption = None,
) -> None:
    """Run a grid of benchmarks x models x pipelines x system prompts, reusing shared stages."""
    from poise.benchmarks.filters import parse_stimulus_types
    from poise.eval.run.cost import load_prices
    from poise.eval.run.runner import RunSpec, Selection
    from poise.eval.run.sweep import plan, run_sweep

    price_table = load_prices(prices)

    check_selection(limit, sample, concurrency, "requests")
    apply_call_limits(timeout, max_retries, max_rpm=max_rpm, max_tpm=max_tpm)
    sampling = sampling_options(model_param, stage_model_param, judge_model_param, epochs)
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
        prompt_stages=split_csv([prompt_stages]) if prompt_stages is not None else None,
        judges=split_csv(judge),
        judge_model=judge_model,
        setting=setting,
        selection=Selection(
            stimulus_types=sorted(parse_stimulus_types([types])) if types else [],
            sample=sample,
            seed=seed,
            limit=limit,
        ),
        **sampling,
    )
    prompts = [None if p == "vanilla" else p for p in split_csv([system_prompts])]
    chosen = split_csv([benchmarks])
    model_names = split_csv([models]) if models else offline_models(chosen)
    specs = plan(
        benchmarks=chosen,
        models=model_names,
        pipelines=split_csv([pipelines]),
        system_prompts=prompts,
        base=base,
    )
    for spec in specs:
        spec.data = data_by_benchmark.get(spec.benchmark, data_by_benchmark.get("*"))
    if dry_run:
        _estimate_sweep(specs, out, price_table, prompt_dir)
        return
    try:
        result = asyncio.run(
            run_sweep(
                specs,
                out,
                concurrency=concurrency,
                progress=progress,
                prompt_dirs=tuple(prompt_dir or ()),
                wait=wait,
                prices=price_table,
            )
        )
    except KeyboardInterrupt:
        raise interrupted(f"sweep {out}") from None
    from poise.eval.report.tables import print_run_tables

    print_run_tables(console, result.summaries)
    print_epoch_lines(result.summaries)
    console.print(
        f"sweep: {len(specs)} cells in {result.wall_time_s:.1f}s; model calls made {result.calls_made}, "
        f"saved by reusing shared stages {result.calls_saved}; {out}/sweep.json",
        highlight=False,
    )
    recorded = result.cost.get("recorded") or {}
    if recorded:
        line = (
            f"cost: {recorded['input_tokens']:,} input + {recorded['output_tokens']:,} output "
            f"tokens = {recorded['cost']['text']}"
        )
        if result.cost.get("estimate"):
            line += f" (estimated {result.cost['estimate']['cost']['text']})"
        console.print(line, highlight=False)
    significant = [c for c in result.comparisons.get("comparisons", []) if c.get("significant")]
    if result.comparisons.get("comparisons"):
        console.print(
            f"paired comparisons: {len(significant)} of {len(result.comparisons['comparisons'])} "
            f"significant ({result.comparisons.get('correction')}); see {out}/sweep.json",
            highlight=False,
        )
        for comparison in significant[:10]:
            console.print(f"  {comparison['verdict']}", highlight=False)


def _estimate_sweep(specs, out, price_table, prompt_dir) -> None:
    """A dry run of a sweep: every cell checked, estimated with stage reuse, saved, printed."""
    from poise.eval.run.cost import estimate_sweep, save_estimate
    from poise.eval.run.runner import Runner, check_spec
    from poise.graphs.registry import get_pipeline

    dirs = tuple(prompt_dir or ())
    cells = []
    for spec in specs:
        check_spec(spec, get_pipeline(spec.pipeline), dirs)
        cells.append((spec, pending_samples(Runner(spec, out, progress=False))))
    estimates = estimate_sweep(cells, prices=price_table, prompt_dirs=dirs)
    for (spec, _), estimate in zip(cells, estimates, strict=True):
        save_estimate(out / spec.directory_name(), estimate)
    print_estimates(console, estimates, price_table)
