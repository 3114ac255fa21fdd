"""Retrieval metrics of one query: nDCG@k, recall@k and reciprocal rank (pure functions).

The definitions are BEIR's, i.e. trec_eval's as ``pytrec_eval`` computes them:

* a **ranking** is a sequence of document ids, best first; rank 1 is its first element.
  A document listed twice counts once, at its first (best) rank; later copies are
  dropped before the cut-off, so they take no place in the top k. Documents tied in
  score are evaluated in the order given: the search decides. To turn ``{id: score}``
  into a ranking the way trec_eval does, use :func:`rank_scores` (score descending, ties
  by id descending).
* **qrels** of a query map document ids to graded judgements (integers). A document is
  *relevant* when its judgement is above 0; judgements of 0 or below, and documents not
  judged, are not relevant and have gain 0.
* **nDCG@k** (trec_eval ``ndcg_cut.k``): ``DCG@k = sum(gain(d_i) / log2(i + 1))`` over
  ranks ``i = 1..k``, with the *linear* gain ``gain(d) = rel(d)`` (not ``2**rel - 1``);
  the ideal DCG@k is that of all the query's relevant judgements sorted by grade,
  judged documents missing from the ranking included. nDCG = DCG / ideal DCG.
* **recall@k** (trec_eval ``recall.k``): relevant documents in the top k / relevant
  documents of the query.
* **reciprocal rank** (MRR when averaged; BEIR's ``MRR@k``): 1 / the rank of the first
  relevant document in the top k, 0 if none is there; ``k=None`` looks at the whole
  ranking (trec_eval ``recip_rank``).

A query without any relevant document scores 0 on every metric (trec_eval and BEIR
count it as 0 in the mean rather than leave it out).

Example::

    >>> qrels = {"a": 2, "b": 1, "c": 0}
    >>> round(ndcg_at_k(["b", "x", "a"], qrels, 10), 4)
    0.7602
    >>> recall_at_k(["b", "x", "a"], qrels, 2), reciprocal_rank(["x", "b"], qrels)
    (0.5, 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from vecalchemy.errors import InvalidArgument

__all__ = [
    "DEFAULT_CUTOFF",
    "dedupe",
    "metric_names",
    "ndcg_at_k",
    "rank_scores",
    "recall_at_k",
    "reciprocal_rank",
    "score_rankings",
]

#: The cut-off of nDCG and MRR (and of the first recall), as BEIR reports them.
DEFAULT_CUTOFF = 10


def _check_k(k: object, what: str) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidArgument(f"{what} needs a cut-off k that is a positive integer, got {k!r}")
    return k


def dedupe(ranking: Sequence[str]) -> list[str]:
    """``ranking`` with every document kept once, at its first (best) rank.

    Example::

        >>> dedupe(["a", "b", "a", "c"])
        ['a', 'b', 'c']
    """
    if isinstance(ranking, str):
        raise InvalidArgument("a ranking is a list of document ids, not one string")
    return list(dict.fromkeys(ranking))


def rank_scores(scores: Mapping[str, float]) -> list[str]:
    """The ranking trec_eval (and so pytrec_eval, BEIR) makes of ``{id: score}``:
    score descending, documents tied in score by id descending (string order).

    Example::

        >>> rank_scores({"a": 0.5, "b": 0.9, "c": 0.5})
        ['b', 'c', 'a']
    """
    return sorted(scores, key=lambda d: (scores[d], d), reverse=True)


def _dcg(gains: Sequence[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains) if g > 0)


def ndcg_at_k(ranking: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """nDCG@k of ``ranking`` with graded, linear gains (trec_eval ``ndcg_cut``).

    See the module docstring for the definition. 0 for a query with no relevant document.

    Example::

        >>> ndcg_at_k(["a", "b"], {"a": 2, "b": 1}, 10)
        1.0
        >>> round(ndcg_at_k(["b", "a"], {"a": 2, "b": 1}, 10), 4)
        0.8597
    """
    k = _check_k(k, "nDCG")
    ideal = _dcg(sorted((g for g in qrels.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    gains = [max(qrels.get(d, 0), 0) for d in dedupe(ranking)[:k]]
    return _dcg(gains) / ideal


def recall_at_k(ranking: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """The share of the query's relevant documents (judged above 0) in the top ``k``.

    Example::

        >>> recall_at_k(["a", "x", "b"], {"a": 1, "b": 2, "c": 1}, 2)
        0.3333333333333333
    """
    k = _check_k(k, "recall")
    relevant = {d for d, g in qrels.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(dedupe(ranking)[:k])) / len(relevant)


def reciprocal_rank(
    ranking: Sequence[str], qrels: Mapping[str, int], k: int | None = None
) -> float:
    """1 / the rank of the first relevant document within the top ``k`` (all if None), or 0.

    Example::

        >>> ranking = ["x", "y", "a"]
        >>> reciprocal_rank(ranking, {"a": 1}), reciprocal_rank(ranking, {"a": 1}, 2)
        (0.3333333333333333, 0.0)
    """
    ranked = dedupe(ranking)
    if k is not None:
        ranked = ranked[: _check_k(k, "MRR")]
    for rank, doc in enumerate(ranked, 1):
        if qrels.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def metric_names(k: int, cutoff: int = DEFAULT_CUTOFF) -> list[str]:
    """The metrics :func:`score_rankings` computes for rankings of ``k`` documents.

    ``cutoff`` is lowered to ``k`` when it is larger (a ranking has only k documents).

    Example::

        >>> metric_names(100)
        ['ndcg@10', 'recall@10', 'recall@100', 'mrr@10']
        >>> metric_names(5)
        ['ndcg@5', 'recall@5', 'mrr@5']
    """
    k = _check_k(k, "a ranking")
    if isinstance(cutoff, bool) or not isinstance(cutoff, int) or cutoff < 1:
        raise InvalidArgument(f"cutoff must be a positive integer, got {cutoff!r}")
    c = min(cutoff, k)
    recalls = [f"recall@{c}"] + ([f"recall@{k}"] if k != c else [])
    return [f"ndcg@{c}", *recalls, f"mrr@{c}"]


def score_rankings(
    rankings: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    k: int,
    cutoff: int = DEFAULT_CUTOFF,
) -> dict[str, dict[str, float]]:
    """``{query id: {metric: value}}`` for every query in ``qrels`` (see :func:`metric_names`).

    ``rankings`` maps query ids to their rankings (best first; only the first ``k``
    documents count). A judged query without a ranking scores 0; rankings of queries
    that ``qrels`` does not judge are ignored, as trec_eval does.

    Example::

        >>> scores = score_rankings({"q1": ["a", "b"]}, {"q1": {"b": 1}, "q2": {"c": 1}}, k=10)
        >>> scores["q1"]["mrr@10"], scores["q2"]["recall@10"]
        (0.5, 0.0)
    """
    names = metric_names(k, cutoff)
    c = min(cutoff, k)
    out: dict[str, dict[str, float]] = {}
    for query_id, judged in qrels.items():
        ranking = dedupe(rankings.get(query_id, ()))[:k]
        values = {
            f"ndcg@{c}": ndcg_at_k(ranking, judged, c),
            f"recall@{c}": recall_at_k(ranking, judged, c),
            f"recall@{k}": recall_at_k(ranking, judged, k),
            f"mrr@{c}": reciprocal_rank(ranking, judged, c),
        }
        out[query_id] = {name: values[name] for name in names}
    return out
