"""What vecalchemy remembers per engine, kept on the engine itself.

Private to vecalchemy.
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["EngineState", "engine_state"]


class EngineState:
    """What vecalchemy remembers about one engine's database (kept on the engine).

    ``checked`` holds the (table, column, opclass) triples whose indexes in the database
    were found to agree with the declared metric on first use; building or dropping a
    table's indexes through this engine forgets its entries (:meth:`forget`).
    """

    def __init__(self) -> None:
        self.checked: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def remember(self, key: tuple[str, str, str]) -> None:
        """Record that ``key``'s indexes agree with the declared metric."""
        with self._lock:
            self.checked.add(key)

    def forget(self, table: str) -> None:
        """Check ``table``'s indexes again on next use (its indexes changed)."""
        with self._lock:
            self.checked = {key for key in self.checked if key[0] != table}


_ENGINE_STATE = "_vecalchemy_state"


def engine_state(engine: Engine | AsyncEngine) -> EngineState:
    """The :class:`EngineState` of ``engine`` (created on first use)."""
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    state = sync_engine.__dict__.get(_ENGINE_STATE)
    if not isinstance(state, EngineState):
        state = sync_engine.__dict__.setdefault(_ENGINE_STATE, EngineState())
    assert isinstance(state, EngineState)
    return state
