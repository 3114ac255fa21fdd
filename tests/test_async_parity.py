"""Every search runs the same through psycopg (sync), psycopg async and asyncpg.

One table holds every kind of column vecalchemy searches (cosine HNSW, l2 IVFFlat, inner
product, halfvec, binary-quantized, sparse, full text, a second vector). Each scenario
runs through the sync API and through the async API on both async drivers, and the hits
must be the same rows, in the same order, with the same distances (and, where it says so,
the exact nearest rows).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from pgvector import SparseVector
from sqlalchemy import String, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from tests.conftest import ASYNC_DRIVERS, _with_driver
from vecalchemy import HNSW, MMR, RRF, Embedding, IVFFlat, Weighted
from vecalchemy.fulltext import FullText

rng = np.random.default_rng(77)
DIM = 16
N = 1500
VOCAB = 40
VECS = rng.normal(size=(N, DIM)).astype(np.float32)
OTHER = rng.normal(size=(N, DIM)).astype(np.float32)
WORDS = ["vacuum", "index", "replica", "backup", "cache", "query", "lock", "schema"]
TAGS = np.where(np.arange(N) % 10 == 3, "rare", "common")
Q = VECS[17] + 0.05 * rng.normal(size=DIM).astype(np.float32)


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "parity_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    tag: Mapped[str] = mapped_column(String(8), index=True)
    body: Mapped[str]
    cos = Embedding(DIM, metric="cosine", index=HNSW(m=8, ef_construction=32))
    l2 = Embedding(DIM, metric="l2", index=IVFFlat(lists=20))
    ip = Embedding(DIM, metric="inner_product", index=HNSW(m=8, ef_construction=32))
    half = Embedding(DIM, metric="cosine", storage="halfvec", index=HNSW(m=8, ef_construction=32))
    bq = Embedding(DIM, metric="cosine", index=HNSW(quantize="binary"))
    other = Embedding(DIM, metric="cosine", index=HNSW(m=8, ef_construction=32))
    sparse = Embedding(VOCAB, storage="sparsevec", metric="inner_product")
    tsv = FullText("body")


def _rows() -> list[dict[str, Any]]:
    out = []
    for i, v in enumerate(VECS):
        words = [WORDS[(i * 7 + j) % len(WORDS)] for j in range(3)]
        out.append(
            {
                "id": i,
                "tag": str(TAGS[i]),
                "body": " ".join(words) + f" item{i}",
                "cos": v,
                "l2": v,
                "ip": v,
                "half": v,
                "bq": v,
                "other": OTHER[i],
                "sparse": SparseVector({i % VOCAB: 1.0, (i * 3) % VOCAB: 0.5}, VOCAB),
            }
        )
    return out


@pytest.fixture(scope="module")
def table(engine: sa.Engine) -> Iterator[None]:
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(Item), _rows())
        vecalchemy.build_indexes(conn, Item)
        conn.exec_driver_sql("ANALYZE parity_items")
    yield
    Base.metadata.drop_all(engine)


@dataclass(frozen=True)
class Scenario:
    """A search through the sync API and its async twin, and how to compare hits."""

    name: str
    sync: Callable[[Session], list[Any]]
    async_: Callable[[AsyncSession], Awaitable[list[Any]]]
    exact: list[int] | None = None  # the rows the hits must be, when they are exact


def _exact(column: str, k: int, where: np.ndarray | None = None) -> list[int]:
    ids = np.arange(N) if where is None else np.flatnonzero(where)
    data = OTHER if column == "other" else VECS
    v = data[ids]
    if column == "l2":
        d = np.linalg.norm(v - Q, axis=1)
    elif column == "ip":
        d = -(v @ Q)
    else:
        d = 1 - (v @ Q) / (np.linalg.norm(v, axis=1) * np.linalg.norm(Q))
    return [int(ids[i]) for i in np.argsort(d, kind="stable")[:k]]


def _search(column: str, **kw: Any) -> tuple[Any, Any]:
    col = getattr(Item, column)

    def sync(s: Session) -> list[Any]:
        return vecalchemy.search(s, col, Q, **kw)

    async def async_(s: AsyncSession) -> list[Any]:
        return await vecalchemy.asearch(s, col, Q, **kw)

    return sync, async_


def _fused(kind: str, **kw: Any) -> tuple[Any, Any]:
    if kind == "hybrid":
        args: tuple[Any, ...] = (Item.cos, Item.tsv, "vacuum replica", Q)
        sync_fn, async_fn = vecalchemy.hybrid_search, vecalchemy.ahybrid_search
    elif kind == "sparse":
        args = (Item.cos, Item.sparse, {3: 1.0, 9: 0.5}, Q)
        sync_fn, async_fn = vecalchemy.hybrid_search, vecalchemy.ahybrid_search
    else:
        args = ({Item.cos: 0.6, Item.other: 0.4}, Q)
        sync_fn, async_fn = vecalchemy.multi_search, vecalchemy.amulti_search

    def sync(s: Session) -> list[Any]:
        return sync_fn(s, *args, **kw)

    async def async_(s: AsyncSession) -> list[Any]:
        return await async_fn(s, *args, **kw)

    return sync, async_


def _plans() -> tuple[Any, Any]:
    def plan() -> Any:
        return vecalchemy.plan_nearest(Item.cos, Q, k=12, where=Item.tag == "common")

    def sync(s: Session) -> list[Any]:
        return vecalchemy.run(s, plan())

    async def async_(s: AsyncSession) -> list[Any]:
        return await vecalchemy.arun(s, plan())

    return sync, async_


def _own_nearest() -> tuple[Any, Any]:
    def stmt() -> Any:
        return vecalchemy.nearest(Item.cos, Q, k=100).where(Item.tag == "common")

    def sync(s: Session) -> list[Any]:
        return vecalchemy.run(s, stmt())

    async def async_(s: AsyncSession) -> list[Any]:
        return await vecalchemy.arun(s, stmt())

    return sync, async_


def _rerank(query: Any, hits: list[Any]) -> list[float]:
    return [-float(h.row.id % 7) for h in hits]


RARE = TAGS == "rare"
SCENARIOS = [
    Scenario("cosine", *_search("cos", k=10, ef_search=200), exact=_exact("cos", 10)),
    Scenario("l2 ivfflat", *_search("l2", k=10, probes=20), exact=_exact("l2", 10)),
    Scenario("inner product", *_search("ip", k=10, ef_search=200), exact=_exact("ip", 10)),
    Scenario("halfvec", *_search("half", k=10, ef_search=200)),
    Scenario("binary quantized", *_search("bq", k=5, oversample=8)),
    Scenario(
        "rare filter, auto (exact)",
        *_search("cos", k=10, where=Item.tag == "rare"),
        exact=_exact("cos", 10, RARE),
    ),
    Scenario(
        "rare filter, index", *_search("cos", k=10, where=Item.tag == "rare", strategy="index")
    ),
    Scenario("exact strategy", *_search("cos", k=10, strategy="exact"), exact=_exact("cos", 10)),
    Scenario("min_similarity", *_search("cos", k=10, min_similarity=0.5)),
    Scenario("max_distance", *_search("l2", k=10, max_distance=3.0)),
    Scenario("load_embedding", *_search("cos", k=5, load_embedding=True)),
    Scenario("mmr", *_search("cos", k=5, diversify=MMR(0.5))),
    Scenario("rerank", *_search("cos", k=5, rerank=_rerank)),
    Scenario("hybrid rrf, filtered", *_fused("hybrid", k=10, where=Item.tag == "common")),
    Scenario("hybrid weighted", *_fused("hybrid", k=10, fusion=Weighted([0.4, 0.6]))),
    Scenario("dense + sparse", *_fused("sparse", k=10)),
    Scenario("multi weighted", *_fused("multi", k=10)),
    Scenario("multi rrf", *_fused("multi", k=10, fusion=RRF())),
    Scenario("run(plan_nearest)", *_plans()),
    Scenario("run(your nearest())", *_own_nearest()),
]


def _key(hit: Any) -> tuple[Any, ...]:
    row = hit.row
    ident = row.id if hasattr(row, "id") else row._mapping["id"]
    if isinstance(hit, vecalchemy.Hit):
        return (ident, round(hit.distance, 4))
    return (ident, round(hit.score, 6), hit.ranks)


@pytest.fixture(scope="module", params=ASYNC_DRIVERS)
async def aengine(request: pytest.FixtureRequest, server_url: sa.URL) -> Any:
    eng = vecalchemy.create_async_engine(_with_driver(server_url, request.param))
    yield eng
    await eng.dispose()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_async_drivers_find_what_sync_finds(
    table: None, engine: sa.Engine, aengine: AsyncEngine, scenario: Scenario
) -> None:
    with Session(engine) as s:
        want = [_key(h) for h in scenario.sync(s)]
    async with AsyncSession(aengine) as s:
        got = [_key(h) for h in await scenario.async_(s)]
    assert want, "the scenario found nothing: it tests nothing"
    assert got == want
    if scenario.exact is not None:
        assert [k[0] for k in want] == scenario.exact


async def test_async_bad_input_fails_before_sql(table: None, aengine: AsyncEngine) -> None:
    """The checks are the sync path's: DimensionMismatch, nothing sent."""
    sent: list[str] = []

    def capture(conn: object, cursor: object, statement: str, *args: object) -> None:
        sent.append(statement)

    sa.event.listen(aengine.sync_engine, "before_cursor_execute", capture)
    try:
        async with AsyncSession(aengine) as s:
            with pytest.raises(vecalchemy.DimensionMismatch):
                await vecalchemy.asearch(s, Item.cos, Q[:3], k=5)
            with pytest.raises(vecalchemy.InvalidSearch):
                await vecalchemy.ahybrid_search(s, Item.cos, Item.tsv, "", Q, k=5)
            with pytest.raises(vecalchemy.InvalidSearch):
                await vecalchemy.asearch(s, Item.cos, Q, k=5, ef_search=2)
    finally:
        sa.event.remove(aengine.sync_engine, "before_cursor_execute", capture)
    assert sent == []


async def test_async_explain_shows_the_index(table: None, aengine: AsyncEngine) -> None:
    async with AsyncSession(aengine) as s:
        await s.execute(sa.text("SET LOCAL enable_seqscan = off"))
        plan = await vecalchemy.aexplain(s, vecalchemy.nearest(Item.cos, Q, k=5))
    assert "ix_parity_items_cos_hnsw" in plan


#: search() options on the table's Core columns: the direct path on a Connection and an
#: AsyncConnection, against the same search through Connection.execute.
CORE_CASES = [
    ("cosine", "cos", {"k": 10, "ef_search": 200}),
    ("l2 ivfflat", "l2", {"k": 10, "probes": 20}),
    ("inner product", "ip", {"k": 10}),
    ("halfvec", "half", {"k": 10, "ef_search": 200}),
    ("binary quantized", "bq", {"k": 5, "oversample": 8}),
    ("index strategy", "cos", {"k": 10, "strategy": "index"}),
    ("min_similarity", "cos", {"k": 10, "min_similarity": 0.5}),
    ("max_distance", "l2", {"k": 10, "max_distance": 3.0}),
    ("load_embedding", "cos", {"k": 5, "load_embedding": True}),
    ("mmr", "cos", {"k": 5, "diversify": MMR(0.5)}),
    ("rerank", "cos", {"k": 5, "rerank": _rerank}),
]


@pytest.mark.parametrize(("name", "column", "kw"), CORE_CASES, ids=[c[0] for c in CORE_CASES])
async def test_core_columns_direct_and_through_execute(
    table: None,
    engine: sa.Engine,
    aengine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
    name: str,
    column: str,
    kw: Any,
) -> None:
    """On a Core column, search() on a Connection and asearch() on an AsyncConnection
    (their direct path) return the hits search() returns through Connection.execute
    (taken when a listener watches the engine); vectors, when loaded, are the same."""
    from tests.conftest import recorded_statements

    caplog.set_level(logging.DEBUG, logger="vecalchemy.search.direct")
    col = Item.__table__.c[column]  # type: ignore[attr-defined]
    with engine.connect() as conn:
        direct = vecalchemy.search(conn, col, Q, **kw)
        assert any(r.getMessage().startswith("ran directly") for r in caplog.records)
        with recorded_statements(engine) as sent:
            slow = vecalchemy.search(conn, col, Q, **kw)
    async with aengine.connect() as aconn:
        got = await vecalchemy.asearch(aconn, col, Q, **kw)
    assert sent, "the search through execute() did not run"
    assert direct, "the scenario found nothing: it tests nothing"
    want = [_key(h) for h in slow]
    assert [_key(h) for h in direct] == want
    assert [_key(h) for h in got] == want
    if kw.get("load_embedding"):
        for a, b in zip(direct, slow, strict=True):
            assert np.allclose(np.asarray(a.row._mapping[col]), np.asarray(b.row._mapping[col]))
