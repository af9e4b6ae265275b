"""One verifying TLS context per process, shared by the HTTP model clients.

Loading the CA certificates takes 25-40 ms per context. Every model (stage models, judges)
has its own connection pool, and they can all share one context, which is safe across clients
and threads. (Loading it in a background thread at start-up, to overlap the LangChain import,
was measured and made the first request later, not sooner: 1.25 vs 1.17 s, median of 12.)
"""

from __future__ import annotations

import ssl
import threading

_lock = threading.Lock()
_context: ssl.SSLContext | None = None


def context() -> ssl.SSLContext:
    """httpx2's default verifying context (``verify=True``: ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``
    honoured), built once, also when several threads ask at the same time."""
    global _context
    with _lock:
        if _context is None:
            import httpx2

            _context = httpx2.create_ssl_context()
        return _context
