"""Tests for binary COPY loading, against a throwaway PostgreSQL with pgvector."""

from __future__ import annotations

import pickle
import tracemalloc
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from pgvector import Bit, HalfVector, SparseVector, Vector
from pgvector.sqlalchemy import BIT, HALFVEC, SPARSEVEC, VECTOR
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import vecalchemy
from vecalchemy.errors import (
    ConfigurationError,
    DimensionMismatch,
    IndexBuildError,
    InvalidArgument,
    InvalidRows,
    InvalidVector,
)
from vecalchemy.load import LoadResult, load


@pytest.fixture
def pg(engine: sa.Engine) -> sa.Engine:
    """The session's psycopg engine on the test database (tables here are committed)."""
    return engine


@pytest.fixture
def docs(pg: sa.Engine) -> Iterator[sa.Table]:
    """A fresh ``docs`` table: id, body, embedding vector(3), half halfvec(3)."""
    metadata = sa.MetaData()
    table = sa.Table(
        "docs",
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("body", sa.Text),
        sa.Column("embedding", VECTOR(3)),
        sa.Column("half", HALFVEC(3)),
    )
    metadata.create_all(pg)
    yield table
    metadata.drop_all(pg)


def count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def column_array(engine: sa.Engine, column: sa.Column[Any], dtype: type) -> np.ndarray:
    """The values of a vector column, ordered by id, as a 2-D array."""
    with engine.connect() as conn:
        values = conn.execute(sa.select(column).order_by(column.table.c.id)).scalars().all()
    return np.array(values, dtype=dtype)


def test_rows_of_tuples(pg: sa.Engine, docs: sa.Table) -> None:
    """Tuples in table-column order are written, with lists, arrays, pgvector objects, None."""
    rows = [
        (1, "one", [0.5, 1.5, -2.0], [1.0, 2.0, 3.0]),
        (2, "two", np.array([1, 2, 3], dtype=np.int64), np.array([0.25, 0.5, 0.75])),
        (3, None, Vector([7.0, 8.0, 9.0]), HalfVector([1.5, 2.5, 3.5])),
        (4, "nulls", None, None),
    ]
    assert load(pg, docs, rows) == 4
    with pg.connect() as conn:
        got = conn.execute(sa.select(docs).order_by(docs.c.id)).all()
    assert got == [
        (1, "one", [0.5, 1.5, -2.0], [1.0, 2.0, 3.0]),
        (2, "two", [1.0, 2.0, 3.0], [0.25, 0.5, 0.75]),
        (3, None, [7.0, 8.0, 9.0], [1.5, 2.5, 3.5]),
        (4, "nulls", None, None),
    ]


def test_columns_names_a_subset(pg: sa.Engine, docs: sa.Table) -> None:
    """columns= names the values given, in any order; the others get their defaults."""
    assert load(pg, docs, [([1.0, 2.0, 3.0], 10)], columns=["embedding", "id"]) == 1
    with pg.connect() as conn:
        assert conn.execute(sa.select(docs)).one() == (10, None, [1.0, 2.0, 3.0], None)


def test_dict_of_columns_round_trips_float32_exactly(pg: sa.Engine, docs: sa.Table) -> None:
    """A dict of columns with 2-D float32 arrays loads; the floats come back bit for bit."""
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((2_500, 3)).astype(np.float32) * 1e3
    halves = rng.standard_normal((2_500, 3)).astype(np.float32)
    n = load(
        pg,
        docs,
        {"id": np.arange(2_500), "body": [f"doc {i}" for i in range(2_500)],
         "embedding": vectors, "half": halves},
        batch_size=1_000,
    )  # fmt: skip
    assert n == 2_500
    assert np.array_equal(column_array(pg, docs.c.embedding, np.float32), vectors)
    # halfvec stores float16: the values are the float32 ones rounded to float16, exactly.
    assert np.array_equal(column_array(pg, docs.c.half, np.float16), halves.astype(np.float16))


def test_float64_and_list_columns(pg: sa.Engine, docs: sa.Table) -> None:
    """Float64 arrays and lists of lists are accepted and stored as float32."""
    vectors = np.array([[0.1, 0.2, 0.3], [1e-3, 2e30, -4.5]])
    load(pg, docs, {"id": [1, 2], "embedding": vectors, "half": [[1, 2, 3], [4, 5, 6]]})
    assert np.array_equal(
        column_array(pg, docs.c.embedding, np.float32), vectors.astype(np.float32)
    )
    assert column_array(pg, docs.c.half, np.float16).tolist() == [[1, 2, 3], [4, 5, 6]]
    objects = np.array([[1, 2, 3], [4.5, 5, 6]], dtype=object)
    load(pg, docs, {"id": [3, 4], "embedding": objects})
    assert column_array(pg, docs.c.embedding, np.float32)[2:].tolist() == objects.tolist()


@pytest.mark.slow
def test_generator_is_streamed_in_batches(pg: sa.Engine, docs: sa.Table) -> None:
    """25,000 rows from a generator load in batches: memory holds a batch, not the input."""
    dim = 3
    rng = np.random.default_rng(0)
    expected = rng.standard_normal((25_000, dim)).astype(np.float32)

    def rows() -> Iterator[tuple[int, str, np.ndarray]]:
        for i in range(25_000):
            # 4 KB of text per row: 100 MB if the rows were all held at once.
            yield i, f"{i:04096d}", expected[i]

    tracemalloc.start()
    try:
        n = load(pg, docs, rows(), columns=["id", "body", "embedding"], batch_size=1_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == 25_000
    assert count(pg, docs) == 25_000
    assert np.array_equal(column_array(pg, docs.c.embedding, np.float32), expected)
    assert peak < 30_000_000, f"peak {peak / 1e6:.0f} MB: rows are not streamed"


def test_wrong_dimension_in_a_later_batch_writes_nothing(pg: sa.Engine, docs: sa.Table) -> None:
    """A short vector in the third batch raises DimensionMismatch naming it; no row stays."""

    def rows() -> Iterator[tuple[int, list[float]]]:
        for i in range(5_000):
            yield i, [1.0, 2.0] if i == 2_345 else [1.0, 2.0, 3.0]

    with pytest.raises(
        DimensionMismatch, match=r"row 2345: docs\.embedding has 2 dimensions but the column has 3"
    ):
        load(pg, docs, rows(), columns=["id", "embedding"], batch_size=1_000)
    assert count(pg, docs) == 0


def test_wrong_dimension_in_a_numpy_column(pg: sa.Engine, docs: sa.Table) -> None:
    """A 2-D array of the wrong width raises DimensionMismatch before anything is written."""
    with pytest.raises(DimensionMismatch, match=r"row 0: docs\.embedding .* 4 dimensions"):
        load(pg, docs, {"id": [1, 2], "embedding": np.zeros((2, 4), dtype=np.float32)})
    assert count(pg, docs) == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), 1e39])
def test_non_finite_values_write_nothing(pg: sa.Engine, docs: sa.Table, bad: float) -> None:
    """NaN, ±infinity or a float64 beyond float32 range raise InvalidVector naming the row."""
    vectors = np.ones((3_000, 3))
    vectors[2_500, 1] = bad
    with pytest.raises(InvalidVector, match=r"row 2500: docs\.embedding has .* at index 1"):
        load(pg, docs, {"id": range(3_000), "embedding": vectors}, batch_size=1_000)
    assert count(pg, docs) == 0

    rows = [(i, [1.0, bad, 1.0] if i == 7 else [1.0, 1.0, 1.0]) for i in range(10)]
    with pytest.raises(InvalidVector, match=r"row 7: docs\.embedding"):
        load(pg, docs, rows, columns=["id", "embedding"])
    assert count(pg, docs) == 0


def test_halfvec_range_is_checked(pg: sa.Engine, docs: sa.Table) -> None:
    """A value beyond float16's range raises InvalidVector for a halfvec column."""
    with pytest.raises(InvalidVector, match=r"row 1: docs\.half has 70000.0 at index 2"):
        load(pg, docs, [(1, [1, 2, 3]), (2, [1, 2, 70_000])], columns=["id", "half"])
    assert count(pg, docs) == 0


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("[1,2,3]", InvalidVector, "not a str"),
        ([1, "x", 3], InvalidVector, "must be a list of numbers"),
        ([[1, 2, 3]], InvalidVector, "must be one-dimensional"),
        (5.0, InvalidVector, "must be one-dimensional"),
        ([1, 2, 3, 4], DimensionMismatch, "4 dimensions"),
    ],
)
def test_unreadable_vectors(
    pg: sa.Engine, docs: sa.Table, value: object, error: type[Exception], message: str
) -> None:
    """A vector that is not a flat list of numbers raises, naming the row; nothing is written."""
    rows = [(1, [1, 2, 3]), (2, value), (3, [1, 2, 3])]
    with pytest.raises(error, match=rf"row 1: docs\.embedding .*{message}"):
        load(pg, docs, rows, columns=["id", "embedding"])
    assert count(pg, docs) == 0


def test_engine_load_commits(pg: sa.Engine, docs: sa.Table) -> None:
    """With an engine the rows are committed: another connection sees them."""
    load(pg, docs, {"id": [1, 2, 3]})
    assert count(pg, docs) == 3


def test_connection_without_transaction_commits(pg: sa.Engine, docs: sa.Table) -> None:
    """On a connection outside a transaction, load begins and commits its own."""
    with pg.connect() as conn:
        assert not conn.in_transaction()
        load(conn, docs, {"id": [1, 2]})
        assert not conn.in_transaction()
    assert count(pg, docs) == 2


def test_failure_in_callers_transaction_keeps_earlier_work(pg: sa.Engine, docs: sa.Table) -> None:
    """Inside the caller's transaction a failed load rolls back to its savepoint only."""
    with pg.connect() as conn:
        conn.execute(docs.insert().values(id=1, body="mine"))
        with pytest.raises(DimensionMismatch, match="row 1"):
            load(conn, docs, [(2, [1, 2, 3]), (3, [1, 2])], columns=["id", "embedding"])
        # The transaction is still usable, and the load's first row is gone.
        load(conn, docs, [(4, [4, 5, 6])], columns=["id", "embedding"])
        assert count(pg, docs) == 0  # nothing committed yet: the caller decides
        conn.commit()
    with pg.connect() as conn:
        assert conn.execute(sa.select(docs.c.id, docs.c.body).order_by(docs.c.id)).all() == [
            (1, "mine"),
            (4, None),
        ]


def test_callers_rollback_undoes_the_load(pg: sa.Engine, docs: sa.Table) -> None:
    """A load in the caller's transaction is not committed behind the caller's back."""
    with pg.connect() as conn:
        conn.execute(sa.select(1))  # autobegins
        assert load(conn, docs, {"id": [1, 2, 3]}) == 3
        conn.rollback()
    assert count(pg, docs) == 0


def test_mapped_class(pg: sa.Engine) -> None:
    """A mapped class is accepted in place of its Table."""

    class Base(DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = "items"
        id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
        meta: Mapped[dict[str, Any]] = mapped_column(JSONB)
        embedding: Mapped[Any] = mapped_column(VECTOR(2))

    Base.metadata.create_all(pg)
    try:
        load(pg, Item, [(1, {"tags": ["a"]}, [1.0, 2.0])])
        with pg.connect() as conn:
            assert conn.execute(sa.select(Item.__table__)).one() == (1, {"tags": ["a"]}, [1.0, 2.0])
    finally:
        Base.metadata.drop_all(pg)


def test_sparsevec_bit_and_undimensioned_columns(pg: sa.Engine) -> None:
    """sparsevec, bit and a vector column without a dimension are checked and loaded."""
    metadata = sa.MetaData()
    table = sa.Table(
        "other_vectors",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sparse", SPARSEVEC(5)),
        sa.Column("bits", BIT(4)),
        sa.Column("free", VECTOR()),
    )
    metadata.create_all(pg)
    try:
        rows = [
            (1, SparseVector({0: 1.5, 4: -2.0}, 5), "1010", [1.0]),
            (2, [0.0, 0.0, 3.0, 0.0, 0.0], [True, False, False, True], [1.0, 2.0, 3.0]),
            (3, None, Bit("0001"), None),
        ]
        assert load(pg, table, rows) == 3
        with pg.connect() as conn:
            got = conn.execute(sa.select(table).order_by(table.c.id)).all()
        assert [r.sparse for r in got] == [
            SparseVector({0: 1.5, 4: -2.0}, 5),
            SparseVector({2: 3.0}, 5),
            None,
        ]
        assert [str(r.bits) for r in got] == ["1010", "1001", "0001"]
        assert [r.free for r in got] == [[1.0], [1.0, 2.0, 3.0], None]

        with pytest.raises(DimensionMismatch, match=r"row 0: other_vectors\.sparse .* 6"):
            load(pg, table, [(9, SparseVector({0: 1.0}, 6))], columns=["id", "sparse"])
        with pytest.raises(InvalidVector, match=r"row 0: other_vectors\.sparse .*non-finite"):
            load(pg, table, [(9, SparseVector({0: np.nan}, 5))], columns=["id", "sparse"])
        with pytest.raises(DimensionMismatch, match=r"row 1: other_vectors\.bits .* 3 bits"):
            load(pg, table, [(8, "1111"), (9, "101")], columns=["id", "bits"])
        with pytest.raises(InvalidVector, match=r"row 0: other_vectors\.free .* 0 dimensions"):
            load(pg, table, [(9, [])], columns=["id", "free"])
        assert count(pg, table) == 3
    finally:
        metadata.drop_all(pg)


def test_model_that_differs_from_the_database(pg: sa.Engine, docs: sa.Table) -> None:
    """A model declaring another dimension than the table has raises ConfigurationError."""
    stale = sa.Table(
        "docs", sa.MetaData(), sa.Column("id", sa.BigInteger), sa.Column("embedding", VECTOR(4))
    )
    with pytest.raises(ConfigurationError, match=r"vector\(4\) in the table .* vector\(3\)"):
        load(pg, stale, [(1, [1, 2, 3, 4])])
    missing = sa.Table(
        "docs", sa.MetaData(), sa.Column("id", sa.BigInteger), sa.Column("nope", sa.Text)
    )
    with pytest.raises(ConfigurationError, match=r"'nope' .* does not exist"):
        load(pg, missing, [(1, "x")])
    assert count(pg, docs) == 0


def test_argument_errors_are_raised_before_any_sql(docs: sa.Table) -> None:
    """Bad arguments raise before a connection is used (an unusable engine would fail)."""
    sqlite = sa.create_engine("sqlite://")
    with pytest.raises(ConfigurationError, match="psycopg"):
        load(sqlite, docs, [(1, "x", None, None)])
    with pytest.raises(InvalidRows, match="no column 'nope'"):
        load(sqlite, docs, [(1,)], columns=["nope"])
    with pytest.raises(InvalidRows, match="different lengths"):
        load(sqlite, docs, {"id": [1, 2], "body": ["a"]})
    with pytest.raises(InvalidRows, match="batch_size"):
        load(sqlite, docs, [], batch_size=0)
    with pytest.raises(InvalidRows, match="columns= is for rows"):
        load(sqlite, docs, {"id": [1]}, columns=["id"])
    with pytest.raises(InvalidArgument, match="mapped class"):
        load(sqlite, object, [])
    sqlite.dispose()


def test_rows_of_the_wrong_width(pg: sa.Engine, docs: sa.Table) -> None:
    """A row with too few values raises ValueError naming it, and suggests columns=."""
    with pytest.raises(InvalidRows, match=r"row 1 has 2 values, expected 4; name the columns"):
        load(pg, docs, [(1, "a", None, None), (2, "b")])
    with pytest.raises(InvalidRows, match=r"row 0 has a dict"):
        load(pg, docs, [{"id": 1}], columns=["id"])  # type: ignore[list-item]
    assert count(pg, docs) == 0


def test_empty_input(pg: sa.Engine, docs: sa.Table) -> None:
    """No rows: nothing is written and 0 is returned."""
    assert load(pg, docs, []) == 0
    assert load(pg, docs, {"id": [], "embedding": np.empty((0, 3), dtype=np.float32)}) == 0
    assert count(pg, docs) == 0


# -- the result -------------------------------------------------------------------------


def test_result_is_the_count(pg: sa.Engine, docs: sa.Table) -> None:
    """load() returns a LoadResult: an int wherever the count was used, with timings."""
    result = load(pg, docs, {"id": range(1_234)})
    assert isinstance(result, LoadResult)
    assert isinstance(result, int)
    assert result == 1_234
    assert result + 1 == 1_235
    assert f"{result:,} rows" == "1,234 rows"
    assert f"{result}" == str(result) == "1234"
    assert result.rows == 1_234
    assert type(result.rows) is int
    assert result.received == 1_234
    assert result.seconds > 0
    assert result.indexes_rebuilt == []
    assert repr(result).startswith("LoadResult(rows=1234, received=1234, seconds=")
    copied = pickle.loads(pickle.dumps(result))
    assert (copied, copied.received, copied.seconds) == (1_234, 1_234, result.seconds)
    with pytest.raises(AttributeError):
        result.rows = 5  # type: ignore[misc]


def test_load_refuses_async_arguments(pg: sa.Engine, docs: sa.Table) -> None:
    """An async iterable or an AsyncEngine given to load() points to aload()."""

    async def rows() -> Any:
        yield (1,)

    gen = rows()
    with pytest.raises(InvalidArgument, match=r"async iterable; load it with await aload"):
        load(pg, docs, gen, columns=["id"])
    aengine = vecalchemy.create_async_engine(pg.url.set(drivername="postgresql+asyncpg"))
    with pytest.raises(InvalidArgument, match=r"got an AsyncEngine; use await aload"):
        load(aengine, docs, [(1,)], columns=["id"])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="bind must be"):
        load("postgresql://", docs, [(1,)], columns=["id"])  # type: ignore[arg-type]
    assert count(pg, docs) == 0


def test_missing_table(connection: sa.Connection) -> None:
    """A table that is not in the database raises ConfigurationError saying to create it."""
    table = sa.Table("no_such_table", sa.MetaData(), sa.Column("id", sa.Integer))
    with pytest.raises(ConfigurationError, match=r"'no_such_table' does not exist .* create"):
        load(connection, table, [(1,)])


def test_zero_vectors_are_refused_only_in_cosine_columns(connection: sa.Connection) -> None:
    """A zero vector has no direction: loading one into a cosine column names the row and
    writes nothing; an l2 column takes it (the same validator as queries and ORM writes)."""
    metadata = sa.MetaData()
    table = sa.Table(
        "zero_docs",
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True),
        vecalchemy.embedding_column("cos", 4, metric="cosine", index=None),
        vecalchemy.embedding_column("l2", 4, metric="l2", index=None),
    )
    metadata.create_all(connection)
    good = np.ones((3, 4), dtype=np.float32)
    zero = good.copy()
    zero[1] = 0
    with pytest.raises(InvalidVector, match=r"row 1: zero_docs\.cos is all zeros"):
        load(connection, table, {"id": [1, 2, 3], "cos": zero, "l2": good})
    assert connection.execute(sa.text("SELECT count(*) FROM zero_docs")).scalar() == 0
    assert load(connection, table, {"id": [1, 2, 3], "cos": good, "l2": zero}) == 3


# -- deferring the vector indexes ---------------------------------------------------------


@pytest.fixture
def indexed(connection: sa.Connection) -> sa.Table:
    """``indexed_docs`` with an HNSW index (created with the table), in the test's transaction."""
    metadata = sa.MetaData()
    table = sa.Table(
        "indexed_docs",
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True),
        vecalchemy.embedding_column("embedding", 8, metric="l2", index=vecalchemy.HNSW()),
    )
    metadata.create_all(connection)
    return table


HNSW_NAME = "ix_indexed_docs_embedding_hnsw"


def index_oid(conn: sa.Connection, name: str) -> int | None:
    """The oid of an index (a new one each time it is rebuilt), None when it does not exist."""
    found = conn.execute(sa.text("SELECT to_regclass(:n)::oid"), {"n": name}).scalar()
    return None if found is None else int(found)


def vectors(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def test_defer_drops_and_rebuilds_the_hnsw_index(
    connection: sa.Connection, indexed: sa.Table
) -> None:
    """indexes='defer' rebuilds the HNSW index after the load; queries use it again."""
    before = index_oid(connection, HNSW_NAME)
    assert before is not None
    result = load(
        connection, indexed, {"id": range(2_000), "embedding": vectors(2_000)}, indexes="defer"
    )
    assert result == 2_000
    assert result.indexes_rebuilt == [HNSW_NAME]
    after = index_oid(connection, HNSW_NAME)
    assert after is not None
    assert after != before  # dropped, then built anew
    assert (
        connection.execute(
            sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": HNSW_NAME}
        )
        .scalar_one()
        .endswith("USING hnsw (embedding vector_l2_ops) WITH (m='16', ef_construction='64')")
    )
    connection.execute(sa.text("SET LOCAL enable_seqscan = off"))
    stmt = vecalchemy.nearest(indexed.c.embedding, vectors(1)[0], k=5)
    assert vecalchemy.index_used(connection, stmt) == HNSW_NAME
    assert len(connection.execute(stmt).all()) == 5


def test_keep_leaves_the_index_alone(connection: sa.Connection, indexed: sa.Table) -> None:
    """indexes='keep' (the default) loads into the live index and rebuilds nothing."""
    before = index_oid(connection, HNSW_NAME)
    result = load(connection, indexed, {"id": range(100), "embedding": vectors(100)})
    assert (result, result.indexes_rebuilt) == (100, [])
    assert index_oid(connection, HNSW_NAME) == before


def test_failed_deferred_load_keeps_the_index(connection: sa.Connection, indexed: sa.Table) -> None:
    """A bad row in a later batch rolls back the drop too: same index, no rows."""
    before = index_oid(connection, HNSW_NAME)
    data = vectors(3_000)
    data[2_222, 3] = np.nan
    with pytest.raises(InvalidVector, match=r"row 2222: indexed_docs\.embedding"):
        load(
            connection,
            indexed,
            {"id": range(3_000), "embedding": data},
            indexes="defer",
            batch_size=1_000,
        )
    assert index_oid(connection, HNSW_NAME) == before
    assert connection.execute(sa.select(sa.func.count()).select_from(indexed)).scalar() == 0


def test_defer_builds_ivfflat_from_the_row_count(connection: sa.Connection) -> None:
    """IVFFlat (skipped by create_all) is built after a deferred load, lists from the rows."""
    metadata = sa.MetaData()
    table = sa.Table(
        "ivf_docs",
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True),
        vecalchemy.embedding_column("embedding", 8, index=vecalchemy.IVFFlat()),
    )
    metadata.create_all(connection)
    assert index_oid(connection, "ix_ivf_docs_embedding_ivfflat") is None
    with pytest.raises(IndexBuildError, match="no rows"):
        load(connection, table, [], indexes="defer")  # nothing to train the lists on
    result = load(
        connection, table, {"id": range(3_000), "embedding": vectors(3_000)}, indexes="defer"
    )
    assert result.indexes_rebuilt == ["ix_ivf_docs_embedding_ivfflat"]
    indexdef = connection.execute(
        sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_ivf_docs_embedding_ivfflat'")
    ).scalar_one()
    assert "lists='3'" in indexdef


# -- upserts --------------------------------------------------------------------------


@pytest.fixture
def items(connection: sa.Connection) -> sa.Table:
    """``items``: serial id, unique slug, body NOT NULL, meta, embedding vector(3); 3 rows."""
    metadata = sa.MetaData()
    table = sa.Table(
        "items",
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("slug", sa.Text, unique=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("meta", JSONB),
        sa.Column("embedding", VECTOR(3)),
    )
    metadata.create_all(connection)
    connection.execute(
        table.insert(),
        [
            {"slug": f"s{i}", "body": "old", "meta": {"n": i}, "embedding": [i, i, i]}
            for i in (1, 2, 3)  # ids 1, 2, 3 from the table's sequence
        ],
    )
    return table


def rows_of(conn: sa.Connection, table: sa.Table) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(sa.select(table).order_by(table.c.id))]


def test_upsert_update_inserts_new_and_updates_existing(
    connection: sa.Connection, items: sa.Table
) -> None:
    """on_conflict='update' updates the loaded columns of existing keys, inserts the rest."""
    result = load(
        connection,
        items,
        [(2, "new 2", [20, 20, 20]), (4, "new 4", [4, 4, 4]), (3, "new 3", [30, 30, 30])],
        columns=["id", "body", "embedding"],
        on_conflict="update",
    )
    assert (result, result.received) == (3, 3)  # 1 inserted + 2 updated
    assert rows_of(connection, items) == [
        (1, "s1", "old", {"n": 1}, [1, 1, 1]),
        (2, "s2", "new 2", {"n": 2}, [20, 20, 20]),  # slug and meta were not loaded: kept
        (3, "s3", "new 3", {"n": 3}, [30, 30, 30]),
        (4, None, "new 4", None, [4, 4, 4]),
    ]


def test_upsert_ignore_keeps_existing_rows(connection: sa.Connection, items: sa.Table) -> None:
    """on_conflict='ignore' inserts the new keys only; the result counts them alone."""
    result = load(
        connection,
        items,
        {"id": [3, 5, 1], "body": ["x", "y", "z"], "embedding": np.ones((3, 3))},
        on_conflict="ignore",
    )
    assert (result, result.received) == (1, 3)
    assert rows_of(connection, items)[2:] == [
        (3, "s3", "old", {"n": 3}, [3, 3, 3]),
        (5, None, "y", None, [1, 1, 1]),
    ]


@pytest.mark.parametrize("mode", ["ignore", "update"])
def test_duplicate_key_within_the_load(
    connection: sa.Connection, items: sa.Table, mode: Any
) -> None:
    """A key given twice in one load raises InvalidRows naming both rows; nothing is written."""
    before = rows_of(connection, items)
    rows = [(i, "b", [1, 1, 1]) for i in (7, 2, 8, 9, 2, 10)]
    with pytest.raises(InvalidRows, match=r"rows 1 and 4 have the same key \(id\)=\(2\)"):
        load(connection, items, rows, columns=["id", "body", "embedding"], on_conflict=mode)
    many = [(5, "b", None)] * 9
    with pytest.raises(InvalidRows, match=r"rows 0, 1, 2, 3, 4 and 4 more .*\(id\)=\(5\)"):
        load(connection, items, many, columns=["id", "body", "embedding"], on_conflict=mode)
    assert rows_of(connection, items) == before


def test_upsert_on_a_unique_column(connection: sa.Connection, items: sa.Table) -> None:
    """conflict_columns names another unique key; NULL keys never conflict."""
    result = load(
        connection,
        items,
        {
            "slug": ["s2", "s9", None, None],
            "body": ["by slug", "nine", "n1", "n2"],
            "embedding": [[2, 0, 0], [9, 9, 9], None, None],
        },
        on_conflict="update",
        conflict_columns=["slug"],
    )
    assert result == 4
    got = {r.slug: (r.body, r.embedding) for r in connection.execute(sa.select(items)) if r.slug}
    assert got["s2"] == ("by slug", [2, 0, 0])
    assert got["s9"] == ("nine", [9, 9, 9])
    assert (
        connection.execute(
            sa.select(sa.func.count()).select_from(items).where(items.c.slug.is_(None))
        ).scalar()
        == 2
    )


def test_upsert_needs_a_unique_key(connection: sa.Connection, items: sa.Table) -> None:
    """conflict_columns without a unique index raises ConfigurationError before copying."""
    with pytest.raises(
        ConfigurationError, match=r"unique index or constraint on \(body\) .*\(id\), \(slug\)"
    ):
        load(
            connection,
            items,
            [(9, "old")],
            columns=["id", "body"],
            on_conflict="ignore",
            conflict_columns=["body"],
        )
    assert len(rows_of(connection, items)) == 3


def test_upsert_failure_writes_nothing(connection: sa.Connection, items: sa.Table) -> None:
    """A bad vector, or an INSERT the table refuses, leaves the table and the caller's work."""
    connection.execute(items.insert().values(id=10, body="mine"))
    before = rows_of(connection, items)
    data = np.ones((2_500, 3))
    data[2_100] = [1, np.inf, 1]
    with pytest.raises(InvalidVector, match=r"row 2100: items\.embedding"):
        load(
            connection,
            items,
            {"id": range(2_500), "body": ["x"] * 2_500, "embedding": data},
            on_conflict="update",
            batch_size=1_000,
        )
    assert rows_of(connection, items) == before
    # body is NOT NULL: the new row 11 fails in the INSERT, after row 2 was updated.
    with pytest.raises(sa.exc.IntegrityError, match="null value in column"):
        load(
            connection,
            items,
            [(2, [5, 5, 5]), (11, [1, 1, 1])],
            columns=["id", "embedding"],
            on_conflict="update",
        )
    assert rows_of(connection, items) == before
    # The transaction is usable, and a second upsert in it reuses the staging table's name.
    assert (
        load(connection, items, [(2, "again")], columns=["id", "body"], on_conflict="update") == 1
    )
    assert (
        load(connection, items, [(2, "twice")], columns=["id", "body"], on_conflict="update") == 1
    )
    assert rows_of(connection, items)[1][2] == "twice"


def test_upsert_into_committed_table(pg: sa.Engine, docs: sa.Table) -> None:
    """With an engine the upsert commits; an empty upsert writes nothing and returns 0."""
    load(pg, docs, {"id": [1, 2], "body": ["a", "b"]})
    result = load(pg, docs, {"id": [2, 3], "body": ["B", "C"]}, on_conflict="update")
    assert (result, result.received) == (2, 2)
    with pg.connect() as conn:
        assert conn.execute(sa.select(docs.c.id, docs.c.body).order_by(docs.c.id)).all() == [
            (1, "a"),
            (2, "B"),
            (3, "C"),
        ]
    assert load(pg, docs, [], columns=["id"], on_conflict="ignore") == 0


def test_conflict_on_error_mode_is_the_drivers_error(pg: sa.Engine, docs: sa.Table) -> None:
    """on_conflict='error' (the default): an existing key fails the load; nothing is written."""
    load(pg, docs, {"id": [1]})
    with pytest.raises(Exception, match="duplicate key value violates unique constraint"):
        load(pg, docs, {"id": [2, 1]})
    assert count(pg, docs) == 1


def test_load_option_errors_are_raised_before_any_sql(docs: sa.Table) -> None:
    """Wrong indexes=/on_conflict=/conflict_columns= raise before a connection is used."""
    sqlite = sa.create_engine("sqlite://")
    rows = [(1, "x")]
    cols = ["id", "body"]
    with pytest.raises(InvalidRows, match="indexes must be 'keep' or 'defer'"):
        load(sqlite, docs, rows, columns=cols, indexes="drop")  # type: ignore[arg-type]
    with pytest.raises(InvalidRows, match="on_conflict must be"):
        load(sqlite, docs, rows, columns=cols, on_conflict="merge")  # type: ignore[arg-type]
    with pytest.raises(InvalidRows, match="conflict_columns= goes with"):
        load(sqlite, docs, rows, columns=cols, conflict_columns=["id"])
    with pytest.raises(InvalidRows, match=r"\['id'\] are not among the loaded columns"):
        load(sqlite, docs, [("x",)], columns=["body"], on_conflict="ignore")
    with pytest.raises(InvalidRows, match="nothing to update"):
        load(sqlite, docs, [(1,)], columns=["id"], on_conflict="update")
    with pytest.raises(InvalidRows, match="list of column names"):
        load(sqlite, docs, rows, columns=cols, on_conflict="ignore", conflict_columns="id")
    with pytest.raises(InvalidRows, match="no column 'nope'"):
        load(sqlite, docs, rows, columns=cols, on_conflict="ignore", conflict_columns=["nope"])
    keyless = sa.Table("keyless", sa.MetaData(), sa.Column("a", sa.Integer))
    with pytest.raises(InvalidRows, match=r"no primary key .* conflict_columns"):
        load(sqlite, keyless, [(1,)], on_conflict="update")
    sqlite.dispose()
