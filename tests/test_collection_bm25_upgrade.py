"""Collection.open(name, text_ranking="bm25").upgrade(): a tsvector collection switches to
BM25 in one transaction, and then ranks exactly as one created with BM25."""

from __future__ import annotations

import random
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

import vecalchemy.collection._table as table_module
from tests.bm25_writer_proc import random_text
from tests.test_bm25 import ANALYZER, reference_scores, scratch_statistics, stored_statistics
from vecalchemy import Collection
from vecalchemy.errors import ConfigurationError


def _texts(seed: int, n: int) -> dict[str, str]:
    rng = random.Random(seed)
    return {f"d{i:03d}": random_text(rng) for i in range(n)}


def _tsvector_collection(engine: Engine, name: str, texts: dict[str, str]) -> Collection:
    docs = Collection(name, embedder="hashing", engine=engine, splitter="none")
    docs.add(
        list(texts.values()), ids=list(texts), metadata=[{"n": i % 2} for i in range(len(texts))]
    )
    return docs


def _side_tables(engine: Engine, name: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text("SELECT relname FROM pg_class WHERE relname LIKE :p ORDER BY relname"),
                {"p": f"{name}_terms_bm25%"},
            ).scalars()
        )


def _columns(engine: Engine, name: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:t) "
                    "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
                ),
                {"t": name},
            ).scalars()
        )


def test_upgrade_switches_a_tsvector_collection_to_bm25(
    module_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stored chunks get their terms (in several batches), the statistics equal a
    from-scratch computation, mode="text" and "hybrid" rank by BM25 exactly as a
    collection created with BM25, open() keeps BM25, and later writes stay counted."""
    monkeypatch.setattr(table_module, "_BM25_BATCH", 7)  # several pages of the fill
    texts = _texts(3, 30)
    old = _tsvector_collection(module_db, "up_bm25", texts)
    with pytest.raises(ConfigurationError, match=r"text_ranking='bm25'\)\.upgrade\(\)"):
        Collection.open("up_bm25", engine=module_db, text_ranking="bm25").search("x", mode="text")
    assert old.search("wal", k=3, mode="text")  # still tsvector, still works

    upgraded = Collection.open("up_bm25", engine=module_db, text_ranking="bm25")
    assert upgraded.upgrade() is True
    assert upgraded.upgrade() is False
    reopened = Collection.open("up_bm25", engine=module_db)
    assert reopened.text_ranking == "bm25"
    with module_db.connect() as conn:
        assert stored_statistics(conn, reopened.table.c.terms) == scratch_statistics(
            list(texts.values())
        )

    scratch = Collection(
        "scratch_bm25", embedder="hashing", engine=module_db, splitter="none", text_ranking="bm25"
    )
    scratch.add(list(texts.values()), ids=list(texts), metadata=[{"n": i % 2} for i in range(30)])
    query = "wal checkpoint lock vacuum"
    hits = reopened.search(query, k=50, mode="text")
    expected = reference_scores(dict(enumerate(texts.values())), query)
    by_id = {doc_id: expected.get(n) for n, doc_id in enumerate(texts)}
    assert hits
    assert len(hits) == len([s for s in by_id.values() if s is not None])
    assert all(h.similarity == pytest.approx(by_id[h.id], rel=1e-12) for h in hits)
    assert [(h.id, h.similarity) for h in hits] == [
        (h.id, h.similarity) for h in scratch.search(query, k=50, mode="text")
    ]
    assert [(h.id, h.similarity) for h in reopened.search(query, k=8, mode="hybrid")] == [
        (h.id, h.similarity) for h in scratch.search(query, k=8, mode="hybrid")
    ]

    # Later writes keep the statistics exact (the triggers are installed).
    texts["d001"] = "wal wal checkpoint"
    reopened.upsert([texts["d001"]], ids=["d001"])
    reopened.add(["a brand new vacuum text"], ids=["new"])
    texts["new"] = "a brand new vacuum text"
    reopened.delete(["d002"])
    del texts["d002"]
    with module_db.connect() as conn:
        assert stored_statistics(conn, reopened.table.c.terms) == scratch_statistics(
            list(texts.values())
        )
        terms = dict(conn.execute(sa.text('SELECT id, terms FROM "up_bm25" WHERE chunk = 0')).all())
    assert terms["d001"] == ANALYZER.document("wal wal checkpoint")
    assert all(v is not None for v in terms.values())
    reopened.drop()
    scratch.drop()
    assert _side_tables(module_db, "up_bm25") == []


def test_a_failed_upgrade_leaves_the_tsvector_collection_as_it_was(
    module_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error after the column was added and filled (here: installing the postings)
    rolls everything back: no terms column, no side tables, the comment still says
    tsvector, and the collection searches as before."""
    texts = _texts(5, 12)
    old = _tsvector_collection(module_db, "up_fail", texts)
    before = [(h.id, h.similarity) for h in old.search("wal vacuum", k=5, mode="text")]
    columns = _columns(module_db, "up_fail")

    def broken(conn: sa.Connection, column: Any) -> None:
        raise RuntimeError("disk full while installing the postings")

    monkeypatch.setattr(table_module, "install_bm25", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        Collection.open("up_fail", engine=module_db, text_ranking="bm25").upgrade()
    assert _columns(module_db, "up_fail") == columns
    assert "terms" not in columns
    assert _side_tables(module_db, "up_fail") == []
    assert Collection.open("up_fail", engine=module_db).text_ranking == "tsvector"
    assert [(h.id, h.similarity) for h in old.search("wal vacuum", k=5, mode="text")] == before
    old.drop()


def test_a_bm25_collection_cannot_go_back_to_tsvector(module_db: Engine) -> None:
    """Opening a BM25 collection as tsvector and upgrading is refused; nothing changes."""
    docs = Collection(
        "up_back", embedder="hashing", engine=module_db, splitter="none", text_ranking="bm25"
    )
    docs.add(["wal checkpoint"], ids=["a"])
    with pytest.raises(ConfigurationError, match="ranks its text with 'bm25', not 'tsvector'"):
        Collection("up_back", embedder="hashing", engine=module_db, splitter="none").upgrade()
    assert Collection.open("up_back", engine=module_db).text_ranking == "bm25"
    assert [h.id for h in docs.search("wal", mode="text")] == ["a"]
    docs.drop()
