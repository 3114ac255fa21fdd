"""Search quality and latency: vecalchemy against raw psycopg and the usual ways (issue 4).

What is measured
----------------
Top-10 cosine queries on two datasets (built and cached by ``benchmarks/_dataset.py``):

* ``real``: 20,000+ chunks of the standard library's docstrings embedded with
  all-MiniLM-L6-v2 (384 dimensions); the queries are 200 held-out documents' first chunks.
* ``mixture``: 200,000+ vectors drawn from a Gaussian mixture fitted to those
  embeddings (``--rows``), and 200 queries from the same mixture.

Each dataset is bulk-loaded with :func:`vecalchemy.load` into a table of its own
(``id bigint`` primary key, ``category text`` with a B-tree index, ``body text``,
``embedding vector(384)`` with an HNSW index m=16, ef_construction=64, built after the
load). Every row's ``category`` comes from a hash of its id, so that equality filters
of 10%, 1% and 0.1% selectivity exist (query i filters on one of nine or ten values of
each level, in turn). Ground truth is the exact top-10 by cosine computed with numpy,
unfiltered and for every filter.

Contenders, each on its own connection (engine), one transaction per query:

* unfiltered: ``vecalchemy.search()`` on an ORM ``Session`` (a Session per query) and on
  a Core ``Connection``; raw psycopg (``set_config`` of ``hnsw.ef_search`` 40 and
  ``hnsw.iterative_scan`` off, then ``SELECT id, category, body, embedding <=> %b AS
  distance FROM t ORDER BY distance LIMIT 10`` with a numpy vector sent in binary): the
  limit, every ratio is against its p50; the cheatsheet's ORM pattern
  (``select(Doc, Doc.embedding.cosine_distance(q)).order_by(...).limit(10)`` with
  pgvector-python's comparator, no settings, i.e. pgvector's defaults, which are the
  same values); langchain-postgres ``PGVectorStore.similarity_search_by_vector`` on the
  same table (if importable); an ``ef_search`` sweep (40, 80, 160, 320) of raw psycopg
  and ``search()``.
* filtered (``where=Doc.category == c``) at each selectivity: ``search()``; the same SQL
  through raw psycopg with ``WHERE category = %s`` and no settings ("plain pgvector
  defaults": ef_search 40, iterative scans off); and raw psycopg with the settings
  ``search()`` applies (``hnsw.iterative_scan = relaxed_order``), which separates the
  library's overhead from the query strategy's cost.
* hybrid (``real`` only, once ``vecalchemy.hybrid`` exists): ``hybrid_search()`` with
  RRF fusion, against the exact vector top-10 and against an exact RRF computed from
  exact ranks (see the doc section for what that means).
* binary quantization (once ``HNSW(quantize="binary")`` exists): ``search()`` on a
  column whose HNSW index is on ``binary_quantize(embedding)::bit(384)``, with
  ``oversample`` 2, 4 and 8, on the same table (a second index).

Method: one warm-up pass of every contender over all queries (it also collects the
hits compared with the ground truth), then ``--rounds`` rounds in which every contender
runs all queries in turn, the order rotated each round. Per round and contender: p50
and p95 latency per query (wall clock, from handing over the query to holding the ids,
transaction committed); the figures reported are medians over the rounds.

Outputs: ``benchmarks/results/search.json``, ``benchmarks/results/search.png`` (recall
against p50 latency) and the generated part of the "Search (issue 4)" section of
``docs/benchmarks.md``. Run from the repository::

    .venv/bin/python benchmarks/search.py            # full run (first run embeds: ~5 min more)
    .venv/bin/python benchmarks/search.py --quick    # smoke run, < 2 min once embedded
    .venv/bin/python benchmarks/search.py --rows 500000 --queries 100 --rounds 3

Data (datasets, and the embedded server with the loaded tables) are cached in
``$VECALCHEMY_BENCH_DIR`` or ``data/bench-search/`` (gitignored); a rerun reuses a
table whose comment and row count match.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import inspect
import json
import os
import platform
import re
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import sqlalchemy as sa
from _dataset import (
    DIM,
    LEVELS,
    SELECTIVITY,
    Dataset,
    bench_dir,
    build_mixture,
    build_real,
    exact_topk,
    filter_value,
    log,
    subset,
)
from pgvector.psycopg import register_vector
from pgvector.sqlalchemy import Vector
from sqlalchemy import BigInteger, Text, event, select
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column

import vecalchemy
from vecalchemy import HNSW, Embedding
from vecalchemy.load import load
from vecalchemy.server import EmbeddedServer

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DOC = REPO / "docs" / "benchmarks.md"

K = 10
EF_SEARCH = 40
EF_SWEEP = (80, 160, 320)
OVERSAMPLE = (2, 4, 8)
FILTER_EF = (80, 160)  # ef_search of extra search() runs with the 10% filter
PREFIX = "bench_search_"
TABLE_VERSION = "search-table-v1"

Vec = npt.NDArray[np.float32]
Ids = list[int]


# -- optional features (written by other engineers during the session) ----------------


@dataclass(frozen=True)
class Feature:
    available: bool
    reason: str = ""


def hybrid_feature() -> Feature:
    try:
        hybrid = importlib.import_module("vecalchemy.hybrid")
        importlib.import_module("vecalchemy.fusion")
        fulltext = importlib.import_module("vecalchemy.fulltext")
        hybrid.hybrid_search  # noqa: B018
        fulltext.FullText  # noqa: B018
    except (ImportError, AttributeError) as exc:
        return Feature(False, f"not available yet ({type(exc).__name__}: {exc})")
    return Feature(True)


def bq_feature() -> Feature:
    try:
        HNSW(quantize="binary")  # type: ignore[call-arg]
    except TypeError as exc:
        return Feature(False, f"not available yet (HNSW(quantize='binary'): {exc})")
    if "oversample" not in inspect.signature(vecalchemy.search).parameters:
        return Feature(False, "not available yet (search() has no oversample parameter)")
    return Feature(True)


def langchain_feature() -> Feature:
    try:
        importlib.import_module("langchain_postgres")
        importlib.import_module("langchain_core.embeddings")
    except Exception as exc:  # any failure to import it is a reason to skip it
        reason = f"langchain-postgres cannot be imported ({type(exc).__name__}: {exc})"
        return Feature(False, reason)
    return Feature(True)


# -- tables ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Models:
    table_name: str
    doc: Any  # vecalchemy's declaration
    table: sa.Table
    sheet: Any  # the cheatsheet's: a plain pgvector column
    bq: Any | None  # the same table, embedding declared with a binary-quantized index
    doc_ft: Any | None  # vecalchemy's declaration with a FullText("body") column ``tsv``

    @property
    def fulltext(self) -> bool:
        return self.doc_ft is not None

    @property
    def full(self) -> Any:
        """The declaration the table is created and loaded from."""
        return self.doc_ft if self.doc_ft is not None else self.doc


def _doc_class(table_name: str, *, fulltext: bool) -> Any:
    class Base(DeclarativeBase):
        pass

    attrs: dict[str, Any] = {
        "__tablename__": table_name,
        "id": mapped_column(BigInteger, primary_key=True, autoincrement=False),
        "category": mapped_column(Text, index=True, nullable=False),
        "body": mapped_column(Text, nullable=False),
        "embedding": Embedding(DIM, metric="cosine", index=HNSW(m=16, ef_construction=64)),
    }
    if fulltext:
        from vecalchemy.fulltext import FullText

        attrs["tsv"] = FullText("body")
    return type("DocFT" if fulltext else "Doc", (Base,), attrs)


def make_models(table_name: str, *, fulltext: bool, bq: bool) -> Models:
    # The vector contenders use a declaration without the tsvector column, so that they
    # load the same columns as the raw query; the table itself is created (and the
    # hybrid search run) from the declaration with it.
    doc = _doc_class(table_name, fulltext=False)
    doc_ft = _doc_class(table_name, fulltext=True) if fulltext else None

    class SheetBase(DeclarativeBase):
        pass

    sheet = type(
        "SheetDoc",
        (SheetBase,),
        {
            "__tablename__": table_name,
            "id": mapped_column(BigInteger, primary_key=True),
            "category": mapped_column(Text),
            "body": mapped_column(Text),
            "embedding": mapped_column(Vector(DIM)),
        },
    )
    bq_doc = None
    if bq:

        class BQBase(DeclarativeBase):
            pass

        bq_doc = type(
            "BQDoc",
            (BQBase,),
            {
                "__tablename__": table_name,
                "id": mapped_column(BigInteger, primary_key=True),
                "category": mapped_column(Text),
                "body": mapped_column(Text),
                "embedding": Embedding(
                    DIM,
                    metric="cosine",
                    index=HNSW(m=16, ef_construction=64, quantize="binary"),  # type: ignore[call-arg]
                ),
            },
        )
    return Models(table_name, doc, doc.__table__, sheet, bq_doc, doc_ft)


# -- database -------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    url: sa.URL
    params: dict[str, Any]


def connection_params(url: sa.URL) -> dict[str, Any]:
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
    """``url``, or the embedded server in ``data_dir`` (stopped after if started here)."""
    server: EmbeddedServer | None = None
    started = False
    if url is None:
        server = EmbeddedServer(data_dir)
        if not server.status().running:
            log(f"starting the embedded PostgreSQL in {data_dir}")
            server.start()
            started = True
        url = server.url()
    resolved = vecalchemy.resolve_url(url)
    try:
        yield Database(resolved, connection_params(resolved))
    finally:
        if server is not None and started:
            log("stopping the embedded PostgreSQL we started")
            server.stop()


def table_comment(conn: sa.Connection, name: str) -> str | None:
    return conn.execute(
        sa.text(
            "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c "
            "WHERE c.relname = :t AND c.relkind = 'r' "
            "AND c.relnamespace = current_schema()::regnamespace"
        ),
        {"t": name},
    ).scalar()


def prepare_table(db: Database, data: Dataset, models: Models, *, reload: bool) -> dict[str, Any]:
    """Load ``data`` into its table unless it holds it already; build missing indexes."""
    tag = f"{TABLE_VERSION}:{data.fingerprint()}:rows={data.rows}:fulltext={models.fulltext}"
    out: dict[str, Any] = {"table": models.table_name, "rows": data.rows}
    engine = vecalchemy.create_engine(db.url)
    try:
        with engine.connect() as conn:
            found = table_comment(conn, models.table_name)
            count = (
                conn.execute(sa.text(f"SELECT count(*) FROM {models.table_name}")).scalar()
                if found is not None
                else None
            )
        timings_file = bench_dir() / "tables.json"
        timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}
        if found == tag and count == data.rows and not reload:
            log(f"reusing table {models.table_name}: {data.rows:,} rows")
            out["reused"] = True
            out.update(timings.get(tag, {}))
        else:
            log(f"loading {data.rows:,} rows into {models.table_name}")
            metadata = models.full.__table__.metadata
            started = time.perf_counter()
            with engine.begin() as conn:
                metadata.drop_all(conn)
                with vecalchemy.defer_indexes():
                    metadata.create_all(conn)
                columns = {
                    "id": np.arange(data.rows, dtype=np.int64).tolist(),
                    "category": data.categories.tolist(),
                    "body": data.texts,
                    "embedding": data.vectors,
                }
                load(conn, models.full, columns)
                conn.execute(sa.text(f"COMMENT ON TABLE {models.table_name} IS '{tag}'"))
            out["load_seconds"] = time.perf_counter() - started
            log(f"loaded in {out['load_seconds']:.1f} s; building the HNSW index")
            started = time.perf_counter()
            vecalchemy.build_indexes(engine, models.full)
            out["hnsw_build_seconds"] = time.perf_counter() - started
            log(f"HNSW index built in {out['hnsw_build_seconds']:.1f} s")
            out["reused"] = False
            timings[tag] = {k: out[k] for k in ("load_seconds", "hnsw_build_seconds")}
        vecalchemy.build_indexes(engine, models.doc)  # a no-op when they exist
        if models.bq is not None:
            started = time.perf_counter()
            built = vecalchemy.build_indexes(engine, models.bq)
            seconds = time.perf_counter() - started
            if any(r.action == "built" for r in built):
                out["bq_build_seconds"] = seconds
                timings.setdefault(tag, {})["bq_build_seconds"] = seconds
                log(f"binary-quantized HNSW index built in {seconds:.1f} s")
            out["bq_indexes"] = {r.name: r.action for r in built}
        timings_file.write_text(json.dumps(timings, indent=1) + "\n")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f"VACUUM ANALYZE {models.table_name}"))
            sizes = conn.execute(
                sa.text(
                    "SELECT c.relname, pg_relation_size(c.oid) FROM pg_index i "
                    "JOIN pg_class c ON c.oid = i.indexrelid "
                    "WHERE i.indrelid = CAST(:t AS regclass)"
                ),
                {"t": models.table_name},
            ).all()
            out["index_bytes"] = {name: int(size) for name, size in sizes}
            out["table_bytes"] = conn.execute(
                sa.text("SELECT pg_table_size(CAST(:t AS regclass))"), {"t": models.table_name}
            ).scalar()
    finally:
        engine.dispose()
    return out


# -- contenders -----------------------------------------------------------------------


@dataclass
class Contender:
    key: str
    label: str
    group: str  # limit, vecalchemy, cheatsheet, langchain, sweep, filtered, hybrid, bq
    one: Callable[[int], Ids]  # query number -> ids of the hits
    close: Callable[[], None]
    ef_search: int | None = None
    level: str | None = None  # selectivity of the filter, None when unfiltered
    oversample: int | None = None
    diagnose: Callable[[], dict[str, Any]] | None = None  # after the rounds, before close


def raw_sql(table: str, *, filtered: bool, exact: bool = False) -> str:
    """The raw query; ``exact`` orders by an expression no vector index serves."""
    where = " WHERE category = %(c)s" if filtered else ""
    order = "(embedding <=> %(q)b) + 0" if exact else "distance"
    return (
        f"SELECT id, category, body, embedding <=> %(q)b AS distance FROM {table}{where} "
        f"ORDER BY {order} LIMIT {K}"
    )


PREPARED_SQL = (
    "SELECT left(statement, 60), generic_plans, custom_plans FROM pg_prepared_statements "
    "WHERE statement LIKE '%<=>%'"
)


def raw_contender(
    db: Database,
    table: str,
    queries: Vec,
    *,
    ef: int = EF_SEARCH,
    scan: str | None = "off",
    level: str | None = None,
    exact: bool = False,
) -> Contender:
    """raw psycopg; ``scan=None`` sends no settings at all (pgvector's defaults)."""
    conn = psycopg.connect(**db.params)
    register_vector(conn)
    sql = raw_sql(table, filtered=level is not None, exact=exact)
    settings = (
        f"SELECT set_config('hnsw.ef_search', '{ef}', true), "
        f"set_config('hnsw.iterative_scan', '{scan}', true)"
    )

    def one(i: int) -> Ids:
        params: dict[str, Any] = {"q": queries[i]}
        if level is not None:
            params["c"] = filter_value(level, i)
        with conn.cursor() as cur:
            if scan is not None:
                cur.execute(settings)
            cur.execute(sql, params)
            rows = cur.fetchall()
        conn.commit()
        return [r[0] for r in rows]

    def diagnose() -> dict[str, Any]:
        """How the server planned the prepared query (psycopg prepares after 5 runs)."""
        rows = conn.execute(PREPARED_SQL).fetchall()
        conn.commit()
        return {"prepared": [{"statement": r[0], "generic": r[1], "custom": r[2]} for r in rows]}

    if level is None:
        key, label, group = (
            ("raw", "raw psycopg", "limit")
            if ef == EF_SEARCH
            else (f"raw_ef{ef}", f"raw psycopg, ef_search {ef}", "sweep")
        )
    elif exact:
        key, label = f"raw_exact_{level}", f"raw psycopg, exact (B-tree + sort), {level}"
        group = "filtered"
    elif scan is None:
        key, label, group = f"raw_default_{level}", f"plain pgvector defaults, {level}", "filtered"
    else:
        key, label = f"raw_{scan}_{level}", f"raw psycopg + iterative scan ({scan}), {level}"
        group = "filtered"
    return Contender(
        key, label, group, one, conn.close, ef_search=ef, level=level, diagnose=diagnose
    )


def va_session(
    db: Database,
    models: Models,
    queries: Vec,
    *,
    ef: int | None = None,
    level: str | None = None,
    ft_model: bool = False,
    strategy: str | None = None,
) -> Contender:
    engine = vecalchemy.create_engine(db.url)
    doc = models.doc_ft if ft_model else models.doc
    column = doc.embedding
    category = doc.category

    extra: dict[str, Any] = {} if strategy is None else {"strategy": strategy}

    def one(i: int) -> Ids:
        where = None if level is None else category == filter_value(level, i)
        with Session(engine) as session:
            hits = vecalchemy.search(
                session, column, queries[i], k=K, ef_search=ef, where=where, **extra
            )
            out = [h.row.id for h in hits]
            session.commit()
        return out

    if ft_model:
        key, label = "va_session_ft", "vecalchemy.search(), Session, model with FullText column"
        group = "vecalchemy"
    elif level is not None:
        key, label, group = f"va_{level}", f"vecalchemy.search(), {level}", "filtered"
        if ef is not None:
            key, label = f"{key}_ef{ef}", f"vecalchemy.search(), ef_search {ef}, {level}"
        if strategy is not None:
            key = f"{key}_{strategy}"
            label = f"vecalchemy.search(strategy={strategy!r}), {level}"
    elif ef is None:
        key, label, group = "va_session", "vecalchemy.search(), Session", "vecalchemy"
    else:
        key, label, group = f"va_ef{ef}", f"vecalchemy.search(), ef_search {ef}", "sweep"
    return Contender(key, label, group, one, engine.dispose, ef_search=ef or EF_SEARCH, level=level)


def va_core(db: Database, models: Models, queries: Vec) -> Contender:
    engine = vecalchemy.create_engine(db.url)
    column = models.table.c.embedding

    def one(i: int) -> Ids:
        with engine.connect() as conn:
            hits = vecalchemy.search(conn, column, queries[i], k=K)
            out = [h.row.id for h in hits]
            conn.commit()
        return out

    return Contender(
        "va_core", "vecalchemy.search(), Core Connection", "vecalchemy", one, engine.dispose,
        ef_search=EF_SEARCH,
    )  # fmt: skip


def cheatsheet(db: Database, models: Models, queries: Vec) -> Contender:
    engine = sa.create_engine(db.url)

    @event.listens_for(engine, "connect")
    def _register(dbapi_connection: Any, record: Any) -> None:
        register_vector(dbapi_connection)

    sheet = models.sheet

    def one(i: int) -> Ids:
        with Session(engine) as session:
            stmt = (
                select(sheet, sheet.embedding.cosine_distance(queries[i]).label("dist"))
                .order_by("dist")
                .limit(K)
            )
            out = [doc.id for doc, _ in session.execute(stmt).all()]
            session.commit()
        return out

    return Contender(
        "cheatsheet", "cheatsheet ORM (pgvector comparator)", "cheatsheet", one, engine.dispose,
        ef_search=EF_SEARCH,
    )  # fmt: skip


def langchain(db: Database, models: Models, queries: Vec) -> Contender:
    """langchain-postgres' PGVectorStore pointed at the same table (same rows, same index)."""
    from langchain_core.embeddings import Embeddings
    from langchain_postgres import PGEngine, PGVectorStore
    from langchain_postgres.v2.indexes import HNSWQueryOptions

    class Unused(Embeddings):  # similarity_search_by_vector never embeds
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            raise AssertionError("not used")

        def embed_query(self, text: str) -> list[float]:
            raise AssertionError("not used")

    pg = PGEngine.from_connection_string(db.url.set(drivername="postgresql+psycopg"))
    store = PGVectorStore.create_sync(
        pg,
        Unused(),
        models.table_name,
        id_column="id",
        content_column="body",
        embedding_column="embedding",
        metadata_columns=["category"],
        metadata_json_column=None,
        index_query_options=HNSWQueryOptions(ef_search=EF_SEARCH),
    )
    # Its API takes lists of floats (what LangChain embedders return): converted beforehand.
    as_lists = [q.tolist() for q in queries]

    def one(i: int) -> Ids:
        docs = store.similarity_search_by_vector(as_lists[i], k=K)
        return [int(d.id) for d in docs if d.id is not None]

    def close() -> None:
        pg._run_as_sync(pg.close())

    return Contender(
        "langchain", "langchain-postgres similarity_search_by_vector", "langchain", one, close,
        ef_search=EF_SEARCH,
    )  # fmt: skip


def va_bq(db: Database, models: Models, queries: Vec, oversample: int) -> Contender:
    engine = vecalchemy.create_engine(db.url)
    column = models.bq.embedding

    def one(i: int) -> Ids:
        with Session(engine) as session:
            hits = vecalchemy.search(
                session,
                column,
                queries[i],
                k=K,
                oversample=oversample,  # type: ignore[call-arg]
            )
            out = [h.row.id for h in hits]
            session.commit()
        return out

    return Contender(
        f"bq_x{oversample}",
        f"search(), binary-quantized HNSW, oversample {oversample}",
        "bq",
        one,
        engine.dispose,
        oversample=oversample,
    )


def or_query(text: str) -> str:
    """``text``'s distinct words joined by ``or`` (websearch_to_tsquery: any word matches)."""
    words = list(dict.fromkeys(w.lower() for w in re.findall(r"[^\W_]+", text)))
    return " or ".join(words)


#: Hybrid query texts: the query chunk as the user typed it (websearch_to_tsquery ANDs its
#: words), or its words joined with "or" (any word matches, ranked by ts_rank_cd).
TEXT_VARIANTS: dict[str, Callable[[str], str]] = {"verbatim": str, "or": or_query}


def va_hybrid(
    db: Database, models: Models, queries: Vec, texts: list[str], fusion: str, variant: str
) -> Contender:
    hybrid = importlib.import_module("vecalchemy.hybrid")
    fusions = importlib.import_module("vecalchemy.fusion")
    engine = vecalchemy.create_engine(db.url)
    fuse = fusions.RRF() if fusion == "rrf" else fusions.Weighted()
    doc = models.doc_ft
    query_texts = [TEXT_VARIANTS[variant](t) for t in texts]

    def one(i: int) -> Ids:
        with Session(engine) as session:
            hits = hybrid.hybrid_search(
                session, doc.embedding, doc.tsv, query_texts[i], queries[i], k=K, fusion=fuse
            )
            out = [_hit_id(h) for h in hits]
            session.commit()
        return out

    words = "words ANDed (verbatim)" if variant == "verbatim" else "words ORed"
    return Contender(
        f"hybrid_{fusion}_{variant}",
        f"hybrid_search(), {type(fuse).__name__}, {words}",
        "hybrid",
        one,
        engine.dispose,
    )


def _hit_id(hit: Any) -> int:
    row = getattr(hit, "row", hit)
    return int(row.id if hasattr(row, "id") else row[0])


# -- measuring ------------------------------------------------------------------------


@dataclass
class Stats:
    key: str
    label: str
    group: str
    level: str | None
    ef_search: int | None
    oversample: int | None
    p50: list[float] = field(default_factory=list)  # ms, one per round
    p95: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # client CPU ms per query
    hits: list[Ids] = field(default_factory=list)  # from the warm-up pass
    error: str | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.p50)

    @property
    def p95_ms(self) -> float:
        return statistics.median(self.p95)

    @property
    def cpu_ms(self) -> float:
        return statistics.median(self.cpu)


def run_pass(c: Contender, order: Sequence[int]) -> tuple[list[float], list[Ids], float]:
    gc.collect()
    clock = time.perf_counter_ns
    lat: list[float] = []
    hits: list[Ids] = [[] for _ in order]
    cpu0 = time.process_time()
    for n, i in enumerate(order):
        t0 = clock()
        h = c.one(i)
        lat.append((clock() - t0) / 1e6)
        hits[n] = h
    cpu = (time.process_time() - cpu0) * 1000 / len(order)
    return lat, hits, cpu


def measure(contenders: list[Contender], n_queries: int, rounds: int) -> dict[str, Stats]:
    stats = {
        c.key: Stats(c.key, c.label, c.group, c.level, c.ef_search, c.oversample)
        for c in contenders
    }
    live = list(contenders)
    order = list(range(n_queries))
    log(f"warm-up pass: {len(live)} contenders x {n_queries} queries")
    for c in list(live):
        try:
            _, hits, _ = run_pass(c, order)
            stats[c.key].hits = hits
        except Exception as exc:  # a contender that fails is recorded and dropped
            stats[c.key].error = f"{type(exc).__name__}: {exc}"
            log(f"  {c.label} failed: {stats[c.key].error}")
            traceback.print_exc()
            live.remove(c)
    for r in range(rounds):
        shift = r % len(live) if live else 0
        started = time.perf_counter()
        for c in live[shift:] + live[:shift]:
            lat, _, cpu = run_pass(c, order)
            s = stats[c.key]
            s.p50.append(float(np.percentile(lat, 50)))
            s.p95.append(float(np.percentile(lat, 95)))
            s.cpu.append(cpu)
        log(f"round {r + 1}/{rounds} done in {time.perf_counter() - started:.1f} s")
    for c in live:
        if c.diagnose is not None:
            try:
                stats[c.key].diagnostics = c.diagnose()
            except Exception as exc:
                stats[c.key].diagnostics = {"error": f"{type(exc).__name__}: {exc}"}
    return stats


# -- ground truth and recall ----------------------------------------------------------


@dataclass
class Truth:
    unfiltered: npt.NDArray[np.int64]  # (q, K)
    filtered: dict[str, npt.NDArray[np.int64]]  # level -> (q, K), -1 where fewer match
    matching: dict[str, npt.NDArray[np.int64]]  # level -> rows matching query i's filter


def ground_truth(data: Dataset) -> Truth:
    started = time.perf_counter()
    unfiltered, _ = exact_topk(data.vectors, data.queries, K)
    filtered: dict[str, npt.NDArray[np.int64]] = {}
    matching: dict[str, npt.NDArray[np.int64]] = {}
    nq = len(data.queries)
    for level, values in LEVELS.items():
        out = np.full((nq, K), -1, dtype=np.int64)
        counts = np.zeros(nq, dtype=np.int64)
        for value in values:
            picked = [i for i in range(nq) if filter_value(level, i) == value]
            if not picked:
                continue
            mask = data.categories == value
            ids, _ = exact_topk(data.vectors, data.queries[picked], K, mask)
            out[picked] = ids
            counts[picked] = int(mask.sum())
        filtered[level] = out
        matching[level] = counts
    log(f"ground truth for {data.name} in {time.perf_counter() - started:.1f} s")
    return Truth(unfiltered, filtered, matching)


def recall(hits: list[Ids], truth: npt.NDArray[np.int64]) -> float:
    scores = []
    for h, t in zip(hits, truth, strict=True):
        expected = {int(x) for x in t if x >= 0}
        if expected:
            scores.append(len(expected.intersection(h[:K])) / len(expected))
    return float(np.mean(scores)) if scores else float("nan")


# -- binary quantization: the ceiling of the re-ranking -------------------------------


def bq_ceiling(data: Dataset, truth: Truth) -> dict[int, float]:
    """recall@10 of exact binary quantization + re-ranking, per oversample factor.

    ``binary_quantize`` keeps one bit per dimension (1 where the value is > 0). The
    candidates are the ``k * oversample`` rows of least exact Hamming distance to the
    query's bits (ties broken arbitrarily, as an index would), re-ranked by exact cosine:
    the best any binary-quantized index can do at that oversampling, with no graph
    approximation on top.
    """
    bits = (data.vectors > 0).astype(np.float32)
    ones = bits.sum(axis=1)
    out: dict[int, float] = {}
    tops: dict[int, list[Ids]] = {o: [] for o in OVERSAMPLE}
    for start in range(0, len(data.queries), 50):
        q = data.queries[start : start + 50]
        qbits = (q > 0).astype(np.float32)
        hamming = ones[None, :] + qbits.sum(axis=1)[:, None] - 2 * (qbits @ bits.T)
        sims = q @ data.vectors.T
        for o in OVERSAMPLE:
            c = min(K * o, len(data.vectors))
            cand = np.argpartition(hamming, c - 1, axis=1)[:, :c]
            csims = np.take_along_axis(sims, cand, axis=1)
            best = np.take_along_axis(cand, np.argsort(-csims, axis=1)[:, :K], axis=1)
            tops[o].extend(best.tolist())
    for o in OVERSAMPLE:
        out[o] = recall(tops[o], truth.unfiltered)
    return out


# -- hybrid: the exact reference ------------------------------------------------------


def hybrid_reference(db: Database, models: Models, data: Dataset) -> dict[str, Any]:
    """Exact RRF of exact ranks, per text variant, and how many rows each text matches.

    Vector ranks: every row ranked by exact cosine distance (numpy). Text ranks: every
    row matching ``websearch_to_tsquery(<the column's language>, text)`` ranked by
    ``ts_rank_cd`` (ties by id), computed in SQL with index and bitmap scans off. The
    reference top-10 is the RRF (same k as ``RRF()``) over those complete lists: what
    ``hybrid_search()`` would return with unlimited candidates and an exact vector leg.
    """
    fusions = importlib.import_module("vecalchemy.fusion")
    fulltext = importlib.import_module("vecalchemy.fulltext")
    rrf_k = fusions.RRF().k
    candidates = fusions.default_candidates(K)
    _, spec = fulltext.resolve_fulltext(models.doc_ft.tsv)
    language = spec.language
    started = time.perf_counter()
    sims = data.queries @ data.vectors.T  # (q, n)
    vector_rank = np.empty(sims.shape, dtype=np.int64)
    order = np.argsort(-sims, axis=1, kind="stable")
    rows = np.arange(sims.shape[1])
    for i in range(len(order)):
        vector_rank[i, order[i]] = rows + 1
    sql = (
        f"SELECT id FROM {models.table_name} "
        f"WHERE tsv @@ websearch_to_tsquery('{language}'::regconfig, %(t)s) "
        f"ORDER BY ts_rank_cd(tsv, websearch_to_tsquery('{language}'::regconfig, %(t)s)) "
        "DESC, id"
    )
    out: dict[str, Any] = {
        "rrf_k": rrf_k,
        "candidates": candidates,
        "language": language,
        "variants": {},
    }
    with psycopg.connect(**db.params) as conn:
        for variant, make in TEXT_VARIANTS.items():
            top = np.full((len(data.queries), K), -1, dtype=np.int64)
            top_cut = np.full((len(data.queries), K), -1, dtype=np.int64)
            matches = np.zeros(len(data.queries), dtype=np.int64)
            for i, text in enumerate(data.query_texts):
                with conn.transaction():
                    conn.execute("SET LOCAL enable_indexscan = off")
                    conn.execute("SET LOCAL enable_bitmapscan = off")
                    ids = [r[0] for r in conn.execute(sql, {"t": make(text)}).fetchall()]
                score = 1.0 / (rrf_k + vector_rank[i].astype(np.float64))
                if ids:
                    score[ids] += 1.0 / (rrf_k + np.arange(1, len(ids) + 1))
                matches[i] = len(ids)
                top[i] = np.argsort(-score, kind="stable")[:K]
                # The same fusion over each leg's exact top-`candidates` only: what
                # hybrid_search() returns when its vector leg finds the exact neighbours.
                cut: dict[int, float] = {}
                for rank, row in enumerate(order[i][:candidates], 1):
                    cut[int(row)] = 1.0 / (rrf_k + rank)
                for rank, row in enumerate(ids[:candidates], 1):
                    cut[row] = cut.get(row, 0.0) + 1.0 / (rrf_k + rank)
                best = sorted(cut.items(), key=lambda kv: (-kv[1], kv[0]))[:K]
                top_cut[i, : len(best)] = [row for row, _ in best]
            out["variants"][variant] = {
                "top": top,
                "top_cut": top_cut,
                "text_matches_mean": float(matches.mean()),
                "text_matches_median": float(np.median(matches)),
                "queries_with_text_matches": int((matches > 0).sum()),
                "queries_with_10_or_more_text_matches": int((matches >= K).sum()),
            }
    out["seconds"] = time.perf_counter() - started
    log(f"exact hybrid reference in {out['seconds']:.1f} s")
    return out


# -- one dataset ----------------------------------------------------------------------


def contenders_for(
    db: Database,
    models: Models,
    data: Dataset,
    *,
    langchain_ok: Feature,
    hybrid_ok: Feature,
    bq_ok: Feature,
    sweep: Sequence[int],
    skipped: dict[str, str],
) -> list[Contender]:
    q = data.queries
    t = models.table_name
    out = [
        raw_contender(db, t, q),
        va_session(db, models, q),
        va_core(db, models, q),
        cheatsheet(db, models, q),
    ]
    if langchain_ok.available:
        try:
            out.append(langchain(db, models, q))
        except Exception as exc:
            skipped["langchain"] = f"failed to set up: {type(exc).__name__}: {exc}"
    else:
        skipped["langchain"] = langchain_ok.reason
    for ef in sweep:
        out.append(raw_contender(db, t, q, ef=ef))
        out.append(va_session(db, models, q, ef=ef))
    for level in LEVELS:
        out.append(va_session(db, models, q, level=level))
        if level == "10%":  # where the index path is taken: what a higher ef_search buys
            out.extend(va_session(db, models, q, level=level, ef=ef) for ef in FILTER_EF)
        if "strategy" in inspect.signature(vecalchemy.search).parameters:
            # Each path forced: what the automatic choice (an EXPLAIN first) costs, and
            # what the other path would have given. Exact at 10% is left out: slow.
            out.append(va_session(db, models, q, level=level, strategy="index"))
            if level != "10%":
                out.append(va_session(db, models, q, level=level, strategy="exact"))
        out.append(raw_contender(db, t, q, scan=None, level=level))
        out.append(raw_contender(db, t, q, scan="relaxed_order", level=level))
        out.append(raw_contender(db, t, q, scan=None, level=level, exact=True))
    if bq_ok.available and models.bq is not None:
        out.extend(va_bq(db, models, q, o) for o in OVERSAMPLE)
    else:
        skipped["binary_quantization"] = bq_ok.reason
    if data.name == "real":
        if hybrid_ok.available and models.fulltext:
            texts = data.query_texts
            out.append(va_hybrid(db, models, q, texts, "rrf", "verbatim"))
            out.append(va_hybrid(db, models, q, texts, "rrf", "or"))
            out.append(va_hybrid(db, models, q, texts, "weighted", "or"))
            out.append(va_session(db, models, q, ft_model=True))
        else:
            skipped["hybrid"] = hybrid_ok.reason
    return out


def explain_filtered(db: Database, table: str, data: Dataset) -> dict[str, Any]:
    """The plan of the first query at each level for the raw filtered contenders."""
    out: dict[str, Any] = {}
    cases = (("default", None, False), ("relaxed_order", "relaxed_order", False),
             ("exact", None, True))  # fmt: skip
    with psycopg.connect(**db.params) as conn:
        register_vector(conn)
        for level in LEVELS:
            for name, scan, exact in cases:
                with conn.transaction():
                    if scan is not None:
                        conn.execute(
                            "SELECT set_config('hnsw.ef_search', '40', true), "
                            f"set_config('hnsw.iterative_scan', '{scan}', true)"
                        )
                    row = conn.execute(
                        "EXPLAIN (FORMAT JSON) " + raw_sql(table, filtered=True, exact=exact),
                        {"q": data.queries[0], "c": filter_value(level, 0)},
                    ).fetchone()
                    plan = row[0][0]["Plan"] if row else {}
                out[f"{level} {name}"] = _plan_summary(plan)
    return out


def va_statements(db: Database, models: Models, data: Dataset) -> dict[str, Any]:
    """What one ``search()`` sends (first query), and the plan of its vector query.

    The statements are captured with a ``before_cursor_execute`` listener; the vector
    query is then EXPLAINed in the same transaction, so the settings ``search()``
    applied with ``set_config(..., true)`` are still in force.
    """
    engine = vecalchemy.create_engine(db.url)
    captured: list[tuple[str, Any]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _capture(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        captured.append((statement, params))

    cases: list[tuple[str, Any, dict[str, Any]]] = [("unfiltered", models.doc.embedding, {})]
    for level in LEVELS:
        where = models.doc.category == filter_value(level, 0)
        cases.append((level, models.doc.embedding, {"where": where}))
    if models.bq is not None:
        for o in OVERSAMPLE:
            cases.append((f"bq_x{o}", models.bq.embedding, {"oversample": o}))
    out: dict[str, Any] = {}
    try:
        out["paths"] = _filter_paths(engine, captured, models, data)
        for name, column, kwargs in cases:
            with Session(engine) as session:
                captured.clear()
                vecalchemy.search(session, column, data.queries[0], k=K, **kwargs)
                sent = list(captured)
                vector_queries = [
                    (sql, params)
                    for sql, params in sent
                    if "<=>" in sql and not sql.lstrip().upper().startswith("EXPLAIN")
                ]
                entry: dict[str, Any] = {
                    "statements": [_statement_kind(sql, params) for sql, params in sent],
                }
                if vector_queries:
                    sql, params = vector_queries[-1]
                    plan = (
                        session.connection()
                        .exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql, params)
                        .scalar()
                    )
                    if isinstance(plan, str):
                        plan = json.loads(plan)
                    entry["plan"] = _plan_summary(plan[0]["Plan"])
                    entry["sql"] = sql
                session.rollback()
            out[name] = entry
    finally:
        engine.dispose()
    return out


def _filter_paths(
    engine: sa.Engine, captured: list[tuple[str, Any]], models: Models, data: Dataset
) -> dict[str, Any]:
    """Per level, which path ``search()`` takes for each filter value, and the planner's
    row estimate for the value (``EXPLAIN SELECT 1 FROM t WHERE category = v``)."""
    out: dict[str, Any] = {}
    for level, values in LEVELS.items():
        per_value = {}
        for value in values:
            with Session(engine) as session:
                captured.clear()
                where = models.doc.category == value
                vecalchemy.search(session, models.doc.embedding, data.queries[0], k=K, where=where)
                kinds = [_statement_kind(sql, params) for sql, params in captured]
                plan = (
                    session.connection()
                    .exec_driver_sql(
                        f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {models.table_name} "
                        "WHERE category = %(v)s",
                        {"v": value},
                    )
                    .scalar()
                )
                session.rollback()
            if isinstance(plan, str):
                plan = json.loads(plan)
            index = any(k == "index query" for k in kinds)
            exact = any(k.startswith("exact query") for k in kinds)
            path = "index, then exact" if index and exact else "index" if index else "exact"
            per_value[value] = {
                "path": path,
                "estimated_rows": plan[0]["Plan"]["Plan Rows"],
                "matching_rows": int((data.categories == value).sum()),
            }
        counts: dict[str, int] = {}
        for v in per_value.values():
            counts[v["path"]] = counts.get(v["path"], 0) + 1
        estimates = [v["estimated_rows"] for v in per_value.values()]
        out[level] = {
            "paths": counts,
            "estimated_rows_min": min(estimates),
            "estimated_rows_max": max(estimates),
            "values": per_value,
        }
    return out


def _statement_kind(sql: str, params: Any) -> str:
    text = " ".join(sql.split())
    if text.upper().startswith("EXPLAIN"):
        return "EXPLAIN of the filter (row estimate)"
    if "set_config" in text:
        names = [v for k, v in sorted((params or {}).items()) if k.startswith("param_")]
        values = [v for k, v in sorted((params or {}).items()) if k.startswith("v")]
        pairs = ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=False))
        return f"set_config({pairs})" if pairs else "set_config"
    if "+ 0" in text:
        return "exact query (ORDER BY distance + 0)"
    return "index query"


def _plan_summary(plan: dict[str, Any]) -> str:
    nodes: list[str] = []

    def walk(p: dict[str, Any]) -> None:
        label = p.get("Node Type", "?")
        if "Index Name" in p:
            label += f" ({_short_index(p['Index Name'])})"
        nodes.append(label)
        for child in p.get("Plans", []):
            walk(child)

    walk(plan)
    return " > ".join(nodes)


def _short_index(name: str) -> str:
    for suffix, short in (("_bq", "HNSW on bits"), ("_hnsw", "HNSW"), ("_category", "B-tree")):
        if suffix in name:
            return short
    return name


def run_dataset(
    db: Database,
    data: Dataset,
    *,
    args: argparse.Namespace,
    features: dict[str, Feature],
) -> dict[str, Any]:
    name = f"{PREFIX}{data.name}_{data.rows}"
    hybrid_ok = features["hybrid"]
    bq_ok = features["bq"]
    models = make_models(
        name,
        fulltext=hybrid_ok.available and data.name == "real",
        bq=bq_ok.available,
    )
    phases: dict[str, float] = {}
    started = time.perf_counter()
    truth = ground_truth(data)
    phases["ground_truth"] = time.perf_counter() - started
    started = time.perf_counter()
    table = prepare_table(db, data, models, reload=args.reload)
    phases["load_and_index"] = time.perf_counter() - started

    skipped: dict[str, str] = {}
    contenders = contenders_for(
        db,
        models,
        data,
        langchain_ok=features["langchain"],
        hybrid_ok=hybrid_ok,
        bq_ok=bq_ok,
        sweep=args.sweep,
        skipped=skipped,
    )
    started = time.perf_counter()
    try:
        stats = measure(contenders, len(data.queries), args.rounds)
    finally:
        for c in contenders:
            try:
                c.close()
            except Exception:
                traceback.print_exc()
    phases["measure"] = time.perf_counter() - started
    plans = explain_filtered(db, name, data)
    statements = va_statements(db, models, data)
    hybrid_ref: dict[str, Any] = {}
    if models.fulltext and any(key.startswith("hybrid_") for key in stats):
        hybrid_ref = hybrid_reference(db, models, data)
    results = summarize(stats, truth, hybrid_ref)
    if models.bq is not None:
        for o, value in bq_ceiling(data, truth).items():
            if f"bq_x{o}" in results:
                results[f"bq_x{o}"]["recall_at_10_exact_bq_rerank"] = value
    for v in hybrid_ref.get("variants", {}).values():
        v.pop("top")  # per-query ids: used above, too big for the JSON
        v.pop("top_cut")
    return {
        "dataset": data.name,
        "rows": data.rows,
        "queries": len(data.queries),
        "meta": data.meta,
        "table": table,
        "phases_seconds": phases,
        "skipped": skipped,
        "plans_first_query": plans,
        "vecalchemy_statements": statements,
        "hybrid_reference": hybrid_ref,
        "results": results,
    }


def summarize(stats: dict[str, Stats], truth: Truth, hybrid_ref: dict[str, Any]) -> dict[str, Any]:
    raw = stats.get("raw")
    va = stats.get("va_session")
    out: dict[str, Any] = {}
    for s in stats.values():
        entry: dict[str, Any] = {
            "label": s.label,
            "group": s.group,
            "level": s.level,
            "ef_search": s.ef_search,
            "oversample": s.oversample,
        }
        if s.error is not None or not s.p50:
            entry["error"] = s.error or "no measured rounds"
            out[s.key] = entry
            continue
        gt = truth.filtered[s.level] if s.level else truth.unfiltered
        rows = [len(h) for h in s.hits]
        entry.update(
            {
                "p50_ms": s.p50_ms,
                "p95_ms": s.p95_ms,
                "client_cpu_ms": s.cpu_ms,
                "rounds_p50_ms": s.p50,
                "rounds_p95_ms": s.p95,
                "recall_at_10": recall(s.hits, gt),
                "rows_mean": float(np.mean(rows)),
                "rows_min": int(min(rows)),
            }
        )
        if s.level is not None:
            expected = np.minimum(truth.matching[s.level], K)
            short = sum(r < e for r, e in zip(rows, expected, strict=True))
            entry["queries_short_of_k"] = int(short)
            entry["matching_rows_mean"] = float(truth.matching[s.level].mean())
            entry["selectivity"] = SELECTIVITY[s.level]
        variants = hybrid_ref.get("variants", {})
        if s.group == "hybrid":
            entry["recall_at_10_vs_exact_vector"] = entry.pop("recall_at_10")
            variant = s.key.rsplit("_", 1)[1]
            if s.key.startswith("hybrid_rrf_") and variant in variants:
                entry["recall_at_10_vs_exact_rrf"] = recall(s.hits, variants[variant]["top"])
                entry["recall_at_10_vs_rrf_of_exact_candidates"] = recall(
                    s.hits, variants[variant]["top_cut"]
                )
        elif s.key in ("va_session", "va_session_ft") and variants:
            entry["recall_at_10_vs_exact_rrf"] = {
                v: recall(s.hits, ref["top"]) for v, ref in variants.items()
            }
        if raw is not None and raw.p50:
            entry["ratio_to_raw_p50"] = s.p50_ms / raw.p50_ms
        if va is not None and va.p50:
            entry["ratio_to_va_unfiltered_p50"] = s.p50_ms / va.p50_ms
        if s.diagnostics:
            entry["diagnostics"] = s.diagnostics
        out[s.key] = entry
    return out


# -- reporting ------------------------------------------------------------------------


def pkg(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine_info(db: Database) -> dict[str, Any]:
    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    with psycopg.connect(**db.params) as conn:
        pg = conn.execute("SHOW server_version").fetchone()
        ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname='vector'").fetchone()
        settings = {
            n: conn.execute(f"SHOW {n}").fetchone()[0]  # type: ignore[index]
            for n in ("shared_buffers", "work_mem", "max_parallel_workers_per_gather", "jit")
        }
    names = (
        "vecalchemy", "sqlalchemy", "psycopg", "pgvector", "numpy", "torch",
        "sentence-transformers", "langchain-postgres", "langchain-core",
    )  # fmt: skip
    return {
        "cpu_count": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgresql": pg[0] if pg else None,
        "pgvector_extension": ext[0] if ext else None,
        "server_settings": settings,
        "packages": {p: pkg(p) for p in names},
        "load_average_at_end": os.getloadavg(),
    }


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, spec)


def unfiltered_table(res: dict[str, Any]) -> str:
    lines = [
        "| contender | recall@10 | p50 ms | p95 ms | client CPU ms | p50 vs raw psycopg |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    keys = ["raw", "va_session", "va_core", "cheatsheet", "langchain"]
    for key in keys:
        r = res["results"].get(key)
        if r is None:
            continue
        if "error" in r:
            lines.append(f"| {r['label']} | failed: {r['error'][:80]} | | | | |")
            continue
        lines.append(
            f"| {r['label']} | {r['recall_at_10']:.3f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} "
            f"| {r['client_cpu_ms']:.2f} | {r['ratio_to_raw_p50']:.2f}x |"
        )
    return "\n".join(lines)


def sweep_table(res: dict[str, Any], sweep: Sequence[int]) -> str:
    r = res["results"]
    lines = [
        "| ef_search | raw recall@10 | raw p50 ms | search() recall@10 | search() p50 ms "
        "| search() / raw |",
        "|--:|--:|--:|--:|--:|--:|",
    ]
    for ef in (EF_SEARCH, *sweep):
        a = r.get("raw" if ef == EF_SEARCH else f"raw_ef{ef}")
        b = r.get("va_session" if ef == EF_SEARCH else f"va_ef{ef}")
        if not a or not b or "error" in a or "error" in b:
            continue
        lines.append(
            f"| {ef} | {a['recall_at_10']:.3f} | {a['p50_ms']:.2f} | {b['recall_at_10']:.3f} "
            f"| {b['p50_ms']:.2f} | {b['p50_ms'] / a['p50_ms']:.2f}x |"
        )
    return "\n".join(lines)


def filtered_table(res: dict[str, Any]) -> str:
    r = res["results"]
    va = r.get("va_session", {})
    lines = [
        "| filter | matching rows | contender | rows returned mean (min) | recall@10 | p50 ms "
        "| p95 ms | client CPU ms | p50 vs unfiltered search() | plan (first query) |",
        "|---|--:|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    plans = res.get("plans_first_query", {})
    sent = res.get("vecalchemy_statements", {})
    for level in LEVELS:
        va_plan = sent.get(level, {}).get("plan", "")
        for key, plan in (
            (f"va_{level}", va_plan),
            *((f"va_{level}_ef{ef}", va_plan) for ef in FILTER_EF),
            (f"va_{level}_index", plans.get(f"{level} relaxed_order", "")),
            (f"va_{level}_exact", plans.get(f"{level} exact", "")),
            (f"raw_default_{level}", plans.get(f"{level} default", "")),
            (f"raw_relaxed_order_{level}", plans.get(f"{level} relaxed_order", "")),
            (f"raw_exact_{level}", plans.get(f"{level} exact", "")),
        ):
            e = r.get(key)
            if e is None:
                continue
            label = e["label"].rsplit(",", 1)[0]
            if "error" in e:
                lines.append(f"| {level} | | {label} | failed: {e['error'][:60]} | | | | | | |")
                continue
            ratio = e["p50_ms"] / va["p50_ms"] if va.get("p50_ms") else None
            prepared = e.get("diagnostics", {}).get("prepared", [])
            if any(p["generic"] > p["custom"] for p in prepared):
                plan = f"{plan} (custom plan; the runs used a generic plan)"
            lines.append(
                f"| {level} | {e['matching_rows_mean']:,.0f} | {label} "
                f"| {e['rows_mean']:.1f} ({e['rows_min']}) | {e['recall_at_10']:.3f} "
                f"| {e['p50_ms']:.2f} | {e['p95_ms']:.2f} | {e['client_cpu_ms']:.2f} "
                f"| {_fmt(ratio, '.2f')}x | {plan} |"
            )
    return "\n".join(lines)


def statements_list(res: dict[str, Any]) -> str:
    sent = res.get("vecalchemy_statements", {})
    lines = []
    for name, entry in sent.items():
        if name == "paths":
            continue
        steps = "; ".join(entry.get("statements", []))
        lines.append(f"* {name}: {len(entry.get('statements', []))} statements: {steps}.")
    for level, entry in sent.get("paths", {}).items():
        counts = ", ".join(f"{path} for {n}" for path, n in entry["paths"].items())
        lines.append(
            f"* path taken for the {len(entry['values'])} filter values of {level} "
            f"(planner estimates {entry['estimated_rows_min']:,}-"
            f"{entry['estimated_rows_max']:,} rows): {counts}."
        )
    return "\n".join(lines)


def bq_table(res: dict[str, Any]) -> str | None:
    r = res["results"]
    rows = [r[k] for k in (f"bq_x{o}" for o in OVERSAMPLE) if k in r]
    if not rows:
        return None
    va = r["va_session"]
    lines = [
        "| index | oversample | recall@10 | recall@10 ceiling (exact Hamming top-k x "
        "oversample, re-ranked) | p50 ms | p95 ms | p50 vs plain HNSW search() |",
        "|---|--:|--:|--:|--:|--:|--:|",
        f"| HNSW on vector (plain) | | {va['recall_at_10']:.3f} | | {va['p50_ms']:.2f} "
        f"| {va['p95_ms']:.2f} | 1.00x |",
    ]
    for e in rows:
        if "error" in e:
            lines.append(f"| binary-quantized | {e['oversample']} | failed: {e['error'][:80]} |||")
            continue
        lines.append(
            f"| HNSW on binary_quantize(embedding) | {e['oversample']} | {e['recall_at_10']:.3f} "
            f"| {_fmt(e.get('recall_at_10_exact_bq_rerank'))} "
            f"| {e['p50_ms']:.2f} | {e['p95_ms']:.2f} "
            f"| {e['ratio_to_va_unfiltered_p50']:.2f}x |"
        )
    sizes = res["table"].get("index_bytes", {})
    plain = next((v for k, v in sizes.items() if k.endswith("_hnsw")), None)
    bits = next((v for k, v in sizes.items() if k.endswith("_hnsw_bq")), None)
    if plain and bits:
        lines += [
            "",
            f"Index sizes: HNSW on the vectors {plain / 2**20:,.1f} MiB, HNSW on "
            f"`binary_quantize(embedding)::bit({DIM})` {bits / 2**20:,.1f} MiB "
            f"({plain / bits:.1f}x smaller); table {res['table']['table_bytes'] / 2**20:,.1f} MiB.",
        ]
    return "\n".join(lines)


def hybrid_table(res: dict[str, Any]) -> str | None:
    r = res["results"]
    rows = [e for e in r.values() if e.get("group") == "hybrid"]
    if not rows:
        return None
    lines = [
        "| contender | recall@10 vs exact vector top-10 | recall@10 vs exact RRF "
        "| recall@10 vs RRF of exact candidates | p50 ms | p95 ms | p50 vs vector search() |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    va = r["va_session"]
    vs_rrf = va.get("recall_at_10_vs_exact_rrf") or {}
    lines.append(
        f"| vecalchemy.search() (vector only) | {va['recall_at_10']:.3f} "
        f"| {', '.join(f'{v}: {x:.3f}' for v, x in vs_rrf.items()) or 'n/a'} | "
        f"| {va['p50_ms']:.2f} | {va['p95_ms']:.2f} | 1.00x |"
    )
    for e in rows:
        if "error" in e:
            lines.append(f"| {e['label']} | failed: {e['error'][:80]} | | | | | |")
            continue
        lines.append(
            f"| {e['label']} | {e['recall_at_10_vs_exact_vector']:.3f} "
            f"| {_fmt(e.get('recall_at_10_vs_exact_rrf'))} "
            f"| {_fmt(e.get('recall_at_10_vs_rrf_of_exact_candidates'))} | {e['p50_ms']:.2f} "
            f"| {e['p95_ms']:.2f} | {e['ratio_to_va_unfiltered_p50']:.2f}x |"
        )
    ref = res.get("hybrid_reference", {})
    notes = []
    for variant, v in ref.get("variants", {}).items():
        notes.append(
            f"{variant}: the text matches {v['text_matches_mean']:,.1f} rows on average "
            f"(median {v['text_matches_median']:,.0f}); {v['queries_with_text_matches']} of "
            f"{res['queries']} queries match at least one row, "
            f"{v['queries_with_10_or_more_text_matches']} at least {K}"
        )
    if notes:
        lines += ["", "Full-text leg, exact: " + "; ".join(notes) + "."]
    ft = r.get("va_session_ft")
    if ft and "p50_ms" in ft:
        lines += [
            "",
            f"`search()` through the model that declares the `FullText` column loads `tsv` "
            f"with every hit: p50 {ft['p50_ms']:.2f} ms vs {va['p50_ms']:.2f} ms "
            f"({ft['p50_ms'] / va['p50_ms']:.2f}x).",
        ]
    return "\n".join(lines)


def verdicts(report: dict[str, Any]) -> str:
    lines = []
    for res in report["datasets"]:
        r = res["results"]
        name = f"`{res['dataset']}` ({res['rows']:,} rows)"
        for key in ("va_session", "va_core"):
            e = r.get(key)
            if e and "p50_ms" in e:
                ok = e["ratio_to_raw_p50"] <= 1.15
                lines.append(
                    f"* {name}, {e['label']} p50 <= 1.15x raw psycopg: "
                    f"**{'met' if ok else 'not met'}** ({e['ratio_to_raw_p50']:.2f}x)."
                )
        for level in LEVELS:
            e = r.get(f"va_{level}")
            if not e or "p50_ms" not in e:
                continue
            short = e["queries_short_of_k"]
            checks = [
                f"k rows whenever k match: **{'met' if short == 0 else 'not met'}**"
                + (f" ({short} queries short)" if short else ""),
                f"recall@10 >= 0.95: **{'met' if e['recall_at_10'] >= 0.95 else 'not met'}** "
                f"({e['recall_at_10']:.3f})",
                f"p50 <= 3x unfiltered: **"
                f"{'met' if e['ratio_to_va_unfiltered_p50'] <= 3 else 'not met'}** "
                f"({e['ratio_to_va_unfiltered_p50']:.2f}x)",
            ]
            lines.append(f"* {name}, filter {level}: " + "; ".join(checks) + ".")
    return "\n".join(lines)


#: Chart styles of the single points: key -> (marker, colour, label).
POINTS: dict[str, tuple[str, str, str]] = {
    "raw": ("o", "#4c72b0", "raw psycopg (the limit)"),
    "va_session": ("s", "#dd8452", "search(), Session"),
    "va_core": ("D", "#dd8452", "search(), Core Connection"),
    "cheatsheet": ("^", "#937860", "cheatsheet ORM"),
    "langchain": ("v", "#8172b3", "langchain-postgres"),
}
LEVEL_MARKERS = dict(zip(LEVELS, ("P", "X", "h"), strict=True))


def write_chart(report: dict[str, Any], path: Path) -> None:
    """Recall@10 against p50 latency, one panel per dataset (hybrid left out: its
    recall is against another reference)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    datasets = report["datasets"]
    fig, axes = plt.subplots(1, len(datasets), figsize=(7 * len(datasets), 6.6), squeeze=False)
    for ax, res in zip(axes[0], datasets, strict=True):
        r = res["results"]
        ok = {k: e for k, e in r.items() if "p50_ms" in e}
        sweep = [EF_SEARCH, *report["settings"]["ef_sweep"]]
        for prefix, base, colour, label in (
            ("raw_ef", "raw", "#4c72b0", "raw psycopg, ef_search 40..320"),
            ("va_ef", "va_session", "#dd8452", "search(), ef_search 40..320"),
        ):
            pts = [(ef, ok.get(base if ef == EF_SEARCH else f"{prefix}{ef}")) for ef in sweep]
            pts = [(ef, p) for ef, p in pts if p]
            ax.plot([p["p50_ms"] for _, p in pts], [p["recall_at_10"] for _, p in pts], "-",
                    color=colour, alpha=0.55, label=label)  # fmt: skip
            for ef, p in pts[1:]:
                ax.annotate(str(ef), (p["p50_ms"], p["recall_at_10"]), fontsize=7,
                            xytext=(3, -9), textcoords="offset points", color=colour)  # fmt: skip
        for key, (marker, colour, label) in POINTS.items():
            e = ok.get(key)
            if e:
                ax.scatter(e["p50_ms"], e["recall_at_10"], marker=marker, color=colour, s=52,
                           label=label, zorder=3, edgecolors="k", linewidths=0.4)  # fmt: skip
        bq = [ok[k] for k in (f"bq_x{o}" for o in OVERSAMPLE) if k in ok]
        if bq:
            label = "search(), binary-quantized, oversample 2/4/8"
            xs, ys = [e["p50_ms"] for e in bq], [e["recall_at_10"] for e in bq]
            ax.plot(xs, ys, "--v", color="#55a868", label=label)
        for level, marker in LEVEL_MARKERS.items():
            for key, colour, what in (
                (f"va_{level}", "#dd8452", "search()"),
                (f"raw_default_{level}", "#999999", "plain defaults"),
                (f"raw_relaxed_order_{level}", "#4c72b0", "raw + iterative scan"),
            ):
                e = ok.get(key)
                if e:
                    label = f"{what}, filter {level}"
                    xy = (e["p50_ms"], e["recall_at_10"])
                    ax.scatter(*xy, marker=marker, color=colour, s=44, label=label, alpha=0.8)
        low = min((e["recall_at_10"] for e in ok.values() if "recall_at_10" in e), default=0.0)
        ax.set_ylim(max(-0.02, low - 0.05), 1.01)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("p50 latency per query, ms (log scale)")
        ax.set_ylabel("recall@10 vs exact (filtered: vs exact among the matching rows)")
        ax.grid(True, which="both", alpha=0.25)
        ax.set_title(f"{res['dataset']}: {res['rows']:,} rows x {DIM} dims, k={K}", fontsize=10)
        ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)
    m = report["machine"]
    fig.suptitle(
        f"PostgreSQL {m['postgresql']}, pgvector {m['pgvector_extension']}, {m['cpu_count']} CPUs; "
        f"HNSW m=16, ef_construction=64; median of {report['settings']['rounds']} rounds",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


DOC_HEADING = "## Search (issue 4)"
BEGIN = "<!-- search:begin (generated by benchmarks/search.py) -->"
END = "<!-- search:end -->"
SECTION_INTRO = """\
What `vecalchemy.search()` returns and how fast, on two datasets: real MiniLM embeddings
(all-MiniLM-L6-v2, 384 dimensions) of 20,187 chunks of the standard library's
docstrings, and 200,000 vectors drawn from a Gaussian mixture fitted to them. Unfiltered
against raw psycopg (the limit), the cheatsheet's ORM pattern and langchain-postgres;
filtered at 10%, 1% and 0.1% selectivity against plain pgvector defaults and the two
strategies pgvector recommends; hybrid search and binary quantization. The method is in
the docstring of `benchmarks/search.py`. Rerun with `.venv/bin/python
benchmarks/search.py` (about 9 minutes on 2 cores once the data are cached in
`data/bench-search/`; the first run also embeds the chunks, about 5 minutes, and samples
the mixture, 1 minute; `--quick` is a smoke run of under a minute, `--render` redraws
this section from `benchmarks/results/search.json`). The rerun refreshes only the
generated part at the end of this section; the text before it was written from the run
shown there.

### How to read the tables

* **recall@10**: the share of the exact top-10 (numpy, cosine, all rows) among the hits.
  Filtered: the exact top-10 among the rows that match the filter.
* **Filters**: `category` is a hash of the id into 1,000 buckets, so nine values cover
  10% of the rows each, nine 1% and ten 0.1%; query *i* filters on value *i* mod *n* of
  its level. `category` has a B-tree index. "plain pgvector defaults" sends the filtered
  query with no settings (`ef_search` 40, no iterative scan): the HNSW scan hands 40
  candidates to the filter. "raw + iterative scan" adds `hnsw.iterative_scan =
  relaxed_order`. "raw exact" orders by `(embedding <=> q) + 0`, which no vector index
  serves, so the planner finds the matching rows through the B-tree and sorts them.
  These are pgvector's two recommendations, for loose and for very selective filters.
* **Plan column**: EXPLAIN of the first query, as each contender sends it. For `search()`
  it is the statement `search()` actually sent (captured with an event listener),
  EXPLAINed inside the same transaction, so its `set_config` settings still apply.
  psycopg prepares a statement after 5 runs, and the server may then switch to a
  generic plan; the column says when it did.
* **Hybrid** has no single exact answer, so there are three references. (1) The exact
  vector top-10: how far fusion moves the results away from vector search. (2) Exact
  RRF (k=60) over complete rankings: every row ranked by exact cosine, every text match
  ranked by `ts_rank_cd` (computed in SQL with index scans off). That is the answer with
  unlimited candidates. (3) RRF of each leg's exact top-40, where 40 is
  `hybrid_search()`'s default `candidates`: what it should return if its vector leg were
  exact. This checks the fusion itself. Two query texts are used: the held-out chunk
  verbatim, and its words joined with `or`. `websearch_to_tsquery` ANDs the words of the
  verbatim text, so most of those long queries match no row.
* **Binary quantization ceiling**: exact Hamming distance over all rows, the best
  k x oversample kept and re-ranked by exact cosine. That is the best any index on
  `binary_quantize(embedding)` can do at that oversampling.
"""


def update_doc(generated: str) -> None:
    block = f"{BEGIN}\n{generated.strip()}\n{END}"
    current = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        DOC.write_text(f"{head}{block}{tail}")
    elif DOC_HEADING in current:
        head, tail = current.split(DOC_HEADING, 1)
        DOC.write_text(f"{head}{DOC_HEADING}\n\n{block}\n{tail}")
    else:
        DOC.write_text(
            f"{current.rstrip()}\n\n{DOC_HEADING}\n\n{SECTION_INTRO}\n### Measurements\n\n{block}\n"
        )


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    s = report["settings"]
    parts = [
        f"Measured on {m['cpu_count']} x {m['cpu']}, Python {m['python']}, PostgreSQL "
        f"{m['postgresql']} with pgvector {m['pgvector_extension']} (embedded server), "
        f"SQLAlchemy {m['packages']['sqlalchemy']}, psycopg {m['packages']['psycopg']}, "
        f"langchain-postgres {m['packages']['langchain-postgres'] or 'n/a'}. k={K}, "
        f"HNSW m=16 ef_construction=64, {s['queries']} queries per dataset, median of "
        f"{s['rounds']} rotated rounds; load average at the end "
        f"{', '.join(f'{x:.1f}' for x in m['load_average_at_end'])}. Total run "
        f"{report['seconds'] / 60:.1f} min.",
    ]
    for res in report["datasets"]:
        meta = res["meta"]
        if res["dataset"] == "real":
            what = (
                f"{res['rows']:,} chunks ({meta['splitter']}) of "
                f"{meta['documents_in_table']:,} standard-library docstrings, "
                f"{meta['embedder']}; queries: {meta['queries']}"
            )
        else:
            what = f"{res['rows']:,} vectors, {meta['model']}"
        ph = res["phases_seconds"]
        tb = res["table"]
        load_note = (
            f"binary COPY with `vecalchemy.load` {_fmt(tb.get('load_seconds'), '.1f')} s, "
            f"HNSW build {_fmt(tb.get('hnsw_build_seconds'), '.1f')} s, binary-quantized "
            f"HNSW build {_fmt(tb.get('bq_build_seconds'), '.1f')} s"
            + (" (when the cached table was made)" if tb.get("reused") else "")
        )
        if res["dataset"] == "real":
            load_note = (
                f"embedding {meta['chunks']:,} chunks {meta['embed_seconds']:.0f} s "
                f"({meta['chunks_per_second']:.0f}/s, cached); " + load_note
            )
        else:
            load_note = f"fit and sample {meta['seconds']:.0f} s (cached); " + load_note
        parts.append(
            f"#### `{res['dataset']}`, {res['rows']:,} rows\n\n{what}.\n\n"
            f"Phases: ground truth {ph['ground_truth']:.1f} s; {load_note}; measurement "
            f"{ph['measure']:.0f} s."
        )
        parts.append("Unfiltered:\n\n" + unfiltered_table(res))
        parts.append("ef_search sweep (unfiltered):\n\n" + sweep_table(res, s["ef_sweep"]))
        parts.append(
            "Filtered (`where=Doc.category == c`, B-tree index on `category`):\n\n"
            + filtered_table(res)
        )
        parts.append("What one `search()` sends (first query):\n\n" + statements_list(res))
        bq = bq_table(res)
        parts.append(
            "Binary quantization:\n\n" + bq
            if bq
            else f"Binary quantization: skipped, {res['skipped'].get('binary_quantization')}."
        )
        if res["dataset"] == "real":
            hy = hybrid_table(res)
            parts.append(
                "Hybrid (vector + full text):\n\n" + hy
                if hy
                else f"Hybrid: skipped, {res['skipped'].get('hybrid')}."
            )
        if "langchain" in res["skipped"]:
            parts.append(f"langchain-postgres: skipped, {res['skipped']['langchain']}.")
    parts.append("Targets:\n\n" + verdicts(report))
    parts.append("![recall vs latency](../benchmarks/results/search.png)")
    return "\n\n".join(parts)


# -- main -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=200_000, help="mixture rows")
    parser.add_argument("--queries", type=int, default=200, help="queries per dataset")
    parser.add_argument("--rounds", type=int, default=5, help="rotated measured rounds")
    parser.add_argument("--quick", action="store_true", help="small everything (smoke run)")
    parser.add_argument(
        "--datasets", nargs="*", default=["real", "mixture"], choices=["real", "mixture"]
    )
    parser.add_argument("--url", help="use this server instead of the embedded one")
    parser.add_argument("--reload", action="store_true", help="reload tables even if cached")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument(
        "--render",
        action="store_true",
        help="measure nothing: redraw the chart and the doc section from results/search.json",
    )
    args = parser.parse_args(argv)
    args.sweep = list(EF_SWEEP)
    args.real_rows = None
    if args.quick:
        args.rows = min(args.rows, 20_000)
        args.queries = min(args.queries, 40)
        args.rounds = min(args.rounds, 2)
        args.sweep = [160]
        args.real_rows = 5_000
    if args.rows < 1_000 or args.queries < 2 or args.rounds < 1:
        parser.error("--rows must be >= 1000, --queries >= 2, --rounds >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        report = json.loads((RESULTS / "search.json").read_text())
        write_chart(report, RESULTS / "search.png")
        text = markdown(report)
        print(text)
        if not args.no_doc:
            update_doc(text)
        return 0
    started = time.perf_counter()
    RESULTS.mkdir(parents=True, exist_ok=True)
    root = bench_dir()
    features = {
        "hybrid": hybrid_feature(),
        "bq": bq_feature(),
        "langchain": langchain_feature(),
    }
    for name, f in features.items():
        log(f"{name}: {'available' if f.available else f.reason}")
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    real = build_real(root)
    phases["real_dataset"] = time.perf_counter() - t0
    datasets: list[Dataset] = []
    if "real" in args.datasets:
        datasets.append(
            subset(real, args.real_rows or real.rows, min(args.queries, len(real.queries)))
        )
    if "mixture" in args.datasets:
        t0 = time.perf_counter()
        datasets.append(build_mixture(real, args.rows, args.queries, root))
        phases["mixture_dataset"] = time.perf_counter() - t0
    results = []
    with database(args.url, root / "pg") as db:
        for data in datasets:
            log(f"== {data.name}: {data.rows:,} rows, {len(data.queries)} queries ==")
            results.append(run_dataset(db, data, args=args, features=features))
        machine = machine_info(db)
    report = {
        "benchmark": "search (issue 4)",
        "machine": machine,
        "settings": {
            "k": K,
            "ef_search": EF_SEARCH,
            "ef_sweep": args.sweep,
            "oversample": list(OVERSAMPLE),
            "queries": args.queries,
            "rounds": args.rounds,
            "quick": args.quick,
            "index": "hnsw (m=16, ef_construction=64), vector_cosine_ops",
            "levels": {k: {"selectivity": SELECTIVITY[k], "values": v} for k, v in LEVELS.items()},
        },
        "features": {k: vars(v) for k, v in features.items()},
        "phases_seconds": phases,
        "datasets": results,
        "seconds": time.perf_counter() - started,
    }
    # A quick run's outputs stay out of git, next to the cached data.
    out = root / "quick" if args.quick else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    (out / "search.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    write_chart(report, out / "search.png")
    log(f"wrote {out / 'search.json'} and {out / 'search.png'}")
    text = markdown(report)
    print()
    print(text)
    if not args.no_doc and not args.quick:
        update_doc(text)
    log(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
