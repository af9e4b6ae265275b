"""Model providers by name: one factory for every ``provider/model`` string.

Each provider registers a factory with :func:`register_provider`; the factory imports its
SDK only when called, so ``poise --help`` and an offline replay run never import torch,
transformers or a provider client they do not use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from poise.errors import PoiseError, known_names

if TYPE_CHECKING:  # listing providers imports no LangChain
    from langchain_core.language_models import BaseChatModel

ProviderFactory = Callable[..., "BaseChatModel"]
ParamValue = int | float

# The sampling parameters a user may set (--model-param KEY=VALUE), each with its type and
# what a valid value is. Every provider takes them under these names (hf/ maps max_tokens to
# max_new_tokens); a provider that cannot honour one refuses it when the model is built.
MODEL_PARAMS: dict[str, tuple[type, str]] = {
    "temperature": (float, "a number >= 0"),
    "top_p": (float, "a number in (0, 1]"),
    "max_tokens": (int, "a whole number >= 1"),
    "seed": (int, "a whole number"),
}
# What a model is asked with when the user sets nothing: greedy, so runs are reproducible.
# Providers add their own (API providers: max_tokens 1024) with ``register_provider``.
COMMON_DEFAULTS: dict[str, ParamValue] = {"temperature": 0.0}


@dataclass(frozen=True)
class Provider:
    name: str
    description: str
    factory: ProviderFactory
    example: str
    defaults: dict[str, ParamValue] = field(default_factory=dict)


_PROVIDERS: dict[str, Provider] = {}


def register_provider(
    name: str, description: str, example: str, defaults: Mapping[str, ParamValue] | None = None
):
    """Decorator: ``factory(model: str, *, base_url: str | None, **params) -> BaseChatModel``.

    ``defaults`` are the sampling parameters the factory uses when none are given; a run
    whose parameters equal them is the same run as one that gives none (same directory).
    """

    def wrap(factory: ProviderFactory) -> ProviderFactory:
        merged = {**COMMON_DEFAULTS, **dict(defaults or {})}
        _PROVIDERS[name] = Provider(name, description, factory, example, merged)
        return factory

    return wrap


def providers() -> dict[str, Provider]:
    _load_builtin()
    return dict(sorted(_PROVIDERS.items()))


def split_model_name(name: str) -> tuple[str, str]:
    """'openai/gpt-4o' -> ('openai', 'gpt-4o'); the model part may contain more slashes."""
    _load_builtin()
    provider, sep, model = name.partition("/")
    if not sep or not model:
        raise PoiseError(
            f"model {name!r} is not of the form PROVIDER/MODEL; "
            f"known providers: {known_names(_PROVIDERS)}"
        )
    if provider not in _PROVIDERS:
        raise PoiseError(
            f"unknown model provider {provider!r} in {name!r}; "
            f"known providers: {known_names(_PROVIDERS)}"
        )
    return provider, model


def get_chat_model(name: str, *, base_url: str | None = None, **params) -> BaseChatModel:
    """Build the chat model for ``provider/model``; params (temperature, ...) pass through."""
    provider, model = split_model_name(name)
    return _PROVIDERS[provider].factory(model, base_url=base_url, **params)


def _load_builtin() -> None:
    from poise.agents.models import builtin  # noqa: F401  (providers register on import)


def parse_param_value(key: str, text: str, option: str = "--model-param") -> ParamValue:
    """One parameter's value as its number type; anything else is a one-line error."""
    if key not in MODEL_PARAMS:
        raise PoiseError(f"{option} {key}: unknown parameter; known: {', '.join(MODEL_PARAMS)}")
    kind, meaning = MODEL_PARAMS[key]
    value: ParamValue
    try:
        number = float(text)
    except ValueError:
        raise PoiseError(f"{option} {key}={text}: give {meaning}") from None
    if kind is int:
        if not number.is_integer():
            raise PoiseError(f"{option} {key}={text}: give {meaning}")
        value = int(number)
    else:
        value = number
    ok = {
        "temperature": value >= 0,
        "top_p": 0 < value <= 1,
        "max_tokens": value >= 1,
        "seed": True,
    }[key]
    if not ok or number != number or number in (float("inf"), float("-inf")):
        raise PoiseError(f"{option} {key}={text}: give {meaning}")
    return value


def parse_model_params(
    values: Iterable[str] | None, option: str = "--model-param"
) -> dict[str, ParamValue]:
    """``["temperature=1", "max_tokens=256"]`` -> ``{"temperature": 1.0, "max_tokens": 256}``.

    Floats stay floats and counts stay ints whatever the spelling (``temperature=1`` and
    ``temperature=1.0`` are one run), so a parameter's value hashes the same every time.
    """
    params: dict[str, ParamValue] = {}
    for value in values or ():
        key, sep, text = value.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or not key or not text:
            raise PoiseError(
                f"{option} takes KEY=VALUE (known keys: {', '.join(MODEL_PARAMS)}), got {value!r}"
            )
        params[key] = parse_param_value(key, text, option)
    return params


def normalise_params(
    params: Mapping[str, Any], option: str = "--model-param"
) -> dict[str, ParamValue]:
    """Stored parameters (run.json) back to their canonical types, checked as on the CLI."""
    return {key: parse_param_value(key, str(value), option) for key, value in params.items()}


def provider_defaults(name: str) -> dict[str, ParamValue]:
    """The sampling parameters ``provider/model`` uses when none are given."""
    provider, _ = split_model_name(name)
    return dict(_PROVIDERS[provider].defaults)


def non_default_params(name: str, params: Mapping[str, ParamValue]) -> dict[str, ParamValue]:
    """The parameters that change what ``provider/model`` is asked (sorted by key).

    A parameter equal to the provider's default asks the same as leaving it out, so it is
    not part of a run's identity: ``max_tokens=1024`` on an API model is the default run.
    """
    try:
        defaults = provider_defaults(name)
    except PoiseError:
        defaults = dict(COMMON_DEFAULTS)  # an unknown provider fails later, with its own line
    return {k: v for k, v in sorted(params.items()) if defaults.get(k) != v}
