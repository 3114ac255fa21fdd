"""Distance metrics and vector storage types, and everything that follows from them.

A :class:`Metric` knows its pgvector operator, the operator class to index it for each
:class:`Storage`, which index methods can index it, and how to turn pgvector's raw
distance into a similarity whose direction is always "higher is more similar".

=============  ========  =====================================  ==================================
metric         operator  pgvector distance                      ``similarity``
=============  ========  =====================================  ==================================
cosine         ``<=>``   1 - cos(a, b), in [0, 2]               ``1 - distance`` (cosine similarity)
inner_product  ``<#>``   -(a . b) (the NEGATIVE inner product)  ``-distance`` (the inner product)
l2             ``<->``   Euclidean distance, >= 0               ``1 / (1 + distance)``, in (0, 1]
l1             ``<+>``   Manhattan distance, >= 0               ``1 / (1 + distance)``, in (0, 1]
hamming        ``<~>``   number of differing bits               ``1 - distance / dim``, in [0, 1]
jaccard        ``<%>``   1 - Jaccard index, in [0, 1]           ``1 - distance`` (Jaccard index)
=============  ========  =====================================  ==================================

Every similarity is a strictly decreasing function of the distance, so a threshold
given as ``min_similarity`` converts exactly to a ``max_distance``
(:meth:`Metric.max_distance_for`).

Example::

    >>> from vecalchemy.metrics import Metric, Storage
    >>> m = Metric.parse("cosine")
    >>> m.operator, m.opclass(Storage.HALFVEC)
    ('<=>', 'halfvec_cosine_ops')
    >>> m.similarity(0.25)
    0.75
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Float, literal_column

from vecalchemy._ops import divide
from vecalchemy.errors import InvalidSearch, UnknownMetric, UnsupportedIndex

__all__ = [
    "INDEX_DIM_LIMITS",
    "MAX_EF_SEARCH",
    "STORAGE_DIM_LIMITS",
    "IndexMethod",
    "Metric",
    "Storage",
]

#: pgvector's largest ``hnsw.ef_search`` (and so the largest k an HNSW scan can return).
MAX_EF_SEARCH = 1000


class Storage(str, enum.Enum):
    """How a vector is stored: pgvector's ``vector``, ``halfvec``, ``sparsevec`` or ``bit``.

    Example::

        >>> Storage.parse("halfvec").bytes_per_row(1024)
        2056
    """

    VECTOR = "vector"
    HALFVEC = "halfvec"
    SPARSEVEC = "sparsevec"
    BIT = "bit"

    @classmethod
    def parse(cls, value: str | Storage) -> Storage:
        """Return the storage named ``value``; raise :class:`UnknownMetric` with the choices."""
        if isinstance(value, Storage):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            choices = ", ".join(s.value for s in cls)
            raise UnknownMetric(f"unknown storage {value!r}; use one of: {choices}") from None

    def bytes_per_row(self, dim: int, *, nnz: int | None = None) -> int:
        """Bytes pgvector uses on disk for one value (``nnz``: non-zeros of a sparsevec)."""
        if self is Storage.VECTOR:
            return 4 * dim + 8
        if self is Storage.HALFVEC:
            return 2 * dim + 8
        if self is Storage.BIT:
            return (dim + 7) // 8 + 8
        return 8 * (dim if nnz is None else nnz) + 16


class IndexMethod(str, enum.Enum):
    """pgvector's approximate index access methods."""

    HNSW = "hnsw"
    IVFFLAT = "ivfflat"


#: Largest number of dimensions a column of each storage may hold (sparsevec: its dimension).
STORAGE_DIM_LIMITS: dict[Storage, int] = {
    Storage.VECTOR: 16_000,
    Storage.HALFVEC: 16_000,
    Storage.BIT: 2**31 - 1,
    Storage.SPARSEVEC: 1_000_000_000,
}

#: Largest number of dimensions an HNSW or IVFFlat index accepts, per storage
#: (for sparsevec this is the number of NON-ZERO elements of each indexed value).
INDEX_DIM_LIMITS: dict[Storage, int] = {
    Storage.VECTOR: 2_000,
    Storage.HALFVEC: 4_000,
    Storage.BIT: 64_000,
    Storage.SPARSEVEC: 1_000,
}


@dataclass(frozen=True)
class _MetricInfo:
    operator: str
    opclass_suffix: str
    storages: frozenset[Storage]
    ivfflat_storages: frozenset[Storage]
    comparator: str | None  # pgvector-python Comparator method name


_DENSE = frozenset({Storage.VECTOR, Storage.HALFVEC})
_ALL_FLOAT = frozenset({Storage.VECTOR, Storage.HALFVEC, Storage.SPARSEVEC})
_BITS = frozenset({Storage.BIT})

_INFO: dict[str, _MetricInfo] = {
    "cosine": _MetricInfo("<=>", "cosine_ops", _ALL_FLOAT, _DENSE, "cosine_distance"),
    "l2": _MetricInfo("<->", "l2_ops", _ALL_FLOAT, _DENSE, "l2_distance"),
    "inner_product": _MetricInfo("<#>", "ip_ops", _ALL_FLOAT, _DENSE, "max_inner_product"),
    "l1": _MetricInfo("<+>", "l1_ops", _ALL_FLOAT, frozenset(), "l1_distance"),
    "hamming": _MetricInfo("<~>", "hamming_ops", _BITS, _BITS, "hamming_distance"),
    "jaccard": _MetricInfo("<%>", "jaccard_ops", _BITS, frozenset(), "jaccard_distance"),
}

_ALIASES = {
    "cos": "cosine",
    "cosine_distance": "cosine",
    "euclidean": "l2",
    "l2_distance": "l2",
    "ip": "inner_product",
    "dot": "inner_product",
    "dot_product": "inner_product",
    "max_inner_product": "inner_product",
    "manhattan": "l1",
    "taxicab": "l1",
    "l1_distance": "l1",
    "hamming_distance": "hamming",
    "jaccard_distance": "jaccard",
}


class Metric(str, enum.Enum):
    """A distance metric pgvector can compute and index.

    Parse user input with :meth:`Metric.parse`, which accepts common aliases
    (``"ip"``, ``"dot"``, ``"euclidean"``, ``"manhattan"``) and names the valid choices
    when it fails.

    Example::

        >>> Metric.parse("dot")
        <Metric.INNER_PRODUCT: 'inner_product'>
        >>> Metric.INNER_PRODUCT.similarity(-0.8)  # pgvector's <#> is the negative inner product
        0.8
    """

    COSINE = "cosine"
    L2 = "l2"
    INNER_PRODUCT = "inner_product"
    L1 = "l1"
    HAMMING = "hamming"
    JACCARD = "jaccard"

    @classmethod
    def parse(cls, value: str | Metric) -> Metric:
        """Return the metric named ``value`` (or one of its aliases)."""
        if isinstance(value, Metric):
            return value
        key = str(value).strip().lower().replace("-", "_").replace(" ", "_")
        key = _ALIASES.get(key, key)
        try:
            return cls(key)
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise UnknownMetric(f"unknown metric {value!r}; use one of: {choices}") from None

    @property
    def _info(self) -> _MetricInfo:
        return _INFO[self.value]

    @property
    def operator(self) -> str:
        """pgvector's SQL operator for this metric, e.g. ``"<=>"`` for cosine."""
        return self._info.operator

    @property
    def comparator_method(self) -> str | None:
        """Name of the pgvector-python comparator method computing this distance."""
        return self._info.comparator

    @property
    def storages(self) -> frozenset[Storage]:
        """Storage types this metric can be computed on."""
        return self._info.storages

    def check_storage(self, storage: Storage) -> None:
        """Raise :class:`UnsupportedIndex` unless this metric applies to ``storage``."""
        if storage not in self.storages:
            fits = ", ".join(sorted(m.value for m in Metric if storage in m.storages))
            raise UnsupportedIndex(
                f"metric {self.value!r} does not apply to {storage.value} columns; "
                f"{storage.value} supports: {fits}"
            )

    def index_methods(self, storage: Storage) -> frozenset[IndexMethod]:
        """The index methods pgvector offers for this metric on ``storage``."""
        if storage not in self.storages:
            return frozenset()
        methods = {IndexMethod.HNSW}
        if storage in self._info.ivfflat_storages:
            methods.add(IndexMethod.IVFFLAT)
        return frozenset(methods)

    def opclass(self, storage: Storage) -> str:
        """The operator class indexing this metric on ``storage``, e.g. ``vector_l2_ops``."""
        self.check_storage(storage)
        return f"{storage.value}_{self._info.opclass_suffix}"

    @classmethod
    def from_opclass(cls, opclass: str) -> tuple[Metric, Storage] | None:
        """Invert :meth:`opclass`: ``"halfvec_ip_ops"`` -> (inner_product, halfvec)."""
        for metric in cls:
            for storage in metric.storages:
                if metric.opclass(storage) == opclass:
                    return metric, storage
        return None

    # -- distance <-> similarity ------------------------------------------------------

    def similarity(self, distance: float, *, dim: int | None = None) -> float:
        """Turn pgvector's raw distance into a similarity (higher is more similar).

        ``dim`` is needed for hamming only (similarity is the fraction of equal bits).
        """
        if self is Metric.COSINE or self is Metric.JACCARD:
            return 1.0 - distance
        if self is Metric.INNER_PRODUCT:
            return -distance
        if self is Metric.HAMMING:
            return 1.0 - distance / self._need_dim(dim)
        return 1.0 / (1.0 + distance)

    def similarity_sql(self, distance: ColumnElement[Any], *, dim: int) -> ColumnElement[float]:
        """:meth:`similarity` in SQL: higher is more similar, for every metric.

        cosine and jaccard ``1 - d``, inner product ``-d`` (pgvector's ``<#>`` is the
        negative inner product), l2 and l1 ``1 / (1 + d)``, hamming ``1 - d / dim``.

        Example::

            sim = Metric.L2.similarity_sql(Doc.embedding.l2_distance(q), dim=384)
        """
        one = literal_column("1.0", Float)
        if self is Metric.COSINE or self is Metric.JACCARD:
            return one - distance
        if self is Metric.INNER_PRODUCT:
            return -distance
        if self is Metric.HAMMING:
            return one - divide(distance, literal_column(f"{float(dim)!r}", Float))
        return divide(one, one + distance)

    def max_distance_for(self, min_similarity: float, *, dim: int | None = None) -> float:
        """The largest distance whose similarity is still ``>= min_similarity``.

        Raises :class:`InvalidSearch` when no distance can reach ``min_similarity``
        (for example ``min_similarity=1.5`` for cosine), because such a search could
        only ever return nothing.
        """
        s = float(min_similarity)
        if not math.isfinite(s):
            raise InvalidSearch(f"min_similarity must be a finite number, got {min_similarity!r}")
        if self is Metric.INNER_PRODUCT:
            return -s
        if self is Metric.COSINE:
            self._check_range(s, -1.0, 1.0)
            return 1.0 - s
        if self is Metric.JACCARD:
            self._check_range(s, 0.0, 1.0)
            return 1.0 - s
        if self is Metric.HAMMING:
            self._check_range(s, 0.0, 1.0)
            return (1.0 - s) * self._need_dim(dim)
        # l2, l1: similarity = 1 / (1 + d) lies in (0, 1]
        self._check_range(s, 0.0, 1.0)
        return math.inf if s == 0.0 else 1.0 / s - 1.0

    def _check_range(self, s: float, lo: float, hi: float) -> None:
        if not lo <= s <= hi:
            raise InvalidSearch(
                f"min_similarity={s} is outside [{lo:g}, {hi:g}], the range of {self.value} "
                "similarity; no row could match"
            )

    def _need_dim(self, dim: int | None) -> int:
        if not dim:
            raise InvalidSearch(f"{self.value} similarity needs the column's dimension")
        return dim
