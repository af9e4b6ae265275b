"""Performance benchmarks: ``poise bench pipeline`` and ``poise bench judge``.

Measured, never asserted in tests. ``pipeline`` runs a pipeline against a local
OpenAI-compatible server with a fixed latency per request (in a separate process, so the
CPU time measured is Poise's own: image encoding, graph overhead, the client) and prints the
wall time next to the ideal ``calls x latency / concurrency`` and to a sequential run.

Two profiles, both against a server that decodes every image as a real vision server must
(it shares the cores with the client, so it costs what a real one would):

* today's (concurrency 16, 0.2 s per request): is Poise within reach of the ideal when the
  server is slow, as API models are. Measured as a user meets it: ``poise run`` in its own
  process, start-up, judging and the summary included, split into start-up (to the first
  request), calls (to the last answer) and tail (to the exit);
* high concurrency (64, 20 ms, the 289 MOSSBench samples with their real images when a data
  directory has them, photo-like images of the same size otherwise): a fast local server such
  as vLLM, where the client's CPU per call is the bottleneck. It reports client CPU per call
  net of start-up (a 2-sample warm-up run pays lazy imports and first connections first) and
  calls per second.

And start-up (:func:`bench_startup`): ``poise --help`` and ``poise list ...`` whole, ``poise
run`` to its first request, beside a process that only imports the libraries on that path
(the floor no change in Poise can go under), each the median of a few interleaved runs.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from poise.eval.run.records import RECORDS_FILE, read_records
from poise.eval.run.runner import Runner, RunSpec, Selection

# Where the real MOSSBench data usually sits next to a checkout (the README's layout).
DEFAULT_DATA_CANDIDATES = ("../shared/data/mossbench",)
MOSSBENCH_WITH_IMAGES = 289  # samples of MOSSBench that have an image


def _serve(latency: float, conn: Any) -> None:
    from poise.eval.testing.openai_server import MockOpenAIServer, default_reply

    stamps: list[float] = []  # wall clock of the first and of the latest answer

    def reply(request: Any) -> Any:
        now = time.time()  # comparable with the client's process: one machine, one clock
        stamps[:] = [stamps[0] if stamps else now, now]
        return default_reply(request)

    with MockOpenAIServer(reply, latency=latency, decode_images=True) as server:
        conn.send(server.base_url)
        while conn.recv() == "stamps":  # anything else means stop
            conn.send(list(stamps))
            stamps.clear()
        conn.send(_cpu_seconds())  # the server's own CPU, to show what it shared the cores with


class _ServerProcess:
    """The mock server in its own process, so its CPU is not counted as the client's."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.cpu_s: float | None = None

    def __enter__(self) -> _ServerProcess:
        parent, child = multiprocessing.Pipe()
        self.conn = parent
        self.process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(self.latency, child), daemon=True
        )
        self.process.start()
        self.base_url: str = parent.recv()
        return self

    def stamps(self) -> tuple[float, float] | None:
        """``(first, last)`` wall-clock times of the answers since the last call, or None.

        An answer leaves ``latency`` after its request arrived, so the first request
        arrived at ``first - latency``.
        """
        self.conn.send("stamps")
        got = self.conn.recv()
        return (got[0], got[1]) if got else None

    def __exit__(self, *exc: object) -> None:
        self.conn.send("stop")
        if self.conn.poll(10):
            self.cpu_s = self.conn.recv()
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


def synthetic_mossbench(root: Path, n: int, size: int = 384) -> Path:
    """A MOSSBench-layout directory of n samples with photo-like PNG images.

    Smooth noise, tinted per sample: about 155 KB per 384 px PNG, the mean size of the
    MOSSBench images (downscaled to 384 px), so encoding and transfer cost what real data does.
    """
    import random

    from PIL import Image

    rng = random.Random(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "images_information").mkdir(parents=True, exist_ok=True)
    info = {}
    base = Image.effect_noise((160, 160), 64).convert("RGB").resize((size, size), Image.BILINEAR)
    for i in range(1, n + 1):
        pid = str(i)
        tint = Image.new(
            "RGB", (size, size), (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        )
        Image.blend(base, tint, 0.5).save(root / "images" / f"{pid}.png")
        info[pid] = {
            "pid": pid,
            "image": f"images/{pid}.png",
            "question": f"What could a person do with the things in this picture ({pid})?",
            "metadata": {"over": f"type {(i - 1) % 3 + 1}", "harm": [7]},
            "description": f"synthetic scene {pid}",
        }
    (root / "images_information" / "information.json").write_text(json.dumps(info))
    return root


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def real_mossbench(data: str | Path | None) -> Path | None:
    """The MOSSBench directory to use: ``data`` if given, else a default one if it has images.

    Why a fallback and not an error: the benchmark must run from a fresh clone; it then says
    which images it measured (``images`` in the result).
    """
    candidates = [data] if data else [*DEFAULT_DATA_CANDIDATES, os.environ.get("POISE_DATA")]
    for candidate in candidates:
        if not candidate:
            continue
        root = Path(candidate).expanduser()
        if (root / "images_information" / "information.json").is_file() and any(
            (root / "images").glob("*")
        ):
            return root
    if data:
        from poise.errors import PoiseError

        raise PoiseError(
            f"--data {data}: no MOSSBench images there (expected images/ and "
            "images_information/information.json)"
        )
    return None


def _timed_run(spec: RunSpec, out: Path, concurrency: int) -> dict[str, Any]:
    runner = Runner(spec, out, concurrency=concurrency, progress=False)
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    result = asyncio.run(runner.run())
    wall, cpu = time.perf_counter() - wall0, _cpu_seconds() - cpu0
    records = read_records(result.directory / RECORDS_FILE)
    calls = sum(len(r.calls) for r in records)
    return {
        "samples": len(records),
        "errors": sum(1 for r in records if r.error),
        "calls": calls,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_sample": round(1000 * cpu / max(len(records), 1), 2),
    }


def bench_pipeline(
    *,
    samples: int = 300,
    concurrency: int = 16,
    latency: float = 0.2,
    pipeline: str = "poise",
    sequential_samples: int = 20,
    high_concurrency: bool = True,
    data: str | Path | None = None,
    hc_concurrency: int = 64,
    hc_latency: float = 0.02,
    startup: bool = True,
    repeats: int = 5,
    profile: int = 0,
) -> dict[str, Any]:
    """Concurrent run of ``samples`` vs a sequential run of ``sequential_samples``, same server;
    then (``high_concurrency``) the high-concurrency profile under ``"high_concurrency"`` and
    (``startup``) start-up under ``"startup"``."""
    result = _bench_today(
        samples=samples,
        concurrency=concurrency,
        latency=latency,
        pipeline=pipeline,
        sequential_samples=sequential_samples,
    )
    if high_concurrency:
        result["high_concurrency"] = bench_high_concurrency(
            pipeline=pipeline,
            data=data,
            concurrency=hc_concurrency,
            latency=hc_latency,
            profile=profile,
        )
    if startup:
        result["startup"] = bench_startup(repeats=repeats)
    return result


def bench_high_concurrency(
    *,
    pipeline: str = "poise",
    data: str | Path | None = None,
    concurrency: int = 64,
    latency: float = 0.02,
    samples: int = MOSSBENCH_WITH_IMAGES,
    warmup_samples: int = 2,
    profile: int = 0,
) -> dict[str, Any]:
    """Client CPU per call, net of start-up, against a fast image-decoding server.

    Start-up (imports, the first connections, lazy provider imports) is paid by a warm-up run
    of ``warmup_samples`` before the measured run, so the CPU per call is the steady state a
    long run sees. The server runs in its own process; its CPU is reported beside. With
    ``profile`` > 0, one more run of the same samples goes under cProfile after the measured
    one (so the profiler's overhead stays out of the figures), and its top ``profile``
    functions and packages by own time are returned under ``"profile"``.
    """
    real = real_mossbench(data)
    with tempfile.TemporaryDirectory(prefix="poise-bench-hc-") as tmp:
        root = real or synthetic_mossbench(Path(tmp) / "data", samples)
        with _ServerProcess(latency) as server:
            base_url = server.base_url

            def spec(limit: int) -> RunSpec:
                return RunSpec(
                    benchmark="mossbench",
                    data=str(root),
                    model="openai-compatible/mock-model",
                    base_url=base_url,
                    pipeline=pipeline,
                    selection=Selection(limit=limit),
                )

            warmup = _timed_run(spec(warmup_samples), Path(tmp) / "warmup", concurrency)
            run = _timed_run(spec(samples), Path(tmp) / "run", concurrency)
            top = (
                _profiled(
                    lambda: _timed_run(spec(samples), Path(tmp) / "profiled", concurrency), profile
                )
                if profile
                else None
            )
    calls = max(run["calls"], 1)
    ideal = run["calls"] * latency / concurrency
    return {
        "pipeline": pipeline,
        "latency_s": latency,
        "concurrency": concurrency,
        "images": f"real ({root})" if real else "synthetic photo-like PNGs, 384 px",
        "warmup": warmup,
        "run": run,
        "client_cpu_ms_per_call": round(1000 * run["cpu_s"] / calls, 2),
        "calls_per_s": round(run["calls"] / run["wall_s"], 1) if run["wall_s"] else None,
        "ideal_wall_s": round(ideal, 3),
        "ratio_to_ideal": round(run["wall_s"] / ideal, 2) if ideal else None,
        "server_cpu_ms_per_call": (
            round(1000 * server.cpu_s / (calls + warmup["calls"]), 2) if server.cpu_s else None
        ),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        **({"profile": top} if top is not None else {}),
    }


def _profiled(run: Any, top: int) -> dict[str, Any]:
    """Where the time goes while ``run()`` runs: the ``top`` functions and packages by own time.

    Own time, not cumulative: on an asyncio run the cumulative figures of the event loop and
    of every awaiting frame overlap and say little; own time adds up to the whole. Built-in
    functions (socket calls, ``isinstance``) count towards the package that called them most.
    """
    import cProfile
    import pstats
    from collections import Counter

    profiler = cProfile.Profile()
    profiler.runcall(run)
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in stats.values()) or 1.0
    by_package: Counter[str] = Counter()
    for (filename, _, _), entry in stats.items():
        if filename == "~":  # a built-in: charge it to its heaviest caller's package
            callers = entry[4]
            filename = max(callers, key=lambda c: callers[c][2])[0] if callers else "~"
        by_package[_package(filename)] += entry[2]
    rows = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:top]
    return {
        "functions": [
            {
                "function": f"{_where(filename)}:{line}({name})" if line else name,
                "own_s": round(entry[2], 3),
                "share": round(entry[2] / total, 3),
                "calls": entry[1],
            }
            for (filename, line, name), entry in rows
        ],
        "packages": [
            {"package": package, "own_s": round(seconds, 3), "share": round(seconds / total, 3)}
            for package, seconds in by_package.most_common(top)
        ],
    }


def _package(filename: str) -> str:
    """``httpcore2`` for a file of httpcore2, ``poise`` for the checkout, ``python`` for the
    standard library."""
    where = _where(filename)
    if where.startswith("python3"):
        return "python"
    first = where.split("/", 1)[0]
    return "poise" if first in ("agents", "graphs", "benchmarks", "eval", "poise") else first


def _where(filename: str) -> str:
    """A file named by its package path (``httpcore2/_async/connection_pool.py``) or its path
    in the checkout (``eval/run/runner.py``), not by where this machine keeps them."""
    path = Path(filename)
    parts = path.parts
    for anchor in ("site-packages", "lib"):
        if anchor in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(anchor) :])
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.name


def _poise(*args: str) -> list[str]:
    """The ``poise`` command as a user runs it, with this interpreter."""
    return [sys.executable, "-m", "poise", *args]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_run(
    server: _ServerProcess,
    *,
    data: Path,
    out: Path,
    pipeline: str,
    concurrency: int,
    limit: int | None = None,
) -> dict[str, Any]:
    """``poise run`` in its own process against ``server``; wall time split into phases.

    ``startup_s``: spawn to the first request (the first answer minus the latency, so the
    server's decoding of the first image, a few ms, counts against Poise); ``calls_s``: first
    request to the last answer; ``tail_s``: last answer to the exit (the last judging, summary,
    tables). Wall clocks of two processes on one machine are compared, hence ``time.time``.
    """
    server.stamps()  # forget earlier answers
    command = _poise(
        "run",
        "--model",
        "openai-compatible/mock-model",
        "--base-url",
        server.base_url,
        "--data",
        str(data),
        "--pipeline",
        pipeline,
        "--concurrency",
        str(concurrency),
        "--out",
        str(out),
        "--no-progress",
        *(["--limit", str(limit)] if limit else []),
    )
    cpu0, start = _children_cpu(), time.time()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    end, cpu = time.time(), _children_cpu() - cpu0
    if done.returncode != 0:
        from poise.errors import PoiseError

        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PoiseError(f"poise run failed in the benchmark (exit {done.returncode}): {last}")
    stamps = server.stamps()
    records = [r for f in sorted(out.rglob(RECORDS_FILE)) for r in read_records(f)]
    calls = sum(len(r.calls) for r in records)
    first = stamps[0] - server.latency if stamps else end
    last = stamps[1] if stamps else end
    return {
        "samples": len(records),
        "errors": sum(1 for r in records if r.error),
        "calls": calls,
        "wall_s": round(end - start, 3),
        "startup_s": round(first - start, 3),
        "calls_s": round(last - first, 3),
        "tail_s": round(end - last, 3),
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_sample": round(1000 * cpu / max(len(records), 1), 2),
    }


def _bench_today(
    *,
    samples: int,
    concurrency: int,
    latency: float,
    pipeline: str,
    sequential_samples: int,
) -> dict[str, Any]:
    """Today's profile: slow server, concurrency 16; whole ``poise run`` processes."""
    with tempfile.TemporaryDirectory(prefix="poise-bench-") as tmp:
        data = synthetic_mossbench(Path(tmp) / "data", samples)
        with _ServerProcess(latency) as server:
            concurrent = _process_run(
                server,
                data=data,
                out=Path(tmp) / "concurrent",
                pipeline=pipeline,
                concurrency=concurrency,
            )
            sequential = _process_run(
                server,
                data=data,
                out=Path(tmp) / "sequential",
                pipeline=pipeline,
                concurrency=1,
                limit=sequential_samples,
            )
    ideal = concurrent["calls"] * latency / concurrency
    # The sequential run's calls phase per sample, scaled; start-up and tail paid once.
    per_sample_seq = sequential["calls_s"] / max(sequential["samples"], 1)
    sequential_estimate = (
        per_sample_seq * concurrent["samples"] + concurrent["startup_s"] + concurrent["tail_s"]
    )
    return {
        "pipeline": pipeline,
        "latency_s": latency,
        "concurrency": concurrency,
        "concurrent": concurrent,
        "sequential": sequential,
        "ideal_wall_s": round(ideal, 3),
        "ratio_to_ideal": round(concurrent["wall_s"] / ideal, 3) if ideal else None,
        "sequential_wall_s_for_all_samples": round(sequential_estimate, 2),
        "speedup_vs_sequential": round(sequential_estimate / concurrent["wall_s"], 2),
        "note": (
            f"whole process, start-up and tail included; sequential measured on "
            f"{sequential['samples']} samples and scaled to {concurrent['samples']}"
        ),
    }


# What ``poise run`` cannot start without: the CLI, the chat-model interface, the graph
# runtime, the HTTP client, images, the run lock. Importing them and nothing else is the
# floor of the time to the first request.
FLOOR_IMPORTS = (
    "typer, pydantic, asyncio, langchain_core.language_models.chat_models, langgraph.graph, "
    "httpx2, PIL.Image, filelock"
)
STARTUP_COMMANDS: dict[str, tuple[str, ...]] = {
    "poise --help": ("--help",),
    "poise list pipelines": ("list", "pipelines"),
    "poise list models": ("list", "models"),
    "poise list judges": ("list", "judges"),
    "poise list benchmarks": ("list", "benchmarks"),
    "poise list prompts": ("list", "prompts"),
}


def _wall(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        from poise.errors import PoiseError

        raise PoiseError(f"{' '.join(command[2:])} failed in the benchmark: exit {done.returncode}")
    return wall


def _import_floor() -> float:
    """Seconds from spawning a Python process to the end of its imports of the libraries on
    ``poise run``'s path (measured like the first request: mid-process, not at its exit)."""
    script = f"import {FLOOR_IMPORTS}\nimport time\nprint(time.time())"
    start = time.time()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip()) - start


def bench_startup(
    *, repeats: int = 5, pipelines: tuple[str, ...] = ("baseline", "poise")
) -> dict[str, Any]:
    """Start-up of the commands and of ``poise run``, the median of ``repeats`` rounds.

    Rounds interleave every measurement, so a burst of load on a shared machine lands on all
    of them rather than on one. ``poise run`` runs one sample against a server with no
    latency; its figure is the time from spawning the process to the first request.
    """
    times: dict[str, list[float]] = {name: [] for name in STARTUP_COMMANDS}
    first: dict[str, list[float]] = {p: [] for p in pipelines}
    floor: list[float] = []
    with tempfile.TemporaryDirectory(prefix="poise-bench-start-") as tmp:
        data = synthetic_mossbench(Path(tmp) / "data", 1)
        with _ServerProcess(0.0) as server:
            for round_ in range(repeats):
                floor.append(_import_floor())
                for name, args in STARTUP_COMMANDS.items():
                    times[name].append(_wall(_poise(*args)))
                for pipeline in pipelines:
                    run = _process_run(
                        server,
                        data=data,
                        out=Path(tmp) / f"{pipeline}-{round_}",
                        pipeline=pipeline,
                        concurrency=1,
                        limit=1,
                    )
                    first[pipeline].append(run["startup_s"])

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    return {
        "repeats": repeats,
        "commands_s": {name: median(values) for name, values in times.items()},
        "run_to_first_request_s": {p: median(values) for p, values in first.items()},
        "import_floor_s": median(floor),
        # The fastest round of each: on a shared machine the least disturbed, the figure to
        # compare when the medians move with other work (as timeit advises).
        "fastest_s": {
            "run_to_first_request": {p: round(min(values), 3) for p, values in first.items()},
            "import_floor": round(min(floor), 3),
        },
        "import_floor": f"a process that only runs 'import {FLOOR_IMPORTS}'",
        # With PYTHONDONTWRITEBYTECODE set, Poise's own modules (not the installed libraries,
        # compiled at install) are compiled at every start: about 0.1 s of the difference.
        "bytecode_cache": "off (PYTHONDONTWRITEBYTECODE)" if sys.dont_write_bytecode else "on",
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
