"""Pipelines by name.

A pipeline module declares one :class:`~poise.graphs.pipeline.PipelineSpec` and registers it
here; :mod:`poise.graphs.pipeline` compiles every graph the same way. The runner, the sweep
and diagnosis only ask the registry, so adding a pipeline never changes them.
"""

from __future__ import annotations

from poise.errors import PoiseError, known_names
from poise.graphs.pipeline import PipelineSpec

_PIPELINES: dict[str, PipelineSpec] = {}


def register_pipeline(spec: PipelineSpec) -> PipelineSpec:
    """Make ``spec`` known by its name (a module calls this once, at import)."""
    _PIPELINES[spec.name] = spec
    return spec


def pipeline_names() -> dict[str, str]:
    _load_builtin()
    return {name: spec.description for name, spec in sorted(_PIPELINES.items())}


def get_pipeline(name: str) -> PipelineSpec:
    _load_builtin()
    if name not in _PIPELINES:
        raise PoiseError(f"unknown pipeline {name!r}; known pipelines: {known_names(_PIPELINES)}")
    return _PIPELINES[name]


def _load_builtin() -> None:
    from poise.graphs import builtin  # noqa: F401  (pipelines register on import)
