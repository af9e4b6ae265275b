"""Optional dependencies, imported only on the paths that need them.

``torch`` and ``transformers`` serve only local ``hf/`` models; ``datasets`` and
``huggingface_hub`` only data from the Hugging Face hub. They are extras (``[hf]``,
``[hub]``; ``[dev]`` installs everything), so a missing one is a one-line error that names
the extra to install, never an ImportError traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from poise.errors import PoiseError

DISTRIBUTION = "poise-safety"


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or fail with one line: what needs it and the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = exc.name or module
        raise PoiseError(
            f"{purpose} needs {missing}, which is in the [{extra}] extra: "
            f"pip install '{DISTRIBUTION}[{extra}]'"
        ) from None
