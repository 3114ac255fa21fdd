"""Collection.add's fast write path: metadata round-trips exactly, bad metadata is refused
before anything is written, and texts that need no split skip the splitter."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

import vecalchemy
from vecalchemy.chunking import WholeTextSplitter
from vecalchemy.collection import Collection
from vecalchemy.collection._writes import BUCKETS, lock_documents
from vecalchemy.embedders import HashingEmbedder


@pytest.fixture
def coll(engine: sa.Engine) -> Iterator[Collection]:
    """A fresh collection, one chunk per document (splitter "none"), dropped afterwards."""
    c = Collection(
        f"copy_{uuid.uuid4().hex[:8]}", embedder=HashingEmbedder(32), engine=engine, splitter="none"
    )
    yield c
    c.drop()


def _count(engine: sa.Engine, name: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar_one())


METADATA: list[dict[str, Any] | None] = [
    {"lang": "fr", "title": "Les élèves ont été très émus", "emoji": "🐘🚀", "cjk": "中文"},
    {"nested": {"deep": {"list": [1, [2, [3]], {"x": None}]}}, "tags": ["a", "b"]},
    {"none": None, "true": True, "false": False},
    {"big": 2**70, "negative": -(2**63) - 1, "zero": 0},
    # (jsonb prints integral numbers without an exponent: 1e300 would read back as an int)
    {"float": 0.1, "tiny": 2.5e-300, "negative": -12345.678, "third": 1 / 3},
    {},
    None,
    {"backslash": "a\\u0000b is text, not a NUL", "quote": 'say "hi"', "tab": "a\tb"},
    {"é": 1, "key with spaces": "v"},
]


def test_metadata_round_trips(coll: Collection) -> None:
    """Unicode, nested values, None, big integers, floats and empty metadata read back
    exactly as given (None as {}), through get() and search()."""
    texts = [f"document number {i}" for i in range(len(METADATA))]
    ids = [f"d{i}" for i in range(len(METADATA))]
    coll.add(texts, metadata=METADATA, ids=ids)
    got = {r.id: r.metadata for r in coll.get(ids)}
    assert got == {i: m or {} for i, m in zip(ids, METADATA, strict=True)}
    assert got["d3"]["big"] == 2**70
    assert isinstance(got["d3"]["big"], int)
    hit = coll.search("document number 1", k=1, where={"nested.deep.list": {"$exists": True}})
    assert [h.metadata for h in hit] == [METADATA[1]]


def test_chunks_of_a_document_share_its_metadata(engine: sa.Engine) -> None:
    """Every chunk of a split document carries the document's metadata."""
    c = Collection(
        f"copy_{uuid.uuid4().hex[:8]}",
        embedder=HashingEmbedder(32),
        engine=engine,
        splitter="chars:40:0",
    )
    try:
        text = " ".join(f"sentence {i} is here." for i in range(20))
        result = c.add([text, "short one"], metadata=[{"k": "ü", "n": [1]}, None], ids=["a", "b"])
        assert result.chunks > 3
        records = c.get(["a", "b"])
        assert {r.id for r in records} == {"a", "b"}
        assert all(r.metadata == {"k": "ü", "n": [1]} for r in records if r.id == "a")
        assert [r.metadata for r in records if r.id == "b"] == [{}]
    finally:
        c.drop()


BAD_METADATA = [
    ({"score": math.nan}, "cannot be stored as JSON"),
    ({"score": -math.inf}, "cannot be stored as JSON"),
    ({"tags": {"a", "b"}}, "cannot be stored as JSON"),
    ({"when": dt.date(2024, 1, 1)}, "cannot be stored as JSON"),
    ({"name": "a\x00b"}, "NUL character"),
    ({"a\x00b": 1}, "NUL character"),
    ({"deep": [{"x": ["ok", "bad\x00"]}]}, "NUL character"),
    ({"name": "lone \ud800 surrogate"}, "lone surrogate"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_METADATA)
def test_bad_metadata_is_refused_and_nothing_written(
    coll: Collection, engine: sa.Engine, bad: dict[str, Any], message: str
) -> None:
    """Metadata jsonb cannot hold is refused before any SQL, naming the document."""
    coll.create()
    with pytest.raises(vecalchemy.InvalidRows, match=f"metadata of document 2 .*{message}"):
        coll.add(["one", "two", "three"], metadata=[{"ok": 1}, None, bad], ids=["a", "b", "c"])
    assert _count(engine, coll.name) == 0


def test_texts_that_need_no_split_are_stored_like_the_splitter_would(coll: Collection) -> None:
    """With splitter "none", texts with and without surrounding whitespace are stored
    exactly as WholeTextSplitter splits them (trimmed, with offsets into the text)."""
    texts = ["plain text", "  leading", "trailing \n", "\u3000ideographic space\u3000", "x"]
    ids = [f"t{i}" for i in range(len(texts))]
    coll.add(texts, ids=ids)
    records = {r.id: r for r in coll.get(ids)}
    for doc_id, text in zip(ids, texts, strict=True):
        (expected,) = WholeTextSplitter().split(text)
        record = records[doc_id]
        assert (record.chunk, record.text, record.start, record.end) == (
            expected.index,
            expected.text,
            expected.start,
            expected.end,
        )


def test_a_big_add_then_an_add_into_the_filled_table(coll: Collection, engine: sa.Engine) -> None:
    """A load of more rows than one COPY batch lands whole; a later add into the now
    non-empty table still refuses an id it holds, and writes nothing."""
    n = 10_500  # two batches of the COPY
    ids = [f"id{i}" for i in range(n)]
    result = coll.add(
        [f"text {i}" for i in range(n)], ids=ids, metadata=[{"i": i} for i in range(n)]
    )
    assert result.chunks == n
    assert _count(engine, coll.name) == n
    assert [r.metadata for r in coll.get(["id10499", "id0"])] == [{"i": 0}, {"i": 10499}]
    with pytest.raises(vecalchemy.InvalidRows, match="'id7' is already in collection"):
        coll.add(["new", "again"], ids=["fresh", "id7"])
    assert _count(engine, coll.name) == n


def test_a_big_write_takes_every_lock_bucket(engine: sa.Engine) -> None:
    """Ids enough to cover every bucket take all BUCKETS locks (the hashing stops early)."""
    with engine.begin() as conn:
        lock_documents(conn, "copy_locks", [f"doc-{i}" for i in range(5_000)])
        held = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid()"
            )
        ).scalar_one()
    assert held == BUCKETS
