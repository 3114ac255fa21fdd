"""Pure query builders: they return SQLAlchemy statements and plans, and do no I/O.

* :func:`nearest` / :func:`plan_nearest`: the ``k`` rows nearest to a query vector;
* :func:`distance`: the indexable distance expression, to build your own query;
* :func:`hybrid_query` / :func:`plan_hybrid` and :func:`multi_query` /
  :func:`plan_multi`: several ranked legs fused in one statement (:class:`RRF`,
  :class:`Weighted`);
* :class:`Explain`: ``EXPLAIN`` of a statement with its parameters.

Run them with :func:`vecalchemy.run` (or execute the statements yourself: they carry
their index settings).
"""

from __future__ import annotations

from vecalchemy.query._nearest import NearestPlan, distance, nearest, plan_nearest
from vecalchemy.query.explain import Explain
from vecalchemy.query.fusion import (
    BM25_FUSION,
    DEFAULT_CANDIDATES,
    DEFAULT_RRF_K,
    RRF,
    FusedQuery,
    Fusion,
    Leg,
    Weighted,
    default_candidates,
    default_fusion,
    hybrid_query,
    multi_query,
    plan_hybrid,
    plan_multi,
)

__all__ = [
    "BM25_FUSION",
    "DEFAULT_CANDIDATES",
    "DEFAULT_RRF_K",
    "RRF",
    "Explain",
    "FusedQuery",
    "Fusion",
    "Leg",
    "NearestPlan",
    "Weighted",
    "default_candidates",
    "default_fusion",
    "distance",
    "hybrid_query",
    "multi_query",
    "nearest",
    "plan_hybrid",
    "plan_multi",
    "plan_nearest",
]
