"""--max-rpm / --max-tpm: how many minutes N calls take, token charges and their correction.

No wall-clock timing: the calls run on an event loop with a virtual clock (time advances
exactly as far as the next scheduled wake-up, instantly), so "10 calls at 4 per minute" is
checked as start times of 0, 0, 0, 0, 15, 30, ... 90 seconds, deterministically.
"""

from __future__ import annotations

import asyncio
import selectors
import warnings
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from poise.agents import ratelimit, retry
from poise.agents.invoke import ask, build_messages
from poise.agents.models.handle import ModelHandle
from poise.agents.ratelimit import (
    CHARS_PER_TOKEN,
    IMAGE_TOKENS_ESTIMATE,
    LimitSpec,
    ModelLimiter,
    configure_rate_limits,
    estimate_tokens,
    waiting_summary,
)
from poise.errors import PoiseError
from poise.eval.cli.common import apply_call_limits, parse_rate_limits

MODEL = "openai/fake-model"


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    ratelimit.reset_rate_limits()
    retry.reset_calls()


class Clock:
    now = 0.0


class _VirtualSelector(selectors.SelectSelector):
    """Waiting for the next timer takes no time: the clock jumps there instead."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is not None and timeout > 0:
            self.clock.now += timeout
            timeout = 0
        return super().select(timeout)


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        super().__init__(_VirtualSelector(self.clock))

    def time(self) -> float:
        return self.clock.now


def run_virtual(coro: Coroutine[Any, Any, Any], clock: Clock | None = None) -> Any:
    loop = VirtualLoop(clock)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


class StampModel(BaseChatModel):
    """Answers at once, noting the (virtual) time each request starts; reports usage."""

    starts: list[float] = []
    max_tokens: int = 100
    used_in: int = 100
    used_out: int = 100
    fail_first: int = 0

    @property
    def _llm_type(self) -> str:
        return "stamp"

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        raise NotImplementedError("async only")

    async def _agenerate(self, messages: list[BaseMessage], *args: Any, **kw: Any) -> ChatResult:
        self.starts.append(asyncio.get_running_loop().time())
        if self.fail_first > 0:
            self.fail_first -= 1
            raise ConnectionError("dropped")
        usage = {
            "input_tokens": self.used_in,
            "output_tokens": self.used_out,
            "total_tokens": self.used_in + self.used_out,
        }
        message = AIMessage(content="ok", usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)])


def handle(name: str = MODEL, **fields: Any) -> ModelHandle:
    return ModelHandle(name=name, chat=StampModel(starts=[], **fields))


async def calls(model: ModelHandle, n: int, text: str = "hello") -> None:
    messages = build_messages(model, text)
    await asyncio.gather(*(ask(model, "baseline", messages) for _ in range(n)))


def starts(model: ModelHandle) -> list[float]:
    return sorted(round(t, 6) for t in model.chat.starts)  # type: ignore[attr-defined]


def test_ten_calls_at_four_per_minute_take_one_and_a_half_minutes() -> None:
    configure_rate_limits(max_rpm=LimitSpec(default=4))
    model = handle()

    run_virtual(calls(model, 10))

    # A burst of 4, then one every 60/4 s: the 10th starts 6 intervals later.
    assert starts(model) == [0, 0, 0, 0, 15, 30, 45, 60, 75, 90]


def test_without_limits_all_start_at_once() -> None:
    model = handle()
    run_virtual(calls(model, 10))
    assert starts(model) == [0] * 10


def test_the_bare_limit_is_per_model_and_for_api_models_only() -> None:
    configure_rate_limits(max_rpm=LimitSpec(default=2))
    first, second, local = handle("openai/a"), handle("anthropic/b"), handle("replay/c")

    async def together() -> None:
        await asyncio.gather(calls(first, 3), calls(second, 3), calls(local, 3))

    run_virtual(together())
    assert starts(first) == starts(second) == [0, 0, 30]  # each its own 2 per minute
    assert starts(local) == [0, 0, 0]


def test_a_named_model_gets_its_own_number_whatever_the_provider() -> None:
    configure_rate_limits(max_rpm=LimitSpec(default=60, per_model={"replay/c": 1}))
    local = handle("replay/c")
    run_virtual(calls(local, 3))
    assert starts(local) == [0, 60, 120]


def test_tokens_per_minute_with_the_documented_estimate() -> None:
    # 400 characters -> 100 tokens, plus the model's max_tokens (100) as expected output;
    # the usage reported (100 + 100) matches, so nothing is owed.
    configure_rate_limits(max_tpm=LimitSpec(default=1_000))
    model = handle(max_tokens=100, used_in=100, used_out=100)

    run_virtual(calls(model, 8, text="x" * 400))

    # 1,000 tokens at once = 5 calls of 200; then 200 tokens refill every 12 s.
    assert starts(model) == [0, 0, 0, 0, 0, 12, 24, 36]
    limiter = ratelimit.limiter_for(MODEL)
    assert limiter is not None and limiter.debt == 0 and limiter.tokens_charged == 8 * 200


def test_usage_above_the_estimate_is_charged_to_the_next_call() -> None:
    limiter = ModelLimiter(MODEL, None, 10_000, 60.0)
    assert limiter.expected_output(256) == 256  # before any answer: max_tokens

    async def go() -> list[int]:
        first = await limiter.acquire(200)
        limiter.settle(first, used_in=150, used_out=350)  # 500 used, 200 charged
        second = await limiter.acquire(200)
        return [first, second]

    assert run_virtual(go()) == [200, 500]  # 200 + the 300 owed
    assert limiter.expected_output(256) == 350  # later estimates use the mean reported


def test_a_call_larger_than_the_whole_budget_waits_for_a_full_bucket() -> None:
    limiter = ModelLimiter(MODEL, None, 1_000, 60.0)

    async def go() -> tuple[int, int, float]:
        charged = await limiter.acquire(2_500)
        owed = limiter.debt
        await limiter.acquire(0)  # the owed tokens make the next call wait a full minute
        return charged, owed, asyncio.get_running_loop().time()

    charged, owed, now = run_virtual(go())
    assert (charged, owed) == (1_000, 1_500)
    assert now == pytest.approx(60.0)


def test_estimate_rule() -> None:
    assert CHARS_PER_TOKEN == 4
    assert estimate_tokens(["abcd" * 10, "xy"], images=0, output=0) == 11  # 42 chars
    assert estimate_tokens([], images=2, output=5) == 2 * IMAGE_TOKENS_ESTIMATE + 5
    model = handle()
    messages = build_messages(model, "abcd", image_url="data:image/png;base64,AAAA", system="ab")
    assert ratelimit.message_parts(messages) == (["ab", "abcd"], 1)


def test_a_retry_waits_for_the_limit_too() -> None:
    configure_rate_limits(max_rpm=LimitSpec(default=1))
    retry.configure_calls(max_retries=2)
    model = handle(fail_first=1)

    run_virtual(calls(model, 1))

    # the first attempt at 0 s is dropped; its retry is a second request: 60 s later
    assert starts(model) == [0, 60]


def test_the_progress_phrase_while_calls_wait() -> None:
    configure_rate_limits(max_rpm=LimitSpec(default=4))
    model = handle()
    seen: list[str] = []

    async def go() -> None:
        async def look() -> None:
            await asyncio.sleep(1)
            seen.append(waiting_summary())

        await asyncio.gather(calls(model, 6), look())
        seen.append(waiting_summary())

    run_virtual(go())
    assert seen == ["waiting on rate limit: openai/fake-model rpm (2 calls)", ""]


def test_the_budget_carries_over_to_a_second_event_loop() -> None:
    # poise diagnose runs asyncio twice; a fresh bucket would allow a second burst.
    configure_rate_limits(max_rpm=LimitSpec(default=4))
    clock = Clock()
    model = handle()
    run_virtual(calls(model, 4), clock)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_virtual(calls(model, 1), clock)
    assert starts(model) == [0, 0, 0, 0, 15]


def test_option_parsing() -> None:
    spec = parse_rate_limits(["500", "openai/gpt-4o=100,google/gemini-2.0-flash=5"], "--max-rpm")
    assert spec.default == 500
    assert spec.per_model == {"openai/gpt-4o": 100, "google/gemini-2.0-flash": 5}
    assert spec.for_model("openai/gpt-4o") == 100
    assert spec.for_model("anthropic/claude") == 500
    assert spec.for_model("replay/gpt-4o") is None
    assert not parse_rate_limits(None, "--max-tpm")
    for bad, says in [
        (["0"], "1 or more"),
        (["fast"], "whole number"),
        (["gpt-4o=5"], "PROVIDER/MODEL=N"),
        (["openai/gpt-4o=-1"], "1 or more"),
    ]:
        with pytest.raises(PoiseError, match=says):
            parse_rate_limits(bad, "--max-rpm")


def test_apply_call_limits_sets_and_clears_the_process_limits() -> None:
    apply_call_limits(None, None, max_rpm=["openai/gpt-4o=7"], max_tpm=["9000"])
    limits = ratelimit.rate_limits()
    assert limits.rpm.for_model("openai/gpt-4o") == 7
    assert limits.tpm.for_model("openai/gpt-4o") == 9000
    apply_call_limits(None, None)
    assert ratelimit.limiter_for("openai/gpt-4o") is None
