"""The judge interface and its registry.

A judge reads a finished sample (its query, its image if it wants it, the final response)
and returns a :class:`Verdict`. Judges register by name with :func:`register_judge`; the CLI
and the runner only ever ask the registry, so adding a judge is adding one module.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any, Protocol

from pydantic import BaseModel, Field

from poise.benchmarks.sample import Sample
from poise.errors import PoiseError, known_names


class Verdict(BaseModel):
    """One judge's reading of one response; records keep these keyed by judge name."""

    judge: str
    label: str = Field(description="judge-specific class, e.g. 'refuse' or MSSBench '1'")
    refused: bool | None = Field(
        default=None, description="MOSSBench paper protocol: counts as a refusal"
    )
    correct: bool | None = Field(
        default=None, description="whether this is the behaviour the sample expects"
    )
    score: float | None = None
    evidence: str = Field(default="", description="the matched cue, score or judge's reason")
    raw: str | None = Field(default=None, description="the judge model's raw output, if any")
    model: str | None = Field(default=None, description="judge model, for LLM judges")
    error: str | None = Field(default=None, description="why the judge output was unusable")
    version: str | None = Field(
        default=None,
        description="content hash of the judge's rules, cue data, weights or prompt; "
        "None on verdicts recorded before judges were versioned",
    )

    @classmethod
    def unparseable(
        cls,
        judge: str,
        error: str,
        *,
        raw: str | None = None,
        model: str | None = None,
        evidence: str = "",
        version: str | None = None,
    ) -> Verdict:
        """A judge output that could not be read: counted wrong and reported, as the papers do."""
        return cls(
            judge=judge,
            label="unparseable",
            refused=None,
            correct=False,
            raw=raw,
            model=model,
            evidence=evidence,
            error=error,
            version=version,
        )


class Judge(Protocol):
    """Judges are async so that LLM judges share the runner's concurrency.

    ``version`` is a content hash of what decides the verdicts (rules and cue data, weights,
    or the prompt), stamped on every verdict: re-judging with a new version replaces the old
    verdicts, and summaries refuse to mix two versions of one judge.
    """

    name: str
    version: str

    async def judge(
        self, sample: Sample, response: str | None, blocked: str | None = None
    ) -> Verdict:
        """``blocked`` is the provider's block reason when it refused to answer (a structured
        signal on the call, e.g. ``finish:SAFETY``): judges read it rather than guess from
        the empty text."""
        ...


def content_version(*parts: bytes | str) -> str:
    """A short content hash: a judge's version from its rules, data, weights or prompt."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part.encode() if isinstance(part, str) else part).digest())
    return digest.hexdigest()[:12]


def module_version(*modules: ModuleType) -> str:
    """The version of a judge whose rules are the source of these modules."""
    return content_version(*(inspect.getsource(module) for module in modules))


JudgeFactory = Callable[..., Judge]
_JUDGES: dict[str, tuple[JudgeFactory, str]] = {}


def register_judge(name: str, description: str) -> Callable[[JudgeFactory], JudgeFactory]:
    def wrap(factory: JudgeFactory) -> JudgeFactory:
        _JUDGES[name] = (factory, description)
        return factory

    return wrap


def judge_names() -> dict[str, str]:
    _load_builtin_judges()
    return {name: desc for name, (_, desc) in sorted(_JUDGES.items())}


def get_judge(name: str, **options: Any) -> Judge:
    """Build a judge by registry name; options (e.g. ``model``) go to its factory."""
    _load_builtin_judges()
    if name not in _JUDGES:
        raise PoiseError(f"unknown judge {name!r}; known judges: {known_names(_JUDGES)}")
    factory, _ = _JUDGES[name]
    return factory(**options)


def _load_builtin_judges() -> None:
    # Imported for their @register_judge side effect; kept lazy so that importing the
    # interface never imports a provider SDK.
    from poise.eval.judges import builtin  # noqa: F401
