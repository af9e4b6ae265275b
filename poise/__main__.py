"""``python -m poise`` is the ``poise`` command."""

from poise.eval.cli import entry

entry()
