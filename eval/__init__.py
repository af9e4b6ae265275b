"""Runner, records, judges, metrics, diagnosis, reports and the ``poise`` CLI.

``load_records(path)`` reads the records of a run (or of every run below a directory) into a
pandas DataFrame, one row per sample. It is imported on first use, so that ``poise --help``
does not pay for pydantic and pandas.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_records"]


def __getattr__(name: str) -> Any:
    if name == "load_records":
        from poise.eval.run.records import load_records

        return load_records
    raise AttributeError(f"module 'poise.eval' has no attribute {name!r}")
