"""The one error type users see.

Every problem a user can fix (a bad path, an unknown name, a missing key, a corrupt file)
raises :class:`PoiseError` with a one-line message that names the fix. The CLI prints the
message and exits with status 2 instead of showing a traceback.
"""


class PoiseError(Exception):
    """A user-fixable problem, described in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def known_names(names: list[str] | set[str] | tuple[str, ...]) -> str:
    """Format a list of registered names for an 'unknown name' message."""
    return ", ".join(sorted(names)) or "(none)"


class Interrupted(Exception):
    """Ctrl-C stopped a command; the message says what was kept and how to resume.

    A distinct type (not KeyboardInterrupt) because the CLI framework turns a
    KeyboardInterrupt into a bare "Aborted!" before Poise could say anything.
    """
