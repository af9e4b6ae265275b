"""One progress display for every long command (run, sweep, judge, diagnose).

A rich bar on stderr with count, rate, errors, elapsed time and ETA, and a note while calls
wait on a rate limit (``--max-rpm`` / ``--max-tpm``; re-read at every refresh, so it shows
during the wait). Its total may grow while it runs (a sweep learns each cell's work as the
cell starts). Disabled, it does nothing.
"""

from __future__ import annotations

import time
from typing import Any


class Progress:
    def __init__(self, label: str, *, total: int = 0, enabled: bool = True) -> None:
        self.label = label[:60]
        self.total = total
        self.enabled = enabled
        self.errors = 0

    def __enter__(self) -> Progress:
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar
        from rich.text import Text

        class LimitColumn(ProgressColumn):
            def render(self, task: Any) -> Text:
                from poise.agents.ratelimit import waiting_summary

                return Text(waiting_summary(), style="yellow")

        self.bar = Bar(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("errors {task.fields[errors]}"),
            LimitColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.bar.start()
        self.task = self.bar.add_task(self.label, total=self.total, rate="", errors=0)
        self.started = time.perf_counter()
        return self

    def grow(self, count: int) -> None:
        """Add ``count`` items to the total."""
        self.total += count
        if self.enabled:
            self.bar.update(self.task, total=self.total)

    def advance(self, record: Any = None) -> None:
        """One item done; a record with an ``error`` counts as an error."""
        self.errors += bool(getattr(record, "error", None))
        if self.enabled:
            done = self.bar.tasks[0].completed + 1
            rate = done / max(time.perf_counter() - self.started, 1e-9)
            self.bar.update(self.task, advance=1, rate=f"{rate:.1f}/s", errors=self.errors)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.stop()
