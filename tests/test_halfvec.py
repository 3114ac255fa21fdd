"""halfvec: half the bytes, indexed and searched like vector; and 3,072-d vectors via halfvec."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from tests.conftest import explain
from vecalchemy import HNSW, Embedding, nearest, search
from vecalchemy.errors import InvalidVector
from vecalchemy.metrics import Storage

DIM = 384
N = 300
rng = np.random.default_rng(31)
VECS = rng.normal(size=(N, DIM)).astype(np.float32)


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "half_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    half = Embedding(DIM, storage="halfvec", metric="cosine")
    full = Embedding(DIM, metric="cosine", index=None)
    half_l2 = Embedding(DIM, storage="halfvec", metric="l2", index=HNSW(m=8, ef_construction=32))


class BigBase(DeclarativeBase):
    pass


class Big(BigBase):
    __tablename__ = "half_big_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding = Embedding(3072, metric="cosine")


@pytest.fixture
def loaded(session: Session) -> Session:
    """half_docs with N rows, the same vectors in every column, loaded by binary COPY."""
    conn = session.connection()
    Base.metadata.create_all(conn)
    rows = {"id": list(range(N)), "half": VECS, "full": VECS, "half_l2": VECS}
    assert vecalchemy.load(conn, Doc, rows) == N
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


def cosine_distances(data: np.ndarray, q: np.ndarray) -> np.ndarray:
    d = data.astype(np.float64)
    q = q.astype(np.float64)
    return 1 - (d @ q) / (np.linalg.norm(d, axis=1) * np.linalg.norm(q))


def test_halfvec_stores_half_the_bytes(session: Session) -> None:
    """pg_column_size: 2 * dim + 8 bytes for halfvec, 4 * dim + 8 for vector.

    One vector per table, so the rows stay under PostgreSQL's 2 kB TOAST threshold: in
    a wider row pgvector's types may be moved out of line, and pg_column_size then
    reports 4 bytes less (the data without its header).
    """
    conn = session.connection()
    half = sa.Table(
        "half_size",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        vecalchemy.embedding_column("embedding", DIM, storage="halfvec"),
    )
    full = sa.Table(
        "full_size",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        vecalchemy.embedding_column("embedding", DIM),
    )
    sizes = []
    for table in (half, full):
        table.create(conn)
        vecalchemy.load(conn, table, {"id": list(range(10)), "embedding": VECS[:10]})
        got = conn.execute(sa.select(sa.func.pg_column_size(table.c.embedding))).scalars()
        sizes.append(set(got))
    assert sizes == [{2 * DIM + 8}, {4 * DIM + 8}]
    assert (
        Storage.HALFVEC.bytes_per_row(DIM),
        Storage.VECTOR.bytes_per_row(DIM),
    ) == (2 * DIM + 8, 4 * DIM + 8)


def test_halfvec_values_are_float16(loaded: Session) -> None:
    """Stored values are the float32 input rounded to float16, exactly."""
    got = loaded.execute(sa.select(Doc.half).order_by(Doc.id)).scalars().all()
    stored = np.asarray(got, dtype=np.float32)
    assert stored.shape == (N, DIM)
    np.testing.assert_array_equal(stored.astype(np.float16), VECS.astype(np.float16))


@pytest.mark.parametrize("attr", ["half", "half_l2"])
def test_search_matches_exact_search(loaded: Session, attr: str) -> None:
    """Hits are the exact nearest rows of the float16-rounded data (ef_search covers the table)."""
    data = VECS.astype(np.float16).astype(np.float32)
    for trial in range(3):
        q = rng.normal(size=DIM).astype(np.float32)
        hits = search(loaded, getattr(Doc, attr), q, k=10, ef_search=N)
        q16 = q.astype(np.float16).astype(np.float32)  # the query is sent as halfvec too
        if attr == "half":
            exact = cosine_distances(data, q16)
        else:
            exact = np.linalg.norm(data.astype(np.float64) - q16, axis=1)
        want = list(np.argsort(exact)[:10])
        assert [h.row.id for h in hits] == want, trial
        np.testing.assert_allclose([h.distance for h in hits], exact[want], rtol=1e-4, atol=1e-4)


def test_plan_uses_the_halfvec_index(loaded: Session) -> None:
    """EXPLAIN shows the halfvec HNSW index, with the query cast to halfvec(384)."""
    plan = explain(loaded, nearest(Doc.half, VECS[0], k=5))
    assert "Index Scan using ix_half_docs_half_hnsw on half_docs" in plan, plan
    assert "::halfvec(384)" in plan
    plan = explain(loaded, nearest(Doc.half_l2, VECS[0], k=5))
    assert "Index Scan using ix_half_docs_half_l2_hnsw on half_docs" in plan, plan
    defs = loaded.execute(
        sa.text("SELECT indexdef FROM pg_indexes WHERE tablename = 'half_docs' ORDER BY 1")
    ).scalars()
    hnsw = [d.split(" USING ")[1] for d in defs if "hnsw" in d]
    assert hnsw == [
        "hnsw (half halfvec_cosine_ops) WITH (m='16', ef_construction='64')",
        "hnsw (half_l2 halfvec_l2_ops) WITH (m='8', ef_construction='32')",
    ]


@pytest.mark.parametrize("bad", [70000.0, -1e6, 65520.0])
def test_load_beyond_halfvec_range_is_refused(session: Session, bad: float) -> None:
    """A value float16 cannot hold fails the load before the row is written; nothing is."""
    conn = session.connection()
    Base.metadata.create_all(conn)
    vecs = VECS[:3].copy()
    vecs[2, 17] = bad
    with pytest.raises(
        InvalidVector,
        match=rf"row 2: half_docs\.half has {bad} at index 17, outside halfvec's range "
        r"\(±65504\); scale the vectors or store them as vector; nothing was loaded",
    ):
        vecalchemy.load(conn, Doc, {"id": [0, 1, 2], "half": vecs})
    assert conn.execute(sa.text("SELECT count(*) FROM half_docs")).scalar() == 0
    # The same value is fine in a vector column.
    vecalchemy.load(conn, Doc, {"id": [0, 1, 2], "full": vecs})
    assert conn.execute(sa.text("SELECT count(*) FROM half_docs")).scalar() == 3


def test_largest_halfvec_value_is_accepted(session: Session) -> None:
    """65504, float16's largest finite value, loads and comes back unchanged."""
    conn = session.connection()
    Base.metadata.create_all(conn)
    vec = np.zeros(DIM, dtype=np.float32)
    vec[[0, 5]] = [65504.0, -65504.0]
    vecalchemy.load(conn, Doc, [(1, vec)], columns=["id", "half"])
    stored = conn.execute(sa.select(Doc.half)).scalar_one()
    assert stored[:6] == [65504.0, 0.0, 0.0, 0.0, 0.0, -65504.0]
    hits = search(session, Doc.half, vec, k=1)
    assert hits[0].row.id == 1
    assert hits[0].distance == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("bad", [70000.0, -1e6])
def test_query_beyond_halfvec_range_fails_before_sql(
    loaded: Session, statements: list[str], bad: float
) -> None:
    """A query vector float16 cannot hold is refused with no SQL sent."""
    q = VECS[0].copy()
    q[3] = bad
    statements.clear()
    with pytest.raises(
        InvalidVector, match=r"query vector has .* at index 3, outside halfvec's range"
    ):
        search(loaded, Doc.half, q, k=3)
    assert statements == []


# -- 3,072 dimensions: a vector column indexed through a halfvec expression -------------


def test_3072_dimensions_recall_and_index_use(session: Session) -> None:
    """vector(3072) gets a halfvec(3072) expression HNSW index: used, with high recall."""
    conn = session.connection()
    BigBase.metadata.create_all(conn)
    n = 300
    big = rng.normal(size=(n, 3072)).astype(np.float32)
    result = vecalchemy.load(conn, Big, {"id": list(range(n)), "embedding": big}, indexes="defer")
    assert result == n
    assert result.indexes_rebuilt == ["ix_half_big_docs_embedding_hnsw"]
    indexdef = conn.execute(
        sa.text(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_half_big_docs_embedding_hnsw'"
        )
    ).scalar_one()
    assert "USING hnsw (((embedding)::halfvec(3072)) halfvec_cosine_ops)" in indexdef
    # The column itself keeps full precision: 4 bytes a dimension (stored out of line).
    size = conn.execute(sa.text("SELECT pg_column_size(embedding) FROM half_big_docs LIMIT 1"))
    assert size.scalar() in (4 * 3072 + 4, 4 * 3072 + 8)  # out of line, or inline

    plan = explain(session, nearest(Big.embedding, big[0], k=10))
    assert "Index Scan using ix_half_big_docs_embedding_hnsw on half_big_docs" in plan, plan
    assert "(embedding)::halfvec(3072) <=>" in plan

    found = 0
    queries = 20
    for _ in range(queries):
        q = rng.normal(size=3072).astype(np.float32)
        hits = search(session, Big.embedding, q, k=10)  # default ef_search (40)
        exact = cosine_distances(big, q)
        found += len({h.row.id for h in hits} & set(np.argsort(exact)[:10].tolist()))
        # Distances are computed on the halfvec cast: close to the float32 ones.
        ids = [h.row.id for h in hits]
        np.testing.assert_allclose([h.distance for h in hits], exact[ids], atol=2e-3)
    recall = found / (10 * queries)
    assert recall >= 0.9, recall
