"""Indexes: the cheatsheet's "HNSW index" and "IVFFlat index" patterns.

Cheatsheet pattern::

    Index("ix_docs_embedding_hnsw", "embedding", postgresql_using="hnsw",
          postgresql_ops={"embedding": "vector_cosine_ops"},
          postgresql_with={"m": 16, "ef_construction": 64})
    Index("ix_docs_embedding_ivfflat", "embedding", postgresql_using="ivfflat",
          postgresql_ops={"embedding": "vector_cosine_ops"},
          postgresql_with={"lists": 100})   # sqrt(N) rule of thumb
    # Build IVFFlat AFTER inserting some data (needs sample).

With vecalchemy the index is part of the column: ``Embedding(384, metric="cosine",
index=HNSW(m=16, ef_construction=64))``. The operator class is derived from the metric
and the storage type, so the common mistake "wrong opclass, index unused" cannot be
written; this script prints the ``CREATE INDEX`` DDL to show it.

IVFFlat learns its lists from the rows present when it is built, so ``create_all()``
never builds it on the new, empty table (and ``build_indexes()`` refuses to, with
``IndexBuildError``). Load the rows, then ``build_indexes()`` derives ``lists`` from the
row count (pgvector's rule: rows / 1000 up to 1M rows, sqrt(rows) above; here 3).

Finally ``EXPLAIN`` shows that the query ``search()``/``nearest()`` sends is served by
each index, and that the cheatsheet's mistake (ordering a cosine-indexed column by L2
distance) is not.

Run it: ``python examples/03_indexes.py``.
"""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import Connection, Select, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.schema import CreateIndex

import vecalchemy
from vecalchemy import HNSW, Embedding, IVFFlat, nearest
from vecalchemy.embedders import HashingEmbedder
from vecalchemy.load import load

embedder = HashingEmbedder(384)
ROWS = 3_000


class Base(DeclarativeBase):
    pass


class HnswDoc(Base):
    __tablename__ = "ex03_hnsw_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    embedding = Embedding(384, metric="cosine", index=HNSW(m=16, ef_construction=64))


class IvfDoc(Base):
    __tablename__ = "ex03_ivf_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    embedding = Embedding(384, metric="l2", index=IVFFlat())  # lists from the row count


def synthetic_texts(n: int) -> list[str]:
    rng = random.Random(3)
    words = ["index", "query", "vector", "table", "search", "plan", "scan", "graph", "list"]
    return [f"{' '.join(rng.sample(words, 4))} number {i}" for i in range(n)]


def explain(conn: Connection, stmt: Select[Any]) -> str:
    """The plan's node lines (without the long query-vector literal)."""
    plan = vecalchemy.explain(conn, stmt).splitlines()
    return "\n".join(line for line in plan if "'[" not in line)


def main() -> None:
    dialect = postgresql.dialect()
    for model in (HnswDoc, IvfDoc):
        for index in model.__table__.indexes:
            print(CreateIndex(index).compile(dialect=dialect))
    print()

    engine = vecalchemy.create_engine()
    Base.metadata.create_all(engine)  # HNSW built with its table; IVFFlat left out
    try:
        with engine.connect() as conn:
            existing = set(
                conn.execute(
                    text("SELECT indexname FROM pg_indexes WHERE tablename LIKE 'ex03_%'")
                ).scalars()
            )
        print("after create_all:", sorted(existing))
        assert "ix_ex03_hnsw_docs_embedding_hnsw" in existing
        assert "ix_ex03_ivf_docs_embedding_ivfflat" not in existing

        try:
            vecalchemy.build_indexes(engine, IvfDoc)
            raise AssertionError("an IVFFlat index was built on an empty table")
        except vecalchemy.IndexBuildError as exc:
            print("build_indexes on the empty table:", exc)

        texts = synthetic_texts(ROWS)
        vectors = embedder.embed_documents(texts)
        for model in (HnswDoc, IvfDoc):
            load(engine, model, {"id": range(ROWS), "body": texts, "embedding": vectors})

        for result in vecalchemy.build_indexes(engine, IvfDoc):
            print(f"built {result.name} on {result.rows} rows with {result.options}")
            assert result.action == "built"
            assert result.options == {"lists": ROWS // 1000}
        with engine.connect() as conn:
            # pg_indexes leaves out an opclass that is the type's default (vector_l2_ops
            # for ivfflat), so read the opclass from the catalog.
            opclass, options = conn.execute(
                text(
                    "SELECT opc.opcname, c.reloptions FROM pg_index i "
                    "JOIN pg_class c ON c.oid = i.indexrelid "
                    "JOIN pg_opclass opc ON opc.oid = i.indclass[0] WHERE c.relname = :n"
                ),
                {"n": "ix_ex03_ivf_docs_embedding_ivfflat"},
            ).one()
        print("in the catalog:", opclass, options)
        assert (opclass, options) == ("vector_l2_ops", [f"lists={ROWS // 1000}"])

        query = embedder.embed_query("vector index scan")
        with engine.begin() as conn:
            # 3,000 rows is a small table: a sequential scan costs little and the planner
            # may prefer it. Discouraging it (for this transaction only) shows whether an
            # index CAN serve the query, which is what matters on a big table.
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            for column, name in (
                (HnswDoc.embedding, "ix_ex03_hnsw_docs_embedding_hnsw"),
                (IvfDoc.embedding, "ix_ex03_ivf_docs_embedding_ivfflat"),
            ):
                plan = explain(conn, nearest(column, query, k=5))
                print(f"\nEXPLAIN nearest({column}):\n{plan}")
                assert f"Index Scan using {name}" in plan

            # The cheatsheet's mistake, written by hand: L2 order on a cosine index. On an
            # Embedding column it cannot be written by accident: it raises at once.
            try:
                HnswDoc.embedding.l2_distance(query)
            except vecalchemy.MetricMismatch as exc:
                print(f"\nl2_distance() on the cosine column: {exc}")
            else:
                raise AssertionError("l2_distance() on a cosine column must raise")
            # Asked for on purpose, the exact L2 distance runs, and no index can serve it.
            exact = HnswDoc.embedding.exact_distance(query, metric="l2")
            plan = explain(conn, select(HnswDoc.id).order_by(exact).limit(5))
            print(f"\nEXPLAIN of exact_distance(metric='l2') (no index can serve it):\n{plan}")
            assert "Index Scan" not in plan

        with engine.connect() as conn:
            hits = vecalchemy.search(conn, IvfDoc.embedding, vectors[42], k=3)
        print("ivfflat search for row 42:", [(hit.row.id, round(hit.distance, 3)) for hit in hits])
        assert hits[0].row.id == 42
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


if __name__ == "__main__":
    main()
