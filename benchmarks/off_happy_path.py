"""Reproductions of the issue "Correct off the happy path", measured on OLD and NEW.

Each reproduction is one function that sets up what it needs, does the thing the issue
describes and returns one number or short value (plus details); the same code runs
against both versions, so it uses only what both have: the public API
(``vecalchemy.create_engine``, ``search``, ``nearest``, ``Embedding``, ``HNSW``,
``build_indexes``, ``defer_indexes``, ``load``, ``Collection``, ``HashingEmbedder``,
``vecalchemy.server.EmbeddedServer`` and the ``vecalchemy db`` commands), SQLAlchemy,
psycopg and pgvector-python.

How it runs
-----------
The driver (``python benchmarks/off_happy_path.py``) starts an embedded server of its
own with the NEW code (``EmbeddedServer(--data-dir, settings={"fsync": "off"})``),
creates one empty database per version (``ohp_old``, ``ohp_new``), and runs every
reproduction in a subprocess of its own, ``PYTHONPATH`` set to that version's ``src``
(``--old``, ``--new``): a crash, a hang (``--timeout``) or a leaked setting of one
reproduction cannot touch another. Every engine sets ``statement_timeout`` to 600 s.
All OLD reproductions run, then all NEW ones. Each records
``{"name", "old_expected", "value", "error", "details", "seconds"}``; the driver writes
``results/off_happy_path.json`` and prints the table (reproduction | OLD | NEW).

The reproductions that are about the embedded server itself (restart, ``pg_hba.conf``,
a shell in the data directory path, a fresh cluster's settings) start the version's own
server in a scratch directory under ``data/off-happy-scratch/`` (removed afterwards).

Sizes: the issue's sizes where the size is the effect (50,000 dead index entries,
a 10,000-chunk add, 80 concurrent upserts); 16-dimension random vectors where the
dimension does not matter (every HNSW effect here depends on ``ef_search`` and the
number of rows, not on the dimension); 200-document collections with
``HashingEmbedder(384)``; ``--duration`` (30 s) for the concurrent run.

Run from the repository::

    .venv/bin/python benchmarks/off_happy_path.py                 # both versions, ~6 min
    .venv/bin/python benchmarks/off_happy_path.py --only upsert_then_search,hba_wrong_password
    .venv/bin/python benchmarks/off_happy_path.py --duration 10 --versions new
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import sqlalchemy as sa
from sqlalchemy import Integer, event, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
SCRATCH = REPO / "data" / "off-happy-scratch"
VERSIONS = ("old", "new")

DIM = 16
ROWS = 50_000
FIXTURE = "off-happy-docs-v1"
STATEMENT_TIMEOUT = "600s"

Vec = npt.NDArray[np.float32]


# -- helpers (run inside a reproduction's subprocess) ---------------------------------------


@dataclass(frozen=True)
class Context:
    url: str  # postgresql+psycopg:// URL of this version's database
    label: str  # old / new
    duration: float  # seconds of the concurrent run


def engine_for(ctx: Context, **kw: Any) -> sa.Engine:
    import vecalchemy

    return vecalchemy.create_engine(
        ctx.url, connect_args={"options": f"-c statement_timeout={STATEMENT_TIMEOUT}"}, **kw
    )


def model(table: str, *, metric: str = "cosine", dim: int = DIM) -> Any:
    """A fresh declarative class for ``table``: id, category, embedding (HNSW)."""
    from vecalchemy import HNSW, Embedding

    class Base(DeclarativeBase):
        pass

    class Doc(Base):
        __tablename__ = table

        id: Mapped[int] = mapped_column(primary_key=True)
        category: Mapped[int] = mapped_column(Integer, default=0)
        embedding = Embedding(dim, metric=metric, index=HNSW())

    return Doc


def vectors(n: int, seed: int, dim: int = DIM) -> Vec:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def queries(n: int = 30) -> list[Vec]:
    return list(vectors(n, seed=12345))


def fresh_table(engine: sa.Engine, doc: Any, *, rows: int, build: bool = True) -> None:
    """Drop and create ``doc``'s table, bulk-load ``rows`` rows, build its HNSW index."""
    import vecalchemy
    from vecalchemy.load import load

    doc.metadata.drop_all(engine)
    with vecalchemy.defer_indexes():
        doc.metadata.create_all(engine)
    if rows:
        ids = list(range(rows))
        load(
            engine,
            doc,
            {"id": ids, "category": [i % 10 for i in ids], "embedding": vectors(rows, seed=0)},
        )
    if build:
        vecalchemy.build_indexes(engine, doc)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"VACUUM ANALYZE {doc.__tablename__}")


def docs50k(engine: sa.Engine) -> Any:
    """The shared 50,000-row table (16 dims, cosine, HNSW), made once per database."""
    doc = model("ohp_docs")
    with engine.connect() as conn:
        comment = conn.execute(
            text("SELECT obj_description(to_regclass('ohp_docs'), 'pg_class')")
        ).scalar()
        indexed = conn.execute(
            text(
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'ohp_docs' AND indexdef ~ 'hnsw'"
            )
        ).scalar()
    if comment != FIXTURE or not indexed:
        fresh_table(engine, doc, rows=ROWS)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"COMMENT ON TABLE ohp_docs IS '{FIXTURE}'")
    return doc


def explain(conn: Any, stmt: Any) -> str:
    """The plan a SQLAlchemy statement runs with: ``vecalchemy.explain``, which both
    versions have (in NEW it runs through the statement's own settings, as the statement
    itself does)."""
    import vecalchemy

    return vecalchemy.explain(conn, stmt)


def scan_kind(plan: str) -> str:
    """The first scan node of a plan: Index Scan, Seq Scan, ..."""
    for line in plan.splitlines():
        for kind in ("Index Scan", "Index Only Scan", "Seq Scan", "Bitmap Heap Scan"):
            if kind in line:
                return kind
    return plan.splitlines()[0] if plan else "?"


def error_name(exc: BaseException) -> str:
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    orig = getattr(exc, "orig", None)
    if orig is not None:
        name += f" (orig {type(orig).__module__}.{type(orig).__qualname__})"
    return name


_VOCABULARY = (
    "alpha beta gamma delta index vector query table row column search filter "
    "postgres planner cosine distance embedding chunk document text metadata "
    "server cluster port socket password load batch upsert delete commit"
)
_REVISED = (
    "apple banana cherry grape lemon mango melon orange peach pear plum berry "
    "kiwi lime fig date olive onion garlic pepper carrot potato tomato"
)
VOCABULARY = _VOCABULARY.split()
#: The words of the revised documents: none shared with VOCABULARY.
REVISED = _REVISED.split()


def short(name: object) -> str:
    """The exception's own name, the driver's when SQLAlchemy wraps it: ``UniqueViolation``."""
    text = str(name)
    if "(orig " in text:
        text = text.split("(orig ", 1)[1].rstrip(")")
    return text.rsplit(".", 1)[-1]


def words(n: int, rng: np.random.Generator, vocabulary: Sequence[str] = VOCABULARY) -> str:
    return " ".join(vocabulary[int(i)] for i in rng.integers(0, len(vocabulary), n))


def collection(ctx: Context, name: str, engine: sa.Engine, *, dim: int = 384, seed: int = 0) -> Any:
    from vecalchemy import Collection
    from vecalchemy.embedders import HashingEmbedder

    return Collection(name, embedder=HashingEmbedder(dim, seed=seed), engine=engine)


def fresh_collection(ctx: Context, name: str, engine: sa.Engine, docs: int, **kw: Any) -> Any:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    c = collection(ctx, name, engine, **kw)
    if docs:
        rng = np.random.default_rng(7)
        c.add([words(12, rng) for _ in range(docs)], ids=[f"d{i}" for i in range(docs)])
    return c


# -- reproductions ------------------------------------------------------------------------


def nearest_k100(ctx: Context) -> tuple[Any, dict[str, Any]]:
    import vecalchemy

    engine = engine_for(ctx)
    doc = docs50k(engine)
    q = queries()[0]
    with Session(engine) as session:
        session.execute(text("SET LOCAL enable_seqscan = off"))
        stmt = vecalchemy.nearest(doc.embedding, q, k=100)
        rows = session.execute(stmt).all()
        plan = explain(session, stmt)
    return len(rows), {"scan": scan_kind(plan), "forced": "SET LOCAL enable_seqscan = off"}


def nearest_filtered_k40(ctx: Context) -> tuple[Any, dict[str, Any]]:
    import vecalchemy

    engine = engine_for(ctx)
    doc = docs50k(engine)
    counts = []
    with Session(engine) as session:
        session.execute(text("SET LOCAL enable_seqscan = off"))
        for q in queries(10):
            stmt = vecalchemy.nearest(doc.embedding, q, k=40, where=doc.category == 3)
            counts.append(len(session.execute(stmt).all()))
        plan = explain(session, stmt)
    return f"{min(counts)}-{max(counts)}", {
        "rows_per_query": counts,
        "filter": "category = 3 (10%)",
        "scan": scan_kind(plan),
    }


def settings_after_ef_search(ctx: Context) -> tuple[Any, dict[str, Any]]:
    import vecalchemy

    engine = engine_for(ctx)
    doc = docs50k(engine)
    with Session(engine) as session:
        before = session.execute(text("SHOW hnsw.ef_search")).scalar()
        hits = vecalchemy.search(session, doc.embedding, queries()[0], k=10, ef_search=300)
        after = session.execute(text("SHOW hnsw.ef_search")).scalar()
    return after, {"before": before, "hits": len(hits)}


def _filtered_search(session: Session, doc: Any) -> int:
    import vecalchemy

    hits = vecalchemy.search(session, doc.embedding, queries()[0], k=10, where=doc.category == 3)
    return len(hits)


def settings_after_filtered(ctx: Context) -> tuple[Any, dict[str, Any]]:
    engine = engine_for(ctx)
    doc = docs50k(engine)
    with Session(engine) as session:
        hits = _filtered_search(session, doc)
        scan = session.execute(text("SHOW hnsw.iterative_scan")).scalar()
        cache = session.execute(text("SHOW plan_cache_mode")).scalar()
    return f"{scan}, {cache}", {"hits": hits}


def out_of_order_after_filtered(ctx: Context) -> tuple[Any, dict[str, Any]]:
    import vecalchemy

    engine = engine_for(ctx)
    doc = docs50k(engine)
    out_of_order = 0
    counts = []
    with Session(engine) as session:
        session.execute(text("SET LOCAL enable_seqscan = off"))
        _filtered_search(session, doc)
        for q in queries(30):
            stmt = vecalchemy.nearest(doc.embedding, q, k=10, where=doc.category == 5)
            distances = [row[-1] for row in session.execute(stmt).all()]
            counts.append(len(distances))
            out_of_order += any(b < a for a, b in itertools.pairwise(distances))
        plan = explain(session, stmt)
    return out_of_order, {
        "of": 30,
        "rows_per_query": counts,
        "scan": scan_kind(plan),
        "forced": "SET LOCAL enable_seqscan = off",
    }


def autocommit_k100(ctx: Context) -> tuple[Any, dict[str, Any]]:
    import vecalchemy

    docs50k(engine_for(ctx))
    engine = engine_for(ctx, isolation_level="AUTOCOMMIT")
    doc = model("ohp_docs")

    @event.listens_for(engine, "connect")
    def _index_only(dbapi_connection: Any, record: Any) -> None:
        with dbapi_connection.cursor() as cur:
            cur.execute("SET enable_seqscan = off")

    with Session(engine) as session:
        hits = vecalchemy.search(session, doc.embedding, queries()[0], k=100)
        after = session.execute(text("SHOW hnsw.ef_search")).scalar()
    return len(hits), {"ef_search_after": after, "forced": "SET enable_seqscan = off"}


def upsert_then_search(ctx: Context) -> tuple[Any, dict[str, Any]]:
    engine = engine_for(ctx)
    c = fresh_collection(ctx, "ohp_upsert", engine, 200)
    rng = np.random.default_rng(8)
    # New texts on another subject: the query's nearest index entries are the dead ones.
    c.upsert([words(12, rng, REVISED) for _ in range(200)], ids=[f"d{i}" for i in range(200)])
    hits = c.search(words(4, rng), k=10)
    return len(hits), {"documents": 200, "revised_texts": "words not in the originals"}


def rejected_load(ctx: Context) -> tuple[Any, dict[str, Any]]:
    import vecalchemy
    from vecalchemy.load import load

    engine = engine_for(ctx)
    doc = model("ohp_rejected")
    fresh_table(engine, doc, rows=1_000)
    n = 50_000
    ids = list(range(1_000, 1_000 + n))
    ids[-1] = 0  # the last row repeats an id already stored: only the server can tell
    error = None
    try:
        load(engine, doc, {"id": ids, "category": [0] * n, "embedding": vectors(n, seed=3)})
    except Exception as exc:
        error = error_name(exc)
    exact_sql = "SELECT id FROM ohp_rejected ORDER BY embedding <=> %(q)s::vector LIMIT 10"
    hits, recalls = [], []
    for q in queries(10):
        with Session(engine) as session:
            found = [h.row.id for h in vecalchemy.search(session, doc.embedding, q, k=10)]
        with engine.connect() as conn:
            conn.exec_driver_sql("SET LOCAL enable_indexscan = off")
            exact = [r[0] for r in conn.exec_driver_sql(exact_sql, {"q": str(q.tolist())})]
        hits.append(len(found))
        recalls.append(len(set(found) & set(exact)) / 10)
    return int(statistics.median(hits)), {
        "load_error": error,
        "hits_per_query": hits,
        "recall_vs_exact": float(np.mean(recalls)),
        "rows_before": 1_000,
        "rejected_rows": n,
    }


def concurrent_search_upsert(ctx: Context) -> tuple[Any, dict[str, Any]]:
    engine = engine_for(ctx, pool_size=10)
    c = fresh_collection(ctx, "ohp_concurrent", engine, 200)
    stop = time.monotonic() + ctx.duration
    lock = threading.Lock()
    tally: dict[str, Any] = {"searches": 0, "short": 0, "upserts": 0, "errors": {}}

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        while time.monotonic() < stop:
            for op in ("upsert", "search"):
                try:
                    if op == "upsert":
                        i = int(rng.integers(0, 200))
                        c.upsert([words(12, rng)], ids=[f"d{i}"])
                        short = False
                    else:
                        short = len(c.search(words(4, rng), k=10)) < 10
                except Exception as exc:
                    with lock:
                        key = f"{op}: {error_name(exc)}"
                        tally["errors"][key] = tally["errors"].get(key, 0) + 1
                    continue
                with lock:
                    tally[f"{op}s" if op == "upsert" else "searches"] += 1
                    tally["short"] += short

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = sum(tally["errors"].values())
    return tally["short"], {**tally, "error_count": errors, "threads": 8, "seconds": ctx.duration}


def same_id_upserts(ctx: Context) -> tuple[Any, dict[str, Any]]:
    engine = engine_for(ctx, pool_size=8)
    c = fresh_collection(ctx, "ohp_sameid", engine, 1)
    barrier = threading.Barrier(4)
    lock = threading.Lock()
    failures: dict[str, int] = {}
    deadlocks = 0

    def worker(n: int) -> None:
        nonlocal deadlocks
        rng = np.random.default_rng(100 + n)
        barrier.wait()
        for _ in range(20):
            try:
                c.upsert([words(12, rng)], ids=["same"])
            except Exception as exc:
                with lock:
                    key = error_name(exc)
                    failures[key] = failures.get(key, 0) + 1
                    deadlocks += "deadlock" in str(exc).lower()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM ohp_sameid WHERE id = 'same'")).scalar()
    failed = sum(failures.values())
    return f"{failed} of 80", {"failures": failures, "deadlocks": deadlocks, "rows_of_id": stored}


def large_add_blocks_search(ctx: Context) -> tuple[Any, dict[str, Any]]:
    engine = engine_for(ctx, pool_size=5)
    c = fresh_collection(ctx, "ohp_bigadd", engine, 1_000)
    rng = np.random.default_rng(9)
    new_texts = [words(12, rng) for _ in range(10_000)]
    params = sa.make_url(ctx.url).translate_connect_args()
    with engine.connect() as conn:
        oid = conn.execute(text("SELECT 'ohp_bigadd'::regclass::oid")).scalar()
    done = threading.Event()
    latencies: list[float] = []
    search_errors: dict[str, int] = {}
    locked = {"polls": 0, "exclusive_polls": 0, "first": None, "last": None}

    def searcher() -> None:
        srng = np.random.default_rng(10)
        while not done.is_set():
            t0 = time.perf_counter()
            try:
                c.search(words(4, srng), k=10)
            except Exception as exc:
                key = error_name(exc)
                search_errors[key] = search_errors.get(key, 0) + 1
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.01)

    def poller() -> None:
        query = sa.make_url(ctx.url).query
        with psycopg.connect(
            host=query["host"],
            port=int(query["port"]),
            user=params.get("username"),
            password=params.get("password"),
            dbname=params.get("database"),
            autocommit=True,
        ) as pg:
            while not done.is_set():
                n = pg.execute(
                    "SELECT count(*) FROM pg_locks WHERE relation = %s "
                    "AND mode = 'AccessExclusiveLock' AND granted",
                    (oid,),
                ).fetchone()[0]  # type: ignore[index]
                now = time.perf_counter()
                locked["polls"] += 1
                if n:
                    locked["exclusive_polls"] += 1
                    locked["first"] = locked["first"] or now
                    locked["last"] = now
                time.sleep(0.02)

    threads = [threading.Thread(target=searcher), threading.Thread(target=poller)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    try:
        result = c.add(new_texts, ids=[f"n{i}" for i in range(10_000)])
        chunks = result.chunks
    finally:
        add_seconds = time.perf_counter() - t0
        time.sleep(0.3)
        done.set()
        for t in threads:
            t.join()
    held = (
        round(locked["last"] - locked["first"], 2)  # type: ignore[operator]
        if locked["exclusive_polls"]
        else 0.0
    )
    return round(max(latencies), 3), {
        "access_exclusive_seen": bool(locked["exclusive_polls"]),
        "access_exclusive_seconds": held,
        "add_seconds": round(add_seconds, 2),
        "chunks_added": chunks,
        "rows_before": 1_000,
        "searches": len(latencies),
        "median_search_s": round(statistics.median(latencies), 4),
        "search_errors": search_errors,
    }


def l2_on_cosine_column(ctx: Context) -> tuple[Any, dict[str, Any]]:
    engine = engine_for(ctx)
    doc = docs50k(engine)
    q = queries()[0]
    with Session(engine) as session:
        try:
            stmt = select(doc).order_by(doc.embedding.l2_distance(q)).limit(10)
            rows = session.execute(stmt).all()
        except Exception as exc:
            return f"error: {type(exc).__name__}", {"error": error_name(exc), "message": str(exc)}
        plan = explain(session, stmt)
    return scan_kind(plan), {"rows": len(rows)}


def _cosine_table_then_l2_model(engine: sa.Engine) -> Any:
    cosine = model("ohp_metric", metric="cosine")
    fresh_table(engine, cosine, rows=2_000)
    return model("ohp_metric", metric="l2")


def _vector_indexes(engine: sa.Engine, table: str) -> list[str]:
    with engine.connect() as conn:
        return [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT indexdef FROM pg_indexes WHERE tablename = :t "
                    "AND indexdef ~ '(hnsw|ivfflat)' ORDER BY indexname"
                ),
                {"t": table},
            )
        ]


def metric_mismatch_first_search(ctx: Context) -> tuple[Any, dict[str, Any]]:
    import vecalchemy

    engine = engine_for(ctx)
    l2 = _cosine_table_then_l2_model(engine)
    q = queries()[0]
    with Session(engine) as session:
        try:
            hits = vecalchemy.search(session, l2.embedding, q, k=10)
        except Exception as exc:
            return f"error: {type(exc).__name__}", {"error": error_name(exc), "message": str(exc)}
        plan = explain(session, vecalchemy.nearest(l2.embedding, q, k=10))
    return scan_kind(plan), {"hits": len(hits), "indexes": _vector_indexes(engine, "ohp_metric")}


def metric_mismatch_build_indexes(ctx: Context) -> tuple[Any, dict[str, Any]]:
    import vecalchemy

    engine = engine_for(ctx)
    l2 = _cosine_table_then_l2_model(engine)
    before = _vector_indexes(engine, "ohp_metric")
    error = None
    actions: list[str] = []
    try:
        actions = [f"{r.name}: {r.action}" for r in vecalchemy.build_indexes(engine, l2)]
    except Exception as exc:
        error = error_name(exc)
    after = _vector_indexes(engine, "ohp_metric")
    value = f"{len(before)} -> {len(after)} vector indexes"
    if error:
        value += f" (error: {short(error)})"
    else:
        value += f" (build_indexes: {', '.join(a.split(': ')[1] for a in actions)})"
    return value, {"before": before, "after": after, "error": error, "actions": actions}


def wrong_dim_flush(ctx: Context) -> tuple[Any, dict[str, Any]]:
    engine = engine_for(ctx)
    doc = model("ohp_small")
    fresh_table(engine, doc, rows=0)
    with Session(engine) as session:
        session.add(doc(id=1, embedding=[0.1] * (DIM - 1)))
        try:
            session.flush()
        except Exception as exc:
            return type(exc).__name__, {"error": error_name(exc), "message": str(exc)[:300]}
    return "no error", {}


def zero_vector_cosine(ctx: Context) -> tuple[Any, dict[str, Any]]:
    engine = engine_for(ctx)
    doc = model("ohp_small")
    fresh_table(engine, doc, rows=0)
    with Session(engine) as session:
        session.add(doc(id=2, embedding=[0.0] * DIM))
        try:
            session.commit()
        except Exception as exc:
            return f"refused: {type(exc).__name__}", {
                "error": error_name(exc),
                "message": str(exc)[:300],
            }
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM ohp_small")).scalar()
    return "stored", {"rows": stored}


def other_embedder_search(ctx: Context) -> tuple[Any, dict[str, Any]]:
    engine = engine_for(ctx)
    fresh_collection(ctx, "ohp_embedder", engine, 20, dim=64)
    other = collection(ctx, "ohp_embedder", engine, dim=64, seed=1)
    try:
        hits = other.search("alpha beta gamma", k=5)
    except Exception as exc:
        return f"error: {type(exc).__name__}", {"error": error_name(exc), "message": str(exc)}
    return f"{len(hits)} results", {}


def _table_shape(engine: sa.Engine, table: str) -> dict[str, Any]:
    with engine.connect() as conn:
        columns = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:t) "
                    "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
                ),
                {"t": table},
            )
        ]
        indexes = [
            r[0]
            for r in conn.execute(
                text("SELECT indexname FROM pg_indexes WHERE tablename = :t ORDER BY 1"),
                {"t": table},
            )
        ]
        comment = conn.execute(
            text("SELECT obj_description(to_regclass(:t), 'pg_class')"), {"t": table}
        ).scalar()
    return {"columns": columns, "indexes": indexes, "comment": comment}


def collection_on_plain_table(ctx: Context) -> tuple[Any, dict[str, Any]]:
    engine = engine_for(ctx)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS ohp_notes")
        conn.exec_driver_sql(
            "CREATE TABLE ohp_notes (id bigserial PRIMARY KEY, text text NOT NULL, "
            "created timestamptz NOT NULL DEFAULT now())"
        )
        conn.exec_driver_sql("INSERT INTO ohp_notes (text) VALUES ('one'), ('two'), ('three')")
    before = _table_shape(engine, "ohp_notes")
    c = collection(ctx, "ohp_notes", engine, dim=64)
    error = None
    try:
        c.search("one", k=3)
    except Exception as exc:
        error = error_name(exc)
    after = _table_shape(engine, "ohp_notes")
    changes = []
    if "tsv" in after["columns"] and "tsv" not in before["columns"]:
        changes.append("tsv column")
    new_indexes = sorted(set(after["indexes"]) - set(before["indexes"]))
    if new_indexes:
        changes.append(f"index {', '.join(new_indexes)}")
    if after["comment"] != before["comment"]:
        changes.append("comment")
    value = ("changed: " + "; ".join(changes)) if changes else "unchanged"
    if error:
        value += f" (search error: {short(error)})"
    return value, {"before": before, "after": after, "search_error": error}


def _timed_filter(ctx: Context, where: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    engine = engine_for(ctx)
    c = fresh_collection(ctx, "ohp_filters", engine, 20, dim=64)
    t0 = time.perf_counter()
    try:
        hits = c.search("alpha", k=5, where=where)
    except Exception as exc:
        took = time.perf_counter() - t0
        return f"{took:.2f} s, {type(exc).__name__}", {
            "seconds": took,
            "error": error_name(exc),
            "message": str(exc)[:300],
        }
    took = time.perf_counter() - t0
    return f"{took:.2f} s, no error ({len(hits)} hits)", {"seconds": took}


def filter_long_key(ctx: Context) -> tuple[Any, dict[str, Any]]:
    key = ".".join(["k"] * 5_000)  # 9,999 characters, 5,000 path parts
    return _timed_filter(ctx, {key: 1})


def filter_big_in(ctx: Context) -> tuple[Any, dict[str, Any]]:
    where = {f"f{i}": {"$in": list(range(10_000))} for i in range(7)}
    return _timed_filter(ctx, where)


@contextmanager
def scratch_server(ctx: Context, name: str) -> Iterator[Any]:
    """This version's own embedded server in a fresh scratch directory, removed afterwards."""
    from vecalchemy.server import EmbeddedServer

    path = SCRATCH / f"{ctx.label}-{name}"
    if path.exists():
        with suppress(Exception):
            EmbeddedServer(path).stop()
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    server = EmbeddedServer(path, settings={"fsync": "off"})
    try:
        yield server
    finally:
        with suppress(Exception):
            EmbeddedServer(path).stop()
        shutil.rmtree(path, ignore_errors=True)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vecalchemy", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def engine_survives_restart(ctx: Context) -> tuple[Any, dict[str, Any]]:
    import vecalchemy
    from vecalchemy.server import EmbeddedServer

    with scratch_server(ctx, "restart") as server:
        for name in ("VECALCHEMY_DATABASE_URL", "DATABASE_URL"):
            os.environ.pop(name, None)
        os.environ["VECALCHEMY_DATA_DIR"] = str(server.data_dir)
        server.start()  # fsync off; create_engine() finds it running
        engine = vecalchemy.create_engine()
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        old_port = EmbeddedServer().status().port
        down = _cli("db", "down")
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        details: dict[str, Any] = {"old_port": old_port}
        try:
            blocker.bind(("127.0.0.1", old_port))
            blocker.listen(1)
            details["old_port_occupied"] = True
        except OSError as exc:
            details["old_port_occupied"] = f"could not: {exc}"
        try:
            up = _cli("db", "up")
            details["down"] = down.returncode
            details["up"] = up.returncode
            details["up_output"] = (up.stdout + up.stderr).strip()[-300:]
            details["new_port"] = EmbeddedServer().status().port
            attempts = []
            for _ in range(2):
                try:
                    with engine.connect() as conn:
                        conn.execute(text("SELECT 1"))
                    attempts.append("works")
                except Exception as exc:
                    attempts.append(f"error: {type(exc).__name__}")
            details["attempts"] = attempts
        finally:
            blocker.close()
            engine.dispose()
            _cli("db", "down")
    if attempts[0] == "works":
        return "works", details
    if attempts[1] == "works":
        return "works on the 2nd try", details
    return attempts[1], details


def hba_wrong_password(ctx: Context) -> tuple[Any, dict[str, Any]]:
    with scratch_server(ctx, "hba") as server:
        port = server.start().port
        hba = server.pgdata / "pg_hba.conf"
        rules = [
            " ".join(line.split())
            for line in hba.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        try:
            with psycopg.connect(
                host="127.0.0.1",
                port=port,
                user="postgres",
                password="certainly-wrong",
                dbname="postgres",
                connect_timeout=5,
            ) as conn:
                conn.execute("SELECT 1")
            value = "connected"
            error = None
        except psycopg.OperationalError as exc:
            value = "refused"
            error = str(exc).strip().splitlines()[-1][:200]
    return value, {"pg_hba_rules": rules, "error": error}


def data_dir_shell_injection(ctx: Context) -> tuple[Any, dict[str, Any]]:
    from vecalchemy.server import EmbeddedServer

    marker = Path(f"/tmp/pwned-{secrets.token_hex(6)}")
    path = f"/tmp/x$(touch {marker})y"
    top = Path("/tmp") / Path(path).relative_to("/tmp").parts[0]  # "/tmp/x$(touch "
    os.environ["VECALCHEMY_DATA_DIR"] = path
    start_error = None
    try:
        EmbeddedServer(settings={"fsync": "off"}).start()
    except Exception as exc:
        start_error = f"{error_name(exc)}: {str(exc)[:200]}"
    finally:
        with suppress(Exception):
            EmbeddedServer().stop()
        created = marker.exists()
        marker.unlink(missing_ok=True)
        if top.name.startswith("x$(touch"):
            shutil.rmtree(top, ignore_errors=True)
    return ("file created" if created else "not created"), {
        "data_dir": path,
        "start": start_error or "started",
    }


def no_limit_fresh_cluster(ctx: Context) -> tuple[Any, dict[str, Any]]:
    from pgvector.psycopg import register_vector

    with scratch_server(ctx, "fresh") as server:
        server.start()
        with psycopg.connect(server.url(driver="libpq"), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            register_vector(conn)
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, embedding vector(16))")
            v = vectors(5_000, seed=0)
            with conn.cursor().copy("COPY t (id, embedding) FROM STDIN") as copy:
                for i, row in enumerate(v):
                    copy.write_row((i, "[" + ",".join(f"{x:.6f}" for x in row) + "]"))
            conn.execute("CREATE INDEX ON t USING hnsw (embedding vector_l2_ops)")
            conn.execute("ANALYZE t")
            q = queries()[0]
            sql = "SELECT id FROM t ORDER BY embedding <-> %s"
            rows = conn.execute(sql, (q,)).fetchall()
            plan = "\n".join(r[0] for r in conn.execute(f"EXPLAIN {sql}", (q,)))
            rpc = conn.execute("SHOW random_page_cost").fetchone()[0]  # type: ignore[index]
    return len(rows), {"of": 5_000, "scan": scan_kind(plan), "random_page_cost": rpc}


def no_limit_embedding_column(ctx: Context) -> tuple[Any, dict[str, Any]]:
    engine = engine_for(ctx)
    doc = docs50k(engine)
    with Session(engine) as session:
        # A server tuned for SSDs (the value OLD wrote into its own clusters).
        session.execute(text("SET LOCAL random_page_cost = 1.1"))
        stmt = select(doc.id).order_by(doc.embedding.cosine_distance(queries()[0]))
        rows = session.execute(stmt).all()
        plan = explain(session, stmt)
    return len(rows), {"of": ROWS, "scan": scan_kind(plan), "random_page_cost": "1.1"}


@dataclass(frozen=True)
class Reproduction:
    name: str
    what: str
    old_expected: str
    run: Callable[[Context], tuple[Any, dict[str, Any]]]


REPRODUCTIONS = [
    Reproduction(
        "nearest_k100",
        "session.execute(nearest(k=100)), 50k-row HNSW table: rows",
        "40",
        nearest_k100,
    ),
    Reproduction(
        "nearest_filtered_k40",
        "nearest(k=40, where=10% filter) executed directly: rows (min-max of 10)",
        "0-6",
        nearest_filtered_k40,
    ),
    Reproduction(
        "settings_after_ef_search",
        "SHOW hnsw.ef_search after search(ef_search=300), same transaction",
        "300",
        settings_after_ef_search,
    ),
    Reproduction(
        "settings_after_filtered",
        "SHOW hnsw.iterative_scan, plan_cache_mode after a filtered search",
        "relaxed_order, force_custom_plan",
        settings_after_filtered,
    ),
    Reproduction(
        "out_of_order_after_filtered",
        "later nearest(where=) queries out of distance order (of 30)",
        "not stated (bug: > 0)",
        out_of_order_after_filtered,
    ),
    Reproduction(
        "autocommit_k100",
        'isolation_level="AUTOCOMMIT": search(k=100) hits',
        "40",
        autocommit_k100,
    ),
    Reproduction(
        "upsert_then_search",
        "Collection: 200 docs, upsert all 200, search(k=10): hits",
        "2",
        upsert_then_search,
    ),
    Reproduction(
        "rejected_load",
        "rejected 50k-row load (indexes kept), then search(k=10): hits (median of 10)",
        "1",
        rejected_load,
    ),
    Reproduction(
        "concurrent_search_upsert",
        "8 threads search + upsert: searches with fewer than k hits",
        "2,350 (30 s)",
        concurrent_search_upsert,
    ),
    Reproduction(
        "same_id_upserts",
        "4 threads x 20 upserts of one id: failed calls",
        "49 of 80 (UniqueViolation)",
        same_id_upserts,
    ),
    Reproduction(
        "large_add_blocks_search",
        "10,000-chunk add into a 1,000-doc collection: longest search (s)",
        "~12 s, ACCESS EXCLUSIVE",
        large_add_blocks_search,
    ),
    Reproduction(
        "l2_on_cosine_column",
        "select(Doc).order_by(l2_distance) on a cosine column",
        "Seq Scan",
        l2_on_cosine_column,
    ),
    Reproduction(
        "metric_mismatch_first_search",
        'model metric="l2" on a cosine-indexed table: first search',
        "error or Seq Scan (bug: Seq Scan)",
        metric_mismatch_first_search,
    ),
    Reproduction(
        "metric_mismatch_build_indexes",
        'model metric="l2" on a cosine-indexed table: build_indexes()',
        "not stated (bug: a second index)",
        metric_mismatch_build_indexes,
    ),
    Reproduction(
        "wrong_dim_flush",
        "session.add(Doc(embedding=15 dims)) + flush: exception",
        "the driver's / StatementError",
        wrong_dim_flush,
    ),
    Reproduction(
        "zero_vector_cosine",
        "zero vector in a cosine column",
        "not stated (bug: stored)",
        zero_vector_cosine,
    ),
    Reproduction(
        "other_embedder_search",
        "Collection.search with HashingEmbedder(dim, seed=1)",
        "not stated (bug: results)",
        other_embedder_search,
    ),
    Reproduction(
        "collection_on_plain_table",
        "Collection named like a plain table, search(): table changed?",
        "not stated (bug: changed)",
        collection_on_plain_table,
    ),
    Reproduction(
        "filter_long_key",
        "filter with a 10 KB dotted key: time, error",
        "not stated (bug: slow, server's error)",
        filter_long_key,
    ),
    Reproduction(
        "filter_big_in",
        "filter with seven $in lists of 10,000 values: time, error",
        "not stated (bug: slow, server's error)",
        filter_big_in,
    ),
    Reproduction(
        "engine_survives_restart",
        "create_engine() (no URL), db down, old port taken, db up: engine",
        "not stated (bug: fails)",
        engine_survives_restart,
    ),
    Reproduction(
        "hba_wrong_password",
        "TCP 127.0.0.1 with a wrong password",
        "not stated (bug: connected)",
        hba_wrong_password,
    ),
    Reproduction(
        "data_dir_shell_injection",
        "VECALCHEMY_DATA_DIR='/tmp/x$(touch ...)y', start(): file created?",
        "not stated (bug: created)",
        data_dir_shell_injection,
    ),
    Reproduction(
        "no_limit_fresh_cluster",
        "ORDER BY embedding <-> q, no LIMIT, 5,000 rows, fresh cluster: rows",
        "40",
        no_limit_fresh_cluster,
    ),
    Reproduction(
        "no_limit_embedding_column",
        "select(Doc.id).order_by(cosine_distance), no LIMIT, 50k rows, "
        "random_page_cost 1.1: rows (not in the issue)",
        "not stated (bug: < 50,000)",
        no_limit_embedding_column,
    ),
]
BY_NAME = {r.name: r for r in REPRODUCTIONS}


def run_one(name: str, ctx: Context) -> dict[str, Any]:
    """Run one reproduction, catching everything: its record."""
    import vecalchemy

    repro = BY_NAME[name]
    record: dict[str, Any] = {
        "name": name,
        "what": repro.what,
        "old_expected": repro.old_expected,
        "value": None,
        "error": None,
        "details": {},
        "vecalchemy": vecalchemy.__file__,
    }
    t0 = time.perf_counter()
    try:
        record["value"], record["details"] = repro.run(ctx)
    except Exception as exc:
        record["error"] = f"{error_name(exc)}: {str(exc)[:500]}"
        record["details"] = {"traceback": traceback.format_exc()[-2000:]}
    record["seconds"] = round(time.perf_counter() - t0, 2)
    return record


# -- the driver ---------------------------------------------------------------------------


def start_server(src: Path, data_dir: Path) -> tuple[str, bool]:
    """Start (if needed) the embedded server in ``data_dir`` with the NEW code; its URL."""
    code = (
        "import sys, json\n"
        "from vecalchemy.server import EmbeddedServer\n"
        "s = EmbeddedServer(sys.argv[1], settings={'fsync': 'off'})\n"
        "running = s.status().running\n"
        "s.start()\n"
        "print(json.dumps({'url': s.url(), 'started': not running}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(data_dir)],
        env=dict(os.environ, PYTHONPATH=str(src)),
        capture_output=True,
        text=True,
        check=True,
    )
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    return answer["url"], answer["started"]


def stop_server(src: Path, data_dir: Path) -> None:
    code = (
        "import sys\n"
        "from vecalchemy.server import EmbeddedServer\n"
        "EmbeddedServer(sys.argv[1]).stop()\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(data_dir)],
        env=dict(os.environ, PYTHONPATH=str(src)),
        check=False,
    )


def fresh_database(url: str, name: str, *, keep: bool) -> str:
    """Create database ``name`` (dropped first unless ``keep``); the URL pointing at it."""
    parsed = sa.make_url(url)
    query = parsed.query
    admin = {
        "host": query.get("host", parsed.host),
        "port": int(query.get("port", parsed.port or 5432)),  # type: ignore[arg-type]
        "user": parsed.username,
        "password": parsed.password,
        "dbname": parsed.database,
    }
    with psycopg.connect(**{k: v for k, v in admin.items() if v}, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and not keep:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        if not exists or not keep:
            conn.execute(f'CREATE DATABASE "{name}"')
    return parsed.set(database=name).render_as_string(hide_password=False)


def run_in_subprocess(
    name: str, label: str, src: Path, url: str, args: argparse.Namespace
) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("VECALCHEMY_DATABASE_URL",)}
    env["PYTHONPATH"] = str(src)
    argv = [sys.executable, str(Path(__file__).resolve()), "--run-one", name]
    argv += ["--label", label, "--url", url, "--duration", str(args.duration)]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=args.timeout, cwd=REPO
        )
    except subprocess.TimeoutExpired:
        return {
            "name": name,
            "what": BY_NAME[name].what,
            "old_expected": BY_NAME[name].old_expected,
            "value": None,
            "error": f"timed out after {args.timeout} s",
            "details": {},
            "seconds": round(time.perf_counter() - t0, 2),
        }
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {
            "name": name,
            "what": BY_NAME[name].what,
            "old_expected": BY_NAME[name].old_expected,
            "value": None,
            "error": f"crashed (exit code {done.returncode})",
            "details": {"stderr": done.stderr[-2000:]},
            "seconds": round(time.perf_counter() - t0, 2),
        }
    record: dict[str, Any] = json.loads(lines[-1])
    return record


def cell(record: dict[str, Any] | None) -> str:
    """One table cell: the value, and the details that say what it means."""
    if record is None:
        return "not run"
    if record.get("error"):
        return f"**failed**: {record['error'][:120]}".replace("|", "/").replace("\n", " ")
    d = record.get("details") or {}
    name = record["name"]
    extra = ""
    if name == "concurrent_search_upsert":
        extra = f" of {d.get('searches', 0):,} searches; {d.get('error_count', 0)} errors"
        if d.get("errors"):
            kind, n = max(d["errors"].items(), key=lambda kv: kv[1])
            extra += f" (most: {n} x {short(kind)})"
    elif name == "same_id_upserts":
        kinds = ", ".join(f"{n} x {short(k)}" for k, n in d.get("failures", {}).items())
        extra = f"; deadlocks {d.get('deadlocks', 0)}" + (f" ({kinds})" if kinds else "")
    elif name == "large_add_blocks_search":
        seen = d.get("access_exclusive_seen")
        lock = f"held ~{d.get('access_exclusive_seconds')} s" if seen else "never seen"
        extra = f" s; ACCESS EXCLUSIVE {lock}; add took {d.get('add_seconds')} s"
    elif name == "rejected_load":
        recall = d.get("recall_vs_exact", 0.0)
        extra = f" (recall vs exact {recall:.2f}; load: {short(d.get('load_error'))})"
    elif name in ("nearest_k100", "nearest_filtered_k40", "out_of_order_after_filtered"):
        extra = f" ({d.get('scan')})"
    elif name == "no_limit_embedding_column":
        extra = f" of {d.get('of', 0):,} ({d.get('scan')})"
    elif name == "no_limit_fresh_cluster":
        extra = f" of 5,000 ({d.get('scan')}, random_page_cost {d.get('random_page_cost')})"
    elif name == "data_dir_shell_injection":
        extra = f" (start: {str(d.get('start'))[:60]})"
    elif name == "engine_survives_restart":
        extra = f" (port {d.get('old_port')} -> {d.get('new_port')})"
    return f"{record['value']}{extra}".replace("|", "/").replace("\n", " ")


def markdown_table(results: dict[str, dict[str, dict[str, Any]]], names: Sequence[str]) -> str:
    lines = [
        "| reproduction | OLD in the issue | OLD | NEW |",
        "|---|---|---|---|",
    ]
    for name in names:
        repro = BY_NAME[name]
        old = results.get("old", {}).get(name)
        new = results.get("new", {}).get(name)
        lines.append(f"| {repro.what} | {repro.old_expected} | {cell(old)} | {cell(new)} |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--old", type=Path, default=Path("/work/wt-old/src"))
    parser.add_argument("--new", type=Path, default=REPO / "src")
    parser.add_argument("--versions", default="old,new", help="which versions to run")
    parser.add_argument("--only", help="comma-separated reproductions (default: all)")
    parser.add_argument(
        "--duration", type=float, default=30.0, help="seconds of the concurrent run"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per reproduction")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data" / "off-happy-pg")
    parser.add_argument("--url", help="server to use (default: the embedded one in --data-dir)")
    parser.add_argument(
        "--keep-databases", action="store_true", help="reuse ohp_old / ohp_new (faster reruns)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "off_happy_path.json")
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    parser.add_argument("--label", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.run_one:  # inside a reproduction's subprocess
        ctx = Context(url=args.url, label=args.label, duration=args.duration)
        print(json.dumps(run_one(args.run_one, ctx), default=str), flush=True)
        return 0
    names = args.only.split(",") if args.only else [r.name for r in REPRODUCTIONS]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        print(f"unknown reproductions: {', '.join(unknown)}", file=sys.stderr)
        return 2
    versions = [v for v in args.versions.split(",") if v]
    srcs = {"old": args.old.resolve(), "new": args.new.resolve()}
    started = time.perf_counter()
    server_started = False
    if args.url is None:
        args.data_dir.parent.mkdir(parents=True, exist_ok=True)
        url, server_started = start_server(srcs["new"], args.data_dir)
    else:
        url = args.url
    previous: dict[str, Any] = {}
    if args.output.exists():
        with suppress(ValueError):
            previous = json.loads(args.output.read_text())
    results: dict[str, dict[str, Any]] = {
        v: dict(previous.get("results", {}).get(v, {})) for v in VERSIONS
    }
    try:
        for v in versions:
            db_url = fresh_database(url, f"ohp_{v}", keep=args.keep_databases)
            for name in names:
                record = run_in_subprocess(name, v, srcs[v], db_url, args)
                results[v][name] = record
                print(f"{v:>3} {name}: {cell(record)}  [{record.get('seconds')} s]", flush=True)
    finally:
        if server_started:
            stop_server(srcs["new"], args.data_dir)

    def describe(src: Path) -> dict[str, Any]:
        def git(*a: str) -> str:
            return subprocess.run(
                ["git", "-C", str(src), *a], capture_output=True, text=True, check=False
            ).stdout.strip()

        return {
            "src": str(src),
            "commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--", ".")),
        }

    report = {
        "benchmark": "off_happy_path",
        "versions": {v: describe(srcs[v]) for v in VERSIONS},
        "settings": {"duration": args.duration, "rows": ROWS, "dim": DIM},
        "load_average_at_end": os.getloadavg(),
        "reproductions": [
            {"name": r.name, "what": r.what, "old_expected": r.old_expected} for r in REPRODUCTIONS
        ],
        "results": results,
        "seconds": time.perf_counter() - started,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print()
    print(markdown_table(results, [r.name for r in REPRODUCTIONS]))
    print(f"\nwrote {args.output} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
