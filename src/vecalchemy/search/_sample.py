"""Query vectors sampled from a column's own rows, the same for the same seed.

Private to vecalchemy: :func:`vecalchemy.measure_recall`, :func:`vecalchemy.tune` and
:func:`vecalchemy.run_bench` sample their queries here.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from vecalchemy._sql import column_of

__all__ = ["key_columns", "sample_rows", "sample_vectors"]


def key_columns(column: Any) -> list[str]:
    """The names that identify a row of ``column``'s table (its primary key)."""
    col = column_of(column)
    return [c.name for c in col.table.primary_key.columns] or [col.name]


def sample_rows(
    conn: Connection, column: Any, n: int, seed: int
) -> tuple[list[tuple[Any, ...]], list[Any]]:
    """Up to ``n`` rows of ``column``'s table with a vector, in an order fixed by
    ``seed``: their keys (:func:`key_columns`) and their vectors."""
    col = column_of(column)
    table = col.table
    keys = [table.c[name] for name in key_columns(column)]
    # A sample that is the same for the same seed: rows ordered by a hash of their ctid.
    order = sa.func.md5(sa.func.concat(str(seed), sa.literal_column("ctid::text")))
    rows = conn.execute(
        sa.select(*keys, col).select_from(table).where(col.is_not(None)).order_by(order).limit(n)
    ).all()
    return [tuple(r[:-1]) for r in rows], [r[-1] for r in rows]


def sample_vectors(conn: Connection, column: Any, n: int, seed: int) -> list[Any]:
    """Up to ``n`` non-NULL vectors of ``column``, in an order fixed by ``seed``."""
    return sample_rows(conn, column, n, seed)[1]
