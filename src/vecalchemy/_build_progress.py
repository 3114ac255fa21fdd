"""Progress of a running ``CREATE INDEX``, read from ``pg_stat_progress_create_index``.

A thread polls the view from a connection of its own (the building one is busy), from a
pool of its own (``engine.pool.recreate()``: same driver, URL and connect events), so a
caller's pool of one connection does not make it wait; it
reports ``(phase, done, total)``: tuples while pgvector loads them (HNSW reports tuples
done, not the total, so the total is the row count counted before the build), else
blocks. A failing poll or callback never stops the build: it is logged and polling stops.

Private to vecalchemy.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any

from sqlalchemy import Engine

from vecalchemy._progress import Progress

__all__ = ["ProgressPoller"]

log = logging.getLogger("vecalchemy.indexes")

# DBAPI paramstyle: the psycopg and psycopg2 drivers both read %s.
_QUERY = (
    "SELECT phase, blocks_total, blocks_done, tuples_total, tuples_done "
    "FROM pg_stat_progress_create_index WHERE pid = %s"
)


class ProgressPoller:
    """Report the progress of the build running in backend ``pid`` to ``report``, every
    ``interval`` seconds, while the ``with`` block runs.

    Example::

        with ProgressPoller(engine, pid, report, rows=200_000):
            conn.execute(CreateIndex(ix))
    """

    def __init__(
        self, engine: Engine, pid: int, report: Progress, *, rows: int, interval: float = 0.25
    ) -> None:
        self.engine = engine
        self.pid = pid
        self.report = report
        self.rows = rows
        self.interval = interval
        self.phases: list[str] = []  # every phase seen, in order
        self._last: tuple[str, int, int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vecalchemy-progress", daemon=True)

    def __enter__(self) -> ProgressPoller:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        if kind is None and self._last is not None and self._last[2] > 0:
            phase, _, total = self._last
            self._call(phase, total, total)  # the build finished: the last bar is full

    def _call(self, phase: str, done: int, total: int) -> bool:
        try:
            self.report(phase, done, total)
        except Exception:
            log.warning("the progress callback failed; no more progress is reported", exc_info=True)
            return False
        return True

    def _values(self, row: Any) -> tuple[str, int, int]:
        phase, blocks_total, blocks_done, tuples_total, tuples_done = row
        if tuples_total:
            return str(phase), int(tuples_done), int(tuples_total)
        if tuples_done:
            return str(phase), int(tuples_done), max(self.rows, int(tuples_done))
        if blocks_total:
            return str(phase), int(blocks_done), int(blocks_total)
        return str(phase), 0, 0

    def _run(self) -> None:
        pool = self.engine.pool.recreate()
        try:
            conn = pool.connect()
            try:
                wait = min(0.05, self.interval)  # quick first looks: short builds show too
                while not self._stop.wait(wait):
                    wait = min(wait * 2, self.interval)
                    cursor = conn.cursor()
                    cursor.execute(_QUERY, (self.pid,))
                    row = cursor.fetchone()
                    cursor.close()
                    conn.rollback()  # a backend's progress is read afresh by each transaction
                    if row is None:
                        continue
                    values = self._values(row)
                    if values[0] not in self.phases:
                        self.phases.append(values[0])
                    self._last = values
                    if not self._call(*values):
                        return
            finally:
                conn.close()
        except Exception:
            log.warning("cannot read the index build's progress", exc_info=True)
        finally:
            pool.dispose()
