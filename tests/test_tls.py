"""The shared TLS context: verifying, built once, one object for every client."""

from __future__ import annotations

import ssl
import threading

import pytest

from poise.agents.models import tls


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls, "_context", None)


def test_the_context_verifies_certificates_and_host_names() -> None:
    context = tls.context()
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_callers_racing_for_it_get_one_context() -> None:
    seen: list[ssl.SSLContext] = []
    threads = [threading.Thread(target=lambda: seen.append(tls.context())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(c) for c in seen}) == 1 and seen[0] is tls.context()


def test_every_openai_model_client_shares_it() -> None:
    from pydantic import SecretStr

    from poise.agents.models.openai_chat import FastChatOpenAI

    first = FastChatOpenAI(model_name="m", api_key=SecretStr("k"))
    second = FastChatOpenAI(model_name="m", api_key=SecretStr("k"))
    assert first.http_async_client is not second.http_async_client  # a pool per model
    pools = [c.http_async_client._transport._pool for c in (first, second)]
    assert pools[0]._ssl_context is pools[1]._ssl_context is tls.context()
