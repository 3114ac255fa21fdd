"""multi_search: several vector columns of one row, fused in one statement.

Weighted (the default) must be the exact weighted sum of each row's similarities on
every column, also on the columns whose leg did not return the row; checked against
numpy on a small table. RRF is checked against the formula from the legs run
separately. Every leg uses its column's index, and the table is never scanned.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, String, event, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from tests.conftest import executed_plan, ran
from vecalchemy import Embedding, IVFFlat
from vecalchemy.query.fusion import RRF, Weighted, multi_query
from vecalchemy.search.hybrid import amulti_search, multi_search

DIM = 8
N = 200
rng = np.random.default_rng(99)
TITLE = rng.normal(size=(N, DIM)).astype(np.float32)
BODY = rng.normal(size=(N, DIM)).astype(np.float32)
EXTRA = rng.normal(size=(N, DIM)).astype(np.float32)


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "multi_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    lang: Mapped[str] = mapped_column(String(2))
    title_embedding = Embedding(DIM, metric="cosine")
    body_embedding = Embedding(DIM, metric="l2")
    extra_embedding = Embedding(DIM, metric="inner_product")


@pytest.fixture
def docs(session: Session) -> Session:
    conn = session.connection()
    Base.metadata.create_all(conn)
    conn.execute(
        insert(Doc),
        [
            {
                "id": i,
                "lang": "en" if i % 4 else "de",
                "title_embedding": TITLE[i],
                "body_embedding": BODY[i],
                "extra_embedding": EXTRA[i],
            }
            for i in range(N)
        ],
    )
    conn.exec_driver_sql("ANALYZE multi_docs")
    return session


def _cos(m: np.ndarray, q: np.ndarray) -> np.ndarray:
    m64, q64 = m.astype(np.float64), q.astype(np.float64)
    return (m64 @ q64) / (np.linalg.norm(m64, axis=1) * np.linalg.norm(q64))


def _l2_sim(m: np.ndarray, q: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.linalg.norm(m.astype(np.float64) - q.astype(np.float64), axis=1))


def _ip(m: np.ndarray, q: np.ndarray) -> np.ndarray:
    return m.astype(np.float64) @ q.astype(np.float64)


def _top(scores: np.ndarray, k: int, ids: np.ndarray | None = None) -> list[int]:
    ids = np.arange(len(scores)) if ids is None else ids
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], ids[i]))
    return [int(ids[i]) for i in order[:k]]


def test_weighted_score_is_the_exact_weighted_sum(docs: Session) -> None:
    """Every returned row's score is 0.3 * its title similarity + 0.7 * its body similarity,
    exact on both columns, also for rows that only one leg returned."""
    qt, qb = rng.normal(size=DIM), rng.normal(size=DIM)
    hits = multi_search(
        docs, {Doc.title_embedding: 0.3, Doc.body_embedding: 0.7},
        {Doc.title_embedding: qt, Doc.body_embedding: qb}, k=10,
    )  # fmt: skip
    exact = 0.3 * _cos(TITLE, qt) + 0.7 * _l2_sim(BODY, qb)
    assert len(hits) == 10
    for h in hits:
        assert h.score == pytest.approx(exact[h.row.id], abs=1e-5)
        assert h.distances[0] == pytest.approx(1 - _cos(TITLE, qt)[h.row.id], abs=1e-5)
    one_leg = [h for h in hits if None in h.ranks]
    assert one_leg, "expected rows found by one leg only (different query per column)"
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    # With 40 candidates per leg out of 200 rows the fused top 10 is the exact top 10 here.
    assert [h.row.id for h in hits] == _top(exact, 10)


def test_top_k_equals_exact_top_k(docs: Session) -> None:
    """With every row a candidate, the top k is the brute-force top k, for three metrics."""
    q = rng.normal(size=DIM)
    weights = {Doc.title_embedding: 1.0, Doc.body_embedding: 2.0, Doc.extra_embedding: 0.5}
    hits = multi_search(docs, weights, q, k=15, candidates=N)
    exact = 1.0 * _cos(TITLE, q) + 2.0 * _l2_sim(BODY, q) + 0.5 * _ip(EXTRA, q)
    assert [h.row.id for h in hits] == _top(exact, 15)
    assert [h.score for h in hits] == pytest.approx([exact[h.row.id] for h in hits], abs=1e-4)
    assert all(len(h.ranks) == 3 and None not in h.ranks for h in hits)


def _leg(session: Session, column: Any, q: np.ndarray, op: str) -> list[int]:
    """A leg run on its own, exactly (index scans off), nearest first, ties by id."""
    d = column.op(op, return_type=sa.Float)(sa.cast(sa.literal(str(q.tolist())), column.type))
    with session.begin_nested():
        session.execute(text("SET LOCAL enable_indexscan = off"))
        return list(session.scalars(select(Doc.id).order_by(d, Doc.id)))


def test_rrf_uses_ranks_and_the_mapping_weights(docs: Session) -> None:
    """RRF: score = sum(weight / (k + rank)), the mapping's values as weights."""
    q = rng.normal(size=DIM).astype(np.float32)
    hits = multi_search(
        docs, {Doc.title_embedding: 1.0, Doc.body_embedding: 3.0}, q, k=10,
        fusion=RRF(k=10), candidates=N,
    )  # fmt: skip
    title = {i: r for r, i in enumerate(_leg(docs, Doc.title_embedding, q, "<=>"), start=1)}
    body = {i: r for r, i in enumerate(_leg(docs, Doc.body_embedding, q, "<->"), start=1)}
    want = {i: 1.0 / (10 + title[i]) + 3.0 / (10 + body[i]) for i in range(N)}
    assert [h.row.id for h in hits] == sorted(want, key=lambda i: (-want[i], i))[:10]
    for h in hits:
        assert h.score == pytest.approx(want[h.row.id], rel=1e-12)
        assert h.ranks == (title[h.row.id], body[h.row.id])


def test_filters_apply_to_every_leg(docs: Session) -> None:
    """where= restricts every leg; k rows come back when k rows match."""
    q = rng.normal(size=DIM)
    hits = multi_search(
        docs, {Doc.title_embedding: 0.5, Doc.body_embedding: 0.5}, q, k=20, where=Doc.lang == "de"
    )
    assert len(hits) == 20
    assert all(h.row.lang == "de" for h in hits)
    ids = np.array([i for i in range(N) if i % 4 == 0])
    exact = 0.5 * _cos(TITLE[ids], q) + 0.5 * _l2_sim(BODY[ids], q)
    assert [h.row.id for h in hits] == _top(exact, 20, ids)


def test_core_columns_give_rows(docs: Session) -> None:
    """Core columns return rows with the plain columns and the fusion's columns."""
    t = Doc.__table__
    q = rng.normal(size=DIM)
    hits = multi_search(docs, {t.c.title_embedding: 1, t.c.body_embedding: 1}, q, k=3)
    assert set(hits[0].row._mapping) == {
        "id", "lang", "score", "rank_0", "rank_1", "distance_0", "distance_1",
    }  # fmt: skip
    orm = multi_search(docs, {Doc.title_embedding: 1, Doc.body_embedding: 1}, q, k=3)
    assert [h.row.id for h in orm] == [h.row.id for h in hits]
    assert {"title_embedding", "body_embedding"} <= sa.inspect(orm[0].row).unloaded


@pytest.mark.parametrize("fusion", [Weighted(), RRF()], ids=["weighted", "rrf"])
def test_each_leg_uses_its_index_and_no_seq_scan(docs: Session, fusion: Any) -> None:
    """EXPLAIN ANALYZE: one HNSW index scan per column, rows fetched by primary key, and no
    Seq Scan runs (the exact fallback arms are never executed)."""
    q = rng.normal(size=DIM)
    stmt = multi_query(
        {Doc.title_embedding: 0.3, Doc.body_embedding: 0.7, Doc.extra_embedding: 0.1},
        q, k=10, where=Doc.lang == "en", fusion=fusion,
    )  # fmt: skip
    plan = executed_plan(docs, stmt)
    for column in ("title_embedding", "body_embedding", "extra_embedding"):
        assert ran(plan, f"Index Scan using ix_multi_docs_{column}_hnsw on multi_docs")
    assert ran(plan, "multi_docs_pkey")
    assert not ran(plan, "Seq Scan")


def test_halfvec_expression_index_is_used(session: Session) -> None:
    """A column above 2,000 dimensions is searched through its halfvec expression index."""

    class B(DeclarativeBase):
        pass

    class Big(B):
        __tablename__ = "multi_big"
        id: Mapped[int] = mapped_column(primary_key=True)
        big = Embedding(2048, metric="cosine")
        small = Embedding(4, metric="l2")

    conn = session.connection()
    B.metadata.create_all(conn)
    big = rng.normal(size=(40, 2048)).astype(np.float32)
    small = rng.normal(size=(40, 4)).astype(np.float32)
    conn.execute(insert(Big), [{"id": i, "big": big[i], "small": small[i]} for i in range(40)])
    query = {Big.big: big[7], Big.small: small[7]}
    stmt = multi_query({Big.big: 1.0, Big.small: 1.0}, query, k=3, candidates=20)
    plan = executed_plan(session, stmt)
    assert ran(plan, "Index Scan using ix_multi_big_big_hnsw on multi_big")
    assert ran(plan, "Index Scan using ix_multi_big_small_hnsw on multi_big")
    assert not ran(plan, "Seq Scan")
    hits = multi_search(session, {Big.big: 1.0, Big.small: 1.0}, query, k=3)
    assert hits[0].row.id == 7
    assert hits[0].score == pytest.approx(2.0, abs=1e-3)  # cosine 1 + l2 similarity 1


def test_settings_take_the_largest_need(
    docs: Session, observed: list[dict[str, str | None]]
) -> None:
    """hnsw.ef_search covers the candidates of every leg, for the statement only."""
    q = rng.normal(size=DIM)
    multi_search(docs, {Doc.title_embedding: 1, Doc.body_embedding: 1}, q, k=5, candidates=150)
    assert observed[-1]["hnsw.ef_search"] == "150"
    assert docs.execute(text("SHOW hnsw.ef_search")).scalar() == "40"


def test_ivfflat_legs_share_the_largest_probes(
    session: Session, observed: list[dict[str, str | None]]
) -> None:
    """Two IVFFlat columns: ivfflat.probes is the larger of sqrt(lists) of both indexes,
    with one index's lists read from the database (lists=None)."""

    class B(DeclarativeBase):
        pass

    class Coarse(B):
        __tablename__ = "multi_ivf"
        id: Mapped[int] = mapped_column(primary_key=True)
        auto = Embedding(4, metric="l2", index=IVFFlat())  # 4,000 rows: 4 lists, probes 2
        fixed = Embedding(4, metric="l2", index=IVFFlat(lists=100))  # probes 10

    conn = session.connection()
    B.metadata.create_all(conn)
    vecs = rng.normal(size=(4000, 4)).astype(np.float32)
    conn.execute(insert(Coarse), [{"id": i, "auto": v, "fixed": v} for i, v in enumerate(vecs)])
    vecalchemy.build_indexes(conn, Coarse)
    hits = multi_search(session, {Coarse.auto: 1, Coarse.fixed: 1}, vecs[3], k=3)
    assert hits[0].row.id == 3
    assert observed[-1]["ivfflat.probes"] == "10"

    class Two(B):
        __tablename__ = "multi_ivf_two"
        id: Mapped[int] = mapped_column(primary_key=True)
        a = Embedding(4, metric="l2", index=IVFFlat())
        b = Embedding(4, metric="cosine", index=IVFFlat())

    Two.__table__.create(conn)
    conn.execute(insert(Two), [{"id": i, "a": v, "b": v} for i, v in enumerate(vecs)])
    vecalchemy.build_indexes(conn, Two)
    hits = multi_search(session, {Two.a: 1, Two.b: 1}, vecs[5], k=3)
    assert hits[0].row.id == 5
    assert observed[-1]["ivfflat.probes"] == "2"  # sqrt(4 lists)
    assert session.execute(text("SHOW ivfflat.probes")).scalar() == "1"


# -- bad input ----------------------------------------------------------------------------


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement sent through the engine during the test."""
    sent: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", capture)
    yield sent
    event.remove(engine, "before_cursor_execute", capture)


class Elsewhere(Base):
    __tablename__ = "multi_elsewhere"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding = Embedding(DIM)


Q0 = rng.normal(size=DIM)
BAD = [
    ({"columns": {}}, vecalchemy.InvalidSearch, "non-empty mapping"),
    ({"columns": [Doc.title_embedding]}, vecalchemy.InvalidSearch, "non-empty mapping"),
    ({"columns": {Doc.title_embedding: -1}}, vecalchemy.InvalidSearch, "positive finite"),
    ({"columns": {Doc.title_embedding: float("nan")}}, vecalchemy.InvalidSearch, "positive"),
    ({"columns": {Doc.title_embedding: 0}}, vecalchemy.InvalidSearch, "positive finite"),
    ({"columns": {Doc.title_embedding: True}}, vecalchemy.InvalidSearch, "must be a number"),
    (
        {"columns": {Doc.title_embedding: 1, Doc.__table__.c.title_embedding: 1}},
        vecalchemy.InvalidSearch,
        "given twice",
    ),
    (
        {"columns": {Doc.title_embedding: 1, Elsewhere.embedding: 1}},
        vecalchemy.InvalidArgument,
        "not in table multi_docs",
    ),
    ({"columns": {Doc.lang: 1}}, vecalchemy.UnknownMetric, "not a pgvector column"),
    ({"fusion": Weighted([1, 2])}, vecalchemy.InvalidSearch, "weights from the column mapping"),
    ({"query": {Doc.title_embedding: Q0}}, vecalchemy.InvalidSearch, "no vector for column"),
    (
        {"query": {Doc.title_embedding: Q0, Doc.body_embedding: Q0, Doc.extra_embedding: Q0}},
        vecalchemy.InvalidSearch,
        "not among the columns searched",
    ),
    ({"query": Q0[:3]}, vecalchemy.DimensionMismatch, "has 3 dimensions"),
    (
        {"query": {Doc.title_embedding: Q0, Doc.body_embedding: [np.nan] * DIM}},
        vecalchemy.InvalidVector,
        "non-finite",
    ),
    ({"k": 0}, vecalchemy.InvalidSearch, "k must be a positive integer"),
    ({"candidates": 5000}, vecalchemy.InvalidSearch, "candidates=5000 is above 1,000"),
    ({"where": {"lang": "en"}}, vecalchemy.InvalidArgument, "where= takes"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD)
def test_bad_input_fails_before_sql(
    docs: Session,
    statements: list[str],
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    """Each bad argument raises a clear error, and no statement is sent (nothing written)."""
    args: dict[str, Any] = {
        "columns": {Doc.title_embedding: 0.3, Doc.body_embedding: 0.7},
        "query": Q0,
        "k": 5,
        **kwargs,
    }
    statements.clear()
    with pytest.raises(error, match=message):
        multi_search(docs, **args)
    assert statements == []
    assert docs.scalar(select(sa.func.count()).select_from(Doc)) == N


# -- async --------------------------------------------------------------------------------


async def test_amulti_search_on_every_async_driver(async_session: AsyncSession) -> None:
    """amulti_search gives the exact weighted sums through psycopg async and asyncpg."""
    conn = await async_session.connection()
    await conn.run_sync(lambda c: Doc.__table__.create(c))
    await async_session.execute(
        insert(Doc),
        [
            {"id": i, "lang": "en", "title_embedding": TITLE[i], "body_embedding": BODY[i]}
            for i in range(N)
        ],
    )
    q = rng.normal(size=DIM)
    hits = await amulti_search(
        async_session, {Doc.title_embedding: 0.4, Doc.body_embedding: 0.6}, q, k=5
    )
    exact = 0.4 * _cos(TITLE, q) + 0.6 * _l2_sim(BODY, q)
    assert [h.row.id for h in hits] == _top(exact, 5)
    assert [h.score for h in hits] == pytest.approx([exact[h.row.id] for h in hits], abs=1e-5)
    assert isinstance(hits[0].row, Doc)
    rrf = await amulti_search(
        async_session, {Doc.title_embedding: 1, Doc.body_embedding: 1}, q, k=5, fusion=RRF()
    )
    assert len(rrf) == 5
    with pytest.raises(vecalchemy.InvalidSearch, match="positive finite"):
        await amulti_search(async_session, {Doc.title_embedding: -1}, q)
