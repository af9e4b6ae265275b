"""Generic sample selection, the same for every benchmark."""

from __future__ import annotations

import random
from collections.abc import Iterable

from poise.benchmarks.sample import STIMULUS_TYPES, Sample
from poise.errors import PoiseError


def parse_stimulus_types(values: Iterable[str]) -> set[int]:
    """Accept 1/2/3, 'type 2', or names like 'negated-harm'."""
    by_name = {name.lower().replace(" ", "-"): n for n, name in STIMULUS_TYPES.items()}
    abbrev = {"er": 1, "nh": 2, "ci": 3}
    out: set[int] = set()
    for value in values:
        for token in str(value).split(","):
            key = token.strip().lower().replace("type", "").strip().replace(" ", "-")
            if not key:
                continue
            if key.isdigit() and int(key) in STIMULUS_TYPES:
                out.add(int(key))
            elif key in by_name:
                out.add(by_name[key])
            elif key in abbrev:
                out.add(abbrev[key])
            else:
                raise PoiseError(
                    f"unknown stimulus type {token!r}; use 1/2/3, ER/NH/CI or one of "
                    + ", ".join(by_name)
                )
    return out


def select(
    samples: list[Sample],
    *,
    stimulus_types: set[int] | None = None,
    ids: set[str] | None = None,
    exclude: set[str] | None = None,
    categories: set[str] | None = None,
    sample: int | None = None,
    seed: int = 0,
    limit: int | None = None,
) -> list[Sample]:
    """Filter, then draw a seeded random subset, then cut to ``limit`` (in that order).

    ``exclude`` drops samples by id (or MSSBench pair id): the way past a sample whose image
    is corrupt upstream.
    """
    chosen = samples
    if stimulus_types:
        chosen = [s for s in chosen if s.stimulus_type in stimulus_types]
    if ids:
        unknown = ids - {s.id for s in samples} - {s.pair_id for s in samples if s.pair_id}
        if unknown:
            raise PoiseError(f"unknown sample ids: {', '.join(sorted(unknown)[:10])}")
        chosen = [s for s in chosen if s.id in ids or (s.pair_id and s.pair_id in ids)]
    if exclude:
        unknown = exclude - {s.id for s in samples} - {s.pair_id for s in samples if s.pair_id}
        if unknown:
            raise PoiseError(f"--exclude: unknown sample ids: {', '.join(sorted(unknown)[:10])}")
        chosen = [s for s in chosen if s.id not in exclude and s.pair_id not in exclude]
    if categories:
        lowered = {c.lower() for c in categories}
        chosen = [s for s in chosen if s.category and s.category.lower() in lowered]
    if sample is not None and sample < len(chosen):
        rng = random.Random(seed)
        keep = set(rng.sample(range(len(chosen)), sample))
        chosen = [s for i, s in enumerate(chosen) if i in keep]
    if limit is not None:
        chosen = chosen[: max(limit, 0)]
    return chosen
