"""The direct path of ``search()`` on a Core ``Connection`` (vecalchemy.search._direct):
the same hits, rows, settings, fallback, transactions and errors as ``Connection.execute``,
and out of the way wherever someone else watches the statements.

Each test compares the direct path with the path through ``Connection.execute``, which
the search takes as soon as a listener is attached to the engine (as
``recorded_statements`` attaches one).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import TypeDecorator

import vecalchemy
from tests.conftest import ASYNC_DRIVERS, _with_driver, read_settings, recorded_statements
from vecalchemy import HNSW, ScanOptions, embedding_column
from vecalchemy._distance import query_value
from vecalchemy.query._nearest import plan_template

rng = np.random.default_rng(77)
DIM = 8
N = 600
VECS = rng.normal(size=(N, DIM)).astype(np.float32)
QUERIES = rng.normal(size=(6, DIM)).astype(np.float32)


class Shout(TypeDecorator[str]):
    """A column type with its own result processing (upper-cased on the way out)."""

    impl = String(20)
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else value.upper()


metadata = MetaData()
docs = Table(
    "direct_docs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("title", String(20)),
    Column("loud", Shout()),
    embedding_column("embedding", DIM, metric="cosine", index=HNSW(m=8, ef_construction=32)),
)
EMB = docs.c.embedding


@pytest.fixture(scope="module")
def table(engine: Engine) -> Iterator[None]:
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            docs.insert(),
            [
                {"id": i, "title": f"t{i}", "loud": f"l{i}" if i % 5 else None, "embedding": v}
                for i, v in enumerate(VECS)
            ],
        )
        vecalchemy.build_indexes(conn, docs)
        conn.exec_driver_sql("ANALYZE direct_docs")
    yield
    metadata.drop_all(engine)


@pytest.fixture
def conn(table: None, engine: Engine) -> Iterator[Connection]:
    with engine.connect() as c:
        yield c
        c.rollback()


@pytest.fixture
def direct_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="vecalchemy.search.direct")
    return caplog


def _taken(caplog: pytest.LogCaptureFixture) -> int:
    return sum(r.getMessage().startswith("ran directly") for r in caplog.records)


def _ids(hits: list[Any]) -> list[int]:
    return [h.row.id for h in hits]


def _exact(q: np.ndarray, k: int, alive: np.ndarray | None = None) -> list[int]:
    ids = np.arange(N) if alive is None else alive
    v = VECS[ids]
    d = 1 - (v @ q) / (np.linalg.norm(v, axis=1) * np.linalg.norm(q))
    return [int(ids[i]) for i in np.argsort(d, kind="stable")[:k]]


# -- the same answer ----------------------------------------------------------------------


def test_same_hits_and_rows_as_through_execute(
    conn: Connection, engine: Engine, direct_log: pytest.LogCaptureFixture
) -> None:
    """Ids, distances, similarities and every row value agree; rows are SQLAlchemy Rows
    (attribute, string-key and column-key access), with the column types' result
    processing (``Shout`` upper-cases; NULL stays None)."""
    direct = [vecalchemy.search(conn, EMB, q, k=25) for q in QUERIES]
    assert _taken(direct_log) == len(QUERIES)
    conn.rollback()
    with recorded_statements(engine) as sent:
        slow = [vecalchemy.search(conn, EMB, q, k=25) for q in QUERIES]
    assert sent
    assert _taken(direct_log) == len(QUERIES)
    for a, b in zip(direct, slow, strict=True):
        assert _ids(a) == _ids(b)
        assert [h.distance for h in a] == pytest.approx([h.distance for h in b], abs=1e-9)
        assert [h.similarity for h in a] == pytest.approx([h.similarity for h in b], abs=1e-9)
        assert [tuple(h.row) for h in a] == [tuple(h.row) for h in b]
    row = direct[0][0].row
    assert isinstance(row, sa.Row)
    assert row.title == row._mapping["title"] == row._mapping[docs.c.title] == f"t{row.id}"
    louds = {h.row.id: h.row.loud for hits in direct for h in hits}
    assert louds == {i: (f"L{i}" if i % 5 else None) for i in louds}
    assert list(row._mapping) == ["id", "title", "loud", "distance"]


def test_index_settings_applied_then_put_back(
    conn: Connection, direct_log: pytest.LogCaptureFixture
) -> None:
    """k=100 through the index alone (no fallback) returns 100 rows, not pgvector's
    default 40: the settings reached the statement. They stay on the DBAPI connection
    only until the next statement through SQLAlchemy, which sees the transaction's own
    value again."""
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    conn.exec_driver_sql("SET LOCAL hnsw.ef_search = 33")
    hits = vecalchemy.search(conn, EMB, QUERIES[0], k=100, strategy="index")
    assert _taken(direct_log) == 1
    assert len(hits) == 100
    during = read_settings(conn.connection.dbapi_connection)
    assert during["hnsw.ef_search"] == "100"
    assert during["hnsw.iterative_scan"] == "relaxed_order"
    assert conn.exec_driver_sql("SHOW hnsw.ef_search").scalar() == "33"
    assert conn.exec_driver_sql("SHOW hnsw.iterative_scan").scalar() == "off"
    assert len(set(_ids(hits)) & set(_exact(QUERIES[0], 100))) >= 90


def test_ef_search_override_and_consecutive_searches(
    conn: Connection, direct_log: pytest.LogCaptureFixture
) -> None:
    """ef_search= reaches the statement; a second search in the same transaction with
    other settings changes only what differs, and the first value still comes back."""
    conn.exec_driver_sql("SET LOCAL hnsw.ef_search = 21")
    vecalchemy.search(conn, EMB, QUERIES[1], k=10, ef_search=300)
    assert read_settings(conn.connection.dbapi_connection)["hnsw.ef_search"] == "300"
    vecalchemy.search(conn, EMB, QUERIES[2], k=10)
    assert read_settings(conn.connection.dbapi_connection)["hnsw.ef_search"] == "40"
    assert _taken(direct_log) == 2
    assert conn.exec_driver_sql("SHOW hnsw.ef_search").scalar() == "21"


def test_transaction_is_the_connections(engine: Engine, table: None) -> None:
    """The search begins the transaction as autobegin would: commit() and rollback()
    end it, and begin() afterwards is refused exactly as after execute()."""
    with engine.connect() as c:
        assert not c.in_transaction()
        vecalchemy.search(c, EMB, QUERIES[0], k=3)
        assert c.in_transaction()
        with pytest.raises(sa.exc.InvalidRequestError, match="already initialized"):
            c.begin()
        c.commit()
        assert not c.in_transaction()
        assert c.exec_driver_sql("SHOW hnsw.iterative_scan").scalar() == "off"
        c.rollback()
        with c.begin(), c.begin_nested():
            assert len(vecalchemy.search(c, EMB, QUERIES[0], k=3)) == 3
        assert not c.in_transaction()


def test_dead_index_entries_fall_back_to_an_exact_scan(
    conn: Connection, direct_log: pytest.LogCaptureFixture
) -> None:
    """After deleting the nearest rows (dead entries the index still walks), with a small
    max_scan_tuples so the index comes back short, the direct path runs the statement
    again exactly: k rows, the true top k of the rows left."""
    q = QUERIES[3]
    gone = _exact(q, 300)
    conn.execute(docs.delete().where(docs.c.id.in_(gone)))
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    alive = np.setdiff1d(np.arange(N), gone)
    template = plan_template(EMB, 20)
    plan = template.bind(query_value(template.spec, q))
    tight = ScanOptions(max_scan_tuples=50, order="relaxed")
    short = vecalchemy.run(conn, vecalchemy.NearestSearch(plan, scan=tight, strategy="index"))
    assert len(short) < 20  # what the index alone returns
    hits = vecalchemy.run(conn, vecalchemy.NearestSearch(plan, scan=tight))
    assert _taken(direct_log) == 2
    assert _ids(hits) == _exact(q, 20, alive)
    assert conn.exec_driver_sql("SHOW enable_indexscan").scalar() == "on"


# -- out of the way --------------------------------------------------------------------


def test_steps_aside_for_listeners_echo_options_and_autocommit(
    engine: Engine, table: None, direct_log: pytest.LogCaptureFixture
) -> None:
    """A user's listener sees the statement; echo logs it; AUTOCOMMIT and other
    execution options run through execute(). The hits are the same every time."""
    with engine.connect() as c:
        want = _ids(vecalchemy.search(c, EMB, QUERIES[4], k=10))
        c.rollback()
        assert _taken(direct_log) == 1
        with recorded_statements(engine) as sent:
            assert _ids(vecalchemy.search(c, EMB, QUERIES[4], k=10)) == want
        assert any("direct_docs" in s for s in sent)
        c.rollback()
        seen: list[str] = []
        sa.event.listen(c, "after_execute", lambda *a: seen.append("x"))
        assert _ids(vecalchemy.search(c, EMB, QUERIES[4], k=10)) == want
        assert seen == ["x"]
        c.rollback()
    echo = vecalchemy.create_engine(engine.url, echo=True)
    try:
        with echo.connect() as c:
            assert _ids(vecalchemy.search(c, EMB, QUERIES[4], k=10)) == want
    finally:
        echo.dispose()
    with engine.connect() as c:
        auto = c.execution_options(isolation_level="AUTOCOMMIT")
        assert _ids(vecalchemy.search(auto, EMB, QUERIES[4], k=10)) == want
        assert auto.exec_driver_sql("SHOW hnsw.iterative_scan").scalar() == "off"
    with engine.connect() as c:
        opts = c.execution_options(schema_translate_map={None: "public"})
        assert _ids(vecalchemy.search(opts, EMB, QUERIES[4], k=10)) == want
    assert _taken(direct_log) == 1


# -- errors ----------------------------------------------------------------------------


def test_a_refused_statement_raises_as_execute_does(
    engine: Engine, conn: Connection, direct_log: pytest.LogCaptureFixture
) -> None:
    """A statement the server cancels (the table is locked by another transaction, past
    lock_timeout) raises SQLAlchemy's OperationalError around the driver's error, with
    the SQL; after rollback the connection searches again, with clean settings."""
    vecalchemy.search(conn, EMB, QUERIES[5], k=3)  # the index check is done
    conn.rollback()
    with engine.connect() as other:
        other.exec_driver_sql("LOCK TABLE direct_docs IN ACCESS EXCLUSIVE MODE")
        conn.exec_driver_sql("SET LOCAL lock_timeout = '100ms'")
        with pytest.raises(sa.exc.OperationalError, match="lock timeout") as caught:
            vecalchemy.search(conn, EMB, QUERIES[5], k=7)
        other.rollback()
    assert "direct_docs" in str(caught.value.statement)
    assert isinstance(caught.value.orig, psycopg.errors.LockNotAvailable)
    assert not conn.invalidated
    conn.rollback()
    assert conn.exec_driver_sql("SHOW hnsw.ef_search").scalar() == "40"
    assert len(vecalchemy.search(conn, EMB, QUERIES[5], k=7)) == 7
    assert _taken(direct_log) == 3


def test_an_aborted_transaction_raises_as_execute_does(
    conn: Connection, engine: Engine, direct_log: pytest.LogCaptureFixture
) -> None:
    """After a failed statement the transaction is aborted: the direct path's settings
    statement is refused, and the search raises the same InternalError as the path
    through execute() (asserted on both); after rollback both search again."""
    errors = []
    for recorder in (False, True):
        conn.rollback()
        with pytest.raises(sa.exc.ProgrammingError):
            conn.exec_driver_sql("SELECT * FROM no_such_table_here")
        watch = recorded_statements(engine) if recorder else contextlib.nullcontext()
        aborted = pytest.raises(sa.exc.InternalError, match="current transaction is aborted")
        with watch, aborted as e:
            vecalchemy.search(conn, EMB, QUERIES[1], k=4)
        errors.append(type(e.value.orig))
        conn.rollback()
        assert len(vecalchemy.search(conn, EMB, QUERIES[1], k=4)) == 4
    assert errors[0] is errors[1] is psycopg.errors.InFailedSqlTransaction
    assert _taken(direct_log) == 3  # aborted and recovered direct; recovered after recorder


def test_a_dead_connection_is_invalidated(
    engine: Engine, table: None, direct_log: pytest.LogCaptureFixture
) -> None:
    """The server ends the session mid-transaction: the search raises OperationalError
    marked connection_invalidated, the Connection is invalidated, and after rollback
    it reconnects and searches."""
    with engine.connect() as c:
        pid = c.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        with pytest.raises(sa.exc.OperationalError) as caught:
            vecalchemy.search(c, EMB, QUERIES[0], k=5)
        assert caught.value.connection_invalidated
        assert c.invalidated
        c.rollback()
        assert c.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid
        assert len(vecalchemy.search(c, EMB, QUERIES[0], k=5)) == 5
    assert _taken(direct_log) == 2  # the failed search and the one after


def test_bad_query_vector_raises_before_anything_is_sent(
    conn: Connection, direct_log: pytest.LogCaptureFixture
) -> None:
    bad = QUERIES[0].copy()
    bad[2] = np.nan
    with pytest.raises(vecalchemy.InvalidVector, match="non-finite value"):
        vecalchemy.search(conn, EMB, bad, k=3)
    with pytest.raises(vecalchemy.DimensionMismatch, match="8"):
        vecalchemy.search(conn, EMB, np.ones(9, dtype=np.float32), k=3)
    assert not conn.in_transaction()
    assert _taken(direct_log) == 0


# -- threads and async -----------------------------------------------------------------


def test_threads_on_their_own_connections(engine: Engine, table: None) -> None:
    """Eight threads share the compiled statement: each gets its own right answer."""
    errors: list[BaseException] = []
    want = {i: _ids(_search_once(engine, q)) for i, q in enumerate(QUERIES)}

    def work(seed: int) -> None:
        try:
            for j in range(30):
                i = (seed + j) % len(QUERIES)
                assert _ids(_search_once(engine, QUERIES[i])) == want[i]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def _search_once(engine: Engine, q: np.ndarray) -> list[Any]:
    with engine.connect() as c:
        hits = vecalchemy.search(c, EMB, q, k=15)
        c.commit()
    return hits


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
async def test_async_connection_same_hits_and_settings(
    server_url: sa.URL, table: None, engine: Engine, driver: str, direct_log: Any
) -> None:
    """asearch() on an AsyncConnection runs the direct path too (run_sync): the same
    hits as the sync path, the settings put back before the next statement."""
    with engine.connect() as c:
        want = [_ids(vecalchemy.search(c, EMB, q, k=12)) for q in QUERIES]
    aengine: AsyncEngine = vecalchemy.create_async_engine(_with_driver(server_url, driver))
    try:
        async with aengine.connect() as ac:
            await ac.exec_driver_sql("SET LOCAL hnsw.ef_search = 17")
            got = [_ids(await vecalchemy.asearch(ac, EMB, q, k=12)) for q in QUERIES]
            shown = (await ac.exec_driver_sql("SHOW hnsw.ef_search")).scalar()
            await ac.rollback()
            probe = (await ac.execute(select(sa.func.current_setting("hnsw.ef_search")))).scalar()
    finally:
        await aengine.dispose()
    assert got == want
    assert shown == "17"
    assert probe == "40"
    assert _taken(direct_log) == 2 * len(QUERIES)


def test_hits_made_through_their_slots_are_ordinary_records() -> None:
    """The search paths' fast constructors make records equal to the dataclass's own,
    still frozen; a class they cannot make faithfully is refused."""
    import dataclasses

    from vecalchemy._records import slot_constructor
    from vecalchemy.collection.collection import CollectionHit

    hit = slot_constructor(vecalchemy.Hit)((1, "a"), 0.25, 0.75, None)
    assert hit == vecalchemy.Hit((1, "a"), 0.25, 0.75)
    assert hash(hit) == hash(vecalchemy.Hit((1, "a"), 0.25, 0.75))
    with pytest.raises(dataclasses.FrozenInstanceError):
        hit.distance = 0.0  # type: ignore[misc]
    values = ("d1", 0, "text", {"k": 1}, 0, 4, 0.5, 0.5)
    assert slot_constructor(CollectionHit)(*values) == CollectionHit(*values)

    @dataclasses.dataclass(slots=True)
    class Mutable:
        x: int

    with pytest.raises(TypeError, match="not a frozen dataclass"):
        slot_constructor(Mutable)


@pytest.mark.parametrize(("ranking", "directly"), [("tsvector", True), ("bm25", False)])
def test_reused_hybrid_statements_run_directly_with_the_same_hits(
    engine: Engine, direct_log: pytest.LogCaptureFixture, ranking: str, directly: bool
) -> None:
    """A collection's hybrid search (its fused statement reused, values bound) runs on
    the direct path: the same ids, scores and distances as through execute(). A BM25
    leg writes its query's terms into the SQL (literal-execute parameters), which the
    direct path leaves to SQLAlchemy."""
    from vecalchemy import Collection, HashingEmbedder

    coll = Collection(
        f"direct_hy_{ranking}", embedder=HashingEmbedder(32), engine=engine,
        splitter="none", text_ranking=ranking,
    )  # fmt: skip
    try:
        coll.add([f"note {i} about {w}" for i, w in enumerate(["cats", "dogs", "vacuum"] * 20)])
        queries = ["vacuum note", "dogs", "note 7 about cats", "nothing matches zzz"]
        direct = [coll.search(q, k=8, mode="hybrid") for q in queries]
        taken = _taken(direct_log)
        assert taken == (len(queries) if directly else 0)
        with recorded_statements(engine) as sent:
            slow = [coll.search(q, k=8, mode="hybrid") for q in queries]
        assert sent
        assert _taken(direct_log) == taken
        for a, b in zip(direct, slow, strict=True):
            assert [(h.id, h.chunk) for h in a] == [(h.id, h.chunk) for h in b]
            assert [h.similarity for h in a] == pytest.approx([h.similarity for h in b])
            assert [h.distance for h in a] == pytest.approx([h.distance for h in b], nan_ok=True)
        assert len(direct[0]) == 8
    finally:
        coll.drop()


@pytest.mark.slow
def test_direct_searches_survive_a_server_restart(
    tmp_path: Any, direct_log: pytest.LogCaptureFixture
) -> None:
    """Across a restart of the server: searches on connections from a pinging pool give
    the hits they gave before, on the direct path (vector and reused hybrid); a
    Connection held across the restart raises OperationalError marked invalidated, then
    reconnects and searches again."""
    from vecalchemy import Collection, HashingEmbedder
    from vecalchemy.server import EmbeddedServer

    server = EmbeddedServer(tmp_path / "pg", settings={"fsync": "off"})
    server.start()
    engine = vecalchemy.create_engine(server.url(), pool_pre_ping=True)
    try:
        coll = Collection("restart_docs", embedder=HashingEmbedder(32), engine=engine)
        coll.add([f"note {i} about {w}" for i, w in enumerate(["cats", "dogs", "vacuum"] * 10)])
        q = coll.embedder.embed_query("dogs")

        def hits() -> list[Any]:
            return [
                [h.id for h in coll.search(q, k=5)],
                [h.id for h in coll.search("vacuum note", k=5, mode="hybrid")],
            ]

        before = hits()
        held = engine.connect()
        assert len(vecalchemy.search(held, coll.table.c.embedding, q, k=3)) == 3
        held.rollback()
        server.stop()
        server.start()
        taken = _taken(direct_log)
        assert hits() == before
        assert _taken(direct_log) == taken + 2  # both searches ran directly after it
        with pytest.raises(sa.exc.OperationalError) as caught:
            vecalchemy.search(held, coll.table.c.embedding, q, k=3)
        assert caught.value.connection_invalidated
        held.rollback()
        assert [h.row.id for h in vecalchemy.search(held, coll.table.c.embedding, q, k=5)] == (
            before[0]
        )
        held.close()
    finally:
        engine.dispose()
        server.stop()
