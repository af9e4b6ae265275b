"""Runner, records, judges, metrics, diagnosis, reports and the ``poise`` CLI.

``load_records(path)`` reads the records of a run (or of every run below a directory) into a
pandas DataFrame, one row per sample.
"""

from poise.eval.run.records import load_records

__all__ = ["load_records"]
