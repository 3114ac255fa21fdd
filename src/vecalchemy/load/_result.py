"""What a load returns."""

from __future__ import annotations

from collections.abc import (
    Sequence,
)
from typing import Any

__all__ = [
    "LoadResult",
]


class LoadResult(int):
    """The number of rows a load wrote, which also tells how long it took and what it rebuilt.

    It is an ``int`` (the rows inserted, plus the rows updated with
    ``on_conflict="update"``), so code that used the count keeps working; it compares,
    formats and adds up as that int. Read-only attributes:

    * ``rows``: the same count, as a plain int;
    * ``received``: the rows read from the input (``received - rows`` rows were skipped
      by ``on_conflict="ignore"``);
    * ``seconds``: the wall time of the whole load, index rebuilds included;
    * ``indexes_rebuilt``: the names of the vector indexes built after the load
      (``indexes="defer"``), in the order they were built.

    Example::

        result = load(engine, Doc, rows, indexes="defer")
        print(f"{result:,} rows in {result.seconds:.1f} s")   # 100,000 rows in 2.1 s
        result.indexes_rebuilt                                # ['ix_docs_embedding_hnsw']
    """

    _received: int
    _seconds: float
    _indexes_rebuilt: tuple[str, ...]

    def __new__(
        cls,
        rows: int = 0,
        *,
        received: int | None = None,
        seconds: float = 0.0,
        indexes_rebuilt: Sequence[str] = (),
    ) -> LoadResult:
        self = super().__new__(cls, rows)
        self._received = int(rows) if received is None else received
        self._seconds = seconds
        self._indexes_rebuilt = tuple(indexes_rebuilt)
        return self

    @property
    def rows(self) -> int:
        """The rows inserted or updated, as a plain ``int``."""
        return int(self)

    @property
    def received(self) -> int:
        """The rows read from the input."""
        return self._received

    @property
    def seconds(self) -> float:
        """The wall time of the load, in seconds."""
        return self._seconds

    @property
    def indexes_rebuilt(self) -> list[str]:
        """The vector indexes built after the load (``indexes="defer"``)."""
        return list(self._indexes_rebuilt)

    def __repr__(self) -> str:
        return (
            f"LoadResult(rows={int(self)}, received={self._received}, "
            f"seconds={self._seconds:.3f}, indexes_rebuilt={list(self._indexes_rebuilt)})"
        )

    def __str__(self) -> str:
        return int.__repr__(self)  # as the int it is: f"{result}" prints the count

    def __getnewargs_ex__(self) -> tuple[tuple[int], dict[str, Any]]:
        return (int(self),), {
            "received": self._received,
            "seconds": self._seconds,
            "indexes_rebuilt": self._indexes_rebuilt,
        }
