"""hybrid_search: full-text + vector (and dense + sparse) fused in one statement.

The corpus is hand-made so that each leg finds something the other misses: row 2 holds a
rare product code the embedding knows nothing about (its vector points away from the
query), row 3 is a paraphrase without the query's words (its vector is the query's).
Fused scores are checked against the RRF and Weighted formulas computed in Python from
the legs run separately.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from pgvector import SparseVector
from sqlalchemy import Engine, String, event, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from tests.conftest import executed_plan, ran
from vecalchemy import Embedding, FusedHit
from vecalchemy.fulltext import FullText, fulltext_column
from vecalchemy.query.fusion import RRF, Weighted, hybrid_query, plan_hybrid
from vecalchemy.search.hybrid import ahybrid_search, hybrid_search

DIM = 8
N = 60
VOCAB = 50
QUERY_TEXT = "XJ9042 or vacuum"
rng = np.random.default_rng(2024)
Q = np.eye(DIM, dtype=np.float32)[0]


class Base(DeclarativeBase):
    pass


class _DocColumns:
    """The columns of a hybrid-search table (declared once, mapped by two tables)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    body: Mapped[str]
    lang: Mapped[str] = mapped_column(String(2))
    embedding = Embedding(DIM, metric="cosine")
    sparse = Embedding(VOCAB, storage="sparsevec", metric="inner_product")
    tsv = FullText("title", "body")


class Doc(_DocColumns, Base):
    __tablename__ = "hy_docs"


FILLER_WORDS = [
    "garden",
    "tomato",
    "river",
    "mountain",
    "bread",
    "coffee",
    "violin",
    "harbor",
    "lantern",
    "meadow",
]


def _near(scale: float) -> np.ndarray:
    return (Q + scale * rng.normal(size=DIM)).astype(np.float32)


def _rows() -> list[dict[str, Any]]:
    rows = [
        # both legs: the words and a vector close to the query
        {"id": 1, "title": "Tuning autovacuum", "body": "vacuum settings", "lang": "en",
         "embedding": _near(0.2), "sparse": {3: 1.0}},
        # text only: a rare code; the vector points away from the query
        {"id": 2, "title": "Release notes", "body": "fixes crash XJ9042 on startup",
         "lang": "en", "embedding": -Q, "sparse": {7: 2.0}},
        # vector only: a paraphrase without the query's words
        {"id": 3, "title": "Reclaiming space", "body": "how dead rows are cleaned",
         "lang": "en", "embedding": _near(0.05), "sparse": {}},
        # matches both legs, but German: filtered out by lang == 'en'
        {"id": 4, "title": "XJ9042", "body": "vacuum XJ9042", "lang": "de",
         "embedding": _near(0.1), "sparse": {3: 1.0, 7: 1.0}},
    ]  # fmt: skip
    for i in range(5, N + 1):
        words = rng.choice(FILLER_WORDS, size=4)
        rows.append(
            {
                "id": i,
                "title": str(words[0]),
                "body": " ".join(words[1:]),
                "lang": "en" if i % 2 else "de",
                "embedding": rng.normal(size=DIM).astype(np.float32),
                "sparse": {int(j): 0.5 for j in rng.choice(range(10, VOCAB), size=2)},
            }
        )
    for row in rows:
        row["sparse"] = SparseVector(row["sparse"], VOCAB)
    return rows


ROWS = _rows()
LANG = {r["id"]: r["lang"] for r in ROWS}


@pytest.fixture
def docs(session: Session) -> Session:
    conn = session.connection()
    Base.metadata.create_all(conn)
    conn.execute(insert(Doc), ROWS)
    conn.exec_driver_sql("ANALYZE hy_docs")
    return session


# -- the legs, run separately ----------------------------------------------------------


def _vector_leg(session: Session, lang: str | None = None) -> list[tuple[int, float]]:
    """Exact cosine distances, nearest first (ties by id), as the vector leg ranks them."""
    d = Doc.embedding.cosine_distance(Q)
    stmt = select(Doc.id, d).order_by(d, Doc.id)
    if lang is not None:
        stmt = stmt.where(Doc.lang == lang)
    with session.begin_nested():
        session.execute(text("SET LOCAL enable_indexscan = off"))  # exact
        return [(r[0], float(r[1])) for r in session.execute(stmt)]


def _text_leg(session: Session, lang: str | None = None) -> list[tuple[int, float]]:
    """ts_rank_cd of the rows matching the query text, best first (ties by id)."""
    sql = (
        "SELECT id, ts_rank_cd(tsv, q) FROM hy_docs, "
        "websearch_to_tsquery('english'::regconfig, :t) AS q WHERE tsv @@ q"
        + (" AND lang = :lang" if lang else "")
        + " ORDER BY 2 DESC, id"
    )
    return [
        (r[0], float(r[1])) for r in session.execute(text(sql), {"t": QUERY_TEXT, "lang": lang})
    ]


def _rrf(legs: list[list[tuple[int, float]]], k: int = 60) -> dict[int, float]:
    scores: dict[int, float] = {}
    for leg in legs:
        for rank, (row_id, _) in enumerate(leg, start=1):
            scores[row_id] = scores.get(row_id, 0.0) + 1.0 / (k + rank)
    return scores


def _weighted(
    vector: list[tuple[int, float]], text_: list[tuple[int, float]], weights: tuple[float, float]
) -> dict[int, float]:
    def norm(values: dict[int, float]) -> dict[int, float]:
        lo, hi = min(values.values()), max(values.values())
        return {i: (v - lo) / (hi - lo) if hi > lo else 1.0 for i, v in values.items()}

    v = norm({i: 1.0 - d for i, d in vector})
    t = norm(dict(text_))
    return {i: weights[0] * v.get(i, 0.0) + weights[1] * t.get(i, 0.0) for i in {*v, *t}}


def _top(scores: dict[int, float], k: int) -> list[int]:
    return sorted(scores, key=lambda i: (-scores[i], i))[:k]


def _ranks(leg: list[tuple[int, float]]) -> dict[int, int]:
    return {row_id: rank for rank, (row_id, _) in enumerate(leg, start=1)}


# -- results ----------------------------------------------------------------------------


def test_each_leg_finds_what_the_other_misses(docs: Session) -> None:
    """The rare code (text only) and the paraphrase (vector only) are both in the top 5."""
    hits = hybrid_search(docs, Doc.embedding, Doc.tsv, QUERY_TEXT, Q, k=5, candidates=40)
    by_id = {h.row.id: h for h in hits}
    assert len(hits) == 5
    assert {1, 2, 3} <= set(by_id)
    assert by_id[2].ranks[0] is None  # the vector leg (40 candidates of 60) missed it
    assert by_id[2].ranks[1] is not None
    assert by_id[3].ranks[1] is None  # no query word in it
    assert by_id[3].ranks[0] is not None
    assert all(h.ranks[0] is not None and h.ranks[1] is not None for h in hits if h.row.id == 1)
    vector_only = [h.row.id for h in vecalchemy.search(docs, Doc.embedding, Q, k=5)]
    assert 2 not in vector_only


def test_rrf_scores_follow_the_formula(docs: Session) -> None:
    """score = sum(1 / (60 + rank)) over the legs, ranks as the legs rank them; top k by it."""
    hits = hybrid_search(docs, Doc.embedding, Doc.tsv, QUERY_TEXT, Q, k=8, candidates=N)
    vector, text_ = _vector_leg(docs), _text_leg(docs)
    want = _rrf([vector, text_])
    assert [h.row.id for h in hits] == _top(want, 8)
    vr, tr = _ranks(vector), _ranks(text_)
    for h in hits:
        assert h.score == pytest.approx(want[h.row.id], rel=1e-12)
        assert h.ranks == (vr.get(h.row.id), tr.get(h.row.id))
        assert h.distances[1] is None  # a full-text leg has no distance
        assert h.distances[0] == pytest.approx(dict(vector)[h.row.id], abs=1e-6)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_rrf_k_is_used(docs: Session) -> None:
    """RRF(k=1) weighs the head of each list much more."""
    hits = hybrid_search(
        docs, Doc.embedding, Doc.tsv, QUERY_TEXT, Q, k=5, candidates=N, fusion=RRF(k=1)
    )
    want = _rrf([_vector_leg(docs), _text_leg(docs)], k=1)
    assert [h.row.id for h in hits] == _top(want, 5)
    assert [h.score for h in hits] == pytest.approx([want[h.row.id] for h in hits], rel=1e-12)


def test_weighted_scores_follow_the_formula(docs: Session) -> None:
    """Weighted: min-max normalised similarity and ts_rank_cd per leg, weighted, summed."""
    fusion = Weighted([0.7, 0.3])
    hits = hybrid_search(
        docs, Doc.embedding, Doc.tsv, QUERY_TEXT, Q, k=6, candidates=N, fusion=fusion
    )
    want = _weighted(_vector_leg(docs), _text_leg(docs), (0.7, 0.3))
    assert [h.row.id for h in hits] == _top(want, 6)
    for h in hits:
        assert h.score == pytest.approx(want[h.row.id], rel=1e-9, abs=1e-12)
    equal = hybrid_search(
        docs, Doc.embedding, Doc.tsv, QUERY_TEXT, Q, k=6, candidates=N, fusion=Weighted()
    )
    want = _weighted(_vector_leg(docs), _text_leg(docs), (0.5, 0.5))
    assert [h.score for h in equal] == pytest.approx([want[h.row.id] for h in equal], rel=1e-9)
    assert all(0.0 <= h.score <= 1.0 for h in equal)


def test_filters_restrict_both_legs(docs: Session) -> None:
    """A row matching text and vector but not the filter never appears; scores use the
    filtered legs; k rows come back when at least k rows match."""
    hits = hybrid_search(
        docs, Doc.embedding, Doc.tsv, QUERY_TEXT, Q, k=10, where=Doc.lang == "en", candidates=N
    )
    assert len(hits) == 10
    assert all(h.row.lang == "en" for h in hits)
    assert 4 not in {h.row.id for h in hits}
    want = _rrf([_vector_leg(docs, "en"), _text_leg(docs, "en")])
    assert [h.row.id for h in hits] == _top(want, 10)
    # A list of filters is ANDed, in both legs; the text leg alone finds rows 1 and 2.
    hits = hybrid_search(
        docs, Doc.embedding, Doc.tsv, QUERY_TEXT, Q, k=3, where=[Doc.lang == "en", Doc.id < 3]
    )
    assert sorted(h.row.id for h in hits) == [1, 2]
    assert all(h.ranks[1] is not None for h in hits)


def test_k_rows_with_default_candidates(docs: Session) -> None:
    """With the default candidates (max(4k, 40)) a filtered search still fills k rows."""
    hits = hybrid_search(docs, Doc.embedding, Doc.tsv, QUERY_TEXT, Q, k=20, where=Doc.lang == "en")
    assert len(hits) == 20
    assert len({h.row.id for h in hits}) == 20


WIDE = dict.fromkeys(range(10, VOCAB), 1.0)  # a sparse query every filler row matches


def _in_head(hit: FusedHit[Any], depth: int) -> bool:
    return any(r is not None and r <= depth for r in hit.ranks)


@pytest.mark.parametrize("fusion", [RRF(), RRF(k=1), Weighted(), Weighted([0.8, 0.2])])
def test_first_hits_do_not_depend_on_k(docs: Session, fusion: Any) -> None:
    """The legs' first 10 rows are fused whatever k is; a deeper k only appends rows.

    Ties (RRF: rows each leg ranks alike) are broken by primary key, never by the deeper
    ranks that a larger k fetches, so the first hits are the same rows with the same
    scores, in the same order, for every k.
    """
    runs = {
        k: hybrid_search(
            docs, Doc.embedding, Doc.sparse, WIDE, Q, k=k, fusion=fusion, candidates=10
        )
        for k in (3, 10, 25, 60)
    }
    first = [(h.row.id, h.score) for h in runs[10]]
    for k, hits in runs.items():
        assert len(hits) == k
        n = min(k, 10)
        assert [(h.row.id, h.score) for h in hits[:n]] == first[:n], k
    deep = runs[60]
    heads = [_in_head(h, 10) for h in deep]
    assert heads == sorted(heads, reverse=True)  # every head row before any other
    assert 10 <= heads.count(True) < 60  # both tiers are there
    tail = [h.score for h, head in zip(deep, heads, strict=True) if not head]
    assert tail == sorted(tail, reverse=True)  # the rest by the fusion of deeper ranks


def test_first_hits_do_not_depend_on_k_with_a_filter(docs: Session) -> None:
    """Filtered legs fall back to exact scans as k grows; the first hits stay."""
    english = Doc.lang == "en"
    runs = [
        hybrid_search(docs, Doc.embedding, Doc.sparse, WIDE, Q, k=k, where=english, candidates=8)
        for k in (8, 20, 29)
    ]
    first = [(h.row.id, h.score) for h in runs[0]]
    assert all([(h.row.id, h.score) for h in hits[:8]] == first for hits in runs)
    assert all(LANG[h.row.id] == "en" for hits in runs for h in hits)


class WideBase(DeclarativeBase):
    pass


class Wide(WideBase):
    __tablename__ = "hy_wide"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding = Embedding(DIM, metric="cosine")
    sparse = Embedding(VOCAB, storage="sparsevec", metric="inner_product")


def test_default_candidates_keep_the_first_hits(session: Session) -> None:
    """With the default 100 candidates, k=10, 100 and 400 give the same first 10 hits
    (before, each leg fetched max(4k, 40) rows, so the top 10 moved with k)."""
    conn = session.connection()
    WideBase.metadata.create_all(conn)
    wide_rng = np.random.default_rng(7)
    rows = [
        {
            "id": i,
            "embedding": wide_rng.normal(size=DIM).astype(np.float32),
            "sparse": SparseVector(
                {int(j): float(wide_rng.uniform(0.1, 1)) for j in wide_rng.choice(VOCAB, 3)},
                VOCAB,
            ),
        }
        for i in range(1, 451)
    ]
    conn.execute(insert(Wide), rows)
    for fusion in (RRF(), Weighted()):
        runs = [
            hybrid_search(session, Wide.embedding, Wide.sparse, WIDE, Q, k=k, fusion=fusion)
            for k in (10, 100, 400)
        ]
        first = [(h.row.id, h.score) for h in runs[0]]
        assert all([(h.row.id, h.score) for h in hits[:10]] == first for hits in runs)
        assert [len(hits) for hits in runs] == [10, 100, 400]
        assert all(_in_head(h, 100) for h in runs[1])  # k=100: every hit is fused


def test_reused_statements_bind_each_querys_values(docs: Session) -> None:
    """hybrid_search reuses the statement of an earlier query of the same shape (no
    where) and binds the new query's vector and text: the hits are those of a statement
    built for that query alone, for a full-text and a sparse text leg."""
    vectors = [Q, -Q, rng.normal(size=DIM).astype(np.float32)]
    texts = ["XJ9042 or vacuum", "garden tomato", "zzyzx"]  # the last matches nothing
    sparse = [{7: 1.0}, WIDE, {3: 2.0}]
    for vector, words, weights in zip(vectors, texts, sparse, strict=True):
        for text_column, query_text in ((Doc.tsv, words), (Doc.sparse, weights)):
            fq = plan_hybrid(Doc.embedding, text_column, query_text, vector, k=6, cached=True)
            again = plan_hybrid(Doc.embedding, text_column, query_text, vector, k=6, cached=True)
            assert again.select is fq.select  # built once, reused
            fresh = plan_hybrid(Doc.embedding, text_column, query_text, vector, k=6)
            assert fresh.select is not fq.select
            got = hybrid_search(docs, Doc.embedding, text_column, query_text, vector, k=6)
            want = vecalchemy.run(docs, fresh)
            assert [(h.row.id, h.score, h.ranks) for h in got] == [
                (h.row.id, h.score, h.ranks) for h in want
            ]
    # The statement of the first shape answers the last query with the last values.
    first = plan_hybrid(Doc.embedding, Doc.tsv, texts[0], vectors[0], k=6, cached=True)
    last = plan_hybrid(Doc.embedding, Doc.tsv, texts[1], vectors[1], k=6, cached=True)
    assert last.select is first.select
    assert last.params["query_text"] == texts[1]
    # A filtered search is built for its own values.
    english = plan_hybrid(
        Doc.embedding, Doc.tsv, texts[0], Q, k=6, where=Doc.lang == "en", cached=True
    )
    assert english.select is not first.select


def test_result_rows(docs: Session) -> None:
    """ORM columns give mapped objects (vectors and tsvector deferred); Core columns and
    Connections give rows without vector or tsvector columns."""
    hits = hybrid_search(docs, Doc.embedding, Doc.tsv, QUERY_TEXT, Q, k=3)
    assert isinstance(hits[0], FusedHit)
    assert isinstance(hits[0].row, Doc)
    assert {"embedding", "sparse", "tsv"} <= sa.inspect(hits[0].row).unloaded
    t = Doc.__table__
    core = hybrid_search(docs, t.c.embedding, t.c.tsv, QUERY_TEXT, Q, k=3)
    assert [h.row.id for h in core] == [h.row.id for h in hits]
    keys = set(core[0].row._mapping)
    assert {"id", "title", "body", "lang", "score", "rank_0", "rank_1", "distance_0"} == keys
    flat = hybrid_search(docs.connection(), Doc.embedding, Doc.tsv, QUERY_TEXT, Q, k=3)
    assert [h.row.id for h in flat] == [h.row.id for h in hits]
    with pytest.raises(AttributeError):
        _ = flat[0].row.embedding


def test_language_defaults_to_the_columns(docs: Session) -> None:
    """language=None uses the column's language; naming the same one is fine."""
    a = hybrid_search(docs, Doc.embedding, Doc.tsv, QUERY_TEXT, Q, k=4)
    b = hybrid_search(docs, Doc.embedding, Doc.tsv, QUERY_TEXT, Q, k=4, language="english")
    assert [h.row.id for h in a] == [h.row.id for h in b]


def test_no_text_match_is_the_vector_ranking(docs: Session) -> None:
    """Query words that match nothing (or only stop words) leave the vector leg's order."""
    for words in ("zzyzx", "the"):
        hits = hybrid_search(docs, Doc.embedding, Doc.tsv, words, Q, k=5)
        assert all(h.ranks[1] is None for h in hits)
        want = [h.row.id for h in vecalchemy.search(docs, Doc.embedding, Q, k=5)]
        assert [h.row.id for h in hits] == want


# -- dense + sparse ---------------------------------------------------------------------


def test_dense_and_sparse_hybrid(docs: Session) -> None:
    """A sparsevec column as the second leg: the sparse-only row is found; RRF holds."""
    sparse_query = {7: 1.0}  # only rows 2 and 4 have weight on term 7
    hits = hybrid_search(
        docs, Doc.embedding, Doc.sparse, sparse_query, Q, k=5, fusion=Weighted(), candidates=40
    )
    by_id = {h.row.id: h for h in hits}
    assert by_id[2].ranks == (None, 1)  # the dense leg missed it, the sparse leg ranks it first
    assert by_id[2].distances[1] == pytest.approx(-2.0)  # <#>: the negative inner product
    assert by_id[2].score == pytest.approx(0.5)  # 0.5 * 0 (dense) + 0.5 * 1 (best sparse)
    as_object = hybrid_search(
        docs, Doc.embedding, Doc.sparse, SparseVector(sparse_query, VOCAB), Q, k=5,
        fusion=Weighted(),
    )  # fmt: skip
    assert [h.row.id for h in as_object] == [h.row.id for h in hits]
    rrf = hybrid_search(docs, Doc.embedding, Doc.sparse, sparse_query, Q, k=5)
    assert rrf[0].row.id == 4  # near the query vector and second by keywords
    for h in rrf:
        expected = sum(1.0 / (60 + r) for r in h.ranks if r is not None)
        assert h.score == pytest.approx(expected, rel=1e-12)


# -- index use ----------------------------------------------------------------------------


def test_each_leg_uses_its_index(docs: Session) -> None:
    """EXPLAIN ANALYZE: the HNSW index serves the vector leg, the GIN index the text leg,
    and the exact fallback arm never runs while the index returns every candidate."""
    stmt = hybrid_query(
        Doc.embedding, Doc.tsv, QUERY_TEXT, Q, k=5, where=Doc.lang == "en", candidates=10
    )
    plan = executed_plan(docs, stmt)
    assert ran(plan, "Index Scan using ix_hy_docs_embedding_hnsw on hy_docs")
    assert ran(plan, "Bitmap Index Scan on ix_hy_docs_tsv_gin")
    assert not ran(plan, "Seq Scan")


def test_sparse_leg_uses_its_index(docs: Session) -> None:
    """EXPLAIN ANALYZE: the sparsevec HNSW index serves the sparse leg."""
    stmt = hybrid_query(Doc.embedding, Doc.sparse, {7: 1.0}, Q, k=5, candidates=10)
    plan = executed_plan(docs, stmt)
    assert ran(plan, "Index Scan using ix_hy_docs_embedding_hnsw on hy_docs")
    assert ran(plan, "Index Scan using ix_hy_docs_sparse_hnsw on hy_docs")
    assert not ran(plan, "Seq Scan")


def test_a_short_vector_leg_falls_back_to_an_exact_scan(docs: Session) -> None:
    """When the index returns fewer than the candidates (here: fewer rows match), the
    vector leg is answered exactly, in the same statement: every match is ranked."""
    stmt = hybrid_query(Doc.embedding, Doc.tsv, QUERY_TEXT, Q, k=5, where=Doc.lang == "en")
    plan = executed_plan(docs, stmt)  # 40 candidates, 31 English rows
    assert ran(plan, "Index Scan using ix_hy_docs_embedding_hnsw on hy_docs")
    exact = [line for line in ran(plan, "Sort Key") if "+ '0'" in line or "+ 0" in line]
    assert exact  # the exact arm ran: ORDER BY distance + 0


def test_compiled_sql_shape() -> None:
    """One statement: legs ranked with row_number(), UNION ALL, GROUP BY, joined back."""
    stmt = hybrid_query(Doc.embedding, Doc.tsv, "vacuum", Q, k=5, where=Doc.lang == "en")
    from sqlalchemy.dialects import postgresql

    sql = str(
        stmt.compile(
            dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
            compile_kwargs={"literal_binds": True},
        )
    )
    assert sql.count("ORDER BY distance \n LIMIT 100") == 1  # DEFAULT_CANDIDATES
    assert "ts_rank_cd(hy_docs.tsv, websearch_to_tsquery('english'::regconfig, 'vacuum'))" in sql
    assert "(hy_docs.tsv @@ websearch_to_tsquery('english'::regconfig, 'vacuum'))" in sql
    assert sql.count("hy_docs.lang = 'en'") == 3  # the vector leg, its exact twin, the text leg
    assert "WITH ann_0 AS MATERIALIZED" in sql
    assert "(SELECT count(*) AS count_1 \nFROM ann_0) >= 100" in sql
    assert "(SELECT count(*) AS count_1 \nFROM ann_0) < 100" in sql
    assert "row_number() OVER (ORDER BY leg_0.distance ASC, leg_0.id)" in sql
    assert "row_number() OVER (ORDER BY leg_1.score DESC, leg_1.id)" in sql
    assert "UNION ALL" in sql
    assert "GROUP BY legs.id" in sql
    assert sql.rstrip().endswith("ORDER BY fused.head DESC, fused.score DESC, hy_docs.id")


# -- settings ---------------------------------------------------------------------------


def _show(session: Session, name: str) -> str:
    return str(session.execute(text(f"SHOW {name}")).scalar())


def test_settings_follow_the_candidates(
    docs: Session, observed: list[dict[str, str | None]]
) -> None:
    """ef_search is max(40, candidates), the largest any leg needs, during the statement;
    the transaction's own values hold before and after it."""
    hybrid_search(docs, Doc.embedding, Doc.tsv, QUERY_TEXT, Q, k=5, candidates=123)
    assert observed[-1]["hnsw.ef_search"] == "123"
    hybrid_search(docs, Doc.embedding, Doc.sparse, {7: 1.0}, Q, k=150, where=Doc.lang == "en")
    assert observed[-1]["hnsw.ef_search"] == "150"  # max(k, 100 candidates)
    assert observed[-1]["hnsw.iterative_scan"] == "relaxed_order"
    assert observed[-1]["plan_cache_mode"] == "force_custom_plan"
    assert _show(docs, "hnsw.ef_search") == "40"
    assert _show(docs, "hnsw.iterative_scan") == "off"
    assert _show(docs, "plan_cache_mode") == "auto"


def test_settings_never_leak_to_the_pooled_connection(server_url: sa.URL) -> None:
    """SET LOCAL ends with the transaction: the pooled connection is back at the defaults."""
    eng = vecalchemy.create_engine(server_url, pool_size=1, max_overflow=0)
    name = f"hy_leak_{rng.integers(1 << 30)}"
    md = sa.MetaData()
    t = sa.Table(
        name,
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("body", sa.Text),
        vecalchemy.embedding_column("embedding", 3),
        fulltext_column("tsv", "body"),
    )
    try:
        md.create_all(eng)
        with Session(eng) as s:
            s.execute(insert(t), [{"id": 1, "body": "vacuum", "embedding": [1, 2, 3]}])
            s.commit()
            hits = hybrid_search(
                s, t.c.embedding, t.c.tsv, "vacuum", [1, 2, 3], k=5, candidates=700,
                where=t.c.id > 0,
            )  # fmt: skip
            assert [h.row.id for h in hits] == [1]
            assert _show(s, "hnsw.ef_search") == "40"  # the statement's 700 held for it only
            s.commit()
            pid = s.execute(select(sa.func.pg_backend_pid())).scalar()
            assert _show(s, "hnsw.ef_search") == "40"
        with eng.connect() as c:  # the same pooled connection (pool_size=1)
            assert c.execute(select(sa.func.pg_backend_pid())).scalar() == pid
            assert c.execute(text("SHOW hnsw.ef_search")).scalar() == "40"
            assert c.execute(text("SHOW hnsw.iterative_scan")).scalar() == "off"
    finally:
        md.drop_all(eng)
        eng.dispose()


# -- bad input ----------------------------------------------------------------------------


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement sent through the engine during the test."""
    sent: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", capture)
    yield sent
    event.remove(engine, "before_cursor_execute", capture)


class Other(Base):
    __tablename__ = "hy_other"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    tsv = FullText("body")


_NO_PK = sa.Table(
    "hy_no_pk",
    sa.MetaData(),
    sa.Column("body", sa.Text),
    vecalchemy.embedding_column("embedding", DIM),
    fulltext_column("tsv", "body"),
)

BAD = [
    ({"query_text": ""}, vecalchemy.InvalidSearch, "query text is empty"),
    ({"query_text": "   "}, vecalchemy.InvalidSearch, "query text is empty"),
    ({"query_text": None}, vecalchemy.InvalidSearch, "query text must be a string"),
    ({"query_text": "a\x00b"}, vecalchemy.InvalidSearch, "NUL"),
    ({"language": "german"}, vecalchemy.InvalidSearch, "built with language 'english'"),
    ({"language": "English"}, vecalchemy.InvalidArgument, "lower-case letters"),
    ({"k": 0}, vecalchemy.InvalidSearch, "k must be a positive integer"),
    ({"k": 1001}, vecalchemy.InvalidSearch, "k=1001 is above 1,000"),
    ({"candidates": 1001}, vecalchemy.InvalidSearch, "candidates=1001 is above 1,000"),
    ({"candidates": 0}, vecalchemy.InvalidSearch, "candidates must be a positive integer"),
    ({"query_vector": [0.1] * 3}, vecalchemy.DimensionMismatch, "has 3 dimensions"),
    ({"query_vector": [0.0] * DIM}, vecalchemy.InvalidVector, "all zeros"),
    ({"query_vector": "some text"}, vecalchemy.InvalidVector, "embed the text first"),
    ({"fusion": Weighted([1.0, 2.0, 3.0])}, vecalchemy.InvalidSearch, "has 3 weights"),
    ({"fusion": "rrf"}, vecalchemy.InvalidSearch, "fusion must be RRF"),
    ({"text_column": Doc.title}, vecalchemy.InvalidArgument, "not a tsvector column"),
    ({"text_column": Doc.embedding}, vecalchemy.InvalidArgument, "dense vector column"),
    ({"text_column": Other.tsv}, vecalchemy.InvalidArgument, "in different tables"),
    ({"where": "lang = 'en'"}, vecalchemy.InvalidArgument, "where= takes"),
    ({"where": {"lang": "en"}}, vecalchemy.InvalidArgument, "compile_filter"),
    (
        {"vector_column": _NO_PK.c.embedding, "text_column": _NO_PK.c.tsv},
        vecalchemy.InvalidArgument,
        "has no primary key",
    ),
    (
        {"text_column": Doc.sparse, "query_text": {1: 1.0}, "language": "english"},
        vecalchemy.InvalidSearch,
        "language= applies to full-text columns",
    ),
    (
        {"text_column": Doc.sparse, "query_text": {VOCAB + 5: 1.0}},
        vecalchemy.InvalidVector,
        "index 55, out of range",
    ),
    ({"text_column": Doc.sparse, "query_text": "vacuum"}, vecalchemy.InvalidVector, "string"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD)
def test_bad_input_fails_before_sql(
    docs: Session,
    statements: list[str],
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    """Each bad argument raises a clear error, and no statement is sent (nothing written)."""
    args: dict[str, Any] = {
        "vector_column": Doc.embedding,
        "text_column": Doc.tsv,
        "query_text": QUERY_TEXT,
        "query_vector": Q,
        "k": 5,
        **kwargs,
    }
    statements.clear()
    with pytest.raises(error, match=message):
        hybrid_search(docs, **args)
    assert statements == []
    assert docs.scalar(select(sa.func.count()).select_from(Doc)) == N


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RRF(k=-1), "RRF k must be an integer"),
        (lambda: RRF(k=2.5), "RRF k must be an integer"),
        (lambda: Weighted([1.0, -1.0]), "positive finite number"),
        (lambda: Weighted([1.0, float("nan")]), "positive finite number"),
        (lambda: Weighted([]), "weights is empty"),
        (lambda: Weighted("ab"), "list of numbers"),
        (lambda: Weighted([True, 1.0]), "must be a number"),
    ],
)
def test_bad_fusion_specs(make: Any, message: str) -> None:
    """Fusion specs are checked when built; their errors are InvalidSearch (a ValueError)."""
    with pytest.raises(vecalchemy.InvalidSearch, match=message):
        make()
    assert issubclass(vecalchemy.InvalidSearch, ValueError)


def test_specs_are_frozen() -> None:
    """RRF and Weighted are immutable values; Weighted keeps its weights as a tuple."""
    w = Weighted([1, 2.5])
    assert w.weights == (1.0, 2.5)
    with pytest.raises(AttributeError):
        w.weights = None  # type: ignore[misc]
    assert RRF() == RRF(k=60)


def test_plan_reports_what_the_runner_needs() -> None:
    """plan_hybrid checks everything and says how many candidates each leg fetches."""
    fq = plan_hybrid(Doc.embedding, Doc.tsv, "vacuum", Q, k=50)
    assert (fq.candidates, fq.fetched) == (100, 100)
    assert [leg.kind for leg in fq.legs] == ["vector", "text"]
    big = plan_hybrid(Doc.embedding, Doc.tsv, "vacuum", Q, k=300)
    assert (big.candidates, big.fetched) == (100, 300)  # the head stays 100 deep
    few = plan_hybrid(Doc.embedding, Doc.tsv, "vacuum", Q, k=30, candidates=10)
    assert (few.candidates, few.fetched) == (10, 30)


# -- async --------------------------------------------------------------------------------


async def test_ahybrid_search_on_every_async_driver(async_session: AsyncSession) -> None:
    """ahybrid_search gives the same hits through psycopg async and asyncpg."""
    conn = await async_session.connection()
    await conn.run_sync(lambda c: Base.metadata.create_all(c))
    await async_session.execute(insert(Doc), ROWS)
    hits = await ahybrid_search(
        async_session, Doc.embedding, Doc.tsv, QUERY_TEXT, Q, k=5, candidates=40
    )
    by_id = {h.row.id: h for h in hits}
    assert {1, 2, 3} <= set(by_id)
    assert by_id[2].ranks[0] is None
    assert by_id[3].ranks[1] is None
    assert isinstance(hits[0].row, Doc)
    assert "embedding" in sa.inspect(hits[0].row).unloaded
    filtered = await ahybrid_search(
        async_session, Doc.embedding, Doc.tsv, QUERY_TEXT, Q, k=5, where=Doc.lang == "en",
        fusion=Weighted([0.6, 0.4]),
    )  # fmt: skip
    assert len(filtered) == 5
    assert all(h.row.lang == "en" for h in filtered)
    sparse = await ahybrid_search(
        async_session, Doc.embedding, Doc.sparse, {7: 1.0}, Q, k=5, fusion=Weighted()
    )
    assert 2 in {h.row.id for h in sparse}
    ef = (await async_session.execute(text("SHOW hnsw.ef_search"))).scalar()
    assert ef == "40"
    with pytest.raises(vecalchemy.InvalidSearch, match="query text is empty"):
        await ahybrid_search(async_session, Doc.embedding, Doc.tsv, "", Q, k=5)


class AutoBase(DeclarativeBase):
    pass


class AutoDoc(_DocColumns, AutoBase):
    __tablename__ = "hy_autocommit"


def test_reused_statements_on_autocommit(engine: Engine) -> None:
    """On an AUTOCOMMIT connection a reused hybrid statement gives the hits a
    transaction gets, and leaves no setting behind on the connection."""
    AutoBase.metadata.create_all(engine)
    try:
        with engine.begin() as conn:
            conn.execute(insert(AutoDoc.__table__), ROWS)
        t = AutoDoc.__table__
        queries = [("XJ9042 or vacuum", Q), ("garden tomato", -Q), ("vacuum", Q)]
        with engine.connect() as conn:
            want = [
                [
                    (r.row.id, r.score)
                    for r in hybrid_search(conn, t.c.embedding, t.c.tsv, w, v, k=6)
                ]
                for w, v in queries
            ]
            conn.rollback()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for _ in range(2):  # the second pass reuses every statement
                got = [
                    [
                        (r.row.id, r.score)
                        for r in hybrid_search(conn, t.c.embedding, t.c.tsv, w, v, k=6)
                    ]
                    for w, v in queries
                ]
                assert got == want
            assert conn.execute(text("SHOW hnsw.ef_search")).scalar() == "40"
            assert conn.execute(text("SHOW hnsw.iterative_scan")).scalar() == "off"
    finally:
        AutoBase.metadata.drop_all(engine)
