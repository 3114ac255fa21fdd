"""Half precision and big dimensions: the cheatsheet's "Half-precision" and "Storage size".

Cheatsheet pattern::

    embedding: Mapped[list[float]] = mapped_column(HALFVEC(1024))   # 50% storage
    # Common mistake: storing huge vectors (>4096-dim): IVFFlat / HNSW limits.

With vecalchemy, ``Embedding(1024, storage="halfvec")`` stores 2 bytes per dimension
and its index gets the ``halfvec_*_ops`` operator class of the same metric.

pgvector indexes a ``vector`` of at most 2,000 dimensions (and a ``halfvec`` of at most
4,000; the cheatsheet's 4,096 is not quite right). A 3,072-dimension ``vector`` column
with an index (OpenAI's text-embedding-3-large size) gets a ``halfvec`` *expression*
index, ``CAST(embedding AS HALFVEC(3072)) halfvec_cosine_ops``, and every query is
rewritten to order by the same expression, so the index is used while the column keeps
full float32 precision. A column pgvector cannot index at all (over 4,000 dimensions)
is refused when it is declared (see ``12_common_mistakes.py``).

Run it: ``python examples/06_halfvec_and_big_dims.py``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.schema import CreateIndex

import vecalchemy
from vecalchemy import Embedding, Storage, nearest
from vecalchemy.embedders import HashingEmbedder


class Base(DeclarativeBase):
    pass


class HalfDoc(Base):
    __tablename__ = "ex06_half_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    embedding = Embedding(1024, metric="cosine", storage="halfvec")  # halfvec_cosine_ops
    float32 = Embedding(1024, index=None)  # the same values as vector, for comparison


class BigDoc(Base):
    __tablename__ = "ex06_big_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    embedding = Embedding(3072, metric="cosine")  # vector(3072) + halfvec expression index


DOCS = [
    "Large embedding models produce three thousand dimensions",
    "Half precision halves the storage of every vector",
    "An expression index lets PostgreSQL index a cast of the column",
    "Sourdough needs a long, slow fermentation",
]


def explain(conn: Connection, stmt: Select[Any]) -> str:
    plan = vecalchemy.explain(conn, stmt).splitlines()
    return "\n".join(line for line in plan if "'[" not in line)


def main() -> None:
    dialect = postgresql.dialect()
    (half_index,) = HalfDoc.__table__.indexes
    (big_index,) = BigDoc.__table__.indexes
    half_ddl = str(CreateIndex(half_index).compile(dialect=dialect))
    big_ddl = str(CreateIndex(big_index).compile(dialect=dialect))
    print(half_ddl)
    print(big_ddl)
    assert "USING hnsw (embedding halfvec_cosine_ops)" in half_ddl
    assert "USING hnsw (CAST(embedding AS HALFVEC(3072)) halfvec_cosine_ops)" in big_ddl

    small, big = HashingEmbedder(1024), HashingEmbedder(3072)
    engine = vecalchemy.create_engine()
    Base.metadata.create_all(engine)
    try:
        with Session(engine) as session:
            for body, v1024, v3072 in zip(
                DOCS, small.embed_documents(DOCS), big.embed_documents(DOCS), strict=True
            ):
                session.add(HalfDoc(body=body, embedding=v1024, float32=v1024))
                session.add(BigDoc(body=body, embedding=v3072))
            session.commit()

        with Session(engine) as session:
            half_bytes, full_bytes = session.execute(
                select(
                    func.pg_column_size(HalfDoc.embedding), func.pg_column_size(HalfDoc.float32)
                ).limit(1)
            ).one()
            print(f"1024 dims on disk: halfvec {half_bytes} bytes, vector {full_bytes} bytes")
            # 2 * dim + 8 and 4 * dim + 8; pg_column_size leaves out the 4-byte length
            # header of values large enough to be moved out of line (TOAST).
            assert Storage.HALFVEC.bytes_per_row(1024) - half_bytes in (0, 4)
            assert Storage.VECTOR.bytes_per_row(1024) - full_bytes in (0, 4)

            hits = vecalchemy.search(
                session, HalfDoc.embedding, small.embed_query("half precision storage"), k=2
            )
            exact = vecalchemy.search(
                session, HalfDoc.float32, small.embed_query("half precision storage"), k=2
            )
            print("halfvec:", [(round(h.similarity, 4), h.row.body) for h in hits])
            print("vector: ", [(round(h.similarity, 4), h.row.body) for h in exact])
            assert [h.row.id for h in hits] == [h.row.id for h in exact]
            assert abs(hits[0].similarity - exact[0].similarity) < 1e-3  # small accuracy hit

            query = big.embed_query("index a cast of the column")
            stmt = nearest(BigDoc.embedding, query, k=2)
            sql = str(stmt.compile(dialect=dialect))
            print(" ".join(sql.split()))
            assert "CAST(ex06_big_docs.embedding AS HALFVEC(3072)) <=> CAST(" in sql

            conn = session.connection()
            conn.execute(text("SET LOCAL enable_seqscan = off"))  # 4 rows: see 03_indexes.py
            plan = explain(conn, stmt)
            print(plan)
            assert "Index Scan using ix_ex06_big_docs_embedding_hnsw" in plan

            big_hits = vecalchemy.search(session, BigDoc.embedding, query, k=2)
            print("3072 dims:", [(round(h.similarity, 3), h.row.body) for h in big_hits])
            assert big_hits[0].row.body == DOCS[2]
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


if __name__ == "__main__":
    main()
