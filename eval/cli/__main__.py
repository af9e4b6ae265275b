"""``python -m poise.eval.cli`` is the ``poise`` command."""

from poise.eval.cli import entry

entry()
