"""Type aliases and ``Literal`` modes shared by several modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from sqlalchemy import ColumnElement

__all__ = ["ConflictMode", "IndexMode", "Order", "SearchMode", "Strategy", "Where"]


#: What a load does with the table's vector indexes: ``"keep"`` them, or ``"defer"``.
IndexMode = Literal["keep", "defer"]
#: What a load does with a row whose key exists: raise (``"error"``), ``"ignore"`` the
#: row, or ``"update"`` the existing one.
ConflictMode = Literal["error", "ignore", "update"]

#: How :func:`vecalchemy.search` finds the nearest rows: ``"auto"``, ``"index"``, ``"exact"``.
Strategy = Literal["auto", "index", "exact"]
#: How :meth:`vecalchemy.Collection.search` searches: by ``"vector"``, ``"hybrid"``, or
#: by its words alone (``"text"``).
SearchMode = Literal["vector", "hybrid", "text"]
#: How an iterative HNSW scan orders its rows: ``"strict"`` (exact distance order, for
#: statements whose rows are used as they come) or ``"relaxed"`` (better recall; the
#: runner re-sorts).
Order = Literal["strict", "relaxed"]
#: A filter: a SQLAlchemy boolean expression, a list of them (ANDed), or None.
Where = ColumnElement[bool] | Sequence[ColumnElement[bool]] | None
