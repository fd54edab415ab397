"""A progress bar for commands that take a while (backfill, bulk import).

Drawn on stderr and only when stderr is a terminal, so piped output and
`--json` on stdout stay exactly what scripts expect."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class Tick(Protocol):
    def __call__(self, done: int = 1) -> None: ...


@contextmanager
def progress(label: str, total: int) -> Iterator[Tick]:
    """Yields a function that marks `done` more items of `total` as finished."""
    console = Console(file=sys.stderr)
    if not (console.is_terminal and total > 1):
        yield lambda done=1: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    # Lines printed meanwhile go above the bar only when stdout shares the terminal;
    # piped stdout must keep every line it would have had without the bar.
    shared = sys.stdout.isatty()
    with Progress(
        *columns, console=console, transient=True, redirect_stdout=shared, redirect_stderr=False
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done=1: bar.advance(task, done)
