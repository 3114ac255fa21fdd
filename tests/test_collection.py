"""Collection: add / upsert / delete / get / search against the real database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import sqlalchemy as sa

import vecalchemy
from vecalchemy.collection import Collection
from vecalchemy.embedders import HashingEmbedder

TEXTS = [
    "PostgreSQL is a relational database with many extensions.",
    "pgvector adds vector similarity search to PostgreSQL.",
    "The cat sleeps on the sofa all afternoon.",
    "Dogs enjoy long walks in the park.",
]
META = [
    {"lang": "en", "topic": "db", "year": 2021},
    {"lang": "en", "topic": "db", "year": 2024},
    {"lang": "en", "topic": "pets", "year": 2019},
    {"lang": "de", "topic": "pets", "year": 2023},
]


@pytest.fixture
def coll(engine: sa.Engine) -> Iterator[Collection]:
    """A fresh collection (hashing embedder, small chunks), dropped afterwards."""
    name = f"coll_{uuid.uuid4().hex[:8]}"
    c = Collection(name, embedder=HashingEmbedder(64), engine=engine, splitter="chars:120:20")
    yield c
    c.drop()


def _count(engine: sa.Engine, name: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar_one())


def test_add_and_search(coll: Collection) -> None:
    """Added documents are found; hits carry id, text, metadata, offsets and scores."""
    result = coll.add(TEXTS, metadata=META, ids=["pg", "pgvector", "cat", "dog"])
    assert result.ids == ["pg", "pgvector", "cat", "dog"]
    assert result.documents == 4
    assert result.chunks == 4
    hits = coll.search("vector similarity search in postgres", k=2)
    assert hits[0].id == "pgvector"
    assert hits[0].metadata == META[1]
    assert hits[0].text == TEXTS[1][hits[0].start : hits[0].end]
    assert hits[0].similarity == pytest.approx(1 - hits[0].distance)
    assert coll.count() == 4


def test_search_filters(coll: Collection) -> None:
    """where= uses the filter language on metadata."""
    coll.add(TEXTS, metadata=META, ids=["pg", "pgvector", "cat", "dog"])
    hits = coll.search("animals", k=4, where={"topic": "pets", "year": {"$gte": 2020}})
    assert [h.id for h in hits] == ["dog"]
    hits = coll.search("database", k=4, where={"$or": [{"lang": "de"}, {"year": {"$lt": 2020}}]})
    assert {h.id for h in hits} == {"cat", "dog"}
    with pytest.raises(vecalchemy.FilterError):
        coll.search("x", where={"lang": {"$regex": "e"}})


def test_search_by_vector_and_threshold(coll: Collection) -> None:
    """A vector query works; min_similarity drops far hits."""
    coll.add(TEXTS, ids=["a", "b", "c", "d"])
    vec = coll.embedder.embed_query(TEXTS[2])
    hits = coll.search(vec, k=4, min_similarity=0.99)
    assert [h.id for h in hits] == ["c"]


def test_long_documents_are_chunked_with_offsets(coll: Collection) -> None:
    """A long document becomes several chunks whose offsets point into its text."""
    long = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(60))
    result = coll.add([long], ids=["long"])
    assert result.chunks > 5
    records = coll.get(["long"])
    assert [r.chunk for r in records] == list(range(result.chunks))
    for r in records:
        assert long[r.start : r.end] == r.text
        assert len(r.text) <= 120
    hits = coll.search("Sentence number 42 talks", k=1)
    assert hits[0].id == "long"
    assert "42" in hits[0].text


def test_upsert_reembeds_only_changed_documents(coll: Collection) -> None:
    """Upsert replaces changed documents, keeps unchanged ones (metadata updated)."""
    coll.add(TEXTS[:2], metadata=META[:2], ids=["a", "b"])
    result = coll.upsert([TEXTS[0], TEXTS[2]], metadata=[{"lang": "fr"}, None], ids=["a", "b"])
    assert result.skipped == 1
    assert result.documents == 1
    a = coll.get(["a"])
    assert a[0].metadata == {"lang": "fr"}
    b = coll.get(["b"])
    assert b[0].text == TEXTS[2]
    assert coll.search(TEXTS[2], k=1)[0].id == "b"


def test_add_existing_id_is_refused_and_nothing_written(
    coll: Collection, engine: sa.Engine
) -> None:
    """add() with an id already stored raises and writes nothing."""
    coll.add(TEXTS[:1], ids=["a"])
    with pytest.raises(vecalchemy.InvalidRows, match="already in collection"):
        coll.add(TEXTS[1:3], ids=["new", "a"])
    assert _count(engine, coll.name) == 1


BAD_ADDS = [
    ({"texts": "one string"}, vecalchemy.InvalidArgument, "not one string"),
    ({"texts": ["a", "b"], "ids": ["x"]}, vecalchemy.InvalidRows, "give one of each"),
    ({"texts": ["a", "b"], "ids": ["x", "x"]}, vecalchemy.InvalidRows, "given twice"),
    ({"texts": ["ok", "  "]}, vecalchemy.InvalidRows, "document 1 .* has no text"),
    ({"texts": ["a\x00b"]}, vecalchemy.InvalidRows, "NUL"),
    ({"texts": ["a"], "metadata": ["x"]}, vecalchemy.InvalidRows, "must be a dict"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_ADDS)
def test_bad_adds_write_nothing(
    coll: Collection,
    engine: sa.Engine,
    kwargs: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    """Bad input to add() is refused with a clear message and nothing is written."""
    coll.create()
    with pytest.raises(error, match=message):
        coll.add(**kwargs)  # type: ignore[arg-type]
    assert _count(engine, coll.name) == 0


def test_upsert_needs_ids(coll: Collection) -> None:
    """upsert() without ids is refused."""
    with pytest.raises(vecalchemy.InvalidArgument, match="needs ids="):
        coll.upsert(["x"])


def test_delete_by_id_and_filter(coll: Collection) -> None:
    """delete() by ids and by metadata filter; a bare delete() is refused."""
    coll.add(TEXTS, metadata=META, ids=["pg", "pgvector", "cat", "dog"])
    assert coll.delete(["pg"]) == 1
    assert coll.delete(where={"topic": "pets"}) == 2
    assert coll.count() == 1
    with pytest.raises(vecalchemy.InvalidArgument, match="needs ids= or where="):
        coll.delete()


def test_mixing_embedders_is_refused(coll: Collection, engine: sa.Engine) -> None:
    """Writing with another embedder of the same dimension is refused: vectors would not compare."""
    coll.add(TEXTS[:1], ids=["a"])
    other = Collection(coll.name, embedder=HashingEmbedder(64, seed=1), engine=engine)
    with pytest.raises(vecalchemy.EmbedderError, match="vectors of two models cannot be compared"):
        other.add(TEXTS[1:2], ids=["b"])
    assert _count(engine, coll.name) == 1
    wrong_dim = Collection(coll.name, embedder=HashingEmbedder(32), engine=engine)
    with pytest.raises(vecalchemy.ConfigurationError, match="stores 64-dimension vectors"):
        wrong_dim.search("x")


def test_open_restores_the_configuration(engine: sa.Engine) -> None:
    """open() rebuilds a collection with the embedder spec it was created with."""
    name = f"coll_{uuid.uuid4().hex[:8]}"
    made = Collection(name, embedder="hashing", engine=engine, metric="cosine")
    try:
        made.add(TEXTS, ids=["a", "b", "c", "d"])
        opened = Collection.open(name, engine=engine)
        assert opened.embedder.name == made.embedder.name
        assert opened.search(TEXTS[3], k=1)[0].id == "d"
        with pytest.raises(vecalchemy.ConfigurationError, match="no collection"):
            Collection.open(f"{name}_missing", engine=engine)
    finally:
        made.drop()


def test_bad_names_are_refused(engine: sa.Engine) -> None:
    """Collection names are checked before any SQL: they become table names."""
    for bad in ["Docs", "1abc", 'x"; drop table y; --', "", "a" * 64]:
        with pytest.raises(vecalchemy.InvalidArgument, match="collection name"):
            Collection(bad, embedder="hashing", engine=engine)


def test_search_uses_the_hnsw_index(coll: Collection, engine: sa.Engine) -> None:
    """The collection's search is the indexable shape on its HNSW index."""
    coll.add(TEXTS, metadata=META, ids=["a", "b", "c", "d"])
    q = np.asarray(coll.embedder.embed_query("database"))
    with engine.connect() as conn:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        stmt = vecalchemy.nearest(coll.table.c.embedding, q, k=3)
        assert vecalchemy.index_used(conn, stmt) == f"ix_{coll.name}_embedding_hnsw"


@pytest.mark.slow
def test_searches_keep_their_prepared_statements(server_url: sa.URL) -> None:
    """Repeated searches through one pooled connection end their transactions without
    dropping psycopg's prepared statements (its rollback would): the server plans the
    search once, then reuses it, as raw psycopg does. The hits stay right."""
    engine = vecalchemy.create_engine(server_url, pool_size=1, max_overflow=0)
    name = f"coll_{uuid.uuid4().hex[:8]}"
    c = Collection(name, embedder=HashingEmbedder(64), engine=engine, splitter="none")
    try:
        c.add(TEXTS, ids=["pg", "vec", "cat", "dog"])
        q = c.embedder.embed_query("vector similarity search")
        for _ in range(8):
            assert c.search(q, k=2)[0].id == "vec"
        with engine.connect() as conn:
            prepared = (
                conn.execute(
                    sa.text(
                        "SELECT generic_plans + custom_plans FROM pg_prepared_statements "
                        "WHERE statement LIKE :pattern"
                    ),
                    {"pattern": f"%FROM {name}%ORDER BY distance%"},
                )
                .scalars()
                .all()
            )
        assert prepared, "the search statement was not kept prepared"
        assert max(prepared) >= 3  # executed from the prepared statement, not re-planned
    finally:
        c.drop()
        engine.dispose()


def test_add_more_ids_than_postgres_parameters(coll: Collection) -> None:
    """70,000 documents in one add(): ids travel as one array, not 70,000 parameters."""
    n = 70_000
    texts = [f"note {i}" for i in range(n)]
    result = coll.add(texts, ids=[str(i) for i in range(n)])
    assert result.chunks == n
    assert coll.count() == n
    assert [r.id for r in coll.get(["5", "69999"])] == ["5", "69999"]
    assert coll.search("note 69999", k=1)[0].id == "69999"  # the index was rebuilt after
    assert coll.delete([str(i) for i in range(0, n, 2)]) == n // 2


def test_progress_reports(coll: Collection, capsys: pytest.CaptureFixture[str]) -> None:
    """progress= takes a callback (stages reported up to their totals) or True (a bar)."""
    seen: list[tuple[str, int, int]] = []
    coll.add(TEXTS, ids=["a", "b", "c", "d"], progress=lambda *a: seen.append(a))
    assert ("embedding", 4, 4) in seen
    assert ("loading", 4, 4) in seen
    coll.upsert(["another text"], ids=["e"], progress=True)
    assert "rows/s" in capsys.readouterr().err


def _storage(engine: sa.Engine, name: str) -> str | None:
    """The storage (attstorage) of a collection's embedding column."""
    with engine.connect() as conn:
        found = conn.execute(
            sa.text(
                "SELECT attstorage FROM pg_attribute WHERE attrelid = to_regclass(:t) "
                "AND attname = 'embedding'"
            ),
            {"t": name},
        ).scalar()
    return None if found is None else str(found)


def test_vectors_stay_in_the_row(engine: sa.Engine) -> None:
    """A collection's vectors are STORAGE MAIN. With pgvector's default (EXTERNAL) a
    chunk of 30 words with its tsvector and BM25 terms already pushes the row past
    TOAST's 2 KB, and the vector, the widest value, went out of line, so every exact
    scan read it from the TOAST table. Now the vectors stay in the rows (the text goes
    out of line first when a chunk is long), and doctor finds nothing."""
    name = f"stor_{uuid.uuid4().hex[:8]}"
    coll = Collection(name, embedder="hashing", engine=engine, splitter="none", text_ranking="bm25")
    texts = [" ".join(f"w{i}x{(i * 7919 + n) % 1000}" for i in range(n)) for n in (30, 100, 600)]
    coll.add(texts, ids=["short", "medium", "long"])
    try:
        storage = _storage(engine, name)
        with engine.connect() as conn:
            out_of_line = conn.execute(
                sa.text(
                    f'SELECT id FROM "{name}" WHERE pg_column_toast_chunk_id(embedding) IS NOT NULL'
                )
            ).all()
            conn.exec_driver_sql(f'ANALYZE "{name}"')
            conn.commit()
        assert storage == "m"
        assert out_of_line == []
        assert [f.code for f in vecalchemy.doctor(engine, table=name) if f.code == "VA203"] == []
    finally:
        coll.drop()


def test_upgrade_keeps_the_vectors_of_an_older_collection_in_the_row(engine: sa.Engine) -> None:
    """A collection made before STORAGE MAIN (its vectors EXTERNAL, pgvector's default)
    is given MAIN by upgrade(), once; its rows and search are unchanged."""
    name = f"stor_{uuid.uuid4().hex[:8]}"
    coll = Collection(name, embedder="hashing", engine=engine, splitter="none")
    coll.add(["alpha beta gamma", "delta epsilon"], ids=["a", "b"])
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f'ALTER TABLE "{name}" ALTER COLUMN embedding SET STORAGE EXTERNAL'
            )
        before = [(h.id, h.distance) for h in coll.search("alpha", k=2)]
        assert Collection.open(name, engine=engine).upgrade() is True
        assert _storage(engine, name) == "m"
        assert Collection.open(name, engine=engine).upgrade() is False
        assert [(h.id, h.distance) for h in coll.search("alpha", k=2)] == before
        assert coll.count() == 2
    finally:
        coll.drop()
