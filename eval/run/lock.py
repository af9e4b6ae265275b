"""One writer per run directory.

Two processes writing one run directory lose or duplicate records: a ``poise judge`` that
rewrites ``records.jsonl`` while a ``poise run`` appends to it leaves the run appending to an
unlinked file. Every command that writes a run directory (``run``, ``sweep``, ``judge``,
``diagnose``) therefore holds :class:`RunLock` on it while it writes.

The lock is ``filelock``'s OS-level lock (``flock`` on POSIX), so the kernel releases it when
its holder dies, even by SIGKILL: a stale lock file never blocks the next run. Who holds the
lock (pid, command, since when) is written to a separate holder file, because the lock file
itself is truncated by every process that *tries* to take it; the second writer reads the
holder file to say who is in the way.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from poise.errors import PoiseError

LOCK_FILE = ".poise.lock"
HOLDER_FILE = ".poise.lock.holder.json"
WAIT_POLL_S = 0.2


class RunLock:
    """Exclusive write access to one run directory, for one process at a time.

    ``acquire(wait=False)`` fails at once with a one-line :class:`PoiseError` naming the
    holder; ``wait=True`` blocks until the holder is done. Re-entrant within one object.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = FileLock(str(directory / LOCK_FILE), thread_local=False)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def _try(self) -> bool:
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        self._write_holder()
        return True

    def acquire(self, *, wait: bool = False) -> None:
        """Take the lock; without ``wait`` a busy directory is an error naming its holder."""
        self.directory.mkdir(parents=True, exist_ok=True)
        while not self._try():
            if not wait:
                raise PoiseError(self.busy_message())
            time.sleep(WAIT_POLL_S)

    async def acquire_async(self, *, wait: bool = False) -> None:
        """As :meth:`acquire`, but waiting without blocking the event loop (sweeps)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        while not self._try():
            if not wait:
                raise PoiseError(self.busy_message())
            await asyncio.sleep(WAIT_POLL_S)

    def release(self) -> None:
        if self._lock.is_locked:
            if self._lock.lock_counter == 1:
                (self.directory / HOLDER_FILE).unlink(missing_ok=True)
            self._lock.release()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def holder(self) -> dict[str, Any]:
        """The recorded holder: pid, command, since (empty if unknown or unreadable)."""
        try:
            return json.loads((self.directory / HOLDER_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def busy_message(self) -> str:
        info = self.holder()
        who = (
            f"pid {info.get('pid', '?')} ({info.get('command', '?')}) since {info.get('since', '?')}"
            if info
            else "another process"
        )
        return (
            f"{self.directory} is being written by {who}; wait for it to finish, "
            "or pass --wait to wait for it"
        )

    def _write_holder(self) -> None:
        from poise.secrets import redact

        info = {
            "pid": os.getpid(),
            "command": redact(" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))[:300],
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        target = self.directory / HOLDER_FILE
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(info), encoding="utf-8")
        tmp.replace(target)
