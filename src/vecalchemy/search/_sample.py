"""Query vectors sampled from a column's own rows, the same for the same seed.

Private to vecalchemy: :func:`vecalchemy.measure_recall`, :func:`vecalchemy.tune` and
:func:`vecalchemy.run_bench` sample their queries here.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from vecalchemy._sql import column_of

__all__ = ["sample_vectors"]


def sample_vectors(conn: Connection, column: Any, n: int, seed: int) -> list[Any]:
    """Up to ``n`` non-NULL vectors of ``column``, in an order fixed by ``seed``."""
    col = column_of(column)
    table = col.table
    # A sample that is the same for the same seed: rows ordered by a hash of their ctid.
    order = sa.func.md5(sa.func.concat(str(seed), sa.literal_column("ctid::text")))
    rows = conn.execute(
        sa.select(col).select_from(table).where(col.is_not(None)).order_by(order).limit(n)
    ).scalars()
    return list(rows)
