"""Quantized indexes: a compressed copy of each vector in the index, full precision in the table.

``HNSW(quantize="binary")`` indexes ``binary_quantize(embedding)::bit(dim)`` with
``bit_hamming_ops``; search() fetches ``k * oversample`` candidates by Hamming distance
from that index and re-ranks them by the exact distance, in one statement.
``HNSW(quantize="halfvec")`` indexes ``embedding::halfvec(dim)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, Integer, String, event, insert
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.schema import CreateIndex

import vecalchemy
from vecalchemy import HNSW, Embedding, IVFFlat, search

N = 2000
DIM = 128
rng = np.random.default_rng(3)
VECS = rng.normal(size=(N, DIM)).astype(np.float32)
VECS /= np.linalg.norm(VECS, axis=1, keepdims=True)


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "quant_docs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tag: Mapped[str] = mapped_column(String(4))
    bq = Embedding(DIM, metric="cosine", index=HNSW(quantize="binary"))
    hv = Embedding(DIM, metric="cosine", index=HNSW(quantize="halfvec"))
    full = Embedding(DIM, metric="cosine", index=HNSW())


ROWS = [
    {"id": i, "tag": "odd" if i % 2 else "even", "bq": v, "hv": v, "full": v}
    for i, v in enumerate(VECS)
]


@pytest.fixture(scope="module")
def _table(engine: Engine) -> Iterator[None]:
    """The module's table, filled and indexed once (three HNSW builds take a while)."""
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(Doc), ROWS)
        conn.exec_driver_sql("ANALYZE quant_docs")
    yield
    Base.metadata.drop_all(engine)


@pytest.fixture
def docs(_table: None, session: Session) -> Session:
    """A session on the filled table; what a test writes is rolled back."""
    session.connection()  # begin now: the test's statements start with its own
    return session


@pytest.fixture
def sent(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", capture)
    yield statements
    event.remove(engine, "before_cursor_execute", capture)


def _exact(q: np.ndarray, k: int, ids: np.ndarray | None = None) -> list[int]:
    ids = np.arange(N) if ids is None else ids
    d = 1 - VECS[ids] @ q
    return [int(ids[i]) for i in np.argsort(d, kind="stable")[:k]]


def _ddl(name: str) -> str:
    ix = next(ix for ix in Doc.__table__.indexes if ix.name == name)
    return str(CreateIndex(ix).compile(dialect=postgresql.dialect()))


def test_binary_index_ddl() -> None:
    """The index is on the binary-quantized expression, with the Hamming operator class."""
    ddl = _ddl("ix_quant_docs_bq_hnsw_bq")
    assert "USING hnsw (CAST(binary_quantize(bq) AS BIT(128)) bit_hamming_ops)" in ddl


def test_halfvec_index_ddl() -> None:
    ddl = _ddl("ix_quant_docs_hv_hnsw_hv")
    assert "USING hnsw (CAST(hv AS HALFVEC(128)) halfvec_cosine_ops)" in ddl


def test_binary_search_reranks_exactly(docs: Session, sent: list[str]) -> None:
    """One statement; distances are exact cosine distances; a large oversample is exact."""
    q = VECS[11] + 0.3 * rng.normal(size=DIM).astype(np.float32)
    q /= np.linalg.norm(q)
    hits = search(docs, Doc.bq, q, k=10, oversample=100)  # 1,000 candidates of 2,000
    assert [h.row.id for h in hits] == _exact(q, 10)
    for h in hits:
        assert h.distance == pytest.approx(1 - float(VECS[h.row.id] @ q), abs=1e-5)
    queries = [s for s in sent if "binary_quantize" in s]
    assert len(queries) == 1
    assert "LIMIT 1000" in queries[0]  # the candidates: k * oversample


def test_binary_search_recall_grows_with_oversample(docs: Session) -> None:
    """Re-ranking more candidates finds more of the exact neighbours."""
    queries = VECS[:20] + 0.5 * rng.normal(size=(20, DIM)).astype(np.float32)
    recall = {}
    for factor in (1, 16):
        found = 0
        for q in queries:
            hits = search(docs, Doc.bq, q, k=10, oversample=factor, ef_search=None)
            assert len(hits) == 10
            found += len({h.row.id for h in hits} & set(_exact(q / np.linalg.norm(q), 10)))
        recall[factor] = found / (10 * len(queries))
    # Random Gaussian vectors are binary quantization's worst case (measured: 0.16 at
    # oversample 1, 0.72 at 16); real embeddings do far better (docs/benchmarks.md).
    assert recall[16] >= 0.6
    assert recall[16] >= recall[1] + 0.3


def test_binary_search_uses_the_bit_index(docs: Session) -> None:
    """EXPLAIN of the statement search() runs shows the binary-quantized HNSW index."""
    stmt = vecalchemy.plan_nearest(Doc.bq, VECS[0], 10).select
    docs.execute(sa.text("SET LOCAL enable_seqscan = off"))
    plan = vecalchemy.explain(docs, stmt)
    assert "ix_quant_docs_bq_hnsw_bq" in plan


def test_binary_search_filters_the_candidates(docs: Session) -> None:
    """A filter applies inside the candidate subquery: k rows, all matching."""
    q = VECS[5]
    hits = search(docs, Doc.bq, q, k=10, where=Doc.tag == "odd", strategy="index")
    assert len(hits) == 10
    assert all(h.row.tag == "odd" for h in hits)
    exact = search(docs, Doc.bq, q, k=10, where=Doc.tag == "odd", strategy="exact")
    assert [h.row.id for h in exact] == _exact(q, 10, np.arange(1, N, 2))


def test_nearest_where_filters_binary_candidates(docs: Session) -> None:
    """nearest(..., where=) puts the filter inside the candidates too."""
    stmt = vecalchemy.nearest(Doc.bq, VECS[5], k=10, where=Doc.tag == "even")
    sql = str(stmt.compile(dialect=postgresql.dialect()))
    inner = sql.split("IN (", 1)[1]
    assert "quant_docs.tag =" in inner
    rows = docs.execute(stmt).all()
    assert len(rows) == 10
    assert all(doc.tag == "even" for doc, _ in rows)


def test_halfvec_quantized_search(docs: Session) -> None:
    """The halfvec index is used, and results match the exact order closely."""
    q = VECS[42]
    stmt = vecalchemy.plan_nearest(Doc.hv, q, 10).select
    docs.execute(sa.text("SET LOCAL enable_seqscan = off"))
    assert "ix_quant_docs_hv_hnsw_hv" in vecalchemy.explain(docs, stmt)
    hits = search(docs, Doc.hv, q, k=10, ef_search=200)
    assert hits[0].row.id == 42
    assert len({h.row.id for h in hits} & set(_exact(q, 10))) >= 9


def test_binary_index_is_much_smaller(docs: Session) -> None:
    """The bit index stores 16 bytes per vector instead of 512: far smaller than the full one."""
    size = docs.execute(
        sa.text(
            "SELECT pg_relation_size(CAST(:a AS regclass)), pg_relation_size(CAST(:b AS regclass))"
        ),
        {"a": "ix_quant_docs_bq_hnsw_bq", "b": "ix_quant_docs_full_hnsw"},
    ).one()
    assert size[0] < 0.5 * size[1]


def test_oversample_only_for_binary_indexes(docs: Session, sent: list[str]) -> None:
    with pytest.raises(vecalchemy.InvalidSearch, match="oversample applies to binary-quantized"):
        search(docs, Doc.full, VECS[0], k=10, oversample=4)
    with pytest.raises(vecalchemy.InvalidSearch, match="oversample must be an integer"):
        search(docs, Doc.bq, VECS[0], k=10, oversample=0)
    assert sent == []


def test_candidates_are_capped_by_ef_search_limit(docs: Session) -> None:
    """k * oversample above 1,000 is capped at 1,000 candidates (hnsw.ef_search's limit)."""
    hits = search(docs, Doc.bq, VECS[0], k=200, oversample=8)
    assert len(hits) == 200
    assert hits[0].row.id == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"index": HNSW(quantize="binary"), "storage": "bit", "metric": "hamming"}, "applies to"),
        ({"index": HNSW(quantize="binary"), "storage": "sparsevec"}, "applies to"),
        ({"index": HNSW(quantize="binary"), "metric": "l1"}, "needs cosine, inner_product or l2"),
        ({"index": HNSW(quantize="halfvec"), "storage": "halfvec"}, "applies to vector columns"),
    ],
)
def test_quantize_is_checked_at_declaration(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(vecalchemy.UnsupportedIndex, match=message):
        Embedding(64, **kwargs)


def test_unknown_quantize_is_refused() -> None:
    with pytest.raises(vecalchemy.UnsupportedIndex, match="quantize must be one of 'halfvec'"):
        HNSW(quantize="int8")
    with pytest.raises(vecalchemy.UnsupportedIndex, match="quantize must be one of"):
        IVFFlat(quantize="pq")


def test_binary_quantization_indexes_beyond_vector_limits() -> None:
    """4,000 dims: too many for a vector or halfvec index, fine as 4,000 bits."""
    column = Embedding(4000, index=HNSW(quantize="binary"))
    assert column.column.info["vecalchemy"].opclass == "bit_hamming_ops"
