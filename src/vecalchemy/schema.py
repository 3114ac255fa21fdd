"""Embedding columns that know their metric, and the vector indexes that follow from it.

:func:`Embedding` returns a SQLAlchemy ``mapped_column`` whose metric, storage and index
are declared once. When the column is attached to its table, vecalchemy adds a
:class:`sqlalchemy.Index` with the operator class derived from metric and storage, so
``metadata.create_all()`` and Alembic create the index that the queries of
:mod:`vecalchemy.query` will use. pgvector's limits are checked at declaration time.

Example::

    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
    from vecalchemy import Embedding, HNSW

    class Base(DeclarativeBase):
        pass

    class Doc(Base):
        __tablename__ = "docs"
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str]
        embedding = Embedding(384, metric="cosine", index=HNSW(m=16, ef_construction=64))

    # CREATE INDEX ix_docs_embedding_hnsw ON docs USING hnsw (embedding vector_cosine_ops)
    #   WITH (m = 16, ef_construction = 64)

A ``vector`` column of more than 2,000 dimensions cannot be indexed directly; with an
index it gets a ``halfvec`` expression index (``(embedding::halfvec(3072))``) and every
query is rewritten to the same expression, so 3,072-dimension embeddings just work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from pgvector.sqlalchemy import HALFVEC, SPARSEVEC, VECTOR
from sqlalchemy import (
    Column,
    ColumnElement,
    Index,
    Table,
    Text,
    cast,
    event,
    func,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import MappedColumn, mapped_column
from sqlalchemy.sql.ddl import BaseDDLElement
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.types import TypeEngine

from vecalchemy._distance import indexed_distance, query_param
from vecalchemy._names import describe, digest, fit_identifier, qualified
from vecalchemy._source import SOURCE_KEY, SourceSpec, hash_column_name, model_column_name
from vecalchemy._sql import (
    BUILDING,
    INFO_KEY,
    BitString,
    Distance,
    Scan,
    column_of,
    dimensioned_storage,
    plain_type,
)
from vecalchemy._vectors import as_query_value
from vecalchemy.errors import (
    ConfigurationError,
    InvalidArgument,
    MetricMismatch,
    MetricRequired,
    UnsupportedIndex,
)
from vecalchemy.metrics import (
    INDEX_DIM_LIMITS,
    STORAGE_DIM_LIMITS,
    IndexMethod,
    Metric,
    Storage,
)

__all__ = [
    "HNSW",
    "Embedding",
    "EmbeddingBit",
    "EmbeddingComparator",
    "EmbeddingHalfvec",
    "EmbeddingSparsevec",
    "EmbeddingVector",
    "IVFFlat",
    "VectorSpec",
    "defer_indexes",
    "embedding_column",
    "ivfflat_lists_for",
    "partial_index",
    "resolve_spec",
    "vector_indexes",
]

log = logging.getLogger("vecalchemy.schema")


_PG_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class HNSW:
    """An HNSW index: better recall/speed trade-off, can be built on an empty table.

    ``m`` (2..100) is the number of links per node, ``ef_construction`` (4..1000, at
    least ``2 * m``) the candidate list size while building. ``name`` overrides the
    generated index name.

    ``quantize`` indexes a compressed copy of each vector while the column keeps full
    precision: ``"halfvec"`` (half the index size, same metric) or ``"binary"`` (one bit
    per dimension, 32x smaller: an index on ``binary_quantize(embedding)::bit(dim)``
    searched by Hamming distance; :func:`vecalchemy.search` then over-fetches candidates
    and re-ranks them by the exact distance in the same statement).

    ``where`` makes the index partial (``CREATE INDEX ... WHERE <where>``), e.g. one index
    per frequent filter value; PostgreSQL uses it for queries whose filter implies the
    predicate. It is DDL written by you, never user input. For several partial indexes on
    one column see :func:`partial_index`.

    Example::

        Embedding(768, index=HNSW(m=24, ef_construction=128))
        Embedding(1536, index=HNSW(quantize="binary"))
        Embedding(384, index=HNSW(where="lang = 'en'"))
    """

    m: int = 16
    ef_construction: int = 64
    name: str | None = None
    quantize: str | None = None
    where: str | None = None

    method = IndexMethod.HNSW

    def __post_init__(self) -> None:
        _check_quantize(self.quantize)
        _check_where(self.where)
        _check_int("HNSW m", self.m, 2, 100)
        _check_int("HNSW ef_construction", self.ef_construction, 4, 1000)
        if self.ef_construction < 2 * self.m:
            raise UnsupportedIndex(
                f"HNSW ef_construction ({self.ef_construction}) must be at least 2 * m "
                f"({2 * self.m}); raise ef_construction or lower m"
            )

    def with_options(self, rows: int | None = None) -> dict[str, int]:
        """The ``WITH (...)`` storage parameters of the index."""
        return {"m": self.m, "ef_construction": self.ef_construction}


@dataclass(frozen=True)
class IVFFlat:
    """An IVFFlat index: quick to build, but trained on the rows present at build time.

    ``lists=None`` (the default) picks pgvector's rule when the index is built:
    ``rows / 1000`` up to one million rows, ``sqrt(rows)`` above. Because the list
    centres are learnt from the table's rows, an IVFFlat index is never built on an
    empty table: ``metadata.create_all()`` skips it (and logs that it did), and
    :func:`vecalchemy.build_indexes` builds it once rows are loaded.

    Migrations: the index's DDL has no ``lists`` when it was left ``None``, so a
    migration that creates it directly gets pgvector's default of 100 lists. In
    migrations, give ``lists`` explicitly or call :func:`vecalchemy.build_indexes`.

    Example::

        Embedding(384, index=IVFFlat())          # lists from the row count at build time
        Embedding(384, index=IVFFlat(lists=200))

    ``quantize`` and ``where`` work as for :class:`HNSW`.
    """

    lists: int | None = None
    name: str | None = None
    quantize: str | None = None
    where: str | None = None

    method = IndexMethod.IVFFLAT

    def __post_init__(self) -> None:
        _check_quantize(self.quantize)
        _check_where(self.where)
        if self.lists is not None:
            _check_int("IVFFlat lists", self.lists, 1, 32768)

    def with_options(self, rows: int | None = None) -> dict[str, int]:
        """The ``WITH (lists = n)`` parameter; needs ``rows`` when ``lists`` is None."""
        if self.lists is not None:
            return {"lists": self.lists}
        if rows is None:
            raise UnsupportedIndex("IVFFlat(lists=None) needs the row count to choose lists")
        return {"lists": ivfflat_lists_for(rows)}


IndexSpec = HNSW | IVFFlat


def ivfflat_lists_for(rows: int) -> int:
    """pgvector's rule for IVFFlat ``lists``: rows/1000 up to 1M rows, sqrt(rows) above.

    Example::

        >>> ivfflat_lists_for(250_000), ivfflat_lists_for(4_000_000)
        (250, 2000)
    """
    n = rows // 1000 if rows <= 1_000_000 else math.isqrt(rows)
    return max(1, min(32768, n))


#: The index compressions ``HNSW(quantize=...)`` / ``IVFFlat(quantize=...)`` accept.
QUANTIZE = ("halfvec", "binary")


def _check_quantize(quantize: object) -> None:
    if quantize is not None and quantize not in QUANTIZE:
        raise UnsupportedIndex(
            f"quantize must be one of {', '.join(map(repr, QUANTIZE))} or None, got {quantize!r}"
        )


def _check_where(where: object) -> None:
    if where is not None and (not isinstance(where, str) or not where.strip()):
        raise UnsupportedIndex(
            f"where must be a SQL predicate string such as \"lang = 'en'\", got {where!r}; "
            "for a SQLAlchemy expression use vecalchemy.partial_index()"
        )


def _check_int(what: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise UnsupportedIndex(f"{what} must be an integer from {lo} to {hi}, got {value!r}")


@dataclass(frozen=True)
class VectorSpec:
    """What vecalchemy knows about a vector column: dimension, metric, storage, index.

    Stored in ``Column.info["vecalchemy"]`` by :func:`Embedding`, and built on the fly
    by :func:`resolve_spec` for plain pgvector-python columns.
    """

    dim: int
    metric: Metric
    storage: Storage
    index: IndexSpec | None = None
    index_name: str | None = field(default=None, compare=False)
    #: True for columns declared with :func:`Embedding` (whose ``index`` is known to be
    #: the whole truth), False for specs inferred from a plain pgvector column.
    declared: bool = field(default=False, compare=False)

    @property
    def binary_quantized(self) -> bool:
        """True when the index is on ``binary_quantize(column)::bit(dim)``."""
        return self.index is not None and self.index.quantize == "binary"

    @property
    def index_storage(self) -> Storage:
        """The storage type the index works on.

        ``bit`` for ``quantize="binary"``; ``halfvec`` for ``quantize="halfvec"`` and for a
        ``vector`` column above 2,000 dimensions; else the column's own.
        """
        if self.index is None:
            return self.storage
        if self.index.quantize == "binary":
            return Storage.BIT
        if self.storage is Storage.VECTOR and (
            self.index.quantize == "halfvec" or self.dim > INDEX_DIM_LIMITS[Storage.VECTOR]
        ):
            return Storage.HALFVEC
        return self.storage

    @property
    def index_metric(self) -> Metric:
        """The metric of the index: Hamming for a binary-quantized index, else the column's."""
        return Metric.HAMMING if self.binary_quantized else self.metric

    @property
    def query_storage(self) -> Storage:
        """The storage type of the expression ordered by (and so of the query vector).

        The index's, except for a binary-quantized index, whose candidates are re-ranked
        by the exact distance on the column itself.
        """
        return self.storage if self.binary_quantized else self.index_storage

    @property
    def uses_expression_index(self) -> bool:
        """True when the index is on ``column::halfvec(dim)`` rather than the column."""
        return self.index_storage is not self.storage

    @property
    def opclass(self) -> str:
        """The operator class of the index, derived from metric and index storage."""
        return self.index_metric.opclass(self.index_storage)

    def sql_type(self) -> TypeEngine[Any]:
        """The column type for this spec: pgvector-python's, checking every value written
        (dimension, finite values, no zero vector in a cosine column) and whose distance
        methods follow the declared metric (see :class:`EmbeddingComparator`)."""
        return _column_type(self.storage, self.dim, zero_ok=self.metric is not Metric.COSINE)

    def indexplain_type(self) -> TypeEngine[Any]:
        """The pgvector-python type of the indexed expression (see :attr:`index_storage`)."""
        return plain_type(self.index_storage, self.dim)

    def queryplain_type(self) -> TypeEngine[Any]:
        """The type of the expression queries order by (see :attr:`query_storage`)."""
        return plain_type(self.query_storage, self.dim)

    def scan(self, column: Column[Any]) -> Scan | None:
        """The index scan that serves this spec's ORDER BY on ``column``, or None when no
        index can (declared ``index=None``).

        For a binary-quantized index that is the scan of its bit index by Hamming distance
        (the candidates' exact distances are computed without an index).
        """
        if self.index is None and self.declared:
            return None
        table = column.table if isinstance(column.table, Table) else None
        index = None
        if self.index_name is not None:
            index = qualified(table.schema if table is not None else None, self.index_name)
        lists = self.index.lists if isinstance(self.index, IVFFlat) else None
        return Scan(
            method=self.index.method if self.index is not None else None,
            index=index,
            lists=lists,
            table=qualified(table.schema, table.name) if table is not None else "",
            column=column.name,
            metric=self.index_metric,
            opclass=self.index_metric.opclass(self.index_storage),
            column_metric=self.metric,
        )


# -- the column types of Embedding(): checked writes, distances that follow the metric ---


class EmbeddingComparator(VECTOR.comparator_factory):  # type: ignore[valid-type,misc]
    """Distance methods of an :func:`Embedding` column, bound to its declared metric.

    ``Doc.embedding.cosine_distance(q)`` on a cosine column is the indexable distance
    (on the indexed expression: ``embedding::halfvec(3072)`` above 2,000 dimensions),
    with the query vector checked now and the index settings it needs carried by the
    statement (see :mod:`vecalchemy.search._settings`). The distance method of another
    metric raises :class:`~vecalchemy.MetricMismatch`: no index of the column could
    serve it, so it would be a silent sequential scan. Ask for that explicitly with
    :meth:`exact_distance`.

    Example::

        select(Doc).order_by(Doc.embedding.cosine_distance(q)).limit(10)   # uses the index
        Doc.embedding.l2_distance(q)     # MetricMismatch: declared metric is 'cosine'
        Doc.embedding.exact_distance(q, metric="l2")   # unindexed, exact, on purpose
    """

    def l2_distance(self, other: Any) -> ColumnElement[float]:
        """Euclidean distance (``<->``): the column's metric must be l2."""
        return self._distance(Metric.L2, other)

    def max_inner_product(self, other: Any) -> ColumnElement[float]:
        """Negative inner product (``<#>``): the column's metric must be inner_product."""
        return self._distance(Metric.INNER_PRODUCT, other)

    def cosine_distance(self, other: Any) -> ColumnElement[float]:
        """Cosine distance (``<=>``): the column's metric must be cosine."""
        return self._distance(Metric.COSINE, other)

    def l1_distance(self, other: Any) -> ColumnElement[float]:
        """Manhattan distance (``<+>``): the column's metric must be l1."""
        return self._distance(Metric.L1, other)

    def hamming_distance(self, other: Any) -> ColumnElement[float]:
        """Hamming distance (``<~>``), for bit columns declared with metric hamming."""
        return self._distance(Metric.HAMMING, other)

    def jaccard_distance(self, other: Any) -> ColumnElement[float]:
        """Jaccard distance (``<%>``), for bit columns declared with metric jaccard."""
        return self._distance(Metric.JACCARD, other)

    def exact_distance(self, other: Any, metric: str | Metric) -> ColumnElement[float]:
        """The distance by any ``metric`` the storage supports, computed exactly, without
        an index: for re-ranking, display, or measuring recall. An ``ORDER BY`` on it
        scans every row that passes the filter.

        Example::

            d = Doc.embedding.exact_distance(q, metric="l2")
            select(Doc.id, d.label("l2")).where(Doc.lang == "en").order_by(d).limit(5)
        """
        col, spec = self._resolved()
        wanted = Metric.parse(metric)
        wanted.check_storage(spec.storage)
        rhs = self._operand(
            other, dataclasses.replace(spec, metric=wanted, index=None), col, exact=True
        )
        return Distance(self.expr, rhs, wanted.operator, None)

    def _resolved(self) -> tuple[Column[Any], VectorSpec]:
        return resolve_spec(self.expr)

    def _operand(
        self, other: Any, spec: VectorSpec, col: Column[Any], *, exact: bool
    ) -> ColumnElement[Any]:
        if isinstance(other, ColumnElement):
            return other  # another column: no query vector to check, no index to use
        param = query_param(spec, other, column=describe(col), exact=exact)
        return cast(param, plain_type(spec.storage if exact else spec.query_storage, spec.dim))

    def _distance(self, metric: Metric, other: Any) -> ColumnElement[float]:
        col, spec = self._resolved()
        if metric is not spec.metric:
            raise MetricMismatch(
                f"{describe(col)} is declared with metric {spec.metric.value!r}, so "
                f"{metric.comparator_method}() could not use its index and would scan the "
                f"whole table; use {spec.metric.comparator_method}(), or "
                f"exact_distance(q, metric={metric.value!r}) for an unindexed exact distance"
            )
        if isinstance(other, ColumnElement):
            return Distance(self.expr, other, metric.operator, None)
        return indexed_distance(self.expr, spec, other)


class _Checked:
    """Checks every value written to an :func:`Embedding` column before the driver sees it.

    A wrong dimension raises :class:`~vecalchemy.DimensionMismatch`, NaN or infinity
    :class:`~vecalchemy.InvalidVector`, and so does a zero vector in a cosine column
    (its cosine distance to anything is undefined). :func:`vecalchemy.setup` makes
    these errors reach the caller as they are, not wrapped in SQLAlchemy's
    ``StatementError``.
    """

    storage: Storage
    zero_ok: bool
    dim: Any
    label: str = "the column"

    def adapt(self, cls: Any, **kw: Any) -> Any:
        """The dialect's copy keeps the column's label (adapt() copies __init__ args only)."""
        adapted = super().adapt(cls, **kw)  # type: ignore[misc]
        if isinstance(adapted, _Checked):
            adapted.label = self.label
        return adapted

    def bind_processor(self, dialect: Any) -> Any:
        inner = super().bind_processor(dialect)  # type: ignore[misc]
        storage, dim, zero_ok, label = self.storage, self.dim, self.zero_ok, self.label

        def process(value: Any) -> Any:
            if value is not None:
                value = as_query_value(
                    value,
                    dim=dim,
                    storage=storage,
                    column="the column",
                    what=f"a value for {label}",
                    zero_ok=zero_ok,
                )
            return inner(value) if inner is not None else value

        return process


class EmbeddingVector(_Checked, VECTOR):
    """pgvector-python's ``VECTOR`` with checked writes and metric-bound distances."""

    cache_ok = True
    storage = Storage.VECTOR
    comparator_factory = EmbeddingComparator

    def __init__(self, dim: int, zero_ok: bool = True) -> None:
        super().__init__(dim)
        self.zero_ok = zero_ok


class EmbeddingHalfvec(_Checked, HALFVEC):
    """pgvector-python's ``HALFVEC`` with checked writes and metric-bound distances."""

    cache_ok = True
    storage = Storage.HALFVEC
    comparator_factory = EmbeddingComparator

    def __init__(self, dim: int, zero_ok: bool = True) -> None:
        super().__init__(dim)
        self.zero_ok = zero_ok


class EmbeddingSparsevec(_Checked, SPARSEVEC):
    """pgvector-python's ``SPARSEVEC`` with checked writes and metric-bound distances."""

    cache_ok = True
    storage = Storage.SPARSEVEC
    comparator_factory = EmbeddingComparator

    def __init__(self, dim: int, zero_ok: bool = True) -> None:
        super().__init__(dim)
        self.zero_ok = zero_ok


class EmbeddingBit(_Checked, BitString):
    """:class:`BitString` with checked writes and metric-bound distances."""

    cache_ok = True
    storage = Storage.BIT
    comparator_factory = EmbeddingComparator

    def __init__(self, dim: int, zero_ok: bool = True) -> None:
        super().__init__(dim)
        # Set here: a TypeDecorator hands unknown attributes to its impl, which has none.
        self.dim = dim
        self.zero_ok = zero_ok


def _column_type(storage: Storage, dim: int, *, zero_ok: bool) -> TypeEngine[Any]:
    if storage is Storage.VECTOR:
        return EmbeddingVector(dim, zero_ok)
    if storage is Storage.HALFVEC:
        return EmbeddingHalfvec(dim, zero_ok)
    if storage is Storage.SPARSEVEC:
        return EmbeddingSparsevec(dim, zero_ok)
    return EmbeddingBit(dim, zero_ok)


# -- query vectors and the indexable distance ------------------------------------------


_BQ_STORAGES = (Storage.VECTOR, Storage.HALFVEC)
_BQ_METRICS = (Metric.COSINE, Metric.INNER_PRODUCT, Metric.L2)


def check_spec(spec: VectorSpec) -> None:
    """Raise :class:`UnsupportedIndex` unless pgvector can store and index ``spec``."""
    dim, storage, metric, index = spec.dim, spec.storage, spec.metric, spec.index
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise UnsupportedIndex(f"dimension must be a positive integer, got {dim!r}")
    limit = STORAGE_DIM_LIMITS[storage]
    if dim > limit:
        raise UnsupportedIndex(
            f"{storage.value} columns hold at most {limit:,} dimensions, got {dim:,}"
        )
    metric.check_storage(storage)
    if index is None:
        return
    if not isinstance(index, (HNSW, IVFFlat)):
        raise UnsupportedIndex(
            f"index must be vecalchemy.HNSW(...), vecalchemy.IVFFlat(...) or None, got {index!r}"
        )
    if index.quantize is not None:
        allowed = (Storage.VECTOR,) if index.quantize == "halfvec" else _BQ_STORAGES
        if storage not in allowed:
            raise UnsupportedIndex(
                f"quantize={index.quantize!r} applies to "
                f"{' and '.join(s.value for s in allowed)} columns, not {storage.value}"
            )
        if index.quantize == "binary" and metric not in _BQ_METRICS:
            raise UnsupportedIndex(
                f"quantize='binary' re-ranks by the exact {metric.value} distance, which "
                "needs cosine, inner_product or l2 (binary codes of signs approximate those)"
            )
    methods = spec.index_metric.index_methods(spec.index_storage)
    if index.method not in methods:
        raise UnsupportedIndex(
            f"pgvector has no {index.method.value} index for {metric.value} on {storage.value}; "
            f"use {' or '.join(sorted(m.value.upper() for m in methods))}(...) instead"
        )
    istorage = spec.index_storage
    ilimit = INDEX_DIM_LIMITS[istorage]
    if storage is Storage.SPARSEVEC:
        return  # the sparsevec limit is on non-zero elements, checked when loading
    if dim > ilimit:
        hint = "reduce the dimension (binary quantization is an option)"
        why = " (a vector above 2,000 dimensions is indexed as halfvec)"
        raise UnsupportedIndex(
            f"pgvector indexes {istorage.value} of at most {ilimit:,} dimensions, got {dim:,}"
            f"{why if spec.uses_expression_index else ''}"
            f"; {hint}, or pass index=None for exact search only"
        )


# -- declaring columns ------------------------------------------------------------------


def Embedding(
    dim: int,
    *,
    metric: str | Metric = Metric.COSINE,
    storage: str | Storage = Storage.VECTOR,
    index: IndexSpec | None = HNSW(),
    nullable: bool = True,
    source: str | Sequence[str] | None = None,
    embedder: Any = None,
    sync: str = "inline",
    truncate: bool = False,
    **kw: Any,
) -> MappedColumn[Any]:
    """Declare an embedding column whose metric, storage and index are fixed here once.

    ``metric``: cosine (default), l2, inner_product, l1, hamming, jaccard.
    ``storage``: vector (default), halfvec, bit, sparsevec.
    ``index``: :class:`HNSW` (default), :class:`IVFFlat` or ``None`` (exact search only).
    Other keyword arguments go to :func:`sqlalchemy.orm.mapped_column`.

    ``source`` (a column name, or a tuple of them) and ``embedder`` (a spec such as
    ``"minilm"``, or an :class:`~vecalchemy.Embedder`) keep the column in sync with its
    text (see :mod:`vecalchemy.sync`): with ``sync="inline"`` (the default) the ORM
    embeds a row in the same flush that inserts it or changes a source column; with
    ``sync="outbox"`` a trigger (:func:`vecalchemy.sync.install`) queues the row in the
    same transaction and ``vecalchemy worker`` embeds it. Either way the table gets two
    companion columns, ``<name>_source_hash`` and ``<name>_model``: the content hash of
    the text each vector was made from, and the embedder (with revision) that made it.
    A text longer than the embedder's window (``max_tokens``) is refused (a flush
    error, or a dead letter in the outbox) unless ``truncate=True``.

    Raises :class:`UnknownMetric` or :class:`UnsupportedIndex` at declaration time when
    pgvector could not store or index the column.

    Example::

        class Doc(Base):
            __tablename__ = "docs"
            id: Mapped[int] = mapped_column(primary_key=True)
            body: Mapped[str]
            embedding = Embedding(384, source="body", embedder="minilm")
            summary = Embedding(1536, metric="inner_product", storage="halfvec")
    """
    spec = _make_spec(dim, metric, storage, index)
    info = _info(kw, spec, source, embedder, sync, truncate)
    return mapped_column(spec.sql_type(), nullable=nullable, info=info, **kw)


def _info(
    kw: dict[str, Any], spec: VectorSpec, source: Any, embedder: Any, sync: str, truncate: bool
) -> dict[str, Any]:
    info = dict(kw.pop("info", None) or {})
    info[INFO_KEY] = spec
    if source is not None:
        info[SOURCE_KEY] = SourceSpec.parse(source, embedder, sync, truncate)
    elif embedder is not None or sync != "inline" or truncate:
        raise ConfigurationError(
            "embedder= and sync= keep an embedding in sync with its text; name the text "
            "column(s) with source='body' (or source=('title', 'body'))"
        )
    return info


def embedding_column(
    name: str,
    dim: int,
    *,
    metric: str | Metric = Metric.COSINE,
    storage: str | Storage = Storage.VECTOR,
    index: IndexSpec | None = HNSW(),
    nullable: bool = True,
    source: str | Sequence[str] | None = None,
    embedder: Any = None,
    sync: str = "inline",
    truncate: bool = False,
    **kw: Any,
) -> Column[Any]:
    """The Core twin of :func:`Embedding`: a ``Column`` for a ``sqlalchemy.Table``.

    Example::

        docs = Table("docs", metadata, Column("id", Integer, primary_key=True),
                     embedding_column("embedding", 384, metric="l2"))
    """
    spec = _make_spec(dim, metric, storage, index)
    info = _info(kw, spec, source, embedder, sync, truncate)
    return Column(name, spec.sql_type(), nullable=nullable, info=info, **kw)


def _make_spec(
    dim: int, metric: str | Metric, storage: str | Storage, index: IndexSpec | None
) -> VectorSpec:
    spec = VectorSpec(
        dim=dim,
        metric=Metric.parse(metric),
        storage=Storage.parse(storage),
        index=index,
        declared=True,
    )
    check_spec(spec)
    return spec


# -- the index that follows from the spec -------------------------------------------------

_DEFER: ContextVar[bool] = ContextVar("vecalchemy_defer_indexes", default=False)


@contextlib.contextmanager
def defer_indexes() -> Iterator[None]:
    """Within this block, ``create_all()`` creates tables without their vector indexes.

    Bulk loads are much faster into a table without an HNSW index; build the indexes
    afterwards with :func:`vecalchemy.build_indexes`.

    Example::

        with vecalchemy.defer_indexes():
            Base.metadata.create_all(engine)
        vecalchemy.load(engine, Doc, rows)
        vecalchemy.build_indexes(engine, Doc)
    """
    token = _DEFER.set(True)
    try:
        yield
    finally:
        _DEFER.reset(token)


def _should_create(
    ddl: BaseDDLElement, target: Any, bind: Any, *args: Any, state: Any = None, **kw: Any
) -> bool:
    """ddl_if callable: whether create_all may create this vector index now."""
    if BUILDING.get():
        return True
    spec: VectorSpec = state
    if _DEFER.get():
        log.info("vector index %s deferred: build it with build_indexes()", target.name)
        return False
    if isinstance(spec.index, IVFFlat):
        # create_all only creates indexes together with their (new, empty) table, and an
        # IVFFlat index trained on no rows has terrible recall.
        log.info(
            "ivfflat index %s not built on an empty table: load rows, then call "
            "vecalchemy.build_indexes()",
            target.name,
        )
        return False
    return True


def index_name(table: Table, column: Column[Any], spec: VectorSpec) -> str:
    """The generated name of a column's vector index: ``ix_<table>_<column>_<method>``."""
    assert spec.index is not None
    if spec.index.name:
        return spec.index.name
    name = f"ix_{table.name}_{column.name}_{spec.index.method.value}"
    if spec.index.quantize is not None:
        name += "_bq" if spec.index.quantize == "binary" else "_hv"
    if spec.index.where is not None:
        name += "_" + digest(spec.index.where)
    return fit_identifier(name)


def index_expression(column: ColumnElement[Any], spec: VectorSpec) -> ColumnElement[Any]:
    """The expression the index is on: the column, ``column::halfvec(dim)``, or
    ``binary_quantize(column)::bit(dim)``."""
    if spec.binary_quantized:
        return cast(func.binary_quantize(column), spec.indexplain_type())
    if spec.uses_expression_index:
        return cast(column, spec.indexplain_type())
    return column


def _make_index(
    table: Table,
    column: Column[Any],
    spec: VectorSpec,
    *,
    name: str | None = None,
    where: ColumnElement[bool] | TextClause | None = None,
) -> Index:
    assert spec.index is not None
    name = name or index_name(table, column, spec)
    if where is None and spec.index.where is not None:
        where = text(spec.index.where)
    expr = index_expression(column, spec)
    key = column.key
    if spec.uses_expression_index:
        key = f"{column.key}_{'bq' if spec.binary_quantized else spec.index_storage.value}"
        expr.key = key  # postgresql_ops is keyed by expression key
    with_ = spec.index.with_options(rows=None) if isinstance(spec.index, HNSW) else {}
    if isinstance(spec.index, IVFFlat) and spec.index.lists is not None:
        with_ = spec.index.with_options()
    idx = Index(
        name,
        expr,
        postgresql_using=spec.index.method.value,
        postgresql_ops={key: spec.opclass},
        postgresql_with=with_,
        postgresql_where=where,
        info={INFO_KEY: spec},
        # Like Column(index=True): Table.to_metadata() skips flagged indexes, and the
        # after_parent_attach listener builds a correctly named one for the copy.
        _column_flag=True,
    )
    idx.ddl_if(dialect="postgresql", callable_=_should_create, state=spec)
    return idx


_COMPANIONS = "vecalchemy.companions"


@event.listens_for(Column, "after_parent_attach")
def _attach_index(column: Column[Any], parent: Any) -> None:
    spec = column.info.get(INFO_KEY)
    if not isinstance(spec, VectorSpec) or not isinstance(parent, Table):
        return
    if isinstance(column.type, _Checked):
        column.type.label = describe(column)  # for the messages of checked writes
    if SOURCE_KEY in column.info and not column.info.get(_COMPANIONS):
        # What each vector was made from (see vecalchemy._source). The flag travels with
        # the column's copies: Table.to_metadata() copies the companions itself.
        for name in (hash_column_name(column.name), model_column_name(column.name)):
            if name not in parent.c:
                parent.append_column(Column(name, Text, nullable=True))
        column.info[_COMPANIONS] = True
    if spec.index is None:
        return
    name = index_name(parent, column, spec)
    if any(ix.name == name for ix in parent.indexes):
        return  # Table.to_metadata() copies the index already
    _make_index(parent, column, spec)


def partial_index(
    column: Any,
    where: ColumnElement[bool],
    *,
    index: IndexSpec | None = None,
    name: str | None = None,
) -> Index:
    """Add a partial vector index on ``column`` for the rows matching ``where``.

    pgvector's advice for a frequent filter value: an index per value, so a query that
    filters on it walks a graph holding only matching rows. The operator class follows
    from the column's declaration like the column's own index; ``index`` defaults to the
    declared one (or ``HNSW()``). PostgreSQL uses the partial index for queries whose
    filter implies ``where`` (``Doc.lang == "en"`` for ``where=Doc.lang == "en"``);
    :func:`vecalchemy.search` plans filtered queries with their actual values, so it
    can. The index joins the table's metadata: ``create_all`` and
    :func:`vecalchemy.build_indexes` create it.

    Example::

        for lang in ("en", "de"):
            vecalchemy.partial_index(Doc.embedding, Doc.lang == lang)
        Base.metadata.create_all(engine)
    """
    col, spec = resolve_spec(column)
    if not isinstance(col.table, Table):
        raise InvalidArgument(f"{describe(col)} is not attached to a table")
    chosen = index if index is not None else (spec.index or HNSW())
    if not isinstance(chosen, (HNSW, IVFFlat)):
        raise UnsupportedIndex(
            f"index must be vecalchemy.HNSW(...) or IVFFlat(...), got {chosen!r}"
        )
    if not isinstance(where, ColumnElement):
        raise InvalidArgument(
            f"where must be a SQLAlchemy boolean expression such as Doc.lang == 'en', got {where!r}"
        )
    predicate = str(where.compile(dialect=_PG_DIALECT, compile_kwargs={"literal_binds": True}))
    pspec = dataclasses.replace(spec, index=dataclasses.replace(chosen, where=predicate))
    check_spec(pspec)
    table = col.table
    iname = name or index_name(table, col, pspec)
    for ix in table.indexes:
        if ix.name == iname:
            return ix
    return _make_index(table, col, pspec, name=iname, where=where)


def vector_indexes(table: Table) -> list[Index]:
    """The vector indexes vecalchemy declared on ``table``."""
    return sorted(
        (ix for ix in table.indexes if isinstance(ix.info.get(INFO_KEY), VectorSpec)),
        key=lambda ix: str(ix.name),
    )


# -- reading the spec back from any column ------------------------------------------------


def _index_spec_from(ix: Index) -> tuple[Metric, Storage, IndexSpec] | None:
    """Read metric/storage/method from a hand-written pgvector index declaration."""
    opts = ix.dialect_options["postgresql"]
    using = (opts.get("using") or "").lower()
    ops: dict[str, str] = opts.get("ops") or {}
    if using not in ("hnsw", "ivfflat") or len(ops) != 1:
        return None
    parsed = Metric.from_opclass(next(iter(ops.values())))
    if parsed is None:
        return None
    with_ = opts.get("with") or {}
    spec: IndexSpec
    if using == "hnsw":
        spec = HNSW(
            m=int(with_.get("m", 16)), ef_construction=int(with_.get("ef_construction", 64))
        )
    else:
        lists = with_.get("lists")
        spec = IVFFlat(lists=int(lists) if lists is not None else None)
    return parsed[0], parsed[1], spec


def resolve_spec(column: Any, metric: str | Metric | None = None) -> tuple[Column[Any], VectorSpec]:
    """Find what vecalchemy needs to know to search ``column``.

    For an :func:`Embedding` column that is its declaration (``metric``, if given, must
    agree with it). For a plain pgvector-python column (``mapped_column(Vector(3))``)
    it is ``metric`` if given, or else the operator class of a vector index declared on
    the column in the table's metadata. Either way a metric that differs from the one
    the column's index was built for raises :class:`MetricMismatch`, because pgvector
    would silently fall back to a sequential scan.

    Example::

        col, spec = resolve_spec(Doc.embedding)
        spec.metric, spec.dim, spec.opclass   # (Metric.COSINE, 384, 'vector_cosine_ops')
    """
    col = column_of(column)
    declared = col.info.get(INFO_KEY)
    wanted = Metric.parse(metric) if metric is not None else None
    if isinstance(declared, VectorSpec):
        if wanted is not None and wanted is not declared.metric:
            raise MetricMismatch(
                f"{describe(col)} was declared with metric {declared.metric.value!r} and "
                f"its index uses {declared.opclass if declared.index else 'that metric'}; "
                f"searching it by {wanted.value!r} would not use the index. Drop metric= "
                "or declare a second column"
            )
        table = col.table if isinstance(col.table, Table) else None
        name = index_name(table, col, declared) if (declared.index and table is not None) else None
        return col, dataclasses.replace(declared, index_name=name)

    storage, dim = dimensioned_storage(col)
    # A hand-written index on this column tells which metric it can serve.
    indexed: tuple[Metric, Storage, IndexSpec, str] | None = None
    table = col.table if isinstance(col.table, Table) else None
    for ix in table.indexes if table is not None else ():
        cols = list(ix.columns)
        if len(ix.expressions) == 1 and cols == [col]:
            got = _index_spec_from(ix)
            if got is not None:
                indexed = (*got, str(ix.name))
                break
    if indexed is not None:
        imetric, istorage, ispec, iname = indexed
        if wanted is not None and wanted is not imetric:
            raise MetricMismatch(
                f"index {iname} on {describe(col)} uses {imetric.opclass(istorage)}, which "
                f"serves {imetric.value!r} queries; searching by {wanted.value!r} would not "
                "use it"
            )
        spec = VectorSpec(dim, imetric, storage, ispec, iname)
        return col, spec
    if wanted is None:
        raise MetricRequired(
            f"{describe(col)} was not declared with vecalchemy.Embedding and has no vector "
            "index in its table's metadata; pass metric='cosine' (or l2, inner_product, ...) "
            "to say how to compare vectors"
        )
    wanted.check_storage(storage)
    return col, VectorSpec(dim, wanted, storage, None, None)
