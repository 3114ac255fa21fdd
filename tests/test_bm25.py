"""BM25 inside PostgreSQL: the analyser, the statistics triggers, and the scores."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import bm25s
import pytest
import sqlalchemy as sa
import Stemmer
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from tests.bm25_writer_proc import Base, Doc, random_text, writer
from vecalchemy import Collection, Embedding, ahybrid_search, create_async_engine, hybrid_search
from vecalchemy.bm25 import (
    BM25,
    Analyzer,
    BM25Spec,
    bm25_column,
    bm25_document,
    bm25_query,
    bm25_statistics,
    compact_bm25,
    install_bm25,
    uninstall_bm25,
)
from vecalchemy.errors import ConfigurationError, InvalidArgument, InvalidSearch

core_meta = sa.MetaData()
core_docs = sa.Table(
    "bm25_core",
    core_meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("body", sa.Text),
    bm25_column("body_terms", "body"),
)

ANALYZER = Analyzer()


# -- a from-scratch BM25 (bm25s's lucene variant) ---------------------------------------


def reference_scores(
    docs: dict[int, str], query: str, k1: float = 1.5, b: float = 0.75
) -> dict[int, float]:
    """BM25 of every document containing a query term, computed from the texts alone."""
    tokens = {i: ANALYZER.tokens(t) for i, t in docs.items()}
    n = len(tokens)
    avgdl = sum(len(t) for t in tokens.values()) / n
    df = Counter(term for t in tokens.values() for term in set(t))
    scores: dict[int, float] = {}
    for i, toks in tokens.items():
        tf = Counter(toks)
        hits = [q for q in ANALYZER.tokens(query) if tf[q]]
        if hits:
            scores[i] = sum(
                math.log(1 + (n - df[q] + 0.5) / (df[q] + 0.5))
                * tf[q]
                / (tf[q] + k1 * (1 - b + b * len(toks) / avgdl))
                for q in hits
            )
    return scores


def scratch_statistics(texts: Sequence[str]) -> tuple[int, int, dict[str, int]]:
    tokens = [ANALYZER.tokens(t) for t in texts]
    df = Counter(term for t in tokens for term in set(t))
    return len(tokens), sum(len(t) for t in tokens), dict(df)


def stored_statistics(conn: sa.Connection, column: Any) -> tuple[int, int, dict[str, int]]:
    stats = bm25_statistics(conn, column)
    return stats.documents, stats.total_length, stats.df


def orm_texts(conn: sa.Connection) -> dict[int, str]:
    rows = conn.execute(sa.select(Doc.id, Doc.title, Doc.body))
    return {r.id: " ".join(x for x in (r.title, r.body) if x is not None) for r in rows}


@pytest.fixture(scope="module")
def db(module_db: Engine) -> Iterator[Engine]:
    Base.metadata.create_all(module_db)
    core_meta.create_all(module_db)
    yield module_db
    Base.metadata.drop_all(module_db)
    core_meta.drop_all(module_db)


@pytest.fixture
def empty(db: Engine) -> Engine:
    with db.begin() as conn:
        conn.execute(sa.delete(Doc))
        conn.execute(sa.delete(core_docs))
    return db


# -- the analyser -------------------------------------------------------------------------


def test_analyser_lowercases_drops_stop_words_and_stems() -> None:
    """Tokens are lower-cased words of 2+ word characters, minus stop words, stemmed."""
    assert ANALYZER.tokens("The Cats are RUNNING to a café, x y 42!") == [
        "cat",
        "run",
        "café",
        "42",
    ]
    assert ANALYZER.document("Indexes and indexing an index") == {"index": 3, "": 3}
    assert ANALYZER.tokens("") == []
    assert ANALYZER.document("the a of") == {"": 0}


def test_analyser_matches_bm25s_tokenize() -> None:
    """The same text gives the same terms as bm25s.tokenize(stopwords='en', PyStemmer)."""
    rng = random.Random(3)
    texts = [
        random_text(rng) + " The quick brown foxes JUMPED over it's lazy dogs" for _ in range(20)
    ]
    theirs = bm25s.tokenize(
        texts,
        stopwords="en",
        stemmer=Stemmer.Stemmer("english"),
        return_ids=False,
        show_progress=False,
    )
    assert [ANALYZER.tokens(t) for t in texts] == theirs


def test_analyser_other_language_and_no_stemming() -> None:
    """A German stemmer stems German; language=None keeps words; no stop words but English."""
    assert Analyzer(language="german").tokens("die Häuser") == ["die", "haus"]
    assert Analyzer(language=None).tokens("Running cats") == ["running", "cats"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"language": "klingon"}, "no snowball stemmer for language 'klingon'"),
        ({"pattern": "("}, "is not a valid regex"),
        ({"pattern": r"(\w+)"}, "has a capturing group"),
    ],
)
def test_analyser_rejects_bad_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(")):
        Analyzer(**kwargs)


def test_analyser_rejects_non_text() -> None:
    with pytest.raises(InvalidArgument, match="must be a string, got int"):
        ANALYZER.tokens(3)  # type: ignore[arg-type]


def test_declaration_rejects_bad_sources() -> None:
    with pytest.raises(InvalidArgument, match="at least one source column"):
        BM25()
    with pytest.raises(InvalidArgument, match="must be a column name"):
        bm25_column("x", "bad name")


# -- statistics and scores ------------------------------------------------------------------


def test_scores_equal_a_from_scratch_bm25_and_bm25s(empty: Engine) -> None:
    """After inserts, updates and deletes, every score is the from-scratch BM25 score,
    and bm25s (same analyser) gives the same scores."""
    rng = random.Random(7)
    with Session(empty) as session:
        session.add_all(
            Doc(id=i, title=random_text(rng, 3) if i % 3 else None, body=random_text(rng))
            for i in range(60)
        )
        session.commit()
        for i in range(0, 60, 4):
            session.get(Doc, i).body = random_text(rng)  # type: ignore[union-attr]
        for i in range(1, 60, 7):
            session.delete(session.get(Doc, i))
        session.get(Doc, 2).title = "rollback rollback planner"  # type: ignore[union-attr]
        session.commit()
    query = "vacuum the planner's statistics rollback"
    with Session(empty) as session:
        texts = orm_texts(session.connection())
        got = {d.id: score for d, score in session.execute(bm25_query(Doc.terms, query, k=None))}
        assert stored_statistics(session.connection(), Doc.terms) == scratch_statistics(
            list(texts.values())
        )
    expected = reference_scores(texts, query)
    assert set(got) == set(expected)
    assert len(got) > 10
    assert all(math.isclose(got[i], expected[i], rel_tol=1e-12) for i in got)
    ids = sorted(texts)
    retriever = bm25s.BM25()
    retriever.index([ANALYZER.tokens(texts[i]) for i in ids], show_progress=False)
    theirs = retriever.get_scores(ANALYZER.tokens(query))
    for pos, i in enumerate(ids):
        assert math.isclose(got.get(i, 0.0), float(theirs[pos]), rel_tol=1e-5, abs_tol=1e-6)


def test_query_ranks_top_k_best_first_with_filters(empty: Engine) -> None:
    """k rows, best score first (ties by primary key); .where() filters inside."""
    rng = random.Random(11)
    with Session(empty) as session:
        session.add_all(
            Doc(id=i, body=random_text(rng), lang="en" if i % 2 else "de") for i in range(40)
        )
        session.commit()
        expected = reference_scores(orm_texts(session.connection()), "deadlock lock")
        rows = session.execute(bm25_query(Doc.terms, "deadlock lock", k=5)).all()
        best = sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        assert [(d.id, pytest.approx(s, rel=1e-12)) for d, s in rows] == best
        filtered = session.execute(
            bm25_query(Doc.terms, "deadlock lock", k=3, where=Doc.lang == "de")
        ).all()
        best_de = sorted(
            ((i, s) for i, s in expected.items() if i % 2 == 0), key=lambda kv: (-kv[1], kv[0])
        )[:3]
        assert [(d.id, pytest.approx(s, rel=1e-12)) for d, s in filtered] == best_de
        assert all(d.lang == "de" for d, _ in filtered)


def test_empty_and_stop_word_queries_return_no_rows(empty: Engine) -> None:
    with Session(empty) as session:
        session.add(Doc(id=1, body="the vacuum"))
        session.commit()
        for query in ("", "   ", "the and of a", "!!"):
            assert session.execute(bm25_query(Doc.terms, query)).all() == []
        assert session.execute(bm25_query(Doc.terms, "unknownword")).all() == []


def test_queries_of_any_length_work(empty: Engine) -> None:
    """A 5,000-word query is one array parameter; OR semantics over all its terms."""
    rng = random.Random(5)
    with Session(empty) as session:
        session.add_all(Doc(id=i, body=random_text(rng)) for i in range(30))
        session.commit()
        long_query = " ".join(f"zz{i}" for i in range(5000)) + " wal"
        got = {d.id: s for d, s in session.execute(bm25_query(Doc.terms, long_query, k=None))}
        expected = reference_scores(orm_texts(session.connection()), long_query)
        assert got
        assert got.keys() == expected.keys()
        assert all(math.isclose(got[i], expected[i], rel_tol=1e-12) for i in got)


def test_repeated_query_terms_count_once_per_occurrence(empty: Engine) -> None:
    """As bm25s: 'wal wal' scores twice 'wal'."""
    with Session(empty) as session:
        session.add_all([Doc(id=1, body="wal checkpoint"), Doc(id=2, body="vacuum")])
        session.commit()
        ((_, once),) = session.execute(bm25_query(Doc.terms, "wal")).all()
        ((_, twice),) = session.execute(bm25_query(Doc.terms, "wal WAL")).all()
        assert twice == pytest.approx(2 * once, rel=1e-12)


def test_k1_and_b_are_used(empty: Engine) -> None:
    rng = random.Random(2)
    with Session(empty) as session:
        session.add_all(Doc(id=i, body=random_text(rng)) for i in range(20))
        session.commit()
        texts = orm_texts(session.connection())
        stmt = bm25_query(Doc.terms, "cache buffer", k=None, k1=0.9, b=0.4)
        got = {d.id: s for d, s in session.execute(stmt)}
        expected = reference_scores(texts, "cache buffer", k1=0.9, b=0.4)
        assert got.keys() == expected.keys()
        assert all(math.isclose(got[i], expected[i], rel_tol=1e-12) for i in got)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be a positive integer or None, got 0"),
        ({"k1": -1}, "k1 must be 0 or more, got -1"),
        ({"b": 1.5}, "b must be between 0 and 1.0, got 1.5"),
        ({"b": "x"}, "b must be a number"),
    ],
)
def test_query_rejects_bad_parameters(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSearch, match=message):
        bm25_query(Doc.terms, "vacuum", **kwargs)


def test_query_rejects_non_bm25_columns_and_non_text() -> None:
    with pytest.raises(InvalidArgument, match=r"bm25_docs\.body is not a BM25 column"):
        bm25_query(Doc.body, "vacuum")
    with pytest.raises(InvalidArgument, match="expected a BM25 column"):
        bm25_query("terms", "vacuum")
    with pytest.raises(InvalidSearch, match="query text must be a string, got list"):
        bm25_query(Doc.terms, ["vacuum"])  # type: ignore[arg-type]


def test_core_table_insert_default_update_and_query(empty: Engine) -> None:
    """Core inserts fill the column from the source; a Core update passes bm25_document."""
    with empty.begin() as conn:
        conn.execute(
            core_docs.insert(), [{"id": 1, "body": "vacuum wal"}, {"id": 2, "body": "wal"}]
        )
        conn.execute(
            core_docs.update()
            .where(core_docs.c.id == 2)
            .values(body="vacuum vacuum", body_terms=bm25_document("vacuum vacuum"))
        )
        stored = conn.execute(sa.select(core_docs.c.body_terms).order_by(core_docs.c.id))
        assert stored.scalars().all() == [{"vacuum": 1, "wal": 1, "": 2}, {"vacuum": 2, "": 2}]
        assert stored_statistics(conn, core_docs.c.body_terms) == (2, 4, {"vacuum": 2, "wal": 1})
        rows = conn.execute(bm25_query(core_docs.c.body_terms, "vacuum")).all()
        expected = reference_scores({1: "vacuum wal", 2: "vacuum vacuum"}, "vacuum")
        assert [(r.id, pytest.approx(r.score, rel=1e-12)) for r in rows] == [
            (2, expected[2]),
            (1, expected[1]),
        ]


def test_key_changes_and_other_columns_keep_postings_right(empty: Engine) -> None:
    """An update of the primary key moves the row's postings; one of another column
    rewrites none; the scores follow the rows."""
    with Session(empty) as session:
        session.add_all([Doc(id=1, body="vacuum wal"), Doc(id=2, body="wal")])
        session.commit()
    with empty.begin() as conn:
        before = stored_statistics(conn, Doc.terms)
        conn.execute(sa.update(Doc).values(id=Doc.id + 100))
        conn.execute(sa.update(Doc).where(Doc.id == 101).values(lang="de"))
        assert stored_statistics(conn, Doc.terms) == before
        keys = conn.exec_driver_sql(
            "SELECT term, key_0 FROM bm25_docs_terms_bm25_postings ORDER BY 1, 2"
        ).all()
        assert keys == [("vacuum", 101), ("wal", 101), ("wal", 102)]


def test_composite_primary_keys(empty: Engine) -> None:
    """A table keyed by (text, int), as collections are, gets postings keyed the same."""
    meta = sa.MetaData()
    chunks = sa.Table(
        "bm25_chunks",
        meta,
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("chunk", sa.Integer, primary_key=True),
        sa.Column("text", sa.Text),
        bm25_column("terms", "text"),
    )
    texts = {("a", 0): "vacuum wal", ("a", 1): "wal wal lock", ("b", 0): "lock"}
    with empty.begin() as conn:
        meta.create_all(conn)
        conn.execute(
            chunks.insert(), [{"id": i, "chunk": c, "text": t} for (i, c), t in texts.items()]
        )
        conn.execute(chunks.delete().where(chunks.c.id == "b"))
        got = conn.execute(bm25_query(chunks.c.terms, "wal lock", k=None)).all()
        expected = reference_scores(dict(enumerate(list(texts.values())[:2])), "wal lock")
        assert [(r.id, r.chunk) for r in got] == [("a", 1), ("a", 0)]
        assert [r.score for r in got] == pytest.approx([expected[1], expected[0]], rel=1e-12)
        meta.drop_all(conn)
        assert (
            conn.execute(sa.text("SELECT to_regclass('bm25_chunks_terms_bm25_postings')")).scalar()
            is None
        )


def test_rolled_back_writes_leave_statistics_unchanged(empty: Engine) -> None:
    with Session(empty) as session:
        session.add_all([Doc(id=1, body="vacuum"), Doc(id=2, body="wal wal")])
        session.commit()
    with empty.connect() as conn:
        before = stored_statistics(conn, Doc.terms)
    with Session(empty) as session:
        session.add(Doc(id=3, body="vacuum lock"))
        session.get(Doc, 2).body = "planner"  # type: ignore[union-attr]
        session.delete(session.get(Doc, 1))
        session.flush()
        assert stored_statistics(session.connection(), Doc.terms) != before
        session.rollback()
    with empty.connect() as conn:
        assert stored_statistics(conn, Doc.terms) == before == (2, 3, {"vacuum": 1, "wal": 1})


def test_statistics_of_chosen_terms(empty: Engine) -> None:
    """terms= limits df to those terms (any text, quotes and percent signs included)."""
    with Session(empty) as session:
        session.add_all([Doc(id=1, body="vacuum wal"), Doc(id=2, body="wal")])
        session.commit()
    with empty.connect() as conn:
        stats = bm25_statistics(conn, Doc.terms, ["wal", "it's 50%", "nope"])
        assert (stats.documents, stats.total_length, stats.df) == (2, 3, {"wal": 2})
        assert stats.avgdl == 1.5
        assert bm25_statistics(conn, Doc.terms, []).df == {}


def test_orm_updates_of_other_columns_keep_the_terms(empty: Engine) -> None:
    """The flush hook re-analyses only when a source column changed."""
    with Session(empty) as session:
        doc = Doc(id=1, body="vacuum wal")
        session.add(doc)
        session.commit()
        session.execute(sa.update(Doc).values(terms={"forged": 1, "": 1}))
        session.commit()
        doc.lang = "de"
        session.commit()
        assert session.scalar(sa.select(Doc.terms)) == {"forged": 1, "": 1}
        doc.body = "lock"
        session.commit()
        assert session.scalar(sa.select(Doc.terms)) == {"lock": 1, "": 1}


def test_truncate_clears_the_statistics(empty: Engine) -> None:
    with Session(empty) as session:
        session.add(Doc(id=1, body="vacuum"))
        session.commit()
    with empty.begin() as conn:
        conn.exec_driver_sql("TRUNCATE bm25_docs")
        assert stored_statistics(conn, Doc.terms) == (0, 0, {})


def test_compaction_keeps_statistics_and_scores(empty: Engine) -> None:
    rng = random.Random(4)
    with Session(empty) as session:
        for i in range(30):
            session.add(Doc(id=i, body=random_text(rng)))
            session.commit()  # one delta per statement: many rows to fold
        session.delete(session.get(Doc, 3))
        session.commit()
    with empty.begin() as conn:
        before = stored_statistics(conn, Doc.terms)
        scores = conn.execute(bm25_query(Doc.terms, "lock vacuum", k=None)).all()
        with empty.begin() as other:  # another compaction holds the lock: no wait
            other.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:n, 0))"),
                {"n": 'vecalchemy:bm25:"bm25_docs_terms_bm25_corpus"'},
            )
            with empty.begin() as third:
                assert compact_bm25(third, Doc.terms, wait=False) == 0
        removed = compact_bm25(conn, Doc.terms)
        assert removed == 30  # 31 deltas (30 inserts, 1 delete) folded into 1
        assert stored_statistics(conn, Doc.terms) == before
        assert conn.execute(bm25_query(Doc.terms, "lock vacuum", k=None)).all() == scores
        assert compact_bm25(conn, Doc.terms) == 0


def test_install_counts_existing_rows_and_uninstall_removes_everything(empty: Engine) -> None:
    with empty.begin() as conn:
        uninstall_bm25(conn, Doc.terms)
        uninstall_bm25(conn, Doc.terms)  # idempotent
        assert (
            conn.execute(sa.text("SELECT to_regclass('bm25_docs_terms_bm25_postings')")).scalar()
            is None
        )
    with Session(empty) as session:  # no triggers now: nothing counts these
        session.add_all([Doc(id=1, body="vacuum wal"), Doc(id=2, body="wal")])
        session.commit()
    with empty.begin() as conn:
        install_bm25(conn, Doc.terms)
        install_bm25(conn, Doc.terms)  # idempotent: recounts, never doubles
        assert stored_statistics(conn, Doc.terms) == (2, 3, {"vacuum": 1, "wal": 2})
        triggers = conn.execute(
            sa.text("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'bm25_docs'::regclass")
        ).scalar()
        assert triggers == 4


def test_install_rejects_a_plain_column(db: Engine) -> None:
    with db.connect() as conn, pytest.raises(InvalidArgument, match="not a BM25 column"):
        install_bm25(conn, Doc.body)
    with db.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT to_regclass('bm25_docs_body_bm25_postings')")).scalar()
            is None
        )


def test_candidates_come_from_the_postings_index(empty: Engine) -> None:
    with empty.begin() as conn:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                sa.text(
                    "EXPLAIN "
                    + str(
                        bm25_query(Doc.terms, "vacuum").compile(
                            dialect=conn.dialect, compile_kwargs={"literal_binds": True}
                        )
                    )
                )
            )
        )
        assert "bm25_docs_terms_bm25_postings_pkey" in plan  # the postings index


# -- concurrent writers ---------------------------------------------------------------------


def test_statistics_stay_exact_under_concurrent_writers(
    empty: Engine, module_db_url: sa.URL
) -> None:
    """6 threads and 2 processes write overlapping terms in multi-statement transactions
    while a compactor runs: no deadlock, no error, and N, total length and every df
    equal a from-scratch count over the committed rows."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def compactor() -> None:
        try:
            while not stop.is_set():
                with empty.begin() as conn:
                    compact_bm25(conn, Doc.terms)
                stop.wait(0.05)
        except BaseException as exc:
            errors.append(exc)

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path("src").resolve()), str(Path(".").resolve())]),
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.bm25_writer_proc",
                str(module_db_url.render_as_string(hide_password=False)),
                str(w),
                "15",
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in (90, 91)
    ]
    threads = [threading.Thread(target=writer, args=(empty, w, 15, errors)) for w in range(6)]
    comp = threading.Thread(target=compactor)
    comp.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outs = [p.communicate(timeout=300) for p in procs]
    stop.set()
    comp.join()
    assert errors == []
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    with empty.connect() as conn:
        texts = orm_texts(conn)
        assert len(texts) > 150
        assert stored_statistics(conn, Doc.terms) == scratch_statistics(list(texts.values()))
        stored = conn.execute(sa.select(Doc.id, Doc.terms)).all()
        assert all(t == ANALYZER.document(texts[i]) for i, t in stored)


# -- the text leg of hybrid search ----------------------------------------------------------


class HybridBase(DeclarativeBase):
    pass


class Note(HybridBase):
    __tablename__ = "bm25_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    tag: Mapped[str]
    embedding = Embedding(4)
    terms = BM25("body")


@pytest.fixture(scope="module")
def notes(module_db: Engine) -> Iterator[Engine]:
    rng = random.Random(9)
    HybridBase.metadata.create_all(module_db)
    with Session(module_db) as session:
        session.add_all(
            Note(
                id=i,
                body=random_text(rng),
                tag="a" if i % 3 else "b",
                embedding=[rng.random() + 0.01 for _ in range(4)],
            )
            for i in range(80)
        )
        session.commit()
    yield module_db
    HybridBase.metadata.drop_all(module_db)


def test_hybrid_search_ranks_the_text_leg_by_bm25(notes: Engine) -> None:
    """With a BM25 column as text_column, the text leg's ranks are bm25_query's ranks,
    filters apply inside the leg, and the BM25 column is not loaded with the rows. The
    later queries reuse the first one's statement (no where): their terms are bound."""
    vector = [0.3, 0.1, 0.5, 0.2]
    cases = [
        (query, where, k)
        for query in ("deadlock rollback wal", "vacuum", "wal wal checkpoint")
        for where, k in ((None, 10), (Note.tag == "b", 5))
    ]
    with Session(notes) as session:
        for query, where, k in cases:
            ranking = session.execute(bm25_query(Note.terms, query, k=None, where=where)).all()
            text_rank = {n.id: r for r, (n, _) in enumerate(ranking, 1)}
            session.expunge_all()
            hits = hybrid_search(
                session, Note.embedding, Note.terms, query, vector, k=k, where=where
            )
            assert len(hits) == k
            with_text = [h for h in hits if h.ranks[1] is not None]
            assert with_text
            assert all(h.ranks[1] == text_rank[h.row.id] for h in with_text)
            if where is not None:
                assert all(h.row.tag == "b" for h in hits)
            assert all("terms" not in h.row.__dict__ for h in hits)


def test_hybrid_search_with_a_stop_word_query_is_the_vector_leg(notes: Engine) -> None:
    with Session(notes) as session:
        hits = hybrid_search(session, Note.embedding, Note.terms, "the of and", [1, 0, 0, 0], k=5)
        assert len(hits) == 5
        assert all(h.ranks[1] is None and h.ranks[0] is not None for h in hits)


def test_hybrid_search_rejects_another_language_for_a_bm25_column(notes: Engine) -> None:
    with (
        Session(notes) as session,
        pytest.raises(InvalidSearch, match="analysed with language 'english'"),
    ):
        hybrid_search(session, Note.embedding, Note.terms, "wal", [1, 0, 0, 0], language="german")


# -- collections ------------------------------------------------------------------------------


def test_collection_declared_bm25_ranks_text_and_hybrid_by_bm25(module_db: Engine) -> None:
    """text_ranking="bm25": writes (COPY) fill the terms, mode="text" is bm25 over the
    chunks after adds, upserts and deletes, hybrid uses it, open() keeps it, drop()
    removes the postings."""
    name = "bm25_coll"
    docs = Collection(
        name, embedder="hashing", engine=module_db, splitter="none", text_ranking="bm25"
    )
    rng = random.Random(12)
    texts = {f"d{i}": random_text(rng) for i in range(40)}
    docs.add(list(texts.values()), ids=list(texts), metadata=[{"n": i % 2} for i in range(40)])
    texts["d3"] = "wal wal checkpoint"
    docs.upsert([texts["d3"]], ids=["d3"], metadata=[{"n": 1}])
    docs.delete(["d5", "d6"])
    del texts["d5"], texts["d6"]
    with module_db.connect() as conn:  # every write folded its corpus delta
        corpus = conn.exec_driver_sql(f"SELECT n, len FROM {name}_terms_bm25_corpus").all()
    assert corpus == [(len(texts), sum(len(ANALYZER.tokens(t)) for t in texts.values()))]
    query = "wal checkpoint lock"
    hits = docs.search(query, k=50, mode="text")
    expected = reference_scores(dict(enumerate(texts.values())), query)
    by_id = {f: expected.get(n) for n, f in enumerate(texts)}
    assert len(hits) == len([s for s in by_id.values() if s is not None])
    assert all(h.similarity == pytest.approx(by_id[h.id], rel=1e-12) for h in hits)
    assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)
    filtered = docs.search(query, k=50, mode="text", where={"n": 1})
    assert filtered
    assert {h.id for h in filtered} == {h.id for h in hits if h.metadata["n"] == 1}
    assert docs.search("the of", k=5, mode="text") == []
    hybrid = Collection.open(name, engine=module_db).search(query, k=5, mode="hybrid")
    assert len(hybrid) == 5
    with pytest.raises(ConfigurationError, match="ranks its text with 'bm25', not 'tsvector'"):
        Collection(name, embedder="hashing", engine=module_db, splitter="none").search("wal")
    docs.drop()
    with module_db.connect() as conn:
        assert (
            conn.execute(sa.text(f"SELECT to_regclass('{name}_terms_bm25_postings')")).scalar()
            is None
        )


def test_collection_text_mode_with_tsvector_ranking(module_db: Engine) -> None:
    """The default ranking: mode="text" orders by ts_rank_cd over the tsv column."""
    docs = Collection("bm25_tsv_coll", embedder="hashing", engine=module_db, splitter="none")
    docs.add(["wal wal wal checkpoint", "wal vacuum", "vacuum"], ids=["a", "b", "c"])
    hits = docs.search("wal", k=5, mode="text")
    assert [h.id for h in hits] == ["a", "b"]
    assert hits[0].similarity > hits[1].similarity > 0
    docs.drop()


def test_collection_rejects_an_unknown_ranking(module_db: Engine) -> None:
    with pytest.raises(InvalidArgument, match="text_ranking 'okapi' is not one of tsvector, bm25"):
        Collection("bm25_bad", embedder="hashing", engine=module_db, text_ranking="okapi")
    with module_db.connect() as conn:
        assert conn.execute(sa.text("SELECT to_regclass('bm25_bad')")).scalar() is None


@pytest.mark.parametrize("driver", ["psycopg_async", "asyncpg"])
async def test_async_drivers_run_bm25_queries_and_hybrid(
    notes: Engine, module_db_url: sa.URL, driver: str
) -> None:
    """The statements run on both async drivers (the terms are rendered into the SQL)
    and give the sync ranking."""
    query, vector = "deadlock rollback wal", [0.3, 0.1, 0.5, 0.2]
    with Session(notes) as session:
        expected = [(n.id, s) for n, s in session.execute(bm25_query(Note.terms, query))]
        fused = [
            h.row.id for h in hybrid_search(session, Note.embedding, Note.terms, query, vector)
        ]
    engine = create_async_engine(module_db_url.set(drivername=f"postgresql+{driver}"))
    try:
        async with AsyncSession(engine) as session:
            got = [(n.id, s) for n, s in await session.execute(bm25_query(Note.terms, query))]
            hits = await ahybrid_search(session, Note.embedding, Note.terms, query, vector)
    finally:
        await engine.dispose()
    assert [i for i, _ in got] == [i for i, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], rel=1e-12)
    assert [h.row.id for h in hits] == fused


def test_more_bad_input_is_refused_before_any_sql(module_db: Engine, notes: Engine) -> None:
    """A spec with a foreign analyser, a keyless table, a non-text hybrid query and a bad
    k for a collection's text search each get a clear error; nothing is created."""
    with pytest.raises(InvalidArgument, match=r"analyzer must be a vecalchemy\.bm25\.Analyzer"):
        BM25Spec(("body",), analyzer="english")  # type: ignore[arg-type]
    keyless = sa.Table(
        "bm25_keyless", sa.MetaData(), sa.Column("body", sa.Text), bm25_column("t", "body")
    )
    with module_db.connect() as conn, pytest.raises(InvalidArgument, match="has no primary key"):
        install_bm25(conn, keyless.c.t)
    with module_db.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT to_regclass('bm25_keyless_t_bm25_postings')")).scalar()
            is None
        )
    with (
        Session(notes) as session,
        pytest.raises(InvalidSearch, match="query text must be a string, got dict"),
    ):
        hybrid_search(session, Note.embedding, Note.terms, {"wal": 1}, [1, 0, 0, 0])
    docs = Collection("bm25_k", embedder="hashing", engine=module_db, text_ranking="bm25")
    with pytest.raises(InvalidSearch, match="k must be a positive integer, got 0"):
        docs.search("wal", k=0, mode="text")
    with module_db.connect() as conn:
        assert conn.execute(sa.text("SELECT to_regclass('bm25_k')")).scalar() is None
