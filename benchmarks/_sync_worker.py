"""One process of ``benchmarks/sync.py``: an outbox worker, the limit, or the inline flushes.

The driver starts this module as a subprocess (``OMP_NUM_THREADS`` and
``--threads`` set the torch threads before the model loads), one per role:

* ``worker``: ``vecalchemy.sync.Worker(engine, targets=[T], embedders={T: embedder},
  batch_size=B, poll_interval=P).run()`` until SIGTERM, as ``vecalchemy worker`` runs
  it, but with the embedder built and warmed up before the clock starts (the CLI builds
  it at the first batch). The worker's methods are wrapped with timers (claim, read,
  embed, write, ``_vector_text``), so the JSON it prints at exit splits its busy time.
  It prints ``{"ready": true}`` once it has claimed nothing and is about to wait.
* ``limit``: the embedder alone on the table's current texts, in batches of B, in a
  process of the same kind with the same threads: the limit the workers are compared to.
* ``inline``: ``--rounds`` rounds of the in-process flush, see :func:`inline`.

Every answer is one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import BigInteger, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import Embedding
from vecalchemy._source import source_text
from vecalchemy.embedders import Embedder, get_embedder

DIM = 384


def models(key: str, spec: str) -> dict[str, Any]:
    """The benchmark's three tables for one embedder: ``outbox`` (trigger installed by
    the driver), ``plain`` (the same columns, no trigger: the UPDATE without the queue)
    and ``inline`` (re-embedded in the flush). No vector index: the figures are the
    queue's and the flush's, not HNSW's insert cost."""

    class Base(DeclarativeBase):
        pass

    out: dict[str, Any] = {"base": Base}
    for kind, sync in (("outbox", "outbox"), ("plain", "outbox"), ("inline", "inline")):
        attrs = {
            "__tablename__": f"bench_sync_{key}_{kind}",
            "id": mapped_column(BigInteger, primary_key=True),
            "title": mapped_column(Text),
            "body": mapped_column(Text, nullable=False),
            # truncate=True: the limit (embed_documents) truncates texts past MiniLM's
            # 256-token window too (0.5% of these abstracts), so both embed the same.
            "embedding": Embedding(
                DIM,
                source=("title", "body"),
                embedder=spec,
                sync=sync,
                index=None,
                truncate=True,
            ),
            "__annotations__": {"id": Mapped[int], "title": Mapped[str], "body": Mapped[str]},
        }
        out[kind] = type(f"Doc_{key}_{kind}", (Base,), attrs)
    return out


def set_threads(n: int) -> None:
    if n > 0:
        import torch

        torch.set_num_threads(n)


def warm(embedder: Embedder) -> None:
    embedder.embed_documents(["warm-up text", "another warm-up text"] * 4)


def texts_of(conn: sa.Connection, table: str) -> list[str]:
    rows = conn.execute(sa.text(f"SELECT title, body FROM {table} ORDER BY id")).all()
    return [source_text(r) for r in rows]


def threads_used() -> int | None:
    if "torch" not in sys.modules:
        return None
    return int(sys.modules["torch"].get_num_threads())


# -- roles ------------------------------------------------------------------------------


def worker(args: argparse.Namespace) -> dict[str, Any]:
    import vecalchemy.sync.worker as wmod

    embedder = get_embedder(args.spec)
    warm(embedder)
    engine = vecalchemy.create_engine(args.url)
    w = vecalchemy.sync.Worker(
        engine,
        targets=[args.target],
        embedders={args.target: embedder},
        batch_size=args.batch_size,
        poll_interval=args.poll_interval,
    )
    spent: dict[str, float] = {"claim": 0.0, "process": 0.0, "embed": 0.0, "write": 0.0}
    spent["vector_text"] = 0.0
    marks: dict[str, float] = {}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[name] += time.perf_counter() - t

        return run

    for name in ("claim", "process", "embed", "write"):
        setattr(w, f"_{name}", timed(name, getattr(w, f"_{name}")))
    if hasattr(wmod, "_vector_text"):
        wmod._vector_text = timed("vector_text", wmod._vector_text)
    run_once = w.run_once
    ready = False

    def once() -> int:
        nonlocal ready
        t = time.time()
        n = run_once()
        if n:
            marks.setdefault("first_claim", t)
            marks["last_write"] = time.time()
        elif not ready:
            ready = True
            w._listener()  # LISTEN before the driver's UPDATE, so its NOTIFY arrives
            print(json.dumps({"ready": True}), flush=True)
        return n

    w.run_once = once  # type: ignore[method-assign]
    signal.signal(signal.SIGTERM, lambda *_: w.stop())
    stats = w.run()
    engine.dispose()
    return {
        "done": stats.done,
        "failed": stats.failed,
        "superseded": stats.superseded,
        "batches": stats.batches,
        "embed_seconds": stats.embed_seconds,
        "seconds": spent,
        **marks,
        "torch_threads": threads_used(),
    }


def limit(args: argparse.Namespace) -> dict[str, Any]:
    embedder = get_embedder(args.spec)
    warm(embedder)
    engine = vecalchemy.create_engine(args.url)
    with engine.connect() as conn:
        texts = texts_of(conn, args.table)
    engine.dispose()
    b = args.batch_size
    started = time.perf_counter()
    for i in range(0, len(texts), b):
        embedder.embed_documents(texts[i : i + b])
    seconds = time.perf_counter() - started
    return {
        "texts": len(texts),
        "seconds": seconds,
        "per_second": len(texts) / seconds,
        "torch_threads": threads_used(),
    }


def inline(args: argparse.Namespace) -> dict[str, Any]:
    """Per round, on every row of the inline table (loaded into one Session beforehand):

    * **plain**: each object's ``body`` changed and its ``embedding`` assigned from
      vectors computed just before (``embed_documents`` of those texts, one call, timed
      as ``embed_separate``); the hook then only records the hash. ``session.flush()``
      timed.
    * **inline**: each object's ``body`` changed, nothing else; ``session.flush()`` timed;
      the embedder's call inside that flush is timed too (``embed_in_flush``, by wrapping
      the column's embedder).

    The order of the two flushes alternates by round. Each flush is committed (untimed).
    """
    from vecalchemy.sync._embed import resolve_embedder

    m = models(args.key, args.spec)
    Doc = m["inline"]
    engine = vecalchemy.create_engine(args.url)
    col = Doc.__table__.c.embedding
    embedder = resolve_embedder(col)
    warm(embedder)
    inner = {"seconds": 0.0, "calls": 0}
    original = embedder.embed_documents

    def counted(texts: Any) -> Any:
        t = time.perf_counter()
        try:
            return original(texts)
        finally:
            inner["seconds"] += time.perf_counter() - t
            inner["calls"] += 1

    embedder.embed_documents = counted  # type: ignore[method-assign]
    rounds = []
    with Session(engine, expire_on_commit=False) as session:
        docs = session.scalars(sa.select(Doc).order_by(Doc.id)).all()
        base = [d.body.split(" ~rev", 1)[0] for d in docs]
        session.commit()
        for r in range(args.rounds):
            got: dict[str, Any] = {"round": r}
            for which in ("plain", "inline") if r % 2 == 0 else ("inline", "plain"):
                tag = f" ~rev{args.tag}.{r}{which[0]}"
                bodies = [b + tag for b in base]
                if which == "plain":
                    texts = [
                        source_text((d.title, body)) for d, body in zip(docs, bodies, strict=True)
                    ]
                    t = time.perf_counter()
                    vectors = original(texts)
                    got["embed_separate"] = time.perf_counter() - t
                    for d, body, v in zip(docs, bodies, vectors, strict=True):
                        d.body = body
                        d.embedding = v
                else:
                    for d, body in zip(docs, bodies, strict=True):
                        d.body = body
                inner["seconds"], inner["calls"] = 0.0, 0
                t = time.perf_counter()
                session.flush()
                got[which] = time.perf_counter() - t
                if which == "inline":
                    got["embed_in_flush"] = inner["seconds"]
                    got["embed_calls_in_flush"] = inner["calls"]
                else:
                    assert inner["calls"] == 0, "the plain flush embedded"
                session.commit()
            rounds.append(got)
            print(json.dumps(got), file=sys.stderr, flush=True)
        check = session.execute(
            sa.text(
                f"SELECT count(*) FROM {Doc.__tablename__} WHERE embedding IS NOT NULL AND "
                "embedding_source_hash = encode(sha256(convert_to(concat_ws(E'\\n\\n', "
                "title, body), 'UTF8')), 'hex')"
            )
        ).scalar_one()
    engine.dispose()
    return {
        "rows": len(docs),
        "current_after": int(check),
        "rounds": rounds,
        "torch_threads": threads_used(),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=("worker", "limit", "inline"))
    p.add_argument("--url", required=True)
    p.add_argument("--spec", required=True)
    p.add_argument("--key", default="")
    p.add_argument("--target", default="")
    p.add_argument("--table", default="")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--poll-interval", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--tag", default="0")
    args = p.parse_args()
    if args.spec != "hashing":
        set_threads(args.threads)
    result = {"worker": worker, "limit": limit, "inline": inline}[args.role](args)
    result["pid"] = os.getpid()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
