"""Exports of run directories into other tools' formats.

``inspect`` writes an inspect_ai eval log per run (the ``[inspect]`` extra), so runs open in
``inspect view`` beside a team's other evals; ``csv`` writes one flat, formula-safe row per
record for spreadsheets. Both read runs through :mod:`poise.eval.export.source`, which is
lenient about records written by older versions of Poise. Nothing here is imported by the
CLI at start-up: ``poise --help`` must not pay for inspect_ai.
"""
