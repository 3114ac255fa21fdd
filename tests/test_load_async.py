"""Tests for aload(): binary COPY from async code, on psycopg 3 (async) and asyncpg.

Every test that takes ``async_connection`` or ``async_engine`` runs once per async
driver. Tables made on ``async_connection`` live in the test's transaction, which is
rolled back at the end; loads on it run inside a SAVEPOINT.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from pgvector import Bit, HalfVector, SparseVector, Vector
from pgvector.sqlalchemy import BIT, HALFVEC, SPARSEVEC, VECTOR
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.ext.asyncio import create_async_engine as sa_create_async_engine

import vecalchemy
from vecalchemy.errors import (
    ConfigurationError,
    DimensionMismatch,
    InvalidArgument,
    InvalidRows,
    InvalidVector,
)
from vecalchemy.load import LoadResult, aload


def every_type(name: str) -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData()
    table = sa.Table(
        name,
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("n", sa.Integer),
        sa.Column("body", sa.Text),
        sa.Column("meta", JSONB),
        sa.Column("embedding", VECTOR(3)),
        sa.Column("half", HALFVEC(3)),
        sa.Column("sparse", SPARSEVEC(5)),
        sa.Column("bits", BIT(4)),
    )
    return metadata, table


@pytest.fixture
async def adocs(async_connection: AsyncConnection) -> sa.Table:
    """``adocs`` with a column of every kind, in the test's (rolled back) transaction."""
    metadata, table = every_type("adocs")
    await async_connection.run_sync(metadata.create_all)
    return table


@pytest.fixture
async def committed(async_engine: AsyncEngine) -> AsyncIterator[sa.Table]:
    """``adocs_committed``: the same table, created and dropped outside any test transaction."""
    metadata, table = every_type("adocs_committed")
    async with async_engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield table
    async with async_engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)


async def count(conn: AsyncConnection | AsyncEngine, table: sa.Table) -> int:
    stmt = sa.select(sa.func.count()).select_from(table)
    if isinstance(conn, AsyncEngine):
        async with conn.connect() as fresh:
            return int((await fresh.execute(stmt)).scalar_one())
    return int((await conn.execute(stmt)).scalar_one())


async def column_array(conn: AsyncConnection, column: sa.Column[Any], dtype: type) -> np.ndarray:
    """The values of a vector column, ordered by id, as a 2-D array."""
    stmt = sa.select(column).order_by(column.table.c.id)
    return np.array((await conn.execute(stmt)).scalars().all(), dtype=dtype)


def bits(value: Any) -> str | None:
    """A bit value as '0101' (asyncpg returns a BitString, psycopg a str)."""
    return None if value is None else str(value).replace(" ", "")


async def test_round_trip_every_type(async_connection: AsyncConnection, adocs: sa.Table) -> None:
    """Tuples with lists, arrays, pgvector objects and None round-trip for every column kind."""
    rows = [
        (1, 10, "one", {"tags": ["a"], "n": 1.5}, [0.5, 1.5, -2.0], [1, 2, 3],
         SparseVector({0: 1.5, 4: -2.0}, 5), "1010"),
        (2, -7, "two", [1, "x"], np.array([1, 2, 3], dtype=np.int64), np.array([0.25, 0.5, 1]),
         [0.0, 0.0, 3.0, 0.0, 0.0], [True, False, False, True]),
        (3, None, "", "just text", Vector([7, 8, 9]), HalfVector([1.5, 2.5, 3.5]), None,
         Bit("0001")),
        (4, None, None, None, None, None, None, None),
    ]  # fmt: skip
    result = await aload(async_connection, adocs, iter(rows))
    assert isinstance(result, LoadResult)
    assert (result, result.received) == (4, 4)
    got = (await async_connection.execute(sa.select(adocs).order_by(adocs.c.id))).all()
    assert [r[:6] for r in got] == [
        (1, 10, "one", {"tags": ["a"], "n": 1.5}, [0.5, 1.5, -2.0], [1.0, 2.0, 3.0]),
        (2, -7, "two", [1, "x"], [1.0, 2.0, 3.0], [0.25, 0.5, 1.0]),
        (3, None, "", "just text", [7.0, 8.0, 9.0], [1.5, 2.5, 3.5]),
        (4, None, None, None, None, None),
    ]
    assert [r.sparse for r in got] == [
        SparseVector({0: 1.5, 4: -2.0}, 5),
        SparseVector({2: 3.0}, 5),
        None,
        None,
    ]
    assert [bits(r.bits) for r in got] == ["1010", "1001", "0001", None]


async def test_dict_of_columns_round_trips_float32_exactly(
    async_connection: AsyncConnection, adocs: sa.Table
) -> None:
    """2-D float32 arrays in a dict of columns load in batches; the floats come back exactly."""
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((2_500, 3)).astype(np.float32) * 1e3
    halves = rng.standard_normal((2_500, 3)).astype(np.float32)
    data = {
        "id": np.arange(2_500),
        "n": np.arange(2_500, dtype=np.int32),
        "meta": [{"i": i} for i in range(2_500)],
        "embedding": vectors,
        "half": halves,
    }
    assert await aload(async_connection, adocs, data, batch_size=1_000) == 2_500
    assert np.array_equal(
        await column_array(async_connection, adocs.c.embedding, np.float32), vectors
    )
    assert np.array_equal(
        await column_array(async_connection, adocs.c.half, np.float16), halves.astype(np.float16)
    )
    last = (
        await async_connection.execute(
            sa.select(adocs.c.n, adocs.c.meta).where(adocs.c.id == 2_499)
        )
    ).one()
    assert tuple(last) == (2_499, {"i": 2_499})


async def test_async_generator_is_streamed_in_batches(
    async_connection: AsyncConnection, adocs: sa.Table
) -> None:
    """20,000 rows from an async generator load in batches: memory holds a batch, not the input."""
    expected = np.random.default_rng(0).standard_normal((20_000, 3)).astype(np.float32)

    async def rows() -> AsyncIterator[tuple[int, str, np.ndarray]]:
        for i in range(20_000):
            # 2 KB of text per row: 40 MB if the rows were all held at once.
            yield i, f"{i:02048d}", expected[i]

    tracemalloc.start()
    try:
        n = await aload(
            async_connection, adocs, rows(), columns=["id", "body", "embedding"], batch_size=1_000
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == 20_000
    assert await count(async_connection, adocs) == 20_000
    assert np.array_equal(
        await column_array(async_connection, adocs.c.embedding, np.float32), expected
    )
    assert peak < 20_000_000, f"peak {peak / 1e6:.0f} MB: rows are not streamed"


async def test_wrong_dimension_in_a_later_batch_writes_nothing(
    async_engine: AsyncEngine, committed: sa.Table
) -> None:
    """A short vector in the third batch of an async generator: DimensionMismatch, no row stays."""

    async def rows() -> AsyncIterator[tuple[int, list[float]]]:
        for i in range(5_000):
            yield i, [1.0, 2.0] if i == 2_345 else [1.0, 2.0, 3.0]

    with pytest.raises(
        DimensionMismatch,
        match=r"row 2345: adocs_committed\.embedding has 2 dimensions but the column has 3",
    ):
        await aload(async_engine, committed, rows(), columns=["id", "embedding"], batch_size=1_000)
    assert await count(async_engine, committed) == 0


async def test_nan_in_a_later_batch_inside_callers_transaction(
    async_connection: AsyncConnection, adocs: sa.Table
) -> None:
    """NaN in a later batch rolls back to the load's savepoint: the caller's rows survive."""
    await async_connection.execute(adocs.insert().values(id=-1, body="mine"))
    vectors = np.ones((3_000, 3), dtype=np.float32)
    vectors[2_500, 1] = np.nan
    with pytest.raises(
        InvalidVector, match=r"row 2500: adocs\.embedding has a non-finite value \(nan\) at index 1"
    ):
        await aload(
            async_connection, adocs, {"id": range(3_000), "embedding": vectors}, batch_size=1_000
        )
    with pytest.raises(InvalidVector, match=r"row 1: adocs\.half .* outside halfvec's range"):
        await aload(
            async_connection, adocs, [(1, [1, 2, 3]), (2, [1, 2, 7e4])], columns=["id", "half"]
        )
    assert await count(async_connection, adocs) == 1
    # The transaction is still usable.
    assert await aload(async_connection, adocs, [(5, [4, 5, 6])], columns=["id", "embedding"]) == 1
    ids = (await async_connection.execute(sa.select(adocs.c.id).order_by(adocs.c.id))).scalars()
    assert ids.all() == [-1, 5]


async def test_engine_and_connection_commit(async_engine: AsyncEngine, committed: sa.Table) -> None:
    """With an engine, or a connection outside a transaction, the load is committed."""
    assert await aload(async_engine, committed, {"id": [1, 2, 3]}) == 3
    async with async_engine.connect() as conn:
        assert not conn.in_transaction()
        assert await aload(conn, committed, {"id": [4]}) == 1
        assert not conn.in_transaction()
    assert await count(async_engine, committed) == 4


async def test_defer_rebuilds_the_hnsw_index(async_connection: AsyncConnection) -> None:
    """indexes='defer' drops the HNSW index, loads, rebuilds it; queries use it again."""
    metadata = sa.MetaData()
    table = sa.Table(
        "aindexed",
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True),
        vecalchemy.embedding_column("embedding", 8, index=vecalchemy.HNSW()),
    )
    await async_connection.run_sync(metadata.create_all)
    name = "ix_aindexed_embedding_hnsw"
    oid = sa.text("SELECT to_regclass(:n)::oid").bindparams(n=name)
    before = (await async_connection.execute(oid)).scalar()
    assert before is not None
    data = np.random.default_rng(1).standard_normal((2_000, 8)).astype(np.float32)
    result = await aload(
        async_connection, table, {"id": range(2_000), "embedding": data}, indexes="defer"
    )
    assert (result, result.indexes_rebuilt) == (2_000, [name])
    after = (await async_connection.execute(oid)).scalar()
    assert after is not None
    assert after != before  # dropped, then built anew
    await async_connection.execute(sa.text("SET LOCAL enable_seqscan = off"))
    stmt = vecalchemy.nearest(table.c.embedding, data[0], k=3)
    assert await async_connection.run_sync(vecalchemy.index_used, stmt) == name
    assert (await async_connection.execute(stmt)).first() is not None


@pytest.fixture
async def aitems(async_connection: AsyncConnection) -> sa.Table:
    """``aitems``: serial id, unique slug, body NOT NULL, embedding vector(3); ids 1, 2, 3."""
    metadata = sa.MetaData()
    table = sa.Table(
        "aitems",
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("slug", sa.Text, unique=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("embedding", VECTOR(3)),
    )
    await async_connection.run_sync(metadata.create_all)
    await async_connection.execute(
        table.insert(),
        [{"slug": f"s{i}", "body": "old", "embedding": [i, i, i]} for i in (1, 2, 3)],
    )
    return table


async def rows_of(conn: AsyncConnection, table: sa.Table) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await conn.execute(sa.select(table).order_by(table.c.id))]


async def test_upsert_update_and_ignore(
    async_connection: AsyncConnection, aitems: sa.Table
) -> None:
    """'update' inserts new keys and updates existing ones; 'ignore' only inserts new keys."""

    async def rows() -> AsyncIterator[tuple[int, str, list[float]]]:
        yield 2, "new 2", [20, 20, 20]
        yield 4, "new 4", [4, 4, 4]

    result = await aload(
        async_connection, aitems, rows(), columns=["id", "body", "embedding"], on_conflict="update"
    )
    assert (result, result.received) == (2, 2)
    result = await aload(
        async_connection,
        aitems,
        {"id": [1, 5], "body": ["ignored", "new 5"], "embedding": np.zeros((2, 3))},
        on_conflict="ignore",
    )
    assert (result, result.received) == (1, 2)
    assert await rows_of(async_connection, aitems) == [
        (1, "s1", "old", [1, 1, 1]),
        (2, "s2", "new 2", [20, 20, 20]),  # slug was not loaded: kept
        (3, "s3", "old", [3, 3, 3]),
        (4, None, "new 4", [4, 4, 4]),
        (5, None, "new 5", [0, 0, 0]),
    ]


async def test_upsert_on_a_unique_column(
    async_connection: AsyncConnection, aitems: sa.Table
) -> None:
    """conflict_columns names a unique column other than the primary key."""
    result = await aload(
        async_connection,
        aitems,
        [("s3", "by slug", [3, 0, 0]), ("s7", "seven", None)],
        columns=["slug", "body", "embedding"],
        on_conflict="update",
        conflict_columns=["slug"],
    )
    assert result == 2
    got = await rows_of(async_connection, aitems)
    assert got[2] == (3, "s3", "by slug", [3, 0, 0])
    assert got[3][1:] == ("s7", "seven", None)
    with pytest.raises(ConfigurationError, match=r"unique index or constraint on \(body\)"):
        await aload(
            async_connection,
            aitems,
            [(9, "x")],
            columns=["id", "body"],
            on_conflict="ignore",
            conflict_columns=["body"],
        )


async def test_upsert_failures_write_nothing(
    async_connection: AsyncConnection, aitems: sa.Table
) -> None:
    """A duplicate key, a bad vector in a later batch, or a refused INSERT: nothing changes."""
    before = await rows_of(async_connection, aitems)

    async def short_row() -> AsyncIterator[tuple[Any, ...]]:
        yield 7, "seven"
        yield (8,)

    with pytest.raises(InvalidRows, match=r"row 1 has 1 values, expected 2$"):
        await aload(
            async_connection, aitems, short_row(), columns=["id", "body"], on_conflict="update"
        )
    with pytest.raises(InvalidRows, match=r"rows 0 and 2 have the same key \(id\)=\(2\)"):
        await aload(
            async_connection,
            aitems,
            [(2, "a"), (8, "b"), (2, "c")],
            columns=["id", "body"],
            on_conflict="update",
        )
    data = np.ones((2_500, 3))
    data[1_500, 0] = np.inf
    with pytest.raises(InvalidVector, match=r"row 1500: aitems\.embedding"):
        await aload(
            async_connection,
            aitems,
            {"id": range(2_500), "body": ["x"] * 2_500, "embedding": data},
            on_conflict="ignore",
            batch_size=1_000,
        )
    with pytest.raises(sa.exc.IntegrityError, match="null value in column"):
        await aload(
            async_connection,
            aitems,
            [(1, [9, 9, 9]), (12, [1, 1, 1])],
            columns=["id", "embedding"],
            on_conflict="update",
        )
    assert await rows_of(async_connection, aitems) == before


async def test_argument_errors(server_url: sa.URL, engine: sa.Engine) -> None:
    """Wrong binds and an asyncpg engine without pgvector's codecs fail before any SQL."""
    _, table = every_type("never_created")
    with pytest.raises(InvalidArgument, match=r"got a Engine; use load"):
        await aload(engine, table, [(1,)], columns=["id"])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="bind must be"):
        await aload(None, table, [(1,)], columns=["id"])  # type: ignore[arg-type]
    plain = sa_create_async_engine(server_url.set(drivername="postgresql+asyncpg"))
    with pytest.raises(ConfigurationError, match=r"no codec for never_created\.embedding"):
        await aload(plain, table, [(1, [1, 2, 3])], columns=["id", "embedding"])
    with pytest.raises(ConfigurationError, match=r"'never_created' does not exist .* create it"):
        await aload(plain, table, [(1, "x")], columns=["id", "body"])
    await plain.dispose()
