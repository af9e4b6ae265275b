"""The ``poise`` command line: one module per command family, registered on one app.

Every user-fixable problem surfaces as one line on stderr and exit status 2 (see
:class:`poise.errors.PoiseError`); tracebacks are for bugs only. Command modules keep their
heavy imports inside the commands, so ``poise --help`` stays fast.
"""

from __future__ import annotations

import sys

from rich.markup import escape

from poise.errors import Interrupted, PoiseError
from poise.eval.cli import bench, compare, diagnosis, export, judging, listing, reporting, run  # noqa: F401
from poise.eval.cli.app import app, err_console

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: PoiseError -> one line on stderr, exit 2."""
    try:
        app()
    except PoiseError as exc:
        # The message is plain text: "[hf]" in it is an extra's name, not rich markup.
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except Interrupted as exc:
        err_console.print(escape(str(exc)), highlight=False, soft_wrap=True)
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print(
            "interrupted: what finished is recorded; rerun the same command to resume"
        )
        sys.exit(130)
    except OSError as exc:  # the environment (disk full, permissions), not a Poise bug
        where = f": {exc.filename}" if exc.filename else ""
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc.strerror or exc))}{escape(where)}; "
            "check the path and its permissions",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
