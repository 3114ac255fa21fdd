"""What BM25 costs per write, and what its query costs, on the standard library's docstrings.

Three tables of the same documents (``id``, ``body``):

* ``plain``: no BM25 at all;
* ``column``: a :func:`vecalchemy.bm25.BM25` column with its triggers uninstalled
  (the analyser and the ``jsonb`` alone);
* ``bm25``: the full declaration (column, postings and corpus triggers).

Measured per table: batched inserts (``executemany`` of ``--batch`` rows per
transaction), single-row insert transactions, single-row update transactions (a new
body) and single-row delete transactions, each as rows/s (wall clock, client and server
together); and, on ``bm25``, ``bm25_query`` latency (p50/p95 of ``--queries`` queries
made from document titles, k=10) with the corpus deltas as the writes left them (one
row per write statement) and after :func:`~vecalchemy.bm25.compact_bm25`, plus
concurrent single-row inserts from ``--threads`` threads (rows/s), with and without
triggers. On a fourth table (``HashingEmbedder`` vectors with HNSW, a ``FullText`` and a
``BM25`` column, loaded with COPY): the top-10 agreement of ``bm25_query`` with
``bm25s`` given the same tokens, the largest relative score difference, and p50 of a
dense search, a BM25 query and hybrid searches (BM25 and ``ts_rank_cd`` text legs).

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/bm25_writes.py [--url URL] [--docs 5000]

Writes ``benchmarks/results/bm25_writes.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bm25s
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import HNSW, Embedding, HashingEmbedder, hybrid_search, load, search
from vecalchemy.bm25 import BM25, Analyzer, bm25_query, compact_bm25, uninstall_bm25
from vecalchemy.cli._corpus import stdlib_corpus
from vecalchemy.fulltext import FullText
from vecalchemy.server import EmbeddedServer

REPO = Path(__file__).resolve().parents[1]
HASH_DIM = 256


class Base(DeclarativeBase):
    pass


class Plain(Base):
    __tablename__ = "bench_bm25_plain"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]


class Column(Base):
    __tablename__ = "bench_bm25_column"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    terms = BM25("body")


class Full(Base):
    __tablename__ = "bench_bm25_full"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    terms = BM25("body")


MODELS: dict[str, type[Any]] = {"plain": Plain, "column": Column, "bm25": Full}


class Hybrid(Base):
    __tablename__ = "bench_bm25_hybrid"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    embedding = Embedding(HASH_DIM, index=HNSW())
    tsv = FullText("body")
    terms = BM25("body")


def median_ms(fn: Callable[[str], object], queries: list[str]) -> float:
    fn(queries[0])
    times = []
    for q in queries:
        start = time.perf_counter()
        fn(q)
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 2)


def legs(engine: sa.Engine, texts: list[str], titles: list[str]) -> dict[str, Any]:
    """Top-10 agreement with bm25s (same tokens), and p50 of dense / hybrid searches."""
    analyzer = Analyzer()
    embedder = HashingEmbedder(HASH_DIM)
    with engine.begin() as conn:
        load(
            conn,
            Hybrid.__table__,
            {
                "id": list(range(len(texts))),
                "body": texts,
                "embedding": embedder.embed_documents(texts),
                "terms": [analyzer.document(t) for t in texts],
            },
        )
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    retriever = bm25s.BM25()
    retriever.index([analyzer.tokens(t) for t in texts], show_progress=False)
    agree = []
    max_diff = 0.0
    with Session(engine) as session:
        for q in titles:
            tokens = analyzer.tokens(q)
            ours = session.execute(bm25_query(Hybrid.terms, q, k=10)).all()
            if not tokens:
                continue
            scores = retriever.get_scores(tokens)
            theirs = sorted(range(len(texts)), key=lambda i: (-scores[i], i))[:10]
            theirs = [i for i in theirs if scores[i] > 0]
            agree.append(len({d.id for d, _ in ours} & set(theirs)) / max(len(theirs), 1))
            for d, score in ours:
                max_diff = max(max_diff, abs(score - float(scores[d.id])) / max(score, 1e-9))
        vectors = {q: embedder.embed_query(q) for q in titles}
        return {
            "top10_agreement_with_bm25s": round(statistics.mean(agree), 4),
            "max_relative_score_difference": float(f"{max_diff:.2e}"),
            "p50_ms_dense": median_ms(
                lambda q: search(session, Hybrid.embedding, vectors[q], k=10), titles
            ),
            "p50_ms_bm25": median_ms(
                lambda q: session.execute(bm25_query(Hybrid.terms, q, k=10)).all(), titles
            ),
            "p50_ms_hybrid_bm25": median_ms(
                lambda q: hybrid_search(session, Hybrid.embedding, Hybrid.terms, q, vectors[q]),
                titles,
            ),
            "p50_ms_hybrid_tsvector": median_ms(
                lambda q: hybrid_search(session, Hybrid.embedding, Hybrid.tsv, q, vectors[q]),
                titles,
            ),
        }


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(
    engine: sa.Engine, texts: list[str], titles: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        uninstall_bm25(conn, Column.terms)
    results: dict[str, Any] = {}
    single = texts[: args.single]
    bulk = texts[args.single :]
    for name, model in MODELS.items():
        table = model.__table__
        row: dict[str, Any] = {}

        def batched(table: sa.Table = table) -> None:
            for start in range(0, len(bulk), args.batch):
                with engine.begin() as conn:
                    conn.execute(
                        table.insert(),
                        [
                            {"id": args.single + start + i, "body": t}
                            for i, t in enumerate(bulk[start : start + args.batch])
                        ],
                    )

        row["batched_insert_rows_s"] = rate(len(bulk), timed(batched))

        def one_by_one(model: type[Any] = model) -> None:
            for i, t in enumerate(single):
                with Session(engine) as session:
                    session.add(model(id=i, body=t))
                    session.commit()

        row["single_insert_rows_s"] = rate(len(single), timed(one_by_one))

        def updates(model: type[Any] = model) -> None:
            for i in range(len(single)):
                with Session(engine) as session:
                    doc = session.get(model, i)
                    doc.body = texts[-1 - i]
                    session.commit()

        row["single_update_rows_s"] = rate(len(single), timed(updates))

        def deletes(model: type[Any] = model) -> None:
            for i in range(len(single)):
                with Session(engine) as session:
                    session.delete(session.get(model, i))
                    session.commit()

        row["single_delete_rows_s"] = rate(len(single), timed(deletes))

        def concurrent(model: type[Any] = model) -> None:
            base = 10_000_000

            def worker(w: int) -> None:
                for i in range(args.single // args.threads):
                    with Session(engine) as session:
                        session.add(model(id=base + w * 100_000 + i, body=single[i]))
                        session.commit()

            threads = [threading.Thread(target=worker, args=(w,)) for w in range(args.threads)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        n = (args.single // args.threads) * args.threads
        row[f"concurrent_insert_rows_s_{args.threads}_threads"] = rate(n, timed(concurrent))
        results[name] = row

    def latencies() -> dict[str, float]:
        times = []
        with Session(engine) as session:
            for q in titles:
                start = time.perf_counter()
                session.execute(bm25_query(Full.terms, q, k=10)).all()
                times.append((time.perf_counter() - start) * 1000)
        times.sort()
        return {
            "p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
        }

    corpus = "bench_bm25_full_terms_bm25_corpus"
    with engine.connect() as conn:
        delta_rows = conn.exec_driver_sql(f"SELECT count(*) FROM {corpus}").scalar_one()
        docs = conn.execute(sa.select(sa.func.count()).select_from(Full)).scalar_one()
        postings = conn.exec_driver_sql(
            "SELECT count(*) FROM bench_bm25_full_terms_bm25_postings"
        ).scalar_one()
    before = latencies()
    with engine.begin() as conn:
        compact_bm25(conn, Full.terms)
    with engine.connect() as conn:
        compacted_rows = conn.exec_driver_sql(f"SELECT count(*) FROM {corpus}").scalar_one()
    after = latencies()
    results["legs"] = legs(engine, texts, titles)
    results["query"] = {
        "documents": docs,
        "postings": postings,
        "corpus_rows_before_compaction": delta_rows,
        "corpus_rows_after_compaction": compacted_rows,
        "before_compaction": before,
        "after_compaction": after,
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None, help="server (default: the embedded one)")
    parser.add_argument("--data-dir", default=str(REPO / "data" / "bench-bm25"))
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--single", type=int, default=500, help="single-row transactions")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "bm25_writes.json"))
    args = parser.parse_args()

    docs = stdlib_corpus(args.docs)
    texts = [d.text for d in docs]
    titles = [
        d.title.replace(".", " ").replace("_", " ")
        for d in docs[:: max(1, len(docs) // args.queries)]
    ][: args.queries]
    server = None
    url = args.url
    if url is None:
        server = EmbeddedServer(Path(args.data_dir))
        if not server.status().running:
            server.start()
        url = server.url()
    engine = vecalchemy.create_engine(url)
    try:
        results = run(engine, texts, titles, args)
        Base.metadata.drop_all(engine)
    finally:
        engine.dispose()
        if server is not None:
            server.stop()
    meta = {
        "documents": len(texts),
        "mean_chars": round(sum(map(len, texts)) / len(texts)),
        "batch": args.batch,
        "single": args.single,
        "threads": args.threads,
    }
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(json.dumps(meta))
    keys = list(results["plain"])
    print(f"{'':12}" + "".join(f"{k:>34}" for k in keys))
    for name in MODELS:
        print(f"{name:12}" + "".join(f"{results[name][k]:>34}" for k in keys))
    print(json.dumps(results["query"], indent=2))
    print(json.dumps(results["legs"], indent=2))


if __name__ == "__main__":
    main()
