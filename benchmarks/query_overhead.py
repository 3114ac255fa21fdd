"""Per-query overhead of ``vecalchemy.search()`` against raw psycopg 3 (issue 2).

What is measured
----------------
The wall-clock latency of one top-k nearest-neighbour query, as an application sees it:
from handing over the query vector to holding the ``(id, title)`` of the k hits, with
the transaction committed. Every contender runs the same query vectors with the same
``k`` and ``hnsw.ef_search``, on one persistent connection of its own, one transaction
per query:

* ``raw psycopg`` (the limit): ``psycopg.connect`` + ``pgvector.psycopg.register_vector``;
  per query ``SELECT set_config('hnsw.ef_search', '40', true)``, then
  ``SELECT id, title, embedding <=> %b AS distance FROM t ORDER BY distance LIMIT 10``
  with the query as a numpy array sent in binary, ``fetchall()``, ``commit()``.
  Every ratio is against this contender's median.
* ``raw psycopg, no SET``: the same without the ``set_config`` round trip.
* ``vecalchemy.search()``: a ``Session`` per query on ``vecalchemy.create_engine``; hits
  carry ORM objects with the embedding deferred. Also with one long-lived ``Session``
  committed after each query, and on a Core ``Connection`` (``docs.c.embedding``, rows
  instead of ORM objects): one checked out of the pool per query, and one kept open
  and committed after each query, as the raw contenders hold theirs.
* ``Collection.search(vector)``: a :class:`vecalchemy.Collection` made from the same
  rows (same ids and vectors, ``splitter="none"``), searched with a precomputed query
  vector, so no embedding is timed. Its table has an HNSW index of its own (another
  graph over the same rows), so its recall is compared with ``raw psycopg, collection
  table``: the raw query on that table, selecting the columns a collection hit holds.
* ``vecalchemy.nearest()``: the same SELECT through ``session.execute``, no settings.
* ``cheatsheet ORM``: plain SQLAlchemy + pgvector-python as the cheatsheet writes it,
  ``register_vector`` in a ``connect`` event, ``SET LOCAL hnsw.ef_search = 40``, then
  ``select(Doc, Doc.embedding.cosine_distance(q).label("dist")).order_by("dist")
  .limit(10)``; it loads the 384-float embedding of every hit.
* async: ``vecalchemy.asearch()`` on asyncpg and on psycopg (async), each against the
  same driver used raw (``set_config`` then the query, in a transaction); with an
  ``AsyncSession`` (ORM objects) and with an ``AsyncConnection`` (the Core column, rows),
  one per query or one kept open.
* what-ifs, to locate the overhead and size possible fixes: raw psycopg in pipeline
  mode (psycopg sends the statements without waiting for each one's result, so the
  settings need not cost a round trip of their own); raw psycopg sending vecalchemy's SQL
  text, as compiled (``LIMIT %(param_1)s``) and with the LIMIT written in; and
  ``search()``'s two statements built once and re-executed with only the vector bound
  (ORM; Core; Core with the LIMIT written in).

Method
------
The data are the docstrings of the running Python's standard library
(:func:`vecalchemy.cli._corpus.stdlib_corpus`, about 3,500 documents) embedded with
``HashingEmbedder(384)``. To reach ``--rows`` rows (100,000 by default) every document
is repeated: copy 0 is the real vector, later copies get Gaussian noise of total norm
0.3 (about 0.015 per coordinate) and are re-normalised, so each copy keeps a cosine of
about 0.96 to its original and the distribution stays that of real text embeddings.
The rows are bulk-loaded with :func:`vecalchemy.load.load` into a table created inside
:func:`vecalchemy.defer_indexes`, then :func:`vecalchemy.build_indexes` builds the HNSW
index (m=16, ef_construction=64). A later run reuses the table when it holds the same
number of rows of the same data version (the table comment records it).

The queries are ``--queries`` (500) docstring titles, embedded with ``embed_query``. One
warm-up pass runs every contender over all queries (it also collects the hits compared
for recall); then ``--rounds`` (5) rounds run every contender over all queries, one
contender after the other, the order rotated each round so that none always runs first
or last. (``--block N`` makes the contenders take turns N queries at a time instead:
the slow drifts of a shared machine then fall on all alike, but every contender runs
with colder CPU caches, which slows the Python-heavy ones by 10 to 20%.)
Per round and contender: median and p95 latency, queries/s, and client CPU time per query
(``time.process_time``: this Python process only, the server is another process). The
reported figure of each statistic is its median over the rounds.

Recall: each contender's top-k ids against raw psycopg's, query by query (1.0 means
the same rows). After the rounds: SQLAlchemy's compiled cache is checked (each
statement's ``context.cache_hit`` over a pass of ``search()`` calls, and whether the
cache key of the nearest-neighbour SELECT is the same for two different query vectors),
as are the server's plan counts of the statements psycopg prepared
(``pg_prepared_statements``) and, with ``EXPLAIN``, that the raw, vecalchemy and
cheatsheet queries all scan the HNSW index. Then ``search()`` is profiled with cProfile
over one pass of the queries, and its client-side steps are timed alone.

Outputs: ``benchmarks/results/query_overhead.json`` (machine, versions, settings and
every statistic), ``benchmarks/results/query_overhead.png`` (median latency, p95
whiskers), and the generated part of the "Query overhead (issue 2)" section of
``docs/benchmarks.md``. Run from the repository::

    .venv/bin/python benchmarks/query_overhead.py            # defaults, a few minutes
    .venv/bin/python benchmarks/query_overhead.py --rows 20000 --queries 200 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt
import psycopg
import sqlalchemy as sa
from pgvector.asyncpg import register_vector as register_vector_asyncpg
from pgvector.psycopg import register_vector, register_vector_async
from pgvector.sqlalchemy import Vector
from sqlalchemy import String, event, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import HNSW, Embedding
from vecalchemy._vectors import as_query_value
from vecalchemy.cli._corpus import stdlib_corpus
from vecalchemy.embedders import HashingEmbedder
from vecalchemy.load import load
from vecalchemy.metrics import Storage
from vecalchemy.schema import vector_indexes
from vecalchemy.server import EmbeddedServer

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DOC = REPO / "docs" / "benchmarks.md"

TABLE = "bench_query_overhead"
DIM = 384
K = 10
EF_SEARCH = 40
NOISE_NORM = 0.3  # total norm of the noise added to each copy before re-normalising
SEED = 0
#: Bump when the way rows are made changes; a table with another version is reloaded.
DATA_VERSION = "query-overhead-v1"

RAW_SQL = f"SELECT id, title, embedding <=> %b AS distance FROM {TABLE} ORDER BY distance LIMIT {K}"
RAW_SQL_ASYNCPG = (
    f"SELECT id, title, embedding <=> $1 AS distance FROM {TABLE} ORDER BY distance LIMIT {K}"
)
SET_SQL = f"SELECT set_config('hnsw.ef_search', '{EF_SEARCH}', true)"

Vec = npt.NDArray[np.float32]
Hits = list[tuple[int, str]]


# -- the two declarations of one table ------------------------------------------------


class _VecBase(DeclarativeBase):
    pass


class VecDoc(_VecBase):
    """The table as vecalchemy declares it: metric and index fixed on the column."""

    __tablename__ = TABLE

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    embedding = Embedding(DIM, metric="cosine", index=HNSW(m=16, ef_construction=64))


#: The table itself, for Core contenders (``DOCS.c.embedding``).
DOCS: sa.Table = VecDoc.__table__  # type: ignore[assignment]


class _SheetBase(DeclarativeBase):
    pass


class SheetDoc(_SheetBase):
    """The same table as the cheatsheet declares it: a plain pgvector column."""

    __tablename__ = TABLE

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    embedding: Mapped[Any] = mapped_column(Vector(DIM))


# -- database and data ----------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    """How each contender reaches the server."""

    url: sa.URL  # postgresql+psycopg://
    params: dict[str, Any]  # host, port, user, password, dbname: for psycopg.connect

    def driver_url(self, driver: str) -> sa.URL:
        return self.url.set(drivername=f"postgresql+{driver}")

    def asyncpg_params(self) -> dict[str, Any]:
        params = {k: v for k, v in self.params.items() if k != "dbname"}
        params["database"] = self.params.get("dbname")
        return params


def connection_params(url: sa.URL) -> dict[str, Any]:
    """psycopg.connect keyword arguments for a SQLAlchemy URL (socket dir or host)."""
    query = {k: v if isinstance(v, str) else v[0] for k, v in url.query.items()}
    params: dict[str, Any] = {
        "host": query.get("host", url.host),
        "port": int(query.get("port", url.port or 5432)),
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
    }
    return {k: v for k, v in params.items() if v is not None}


@contextmanager
def database(url: str | None, data_dir: Path) -> Iterator[Database]:
    """The server to benchmark on: ``url``, or the embedded one in ``data_dir``.

    The embedded server is stopped afterwards only if this call started it.
    """
    server: EmbeddedServer | None = None
    started = False
    if url is None:
        server = EmbeddedServer(data_dir)
        if not server.status().running:
            print(f"starting the embedded PostgreSQL in {data_dir}", flush=True)
            server.start()
            started = True
        url = server.url()
    resolved = vecalchemy.resolve_url(url)
    try:
        yield Database(url=resolved, params=connection_params(resolved))
    finally:
        if server is not None and started:
            print("stopping the embedded PostgreSQL we started", flush=True)
            server.stop()


@dataclass(frozen=True)
class Dataset:
    """The query vectors and how the table was made."""

    documents: int
    rows: int
    version: str
    queries: list[Vec]
    query_texts: list[str]
    load_seconds: float | None  # None when the table was reused
    index_seconds: float | None


def make_rows(base: Vec, rows: int) -> Vec:
    """``rows`` vectors: the real ones, then noisy re-normalised copies of them."""
    n = len(base)
    rng = np.random.default_rng(SEED)
    out = base[np.arange(rows) % n].astype(np.float32, copy=True)
    noise = rng.standard_normal((rows, base.shape[1]), dtype=np.float32)
    noise *= np.float32(NOISE_NORM / np.sqrt(base.shape[1]))
    noise[: min(n, rows)] = 0.0  # copy 0 is the real embedding
    out += noise
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def prepare_data(db: Database, rows: int, n_queries: int, *, reload: bool = False) -> Dataset:
    """Load the table unless it already holds this data (or ``reload``); return the queries."""
    docs = stdlib_corpus()
    embedder = HashingEmbedder(DIM)
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    data_version = f"{DATA_VERSION}:py{py}:docs={len(docs)}:rows={rows}:{embedder.name}"

    rng = np.random.default_rng(SEED + 1)
    picked = rng.choice(len(docs), size=n_queries, replace=n_queries > len(docs))
    texts = [docs[int(i)].title.replace(".", " ").replace("_", " ") for i in picked]
    queries = [embedder.embed_query(t) for t in texts]

    engine = vecalchemy.create_engine(db.url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c "
                    "WHERE c.relname = :t AND c.relkind = 'r' "
                    "AND c.relnamespace = current_schema()::regnamespace"
                ),
                {"t": TABLE},
            ).scalar()
            count = (
                conn.execute(select(sa.func.count()).select_from(VecDoc)).scalar()
                if found is not None
                else None
            )
        load_seconds = index_seconds = None
        if found == data_version and count == rows and not reload:
            print(f"reusing table {TABLE}: {rows:,} rows of {data_version}", flush=True)
        else:
            print(f"embedding {len(docs):,} docstrings and making {rows:,} rows", flush=True)
            base = embedder.embed_documents([d.text for d in docs])
            vectors = make_rows(base, rows)
            titles = [f"{docs[i % len(docs)].title[:280]} #{i // len(docs)}" for i in range(rows)]
            started = time.perf_counter()
            with engine.begin() as conn:
                _VecBase.metadata.drop_all(conn)
                with vecalchemy.defer_indexes():
                    _VecBase.metadata.create_all(conn)
                load(conn, VecDoc, {"id": range(rows), "title": titles, "embedding": vectors})
                conn.execute(text(f"COMMENT ON TABLE {TABLE} IS '{data_version}'"))
            load_seconds = time.perf_counter() - started
            print(f"loaded {rows:,} rows in {load_seconds:.1f} s; building HNSW", flush=True)
            started = time.perf_counter()
            vecalchemy.build_indexes(engine, VecDoc)
            index_seconds = time.perf_counter() - started
            print(f"built the HNSW index in {index_seconds:.1f} s", flush=True)
        vecalchemy.build_indexes(engine, VecDoc)  # a no-op when it exists
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"VACUUM ANALYZE {TABLE}"))
    finally:
        engine.dispose()
    return Dataset(len(docs), rows, data_version, queries, texts, load_seconds, index_seconds)


# -- contenders -----------------------------------------------------------------------

Runner = Callable[[Sequence[Vec]], tuple[list[int], list[Hits]]]


@dataclass
class Contender:
    key: str
    label: str
    group: str  # limit, what-if, vecalchemy, cheatsheet, async-raw, async-vecalchemy
    run: Runner
    close: Callable[[], None]


def sync_runner(one: Callable[[Vec], Hits]) -> Runner:
    def run(queries: Sequence[Vec]) -> tuple[list[int], list[Hits]]:
        latencies: list[int] = []
        hits: list[Hits] = []
        clock = time.perf_counter_ns
        for q in queries:
            t0 = clock()
            h = one(q)
            latencies.append(clock() - t0)
            hits.append(h)
        return latencies, hits

    return run


def async_runner(loop: asyncio.AbstractEventLoop, one: Callable[[Vec], Awaitable[Hits]]) -> Runner:
    async def batch(queries: Sequence[Vec]) -> tuple[list[int], list[Hits]]:
        latencies: list[int] = []
        hits: list[Hits] = []
        clock = time.perf_counter_ns
        for q in queries:
            t0 = clock()
            h = await one(q)
            latencies.append(clock() - t0)
            hits.append(h)
        return latencies, hits

    def run(queries: Sequence[Vec]) -> tuple[list[int], list[Hits]]:
        return loop.run_until_complete(batch(queries))

    return run


def raw_psycopg(db: Database, *, settings: bool) -> Contender:
    conn = psycopg.connect(**db.params)
    register_vector(conn)

    def one(q: Vec) -> Hits:
        with conn.cursor() as cur:
            if settings:
                cur.execute(SET_SQL)
            cur.execute(RAW_SQL, (q,))
            rows = cur.fetchall()
        conn.commit()
        return [(r[0], r[1]) for r in rows]

    if settings:
        return Contender("raw_psycopg", "raw psycopg", "limit", sync_runner(one), conn.close)
    return Contender(
        "raw_psycopg_noset", "raw psycopg, no SET", "limit", sync_runner(one), conn.close
    )


def raw_psycopg_pipelined(db: Database) -> Contender:
    conn = psycopg.connect(**db.params)
    register_vector(conn)

    def one(q: Vec) -> Hits:
        with conn.pipeline(), conn.cursor() as cur:
            cur.execute(SET_SQL)
            cur.execute(RAW_SQL, (q,))
            conn.commit()  # queued behind the SELECT; its results are read after
            rows = cur.fetchall()
        return [(r[0], r[1]) for r in rows]

    return Contender(
        "raw_psycopg_pipeline",
        "what-if: raw psycopg, pipelined",
        "what-if",
        sync_runner(one),
        conn.close,
    )


def va_search(db: Database, *, session_per_query: bool) -> Contender:
    engine = vecalchemy.create_engine(db.url)
    column = VecDoc.embedding

    def one(q: Vec) -> Hits:
        with Session(engine) as session:
            hits = vecalchemy.search(session, column, q, k=K, ef_search=EF_SEARCH)
            out = [(h.row.id, h.row.title) for h in hits]
            session.commit()
        return out

    if session_per_query:
        return Contender(
            "va_search", "vecalchemy.search()", "vecalchemy", sync_runner(one), engine.dispose
        )

    session = Session(engine)

    def one_session(q: Vec) -> Hits:
        hits = vecalchemy.search(session, column, q, k=K, ef_search=EF_SEARCH)
        out = [(h.row.id, h.row.title) for h in hits]
        session.commit()
        return out

    def close() -> None:
        session.close()
        engine.dispose()

    return Contender(
        "va_search_one_session",
        "vecalchemy.search(), one Session",
        "vecalchemy",
        sync_runner(one_session),
        close,
    )


def va_search_core(db: Database) -> Contender:
    engine = vecalchemy.create_engine(db.url)
    column = DOCS.c.embedding

    def one(q: Vec) -> Hits:
        with engine.connect() as conn:
            hits = vecalchemy.search(conn, column, q, k=K, ef_search=EF_SEARCH)
            out = [(h.row.id, h.row.title) for h in hits]
            conn.commit()
        return out

    return Contender(
        "va_search_core",
        "vecalchemy.search(), Core Connection",
        "vecalchemy",
        sync_runner(one),
        engine.dispose,
    )


def va_search_core_persistent(db: Database) -> Contender:
    """search() on one Core Connection kept open, committed after each query: the way
    the raw contenders hold theirs."""
    engine = vecalchemy.create_engine(db.url)
    conn = engine.connect()
    column = DOCS.c.embedding

    def one(q: Vec) -> Hits:
        hits = vecalchemy.search(conn, column, q, k=K, ef_search=EF_SEARCH)
        out = [(h.row.id, h.row.title) for h in hits]
        conn.commit()
        return out

    def close() -> None:
        conn.close()
        engine.dispose()

    return Contender(
        "va_search_core_persistent",
        "vecalchemy.search(), one Core Connection",
        "vecalchemy",
        sync_runner(one),
        close,
    )


COLLECTION = "bench_query_overhead_coll"


class _TableVectors:
    """An embedder that hands back the benchmark table's own vectors (by title), so a
    Collection holds exactly the rows of the benchmark table."""

    def __init__(self, titles: Sequence[str], vectors: Vec, name: str) -> None:
        self._by_title = dict(zip(titles, vectors, strict=True))
        self.dim = DIM
        self.name = f"bench-table-vectors:{name}"
        self.max_tokens: int | None = None

    def embed_documents(self, texts: Sequence[str]) -> Vec:
        return np.stack([self._by_title[t] for t in texts]).astype(np.float32)

    def embed_query(self, text: str) -> Vec:
        return self._by_title[text].astype(np.float32)

    async def aembed_documents(self, texts: Sequence[str]) -> Vec:
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> Vec:
        return self.embed_query(text)


def prepare_collection(db: Database, data_version: str) -> vecalchemy.Collection:
    """A Collection over the benchmark table's rows (same ids and vectors): made once
    from the table, then reused while it holds as many rows from the same data."""
    engine = vecalchemy.create_engine(db.url)
    with engine.connect() as conn:
        rows = conn.execute(select(DOCS.c.id, DOCS.c.embedding).order_by(DOCS.c.id)).all()
    texts = [f"row {r.id}" for r in rows]
    vectors = np.stack([np.asarray(r.embedding, dtype=np.float32) for r in rows])
    embedder = _TableVectors(texts, vectors, data_version)

    def collection() -> vecalchemy.Collection:
        return vecalchemy.Collection(
            COLLECTION,
            engine=engine,
            embedder=embedder,
            metric="cosine",
            splitter="none",
            index=HNSW(m=16, ef_construction=64),
        )

    coll = collection()
    try:
        ready = coll.count() == len(rows) and len(coll.search(vectors[0], k=1)) == 1
    except vecalchemy.VecalchemyError:
        ready = False
    if ready:
        print(f"reusing collection {COLLECTION}", flush=True)
    else:
        print(f"making collection {COLLECTION} from the table's {len(rows):,} rows", flush=True)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {COLLECTION} CASCADE")
        coll = collection()
        coll.add(texts, ids=[str(r.id) for r in rows], batch_size=2000)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"VACUUM ANALYZE {COLLECTION}")
    return coll


#: Contenders whose hits are compared with another contender's than raw psycopg's.
REFERENCE = {"va_collection": "raw_psycopg_collection"}


def raw_psycopg_collection(db: Database) -> Contender:
    """raw psycopg as the limit, on the collection's table and its columns."""
    conn = psycopg.connect(**db.params)
    register_vector(conn)
    sql = (
        'SELECT id, chunk, text, metadata, start, "end", embedding <=> %b AS distance '
        f"FROM {COLLECTION} ORDER BY distance LIMIT {K}"
    )

    def one(q: Vec) -> Hits:
        with conn.cursor() as cur:
            cur.execute(SET_SQL)
            cur.execute(sql, (q,))
            rows = cur.fetchall()
        conn.commit()
        return [(int(r[0]), r[2]) for r in rows]

    return Contender(
        "raw_psycopg_collection",
        "raw psycopg, collection table",
        "limit",
        sync_runner(one),
        conn.close,
    )


def va_collection(coll: vecalchemy.Collection) -> Contender:
    """Collection.search with a precomputed query vector (no embedding in the timing)."""

    def one(q: Vec) -> Hits:
        return [(int(h.id), h.text) for h in coll.search(q, k=K, ef_search=EF_SEARCH)]

    return Contender(
        "va_collection",
        "Collection.search(vector)",
        "vecalchemy",
        sync_runner(one),
        coll.engine.dispose,
    )


def prebuilt(db: Database, q0: Vec, *, core: bool, literal_limit: bool = False) -> Contender:
    """What search() would cost if it reused its two statements and bound only the vector.

    ``literal_limit`` also writes the LIMIT into the SQL (see :func:`driver_cursor`).
    """
    engine = vecalchemy.create_engine(db.url)
    settings = select(sa.func.set_config("hnsw.ef_search", str(EF_SEARCH), True))

    def check(q: Vec) -> Any:
        return as_query_value(q, dim=DIM, storage=Storage.VECTOR, zero_ok=False)

    if core:
        core_stmt = vecalchemy.nearest(DOCS.c.embedding, q0, k=K)
        if literal_limit:
            core_stmt = core_stmt.limit(sa.literal_column(str(K)))

        def one_core(q: Vec) -> Hits:
            value = check(q)
            with engine.connect() as conn:
                conn.execute(settings)
                rows = conn.execute(core_stmt, {"query_vector": value}).all()
                out = [(r.id, r.title) for r in rows]
                conn.commit()
            return out

        return Contender(
            "prebuilt_core_literal_limit" if literal_limit else "prebuilt_core",
            "what-if: search(), Core, prebuilt stmts"
            + (", literal LIMIT" if literal_limit else ""),
            "what-if",
            sync_runner(one_core),
            engine.dispose,
        )

    stmt = vecalchemy.nearest(VecDoc.embedding, q0, k=K)

    def one(q: Vec) -> Hits:
        value = check(q)
        with Session(engine) as session:
            session.execute(settings)
            rows = session.execute(stmt, {"query_vector": value}).all()
            out = [(doc.id, doc.title) for doc, _ in rows]
            session.commit()
        return out

    return Contender(
        "prebuilt",
        "what-if: search(), ORM, prebuilt stmts",
        "what-if",
        sync_runner(one),
        engine.dispose,
    )


def vecalchemy_sql(q0: Vec, *, literal_limit: bool) -> tuple[str, dict[str, Any]]:
    """The SQL text and parameters vecalchemy sends through psycopg for the query.

    With ``literal_limit`` the LIMIT is written into the SQL, as the raw query has it,
    instead of being a bind parameter.
    """
    stmt = vecalchemy.nearest(DOCS.c.embedding, q0, k=K)
    if literal_limit:
        stmt = stmt.limit(sa.literal_column(str(K)))
    compiled = stmt.compile(dialect=sa.create_engine("postgresql+psycopg://").dialect)
    return str(compiled), dict(compiled.params)


def raw_psycopg_va_sql(db: Database, q0: Vec, *, literal_limit: bool) -> Contender:
    """raw psycopg exactly as the limit, sending vecalchemy's SQL instead of the raw SQL."""
    conn = psycopg.connect(**db.params)
    register_vector(conn)
    sql, params = vecalchemy_sql(q0, literal_limit=literal_limit)

    def one(q: Vec) -> Hits:
        with conn.cursor() as cur:
            cur.execute(SET_SQL)
            cur.execute(sql, {**params, "query_vector": q})
            rows = cur.fetchall()
        conn.commit()
        return [(r[0], r[1]) for r in rows]

    return Contender(
        "raw_psycopg_va_sql_literal_limit" if literal_limit else "raw_psycopg_va_sql",
        "what-if: raw psycopg, vecalchemy's SQL" + (", literal LIMIT" if literal_limit else ""),
        "what-if",
        sync_runner(one),
        conn.close,
    )


def va_nearest(db: Database) -> Contender:
    engine = vecalchemy.create_engine(db.url)

    def one(q: Vec) -> Hits:
        with Session(engine) as session:
            rows = session.execute(vecalchemy.nearest(VecDoc.embedding, q, k=K)).all()
            out = [(doc.id, doc.title) for doc, _ in rows]
            session.commit()
        return out

    return Contender(
        "va_nearest",
        "vecalchemy.nearest(), no SET",
        "vecalchemy",
        sync_runner(one),
        engine.dispose,
    )


def cheatsheet_engine(url: sa.URL) -> sa.Engine:
    """A plain SQLAlchemy engine set up the way the cheatsheet's users do it."""
    engine = sa.create_engine(url)

    @event.listens_for(engine, "connect")
    def _register(dbapi_connection: Any, record: Any) -> None:
        register_vector(dbapi_connection)

    return engine


def cheatsheet(db: Database) -> Contender:
    engine = cheatsheet_engine(db.url)
    set_local = text(f"SET LOCAL hnsw.ef_search = {EF_SEARCH}")

    def one(q: Vec) -> Hits:
        with Session(engine) as session:
            session.execute(set_local)
            stmt = (
                select(SheetDoc, SheetDoc.embedding.cosine_distance(q).label("dist"))
                .order_by("dist")
                .limit(K)
            )
            out = [(doc.id, doc.title) for doc, _ in session.execute(stmt).all()]
            session.commit()
        return out

    return Contender("cheatsheet", "cheatsheet ORM", "cheatsheet", sync_runner(one), engine.dispose)


def raw_asyncpg(db: Database, loop: asyncio.AbstractEventLoop) -> Contender:
    async def connect() -> Any:
        conn = await asyncpg.connect(**db.asyncpg_params())
        await register_vector_asyncpg(conn)
        return conn

    conn = loop.run_until_complete(connect())

    async def one(q: Vec) -> Hits:
        async with conn.transaction():
            await conn.execute(SET_SQL)
            rows = await conn.fetch(RAW_SQL_ASYNCPG, q)
        return [(r[0], r[1]) for r in rows]

    return Contender(
        "raw_asyncpg",
        "raw asyncpg",
        "async-raw",
        async_runner(loop, one),
        lambda: loop.run_until_complete(conn.close()),
    )


def raw_psycopg_async(db: Database, loop: asyncio.AbstractEventLoop) -> Contender:
    async def connect() -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(**db.params)
        await register_vector_async(conn)
        return conn

    conn = loop.run_until_complete(connect())

    async def one(q: Vec) -> Hits:
        async with conn.cursor() as cur:
            await cur.execute(SET_SQL)
            await cur.execute(RAW_SQL, (q,))
            rows = await cur.fetchall()
        await conn.commit()
        return [(r[0], r[1]) for r in rows]

    return Contender(
        "raw_psycopg_async",
        "raw psycopg async",
        "async-raw",
        async_runner(loop, one),
        lambda: loop.run_until_complete(conn.close()),
    )


def va_asearch(
    db: Database,
    loop: asyncio.AbstractEventLoop,
    driver: str,
    *,
    core: bool = False,
    persistent: bool = False,
) -> Contender:
    """asearch() with an AsyncSession (ORM objects), or with ``core`` an AsyncConnection
    and the Core column (rows): one per query, or with ``persistent`` one kept open and
    committed after each query, as the raw contenders hold theirs."""
    engine: AsyncEngine = vecalchemy.create_async_engine(db.driver_url(driver))
    column = DOCS.c.embedding if core or persistent else VecDoc.embedding

    async def one(q: Vec) -> Hits:
        async with engine.connect() if core else AsyncSession(engine) as bind:
            hits = await vecalchemy.asearch(bind, column, q, k=K, ef_search=EF_SEARCH)
            out = [(h.row.id, h.row.title) for h in hits]
            await bind.commit()
        return out

    name = "asyncpg" if driver == "asyncpg" else "psycopg async"
    if persistent:
        conn: AsyncConnection = loop.run_until_complete(engine.connect().start())

        async def one_kept(q: Vec) -> Hits:
            hits = await vecalchemy.asearch(conn, column, q, k=K, ef_search=EF_SEARCH)
            out = [(h.row.id, h.row.title) for h in hits]
            await conn.commit()
            return out

        async def close() -> None:
            await conn.close()
            await engine.dispose()

        return Contender(
            f"va_asearch_core_persistent_{driver}",
            f"vecalchemy.asearch(), one Core AsyncConnection, {name}",
            "async-vecalchemy",
            async_runner(loop, one_kept),
            lambda: loop.run_until_complete(close()),
        )
    return Contender(
        f"va_asearch_core_{driver}" if core else f"va_asearch_{driver}",
        f"vecalchemy.asearch(), {'Core AsyncConnection, ' if core else ''}{name}",
        "async-vecalchemy",
        async_runner(loop, one),
        lambda: loop.run_until_complete(engine.dispose()),
    )


def make_contenders(
    db: Database, loop: asyncio.AbstractEventLoop, q0: Vec, coll: vecalchemy.Collection
) -> list[Contender]:
    return [
        raw_psycopg(db, settings=True),
        raw_psycopg(db, settings=False),
        va_search(db, session_per_query=True),
        va_search(db, session_per_query=False),
        va_search_core(db),
        va_search_core_persistent(db),
        raw_psycopg_collection(db),
        va_collection(coll),
        va_nearest(db),
        cheatsheet(db),
        raw_asyncpg(db, loop),
        va_asearch(db, loop, "asyncpg"),
        va_asearch(db, loop, "asyncpg", core=True),
        va_asearch(db, loop, "asyncpg", persistent=True),
        raw_psycopg_async(db, loop),
        va_asearch(db, loop, "psycopg_async"),
        va_asearch(db, loop, "psycopg_async", core=True),
        va_asearch(db, loop, "psycopg_async", persistent=True),
        # What-ifs: how much of the overhead a change could remove.
        raw_psycopg_pipelined(db),
        raw_psycopg_va_sql(db, q0, literal_limit=False),
        raw_psycopg_va_sql(db, q0, literal_limit=True),
        prebuilt(db, q0, core=False),
        prebuilt(db, q0, core=True),
        prebuilt(db, q0, core=True, literal_limit=True),
    ]


# -- measuring ------------------------------------------------------------------------


@dataclass
class RoundStats:
    median_ms: float
    p95_ms: float
    qps: float
    cpu_ms: float  # client CPU time per query


@dataclass
class Result:
    key: str
    label: str
    group: str
    rounds: list[RoundStats] = field(default_factory=list)
    recall: float = 0.0  # mean overlap of the top-k ids with raw psycopg's
    same_order: float = 0.0  # share of queries with exactly raw psycopg's ids, in order

    def stat(self, name: str) -> float:
        return float(statistics.median(getattr(r, name) for r in self.rounds))


@dataclass
class _Tally:
    latencies: list[int] = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0

    def stats(self) -> RoundStats:
        ms = np.asarray(self.latencies, dtype=np.float64) / 1e6
        n = len(self.latencies)
        return RoundStats(
            median_ms=float(np.median(ms)),
            p95_ms=float(np.percentile(ms, 95)),
            qps=n / self.wall,
            cpu_ms=self.cpu / n * 1000,
        )


def measure_round(
    contenders: list[Contender], queries: Sequence[Vec], *, first: int, block: int
) -> dict[str, RoundStats]:
    """One round: every contender runs every query, ``block`` queries per turn.

    The turns start with ``contenders[first]``; the order rotates at each block.
    """
    tallies = {c.key: _Tally() for c in contenders}
    for b, start in enumerate(range(0, len(queries), block)):
        part = queries[start : start + block]
        shift = (first + b) % len(contenders)
        for c in contenders[shift:] + contenders[:shift]:
            tally = tallies[c.key]
            gc.collect()  # every turn starts with the same, empty, young generations
            cpu0 = time.process_time()
            wall0 = time.perf_counter()
            latencies, _ = c.run(part)
            tally.wall += time.perf_counter() - wall0
            tally.cpu += time.process_time() - cpu0
            tally.latencies += latencies
    return {key: tally.stats() for key, tally in tallies.items()}


def compare_hits(reference: list[Hits], hits: list[Hits]) -> tuple[float, float]:
    overlap = []
    same = 0
    for ref, got in zip(reference, hits, strict=True):
        ref_ids = [i for i, _ in ref]
        got_ids = [i for i, _ in got]
        overlap.append(len(set(ref_ids) & set(got_ids)) / max(1, len(ref_ids)))
        same += ref_ids == got_ids
    return float(np.mean(overlap)), same / len(reference)


def run_rounds(
    contenders: list[Contender], queries: Sequence[Vec], *, rounds: int, block: int
) -> dict[str, Result]:
    results = {c.key: Result(c.key, c.label, c.group) for c in contenders}
    print(f"warm-up: {len(contenders)} contenders x {len(queries)} queries", flush=True)
    hits = {c.key: c.run(queries)[1] for c in contenders}
    for c in contenders:
        # The collection has an HNSW index of its own (another graph over the same rows):
        # it is compared with raw psycopg on its table.
        reference = hits[REFERENCE.get(c.key, "raw_psycopg")]
        results[c.key].recall, results[c.key].same_order = compare_hits(reference, hits[c.key])
    for r in range(rounds):
        started = time.perf_counter()
        stats = measure_round(contenders, queries, first=r * 7, block=block)
        for key, st in stats.items():
            results[key].rounds.append(st)
        took = time.perf_counter() - started
        line = ", ".join(f"{c.key} {results[c.key].rounds[-1].median_ms:.3f}" for c in contenders)
        print(f"round {r + 1}/{rounds} ({took:.0f} s): median ms {line}", flush=True)
    return results


# -- the statement cache and the profile ----------------------------------------------


def check_plans(db: Database, q: Vec) -> dict[str, bool]:
    """Whether the raw, vecalchemy and cheatsheet SELECTs are served by the HNSW index."""
    index = str(vector_indexes(DOCS)[0].name)
    plans: dict[str, str] = {}
    with psycopg.connect(**db.params) as conn:
        register_vector(conn)
        plans["raw psycopg"] = "\n".join(r[0] for r in conn.execute(f"EXPLAIN {RAW_SQL}", (q,)))
    for name, engine, stmt in (
        (
            "vecalchemy",
            vecalchemy.create_engine(db.url),
            vecalchemy.nearest(VecDoc.embedding, q, k=K),
        ),
        (
            "cheatsheet",
            cheatsheet_engine(db.url),
            select(SheetDoc, SheetDoc.embedding.cosine_distance(q).label("dist"))
            .order_by("dist")
            .limit(K),
        ),
    ):
        compiled = stmt.compile(dialect=engine.dialect)
        try:
            with engine.connect() as conn:
                rows = conn.exec_driver_sql(f"EXPLAIN {compiled}", dict(compiled.params)).all()
        finally:
            engine.dispose()
        plans[name] = "\n".join(r[0] for r in rows)
    return {name: f"Index Scan using {index}" in plan for name, plan in plans.items()}


def check_statement_cache(db: Database, queries: Sequence[Vec]) -> dict[str, Any]:
    """How often SQLAlchemy's compiled cache is hit over one pass of ``search()`` calls."""
    engine = vecalchemy.create_engine(db.url)
    counts: dict[str, dict[str, int]] = {}

    @event.listens_for(engine, "after_cursor_execute")
    def _count(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: Any
    ) -> None:
        if "set_config" in statement:
            kind = "set_config"
        elif TABLE in statement:
            kind = "nearest SELECT"
        else:
            return
        name = getattr(context.cache_hit, "name", str(context.cache_hit))
        per = counts.setdefault(kind, {})
        per[name] = per.get(name, 0) + 1

    try:
        for q in queries:
            with Session(engine) as session:
                vecalchemy.search(session, VecDoc.embedding, q, k=K, ef_search=EF_SEARCH)
                session.commit()
        cache_entries = len(engine._compiled_cache or {})
        # psycopg prepares a statement on the server after 5 executions; PostgreSQL then
        # re-plans it each time (custom plan) unless a generic plan is as cheap.
        with engine.connect() as conn:
            prepared = [
                {"statement": " ".join(r[0].split())[:90], "generic": r[1], "custom": r[2]}
                for r in conn.execute(
                    text(
                        "SELECT statement, generic_plans, custom_plans "
                        "FROM pg_prepared_statements ORDER BY statement"
                    )
                )
            ]
    finally:
        engine.dispose()
    # The same count for vecalchemy's SQL sent through raw psycopg, LIMIT as a parameter
    # or written in.
    by_limit: dict[str, dict[str, int]] = {}
    for literal in (False, True):
        sql, params = vecalchemy_sql(queries[0], literal_limit=literal)
        with psycopg.connect(**db.params) as raw:
            register_vector(raw)
            for q in queries[:50]:
                raw.execute(sql, {**params, "query_vector": q}).fetchall()
            generic, custom = raw.execute(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE statement LIKE %s",
                [f"%{TABLE}%"],
            ).fetchone() or (0, 0)
        by_limit["literal LIMIT" if literal else "LIMIT parameter"] = {
            "generic": generic,
            "custom": custom,
        }
    a = vecalchemy.nearest(VecDoc.embedding, queries[0], k=K)
    b = vecalchemy.nearest(VecDoc.embedding, queries[1], k=K)
    key_a, key_b = a._generate_cache_key(), b._generate_cache_key()
    return {
        "calls": len(queries),
        "statements": counts,
        "compiled_cache_entries": cache_entries,
        "server_prepared_statements": prepared,
        "plans_of_vecalchemy_sql_by_limit": by_limit,
        "same_cache_key_for_different_vectors": key_a is not None and key_a == key_b,
    }


def per_call_us(fn: Callable[[Any], object], items: Sequence[Any], repeats: int = 5) -> float:
    """Median over ``repeats`` passes of the mean time of ``fn(item)``, in microseconds."""
    passes = []
    for _ in range(repeats):
        started = time.perf_counter()
        for item in items:
            fn(item)
        passes.append((time.perf_counter() - started) / len(items) * 1e6)
    return float(statistics.median(passes))


def client_breakdown(db: Database, queries: Sequence[Vec]) -> dict[str, float]:
    """Microseconds per call of the client-side steps of search(), without a profiler."""
    engine = vecalchemy.create_engine(db.url)
    column = VecDoc.embedding

    def settings_stmt(_: object) -> Any:
        return select(sa.func.set_config("hnsw.ef_search", str(EF_SEARCH), True))

    def session_only(_: object) -> None:
        with Session(engine) as session:
            session.commit()

    try:
        built = [vecalchemy.nearest(column, q, k=K) for q in queries]
        settings = [settings_stmt(None) for _ in queries]
        out = {
            "as_query_value(): check the vector": per_call_us(
                lambda q: as_query_value(q, dim=DIM, storage=Storage.VECTOR, zero_ok=False),
                queries,
            ),
            "nearest(): build and check the SELECT": per_call_us(
                lambda q: vecalchemy.nearest(column, q, k=K), queries
            ),
            "build the set_config SELECT": per_call_us(settings_stmt, queries),
            # A statement memoizes its key: time each new statement once.
            "cache key of a new nearest() SELECT": per_call_us(
                lambda st: st._generate_cache_key(), built, repeats=1
            ),
            "cache key of a new set_config SELECT": per_call_us(
                lambda st: st._generate_cache_key(), settings, repeats=1
            ),
            "Session() + commit + close, no statement": per_call_us(session_only, queries),
        }
    finally:
        engine.dispose()
    return out


# (label, file suffix, function name): cumulative time of these, per search() call.
PROFILE_FUNCTIONS: tuple[tuple[str, str, str], ...] = (
    ("vecalchemy.search() in all", "vecalchemy/search/vector.py", "search"),
    ("  _request: check the arguments, bind the plan", "vecalchemy/search/vector.py", "_request"),
    ("    as_query_value: check the vector", "vecalchemy/_vectors.py", "as_query_value"),
    ("  Session.execute (set_config + SELECT)", "sqlalchemy/orm/session.py", "execute"),
    ("    cache key of the statement", "sqlalchemy/sql/cache_key.py", "_generate_cache_key"),
    ("    compile (cache lookup)", "sqlalchemy/sql/elements.py", "_compile_w_cache"),
    ("    psycopg Cursor.execute", "psycopg/cursor.py", "execute"),
    ("    ORM row loading (instances)", "sqlalchemy/orm/loading.py", "instances"),
    ("Session.commit", "sqlalchemy/orm/session.py", "commit"),
    ("Session.close", "sqlalchemy/orm/session.py", "close"),
)

# Buckets of self time, by where the function lives (first match wins).
PROFILE_BUCKETS: tuple[tuple[str, Callable[[str, str], bool]], ...] = (
    ("waiting for the server (psycopg wait)", lambda f, n: "wait" in n and "psycopg" in f),
    ("psycopg (send, receive, adapt)", lambda f, n: "psycopg" in f),
    ("SQLAlchemy ORM (session, loading, compile state)", lambda f, n: "sqlalchemy/orm/" in f),
    ("SQLAlchemy SQL (constructs, cache keys, compiler)", lambda f, n: "sqlalchemy/sql/" in f),
    ("SQLAlchemy engine + pool", lambda f, n: "sqlalchemy/" in f),
    ("vecalchemy", lambda f, n: "vecalchemy/" in f),
    ("pgvector-python", lambda f, n: "pgvector/" in f),
    ("numpy", lambda f, n: "numpy" in f or "numpy" in n),
    ("python builtins + stdlib", lambda f, n: True),
)


def profile_search(db: Database, queries: Sequence[Vec]) -> dict[str, Any]:
    """cProfile over one pass of ``search()`` with a Session per query."""
    contender = va_search(db, session_per_query=True)
    try:
        contender.run(queries)  # warm: connection, caches
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        contender.run(queries)
        profiler.disable()
        wall = time.perf_counter() - started
    finally:
        contender.close()
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())  # self times add up to the profiled time
    n = len(queries)

    buckets: dict[str, float] = {name: 0.0 for name, _ in PROFILE_BUCKETS}
    for (filename, _line, funcname), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        f = filename.replace(os.sep, "/")
        for name, match in PROFILE_BUCKETS:
            if match(f, funcname):
                buckets[name] += tottime
                break

    functions = []
    for label, suffix, funcname in PROFILE_FUNCTIONS:
        # Several functions of one module may share a name (Session.commit calls
        # SessionTransaction.commit): the outermost, the one with most time, is meant.
        cum = calls = 0.0
        for (filename, _line, name), (_cc, nc, _tt, ct, _callers) in raw.items():
            if name == funcname and filename.replace(os.sep, "/").endswith(suffix) and ct > cum:
                cum, calls = ct, nc
        functions.append(
            {
                "function": label,
                "calls_per_query": calls / n,
                "us_per_query": cum / n * 1e6,
                "share": cum / total if total else 0.0,
            }
        )

    top = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:15]
    return {
        "queries": n,
        "wall_ms_per_query_under_profiler": wall / n * 1000,
        "profiled_ms_per_query": total / n * 1000,
        "self_time_by_bucket": {
            k: {"us_per_query": v / n * 1e6, "share": v / total} for k, v in buckets.items()
        },
        "functions": functions,
        "top_self_time": [
            {
                "function": f"{Path(fn).name}:{line}({name})",
                "us_per_query": v[2] / n * 1e6,
                "calls_per_query": v[1] / n,
            }
            for (fn, line, name), v in top
        ],
    }


# -- reporting ------------------------------------------------------------------------


def server_info(db: Database) -> dict[str, Any]:
    engine = sa.create_engine(db.url)
    try:
        with engine.connect() as conn:
            pg = conn.exec_driver_sql("SHOW server_version").scalar()
            ext = conn.exec_driver_sql(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).scalar()
            settings = {
                name: conn.exec_driver_sql(f"SHOW {name}").scalar()
                for name in ("shared_buffers", "jit", "max_parallel_workers_per_gather")
            }
    finally:
        engine.dispose()
    return {"postgresql": pg, "pgvector": ext, "settings": settings}


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "load_average_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "cpu_count": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {
            p: version(p) for p in ("sqlalchemy", "psycopg", "asyncpg", "pgvector", "numpy")
        },
    }


def markdown_table(results: dict[str, Result]) -> str:
    base = results["raw_psycopg"].stat("median_ms")
    lines = [
        "| contender | median ms | p95 ms | queries/s | client CPU ms/query "
        "| median vs raw psycopg | recall@10 vs raw |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results.values():
        median = r.stat("median_ms")
        lines.append(
            f"| {r.label} | {median:.3f} | {r.stat('p95_ms'):.3f} | {r.stat('qps'):,.0f} "
            f"| {r.stat('cpu_ms'):.3f} | {median / base:.3f}x ({(median / base - 1) * 100:+.1f}%) "
            f"| {r.recall:.3f} |"
        )
    return "\n".join(lines)


def profile_markdown(profile: dict[str, Any]) -> str:
    lines = [
        f"cProfile over {profile['queries']} `search()` calls (a Session per query); the "
        "profiler inflates Python time, so read the shares, not the absolute numbers "
        f"({profile['wall_ms_per_query_under_profiler']:.3f} ms/query under the profiler).",
        "",
        "| where the time goes (cumulative) | calls/query | µs/query | share |",
        "|---|--:|--:|--:|",
    ]
    for f in profile["functions"]:
        label = f["function"].replace("  ", "&nbsp;&nbsp;")
        lines.append(
            f"| {label} | {f['calls_per_query']:.0f} | {f['us_per_query']:.0f} "
            f"| {f['share'] * 100:.1f}% |"
        )
    lines += ["", "| self time by package | µs/query | share |", "|---|--:|--:|"]
    for name, v in profile["self_time_by_bucket"].items():
        lines.append(f"| {name} | {v['us_per_query']:.0f} | {v['share'] * 100:.1f}% |")
    return "\n".join(lines)


def breakdown_markdown(breakdown: dict[str, float]) -> str:
    lines = [
        "Client-side steps of one `search()` call, timed alone (no profiler):",
        "",
        "| step | µs per call |",
        "|---|--:|",
    ]
    lines += [f"| {name} | {us:.0f} |" for name, us in breakdown.items()]
    return "\n".join(lines)


def plans_markdown(plans: dict[str, bool]) -> str:
    used = ", ".join(f"{name} {'yes' if ok else 'NO'}" for name, ok in plans.items())
    return f"HNSW index scan in the EXPLAIN plan: {used}."


def cache_markdown(cache: dict[str, Any]) -> str:
    parts = []
    for kind, per in cache["statements"].items():
        counts = ", ".join(f"{name} {n}" for name, n in sorted(per.items()))
        parts.append(f"{kind}: {counts}")
    return (
        f"SQLAlchemy compiled cache over {cache['calls']} `search()` calls: "
        + "; ".join(parts)
        + f"; {cache['compiled_cache_entries']} entries in the engine's cache afterwards. "
        + "The nearest-neighbour SELECT has the same cache key for two different query "
        + f"vectors: {'yes' if cache['same_cache_key_for_different_vectors'] else 'NO'}. "
        + "Server-side prepared statements afterwards (psycopg prepares after 5 runs): "
        + "; ".join(
            f"`{p['statement'][:60]}…` {p['generic']} generic / {p['custom']} custom plans"
            for p in cache["server_prepared_statements"]
        )
        + ". The same SELECT through raw psycopg, 50 runs: "
        + "; ".join(
            f"{kind} {n['generic']} generic / {n['custom']} custom plans"
            for kind, n in cache["plans_of_vecalchemy_sql_by_limit"].items()
        )
        + "."
    )


def write_chart(results: dict[str, Result], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {
        "limit": "#4c72b0",
        "what-if": "#8da0cb",
        "vecalchemy": "#dd8452",
        "cheatsheet": "#937860",
        "async-raw": "#55a868",
        "async-vecalchemy": "#c44e52",
    }
    items = list(results.values())[::-1]
    medians = [r.stat("median_ms") for r in items]
    p95 = [r.stat("p95_ms") for r in items]
    base = results["raw_psycopg"].stat("median_ms")
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(items) + 1.8))
    y = np.arange(len(items))
    ax.barh(y, medians, color=[colours[r.group] for r in items])
    ax.errorbar(
        p95, y, xerr=[np.subtract(p95, medians), np.zeros(len(items))], fmt="none", ecolor="k"
    )
    for yi, m, p in zip(y.tolist(), medians, p95, strict=True):
        ax.text(p * 1.01 + 0.01, yi, f"{m:.2f} ms  ({m / base:.2f}x)", va="center", fontsize=8)
    ax.set_yticks(y, [r.label for r in items], fontsize=9)
    ax.set_xlabel("latency per query, ms (bar: median; whisker: p95)")
    ax.set_xlim(0, max(p95) * 1.35)
    ax.axvline(base, color="#4c72b0", linestyle=":", linewidth=1)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


DOC_HEADING = "## Query overhead (issue 2)"
BEGIN = "<!-- query_overhead:begin (generated by benchmarks/query_overhead.py) -->"
END = "<!-- query_overhead:end -->"
DOC_INTRO = """# Benchmarks

Scripts in `benchmarks/` measure vecalchemy against the fastest way to do the same job
without it. Each writes its raw numbers to `benchmarks/results/*.json` and a chart next
to them; the tables below are copied from those runs. They are never run as tests.
"""
SECTION_INTRO = """What one `vecalchemy.search()` costs on top of the same query sent through raw
psycopg 3 with the same settings, and against the cheatsheet's plain SQLAlchemy +
pgvector pattern. Method: the docstring of `benchmarks/query_overhead.py`. Rerun with
`.venv/bin/python benchmarks/query_overhead.py` (a few minutes; `--rows`, `--queries`,
`--rounds` to change the size).
"""


def update_doc(generated: str) -> None:
    """Replace the generated block of the section, creating the file or section if needed."""
    block = f"{BEGIN}\n{generated.strip()}\n{END}"
    if not DOC.exists():
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(f"{DOC_INTRO}\n{DOC_HEADING}\n\n{SECTION_INTRO}\n{block}\n")
        return
    current = DOC.read_text()
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        DOC.write_text(f"{head}{block}{tail}")
    elif DOC_HEADING in current:
        head, tail = current.split(DOC_HEADING, 1)
        DOC.write_text(f"{head}{DOC_HEADING}\n\n{block}\n{tail}")
    else:
        DOC.write_text(f"{current.rstrip()}\n\n{DOC_HEADING}\n\n{SECTION_INTRO}\n{block}\n")


# -- main -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the table")
    parser.add_argument("--queries", type=int, default=500, help="query vectors per pass")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved measured rounds")
    parser.add_argument(
        "--block",
        type=int,
        help="queries per contender's turn within a round (default: all of them)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=REPO / "data" / "bench-pg",
        help="embedded server's data directory (default: ./data/bench-pg)",
    )
    parser.add_argument("--url", help="use this server instead of the embedded one")
    parser.add_argument(
        "--reload", action="store_true", help="reload the table even if it holds the same data"
    )
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.block is None:
        args.block = args.queries
    if args.rows < 1 or args.queries < 2 or args.rounds < 1 or args.block < 1:
        parser.error("--rows must be >= 1, --queries >= 2, --rounds >= 1, --block >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with database(args.url, args.data_dir) as db:
        data = prepare_data(db, args.rows, args.queries, reload=args.reload)
        server = server_info(db)
        loop = asyncio.new_event_loop()
        coll = prepare_collection(db, data.version)
        contenders = make_contenders(db, loop, data.queries[0], coll)
        try:
            results = run_rounds(contenders, data.queries, rounds=args.rounds, block=args.block)
        finally:
            for c in contenders:
                c.close()
            loop.close()
        print("checking the statement cache and profiling search()", flush=True)
        cache = check_statement_cache(db, data.queries)
        plans = check_plans(db, data.queries[0])
        profile = profile_search(db, data.queries)
        breakdown = client_breakdown(db, data.queries)

    machine = machine_info()
    base = results["raw_psycopg"]
    report = {
        "benchmark": "query_overhead",
        "machine": machine,
        "server": server,
        "data": {
            "corpus": "python standard library docstrings (vecalchemy.cli._corpus.stdlib_corpus)",
            "documents": data.documents,
            "rows": data.rows,
            "version": data.version,
            "embedder": f"HashingEmbedder({DIM})",
            "noise_norm": NOISE_NORM,
            "load_seconds": data.load_seconds,
            "index_seconds": data.index_seconds,
        },
        "settings": {
            "queries": len(data.queries),
            "k": K,
            "ef_search": EF_SEARCH,
            "rounds": args.rounds,
            "block": args.block,
            "index": "hnsw (m=16, ef_construction=64), vector_cosine_ops",
        },
        "contenders": {
            r.key: {
                "label": r.label,
                "group": r.group,
                "median_ms": r.stat("median_ms"),
                "p95_ms": r.stat("p95_ms"),
                "qps": r.stat("qps"),
                "client_cpu_ms_per_query": r.stat("cpu_ms"),
                "ratio_to_raw_psycopg": r.stat("median_ms") / base.stat("median_ms"),
                "recall_vs_raw_psycopg": r.recall,
                "same_ids_in_same_order": r.same_order,
                "rounds": [vars(s) for s in r.rounds],
            }
            for r in results.values()
        },
        "statement_cache": cache,
        "uses_hnsw_index": plans,
        "profile": profile,
        "client_steps_us": breakdown,
        "seconds": time.perf_counter() - started,
    }
    (RESULTS / "query_overhead.json").write_text(json.dumps(report, indent=2) + "\n")
    title = (
        f"top-{K} query, {data.rows:,} rows x {DIM} dims, HNSW ef_search={EF_SEARCH}, "
        f"{len(data.queries)} queries, median of {args.rounds} rounds\n"
        f"PostgreSQL {server['postgresql']}, pgvector {server['pgvector']}, "
        f"{machine['cpu_count']} CPUs"
    )
    write_chart(results, RESULTS / "query_overhead.png", title)

    table = markdown_table(results)
    generated = "\n\n".join(
        [
            f"Measured on {machine['cpu_count']} x {machine['cpu']}, Python {machine['python']}, "
            f"PostgreSQL {server['postgresql']} with pgvector {server['pgvector']} (embedded "
            f"server, default settings), SQLAlchemy {machine['packages']['sqlalchemy']}, psycopg "
            f"{machine['packages']['psycopg']}, asyncpg {machine['packages']['asyncpg']}. "
            f"{data.rows:,} rows x {DIM} dimensions, HNSW (m=16, ef_construction=64), "
            f"k={K}, ef_search={EF_SEARCH}, {len(data.queries)} queries, median of "
            f"{args.rounds} interleaved rounds.",
            table,
            "![query overhead](../benchmarks/results/query_overhead.png)",
            cache_markdown(cache) + " " + plans_markdown(plans),
            breakdown_markdown(breakdown),
            profile_markdown(profile),
        ]
    )
    print()
    print(table)
    print()
    print(cache_markdown(cache), plans_markdown(plans))
    print()
    print(breakdown_markdown(breakdown))
    print()
    print(profile_markdown(profile))
    if not args.no_doc:
        update_doc(generated)
    print(f"\ndone in {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
