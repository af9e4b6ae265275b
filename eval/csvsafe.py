"""CSV cells that a spreadsheet will not execute.

Model output and dataset text end up in CSV exports (``poise agree`` disagreements,
``diagnosis.csv``). A cell starting with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage
return) is a formula to Excel and LibreOffice: ``=HYPERLINK(...)`` in a model's reply would
run when an analyst opens the file. Such text cells are prefixed with a single quote, the
OWASP-recommended neutralisation; numbers and other values are left as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """``value`` with a leading ``'`` if it is text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows (as for ``csv.DictWriter``) with every text cell neutralised."""
    return [{key: neutralise(value) for key, value in row.items()} for row in rows]
