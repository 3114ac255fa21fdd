"""Query-time tuning: the cheatsheet's "Tune at query time" pattern.

Cheatsheet pattern::

    await session.execute(text("SET LOCAL hnsw.ef_search = 100"))   # HNSW recall
    await session.execute(text("SET LOCAL ivfflat.probes = 10"))    # IVFFlat recall

With vecalchemy the settings belong to the statement that needs them. Left unset,
``hnsw.ef_search`` is ``max(40, k)`` and ``ivfflat.probes`` is ``sqrt(lists)``; override
them per search (``search(..., ef_search=100)``, ``search(..., probes=10)``) or per
statement (``execution_options={"vecalchemy": ScanOptions(ef_search=100)}``). They hold
for that one statement, however it is executed: the rest of the transaction sees its own
values again, nothing stays on the pooled connection, and no statement inherits
another's setting.

The common mistake "forgetting to set ef_search" matters because an HNSW scan returns
at most ``ef_search`` rows: ``LIMIT 100`` with pgvector's default of 40 silently gives 40
rows. vecalchemy never sets ``ef_search`` below ``k``; an explicit ``ef_search < k`` and
``k > 1000`` (above pgvector's largest ef_search) raise ``InvalidSearch`` before any SQL
runs, as do ``ef_search`` on an IVFFlat column and ``probes`` on an HNSW column.

Run it: ``python examples/04_tuning.py``.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import vecalchemy
from vecalchemy import HNSW, Embedding, IVFFlat, ScanOptions, nearest
from vecalchemy.embedders import HashingEmbedder
from vecalchemy.load import load

embedder = HashingEmbedder(384)
ROWS = 1_000


class Base(DeclarativeBase):
    pass


class HnswDoc(Base):
    __tablename__ = "ex04_hnsw_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    embedding = Embedding(384, index=HNSW())


class IvfDoc(Base):
    __tablename__ = "ex04_ivf_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    embedding = Embedding(384, index=IVFFlat(lists=16))  # default probes: sqrt(16) = 4


def show(conn: Connection, name: str) -> str:
    return str(conn.execute(text(f"SHOW {name}")).scalar_one())


def main() -> None:
    engine = vecalchemy.create_engine()
    Base.metadata.create_all(engine)
    try:
        texts = [f"tuning note {i} about recall and latency {i % 7}" for i in range(ROWS)]
        vectors = embedder.embed_documents(texts)
        for model in (HnswDoc, IvfDoc):
            load(engine, model, {"id": range(ROWS), "body": texts, "embedding": vectors})
        vecalchemy.build_indexes(engine, IvfDoc)  # IVFFlat: built once the rows are there
        query = embedder.embed_query("recall and latency")

        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            # A setting holds for the statement that needs it, and only for it: read it
            # inside the statement (a column of the query), and after it.
            ef_now = func.current_setting("hnsw.ef_search").label("ef_search_inside")
            for k, opts in ((5, None), (100, None), (5, ScanOptions(ef_search=200))):
                stmt = nearest(HnswDoc.embedding, query, k=k).add_columns(ef_now)
                rows = conn.execute(stmt, execution_options={"vecalchemy": opts} if opts else {})
                got = rows.all()
                inside = got[0].ef_search_inside
                after = show(conn, "hnsw.ef_search")
                given = "" if opts is None else f", ef_search={opts.ef_search}"
                print(
                    f"hnsw    k={k}{given}: {len(got)} rows, ef_search {inside} during the "
                    f"statement, {after} after it"
                )
                assert len(got) == k
                assert inside == str(opts.ef_search if opts else max(40, k))
                assert after == "40"  # pgvector's default: nothing leaked into the transaction
            for kwargs in ({"k": 5}, {"k": 100}, {"k": 5, "ef_search": 200}):
                hits = vecalchemy.search(conn, HnswDoc.embedding, query, **kwargs)
                assert len(hits) == kwargs["k"]
                assert show(conn, "hnsw.ef_search") == "40"

            probes_now = func.current_setting("ivfflat.probes").label("probes_inside")
            for opts in (None, ScanOptions(probes=8)):
                stmt = nearest(IvfDoc.embedding, query, k=5).add_columns(probes_now)
                rows = conn.execute(stmt, execution_options={"vecalchemy": opts} if opts else {})
                inside = rows.all()[0].probes_inside
                after = show(conn, "ivfflat.probes")
                given = "default probes" if opts is None else f"probes={opts.probes}"
                print(f"ivfflat {given}: probes {inside} during the statement, {after} after it")
                assert inside == str(opts.probes if opts else 4)  # sqrt(16 lists)
                assert after == "1"
            conn.commit()

        # The pool hands the same server connection back: still pgvector's defaults.
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() == pid
            print(
                f"same backend {pid} from the pool: ef_search {show(conn, 'hnsw.ef_search')}, "
                f"probes {show(conn, 'ivfflat.probes')}"
            )
            assert (show(conn, "hnsw.ef_search"), show(conn, "ivfflat.probes")) == ("40", "1")

        # Refused before any SQL runs.
        refused = [
            (HnswDoc.embedding, {"k": 50, "ef_search": 20}),  # would silently return 20
            (HnswDoc.embedding, {"k": 1001}),  # no ef_search can return that many
            (IvfDoc.embedding, {"k": 5, "ef_search": 100}),  # HNSW setting on IVFFlat
            (HnswDoc.embedding, {"k": 5, "probes": 4}),  # IVFFlat setting on HNSW
        ]
        with engine.connect() as conn:
            for column, kwargs in refused:
                try:
                    vecalchemy.search(conn, column, query, **kwargs)
                    raise AssertionError(f"{kwargs} was accepted")
                except vecalchemy.InvalidSearch as exc:
                    print(f"InvalidSearch {kwargs}: {exc}")
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


if __name__ == "__main__":
    main()
