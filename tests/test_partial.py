"""Partial vector indexes: one HNSW graph per frequent filter value.

``HNSW(where="...")`` makes a column's own index partial; :func:`vecalchemy.partial_index`
adds more, one per value. PostgreSQL uses a partial index only when the query's filter
implies its predicate, which a generic plan of a prepared statement cannot show; search()
plans filtered queries with their values (``plan_cache_mode = force_custom_plan``).
"""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import Integer, String, insert
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.schema import CreateIndex

import vecalchemy
from vecalchemy import HNSW, Embedding, partial_index, search

N = 1500
DIM = 16
VECS = np.random.default_rng(17).normal(size=(N, DIM)).astype(np.float32)
LANGS = np.array(["en", "de", "fr"])[np.arange(N) % 3]


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "partial_docs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lang: Mapped[str] = mapped_column(String(2))
    embedding = Embedding(DIM, metric="l2", index=HNSW(where="lang = 'en'"))


DE = partial_index(Doc.embedding, Doc.lang == "de")
FR = partial_index(Doc.embedding, Doc.lang == "fr", name="ix_partial_docs_fr")


def _ddl(ix: sa.Index) -> str:
    return str(CreateIndex(ix).compile(dialect=postgresql.dialect()))


def _index(fragment: str) -> sa.Index:
    return next(ix for ix in Doc.__table__.indexes if fragment in _ddl(ix))


@pytest.fixture
def docs(session: Session) -> Session:
    conn = session.connection()
    Base.metadata.create_all(conn)
    conn.execute(
        insert(Doc), [{"id": i, "lang": str(LANGS[i]), "embedding": VECS[i]} for i in range(N)]
    )
    conn.exec_driver_sql("ANALYZE partial_docs")
    return session


def test_partial_index_ddl() -> None:
    """Each index carries its predicate and the operator class derived from the metric."""
    en = _ddl(_index("lang = 'en'"))
    assert "USING hnsw (embedding vector_l2_ops)" in en
    assert en.rstrip().endswith("WHERE lang = 'en'")
    de = _ddl(DE)
    assert "vector_l2_ops" in de
    assert de.rstrip().endswith("WHERE lang = 'de'")
    assert FR.name == "ix_partial_docs_fr"
    assert len({ix.name for ix in Doc.__table__.indexes}) == 3  # distinct generated names


def test_partial_index_is_idempotent() -> None:
    """Declaring the same partial index twice returns the one already there."""
    assert partial_index(Doc.embedding, Doc.lang == "de") is DE


def _scans(session: Session, name: str) -> int:
    return int(
        session.execute(
            sa.text("SELECT pg_stat_get_xact_numscans(CAST(:n AS regclass))"), {"n": name}
        ).scalar_one()
    )


@pytest.mark.parametrize("lang", ["en", "de", "fr"])
def test_search_uses_the_partial_index_every_time(docs: Session, lang: str) -> None:
    """Ten filtered searches (past psycopg's prepare threshold of 5): each one scans the
    partial index for its value, and returns k rows of that value."""
    name = str(_index(f"lang = '{lang}'").name)
    docs.execute(sa.text("SET LOCAL enable_seqscan = off"))
    before = _scans(docs, name)
    for i in range(10):
        hits = search(docs, Doc.embedding, VECS[i], k=5, where=Doc.lang == lang, strategy="index")
        assert len(hits) == 5
        assert all(h.row.lang == lang for h in hits)
    assert _scans(docs, name) - before >= 10


def test_partial_index_results_are_right(docs: Session) -> None:
    """The partial graph holds only its rows: results equal the exact filtered top-k."""
    q = VECS[100]
    ids = np.flatnonzero(LANGS == "de")
    exact = ids[np.argsort(np.linalg.norm(VECS[ids] - q, axis=1))[:10]].tolist()
    hits = search(docs, Doc.embedding, q, k=10, where=Doc.lang == "de", ef_search=100)
    assert [h.row.id for h in hits] == exact


def test_partial_index_needs_an_expression() -> None:
    with pytest.raises(vecalchemy.InvalidArgument, match="where must be a SQLAlchemy boolean"):
        partial_index(Doc.embedding, "lang = 'it'")  # type: ignore[arg-type]


def test_partial_index_refuses_a_plain_column() -> None:
    with pytest.raises(vecalchemy.InvalidArgument, match="expected a vector column"):
        partial_index("embedding", Doc.lang == "it")


@pytest.mark.parametrize("where", ["", "   ", 3])
def test_hnsw_where_must_be_sql_text(where: object) -> None:
    with pytest.raises(vecalchemy.UnsupportedIndex, match="where must be a SQL predicate"):
        HNSW(where=where)  # type: ignore[arg-type]
