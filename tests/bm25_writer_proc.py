"""A writer process for tests/test_bm25.py's concurrency test.

Usage::

    python -m tests.bm25_writer_proc URL WORKER ROUNDS

Runs the same writer as the test's threads (its own id range, overlapping terms,
several statements per transaction, some rolled back) and exits 1 on any error.
"""

from __future__ import annotations

import random
import sys

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy.bm25 import BM25

WORDS = [
    "postgres",
    "vacuum",
    "autovacuum",
    "index",
    "indexes",
    "indexing",
    "btree",
    "gin",
    "hnsw",
    "vector",
    "vectors",
    "query",
    "queries",
    "planner",
    "statistics",
    "analyze",
    "tuple",
    "tuples",
    "page",
    "pages",
    "cache",
    "buffer",
    "replication",
    "wal",
    "checkpoint",
    "lock",
    "locks",
    "deadlock",
    "transaction",
    "commit",
    "rollback",
]


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "bm25_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str | None]
    body: Mapped[str]
    lang: Mapped[str] = mapped_column(default="en")
    terms = BM25("title", "body")


def random_text(rng: random.Random, n: int | None = None) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n or rng.randint(1, 30)))


def writer(engine: Engine, worker: int, rounds: int, errors: list[BaseException]) -> None:
    rng = random.Random(worker)
    base = worker * 1000
    try:
        for r in range(rounds):
            with Session(engine) as session:
                # several statements per transaction, all on shared terms, in any order
                new = [Doc(id=base + r * 3 + j, body=random_text(rng)) for j in range(3)]
                session.add_all(new)
                session.flush()
                mine = session.scalars(
                    sa.select(Doc).where(Doc.id.between(base, base + 999)).order_by(Doc.id)
                ).all()
                for doc in rng.sample(mine, min(2, len(mine))):
                    doc.body = random_text(rng)
                    session.flush()
                if rng.random() < 0.4:
                    session.delete(rng.choice(mine))
                if rng.random() < 0.1:
                    session.rollback()
                else:
                    session.commit()
    except BaseException as exc:
        errors.append(exc)


def main() -> int:
    url, worker, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    engine = vecalchemy.create_engine(url)
    errors: list[BaseException] = []
    writer(engine, worker, rounds, errors)
    engine.dispose()
    for exc in errors:
        print(repr(exc), file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
