"""search() chooses between the vector index and an exact scan from the filter's estimate.

``strategy="auto"`` (the default) asks the planner how many rows the filter matches
(``EXPLAIN (FORMAT JSON)`` of the filter alone). Few rows that an index finds cheaply
are scanned exactly (recall 1, and faster than walking the graph for them); otherwise
the index is scanned iteratively, and if that returns fewer than k rows an exact scan
tells whether fewer match. The table here has a B-tree on the filter column, pgvector's
first recommendation for selective filters.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, Integer, String, event, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import HNSW, Embedding, search
from vecalchemy.search import asearch
from vecalchemy.search._strategy import prefers_exact_scan

strategy_module = importlib.import_module("vecalchemy.search._strategy")
settings_module = importlib.import_module("vecalchemy.search._settings")

N = 4000
DIM = 24
VECS = np.random.default_rng(8).normal(size=(N, DIM)).astype(np.float32)
TAGS = np.where(np.arange(N) % 200 == 0, "rare", np.where(np.arange(N) % 10 == 1, "mid", "common"))


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "strategy_items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tag: Mapped[str] = mapped_column(String(8), index=True)  # the B-tree on the filter column
    embedding = Embedding(DIM, metric="l2", index=HNSW())


ROWS = [{"id": i, "tag": str(TAGS[i]), "embedding": VECS[i]} for i in range(N)]


@pytest.fixture(scope="module")
def _table(engine: Engine) -> Iterator[None]:
    """The module's table, filled, indexed and analyzed once."""
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(Item), ROWS)
        conn.exec_driver_sql("ANALYZE strategy_items")
    yield
    Base.metadata.drop_all(engine)


@pytest.fixture
def items(_table: None, session: Session) -> Session:
    """A session on the filled table; what a test writes (and analyzes) is rolled back."""
    session.connection()  # begin now: the test's statements start with its own
    return session


@pytest.fixture
def sent(engine: Engine) -> Iterator[list[str]]:
    """Every statement sent during the test, vecalchemy's settings statements included
    (which go straight to the DBAPI connection and are logged at DEBUG)."""
    statements: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        statements.append(statement)

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            statements.append(record.getMessage())

    logger = logging.getLogger("vecalchemy.settings")
    handler, level = Handler(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    event.listen(engine, "before_cursor_execute", capture)
    yield statements
    event.remove(engine, "before_cursor_execute", capture)
    logger.removeHandler(handler)
    logger.setLevel(level)


def _exact(q: np.ndarray, k: int, tag: str | None = None) -> list[int]:
    ids = np.arange(N) if tag is None else np.flatnonzero(tag == TAGS)
    d = np.linalg.norm(VECS[ids] - q, axis=1)
    return [int(ids[i]) for i in np.argsort(d, kind="stable")[:k]]


def _is_exact_scan(statement: str) -> bool:
    return "+ 0" in statement and statement.lstrip().upper().startswith("SELECT")


Q = np.random.default_rng(99).normal(size=DIM).astype(np.float32)


def test_selective_filter_is_scanned_exactly(items: Session, sent: list[str]) -> None:
    """20 matching rows (0.5%): estimate, settings, one exact scan; the exact top-k."""
    hits = search(items, Item.embedding, Q, k=10, where=Item.tag == "rare")
    assert [h.row.id for h in hits] == _exact(Q, 10, "rare")
    assert sent[0].startswith("EXPLAIN (FORMAT JSON)")
    assert len(sent) == 2  # an exact scan needs no settings
    assert _is_exact_scan(sent[1])


def test_the_exact_scan_uses_the_filter_index_not_the_vector_index(items: Session) -> None:
    """The exact statement finds the rows through the B-tree and never the HNSW index."""
    stmt = vecalchemy.plan_nearest(Item.embedding, Q, 10, where=Item.tag == "rare").exact
    plan = vecalchemy.explain(items, stmt)
    assert "ix_strategy_items_tag" in plan
    assert "hnsw" not in plan


def test_broad_filter_uses_the_index(items: Session, sent: list[str]) -> None:
    """~90% of rows match: the iterative index scan serves it, and returns k rows."""
    hits = search(items, Item.embedding, Q, k=10, where=Item.tag == "common")
    assert len(hits) == 10
    assert all(h.row.tag == "common" for h in hits)
    assert not _is_exact_scan(sent[-1])
    assert len(sent) == 3  # estimate, settings, the index query: no fallback
    recall = len({h.row.id for h in hits} & set(_exact(Q, 10, "common"))) / 10
    assert recall >= 0.9


def test_index_scan_that_runs_out_falls_back_to_exact(
    items: Session, sent: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An iterative scan stopped by hnsw.max_scan_tuples returns < k: an exact scan follows."""
    monkeypatch.setattr(strategy_module, "EXACT_SCAN_FACTOR", 0.0)  # the index first, always
    # hnsw.max_scan_tuples belongs to the statement: the search sets it to this.
    monkeypatch.setattr(settings_module, "DEFAULT_MAX_SCAN_TUPLES", 1)
    # An unindexed filter, and no way to it but the HNSW index, as on a large table.
    items.execute(sa.text("SET LOCAL enable_seqscan = off"))
    items.execute(sa.text("SET LOCAL enable_bitmapscan = off"))
    where = Item.id % 200 == 0  # the "rare" rows
    plain = search(items, Item.embedding, Q, k=10, where=where, strategy="index")
    assert len(plain) < 10  # the iterative scan gave up early
    sent.clear()
    hits = search(items, Item.embedding, Q, k=10, where=where)
    assert [h.row.id for h in hits] == _exact(Q, 10, "rare")
    assert not _is_exact_scan(sent[2])  # the index scan first, then the same statement
    # again without the vector index, in the statement's own fallback:
    assert "set_config('enable_indexscan', %s, true)" in sent[-2]
    assert "'off'" in sent[-2].split("[", 1)[1]


def test_fewer_matches_than_k_returns_all_of_them(items: Session) -> None:
    """A filter matching 3 rows returns exactly those 3, nearest first."""
    where = Item.id.in_([5, 900, 3001])
    hits = search(items, Item.embedding, Q, k=10, where=where, strategy="auto")
    assert sorted(h.row.id for h in hits) == [5, 900, 3001]
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)


def test_strategy_exact_without_filter(items: Session, sent: list[str]) -> None:
    """strategy="exact" scans every row: the true top-k, e.g. to measure the index's recall."""
    hits = search(items, Item.embedding, Q, k=10, strategy="exact")
    assert [h.row.id for h in hits] == _exact(Q, 10)
    assert len(sent) == 1
    assert _is_exact_scan(sent[-1])


def test_strategy_index_skips_the_estimate(items: Session, sent: list[str]) -> None:
    """strategy="index" sends no EXPLAIN and never falls back."""
    search(items, Item.embedding, Q, k=10, where=Item.tag == "rare", strategy="index")
    assert not any(s.startswith("EXPLAIN") for s in sent)
    assert sum(1 for s in sent if _is_exact_scan(s)) == 0


def test_unknown_strategy_is_refused_before_sql(items: Session, sent: list[str]) -> None:
    with pytest.raises(vecalchemy.InvalidSearch, match="strategy must be one of 'auto'"):
        search(items, Item.embedding, Q, k=10, strategy="fast")
    assert sent == []


def test_unreachable_threshold_does_not_walk_the_index(items: Session, sent: list[str]) -> None:
    """A threshold no row meets: the SQL has no distance predicate, so the scan stops at k.

    (A ``WHERE distance < x`` in the query would make an iterative scan walk up to
    hnsw.max_scan_tuples looking for rows that do not exist.)
    """
    hits = search(items, Item.embedding, Q, k=10, where=Item.tag == "common", max_distance=1e-9)
    assert hits == []
    assert len(sent) == 3  # estimate, settings, one index query: no fallback either
    query = sent[-1]
    where = query.split("WHERE", 1)[1].split("ORDER BY", 1)[0]
    assert "<->" not in where


def test_filtered_settings_do_not_leak(engine: Engine) -> None:
    """plan_cache_mode and the scan mode end with the search's statement."""
    with Session(engine) as s:
        Base.metadata.create_all(s.connection())
        s.commit()
        try:
            search(s, Item.embedding, Q, k=3, where=Item.tag == "mid", strategy="index")
            assert s.execute(sa.text("SHOW plan_cache_mode")).scalar() == "auto"
            s.commit()
            assert s.execute(sa.text("SHOW plan_cache_mode")).scalar() == "auto"
            assert s.execute(sa.text("SHOW hnsw.iterative_scan")).scalar() == "off"
        finally:
            s.rollback()
            Base.metadata.drop_all(s.connection())
            s.commit()


def _plan(rows: float, cost: float, total: float, scan_cost: float) -> list[dict[str, Any]]:
    return [
        {
            "Plan": {
                "Node Type": "Append",
                "Plans": [
                    {"Node Type": "Bitmap Heap Scan", "Plan Rows": rows, "Total Cost": cost},
                    {"Node Type": "Seq Scan", "Plan Rows": total, "Total Cost": scan_cost},
                ],
            }
        }
    ]


@pytest.mark.parametrize(
    ("rows", "cost", "total", "scan_cost", "expected"),
    [
        (200, 300.0, 200_000, 45_000.0, True),  # 0.1% through a B-tree: exact
        (2_000, 3_000.0, 200_000, 45_000.0, True),  # 1% of 200k: under sqrt(2.6*40*200k)
        (20_000, 9_000.0, 200_000, 45_000.0, False),  # 10%: the index
        (2_000, 3_000.0, 20_000, 4_500.0, False),  # 10% of 20k: over sqrt(2.6*40*20k)
        (200, 44_000.0, 200_000, 45_000.0, False),  # unindexed filter on a big table
        (200, 4_400.0, 20_000, 4_500.0, True),  # unindexed, but a small table
    ],
)
def test_prefers_exact_scan(
    rows: float, cost: float, total: float, scan_cost: float, expected: bool
) -> None:
    """Few rows found cheaply: exact. Many rows, or a costly way to find them: the index."""
    plan = _plan(rows, cost, total, scan_cost)
    assert prefers_exact_scan(plan) is expected
    assert prefers_exact_scan(json.dumps(plan)) is expected  # asyncpg returns the text


def test_unreadable_plan_means_index() -> None:
    assert prefers_exact_scan([{"nothing": 1}]) is False
    assert prefers_exact_scan(None) is False


async def test_async_selective_filter_is_exact(async_session: AsyncSession) -> None:
    """asearch() runs the same steps: the exact top-k for a selective filter."""
    await async_session.run_sync(lambda s: Base.metadata.create_all(s.connection()))
    await async_session.execute(insert(Item), ROWS)
    await async_session.execute(sa.text("ANALYZE strategy_items"))
    hits = await asearch(async_session, Item.embedding, Q, k=10, where=Item.tag == "rare")
    assert [h.row.id for h in hits] == _exact(Q, 10, "rare")
