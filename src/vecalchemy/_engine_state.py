"""What vecalchemy remembers per engine, kept on the engine itself.

Private to vecalchemy.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["RECHECK_SECONDS", "EngineState", "engine_state"]

#: How long a column's index check (and the tuned setting read with it) is trusted
#: before the next statement on the column reads the catalog again.
RECHECK_SECONDS = 60.0


class EngineState:
    """What vecalchemy remembers about one engine's database (kept on the engine).

    ``checked`` holds the keys of checks made once per engine (a synced column's
    recorded model); building or dropping a table's indexes through this engine forgets
    its entries (:meth:`forget`).

    ``indexes`` holds, per (table, column, opclass), when the database's indexes were
    last checked and the tuned setting stored on the serving index (or None); an entry
    older than :data:`RECHECK_SECONDS` is checked again, so a ``vecalchemy tune --store``
    run elsewhere reaches this engine within a minute.

    ``compiled`` holds the statements the direct search path compiled for this engine's
    dialect, by ``Select`` (weakly: a statement dropped from its column's cache goes).
    """

    def __init__(self) -> None:
        self.checked: set[tuple[str, str, str]] = set()
        self.indexes: dict[tuple[str, str, str], tuple[float, Any]] = {}
        self.compiled: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def fresh(self, key: tuple[str, str, str]) -> bool:
        """Whether ``key``'s index check is recent enough to trust."""
        entry = self.indexes.get(key)
        return entry is not None and time.monotonic() - entry[0] < RECHECK_SECONDS

    def tuned(self, key: tuple[str, str, str]) -> Any:
        """The tuned setting recorded for ``key`` at its last check (or None)."""
        entry = self.indexes.get(key)
        return entry[1] if entry is not None else None

    def checked_index(self, key: tuple[str, str, str], tuning: Any) -> None:
        """Record that ``key``'s indexes agree with the declared metric, and ``tuning``."""
        with self._lock:
            self.indexes[key] = (time.monotonic(), tuning)

    def remember(self, key: tuple[str, str, str]) -> None:
        """Record that ``key``'s indexes agree with the declared metric."""
        with self._lock:
            self.checked.add(key)

    def forget(self, table: str) -> None:
        """Check ``table``'s indexes again on next use (its indexes changed)."""
        with self._lock:
            self.checked = {key for key in self.checked if key[0] != table}
            self.indexes = {key: v for key, v in self.indexes.items() if key[0] != table}


_ENGINE_STATE = "_vecalchemy_state"


def engine_state(engine: Engine | AsyncEngine) -> EngineState:
    """The :class:`EngineState` of ``engine`` (created on first use)."""
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    state = sync_engine.__dict__.get(_ENGINE_STATE)
    if not isinstance(state, EngineState):
        state = sync_engine.__dict__.setdefault(_ENGINE_STATE, EngineState())
    assert isinstance(state, EngineState)
    return state
