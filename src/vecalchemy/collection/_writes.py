"""How a collection writes documents when other writers write the same ones.

A write takes a transaction-scoped advisory lock for each document it writes (hashed
into :data:`BUCKETS` buckets per collection, taken in sorted order in one statement), and
only then reads what is stored and replaces it. Concurrent upserts of one document are
therefore serialised: each one sees the last one's committed rows and replaces them, the
last writer wins, nothing fails with a unique violation, and no two writers can deadlock
on each other's documents (every writer takes its locks in the same order). Readers
take no locks: searches never wait for a write.

Private to :mod:`vecalchemy.collection`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

__all__ = ["BUCKETS", "id_in", "lock_documents", "stored_documents"]

#: Lock buckets per collection. A write of many documents takes at most this many locks
#: (PostgreSQL's lock table is shared and finite); two documents in one bucket only
#: serialise their writers.
BUCKETS = 256

_LOCK_SQL = sa.text(
    "SELECT count(*) FROM (SELECT pg_advisory_xact_lock(CAST(:space AS int4), b) "
    "FROM unnest(CAST(:buckets AS int4[])) AS b) AS locked"
)


def _int4(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


def lock_documents(conn: sa.Connection, name: str, ids: Sequence[str]) -> None:
    """Take the write locks of ``ids`` in collection ``name`` until the transaction ends."""
    space = _int4(zlib.crc32(f"vecalchemy:{name}".encode()))
    found: set[int] = set()
    for i in ids:
        found.add(zlib.crc32(i.encode("utf-8", "surrogatepass")) % BUCKETS)
        if len(found) == BUCKETS:
            break  # a big write takes every bucket: no need to hash the other ids
    buckets = sorted(found)
    if buckets:
        # unnest() returns the sorted array in order, and the locks are taken in that order.
        conn.execute(_LOCK_SQL, {"space": space, "buckets": buckets})


def id_in(table: sa.Table, ids: Sequence[str]) -> sa.ColumnElement[bool]:
    """``id = ANY(:ids)``: one array parameter, however many ids (IN would bind one each,
    and PostgreSQL takes at most 65,535 parameters per statement)."""
    return table.c.id == sa.any_(sa.bindparam(None, list(ids), type_=ARRAY(sa.Text)))


def stored_documents(
    conn: sa.Connection, table: sa.Table, ids: Sequence[str]
) -> dict[str, tuple[str, dict[str, Any], str]]:
    """``id -> (content hash, metadata, embedder)`` of the stored documents among ``ids``."""
    if not ids:
        return {}
    # An empty table (a new collection's first load) holds none of them: skip the lookup.
    if conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is None:
        return {}
    rows = conn.execute(
        sa.select(table.c.id, table.c.content_hash, table.c.metadata, table.c.embedder)
        .where(id_in(table, ids))
        .where(table.c.chunk == 0)
    )
    return {row.id: (row.content_hash, row.metadata, row.embedder) for row in rows}
