"""Bulk ingest throughput: vecalchemy against raw binary COPY and the usual ways (issue 3).

Every contender writes the same N rows ``(id, "doc {i}", 384-float32 vector)`` (random
normal, normalised) into a fresh table of its own (dropped before, no vector index), in
one run, and its rows/s is reported with its ratio to raw COPY:

* ``raw COPY`` (the limit): ``psycopg.connect`` + ``register_vector``, one
  ``COPY t (id, text, embedding) FROM STDIN WITH (FORMAT BINARY)`` with
  ``set_types(["int8", "text", "vector"])`` and ``write_row`` per row, one transaction.
* ``raw COPY, Collection.add's table``: the same raw loop into a table of exactly the
  shape ``Collection.add`` writes (made by ``Collection.create``: text id + chunk primary
  key, offsets, jsonb metadata with its GIN index, content hash, embedder name, the
  generated ``tsv`` column with its GIN index), every value precomputed outside the
  timing (ids, SHA-256 hashes, ``{}`` metadata): the limit for ``Collection.add``.
* ``vecalchemy.load``: ``load(engine, table, {"id": ..., "text": ..., "embedding": 2-D})``.
* ``Collection.add``: precomputed vectors through an embedder that hands them out in
  order, ``splitter="none"`` (one text, one row), ``index=None`` (no HNSW index, like the
  others; the table keeps its other columns and the GIN index on metadata).
* ``ORM loop``: the cheatsheet's ``session.add(Doc(...))`` per row, commit every 1,000,
  on ``--subset`` rows, extrapolated to rows/s.
* ``langchain-postgres``: ``PGVectorStore.add_embeddings(texts, embeddings, ids=...)``,
  on ``--subset`` rows, extrapolated.

Each contender runs ``--repeats`` times, the order rotated each round; medians are
reported. Run from the repository::

    .venv/bin/python benchmarks/ingest.py                  # N=100,000, R=3
    .venv/bin/python benchmarks/ingest.py --rows 20000 --subset 2000 --repeats 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import sqlalchemy as sa
from pgvector.psycopg import register_vector
from pgvector.sqlalchemy import Vector
from sqlalchemy import BigInteger, Text, event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy.collection import Collection
from vecalchemy.load import load
from vecalchemy.server import EmbeddedServer

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DOC = REPO / "docs" / "benchmarks.md"
DOC_HEADING = "## Ingest (issue 3)"
DIM = 384
PREFIX = "bench_ingest_"
Vec = npt.NDArray[np.float32]


class _Base(DeclarativeBase):
    pass


class Doc(_Base):
    """The cheatsheet's model: plain SQLAlchemy + pgvector-python."""

    __tablename__ = PREFIX + "orm"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    embedding: Mapped[Any] = mapped_column(Vector(DIM))


def plain_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", BigInteger, primary_key=True),
        sa.Column("text", Text, nullable=False),
        sa.Column("embedding", Vector(DIM), nullable=False),
    )


class Precomputed:
    """An Embedder handing out precomputed vectors in the order it is asked for them."""

    def __init__(self, vectors: Vec) -> None:
        self.vectors = vectors
        self.pos = 0

    @property
    def dim(self) -> int:
        return DIM

    @property
    def name(self) -> str:
        return "precomputed-random-384"

    def embed_documents(self, texts: Sequence[str]) -> Vec:
        out = self.vectors[self.pos : self.pos + len(texts)]
        self.pos += len(texts)
        return out

    def embed_query(self, text: str) -> Vec:
        return self.vectors[0]

    async def aembed_documents(self, texts: Sequence[str]) -> Vec:
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> Vec:
        return self.embed_query(text)


def connection_params(url: sa.URL) -> dict[str, Any]:
    query = {k: v if isinstance(v, str) else v[0] for k, v in url.query.items()}
    params = {
        "host": query.get("host", url.host),
        "port": int(query.get("port", url.port or 5432)),
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
    }
    return {k: v for k, v in params.items() if v is not None}


# -- contenders: each takes (url, vectors, texts) and returns the rows written ---------


def raw_copy(url: sa.URL, vectors: Vec, texts: list[str]) -> Callable[[], int]:
    table = PREFIX + "raw"
    with psycopg.connect(**connection_params(url), autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (id int8 PRIMARY KEY, text text NOT NULL, "
                     f"embedding vector({DIM}) NOT NULL)")  # fmt: skip

    def run() -> int:
        with psycopg.connect(**connection_params(url)) as conn:
            register_vector(conn)
            with (
                conn.cursor() as cur,
                cur.copy(
                    f"COPY {table} (id, text, embedding) FROM STDIN WITH (FORMAT BINARY)"
                ) as copy,
            ):
                copy.set_types(["int8", "text", "vector"])
                for i in range(len(texts)):
                    copy.write_row((i, texts[i], vectors[i]))
            conn.commit()
        return len(texts)

    return run


def raw_copy_shaped(url: sa.URL, vectors: Vec, texts: list[str]) -> Callable[[], int]:
    """Raw COPY into a table of exactly Collection.add's shape: the collection's own table
    (same columns, primary key, generated tsvector, GIN indexes), made by Collection.create,
    filled by hand with every value precomputed as a user would (not timed)."""
    engine = vecalchemy.create_engine(url)
    name = PREFIX + "raw_shaped"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    embedder = Precomputed(vectors)
    Collection(name, embedder=embedder, splitter="none", index=None, engine=engine).create()
    engine.dispose()
    ids = [str(i) for i in range(len(texts))]
    hashes = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    ends = [len(t) for t in texts]
    columns = 'id, chunk, text, start, "end", metadata, content_hash, embedder, embedding'
    types = ["text", "int4", "text", "int4", "int4", "jsonb", "text", "text", "vector"]

    def run() -> int:
        with psycopg.connect(**connection_params(url)) as conn:
            register_vector(conn)
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY {name} ({columns}) FROM STDIN WITH (FORMAT BINARY)") as copy,
            ):
                copy.set_types(types)
                for i in range(len(texts)):
                    copy.write_row(
                        (ids[i], 0, texts[i], 0, ends[i], {}, hashes[i], embedder.name, vectors[i])
                    )
            conn.commit()
        return len(texts)

    return run


def va_load(url: sa.URL, vectors: Vec, texts: list[str]) -> Callable[[], int]:
    engine = vecalchemy.create_engine(url)
    table = plain_table(PREFIX + "load")
    with engine.begin() as conn:
        table.drop(conn, checkfirst=True)
        table.create(conn)

    def run() -> int:
        try:
            data = {"id": range(len(texts)), "text": texts, "embedding": vectors}
            return int(load(engine, table, data))
        finally:
            engine.dispose()

    return run


def va_collection(url: sa.URL, vectors: Vec, texts: list[str]) -> Callable[[], int]:
    engine = vecalchemy.create_engine(url)
    name = PREFIX + "collection"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    coll = Collection(
        name, embedder=Precomputed(vectors), splitter="none", index=None, engine=engine
    )
    coll.create()
    ids = [str(i) for i in range(len(texts))]

    def run() -> int:
        try:
            return coll.add(texts, ids=ids).chunks  # all rows in one call
        finally:
            engine.dispose()

    return run


def orm_loop(url: sa.URL, vectors: Vec, texts: list[str]) -> Callable[[], int]:
    engine = sa.create_engine(url)

    @event.listens_for(engine, "connect")
    def _register(dbapi_connection: Any, record: Any) -> None:
        register_vector(dbapi_connection)

    with engine.begin() as conn:
        _Base.metadata.drop_all(conn)
        _Base.metadata.create_all(conn)

    def run() -> int:
        try:
            with Session(engine) as session:
                for i in range(len(texts)):
                    session.add(Doc(id=i, text=texts[i], embedding=vectors[i]))
                    if (i + 1) % 1000 == 0:
                        session.commit()
                session.commit()
            return len(texts)
        finally:
            engine.dispose()

    return run


def langchain(url: sa.URL, vectors: Vec, texts: list[str]) -> Callable[[], int]:
    from langchain_core.embeddings import Embeddings
    from langchain_postgres import PGEngine, PGVectorStore

    class Unused(Embeddings):  # add_embeddings never calls it
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [[0.0] * DIM for _ in texts]

        def embed_query(self, text: str) -> list[float]:
            return [0.0] * DIM

    table = PREFIX + "langchain"
    pg = PGEngine.from_connection_string(url.set(drivername="postgresql+psycopg"))
    pg.init_vectorstore_table(table, DIM, overwrite_existing=True)
    store = PGVectorStore.create_sync(pg, Unused(), table)
    embeddings = vectors.tolist()  # the API takes lists of floats; converted beforehand
    ids = [str(uuid.UUID(int=i)) for i in range(len(texts))]  # its id column is a uuid

    def run() -> int:
        try:
            return len(store.add_embeddings(texts, embeddings, ids=ids))
        finally:
            pg._run_as_sync(pg.close())  # its close() is a coroutine

    return run


# (key, label, factory, runs on the subset)
CONTENDERS: list[tuple[str, str, Callable[..., Callable[[], int]], bool]] = [
    ("raw_copy", "raw psycopg binary COPY", raw_copy, False),
    ("raw_copy_shaped", "raw psycopg binary COPY, Collection.add's table", raw_copy_shaped, False),
    ("load", "vecalchemy.load", va_load, False),
    ("collection_add", "Collection.add (precomputed vectors)", va_collection, False),
    ("orm_loop", "cheatsheet ORM loop", orm_loop, True),
    ("langchain", "langchain-postgres add_embeddings", langchain, True),
]


def checkpoint(url: sa.URL) -> None:
    with psycopg.connect(**connection_params(url), autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def count_rows(url: sa.URL, table: str) -> int:
    with psycopg.connect(**connection_params(url)) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]


def pkg(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def info(url: sa.URL) -> dict[str, Any]:
    cpu = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    with psycopg.connect(**connection_params(url)) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname='vector'").fetchone()
    names = ("vecalchemy", "sqlalchemy", "psycopg", "pgvector", "numpy", "langchain-postgres")
    return {
        "cpu_count": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgresql": pg,
        "pgvector_extension": ext[0] if ext else None,
        "packages": {p: pkg(p) for p in names},
        "load_average_at_end": os.getloadavg(),
    }


def markdown(results: dict[str, Any], n: int) -> str:
    orm = results.get("orm_loop", {}).get("median")
    lines = [
        "| contender | rows timed | rows/s (median) | runs (rows/s) | x raw COPY "
        "| x raw COPY, same table | x ORM loop |",
        "|---|--:|--:|---|--:|--:|--:|",
    ]
    for r in results.values():
        rows = f"{r['rows']:,}" + (" (extrapolated)" if r["rows"] < n else "")
        runs = ", ".join(f"{x:,.0f}" for x in r["runs"])
        ratio = f"{r['ratio_to_raw_copy']:.2f}" if r["ratio_to_raw_copy"] else "n/a"
        same = r["ratio_to_raw_copy_same_table"]
        same_text = f"{same:.2f}" if same else "n/a"
        vs_orm = f"{r['median'] / orm:.1f}" if orm else "n/a"
        lines.append(
            f"| {r['label']} | {rows} | {r['median']:,.0f} | {runs} | {ratio} | {same_text} "
            f"| {vs_orm} |"
        )
    return "\n".join(lines)


def _verdict(ratio: float | None, target: float) -> dict[str, Any]:
    return {"ratio": ratio, "target": target, "met": ratio is not None and ratio >= target}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--subset", type=int, default=10_000, help="rows for the slow ones")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="contender keys to run")
    parser.add_argument("--url", help="use this server instead of the embedded one")
    args = parser.parse_args(argv)

    server = started = None
    url = args.url
    if url is None:
        server = EmbeddedServer(REPO / "data" / "bench-pg")
        if not server.status().running:
            server.start()
            started = True
        url = server.url()
    resolved = vecalchemy.resolve_url(url)
    with psycopg.connect(**connection_params(resolved), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")  # a fresh cluster has none
    try:
        rng = np.random.default_rng(0)
        vectors = rng.standard_normal((args.rows, DIM), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        texts = [f"doc {i}" for i in range(args.rows)]
        chosen = [c for c in CONTENDERS if not args.only or c[0] in args.only]
        runs: dict[str, list[float]] = {c[0]: [] for c in chosen}
        sizes: dict[str, int] = {}
        for rnd in range(args.repeats):
            shift = rnd % len(chosen)
            for key, label, factory, sub in chosen[shift:] + chosen[:shift]:
                n = min(args.subset, args.rows) if sub else args.rows
                run = factory(resolved, vectors[:n], texts[:n])
                checkpoint(resolved)
                t0 = time.perf_counter()
                written = run()
                seconds = time.perf_counter() - t0
                assert written == n, (key, written, n)
                table = {"collection_add": "collection", "orm_loop": "orm"}.get(key, key)
                assert count_rows(resolved, PREFIX + table.replace("raw_copy", "raw")) == n
                runs[key].append(n / seconds)
                sizes[key] = n
                print(f"round {rnd + 1} {label:40s} {n:>7,} rows {seconds:7.2f} s "
                      f"{n / seconds:>10,.0f} rows/s", flush=True)  # fmt: skip
        raw = statistics.median(runs["raw_copy"]) if "raw_copy" in runs else None
        shaped = statistics.median(runs["raw_copy_shaped"]) if "raw_copy_shaped" in runs else None
        results = {}
        for key, label, _, _ in chosen:
            med = statistics.median(runs[key])
            results[key] = {
                "label": label,
                "rows": sizes[key],
                "median": med,
                "runs": runs[key],
                "ratio_to_raw_copy": med / raw if raw else None,
                "ratio_to_raw_copy_same_table": med / shaped if shaped else None,
            }
        with psycopg.connect(**connection_params(resolved), autocommit=True) as conn:
            for t in ("raw", "raw_shaped", "load", "collection", "orm", "langchain"):
                conn.execute(f"DROP TABLE IF EXISTS {PREFIX}{t}")
        out = {
            "benchmark": "ingest (issue 3)",
            "rows": args.rows,
            "subset_rows": args.subset,
            "dim": DIM,
            "repeats": args.repeats,
            "machine": info(resolved),
            "results": results,
        }
        if "collection_add" in results:
            add = results["collection_add"]
            out["targets"] = {
                "collection_add / raw COPY into the same table >= 0.8": _verdict(
                    add["ratio_to_raw_copy_same_table"], 0.8
                ),
                "collection_add / raw COPY (3 columns) >= 0.5": _verdict(
                    add["ratio_to_raw_copy"], 0.5
                ),
            }
        if "orm_loop" in results:
            orm = results["orm_loop"]["median"]
            out["ratio_to_orm_loop"] = {k: r["median"] / orm for k, r in results.items()}
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "ingest.json").write_text(json.dumps(out, indent=2) + "\n")
        print()
        print(markdown(results, args.rows))
    finally:
        if server is not None and started:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
