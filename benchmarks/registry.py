"""Benchmarks by name: one :class:`BenchmarkSpec` each, registered once.

A spec says everything the rest of Poise needs to know about a benchmark: how to load it
(a loader turns a data location - a directory, a hub id, or None for the default - into a
:class:`LoadedBenchmark`), what kind of task it is (which metrics score it), its default judge
per setting, the published table its figures are compared with, which other benchmark it is
the contrast set of, what ground truth its samples carry for diagnosis, and which models'
answers ship with it. Runner, report, plots and CLI ask the spec; none of them tests a
benchmark's name. Filtering (stimulus type, ids, limit, seeded sample) is generic and lives
in ``filters``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

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
Kind = Literal["refusal", "situational"]


@dataclass(frozen=True)
class BenchmarkSpec:
    """What a benchmark is, beyond its samples.

    - ``kind``: ``refusal`` (scored by refusal rate: MOSSBench) or ``situational`` (safe /
      unsafe accuracy: MSSBench); the metrics, tables and plots are chosen by it.
    - ``task``: the framing of its queries where it matters (MSSBench ``chat`` / ``embodied``).
    - ``judges``: the default judge per setting; the key ``None`` is the plain setting.
    - ``settings``: the task framings ``--setting`` accepts (the first is the default).
    - ``published``: the published table its figures are compared with, if any.
    - ``contrast_of``: the benchmark whose harmful counterpart this is (trade-off plots).
    - ``oracles``: the ground truth its samples carry for diagnosis (``perception``,
      ``intent``); ``intent_harmful`` says whether that intent is harmful (contrast sets) or
      benign, and is None where the benchmark's question is not the user's intent.
    - ``offline_models``: models whose answers ship with the benchmark (``replay/...``), the
      default when ``poise run`` gets no ``--model``.
    """

    name: str
    description: str
    loader: Loader
    kind: Kind
    judges: Mapping[str | None, str]
    task: str | None = None
    settings: tuple[str, ...] = ()
    published: str | None = None
    contrast_of: str | None = None
    oracles: frozenset[str] = frozenset()
    intent_harmful: bool | None = None
    offline_models: tuple[str, ...] = ()

    def default_judge(self, setting: str | None = None) -> str:
        """The judge that scores a run of this benchmark in ``setting`` unless one is named."""
        return self.judges.get(setting, self.judges[None])


_BENCHMARKS: dict[str, BenchmarkSpec] = {}


def register_benchmark(spec: BenchmarkSpec) -> BenchmarkSpec:
    """Make ``spec`` known by its name (a benchmark module calls this once, at import)."""
    _BENCHMARKS[spec.name] = spec
    return spec


def benchmark_names() -> dict[str, str]:
    _load_builtin()
    return {name: spec.description for name, spec in sorted(_BENCHMARKS.items())}


def benchmark_spec(name: str) -> BenchmarkSpec:
    """The spec of a benchmark by name; an unknown name is a one-line error listing the known."""
    _load_builtin()
    if name not in _BENCHMARKS:
        raise PoiseError(
            f"unknown benchmark {name!r}; known benchmarks: {known_names(_BENCHMARKS)}"
        )
    return _BENCHMARKS[name]


def benchmark_specs() -> list[BenchmarkSpec]:
    _load_builtin()
    return [spec for _, spec in sorted(_BENCHMARKS.items())]


def load_benchmark(name: str, data: str | Path | None = None) -> LoadedBenchmark:
    """Load a benchmark by name; ``data`` is a directory or hub id, None for the default."""
    loaded = benchmark_spec(name).loader(data)
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
