"""Progress display for long library calls: the caller's callback, a rich bar, or nothing.

Private to vecalchemy.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Progress", "progress_reporter"]

#: A progress callback: called with (stage, done, total) as work advances.
Progress = Callable[[str, int, int], None]


@contextlib.contextmanager
def progress_reporter(
    progress: Progress | bool | None, *, unit: str = "rows"
) -> Iterator[Progress | None]:
    """The callback to report progress to: the caller's, a rich bar (True, its rate in
    ``unit`` per second), or none."""
    if not progress:
        yield None
        return
    if callable(progress):
        yield progress
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
    from rich.progress import Progress as Bar

    started = time.perf_counter()
    with Bar(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        console=Console(stderr=True),
    ) as bar:
        tasks: dict[str, Any] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total, rate="")
            rate = done / max(time.perf_counter() - started, 1e-9)
            bar.update(tasks[stage], completed=done, total=total, rate=f"{rate:,.0f} {unit}/s")

        yield report
