"""Runners: execute plans with their index settings, strategy and fallback; return hits.

* :func:`search` / :func:`asearch`: the ``k`` nearest rows;
* :func:`hybrid_search`, :func:`multi_search` (and their async twins): fused searches;
* :func:`run` / :func:`arun`: any plan, including a ``nearest()`` statement of your own;
* :class:`ScanOptions`: per-statement overrides of the index settings;
* :func:`explain`, :func:`index_used`: the plan PostgreSQL picks;
* :func:`measure_recall`, :func:`tune`: recall of the index, and the setting for a target;
* :class:`MMR`, :func:`mmr`, :func:`apply_rerank`, :class:`CrossEncoderReranker`.
"""

from __future__ import annotations

from vecalchemy.search._settings import ScanOptions
from vecalchemy.search.explain import aexplain, explain, index_used
from vecalchemy.search.hybrid import ahybrid_search, amulti_search, hybrid_search, multi_search
from vecalchemy.search.recall import (
    RecallResult,
    TuneResult,
    Tuning,
    clear_tuning,
    measure_recall,
    stored_tuning,
    tune,
)
from vecalchemy.search.rerank import (
    MMR,
    CrossEncoderReranker,
    PairScorer,
    Reranker,
    apply_rerank,
    mmr,
)
from vecalchemy.search.run import FusedHit, Hit, NearestSearch, arun, run
from vecalchemy.search.vector import asearch, search

__all__ = [
    "MMR",
    "CrossEncoderReranker",
    "FusedHit",
    "Hit",
    "NearestSearch",
    "PairScorer",
    "RecallResult",
    "Reranker",
    "ScanOptions",
    "TuneResult",
    "Tuning",
    "aexplain",
    "ahybrid_search",
    "amulti_search",
    "apply_rerank",
    "arun",
    "asearch",
    "clear_tuning",
    "explain",
    "hybrid_search",
    "index_used",
    "measure_recall",
    "mmr",
    "multi_search",
    "run",
    "search",
    "stored_tuning",
    "tune",
]
