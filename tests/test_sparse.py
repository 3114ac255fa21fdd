"""sparsevec end to end: declare, load (binary COPY), index, search, and bad input refused early."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from pgvector import SparseVector
from sqlalchemy import Connection, Engine, event
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from tests.conftest import explain
from vecalchemy import Embedding, asearch, nearest, search
from vecalchemy.errors import DimensionMismatch, InvalidVector

VOCAB = 30_000
N = 200
METRICS = ["inner_product", "cosine", "l2", "l1"]
COLUMNS = {"inner_product": "ip", "cosine": "cos", "l2": "l2", "l1": "l1"}

rng = np.random.default_rng(7)


def random_sparse(rng: np.random.Generator) -> dict[int, float]:
    """About 20 weights from a 500-word "common" vocabulary, plus two anywhere in 30,000."""
    common = rng.choice(500, size=rng.integers(5, 30), replace=False)
    rare = rng.choice(VOCAB, size=2, replace=False)
    idx = np.unique(np.concatenate([common, rare]))
    weights = rng.uniform(0.1, 2.0, size=len(idx)).astype(np.float32)  # as stored
    return {int(i): float(w) for i, w in zip(idx, weights, strict=True)}


SPARSE = [random_sparse(rng) for _ in range(N)]
DENSE = np.zeros((N, VOCAB), dtype=np.float32)
for _row, _weights in enumerate(SPARSE):
    for _i, _w in _weights.items():
        DENSE[_row, _i] = _w


class Base(DeclarativeBase):
    pass


class Sparse(Base):
    """Loaded once for the module (committed), searched by the read-only tests."""

    __tablename__ = "sparse_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    ip = Embedding(VOCAB, storage="sparsevec", metric="inner_product")
    cos = Embedding(VOCAB, storage="sparsevec", metric="cosine")
    l2 = Embedding(VOCAB, storage="sparsevec", metric="l2")
    l1 = Embedding(VOCAB, storage="sparsevec", metric="l1")


class ScratchBase(DeclarativeBase):
    pass


class Scratch(ScratchBase):
    """Created in each test's transaction, for the tests that write."""

    __tablename__ = "sparse_scratch"
    id: Mapped[int] = mapped_column(primary_key=True)
    ip = Embedding(VOCAB, storage="sparsevec", metric="inner_product")
    cos = Embedding(VOCAB, storage="sparsevec", metric="cosine")
    l2 = Embedding(VOCAB, storage="sparsevec", metric="l2")
    l1 = Embedding(VOCAB, storage="sparsevec", metric="l1")
    unindexed = Embedding(VOCAB, storage="sparsevec", metric="inner_product", index=None)


def exact_distances(metric: str, q: np.ndarray) -> np.ndarray:
    """pgvector's distance from every row to ``q``, computed densely in float64."""
    d = DENSE.astype(np.float64)
    q = q.astype(np.float64)
    if metric == "inner_product":
        return -(d @ q)
    if metric == "cosine":
        return 1 - (d @ q) / (np.linalg.norm(d, axis=1) * np.linalg.norm(q))
    if metric == "l2":
        return np.linalg.norm(d - q, axis=1)
    return np.abs(d - q).sum(axis=1)


def all_rows() -> dict[str, Any]:
    """Every row, each vector column given in other forms load() accepts."""
    return {
        "id": list(range(N)),
        "ip": [SparseVector(w, VOCAB) for w in SPARSE],  # pgvector objects
        "cos": [dict(w) for w in SPARSE],  # {index: weight}
        # Dense rows (numpy, lists) for some rows only: 30,000 floats each are slow to scan.
        "l2": [DENSE[i] if i % 10 == 0 else SparseVector(w, VOCAB) for i, w in enumerate(SPARSE)],
        "l1": [DENSE[i].tolist() if i % 10 == 5 else dict(w) for i, w in enumerate(SPARSE)],
    }


@pytest.fixture(scope="module")
def committed(engine: Engine) -> Iterator[None]:
    """sparse_docs with N rows loaded by binary COPY, once for the module (committed)."""
    Base.metadata.create_all(engine)
    try:
        assert vecalchemy.load(engine, Sparse, all_rows()) == N
        yield
    finally:
        Base.metadata.drop_all(engine)


@pytest.fixture
def loaded(committed: None, session: Session) -> Session:
    """A session on the loaded sparse_docs."""
    return session


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement sent through the engine during the test."""
    sent: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", capture)
    yield sent
    event.remove(engine, "before_cursor_execute", capture)


def same(a: SparseVector | None, b: SparseVector) -> bool:
    """Equal as stored: same dimensions and indices, values equal as float32.

    Drivers that read sparsevec as text get float32's shortest decimal form back.
    """
    assert a is not None
    return (
        a.dimensions() == b.dimensions()
        and a.indices() == b.indices()
        and np.array_equal(
            np.asarray(a.values(), dtype=np.float32), np.asarray(b.values(), dtype=np.float32)
        )
    )


def count(conn: Connection | Session) -> int:
    return int(conn.execute(sa.text("SELECT count(*) FROM sparse_scratch")).scalar_one())


def test_every_form_loads_the_same_vectors(loaded: Session) -> None:
    """SparseVector, dict and dense rows all store the same sparse vector."""
    rows = loaded.execute(
        sa.select(Sparse.id, Sparse.ip, Sparse.cos, Sparse.l2, Sparse.l1).order_by(Sparse.id)
    ).all()
    assert len(rows) == N
    for row in rows:
        want = SparseVector(SPARSE[row.id], VOCAB)
        assert same(row.ip, want)
        assert same(row.cos, want)
        assert same(row.l2, want)
        assert same(row.l1, want)


def test_hnsw_indexes_are_built(loaded: Session) -> None:
    """Each indexed sparse column has an HNSW index with the metric's sparsevec opclass."""
    defs = loaded.execute(
        sa.text("SELECT indexdef FROM pg_indexes WHERE tablename = 'sparse_docs'")
    ).scalars()
    hnsw = sorted(d.split(" USING ")[1] for d in defs if "hnsw" in d)
    assert hnsw == [
        "hnsw (cos sparsevec_cosine_ops) WITH (m='16', ef_construction='64')",
        "hnsw (ip sparsevec_ip_ops) WITH (m='16', ef_construction='64')",
        "hnsw (l1 sparsevec_l1_ops) WITH (m='16', ef_construction='64')",
        "hnsw (l2 sparsevec_l2_ops) WITH (m='16', ef_construction='64')",
    ]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("form", ["sparse", "dict", "dense"])
def test_search_equals_brute_force(loaded: Session, metric: str, form: str) -> None:
    """Hits are the exact nearest rows (ef_search covers the whole table), nearest first."""
    column = getattr(Sparse, COLUMNS[metric])
    local = np.random.default_rng(METRICS.index(metric))
    for trial in range(3):
        base = SPARSE[trial * 37]
        # A noisy copy of a row: it shares indices with many rows, so distances differ.
        weights = {i: w * float(local.uniform(0.5, 1.5)) for i, w in base.items()}
        weights[int(local.integers(VOCAB))] = 0.7
        q = np.zeros(VOCAB, dtype=np.float32)
        for i, w in weights.items():
            q[i] = w
        query: Any = {
            "sparse": SparseVector(weights, VOCAB),
            "dict": weights,
            "dense": q,
        }[form]
        hits = search(loaded, column, query, k=10, ef_search=N)
        exact = exact_distances(metric, q)
        order = np.argsort(exact, kind="stable")
        assert [h.distance for h in hits] == pytest.approx(exact[order[:10]], rel=1e-4, abs=1e-4)
        # Ids must match wherever the 10th distance is not tied with the 11th.
        strict = [int(i) for i in order[:10] if exact[i] < exact[order[10]] - 1e-4]
        assert set(strict) <= {h.row.id for h in hits}
        if metric != "inner_product":  # a longer row can have a larger inner product
            assert hits[0].row.id == trial * 37


@pytest.mark.parametrize("metric", METRICS)
def test_plan_uses_the_sparsevec_hnsw_index(loaded: Session, metric: str) -> None:
    """EXPLAIN shows an Index Scan on the column's sparsevec HNSW index."""
    name = COLUMNS[metric]
    plan = explain(loaded, nearest(getattr(Sparse, name), SPARSE[3], k=5))
    assert f"Index Scan using ix_sparse_docs_{name}_hnsw on sparse_docs" in plan, plan
    assert "::sparsevec(30000)" in plan


def test_similarity_direction(loaded: Session) -> None:
    """For sparsevec too, similarity is the inner product / cosine similarity, nearest first."""
    q = SparseVector(SPARSE[5], VOCAB)
    ip = search(loaded, Sparse.ip, q, k=3, ef_search=N)
    assert ip[0].row.id == 5
    assert ip[0].similarity == pytest.approx(sum(w * w for w in SPARSE[5].values()), rel=1e-5)
    assert all(h.similarity == pytest.approx(-h.distance) for h in ip)
    cos = search(loaded, Sparse.cos, q, k=3, ef_search=N)
    assert cos[0].row.id == 5
    assert cos[0].similarity == pytest.approx(1.0, abs=1e-5)


# -- bad input, refused before anything is written ----------------------------------------

TOO_MANY = dict.fromkeys(range(1001), 1.0)


LOAD_ERRORS: list[tuple[str, Any, type[Exception], str]] = [
    (
        "ip",
        SparseVector(TOO_MANY, VOCAB),
        InvalidVector,
        r"row 1: sparse_scratch\.ip has 1,001 non-zero elements, but pgvector's HNSW index on "
        r"sparsevec takes at most 1,000 per row; keep the 1,000 largest weights, or declare "
        r"the column with index=None \(exact search only\); nothing was loaded",
    ),
    ("cos", dict(TOO_MANY), InvalidVector, r"row 1: sparse_scratch\.cos has 1,001 non-zero"),
    (
        "ip",
        SparseVector({0: 1.0}, VOCAB - 1),
        DimensionMismatch,
        r"row 1: sparse_scratch\.ip has 29999 dimensions but the column has 30000; "
        r"nothing was loaded",
    ),
    ("l2", [1.0, 2.0, 3.0], DimensionMismatch, r"row 1: sparse_scratch\.l2 has 3 dimensions"),
    (
        "ip",
        SparseVector({3: float("nan")}, VOCAB),
        InvalidVector,
        r"row 1: sparse_scratch\.ip has a non-finite value \(nan\) at index 3; embeddings must",
    ),
    ("cos", {3: float("inf")}, InvalidVector, r"row 1: sparse_scratch\.cos has a non-finite value"),
    (
        "ip",
        SparseVector({VOCAB: 1.0}, VOCAB),
        InvalidVector,
        r"row 1: sparse_scratch\.ip has index 30000, out of range: a sparse vector of 30,000 "
        r"dimensions takes indices 0 to 29,999 \(0-based\); nothing was loaded",
    ),
    ("cos", {-1: 1.0}, InvalidVector, r"row 1: sparse_scratch\.cos has index -1, out of range"),
    ("l1", {VOCAB + 5: 1.0}, InvalidVector, r"row 1: sparse_scratch\.l1 has index 30005, out of"),
    (
        "ip",
        SparseVector.from_text("{2:1,2:3}/30000"),
        InvalidVector,
        r"row 1: sparse_scratch\.ip has index 1 more than once; give each index once; nothing",
    ),
    (
        "ip",
        {"a": 1.0},
        InvalidVector,
        r"row 1: sparse_scratch\.ip as a dict must map integer indices",
    ),
    ("ip", "{1:1}/30000", InvalidVector, r"row 1: sparse_scratch\.ip needs a SparseVector"),
]


@pytest.mark.parametrize(("column", "value", "error", "message"), LOAD_ERRORS)
def test_bad_rows_fail_and_write_nothing(
    session: Session,
    column: str,
    value: Any,
    error: type[Exception],
    message: str,
) -> None:
    """A bad sparse vector after a good one: a clear error naming the row, no row written."""
    conn = session.connection()
    ScratchBase.metadata.create_all(conn)
    rows = [(0, SparseVector({1: 1.0}, VOCAB)), (1, value)]
    with pytest.raises(error, match=message):
        vecalchemy.load(conn, Scratch, rows, columns=["id", column])
    assert count(conn) == 0


def test_pgvector_refuses_over_1000_nonzeros_in_an_index(session: Session) -> None:
    """Without vecalchemy's check (a plain INSERT), pgvector itself refuses the row."""
    conn = session.connection()
    ScratchBase.metadata.create_all(conn)
    too_many = "sparsevec cannot have more than 1000 non-zero elements for hnsw index"
    row = {"id": 1, "ip": SparseVector(TOO_MANY, VOCAB)}
    with pytest.raises(sa.exc.OperationalError, match=too_many), conn.begin_nested():
        conn.execute(sa.insert(Scratch), row)
    assert count(conn) == 0


def test_over_1000_nonzeros_without_an_index(session: Session) -> None:
    """A column declared with index=None stores any number of non-zeros (exact search only)."""
    conn = session.connection()
    ScratchBase.metadata.create_all(conn)
    big = {i: float(i + 1) for i in range(0, 6000, 3)}  # 2,000 non-zeros
    vecalchemy.load(conn, Scratch, [(1, big)], columns=["id", "unindexed"])
    stored = conn.execute(sa.select(Scratch.unindexed)).scalar_one()
    assert stored == SparseVector(big, VOCAB)
    hits = search(session, Scratch.unindexed, {0: 1.0, 3: 1.0}, k=1)
    assert hits[0].similarity == pytest.approx(1.0 + 4.0)  # weights at 0 and 3
    # And a query with more than 1,000 non-zeros is fine against an HNSW index.
    vecalchemy.load(conn, Scratch, [(2, SPARSE[0])], columns=["id", "ip"])
    assert search(session, Scratch.ip, big, k=1)[0].row.id == 2


def test_unsorted_indices_and_explicit_zeros_are_normalised(session: Session) -> None:
    """Unsorted indices are sorted, zero weights dropped: pgvector's binary input refuses both."""
    conn = session.connection()
    ScratchBase.metadata.create_all(conn)
    rows = [
        (1, SparseVector.from_text("{5:1.5,3:2}/30000")),
        (2, SparseVector.from_text("{1:0,2:3}/30000")),
        (3, {7: 0.0, 9: 1e-50, 11: 2.0}),  # 1e-50 is 0 in float32, as sent
    ]
    vecalchemy.load(conn, Scratch, rows, columns=["id", "ip"])
    stored = conn.execute(sa.select(Scratch.ip).order_by(Scratch.id)).scalars().all()
    assert stored == [
        SparseVector({2: 2.0, 4: 1.5}, VOCAB),
        SparseVector({1: 3.0}, VOCAB),
        SparseVector({11: 2.0}, VOCAB),
    ]
    # The same for a query vector.
    hits = search(session, Scratch.ip, SparseVector.from_text("{5:1,3:0}/30000"), k=1)
    assert hits[0].row.id == 1


QUERY_ERRORS: list[tuple[Any, type[Exception], str]] = [
    (
        SparseVector({VOCAB: 1.0}, VOCAB),
        InvalidVector,
        r"query vector has index 30000, out of range: a sparse vector of 30,000 dimensions",
    ),
    ({-3: 1.0}, InvalidVector, r"query vector has index -3, out of range"),
    (SparseVector.from_text("{2:1,2:3}/30000"), InvalidVector, r"index 1 more than once"),
    ({"x": 1.0}, InvalidVector, r"query vector as a dict must map integer indices to numbers"),
    ({1: "heavy"}, InvalidVector, r"query vector as a dict must map integer indices"),
    (
        SparseVector({1: 1.0}, 100),
        DimensionMismatch,
        r"query vector has 100 dimensions but column sparse_docs\.cos has 30000",
    ),
    ([1.0, 2.0], DimensionMismatch, r"query vector has 2 dimensions but column sparse_docs\.cos"),
    ({4: float("nan")}, InvalidVector, r"query vector has a non-finite value \(nan\) at index 4"),
    ({}, InvalidVector, r"query vector is all zeros; a zero vector has no direction"),
]


@pytest.mark.parametrize(("query", "error", "message"), QUERY_ERRORS)
def test_bad_query_vectors_fail_before_sql(
    loaded: Session, statements: list[str], query: Any, error: type[Exception], message: str
) -> None:
    """A bad sparse query vector raises a clear error and sends no SQL at all."""
    statements.clear()
    with pytest.raises(error, match=message):
        search(loaded, Sparse.cos, query, k=3)
    assert statements == []


# -- async drivers -----------------------------------------------------------------------


async def test_async_load_and_search(async_connection: AsyncConnection) -> None:
    """aload (binary COPY) and asearch work with sparsevec on psycopg async and asyncpg."""
    await async_connection.run_sync(ScratchBase.metadata.create_all)
    rows = {
        "id": list(range(N)),
        "ip": [SparseVector(w, VOCAB) for w in SPARSE],
        "cos": [dict(w) for w in SPARSE],
    }
    assert await vecalchemy.aload(async_connection, Scratch, rows) == N
    stored = (
        await async_connection.execute(sa.select(Scratch.cos).where(Scratch.id == 9))
    ).scalar()
    assert same(stored, SparseVector(SPARSE[9], VOCAB))

    q = dict(SPARSE[9])
    for column, metric in ((Scratch.ip, "inner_product"), (Scratch.cos, "cosine")):
        hits = await asearch(async_connection, column, q, k=5, ef_search=N)
        dense_q = DENSE[9]
        exact = exact_distances(metric, dense_q)
        assert [h.distance for h in hits] == pytest.approx(np.sort(exact)[:5], rel=1e-4, abs=1e-4)
        assert hits[0].row.id == 9

    with pytest.raises(
        InvalidVector, match=r"row 0: sparse_scratch\.ip has 1,001 non-zero elements"
    ):
        await vecalchemy.aload(async_connection, Scratch, [(N + 1, TOO_MANY)], columns=["id", "ip"])
    total = await async_connection.execute(sa.text("SELECT count(*) FROM sparse_scratch"))
    assert total.scalar() == N
