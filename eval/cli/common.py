"""Options and checks shared by the ``poise`` commands.

Every user-fixable problem surfaces as one line on stderr and exit status 2 (see
:class:`poise.errors.PoiseError`); typer's own boxes are avoided for the same reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from poise.errors import Interrupted, PoiseError

if TYPE_CHECKING:
    from poise.agents.ratelimit import LimitSpec

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
MaxRpmOption = Annotated[
    list[str] | None,
    typer.Option(
        "--max-rpm",
        help="requests per minute per model: N for every API model, or PROVIDER/MODEL=N "
        "for one (repeatable)",
    ),
]
MaxTpmOption = Annotated[
    list[str] | None,
    typer.Option(
        "--max-tpm",
        help="tokens per minute per model (estimated before each call, corrected after): "
        "N or PROVIDER/MODEL=N (repeatable)",
    ),
]
WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait", help="if another poise process is writing the run directory, wait for it"
    ),
]


def at_least(value: int | float | None, minimum: int, option: str, meaning: str) -> None:
    """Refuse a number below ``minimum`` with one line (typer would print a box)."""
    if value is not None and value < minimum:
        raise PoiseError(f"{option} {value} is not allowed: {meaning}")


def apply_call_limits(
    timeout: float | None,
    max_retries: int | None,
    *,
    max_rpm: list[str] | None = None,
    max_tpm: list[str] | None = None,
) -> None:
    """Check and apply --timeout / --max-retries / --max-rpm / --max-tpm for every model
    call of this process (all four are read in poise.agents, where every call passes)."""
    from poise.agents.ratelimit import configure_rate_limits
    from poise.agents.retry import configure_calls

    if timeout is not None and not timeout > 0:
        raise PoiseError(f"--timeout {timeout} is not allowed: give seconds > 0, e.g. --timeout 60")
    at_least(max_retries, 0, "--max-retries", "give 0 (no retries) or more")
    rpm = parse_rate_limits(max_rpm, "--max-rpm")
    tpm = parse_rate_limits(max_tpm, "--max-tpm")
    configure_calls(timeout_s=timeout, max_retries=max_retries)
    configure_rate_limits(max_rpm=rpm, max_tpm=tpm)


def parse_rate_limits(values: list[str] | None, option: str) -> LimitSpec:
    """``["500", "openai/gpt-4o=100,anthropic/claude-3-haiku=50"]`` -> a LimitSpec.

    A bare number is the limit of every API model (each gets its own budget); a
    PROVIDER/MODEL=N entry sets one model's, whatever its provider.
    """
    from poise.agents.ratelimit import LimitSpec

    default: int | None = None
    per_model: dict[str, int] = {}
    for entry in split_csv(values):
        name, sep, number = entry.rpartition("=")
        name = name.strip()
        if sep and ("/" not in name or not name.partition("/")[2]):
            raise PoiseError(
                f"{option} {entry!r}: name the model as PROVIDER/MODEL=N, "
                f"e.g. {option} openai/gpt-4o=500"
            )
        try:
            limit = int(number.strip())
        except ValueError:
            raise PoiseError(
                f"{option} {entry!r}: give a whole number per minute, e.g. {option} 500 "
                f"or {option} openai/gpt-4o=500"
            ) from None
        at_least(limit, 1, option, "give a limit per minute of 1 or more")
        if sep:
            per_model[name] = limit
        else:
            default = limit
    return LimitSpec(default=default, per_model=per_model)


def check_selection(
    limit: int | None, sample: int | None, concurrency: int, what: str = "samples"
) -> None:
    at_least(limit, 1, "--limit", "give the number of samples to run, 1 or more")
    at_least(sample, 1, "--sample", "give the size of the random subset, 1 or more")
    at_least(concurrency, 1, "--concurrency", f"give the number of {what} in flight, 1 or more")


def interrupted(detail: str) -> Interrupted:
    return Interrupted(
        f"interrupted: {detail}; what finished is recorded and summarised; "
        "rerun the same command to resume"
    )


def split_csv(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def parse_pairs(values: list[str] | None, option: str) -> dict[str, str]:
    out = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key.strip() or not val.strip():
            raise PoiseError(f"{option} takes STAGE=PROVIDER/MODEL, got {value!r}")
        out[key.strip()] = val.strip()
    return out


def offline_models(benchmarks: list[str], option: str = "--models") -> list[str]:
    """The models whose answers ship with the benchmarks (the no-key default)."""
    from poise.benchmarks.registry import benchmark_spec

    models = [m for b in benchmarks for m in benchmark_spec(b).offline_models]
    if not models:
        raise PoiseError(f"{option} is required for this benchmark, e.g. {option} openai/gpt-4o")
    return list(dict.fromkeys(models))


def readable_run_directories(path: Path) -> list[Path]:
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


DryRunOption = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="make no model call: print samples, calls, estimated tokens and cost per run and "
        "in total; save estimate.json in each run directory",
    ),
]
PricesOption = Annotated[
    Path | None,
    typer.Option(
        help="price table (TOML, the format of poise/eval/run/data/prices.toml) instead of "
        "the shipped one"
    ),
]


def print_estimates(console: Any, estimates: list[Any], prices: Any) -> None:
    """The dry run's table: per cell and in total, with how the figures were obtained."""
    from rich.table import Table

    from poise.eval.run.cost import ESTIMATE_HEADERS, estimate_rows

    dates = ", ".join(f"{k} {v}" for k, v in prices.dates().items())
    table = Table(title=f"dry run: no model was called; prices {prices.source} ({dates})")
    for header in ESTIMATE_HEADERS:
        table.add_column(header, justify="left" if header == "cell" else "right")
    for row in estimate_rows(estimates):
        table.add_row(*row)
    console.print(table)
    for estimate in estimates:
        for note in estimate.notes:
            console.print(f"{estimate.label}: {note}", highlight=False)
    console.print(
        "estimate: characters per token and the providers' image rules (about +-30% on input); "
        "output 0.4 of max_tokens per answer (up to 2x off); 'at most' = every call at max_tokens",
        highlight=False,
    )


def pending_samples(runner: Any) -> list[Any]:
    """The selected samples a run would still ask (what a resumed run pays for)."""
    from poise.eval.run.records import RECORDS_FILE, read_records

    _, samples = runner.prepare()
    path = runner.directory / RECORDS_FILE
    done = {r.sample_id for r in read_records(path) if r.error is None} if path.is_file() else set()
    return [s for s in samples if s.id not in done]
