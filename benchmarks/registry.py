"""Benchmarks by name.

A benchmark is a loader function registered with :func:`register_benchmark`. It turns a data
location (a directory, a hub id, or None for the default) into a :class:`LoadedBenchmark`.
Filtering (stimulus type, ids, limit, seeded sample) is generic and lives in ``filters``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from poise.benchmarks.sample import Sample
from poise.errors import PoiseError, known_names


@dataclass
class LoadedBenchmark:
    """Samples plus what the loader had to leave out, for the run's summary."""

    name: str
    source: str  # where the data came from: a directory, a hub id, or "packaged"
    samples: list[Sample]
    missing_images: list[str] = field(default_factory=list)  # sample ids whose image is absent
    notes: list[str] = field(default_factory=list)

    def summary_line(self) -> str:
        line = f"{self.name}: {len(self.samples)} samples from {self.source}"
        if self.missing_images:
            shown = ", ".join(self.missing_images[:12])
            more = "" if len(self.missing_images) <= 12 else ", ..."
            line += f"; {len(self.missing_images)} images missing (ids {shown}{more})"
        return line


Loader = Callable[[str | Path | None], LoadedBenchmark]
_BENCHMARKS: dict[str, tuple[Loader, str]] = {}


def register_benchmark(name: str, description: str) -> Callable[[Loader], Loader]:
    def wrap(loader: Loader) -> Loader:
        _BENCHMARKS[name] = (loader, description)
        return loader

    return wrap


def benchmark_names() -> dict[str, str]:
    _load_builtin()
    return {name: desc for name, (_, desc) in sorted(_BENCHMARKS.items())}


def load_benchmark(name: str, data: str | Path | None = None) -> LoadedBenchmark:
    """Load a benchmark by name; ``data`` is a directory or hub id, None for the default."""
    _load_builtin()
    if name not in _BENCHMARKS:
        raise PoiseError(
            f"unknown benchmark {name!r}; known benchmarks: {known_names(_BENCHMARKS)}"
        )
    loader, _ = _BENCHMARKS[name]
    loaded = loader(data)
    _check_unique_ids(loaded)
    return loaded


def _check_unique_ids(loaded: LoadedBenchmark) -> None:
    """Refuse data with repeated sample ids.

    Records are keyed by sample id: with two samples under one id, a run writes both, a
    rerun keeps one and silently drops the other.
    """
    seen: set[str] = set()
    repeated: list[str] = []
    for sample in loaded.samples:
        if sample.id in seen and sample.id not in repeated:
            repeated.append(sample.id)
        seen.add(sample.id)
    if repeated:
        shown = ", ".join(repeated[:10]) + (", ..." if len(repeated) > 10 else "")
        raise PoiseError(
            f"{loaded.source}: sample id {shown} appears more than once; "
            "give every item its own id (pid) in the data"
        )


def _load_builtin() -> None:
    from poise.benchmarks import mossbench, mssbench  # noqa: F401  (register on import)
