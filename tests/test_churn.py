"""k rows whenever k live rows exist, also after writes: updates, deletes and rejected loads
leave dead entries in the HNSW index, and concurrent writers keep making more.

The searches are unfiltered: dead index entries shorten them just as a filter would.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import insert
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import HNSW, Collection, Embedding
from vecalchemy.embedders import HashingEmbedder
from vecalchemy.load import load

DIM = 16
rng = np.random.default_rng(404)


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "churn_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding = Embedding(DIM, metric="l2", index=HNSW(m=4, ef_construction=8))


@pytest.fixture
def name(engine: sa.Engine) -> Iterator[str]:
    table = f"churn_{uuid.uuid4().hex[:8]}"
    yield table
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{table}"')


def test_search_after_every_document_was_replaced(engine: sa.Engine, name: str) -> None:
    """200 documents, then an upsert of all 200 with new text: search(k=10) returns 10
    (the old rows' index entries are dead, and nearer to the query than the new ones)."""
    coll = Collection(name, embedder=HashingEmbedder(64), engine=engine, splitter="none")
    ids = [f"d{i}" for i in range(200)]
    coll.add([f"original note number {i} about databases" for i in range(200)], ids=ids)
    coll.upsert([f"rewritten text {i} on gardening and tomatoes" for i in range(200)], ids=ids)
    for query in ("original note about databases", "gardening tomatoes", "note 17"):
        hits = coll.search(query, k=10)
        assert len(hits) == 10, query
    assert coll.count() == 200


def test_search_after_a_rejected_load(session: Session) -> None:
    """A load of 20,000 rows rejected at its last row rolls back, but its rows stay in the
    HNSW index as dead entries, closer to the query than any live row: the search still
    returns the exact 10 nearest live rows."""
    conn = session.connection()
    Base.metadata.create_all(conn)
    live = rng.normal(size=(300, DIM)).astype(np.float32) + 5.0  # far from the query
    conn.execute(insert(Doc), [{"id": i, "embedding": v} for i, v in enumerate(live)])
    near = rng.normal(size=(20_000, DIM)).astype(np.float32) * 0.1  # near the query
    near[-1, 0] = np.nan
    # The first three batches reach the table (and its index) before the last one is
    # refused; the load's savepoint rolls them back, their index entries stay, dead.
    with pytest.raises(vecalchemy.InvalidVector, match="row 19999"):
        load(conn, Doc, {"id": range(1000, 21_000), "embedding": near}, batch_size=5_000)
    dead = conn.execute(
        sa.text("SELECT pg_relation_size('ix_churn_docs_embedding_hnsw') / 8192")
    ).scalar()
    assert dead is not None
    assert dead > 100  # pages of index entries for rows that are gone
    session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    q = np.zeros(DIM, dtype=np.float32)
    exact = np.argsort(np.linalg.norm(live - q, axis=1))[:10].tolist()
    hits = vecalchemy.search(session, Doc.embedding, q, k=10)
    assert len(hits) == 10
    assert all(h.row.id < 300 for h in hits)  # live rows only
    assert len({h.row.id for h in hits} & set(exact)) >= 7  # an index's recall, not less
    truth = vecalchemy.search(session, Doc.embedding, q, k=10, strategy="exact")
    assert [h.row.id for h in truth] == exact
    rows = session.execute(vecalchemy.nearest(Doc.embedding, q, k=10)).all()
    assert len(rows) == 10  # bare statements walk past the dead entries too


def test_order_by_distance_without_limit_returns_every_row(session: Session) -> None:
    """ORDER BY a distance without LIMIT wants every row, in order. On a server tuned for
    SSDs (random_page_cost=1.1) the planner serves it from the HNSW index, whose scan
    stops early: raw SQL loses rows there. vecalchemy's statement sorts instead, and the
    setting that makes it do so is gone after it."""
    conn = session.connection()
    Base.metadata.create_all(conn)
    vecs = rng.normal(size=(500, DIM)).astype(np.float32)
    conn.execute(insert(Doc), [{"id": i, "embedding": v} for i, v in enumerate(vecs)])
    conn.exec_driver_sql("ANALYZE churn_docs")
    conn.exec_driver_sql("SET LOCAL random_page_cost = 1.1")
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    q = rng.normal(size=DIM).astype(np.float32)
    exact = np.argsort(np.linalg.norm(vecs - q, axis=1), kind="stable").tolist()

    # The hazard is real: the same query in plain SQL returns a fraction of the table.
    conn.exec_driver_sql("SET LOCAL hnsw.ef_search = 10")
    raw = conn.execute(
        sa.text("SELECT id FROM churn_docs ORDER BY embedding <-> CAST(:q AS vector)"),
        {"q": str(q.tolist())},
    ).all()
    assert len(raw) < 500

    stmt = sa.select(Doc.id).order_by(Doc.embedding.l2_distance(q))
    tight = vecalchemy.ScanOptions(ef_search=10, max_scan_tuples=50)
    for statement in (stmt, stmt.execution_options(vecalchemy=tight)):
        assert session.execute(statement).scalars().all() == exact
    plan = vecalchemy.explain(session, stmt)
    assert "ix_churn_docs_embedding_hnsw" not in plan
    assert "Sort" in plan
    assert conn.exec_driver_sql("SHOW enable_indexscan").scalar() == "on"
    # With a LIMIT the index serves it as before.
    assert vecalchemy.index_used(session, stmt.limit(10)) == "ix_churn_docs_embedding_hnsw"


@pytest.mark.slow
def test_concurrent_searches_and_upserts_always_return_k(engine: sa.Engine, name: str) -> None:
    """8 threads, half searching, half rewriting the collection's documents, for 8 s:
    every unfiltered search returns k hits, and no thread fails."""
    coll = Collection(name, embedder=HashingEmbedder(64), engine=engine, splitter="none")
    ids = [f"d{i}" for i in range(60)]
    coll.add([f"seed text {i}" for i in range(60)], ids=ids)
    stop = time.monotonic() + 8.0
    short: list[int] = []
    errors: list[BaseException] = []
    searches = [0]

    def searcher(seed: int) -> None:
        queries = [f"text {i}" for i in range(seed, seed + 20)]
        try:
            while time.monotonic() < stop:
                for q in queries:
                    n = len(coll.search(q, k=10))
                    searches[0] += 1
                    if n < 10:
                        short.append(n)
        except BaseException as exc:
            errors.append(exc)

    def writer(seed: int) -> None:
        rnd = np.random.default_rng(seed)
        step = 0
        try:
            while time.monotonic() < stop:
                chosen = [ids[i] for i in rnd.choice(len(ids), size=8, replace=False)]
                coll.upsert([f"{d} revision {seed}-{step}" for d in chosen], ids=chosen)
                step += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=searcher, args=(s,)) for s in range(4)]
    threads += [threading.Thread(target=writer, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert searches[0] > 20
    assert short == []
