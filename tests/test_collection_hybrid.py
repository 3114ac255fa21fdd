"""Collection.search(mode="hybrid"): full-text + vector over a collection's chunks.

The collection table gets a generated ``tsv`` column (GIN index) in the collection's
language; tables made before it existed get the column when opened.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import event

import vecalchemy
from tests.conftest import explain
from vecalchemy.collection import Collection
from vecalchemy.load import load
from vecalchemy.query.fusion import RRF, Weighted, hybrid_query

TEXTS = [
    "Restarting the server fixes error QX-7781 after an upgrade.",
    "How to restart a PostgreSQL server after a failed upgrade.",
    "Bread rises best in a warm kitchen.",
    "Tomatoes need water every morning in summer.",
    "The violin was tuned before the concert.",
    "Mountain rivers are cold even in August.",
]
IDS = ["code", "restart", "bread", "tomato", "violin", "river"]
META = [{"lang": "en"}, {"lang": "en"}, {"lang": "en"}, {"lang": "de"}, {"lang": "en"}, {}]


@pytest.fixture
def coll(engine: sa.Engine) -> Iterator[Collection]:
    """A collection on the hashing embedder, dropped afterwards."""
    name = f"collhy_{uuid.uuid4().hex[:8]}"
    c = Collection(name, embedder="hashing", engine=engine)
    yield c
    c.drop()


def _scalar(engine: sa.Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def test_table_has_a_fulltext_column(coll: Collection, engine: sa.Engine) -> None:
    """New collections get tsv GENERATED from the text, a GIN index, and record the language."""
    coll.create()
    expr = _scalar(
        engine,
        "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d JOIN pg_attribute a "
        "ON a.attrelid = d.adrelid AND a.attnum = d.adnum "
        "WHERE d.adrelid = to_regclass(:t) AND a.attname = 'tsv'",
        t=coll.name,
    )
    assert "to_tsvector('english'::regconfig" in expr
    assert _scalar(engine, "SELECT to_regclass(:i)", i=f"ix_{coll.name}_tsv_gin") is not None
    comment = _scalar(engine, "SELECT obj_description(to_regclass(:t), 'pg_class')", t=coll.name)
    assert json.loads(comment)["vecalchemy"]["language"] == "english"
    assert Collection.open(coll.name, engine=engine).language == "english"


def test_hybrid_finds_the_rare_code(coll: Collection) -> None:
    """A chunk holding a rare code is first in hybrid mode; hits carry the fused score."""
    coll.add(TEXTS, metadata=META, ids=IDS)
    hits = coll.search("QX-7781", k=3, mode="hybrid")
    assert hits[0].id == "code"
    assert "QX-7781" in hits[0].text
    scores = [h.similarity for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert hits[0].similarity == pytest.approx(2 / 61)  # first in both legs (RRF, k=60)
    # distance is still the vector distance of the chunk to the query's embedding.
    vec = coll.search("QX-7781", k=6)
    by_id = {h.id: h.distance for h in vec}
    for h in hits:
        assert h.distance == pytest.approx(by_id[h.id], abs=1e-6)


def test_hybrid_same_hit_type_and_filters(coll: Collection) -> None:
    """Hybrid returns CollectionHit like vector mode; where= filters both legs."""
    coll.add(TEXTS, metadata=META, ids=IDS)
    hits = coll.search("restart server upgrade", k=6, mode="hybrid", where={"lang": "en"})
    assert all(isinstance(h, vecalchemy.CollectionHit) for h in hits)
    assert all(h.metadata == {"lang": "en"} for h in hits)
    assert {h.id for h in hits} == {"code", "restart", "bread", "violin"}
    assert {h.id for h in hits[:2]} == {"code", "restart"}
    for h in hits:
        assert h.text == TEXTS[IDS.index(h.id)][h.start : h.end]


def test_hybrid_weighted_fusion(coll: Collection) -> None:
    """fusion=Weighted(...) scores lie in [0, 1]; the best match of both legs scores 1."""
    coll.add(TEXTS, metadata=META, ids=IDS)
    hits = coll.search("QX-7781", k=4, mode="hybrid", fusion=Weighted([0.5, 0.5]))
    assert hits[0].id == "code"
    assert hits[0].similarity == pytest.approx(1.0)
    assert all(0.0 <= h.similarity <= 1.0 for h in hits)
    rrf = coll.search("QX-7781", k=4, mode="hybrid", fusion=RRF(k=1), candidates=10)
    assert rrf[0].similarity == pytest.approx(1.0)  # 1/(1+1) + 1/(1+1)


def test_hybrid_statement_uses_both_indexes(coll: Collection, engine: sa.Engine) -> None:
    """The collection's hybrid statement scans the HNSW and the GIN index."""
    coll.add(TEXTS, metadata=META, ids=IDS)
    t = coll.table
    q = np.asarray(coll.embedder.embed_query("restart"))
    stmt = hybrid_query(t.c.embedding, t.c.tsv, "restart", q, k=3)
    with engine.connect() as conn:
        plan = explain(conn, stmt)
    assert f"Index Scan using ix_{coll.name}_embedding_hnsw" in plan
    assert f"Bitmap Index Scan on ix_{coll.name}_tsv_gin" in plan


@pytest.fixture
def statements(engine: sa.Engine) -> Iterator[list[str]]:
    """Every SQL statement sent through the engine during the test."""
    sent: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", capture)
    yield sent
    event.remove(engine, "before_cursor_execute", capture)


BAD = [
    ({"mode": "keyword"}, "unknown search mode 'keyword'; use one of: vector, hybrid"),
    ({"mode": "hybrid", "query": [0.1] * 384}, "needs the query text"),
    ({"mode": "hybrid", "query": "  "}, "query text is empty"),
    ({"mode": "hybrid", "min_similarity": 0.5}, "min_similarity apply to mode='vector'"),
    ({"mode": "hybrid", "ef_search": 100, "probes": 3}, "ef_search, probes apply"),
    ({"mode": "hybrid", "candidates": 5000}, "candidates=5000 is above 1,000"),
    ({"mode": "hybrid", "k": 0}, "k must be a positive integer"),
    ({"fusion": RRF()}, "apply to mode='hybrid' only"),
    ({"candidates": 50}, "apply to mode='hybrid' only"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD)
def test_bad_searches_fail_before_sql(
    engine: sa.Engine, statements: list[str], kwargs: dict[str, Any], message: str
) -> None:
    """Unknown modes and arguments that do not apply raise InvalidSearch before any SQL."""
    c = Collection(f"collhy_{uuid.uuid4().hex[:8]}", embedder="hashing", engine=engine)
    args = {"query": "restart", "k": 3, **kwargs}
    with pytest.raises(vecalchemy.InvalidSearch, match=message):
        c.search(**args)
    assert statements == []


def test_bad_language_is_refused(engine: sa.Engine) -> None:
    """The language becomes DDL, so it is checked when the collection is made."""
    with pytest.raises(vecalchemy.InvalidArgument, match="lower-case letters"):
        Collection("collhy_bad", embedder="hashing", engine=engine, language="English")


def test_language_is_restored_and_mismatch_refused(engine: sa.Engine) -> None:
    """open() restores the language; opening with another one is refused, not mixed."""
    name = f"collhy_{uuid.uuid4().hex[:8]}"
    made = Collection(name, embedder="hashing", engine=engine, language="simple")
    try:
        made.add(["The servers were restarted"], ids=["a"])
        opened = Collection.open(name, engine=engine)
        assert opened.language == "simple"
        # 'simple' does not stem: 'servers' does not match 'server'.
        assert opened.search("server", k=1, mode="hybrid")[0].similarity == pytest.approx(1 / 61)
        assert opened.search("servers", k=1, mode="hybrid")[0].similarity == pytest.approx(2 / 61)
        wrong = Collection.open(name, engine=engine, language="english")
        with pytest.raises(vecalchemy.ConfigurationError, match="language='simple'"):
            wrong.search("servers", k=1, mode="hybrid")
    finally:
        made.drop()


def _old_style_table(name: str) -> sa.Table:
    """A collection table as created before hybrid search: no tsv column."""
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("chunk", sa.Integer, primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("start", sa.Integer, nullable=False),
        sa.Column("end", sa.Integer, nullable=False),
        sa.Column(
            "metadata",
            sa.dialects.postgresql.JSONB,
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
        sa.Column("content_hash", sa.Text, nullable=False),
        sa.Column("embedder", sa.Text, nullable=False),
        vecalchemy.embedding_column("embedding", 384, nullable=False),
    )


def test_old_table_is_upgraded_explicitly(engine: sa.Engine) -> None:
    """A table made without tsv (and without a language in its comment) keeps working for
    vector search, with no DDL on that read path; hybrid search says to upgrade(), and
    after upgrade() (which adds the generated column and its GIN index) it works."""
    name = f"collhy_{uuid.uuid4().hex[:8]}"
    table = _old_style_table(name)
    embedder = vecalchemy.get_embedder("hashing")
    try:
        with engine.begin() as conn:
            table.create(conn)
            config = {"embedder": "hashing", "metric": "cosine", "splitter": "markdown"}
            comment = json.dumps({"vecalchemy": config})
            conn.exec_driver_sql(f"COMMENT ON TABLE \"{name}\" IS '{comment}'")
            load(
                conn,
                table,
                {
                    "id": IDS,
                    "chunk": [0] * len(IDS),
                    "text": TEXTS,
                    "start": [0] * len(IDS),
                    "end": [len(t) for t in TEXTS],
                    "metadata": META,
                    "content_hash": ["x"] * len(IDS),
                    "embedder": [embedder.name] * len(IDS),
                    "embedding": embedder.embed_documents(TEXTS),
                },
            )
        has_tsv = (
            "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass(:t) AND attname = 'tsv'"
        )
        assert _scalar(engine, has_tsv, t=name) == 0
        old = Collection.open(name, engine=engine)
        assert old.search("restart", k=1)[0].id == "restart"  # vector mode, as before
        assert _scalar(engine, has_tsv, t=name) == 0  # a read path changes nothing
        with pytest.raises(vecalchemy.ConfigurationError, match=r"upgrade\(\)"):
            old.search("QX-7781", k=2, mode="hybrid")
        assert old.upgrade() is True
        assert _scalar(engine, has_tsv, t=name) == 1
        assert _scalar(engine, "SELECT to_regclass(:i)", i=f"ix_{name}_tsv_gin") is not None
        hits = old.search("QX-7781", k=2, mode="hybrid")
        assert hits[0].id == "code"
        comment = _scalar(engine, "SELECT obj_description(to_regclass(:t), 'pg_class')", t=name)
        assert json.loads(comment)["vecalchemy"] == {**config, "language": "english"}
        again = Collection.open(name, engine=engine)
        assert again.upgrade() is False  # nothing left to add
        assert again.search("QX-7781", k=1, mode="hybrid")[0].id == "code"
        again.add(["Another note on QX-7781."], ids=["note"])
        assert {h.id for h in again.search("QX-7781", k=2, mode="hybrid")} == {"code", "note"}
    finally:
        with engine.begin() as conn:
            table.drop(conn, checkfirst=True)
