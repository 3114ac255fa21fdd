"""The settings and the fallback off their usual path: statements that must not run
twice, errors that leave the transaction working, results abandoned half-read, OFFSET.

Each case was found by reading the mechanism (vecalchemy.search._settings) and is shown
here against the real server.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, Integer, String, func, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import HNSW, Embedding, ScanOptions, nearest

rng = np.random.default_rng(808)
DIM = 16
N = 500
VECS = rng.normal(size=(N, DIM)).astype(np.float32)
FAR = 7  # the row far from every query: an index scan that stops early never sees it
VECS[FAR] += 100.0
RARE = set(range(491, 500))  # nine rows: a filter on them leaves any k=10 search short


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "edges_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    tag: Mapped[str] = mapped_column(String(8))
    embedding = Embedding(DIM, metric="l2", index=HNSW(m=8, ef_construction=32))


class Log(Base):
    __tablename__ = "edges_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    note: Mapped[str] = mapped_column(String(20))


@pytest.fixture(scope="module")
def _table(engine: Engine) -> Iterator[None]:
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(Doc),
            [
                {"id": i, "tag": "rare" if i in RARE else "common", "embedding": v}
                for i, v in enumerate(VECS)
            ],
        )
        conn.exec_driver_sql("ANALYZE edges_docs")
    yield
    Base.metadata.drop_all(engine)


@pytest.fixture
def docs(_table: None, session: Session) -> Session:
    session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    return session


@pytest.fixture
def reruns() -> Iterator[list[str]]:
    """The fallback's log lines ("... running the statement exactly") during the test."""
    lines: list[str] = []

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "running the statement exactly" in record.getMessage():
                lines.append(record.getMessage())

    logger = logging.getLogger("vecalchemy.settings")
    handler, level = Handler(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def _show(session: Session, name: str) -> str:
    return str(session.execute(select(func.current_setting(name))).scalar())


def _rare(k: int = 10) -> sa.Select[Any]:
    return nearest(Doc.embedding, VECS[0], k=k).where(Doc.tag == "rare")


# -- the fallback runs a statement again only where that is harmless ---------------------


def test_the_fallback_finds_what_the_index_missed(docs: Session, reruns: list[str]) -> None:
    """The baseline for the cases below: a filter matching 9 rows, k=10, a scan allowed
    few tuples: the statement runs again without the index and returns all 9."""
    stmt = _rare().execution_options(vecalchemy=ScanOptions(max_scan_tuples=20))
    rows = docs.execute(stmt).all()
    assert sorted(doc.id for doc, _ in rows) == sorted(RARE)
    assert len(reruns) == 1


def test_a_data_modifying_cte_runs_once(docs: Session, reruns: list[str]) -> None:
    """WITH log AS (INSERT ... RETURNING) SELECT ... ORDER BY distance LIMIT 10, short of
    rows: never run twice, so the INSERT happens once."""
    log = insert(Log).values(note="searched").returning(Log.id).cte("log")
    stmt = (
        _rare()
        .add_columns(log.c.id)
        .join(log, sa.true())
        .execution_options(vecalchemy=ScanOptions(max_scan_tuples=20))
    )
    docs.execute(stmt).all()
    assert docs.execute(select(func.count()).select_from(Log)).scalar() == 1
    assert reruns == []


def test_select_for_update_runs_once(docs: Session, reruns: list[str]) -> None:
    """SELECT ... FOR UPDATE: running it again would lock rows it does not return."""
    stmt = (
        _rare()
        .with_for_update(skip_locked=True)
        .execution_options(vecalchemy=ScanOptions(max_scan_tuples=20))
    )
    docs.execute(stmt).all()
    assert reruns == []


def test_a_nearest_subquery_under_a_larger_outer_limit_runs_once(
    docs: Session, reruns: list[str]
) -> None:
    """The caller's SELECT ... WHERE id IN (nearest ids, k=10) LIMIT 50 returns at most 10
    rows by design: the outer LIMIT is not the scan's, so it never runs again."""
    ids = select(Doc.id).order_by(Doc.embedding.l2_distance(VECS[0])).limit(10)
    stmt = select(Doc.id).where(Doc.id.in_(ids.scalar_subquery())).limit(50)
    assert len(docs.execute(stmt).all()) == 10
    assert reruns == []


def test_the_exact_run_reports_its_own_error(docs: Session) -> None:
    """When the run without the index fails (here: a division by zero on the far row no
    index scan reaches), the caller sees that error, not InFailedSqlTransaction."""
    risky = sa.or_(Doc.tag == "rare", (1 / (Doc.id - FAR)) > 1000)
    stmt = (
        nearest(Doc.embedding, VECS[0], k=10)
        .where(risky)
        .execution_options(vecalchemy=ScanOptions(max_scan_tuples=20))
    )
    with pytest.raises(sa.exc.DataError, match="division by zero"):
        docs.execute(stmt).all()


# -- an error before anything was sent leaves the transaction's settings restorable ----


def test_a_refused_statement_does_not_leave_the_previous_settings(docs: Session) -> None:
    """A search with k=100 sets ef_search=100 (restored lazily). A second one refused by
    vecalchemy before it is sent (ef_search below its LIMIT) must not make the first one's
    value stick: the next statement of the transaction sees the transaction's own 40."""
    baseline = _show(docs, "hnsw.ef_search")
    docs.execute(nearest(Doc.embedding, VECS[1], k=100)).all()
    bad = nearest(Doc.embedding, VECS[1], k=10).execution_options(
        vecalchemy=ScanOptions(ef_search=5)
    )
    with pytest.raises(vecalchemy.InvalidSearch, match="below the LIMIT 10"):
        docs.execute(bad)
    assert _show(docs, "hnsw.ef_search") == baseline
    assert _show(docs, "hnsw.iterative_scan") == "off"


def test_a_client_side_driver_error_does_not_leave_the_settings(docs: Session) -> None:
    """A driver error raised before the statement reached the server (a parameter the
    driver cannot adapt) leaves the transaction working: the settings are put back."""
    baseline = _show(docs, "hnsw.ef_search")
    docs.execute(nearest(Doc.embedding, VECS[1], k=100)).all()
    unadaptable = nearest(Doc.embedding, VECS[1], k=100).where(
        Doc.tag == sa.bindparam("t", type_=sa.types.NullType())
    )
    with pytest.raises(sa.exc.StatementError):
        docs.execute(unadaptable, {"t": object()})
    assert _show(docs, "hnsw.ef_search") == baseline


# -- a stream abandoned half-read stops holding the settings -----------------------------


# psycopg warns (from the server-side cursor's __del__) about the cursor left unclosed:
# that is the abandoning this test is about.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_abandoned_stream_lets_the_settings_go(docs: Session) -> None:
    """for doc in session.scalars(stmt, yield_per=...): break: once the result is gone,
    the next statement of the transaction sees the transaction's own settings again."""
    baseline = _show(docs, "hnsw.ef_search")
    stmt = nearest(Doc.embedding, VECS[2], k=200).execution_options(yield_per=10)
    for _doc in docs.scalars(stmt):
        break
    gc.collect()
    assert _show(docs, "hnsw.ef_search") == baseline


def test_an_open_stream_keeps_its_settings(docs: Session) -> None:
    """The converse: while the stream is still being read, its settings stay."""
    stmt = nearest(Doc.embedding, VECS[2], k=200).execution_options(yield_per=10)
    result = docs.scalars(stmt)
    first = [next(result) for _ in range(5)]
    assert _show(docs, "hnsw.ef_search") == "200"
    rest = list(result)
    assert len(first) + len(rest) == 200


# -- OFFSET -------------------------------------------------------------------------------


def test_offset_is_part_of_what_the_scan_must_reach(docs: Session) -> None:
    """Page 10 of 10-row pages (LIMIT 10 OFFSET 90): the scan must produce 100 rows, so
    ef_search is 100, and the page is the exact search's rows 90 to 99."""
    q = VECS[3]
    probe = func.current_setting("hnsw.ef_search").label("ef")
    rows = docs.execute(nearest(Doc.embedding, q, k=10).offset(90).add_columns(probe)).all()
    assert {r.ef for r in rows} == {"100"}
    exact = np.argsort(np.linalg.norm(VECS - q, axis=1), kind="stable")[90:100].tolist()
    assert len({r[0].id for r in rows} & set(exact)) >= 8
