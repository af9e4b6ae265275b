"""``poise bench``: speed of a pipeline against a local server, quality of the offline judges."""

from __future__ import annotations

from typing import Annotated

import typer

from poise.errors import PoiseError
from poise.eval.cli.app import app, console


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
    data: Annotated[
        str | None,
        typer.Option(
            help="pipeline: MOSSBench directory whose images the high-concurrency profile "
            "sends (default: ../shared/data/mossbench when present, else photo-like images)"
        ),
    ] = None,
    high_concurrency: Annotated[
        bool, typer.Option(help="pipeline: also run the high-concurrency profile (64, 20 ms)")
    ] = True,
    startup: Annotated[
        bool, typer.Option(help="pipeline: also time start-up (commands, run to first request)")
    ] = True,
    repeats: Annotated[
        int, typer.Option(help="pipeline: start-up rounds, the median is reported", min=1)
    ] = 5,
    profile: Annotated[
        int,
        typer.Option(
            help="pipeline: profile one more high-concurrency run (cProfile) and print its "
            "top N functions by own time",
            min=0,
        ),
    ] = 0,
) -> None:
    """Measure a pipeline's speed against a local server, or the offline judges' quality."""
    import json

    from poise.eval import bench as benchmarks

    if what == "pipeline":
        if profile and not high_concurrency:
            raise PoiseError(
                "--profile profiles the high-concurrency run; drop --no-high-concurrency"
            )
        result = benchmarks.bench_pipeline(
            samples=samples,
            concurrency=concurrency,
            latency=latency,
            pipeline=pipeline,
            sequential_samples=sequential_samples,
            high_concurrency=high_concurrency,
            data=data,
            startup=startup,
            repeats=repeats,
            profile=profile,
        )
        c = result["concurrent"]
        console.print(
            f"{pipeline}: {c['samples']} samples, {c['calls']} calls, latency {latency}s, concurrency {concurrency}\n"
            f"  poise run, whole process {c['wall_s']:.2f}s (start-up {c['startup_s']:.2f}s, calls "
            f"{c['calls_s']:.2f}s, tail {c['tail_s']:.2f}s)   ideal (calls x latency / concurrency) "
            f"{result['ideal_wall_s']:.2f}s   ratio {result['ratio_to_ideal']:.2f}x\n"
            f"  sequential {result['sequential_wall_s_for_all_samples']:.1f}s ({result['note']})"
            f"   speedup {result['speedup_vs_sequential']:.1f}x\n"
            f"  CPU {c['cpu_ms_per_sample']:.1f} ms per sample for the whole process (start-up, images, graph, client, judge), errors {c['errors']}",
            highlight=False,
        )
        hc = result.get("high_concurrency")
        if hc:
            console.print(
                f"{pipeline}, high concurrency: {hc['run']['calls']} calls, latency "
                f"{hc['latency_s']}s, concurrency {hc['concurrency']}, {hc['images']}\n"
                f"  client CPU {hc['client_cpu_ms_per_call']:.2f} ms per call (net of start-up), "
                f"{hc['calls_per_s']} calls/s, ratio to ideal {hc['ratio_to_ideal']}x",
                highlight=False,
            )
            if "profile" in hc:
                packages = ", ".join(
                    f"{p['package']} {100 * p['share']:.0f}%" for p in hc["profile"]["packages"]
                )
                console.print(
                    f"  profile (cProfile, own time) by package: {packages}",
                    highlight=False,
                    markup=False,
                )
                for row in hc["profile"]["functions"]:
                    console.print(
                        f"    {100 * row['share']:5.1f}%  {row['own_s']:6.3f}s  {row['function']}",
                        highlight=False,
                        markup=False,
                    )
        st = result.get("startup")
        if st:
            commands = ", ".join(f"{k} {v:.2f}s" for k, v in st["commands_s"].items())
            fastest = st["fastest_s"]
            firsts = ", ".join(
                f"{k} {v:.2f}s (fastest {fastest['run_to_first_request'][k]:.2f}s)"
                for k, v in st["run_to_first_request_s"].items()
            )
            console.print(
                f"start-up, median of {st['repeats']} interleaved rounds: {commands}\n"
                f"  poise run to its first request: {firsts}; importing the libraries on that "
                f"path and nothing else: {st['import_floor_s']:.2f}s (fastest "
                f"{fastest['import_floor']:.2f}s); bytecode cache "
                f"{st['bytecode_cache']}",
                highlight=False,
            )
    elif what == "judge":
        from poise.eval.judges.quality_report import judge_report

        result = judge_report(console, benchmark)
    else:
        raise PoiseError(f"unknown bench {what!r}; choose pipeline or judge")
    console.print_json(json.dumps(result, default=str))
