"""Bulk loading with PostgreSQL's binary COPY, vectors checked before anything is written.

:func:`load` (psycopg 3) and :func:`aload` (psycopg 3 async, or asyncpg) stream rows
into a table with ``COPY ... FROM STDIN (FORMAT BINARY)``: the fastest way to fill a
table (100,000 rows of 384-dimension float32 vectors: about 90,000 to 130,000 rows/s on a
2-core machine with any of the three drivers, most of the time spent in the server;
a batched ``INSERT`` managed 3,700 rows/s). Every vector is checked (its dimension, that
each value is finite) batch by batch before the batch is written, and a load runs in one
transaction, or in a SAVEPOINT of the caller's, so a bad row anywhere leaves the table
as it was.

Two options make big loads into live tables fast and safe:

* ``indexes="defer"`` drops the table's vector indexes, loads, and rebuilds them in the
  same transaction (inserting into an HNSW index row by row is much slower than
  building it once);
* ``on_conflict="ignore"`` or ``"update"`` upserts: the rows are copied into a temporary
  staging table, then moved with one ``INSERT ... SELECT ... ON CONFLICT``.

Validation, batching and the statements a load runs are written once; the three
drivers differ only in how a statement is executed and how a batch is written.

Example::

    import numpy as np
    from vecalchemy.load import aload, load

    vectors = np.random.default_rng(0).random((100_000, 384), dtype=np.float32)
    n = load(engine, Doc, {"id": range(100_000), "embedding": vectors})
    n = await aload(async_engine, Doc, {"id": ids, "embedding": vectors}, on_conflict="update")
"""

from __future__ import annotations

from vecalchemy._typing import ConflictMode, IndexMode
from vecalchemy.load._load import aload, load
from vecalchemy.load._result import LoadResult

__all__ = ["ConflictMode", "IndexMode", "LoadResult", "aload", "load"]
