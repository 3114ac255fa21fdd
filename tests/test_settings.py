"""Index settings belong to the statement that needs them: on every way of executing it,
never left behind, never lost (AUTOCOMMIT, streams, subqueries, engines without setup).

The vector index is forced with ``enable_seqscan = off`` where the table is small enough
for the planner to prefer a sequential scan, as pgvector's own tests do.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import Connection, Engine, String, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from tests.conftest import ASYNC_DRIVERS, WATCHED, _with_driver, read_settings
from vecalchemy import HNSW, Embedding, IVFFlat, ScanOptions, nearest

rng = np.random.default_rng(2026)
DIM = 16
N = 3000
VECS = rng.normal(size=(N, DIM)).astype(np.float32)
TAGS = np.where(np.arange(N) % 10 == 0, "rare", "common")  # "rare": 10% of the rows


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "settings_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    tag: Mapped[str] = mapped_column(String(8))
    embedding = Embedding(DIM, metric="l2", index=HNSW(m=8, ef_construction=32))
    ivf = Embedding(DIM, metric="l2", index=IVFFlat(lists=30))


def _rows() -> list[dict[str, Any]]:
    return [{"id": i, "tag": str(TAGS[i]), "embedding": v, "ivf": v} for i, v in enumerate(VECS)]


@pytest.fixture(scope="module")
def table(engine: Engine) -> Iterator[None]:
    """The table, committed: AUTOCOMMIT connections and other engines must see it."""
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(Doc), _rows())
        vecalchemy.build_indexes(conn, Doc)
        conn.exec_driver_sql("ANALYZE settings_docs")
    yield
    Base.metadata.drop_all(engine)


@pytest.fixture
def docs(table: None, session: Session) -> Session:
    session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    return session


def _exact(q: np.ndarray, k: int, ids: np.ndarray | None = None) -> list[int]:
    ids = np.arange(N) if ids is None else ids
    d = np.linalg.norm(VECS[ids] - q, axis=1)
    return [int(ids[i]) for i in np.argsort(d, kind="stable")[:k]]


def _in_order(distances: list[float]) -> bool:
    return all(a <= b + 1e-6 for a, b in itertools.pairwise(distances))


def _show(bind: Session | Connection, name: str) -> str:
    return str(bind.execute(select(func.current_setting(name))).scalar())


PROBE = func.current_setting("hnsw.ef_search").label("ef_search_during")


# -- a Select built by vecalchemy carries its settings ------------------------------------


def test_nearest_returns_k_rows_above_the_default_ef_search(docs: Session) -> None:
    """session.execute(nearest(..., k=100)): 100 rows, not pgvector's default 40."""
    q = VECS[7]
    rows = docs.execute(nearest(Doc.embedding, q, k=100).add_columns(PROBE)).all()
    assert len(rows) == 100
    assert {r.ef_search_during for r in rows} == {"100"}
    assert _in_order([r.distance for r in rows])
    assert len({r[0].id for r in rows} & set(_exact(q, 100))) >= 90


def test_filtered_nearest_returns_k_rows(docs: Session) -> None:
    """A 10% filter with k=40: iterative scans keep walking until 40 rows pass it, in order."""
    q = VECS[3]
    stmt = nearest(Doc.embedding, q, k=40).where(Doc.tag == "rare")
    rows = docs.execute(stmt).all()
    assert len(rows) == 40
    assert all(doc.tag == "rare" for doc, _ in rows)
    assert _in_order([d for _, d in rows])


def test_core_connection_and_core_columns(table: None, connection: Connection) -> None:
    """Connection.execute of a Core nearest(): the same settings, the same k rows."""
    connection.execute(sa.text("SET LOCAL enable_seqscan = off"))
    t = Doc.__table__
    rows = connection.execute(nearest(t.c.embedding, VECS[1], k=100).add_columns(PROBE)).all()
    assert len(rows) == 100
    assert rows[0].ef_search_during == "100"


def test_inside_a_users_subquery_and_cte(docs: Session) -> None:
    """Embedded as a subquery or a CTE of the caller's own SELECT, the inner query still
    gets its settings (and PostgreSQL still serves it from the HNSW index)."""
    q = VECS[11]
    inner = nearest(Doc.__table__.c.embedding, q, k=100)
    sub = inner.subquery()
    outer = select(sub.c.id, sub.c.distance, PROBE).where(sub.c.id % 2 == 0)
    rows = docs.execute(outer).all()
    assert {r.ef_search_during for r in rows} == {"100"}
    assert all(r.id % 2 == 0 for r in rows)
    assert len(rows) >= 35  # about half of 100; about 20 of the 40 pgvector returns by default
    assert "ix_settings_docs_embedding_hnsw" in vecalchemy.explain(docs, outer)
    cte = inner.cte("near")
    counted = docs.execute(select(func.count(), func.min(PROBE)).select_from(cte)).one()
    assert tuple(counted) == (100, "100")


def test_cheatsheet_distance_method_on_an_embedding_column(docs: Session) -> None:
    """select(Doc).order_by(Doc.embedding.l2_distance(q)).limit(100), as the cheatsheet
    writes it, carries the settings too."""
    q = VECS[5]
    stmt = select(Doc, PROBE).order_by(Doc.embedding.l2_distance(q)).limit(100)
    rows = docs.execute(stmt).all()
    assert len(rows) == 100
    assert rows[0].ef_search_during == "100"


def test_a_users_limit_parameter_is_read_at_execution(docs: Session) -> None:
    """The LIMIT of a cached statement is read per execution: 60, then 120."""
    for k in (60, 120):
        stmt = select(Doc.id, PROBE).order_by(Doc.embedding.l2_distance(VECS[2])).limit(k)
        rows = docs.execute(stmt).all()
        assert len(rows) == k
        assert rows[0].ef_search_during == str(k)


async def test_async_session_on_every_driver(table: None, async_session: AsyncSession) -> None:
    """AsyncSession.execute of nearest() gets the settings through both async drivers."""
    await async_session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    rows = await async_session.execute(nearest(Doc.embedding, VECS[9], k=100).add_columns(PROBE))
    got = rows.all()
    assert len(got) == 100
    assert got[0].ef_search_during == "100"
    filtered = (
        await async_session.execute(nearest(Doc.embedding, VECS[9], k=40).where(Doc.tag == "rare"))
    ).all()
    assert len(filtered) == 40
    after = (await async_session.execute(sa.text("SHOW hnsw.ef_search"))).scalar()
    assert after == "40"


def test_streamed_results_keep_their_settings_until_closed(docs: Session) -> None:
    """A streamed (server-side cursor) result computes rows as they are fetched: its
    settings hold until it is closed, also while other statements run in between."""
    stmt = nearest(Doc.embedding, VECS[4], k=300).where(Doc.tag == "common")
    result = docs.execute(stmt, execution_options={"yield_per": 25})
    rows = []
    for partition in result.partitions():
        rows.extend(partition)
        docs.execute(select(func.now()))  # another statement while the stream is open
    assert len(rows) == 300
    assert _in_order([d for _, d in rows])
    assert _show(docs, "hnsw.ef_search") == "40"
    assert _show(docs, "hnsw.iterative_scan") == "off"


# -- settings never outlive their statement -------------------------------------------------


def test_settings_are_restored_to_the_transactions_own(docs: Session) -> None:
    """After search(..., ef_search=300) the transaction sees its own SET LOCAL value again;
    after a filtered search iterative scans and plan_cache_mode are back too."""
    docs.execute(sa.text("SET LOCAL hnsw.ef_search = 77"))
    before = {name: _show(docs, name) for name in ("hnsw.iterative_scan", "plan_cache_mode")}
    vecalchemy.search(docs, Doc.embedding, VECS[0], k=10, ef_search=300)
    assert _show(docs, "hnsw.ef_search") == "77"
    vecalchemy.search(docs, Doc.embedding, VECS[0], k=10, where=Doc.tag == "rare")
    assert {name: _show(docs, name) for name in before} == before
    assert _show(docs, "hnsw.ef_search") == "77"


def test_later_queries_come_back_in_distance_order(docs: Session) -> None:
    """30 nearest() queries after filtered searches: every one in exact distance order
    (a leaked relaxed_order used to leave them out of order)."""
    for i in range(30):
        vecalchemy.search(docs, Doc.embedding, VECS[i], k=20, where=Doc.tag == "rare")
        rows = docs.execute(nearest(Doc.embedding, VECS[i], k=20).where(Doc.tag == "rare")).all()
        assert _in_order([d for _, d in rows])
        assert len(rows) == 20


def test_settings_do_not_reach_the_pool(server_url: sa.URL, table: None) -> None:
    """After a search and a commit, the pooled connection is at the server's defaults."""
    eng = vecalchemy.create_engine(server_url, pool_size=1, max_overflow=0)
    try:
        with Session(eng) as s:
            vecalchemy.search(s, Doc.embedding, VECS[0], k=500, ef_search=700)
            s.commit()
        with eng.connect() as c:
            assert read_settings(c.connection.dbapi_connection)["hnsw.ef_search"] == "40"
    finally:
        eng.dispose()


def test_consecutive_searches_share_one_settings_statement(
    docs: Session, caplog: pytest.LogCaptureFixture
) -> None:
    """Two identical searches in a transaction cost one settings statement; a statement of
    the caller's in between gets the transaction's values back first."""
    vecalchemy.search(docs, Doc.embedding, VECS[0], k=5)
    docs.execute(select(func.now()))  # restores
    with caplog.at_level(logging.DEBUG, logger="vecalchemy.settings"):
        vecalchemy.search(docs, Doc.embedding, VECS[0], k=5)
        vecalchemy.search(docs, Doc.embedding, VECS[1], k=5)
        sent = [r.getMessage() for r in caplog.records]
        assert len(sent) == 1
        assert "set_config('hnsw.ef_search'" in sent[0]
        docs.execute(select(func.now()))
        assert len(caplog.records) == 2  # the restore, before the caller's statement
    assert _show(docs, "hnsw.ef_search") == "40"


def test_a_failed_statement_in_a_savepoint_leaves_the_settings_right(docs: Session) -> None:
    """A vecalchemy statement that fails inside a savepoint: after rolling the savepoint
    back, the transaction is usable and has its own settings."""
    nested = docs.begin_nested()
    with pytest.raises(sa.exc.DBAPIError):
        docs.execute(
            nearest(Doc.embedding, VECS[0], k=10).add_columns(func.sqrt(-1.0).label("boom"))
        )
    nested.rollback()
    assert _show(docs, "hnsw.ef_search") == "40"
    assert len(docs.execute(nearest(Doc.embedding, VECS[0], k=100)).all()) == 100


# -- AUTOCOMMIT: the settings still reach the statement ----------------------------------------


@pytest.fixture
def autocommit(server_url: sa.URL, table: None) -> Iterator[Engine]:
    eng = vecalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT")
    yield eng
    eng.dispose()


def test_autocommit_search_returns_k_rows(autocommit: Engine) -> None:
    """In AUTOCOMMIT, set_config(..., true) would end with its own statement: vecalchemy
    sets the settings for the session around the statement instead, and restores them."""
    with Session(autocommit) as s:
        s.execute(sa.text("SET enable_seqscan = off"))
        hits = vecalchemy.search(s, Doc.embedding, VECS[8], k=100)
        assert len(hits) == 100
        rows = s.execute(nearest(Doc.embedding, VECS[8], k=100).add_columns(PROBE)).all()
        assert len(rows) == 100
        assert rows[0].ef_search_during == "100"
        assert _show(s, "hnsw.ef_search") == "40"
        assert _show(s, "hnsw.iterative_scan") == "off"
        s.execute(sa.text("RESET enable_seqscan"))


def test_autocommit_restores_after_a_failed_statement(autocommit: Engine) -> None:
    """A failing statement in AUTOCOMMIT still gets the session's settings back."""
    with autocommit.connect() as c:
        with pytest.raises(sa.exc.DBAPIError):
            c.execute(
                nearest(Doc.embedding, VECS[0], k=100).add_columns(func.sqrt(-1.0).label("x"))
            )
        assert read_settings(c.connection.dbapi_connection)["hnsw.ef_search"] == "40"


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
async def test_autocommit_async_drivers(server_url: sa.URL, table: None, driver: str) -> None:
    """AUTOCOMMIT through psycopg async and asyncpg: k rows, settings restored."""
    eng: AsyncEngine = vecalchemy.create_async_engine(
        _with_driver(server_url, driver), isolation_level="AUTOCOMMIT"
    )
    try:
        async with AsyncSession(eng) as s:
            await s.execute(sa.text("SET enable_seqscan = off"))
            hits = await vecalchemy.asearch(s, Doc.embedding, VECS[8], k=100)
            assert len(hits) == 100
            ef = (await s.execute(sa.text("SHOW hnsw.ef_search"))).scalar()
            assert ef == "40"
    finally:
        await eng.dispose()


# -- engines vecalchemy did not set up -------------------------------------------------------


def test_an_engine_without_setup_gets_the_settings(server_url: sa.URL, table: None) -> None:
    """A plain sqlalchemy.create_engine(): nearest() and search() still get their settings
    (query vectors then travel as text)."""
    eng = sa.create_engine(server_url)
    try:
        with Session(eng) as s:
            s.execute(sa.text("SET LOCAL enable_seqscan = off"))
            rows = s.execute(nearest(Doc.embedding, VECS[6], k=100).add_columns(PROBE)).all()
            assert len(rows) == 100
            assert rows[0].ef_search_during == "100"
            hits = vecalchemy.search(s, Doc.embedding, VECS[6], k=50, where=Doc.tag == "rare")
            assert len(hits) == 50
            assert [h.row.id for h in hits] == _exact(VECS[6], 50, np.flatnonzero(TAGS == "rare"))
    finally:
        eng.dispose()


# -- per-statement overrides --------------------------------------------------------------------


def test_scan_options_as_execution_options(docs: Session) -> None:
    """ScanOptions override one statement's settings and nothing else."""
    stmt = nearest(Doc.embedding, VECS[0], k=10).add_columns(PROBE)
    opts = {"vecalchemy": ScanOptions(ef_search=250)}
    assert docs.execute(stmt, execution_options=opts).all()[0].ef_search_during == "250"
    assert docs.execute(stmt).all()[0].ef_search_during == "40"
    probes = func.current_setting("ivfflat.probes").label("p")
    ivf = nearest(Doc.ivf, VECS[0], k=10).add_columns(probes)
    assert docs.execute(ivf).all()[0].p == "5"  # round(sqrt(30))
    opts = {"vecalchemy": ScanOptions(probes=12)}
    assert docs.execute(ivf, execution_options=opts).all()[0].p == "12"


def test_bad_scan_options_are_refused(docs: Session) -> None:
    """Out-of-range values, and an ef_search below the LIMIT, are errors before the query."""
    with pytest.raises(vecalchemy.InvalidSearch, match="ef_search must be an integer"):
        ScanOptions(ef_search=5000)
    with pytest.raises(vecalchemy.InvalidSearch, match="order must be"):
        ScanOptions(order="sideways")  # type: ignore[arg-type]
    stmt = nearest(Doc.embedding, VECS[0], k=100)
    with pytest.raises(vecalchemy.InvalidSearch, match="below the LIMIT 100"):
        docs.execute(stmt, execution_options={"vecalchemy": ScanOptions(ef_search=50)})
    with pytest.raises(vecalchemy.InvalidSearch, match=r"must be vecalchemy\.ScanOptions"):
        docs.execute(stmt, execution_options={"vecalchemy": {"ef_search": 200}})


def test_every_watched_setting_is_set_for_a_filtered_hnsw_scan(
    docs: Session, observed: list[dict[str, str | None]]
) -> None:
    """The full set, as the statement sees it."""
    docs.execute(nearest(Doc.embedding, VECS[0], k=30).where(Doc.tag == "rare")).all()
    assert observed[-1]["hnsw.ef_search"] == "40"
    assert observed[-1]["hnsw.iterative_scan"] == "strict_order"
    assert observed[-1]["hnsw.max_scan_tuples"] == "20000"
    assert observed[-1]["plan_cache_mode"] == "force_custom_plan"
    assert set(observed[-1]) == set(WATCHED)
