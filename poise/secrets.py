"""Keep API keys and URL credentials out of everything Poise writes.

Error messages from SDKs can echo request details, and a ``--base-url`` can carry
credentials (``https://user:pass@host/v1``, ``...?api_key=...``). Before any text reaches a
record, ``run.json``, a summary, a lock's holder file or the terminal it passes through
:func:`redact`, which masks

- the values of the key variables Poise knows, in any letter case (servers echo keys back
  upper- or lower-cased);
- credentials inside URLs: the ``user:password@`` part and the values of query parameters
  named like keys or tokens;
- anything shaped like a bearer token, an ``sk-`` key or an ``hf_`` token.
"""

from __future__ import annotations

import os
import re

KEY_VARIABLES = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "POISE_OPENAI_COMPATIBLE_KEY",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
)
_PATTERNS = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+[A-Za-z0-9_\-\.~+/=]{8,}|hf_[A-Za-z0-9]{8,})",
    re.IGNORECASE,
)
# scheme://user:password@host or scheme://token@host
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.\-]*://)(?P<userinfo>[^/\s@?#]+)@", re.I)
# ?api_key=...&token=... (also in fragments and plain text: key=value after ? & ; or #)
_URL_SECRET_PARAM = re.compile(
    r"(?P<name>[?&;#](?:[a-z0-9_\-]*(?:key|token|secret|password|passwd|pwd|auth|signature|sig)"
    r"[a-z0-9_\-]*))=(?P<value>[^&\s#\"']+)",
    re.I,
)


def redact(text: str) -> str:
    """``text`` with every known secret and URL credential replaced by a placeholder."""
    for variable in KEY_VARIABLES:
        value = os.environ.get(variable, "")
        if len(value) >= 4:
            text = re.sub(re.escape(value), f"<{variable}>", text, flags=re.IGNORECASE)
    text = _URL_USERINFO.sub(r"\g<scheme><redacted>@", text)
    text = _URL_SECRET_PARAM.sub(r"\g<name>=<redacted>", text)
    return _PATTERNS.sub("<redacted>", text)


def redact_url(url: str | None) -> str | None:
    """A URL safe to print or store: credentials masked, the host kept."""
    return None if url is None else redact(url)
