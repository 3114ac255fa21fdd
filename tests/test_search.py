"""search() and asearch(): right rows and scores, per-query settings, bad input rejected early."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from pgvector.sqlalchemy import Vector
from sqlalchemy import Connection, Engine, String, event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import HNSW, Embedding, IVFFlat, asearch, search

rng = np.random.default_rng(11)
DIM = 16
N = 300
VECS = rng.normal(size=(N, DIM)).astype(np.float32)


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "search_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    lang: Mapped[str] = mapped_column(String(2))
    embedding = Embedding(DIM, metric="cosine", index=HNSW())
    l2 = Embedding(DIM, metric="l2", index=None)
    ip = Embedding(DIM, metric="inner_product", index=HNSW())
    l1 = Embedding(DIM, metric="l1", index=HNSW())
    half = Embedding(DIM, metric="cosine", storage="halfvec")
    ivf = Embedding(DIM, metric="l2", index=IVFFlat(lists=4))


def _rows() -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "lang": "en" if i % 3 else "de",
            "embedding": v,
            "l2": v,
            "ip": v,
            "l1": v,
            "half": v,
            "ivf": v,
        }
        for i, v in enumerate(VECS)
    ]


@pytest.fixture
def docs(session: Session) -> Session:
    conn = session.connection()
    Base.metadata.create_all(conn)
    conn.execute(insert(Doc), _rows())
    vecalchemy.build_indexes(conn, Doc)  # the IVFFlat index, now that rows exist
    return session


def _cos_dist(q: np.ndarray) -> np.ndarray:
    return 1 - (VECS @ q) / (np.linalg.norm(VECS, axis=1) * np.linalg.norm(q))


EXACT = {
    "embedding": _cos_dist,
    "half": _cos_dist,
    "l2": lambda q: np.linalg.norm(VECS - q, axis=1),
    "ivf": lambda q: np.linalg.norm(VECS - q, axis=1),
    "ip": lambda q: -(VECS @ q),
    "l1": lambda q: np.abs(VECS - q).sum(axis=1),
}


@pytest.mark.parametrize("attr", sorted(EXACT))
def test_results_match_exact_search(docs: Session, attr: str) -> None:
    """Hits are the exact nearest rows (small table, generous ef/probes), nearest first."""
    q = rng.normal(size=DIM).astype(np.float32)
    extra = {"probes": 4} if attr == "ivf" else {"ef_search": 200}
    hits = search(docs, getattr(Doc, attr), q, k=10, **extra)
    exact = EXACT[attr](q)
    want = list(np.argsort(exact)[:10])
    assert [h.row.id for h in hits] == want
    tol = 2e-3 if attr == "half" else 1e-4
    assert [h.distance for h in hits] == pytest.approx(list(exact[want]), rel=tol, abs=tol)


def test_similarity_direction_per_metric(docs: Session) -> None:
    """similarity is higher for nearer rows and uses each metric's documented transform."""
    q = VECS[5]
    cos = search(docs, Doc.embedding, q, k=3)
    assert cos[0].row.id == 5
    assert cos[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert all(h.similarity == pytest.approx(1 - h.distance) for h in cos)
    ip = search(docs, Doc.ip, q, k=3)
    assert ip[0].similarity == pytest.approx(float(np.max(VECS @ q)), rel=1e-5)
    assert all(h.similarity == pytest.approx(-h.distance) for h in ip)
    l2 = search(docs, Doc.l2, q, k=3)
    assert l2[0].similarity == pytest.approx(1.0)  # distance 0
    assert all(h.similarity == pytest.approx(1 / (1 + h.distance)) for h in l2)
    for hits in (cos, ip, l2):
        sims = [h.similarity for h in hits]
        assert sims == sorted(sims, reverse=True)


def test_embeddings_are_not_loaded_unless_asked(docs: Session) -> None:
    """Hits' vector attributes are deferred (all of them); load_embedding=True loads them."""
    hits = search(docs, Doc.embedding, VECS[0], k=2)
    unloaded = sa.inspect(hits[0].row).unloaded
    assert {"embedding", "l2", "ip", "l1", "half", "ivf"} <= unloaded
    assert "lang" not in unloaded
    docs.expunge_all()
    hits = search(docs, Doc.embedding, VECS[0], k=2, load_embedding=True)
    assert "embedding" not in sa.inspect(hits[0].row).unloaded
    np.testing.assert_allclose(np.asarray(hits[0].row.embedding), VECS[0], rtol=1e-6)


def test_where_filters(docs: Session) -> None:
    """where= accepts one expression or a list, and every hit satisfies it."""
    hits = search(docs, Doc.embedding, VECS[1], k=5, where=Doc.lang == "de", ef_search=200)
    assert hits
    assert all(h.row.lang == "de" for h in hits)
    hits = search(docs, Doc.embedding, VECS[1], k=5, where=[Doc.lang == "en", Doc.id < 100])
    assert all(h.row.lang == "en" and h.row.id < 100 for h in hits)


def test_thresholds(docs: Session) -> None:
    """min_similarity and max_distance keep exactly the hits on the right side."""
    q = VECS[9]
    all_hits = search(docs, Doc.embedding, q, k=20, ef_search=200)
    cut = all_hits[6].similarity
    kept = search(docs, Doc.embedding, q, k=20, ef_search=200, min_similarity=cut)
    assert [h.row.id for h in kept] == [h.row.id for h in all_hits[:7]]
    assert all(h.similarity >= cut for h in kept)
    d = all_hits[3].distance
    kept = search(docs, Doc.embedding, q, k=20, ef_search=200, max_distance=d)
    assert [h.row.id for h in kept] == [h.row.id for h in all_hits[:4]]
    l2_hits = search(docs, Doc.l2, q, k=5, min_similarity=0.99)
    assert [h.row.id for h in l2_hits] == [9]


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement sent through the engine during the test."""
    sent: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", capture)
    yield sent
    event.remove(engine, "before_cursor_execute", capture)


BAD_INPUTS = [
    (
        [0.1] * (DIM - 1),
        vecalchemy.DimensionMismatch,
        "has 15 dimensions but column search_docs.embedding has 16",
    ),
    (
        [0.1] * (DIM - 1) + [float("nan")],
        vecalchemy.InvalidVector,
        "non-finite value \\(nan\\) at index 15",
    ),
    (
        [float("inf")] + [0.1] * (DIM - 1),
        vecalchemy.InvalidVector,
        "non-finite value \\(inf\\) at index 0",
    ),
    ([], vecalchemy.InvalidVector, "is empty"),
    (np.ones((2, DIM)), vecalchemy.InvalidVector, "one-dimensional"),
    ("some text", vecalchemy.InvalidVector, "not a string; embed the text first"),
    ([0.0] * DIM, vecalchemy.InvalidVector, "all zeros"),
    (["a"] * DIM, vecalchemy.InvalidVector, "list of numbers"),
]


@pytest.mark.parametrize(("query", "error", "message"), BAD_INPUTS)
def test_bad_query_vectors_fail_before_sql(
    docs: Session, statements: list[str], query: Any, error: type[Exception], message: str
) -> None:
    """A bad query vector raises a clear error and no SQL is sent at all."""
    statements.clear()
    with pytest.raises(error, match=message):
        search(docs, Doc.embedding, query, k=3)
    assert statements == []
    assert issubclass(error, vecalchemy.VecalchemyError)
    assert issubclass(error, ValueError)


BAD_ARGS = [
    ({"k": 0}, "k must be a positive integer"),
    ({"k": 1001}, "k=1001 is above 1,000"),
    ({"k": 2.5}, "k must be a positive integer"),
    ({"k": 50, "ef_search": 20}, "ef_search=20 is below k=50"),
    ({"ef_search": 1001}, "ef_search must be an integer from 1 to 1,000"),
    ({"probes": 3}, "probes applies to IVFFlat indexes"),
    ({"min_similarity": 0.5, "max_distance": 0.5}, "not both"),
    ({"min_similarity": 1.5}, "outside \\[-1, 1\\]"),
    ({"max_distance": float("nan")}, "max_distance must be finite"),
    ({"metric": "l2"}, "declared with metric 'cosine'"),
    ({"metric": "cosine-ish"}, "unknown metric 'cosine-ish'; use one of"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_ARGS)
def test_bad_arguments_fail_before_sql(
    docs: Session, statements: list[str], kwargs: dict[str, Any], message: str
) -> None:
    """Out-of-range k, settings, thresholds or a conflicting metric fail before any SQL."""
    statements.clear()
    args = {"k": 5, **kwargs}
    with pytest.raises(vecalchemy.VecalchemyError, match=message):
        search(docs, Doc.embedding, VECS[0], **args)
    assert statements == []


def test_ivfflat_rejects_ef_search(docs: Session) -> None:
    """ef_search on an IVFFlat column is a mistake and says to use probes."""
    with pytest.raises(vecalchemy.InvalidSearch, match="tune it with probes="):
        search(docs, Doc.ivf, VECS[0], k=3, ef_search=100)


def _setting(session: Session, name: str) -> str:
    return str(session.execute(select(func.current_setting(name))).scalar())


def test_settings_are_set_per_query(docs: Session, observed: list[dict[str, str | None]]) -> None:
    """ef_search is max(40, k) or the given value; probes sqrt(lists) or the given value;
    each holds during its own search only, and the transaction's values come back after."""
    before = _setting(docs, "hnsw.ef_search"), _setting(docs, "ivfflat.probes")
    search(docs, Doc.embedding, VECS[0], k=5)
    search(docs, Doc.embedding, VECS[0], k=120)
    search(docs, Doc.embedding, VECS[0], k=5, ef_search=300)
    search(docs, Doc.embedding, VECS[0], k=5)  # a later search does not inherit 300
    search(docs, Doc.ivf, VECS[0], k=5)
    search(docs, Doc.ivf, VECS[0], k=5, probes=3)
    assert [o["hnsw.ef_search"] for o in observed[:4]] == ["40", "120", "300", "40"]
    assert [o["ivfflat.probes"] for o in observed[4:]] == ["2", "3"]  # sqrt(4), given
    assert (_setting(docs, "hnsw.ef_search"), _setting(docs, "ivfflat.probes")) == before


def test_ivfflat_auto_lists_reads_probes_from_the_index(
    session: Session, observed: list[dict[str, str | None]]
) -> None:
    """IVFFlat(lists=None): probes defaults to sqrt of the lists the index was built with."""

    class B(DeclarativeBase):
        pass

    class Auto(B):
        __tablename__ = "auto_ivf"
        id: Mapped[int] = mapped_column(primary_key=True)
        embedding = Embedding(4, metric="l2", index=IVFFlat())

    conn = session.connection()
    B.metadata.create_all(conn)
    vecs = rng.normal(size=(9000, 4)).astype(np.float32)
    conn.execute(insert(Auto), [{"id": i, "embedding": v} for i, v in enumerate(vecs)])
    (built,) = vecalchemy.build_indexes(conn, Auto)
    assert built.options == {"lists": 9}
    hits = search(session, Auto.embedding, vecs[10], k=3)
    assert hits[0].row.id == 10
    assert observed[-1]["ivfflat.probes"] == "3"


def test_settings_never_leak_to_the_pooled_connection(server_url: sa.URL) -> None:
    """SET LOCAL ends with the transaction: the pooled connection is back at the defaults."""
    eng = vecalchemy.create_engine(server_url, pool_size=1, max_overflow=0)
    table = f"leak_{rng.integers(1 << 30)}"
    md = sa.MetaData()
    t = sa.Table(
        table,
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        vecalchemy.embedding_column("embedding", 3),
    )
    try:
        md.create_all(eng)
        with Session(eng) as s:
            s.execute(insert(t), [{"id": 1, "embedding": [1, 2, 3]}])
            s.commit()
            search(s, t.c.embedding, [1, 2, 3], k=500, ef_search=700)
            # The rest of the transaction sees its own value again, not the search's.
            assert s.execute(sa.text("SHOW hnsw.ef_search")).scalar() == "40"
            search(s, t.c.embedding, [1, 2, 3], k=500, ef_search=700)
            s.commit()
            pid = s.execute(select(func.pg_backend_pid())).scalar()
            assert s.execute(sa.text("SHOW hnsw.ef_search")).scalar() == "40"
        with eng.connect() as c:  # the same pooled connection (pool_size=1)
            assert c.execute(select(func.pg_backend_pid())).scalar() == pid
            assert c.execute(sa.text("SHOW hnsw.ef_search")).scalar() == "40"
    finally:
        md.drop_all(eng)
        eng.dispose()


def test_plain_pgvector_column_and_core_rows(connection: Connection) -> None:
    """A plain Vector column works when the metric is given; Core columns give rows."""
    md = sa.MetaData()
    t = sa.Table(
        "plain_items",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("embedding", Vector(DIM)),
    )
    md.create_all(connection)
    connection.execute(insert(t), [{"id": i, "embedding": v} for i, v in enumerate(VECS[:50])])
    with pytest.raises(vecalchemy.MetricRequired):
        search(connection, t.c.embedding, VECS[7], k=3)
    hits = search(connection, t.c.embedding, VECS[7], k=3, metric="l2")
    assert hits[0].row.id == 7
    assert hits[0].distance == pytest.approx(0.0, abs=1e-6)
    assert "embedding" not in hits[0].row._mapping


def test_null_embeddings_are_skipped(docs: Session) -> None:
    """Rows without a vector never come back as hits."""
    docs.execute(sa.update(Doc).where(Doc.id < 150).values(embedding=None))
    hits = search(docs, Doc.embedding, VECS[3], k=10, ef_search=300)
    assert hits
    assert all(h.row.id >= 150 for h in hits)


class Note(Base):
    __tablename__ = "search_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    embedding = Embedding(DIM, metric="cosine")


async def test_asearch_on_every_async_driver(async_session: AsyncSession) -> None:
    """asearch returns the same hits through psycopg async and asyncpg."""
    conn = await async_session.connection()
    await conn.run_sync(lambda c: Note.__table__.create(c))
    await async_session.execute(
        insert(Note), [{"id": i, "body": f"n{i}", "embedding": v} for i, v in enumerate(VECS)]
    )
    q = VECS[42]
    hits = await asearch(async_session, Note.embedding, q, k=5, ef_search=200)
    want = list(np.argsort(_cos_dist(q))[:5])
    assert [h.row.id for h in hits] == want
    assert hits[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert hits[0].row.body == "n42"
    assert "embedding" in sa.inspect(hits[0].row).unloaded
    ef = (await async_session.execute(sa.text("SHOW hnsw.ef_search"))).scalar()
    assert ef == "40"  # the search's 200 held for its own statement only
    filtered = await asearch(async_session, Note.embedding, q, k=5, where=Note.id > 100)
    assert all(h.row.id > 100 for h in filtered)
    with pytest.raises(vecalchemy.DimensionMismatch):
        await asearch(async_session, Note.embedding, q[:3], k=5)


async def test_async_vectors_round_trip(async_session: AsyncSession) -> None:
    """Vectors written and read through the async drivers come back unchanged."""
    conn = await async_session.connection()
    await conn.run_sync(lambda c: Note.__table__.create(c))
    async_session.add(Note(id=1, body="x", embedding=VECS[0]))
    await async_session.flush()
    hits = await asearch(async_session, Note.embedding, VECS[0], k=1, load_embedding=True)
    np.testing.assert_allclose(np.asarray(hits[0].row.embedding), VECS[0], rtol=1e-6)


def test_halfvec_3072_dimensions(session: Session) -> None:
    """3,072-dim vectors (above pgvector's 2,000 limit) are indexed and found via halfvec."""

    class B(DeclarativeBase):
        pass

    class Big(B):
        __tablename__ = "big_docs"
        id: Mapped[int] = mapped_column(primary_key=True)
        embedding = Embedding(3072, metric="cosine")

    conn = session.connection()
    B.metadata.create_all(conn)
    vecs = rng.normal(size=(60, 3072)).astype(np.float32)
    conn.execute(insert(Big), [{"id": i, "embedding": v} for i, v in enumerate(vecs)])
    hits = search(session, Big.embedding, vecs[17] + 0.01, k=3)
    assert hits[0].row.id == 17
    assert hits[0].similarity > 0.99
    with pytest.raises(vecalchemy.InvalidVector, match="halfvec's range"):
        search(session, Big.embedding, np.full(3072, 1e6), k=3)


def test_bit_and_sparse_columns(session: Session) -> None:
    """Hamming on bit and cosine on sparsevec columns return the planted nearest row."""
    from pgvector import SparseVector

    class B(DeclarativeBase):
        pass

    class Mixed(B):
        __tablename__ = "mixed_docs"
        id: Mapped[int] = mapped_column(primary_key=True)
        bits = Embedding(64, metric="hamming", storage="bit")
        sparse = Embedding(1000, metric="cosine", storage="sparsevec")

    conn = session.connection()
    B.metadata.create_all(conn)
    bits = rng.integers(0, 2, size=(40, 64)).astype(bool)
    sparse = [
        {int(j): float(rng.normal()) for j in rng.choice(1000, 8, replace=False)} for _ in range(40)
    ]
    conn.execute(
        insert(Mixed),
        [
            {
                "id": i,
                "bits": "".join("1" if b else "0" for b in bits[i]),
                "sparse": SparseVector(sparse[i], 1000),
            }
            for i in range(40)
        ],
    )
    hits = search(session, Mixed.bits, bits[12], k=2)
    assert hits[0].row.id == 12
    assert hits[0].distance == 0
    assert hits[0].similarity == 1.0
    hits = search(session, Mixed.sparse, sparse[30], k=2)
    assert hits[0].row.id == 30
    assert hits[0].similarity == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(vecalchemy.DimensionMismatch):
        search(session, Mixed.bits, "0101", k=2)
    with pytest.raises(vecalchemy.InvalidVector, match="0 and 1"):
        search(session, Mixed.bits, "2" * 64, k=2)


def test_orm_column_through_a_connection_gives_rows(docs: Session) -> None:
    """Searching Doc.embedding through a Connection returns flat rows, not mapped objects."""
    hits = search(docs.connection(), Doc.embedding, VECS[8], k=2)
    assert hits[0].row.id == 8
    assert hits[0].row.lang == "en"  # id 8: 8 % 3 != 0
    assert "embedding" not in hits[0].row._mapping


class Flags(Base):
    __tablename__ = "search_flags"
    id: Mapped[int] = mapped_column(primary_key=True)
    bits = Embedding(8, metric="hamming", storage="bit")


def test_orm_writes_bit_like_values(session: Session) -> None:
    """A bit column takes numpy bool arrays, 0/1 lists, pgvector Bit and strings on write."""
    from pgvector import Bit

    Flags.__table__.create(session.connection())
    session.add_all(
        [
            Flags(id=1, bits=np.array([True, False] * 4)),
            Flags(id=2, bits=[1, 1, 1, 1, 0, 0, 0, 0]),
            Flags(id=3, bits=Bit("00000001")),
            Flags(id=4, bits="11111111"),
        ]
    )
    session.flush()
    stored = dict(session.execute(sa.text("SELECT id, bits::text FROM search_flags")).all())
    assert stored == {1: "10101010", 2: "11110000", 3: "00000001", 4: "11111111"}
    # Refused as vecalchemy's own error, not SQLAlchemy's StatementError around it.
    session.add(Flags(id=5, bits=[0.5] * 8))
    with pytest.raises(vecalchemy.InvalidVector, match="booleans or 0/1"):
        session.flush()


async def test_async_orm_writes_bits(async_session: AsyncSession) -> None:
    """Bit-like values are written through both async drivers too."""
    conn = await async_session.connection()
    await conn.run_sync(lambda c: Flags.__table__.create(c))
    async_session.add(Flags(id=1, bits=np.array([True] * 8)))
    await async_session.flush()
    hits = await asearch(async_session, Flags.bits, [1] * 8, k=1)
    assert hits[0].row.id == 1
    assert hits[0].distance == 0


def test_search_reuses_its_statement(docs: Session, statements: list[str]) -> None:
    """search() builds its SELECT once per (column, k, ...) and sends the LIMIT as a literal,
    so the driver's prepared statement can use a generic plan."""
    from vecalchemy.query._nearest import plan_template

    first = plan_template(Doc.embedding, 7)
    assert plan_template(Doc.embedding, 7) is first
    assert plan_template(Doc.embedding, 8) is not first
    assert plan_template(Doc.embedding, 7, load_embedding=True) is not first
    statements.clear()
    a = search(docs, Doc.embedding, VECS[1], k=7)
    b = search(docs, Doc.embedding, VECS[2], k=7)
    assert a[0].row.id == 1
    assert b[0].row.id == 2
    selects = [s for s in statements if "ORDER BY" in s]
    assert len(selects) == 2
    assert selects[0] == selects[1]
    assert selects[0].rstrip().endswith("LIMIT 7")


def test_ivfflat_probes_follow_a_rebuilt_index(
    session: Session, observed: list[dict[str, str | None]]
) -> None:
    """An IVFFlat(lists=None) column's probes come from the index as it is now: rebuilt
    with other lists (here in the same transaction), the next search uses the new ones.
    Nothing is cached in the process, so nothing stale survives a rollback either."""

    class B(DeclarativeBase):
        pass

    class Auto(B):
        __tablename__ = "auto_ivf_rebuilt"
        id: Mapped[int] = mapped_column(primary_key=True)
        embedding = Embedding(4, metric="l2", index=IVFFlat())

    conn = session.connection()
    B.metadata.create_all(conn)
    vecs = rng.normal(size=(16000, 4)).astype(np.float32)
    conn.execute(insert(Auto), [{"id": i, "embedding": v} for i, v in enumerate(vecs[:4000])])
    vecalchemy.build_indexes(conn, Auto)
    assert search(session, Auto.embedding, vecs[1], k=1)[0].row.id == 1
    assert observed[-1]["ivfflat.probes"] == "2"  # sqrt(4 lists)
    conn.execute(insert(Auto), [{"id": i, "embedding": v} for i, v in enumerate(vecs) if i >= 4000])
    vecalchemy.drop_indexes(conn, Auto)
    vecalchemy.build_indexes(conn, Auto)  # 16 lists now
    assert search(session, Auto.embedding, vecs[2], k=1)[0].row.id == 2
    assert observed[-1]["ivfflat.probes"] == "4"  # sqrt(16 lists)
