"""Fused queries: several ranked lists combined into one ranking, in one SQL statement.

A fused query has *legs*, each a ranked list that its own index serves:

* a vector leg is :func:`vecalchemy.nearest`'s indexable shape,
  ``SELECT pk, <indexed expression> <op> :q AS distance FROM t WHERE <filters>
  ORDER BY distance LIMIT :candidates`` (HNSW or IVFFlat; a ``sparsevec`` column makes
  a sparse leg of the same shape);
* a full-text leg is ``SELECT pk, ts_rank_cd(tsv, q) AS score FROM t WHERE tsv @@ q AND
  <filters> ORDER BY score DESC LIMIT :candidates`` with
  ``q = websearch_to_tsquery('<language>'::regconfig, :query_text)`` (GIN index).
* a BM25 text leg (a :func:`vecalchemy.bm25.BM25` column) is
  :func:`vecalchemy.bm25.bm25_scores`: ``(pk, score)`` from the column's postings, the
  filters applied before the candidates are cut.

Each leg is ranked with ``row_number()``, the legs are combined with ``UNION ALL`` and
``GROUP BY`` primary key, scored by the fusion, cut to the best ``k`` and joined back to
the table. Filters go inside every leg, so every candidate matches them.

Fusions (frozen, checked when built):

* :class:`RRF` (reciprocal rank fusion): ``score = sum(weight / (k + rank))`` over the
  legs that returned the row. Scale-free: only ranks matter.
* :class:`Weighted`: ``score = sum(weight * normalised score)``. In a hybrid query each
  leg's score (the metric's similarity for a vector leg, ``ts_rank_cd`` for a full-text
  leg) is min-max normalised to [0, 1] over the leg's candidates, and a row a leg did
  not return gets 0 there. In a multi-vector query the score is the exact weighted sum
  of the similarities on every column, computed for the union of the candidates.

The builders here do no I/O; :mod:`vecalchemy.hybrid` runs them with index settings.

Example::

    from vecalchemy.query.fusion import RRF, hybrid_query

    stmt = hybrid_query(Doc.embedding, Doc.tsv, "vacuum tuning", q, k=5, fusion=RRF(k=60))
    for doc, score, vector_rank, text_rank, distance in session.execute(stmt):
        print(doc.title, score, vector_rank, text_rank)
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Column,
    ColumnElement,
    CompoundSelect,
    Float,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import InstrumentedAttribute, defer
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import Label

from vecalchemy._bm25 import BM25_INFO_KEY, BM25Spec, bm25_scores, query_terms
from vecalchemy._distance import query_value
from vecalchemy._fulltext import (
    QUERY_TEXT_PARAM,
    FullTextSpec,
    check_query_text,
    is_fulltext_type,
    resolve_fulltext,
    ts_rank_cd,
)
from vecalchemy._ops import divide
from vecalchemy._sql import PLAN_OPTION, QUERY_PARAM, Distance, is_vector_type
from vecalchemy._typing import Where
from vecalchemy.errors import InvalidArgument, InvalidSearch
from vecalchemy.metrics import MAX_EF_SEARCH, Storage
from vecalchemy.query._nearest import check_clauses, plan_nearest
from vecalchemy.schema import HNSW, VectorSpec, resolve_spec

__all__ = [
    "BM25_FUSION",
    "DEFAULT_CANDIDATES",
    "DEFAULT_RRF_K",
    "RRF",
    "FusedQuery",
    "Fusion",
    "Leg",
    "Weighted",
    "default_candidates",
    "default_fusion",
    "hybrid_query",
    "multi_query",
    "plan_hybrid",
    "plan_multi",
]

#: The RRF constant of the original paper (Cormack et al., 2009), used by most engines.
DEFAULT_RRF_K = 60

#: Where plan_hybrid(cached=True) keeps its statements: the vector column's ``info``.
_TEMPLATES_KEY = "vecalchemy_fused_templates"
_TEMPLATES_MAX = 64

# Labels of the columns a fused query adds; a primary key column with one of these
# names is selected under another label (pk_0, ...).
_RESERVED = ("distance", "score", "rank", "norm")


def _check_number(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidSearch(f"{what} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise InvalidSearch(f"{what} must be a positive finite number, got {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class RRF:
    """Reciprocal rank fusion: ``score = sum(weight / (k + rank))`` over the legs.

    ``k`` (default 60) damps the head of each list: the larger it is, the less the top
    ranks dominate. Ranks start at 1. Only ranks count, so legs whose scores live on
    different scales (cosine distances, ``ts_rank_cd``) combine without tuning.

    Example::

        hybrid_search(session, Doc.embedding, Doc.tsv, "vacuum", q, fusion=RRF(k=60))
    """

    k: int = DEFAULT_RRF_K

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or not 0 <= self.k <= 1_000_000:
            raise InvalidSearch(
                f"RRF k must be an integer from 0 to 1,000,000, got {self.k!r}; 60 is usual"
            )


@dataclass(frozen=True, slots=True)
class Weighted:
    """A weighted sum of scores, ``weights`` per leg in leg order (default: equal).

    In a hybrid query the legs are (vector, text) and each leg's score is min-max
    normalised to [0, 1] over its candidates; the default weights are 1/2 each, so the
    fused score lies in [0, 1]. In :func:`vecalchemy.hybrid.multi_search` the weights
    come from the column mapping and the score is the exact weighted sum of similarities.

    Example::

        hybrid_search(session, Doc.embedding, Doc.tsv, "vacuum", q,
                      fusion=Weighted([0.7, 0.3]))   # 70% vector, 30% full text
    """

    weights: Sequence[float] | None = None

    def __post_init__(self) -> None:
        if self.weights is None:
            return
        if isinstance(self.weights, (str, bytes, Mapping)) or not isinstance(
            self.weights, Sequence
        ):
            raise InvalidSearch(
                f"Weighted weights must be a list of numbers (one per leg), got {self.weights!r}"
            )
        weights = tuple(_check_number("each weight", w) for w in self.weights)
        if not weights:
            raise InvalidSearch("Weighted weights is empty; give one weight per leg or None")
        object.__setattr__(self, "weights", weights)


#: A fusion spec: :class:`RRF` or :class:`Weighted`.
Fusion = RRF | Weighted

#: The fusion of a hybrid query whose text leg is BM25, unless told: 0.75 of the dense
#: leg's and 0.25 of the BM25 leg's min-max normalised scores (docs/design.md, "Hybrid
#: fusion": best of the fusions measured on both evaluation sets, and above RRF on both).
BM25_FUSION = Weighted((0.75, 0.25))


def default_fusion(text_column: Any) -> Fusion:
    """The fusion a hybrid query with ``text_column`` uses unless told.

    A :func:`~vecalchemy.bm25.BM25` column: :data:`BM25_FUSION`, a convex combination of
    normalised scores (BM25 scores carry IDF and saturate, so a query's scores are
    comparable across documents, and measured this beats RRF). A full-text
    (``ts_rank_cd``, no IDF) or sparse column: :class:`RRF`, which needs no scale.

    Example::

        default_fusion(Doc.body_bm25)     # Weighted(weights=(0.75, 0.25))
        default_fusion(Doc.tsv)           # RRF(k=60)
    """
    col = _column_of(text_column)
    if col is not None and isinstance(col.info.get(BM25_INFO_KEY), BM25Spec):
        return BM25_FUSION
    return RRF()


#: How deep each leg's ranking counts in the fusion unless told (``candidates=``).
DEFAULT_CANDIDATES = 100


def default_candidates(k: int) -> int:
    """How many rows each leg fetches for ``k`` hits unless told: ``max(k, 100)``.

    The first 100 rows of each leg (:data:`DEFAULT_CANDIDATES`) are fused; the legs fetch
    more only when ``k`` asks for more rows than that, and those rows rank after the
    fused ones, so the first hits never depend on ``k``.

    Example::

        >>> default_candidates(10), default_candidates(300)
        (100, 300)
    """
    return max(k, DEFAULT_CANDIDATES)


@dataclass(frozen=True)
class Leg:
    """One ranked list of a fused query, and what the runner needs to know about it.

    ``select`` returns the primary key and ``distance`` (vector legs, ascending) or
    ``score`` (full-text legs, descending), ordered and limited to the candidates.
    ``distance`` (vector legs) is the distance expression over the table's row, bound
    to the leg's query vector.

    Example::

        fq = plan_hybrid(Doc.embedding, Doc.tsv, "vacuum", q)
        [(leg.kind, leg.column_name) for leg in fq.legs]
        # [('vector', 'column docs.embedding'), ('text', 'column docs.tsv')]
    """

    kind: str  # "vector" or "text"
    column_name: str
    select: Select[Any] | CompoundSelect[Any]
    weight: float
    spec: VectorSpec | None = None
    distance: ColumnElement[float] | None = None
    text: FullTextSpec | None = None


@dataclass(frozen=True)
class FusedQuery:
    """A built fused query: the statement, its legs, and the sizes it was built for.

    The statement returns the row (the mapped object for an ORM column, else the
    table's columns other than vectors and tsvectors), then ``score``, then ``rank_<i>``
    for each leg (its 1-based rank in leg ``i``, NULL if that leg did not return the
    row), then ``distance_<i>`` for each vector leg (the exact distance to that leg's
    query vector), best first.

    Example::

        fq = plan_multi({Doc.title_embedding: 1, Doc.body_embedding: 2}, q, k=5)
        fq.candidates, len(fq.legs)          # (100, 2)
        session.execute(fq.select).all()     # [(Doc, score, rank_0, rank_1, d_0, d_1), ...]
    """

    select: Select[Any]
    legs: tuple[Leg, ...]
    k: int
    #: How deep each leg's ranking is fused (the head; see :func:`default_candidates`).
    candidates: int
    fusion: Fusion
    orm: bool
    #: True when the legs are filtered (they then need iterative index scans).
    filtered: bool = False
    #: How many rows each leg fetches: ``max(k, candidates)``.
    fetched: int = 0
    #: Values bound at execution, over those ``select`` was built with (a statement
    #: reused by ``plan_hybrid(..., cached=True)``): run ``select`` with them.
    params: Mapping[str, Any] = field(default_factory=dict)


# -- the pieces ---------------------------------------------------------------------


def _primary_key(table: Table, what: str) -> list[Column[Any]]:
    pk = list(table.primary_key.columns)
    if not pk:
        raise InvalidArgument(
            f"table {table.name} has no primary key; {what} joins its legs by primary key, "
            "so declare one"
        )
    return pk


def _key_labels(pk: Sequence[Column[Any]]) -> list[str]:
    return [
        f"pk_{i}" if c.name in _RESERVED or c.name.startswith("rank_") else c.name
        for i, c in enumerate(pk)
    ]


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidSearch(f"k must be a positive integer, got {k!r}")
    return k


def _resolve_candidates(candidates: object, k: int, specs: Sequence[VectorSpec]) -> int:
    hnsw = any(isinstance(s.index, HNSW) or (s.index is None and not s.declared) for s in specs)
    if hnsw and k > MAX_EF_SEARCH:
        raise InvalidSearch(
            f"k={k} is above {MAX_EF_SEARCH:,}, the most rows an HNSW index scan can return "
            "(hnsw.ef_search caps at 1,000); ask for fewer rows"
        )
    if candidates is None:
        return DEFAULT_CANDIDATES
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
        raise InvalidSearch(f"candidates must be a positive integer, got {candidates!r}")
    if hnsw and candidates > MAX_EF_SEARCH:
        raise InvalidSearch(
            f"candidates={candidates} is above {MAX_EF_SEARCH:,}, the most rows an HNSW index "
            "scan can return (hnsw.ef_search caps at 1,000); lower candidates"
        )
    return candidates


def _rebind(stmt: Select[Any], param: BindParameter[Any]) -> Select[Any]:
    """``stmt`` with its ``query_vector`` parameter replaced by ``param``.

    Each leg binds its own query vector; two parameters of one name would silently
    share one value.
    """

    def replace(element: Any, **kw: Any) -> Any:
        if isinstance(element, BindParameter) and element.key == QUERY_PARAM:
            return param
        return None

    replaced = visitors.replacement_traverse(
        typing.cast(visitors.ExternallyTraversible, stmt), {}, replace
    )
    assert isinstance(replaced, Select)
    return replaced


def _vector_leg(
    column: Any,
    query: Any,
    *,
    index: int,
    candidates: int,
    clauses: Sequence[ColumnElement[bool]],
    weight: float,
) -> Leg:
    col, spec = resolve_spec(column)
    table = col.table
    assert isinstance(table, Table)
    pk = _primary_key(table, "a fused search")
    # nearest()'s own builder, so the leg orders by exactly the indexed expression
    # (halfvec casts, binary-quantized candidates included); it checks the query vector.
    nq = plan_nearest(col, query, candidates).filtered(clauses)
    labels = _key_labels(pk)
    keys = [c.label(n) for c, n in zip(pk, labels, strict=True)]
    ann: Select[Any] = nq.select.with_only_columns(*keys, nq.select.selected_columns["distance"])
    exact: Select[Any] = nq.exact.with_only_columns(*keys, nq.exact.selected_columns["distance"])
    old = next(
        p for p in visitors.iterate(ann) if isinstance(p, BindParameter) and p.key == QUERY_PARAM
    )
    param = bindparam(f"{QUERY_PARAM}_{index}", old.value, type_=old.type)
    ann, exact = _rebind(ann, param), _rebind(exact, param)
    label = ann.selected_columns["distance"]
    assert isinstance(label, Label)
    distance = label.element
    assert isinstance(distance, Distance)
    return Leg(
        kind="vector",
        column_name=nq.column_name,
        select=_with_exact_fallback(ann, exact, candidates, index),
        weight=weight,
        spec=spec,
        # The row's exact distance in the outer query, which no index serves.
        distance=Distance(distance.left, distance.right, distance.operator, None),
    )


def _with_exact_fallback(
    ann: Select[Any], exact: Select[Any], candidates: int, index: int
) -> CompoundSelect[Any]:
    """The leg's index scan, or, when it returns fewer than ``candidates`` rows, the same
    leg answered exactly, in one statement.

    An index scan comes back short when iterative scans run out (dead index entries after
    updates and deletes, a selective filter) or when fewer rows match; the exact arm
    then returns every match. Its gate, ``(SELECT count(*) FROM ann) < candidates``, has
    no columns of its own, so PostgreSQL evaluates it once, before running the arm:
    when the index scan was complete, the exact arm costs nothing.
    """
    found_cte = ann.cte(f"ann_{index}").prefix_with("MATERIALIZED")
    found = select(func.count()).select_from(found_cte).scalar_subquery()
    exact_sub = exact.subquery(f"exact_{index}")
    return union_all(
        select(*found_cte.c).where(found >= candidates),
        select(*exact_sub.c).where(found < candidates),
    )


def _text_leg(
    col: Column[Any],
    spec: FullTextSpec,
    query_text: str,
    *,
    candidates: int,
    clauses: Sequence[ColumnElement[bool]],
    weight: float,
    column_name: str,
) -> Leg:
    table = col.table
    assert isinstance(table, Table)
    pk = _primary_key(table, "a fused search")
    q = spec.tsquery(bindparam(QUERY_TEXT_PARAM, query_text, type_=Text))
    score = ts_rank_cd(col, q).label("score")
    keys = [c.label(n) for c, n in zip(pk, _key_labels(pk), strict=True)]
    stmt = (
        select(*keys, score)
        # tsv @@ q is what the GIN index serves (a bitmap index scan).
        .where(col.bool_op("@@")(q), *clauses)
        .order_by(score.desc(), *pk)
        .limit(candidates)
    )
    return Leg(kind="text", column_name=column_name, select=stmt, weight=weight, text=spec)


def _bm25_leg(
    col: Column[Any],
    query_text: str,
    *,
    candidates: int,
    clauses: Sequence[ColumnElement[bool]],
    weight: float,
    column_name: str,
) -> Leg:
    """The BM25 text leg: :func:`vecalchemy.bm25.bm25_scores` over the column's postings."""
    table = col.table
    assert isinstance(table, Table)
    pk = _primary_key(table, "a fused search")
    labels = _key_labels(pk)
    scores = bm25_scores(col, query_text, None if clauses else candidates)
    if scores is None:  # no terms: the leg returns nothing
        nothing = [cast(null(), c.type).label(n) for c, n in zip(pk, labels, strict=True)]
        stmt = select(*nothing, literal(0.0, Float).label("score")).where(false())
        return Leg(kind="text", column_name=column_name, select=stmt, weight=weight)
    keys = [scores.c[f"key_{i}"] for i in range(len(pk))]
    stmt = select(*(c.label(n) for c, n in zip(keys, labels, strict=True)), scores.c.score)
    if clauses:  # filtered: score every match, keep the best that pass the filters
        on = and_(*(c == key for c, key in zip(pk, keys, strict=True)))
        stmt = stmt.select_from(scores).join(table, on).where(*clauses)
    stmt = stmt.order_by(scores.c.score.desc(), *keys).limit(candidates)
    return Leg(kind="text", column_name=column_name, select=stmt, weight=weight)


def _is_derived(col: Any) -> bool:
    """Vectors, tsvectors and BM25 term columns: large, and derived from other columns."""
    return bool(is_vector_type(col.type) or is_fulltext_type(col.type) or BM25_INFO_KEY in col.info)


def _target(column: Any, table: Table) -> tuple[Any, list[Any], list[Any]]:
    """What the fused query returns: the entity (ORM) or the table's plain columns.

    Vectors and tsvectors are large and derived: deferred (ORM) or left out (Core).
    """
    if isinstance(column, InstrumentedAttribute):
        entity = column.parent.entity
        big = [attr for attr in column.parent.column_attrs if _is_derived(attr.columns[0])]
        return entity, [entity], [defer(getattr(entity, a.key)) for a in big]
    cols = [c for c in table.c if not _is_derived(c)]
    return None, cols, []


def _fuse(
    column: Any,
    table: Table,
    legs: Sequence[Leg],
    fusion: Fusion,
    k: int,
    *,
    exact: bool,
    depth: int,
) -> Select[Any]:
    """Rank each leg, fuse the ranks or scores, keep the best ``k``, join back.

    Only the first ``depth`` rows of each leg (its *head*) are fused; a row in no head
    (the legs fetch more when ``k`` is above ``depth``) ranks after every row that is in
    one, by the same fusion over its deeper ranks. The order of the head rows is thus
    the same whatever ``k`` is: ties are broken by primary key, never by deeper ranks.
    """
    pk = _primary_key(table, "a fused search")
    n = len(pk)
    parts = []
    for i, leg in enumerate(legs):
        sq = leg.select.subquery(f"leg_{i}")
        key = list(sq.c)[:n]
        if leg.kind == "vector":
            assert leg.spec is not None
            order = [sq.c.distance.asc(), *key]
            raw = leg.spec.metric.similarity_sql(sq.c.distance, dim=leg.spec.dim)
        else:
            order = [sq.c.score.desc(), *key]
            # ts_rank_cd returns real: normalise in double precision.
            raw = cast(sq.c.score, Float)
        ranked = select(
            *key, func.row_number().over(order_by=order).label("rank"), raw.label("raw")
        ).subquery(f"ranked_{i}")
        rkey = list(ranked.c)[:n]
        head = ranked.c.rank <= literal(depth, BigInteger)
        ranks = [
            (ranked.c.rank if j == i else cast(null(), BigInteger)).label(f"rank_{j}")
            for j in range(len(legs))
        ]
        if exact:  # scored after the union, from every column's exact distance
            parts.append(select(*rkey, head.label("head"), *ranks))
            continue
        weight = literal(leg.weight, Float)
        if isinstance(fusion, RRF):
            # Cast to double precision: integer division would truncate, numeric is slow.
            contrib = divide(weight, cast(ranked.c.rank + literal(fusion.k, BigInteger), Float))
        else:
            # Min-max over the head; all of it equally good (or one row): full score.
            lo = func.min(ranked.c.raw).filter(head).over()
            hi = func.max(ranked.c.raw).filter(head).over()
            norm = (ranked.c.raw - lo) / func.nullif(hi - lo, 0)
            contrib = weight * func.coalesce(norm, literal_column("1.0"))
        parts.append(select(*rkey, head.label("head"), contrib.label("score"), *ranks))
    united = union_all(*parts).subquery("legs")
    ukey = list(united.c)[:n]
    rank_cols = [func.min(united.c[f"rank_{j}"]).label(f"rank_{j}") for j in range(len(legs))]
    any_head = func.bool_or(united.c.head)
    in_head = any_head.label("head")
    entity, target, options = _target(column, table)
    if exact:
        grouped = select(*ukey, in_head, *rank_cols).group_by(*ukey).subquery("candidates")
        gkey = list(grouped.c)[:n]
        terms = []
        for leg in legs:
            assert leg.spec is not None
            assert leg.distance is not None
            sim = leg.spec.metric.similarity_sql(leg.distance, dim=leg.spec.dim)
            # A NULL vector has no similarity: it adds nothing (documented).
            terms.append(literal(leg.weight, Float) * func.coalesce(sim, literal_column("0.0")))
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        score: ColumnElement[Any] = total.label("score")
        order = [grouped.c.head.desc(), score.desc(), *pk]
    else:
        # A head row's score counts its head ranks only; a row in no head has its deeper
        # ranks' score, and ranks after every head row.
        head_score = func.coalesce(
            func.sum(united.c.score).filter(united.c.head), literal_column("0.0")
        )
        fused_score = case((any_head, head_score), else_=func.sum(united.c.score)).label("score")
        grouped = (
            select(*ukey, in_head, fused_score, *rank_cols)
            .group_by(*ukey)
            .order_by(in_head.desc(), fused_score.desc(), *ukey)
            .limit(k)
            .subquery("fused")
        )
        gkey = list(grouped.c)[:n]
        score = grouped.c.score
        order = [grouped.c.head.desc(), score.desc(), *pk]
    on = and_(*(c == g for c, g in zip(pk, gkey, strict=True)))
    extras = [score, *(grouped.c[f"rank_{j}"] for j in range(len(legs)))]
    for i, leg in enumerate(legs):
        if leg.distance is not None:
            extras.append(leg.distance.label(f"distance_{i}"))

    if entity is not None:
        stmt = select(entity, *extras).join_from(entity, grouped, on).options(*options)
    else:
        stmt = select(*target, *extras).select_from(table.join(grouped, on))
    stmt = stmt.order_by(*order)
    return stmt.limit(k) if exact else stmt


# -- hybrid ---------------------------------------------------------------------------


def plan_hybrid(
    vector_column: Any,
    text_column: Any,
    query_text: Any,
    query_vector: Any,
    k: int = 10,
    *,
    where: Where = None,
    fusion: Fusion | None = None,
    language: str | None = None,
    candidates: int | None = None,
    cached: bool = False,
) -> FusedQuery:
    """Build :func:`hybrid_query`'s statement and what the runner needs; no I/O.

    Everything is checked here, before any SQL runs. ``cached=True`` (what
    :func:`~vecalchemy.hybrid_search` does) reuses the statement built for an earlier
    query of the same shape (same columns, k, candidates, fusion and language, and no
    ``where``), kept on the vector column: building it costs more client time than the
    server spends running it. The query's values are then in :attr:`FusedQuery.params`:
    run it with :func:`vecalchemy.run`, or ``session.execute(fq.select, fq.params)``.

    Example::

        fq = plan_hybrid(Doc.embedding, Doc.tsv, "vacuum", q, k=50)
        fq.candidates, fq.fetched             # (100, 100): legs fetch max(k, 100)
    """
    if fusion is None:
        fusion = default_fusion(text_column)
    if not isinstance(fusion, (RRF, Weighted)):
        raise InvalidSearch(f"fusion must be RRF(...) or Weighted(...), got {fusion!r}")
    clauses = check_clauses(where)
    k = _check_k(k)
    vcol, vspec = resolve_spec(vector_column)
    sparse: tuple[Column[Any], VectorSpec] | None = None
    text: tuple[Column[Any], FullTextSpec] | None = None
    bm25: tuple[Column[Any], BM25Spec] | None = None
    tcol = _column_of(text_column)
    declared = tcol.info.get(BM25_INFO_KEY) if tcol is not None else None
    if tcol is not None and isinstance(declared, BM25Spec):
        bm25 = (tcol, declared)
        if language is not None and language != declared.analyzer.language:
            raise InvalidSearch(
                f"{_name(tcol)} is analysed with language {declared.analyzer.language!r}; a "
                f"query analysed as {language!r} would stem words differently and miss "
                "matches. Drop language= (the column's analyser is used)"
            )
    elif tcol is not None and is_vector_type(tcol.type):
        sparse = resolve_spec(text_column)
        if sparse[1].storage is not Storage.SPARSEVEC:
            raise InvalidArgument(
                f"text_column {_name(tcol)} is a dense vector column; hybrid search pairs a "
                "vector column with a FullText column or a sparsevec column. To combine two "
                "dense columns use multi_search"
            )
        if language is not None:
            raise InvalidSearch(
                f"language= applies to full-text columns; {_name(tcol)} is a sparsevec column"
            )
    else:
        text = resolve_fulltext(text_column, language)
    other = (
        sparse[0]
        if sparse is not None
        else text[0]
        if text is not None
        else bm25[0]
        if bm25 is not None
        else None
    )
    assert other is not None
    if other.table is not vcol.table:
        raise InvalidArgument(
            f"{_name(vcol)} and {_name(other)} are in different tables; hybrid search "
            "fuses two columns of one table"
        )
    table = vcol.table
    assert isinstance(table, Table)
    _primary_key(table, "hybrid search")
    weights = (1.0, 1.0)
    if isinstance(fusion, Weighted):
        weights = (0.5, 0.5)
        if fusion.weights is not None:
            if len(fusion.weights) != 2:
                raise InvalidSearch(
                    f"Weighted has {len(fusion.weights)} weights but hybrid search has 2 legs "
                    "(vector, then text); give two weights"
                )
            weights = (float(fusion.weights[0]), float(fusion.weights[1]))
    specs = [vspec] + ([sparse[1]] if sparse is not None else [])
    depth = _resolve_candidates(candidates, k, specs)
    n = max(k, depth)  # the rows each leg fetches
    if text is not None:
        query_text = check_query_text(query_text)
    elif bm25 is not None and not isinstance(query_text, str):
        raise InvalidSearch(
            f"query text must be a string, got {type(query_text).__name__}; pass the words "
            "to search for"
        )
    params: dict[str, Any] = {
        f"{QUERY_PARAM}_0": query_value(vspec, query_vector, column=_name(vcol))
    }
    terms = None
    if sparse is not None:
        params[f"{QUERY_PARAM}_1"] = query_value(sparse[1], query_text, column=_name(sparse[0]))
    elif bm25 is not None:
        terms = query_terms(bm25[1], query_text)
        if terms is not None:
            params["bm25_terms"], params["bm25_qtf"] = terms
    else:
        params[QUERY_TEXT_PARAM] = query_text
    key = None
    templates: dict[Any, Any] = {}
    if cached and not clauses:
        key = (id(vector_column), id(text_column), k, depth, fusion, language, terms is None)
        templates = vcol.info.setdefault(_TEMPLATES_KEY, {})
        hit = templates.get(key)
        if hit is not None and hit[0] is vector_column and hit[1] is text_column:
            reused: FusedQuery = hit[2]
            return dataclasses.replace(reused, params=params)
    legs = [
        _vector_leg(
            vector_column, query_vector, index=0, candidates=n, clauses=clauses, weight=weights[0]
        )
    ]
    if sparse is not None:
        legs.append(
            _vector_leg(
                text_column, query_text, index=1, candidates=n, clauses=clauses, weight=weights[1]
            )
        )
    elif bm25 is not None:
        legs.append(
            _bm25_leg(
                bm25[0],
                query_text,
                candidates=n,
                clauses=clauses,
                weight=weights[1],
                column_name=_name(bm25[0]),
            )
        )
    else:
        assert text is not None
        legs.append(
            _text_leg(
                text[0],
                text[1],
                query_text,
                candidates=n,
                clauses=clauses,
                weight=weights[1],
                column_name=_name(text[0]),
            )
        )
    stmt = _fuse(vector_column, table, legs, fusion, k, exact=False, depth=depth)
    fq = FusedQuery(
        select=stmt,
        legs=tuple(legs),
        k=k,
        candidates=depth,
        fetched=n,
        fusion=fusion,
        orm=isinstance(vector_column, InstrumentedAttribute),
        filtered=bool(clauses),
        params=params,
    )
    if key is not None:
        if len(templates) >= _TEMPLATES_MAX:
            templates.clear()
        # The columns are kept with the statement: a key holds only their ids.
        templates[key] = (vector_column, text_column, fq)
    return fq


def hybrid_query(
    vector_column: Any,
    text_column: Any,
    query_text: Any,
    query_vector: Any,
    k: int = 10,
    *,
    where: Where = None,
    fusion: Fusion | None = None,
    language: str | None = None,
    candidates: int | None = None,
) -> Select[Any]:
    """One ``Select`` fusing a vector leg with a full-text (or sparse) leg.

    ``text_column`` is a :func:`~vecalchemy.fulltext.FullText` column (``query_text`` is
    the user's text, parsed with ``websearch_to_tsquery`` in the column's language) or a
    ``sparsevec`` column (``query_text`` is the sparse query: a ``SparseVector`` or an
    ``{index: weight}`` dict). Rows: see :class:`FusedQuery`. Run it with
    :func:`vecalchemy.hybrid.hybrid_search`, which also sets ``hnsw.ef_search`` for the
    candidates.

    Example::

        stmt = hybrid_query(Doc.embedding, Doc.tsv, "error E1234", q, k=5)
        for doc, score, vector_rank, text_rank, distance in session.execute(stmt):
            ...
    """
    fq = plan_hybrid(
        vector_column,
        text_column,
        query_text,
        query_vector,
        k,
        where=where,
        fusion=fusion,
        language=language,
        candidates=candidates,
    )
    return fq.select.execution_options(**{PLAN_OPTION: fq})


# -- multi-vector ---------------------------------------------------------------------


def plan_multi(
    columns: Mapping[Any, float],
    query: Any,
    k: int = 10,
    *,
    where: Where = None,
    fusion: Fusion = Weighted(),
    candidates: int | None = None,
) -> FusedQuery:
    """Build :func:`multi_query`'s statement and what the runner needs; no I/O.

    Everything is checked here, before any SQL runs.

    Example::

        fq = plan_multi({Doc.title_embedding: 0.3, Doc.body_embedding: 0.7}, q)
        print(fq.select)
    """
    if not isinstance(fusion, (RRF, Weighted)):
        raise InvalidSearch(f"fusion must be Weighted() or RRF(...), got {fusion!r}")
    if isinstance(fusion, Weighted) and fusion.weights is not None:
        raise InvalidSearch(
            "multi_search takes its weights from the column mapping "
            "({Doc.title_embedding: 0.3, ...}); use Weighted() without weights"
        )
    if not isinstance(columns, Mapping) or not columns:
        raise InvalidSearch(
            "columns must be a non-empty mapping of vector column to weight, e.g. "
            "{Doc.title_embedding: 0.3, Doc.body_embedding: 0.7}"
        )
    clauses = check_clauses(where)
    k = _check_k(k)
    resolved: list[tuple[Any, Column[Any], VectorSpec, float]] = []
    for column, weight in columns.items():
        col, spec = resolve_spec(column)
        w = _check_number(f"the weight of {_name(col)}", weight)
        if any(col is r[1] for r in resolved):
            raise InvalidSearch(f"{_name(col)} is given twice; give each column once")
        resolved.append((column, col, spec, w))
    table = resolved[0][1].table
    assert isinstance(table, Table)
    for _, col, _, _ in resolved[1:]:
        if col.table is not table:
            raise InvalidArgument(
                f"{_name(col)} is not in table {table.name}; multi_search combines columns of "
                "one table"
            )
    _primary_key(table, "multi_search")
    queries = _queries(query, resolved)
    depth = _resolve_candidates(candidates, k, [r[2] for r in resolved])
    n = max(k, depth)  # the rows each leg fetches
    legs = [
        _vector_leg(column, q, index=i, candidates=n, clauses=clauses, weight=w)
        for i, ((column, _, _, w), q) in enumerate(zip(resolved, queries, strict=True))
    ]
    stmt = _fuse(
        resolved[0][0], table, legs, fusion, k, exact=isinstance(fusion, Weighted), depth=depth
    )
    return FusedQuery(
        select=stmt,
        legs=tuple(legs),
        k=k,
        candidates=depth,
        fetched=n,
        fusion=fusion,
        orm=isinstance(resolved[0][0], InstrumentedAttribute),
        filtered=bool(clauses),
    )


def _queries(
    query: Any, resolved: Sequence[tuple[Any, Column[Any], VectorSpec, float]]
) -> list[Any]:
    """One query vector per column: the same one, or each column's from a mapping."""
    if not (
        isinstance(query, Mapping)
        and query
        and all(isinstance(key, (InstrumentedAttribute, Column)) for key in query)
    ):
        return [query] * len(resolved)
    by_column: dict[int, Any] = {}
    for key, value in query.items():
        col = _column_of(key)
        assert col is not None
        if not any(col is r[1] for r in resolved):
            raise InvalidSearch(
                f"the query names {_name(col)}, which is not among the columns searched"
            )
        by_column[id(col)] = value
    missing = [_name(r[1]) for r in resolved if id(r[1]) not in by_column]
    if missing:
        raise InvalidSearch(
            f"the query mapping has no vector for {', '.join(missing)}; give one per column "
            "or a single vector for all"
        )
    return [by_column[id(r[1])] for r in resolved]


def multi_query(
    columns: Mapping[Any, float],
    query: Any,
    k: int = 10,
    *,
    where: Where = None,
    fusion: Fusion = Weighted(),
    candidates: int | None = None,
) -> Select[Any]:
    """One ``Select`` ranking rows by several vector columns of one table.

    ``columns`` maps each column to its weight. ``query`` is one vector for every
    column, or a mapping of column to vector. With :class:`Weighted` (the default) the
    score is ``sum(weight * similarity)`` with each row's exact similarity on every
    column, computed for the union of the legs' candidates (fetched by primary key);
    with :class:`RRF` it is ``sum(weight / (k + rank))``. Rows: see :class:`FusedQuery`.

    Example::

        stmt = multi_query({Doc.title_embedding: 0.3, Doc.body_embedding: 0.7}, q, k=5)
        for doc, score, title_rank, body_rank, title_d, body_d in session.execute(stmt):
            ...
    """
    fq = plan_multi(columns, query, k, where=where, fusion=fusion, candidates=candidates)
    return fq.select.execution_options(**{PLAN_OPTION: fq})


def _column_of(column: Any) -> Column[Any] | None:
    if isinstance(column, InstrumentedAttribute):
        cols = getattr(column.property, "columns", None)
        if cols and isinstance(cols[0], Column):
            return cols[0]
        return None
    return column if isinstance(column, Column) else None


def _name(col: Column[Any]) -> str:
    table = getattr(col.table, "name", None) if col.table is not None else None
    return f"column {table}.{col.name}" if table else f"column {col.name}"
