"""Re-ranking over-fetched candidates: maximal marginal relevance and custom scorers.

Pure post-processing, no SQL: fetch more rows than you need (``fetch_k``), then keep
the ``k`` best by another criterion.

* :func:`mmr` (and :class:`MMR`, its settings as one value) trades relevance for
  diversity: each pick maximises ``lambda_ * sim(query, d) - (1 - lambda_) * max sim(d, s)``
  over the rows ``s`` already picked, so near-duplicates of a pick fall behind.
  Similarities are the metric's own (:meth:`vecalchemy.metrics.Metric.similarity`):
  cosine similarity, the inner product, or ``1 / (1 + distance)`` for l2 and l1.
* :func:`apply_rerank` calls a :class:`Reranker` (any callable scoring the candidates,
  higher is better) once, checks its scores and keeps the ``k`` best;
  :class:`CrossEncoderReranker` adapts a sentence-transformers ``CrossEncoder``.

Example::

    import numpy as np
    from vecalchemy.search.rerank import mmr

    candidates = np.array([[1.0, 0.1], [1.0, 0.11], [1.0, -0.5]])
    mmr([1.0, 0.0], candidates, k=2, lambda_=0.5)   # [0, 2]: row 1 near-duplicates row 0
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

import numpy as np
import numpy.typing as npt

from vecalchemy.errors import DimensionMismatch, InvalidArgument, InvalidSearch, InvalidVector
from vecalchemy.metrics import MAX_EF_SEARCH, Metric

__all__ = [
    "MMR",
    "CrossEncoderReranker",
    "PairScorer",
    "Reranker",
    "apply_rerank",
    "mmr",
]

T = TypeVar("T")

_FloatArray = npt.NDArray[np.float64]

#: The metrics :func:`mmr` can compare dense float vectors with.
_MMR_METRICS = (Metric.COSINE, Metric.L2, Metric.INNER_PRODUCT, Metric.L1)


# -- maximal marginal relevance -------------------------------------------------------


def mmr(
    query: Any,
    candidates: Any,
    k: int,
    *,
    lambda_: float = 0.5,
    metric: str | Metric = Metric.COSINE,
) -> list[int]:
    """Pick ``k`` of ``candidates`` by maximal marginal relevance; return their indices.

    ``query`` is one vector; ``candidates`` a 2-D array (n x dim) or a list of vectors
    (lists, numpy arrays or pgvector ``Vector``/``HalfVector`` objects). The first pick
    is always the candidate most similar to the query; each next pick maximises
    ``lambda_ * sim(query, d) - (1 - lambda_) * max(sim(d, s) for s already picked)``.
    ``lambda_=1`` gives plain relevance order, ``lambda_=0`` maximal diversity after
    the first pick. Ties go to the lower index. Returns ``min(k, n)`` distinct indices
    into ``candidates``, in pick order.

    ``metric`` (cosine, l2, inner_product or l1) gives the similarity, as
    :meth:`~vecalchemy.metrics.Metric.similarity` defines it for search hits. For cosine,
    a zero candidate has similarity 0 to everything (it has no direction); a zero
    query is refused.

    Raises :class:`~vecalchemy.InvalidSearch` (``k``, ``lambda_``, metric),
    :class:`~vecalchemy.DimensionMismatch` or :class:`~vecalchemy.InvalidVector`.
    Work is O(n * k * dim) in numpy.

    Example::

        >>> candidates = [[1.0, 0.1], [1.0, 0.11], [1.0, -0.5]]  # row 1 near-duplicates row 0
        >>> mmr([1.0, 0.0], candidates, k=2)
        [0, 2]
        >>> mmr([1.0, 0.0], candidates, k=2, lambda_=1.0)
        [0, 1]
    """
    _check_k(k)
    lam = _check_lambda(lambda_)
    m = _mmr_metric(metric)
    cands = _as_matrix(candidates)
    n, dim = cands.shape
    q = _as_query(query, dim, m)
    if n == 0:
        return []
    take = min(k, n)

    relevance = _similarity(m, q[None, :], cands)[0]
    picked = [int(np.argmax(relevance))]
    # Running max similarity of every candidate to the picks so far: one column of the
    # pairwise similarities per pick, never the whole n x n matrix.
    redundancy = _similarity(m, cands[picked[0]][None, :], cands)[0]
    available = np.ones(n, dtype=bool)
    available[picked[0]] = False
    while len(picked) < take:
        score = lam * relevance - (1.0 - lam) * redundancy
        score[~available] = -np.inf
        best = int(np.argmax(score))
        picked.append(best)
        available[best] = False
        np.maximum(redundancy, _similarity(m, cands[best][None, :], cands)[0], out=redundancy)
    return picked


@dataclass(frozen=True)
class MMR:
    """Settings for diversifying search results by maximal marginal relevance.

    ``lambda_`` (0..1) weighs relevance against diversity (see :func:`mmr`); ``fetch_k``
    is how many nearest rows to fetch before picking ``k`` of them (by default
    ``max(4 * k, 20)``, at most 1,000: what one HNSW scan can return).

    Example::

        diversify = MMR(lambda_=0.7)
        diversify.fetch_for(5)                            # 20
        picks = diversify.select(q, candidate_vectors, k=5, metric="cosine")
    """

    lambda_: float = 0.5
    fetch_k: int | None = None

    def __post_init__(self) -> None:
        _check_lambda(self.lambda_)
        if self.fetch_k is not None:
            fk = self.fetch_k
            if isinstance(fk, bool) or not isinstance(fk, int) or not 1 <= fk <= MAX_EF_SEARCH:
                raise InvalidSearch(
                    f"fetch_k must be an integer from 1 to {MAX_EF_SEARCH:,}, got {fk!r}; "
                    "an HNSW scan returns at most 1,000 rows"
                )

    def fetch_for(self, k: int) -> int:
        """How many candidates to fetch for ``k`` results.

        Example::

            >>> MMR().fetch_for(10), MMR(fetch_k=50).fetch_for(10)
            (40, 50)
        """
        _check_k(k)
        if self.fetch_k is None:
            if k > MAX_EF_SEARCH:
                raise InvalidSearch(
                    f"k={k} is above {MAX_EF_SEARCH:,}, the most candidates MMR can fetch "
                    "from an HNSW scan; lower k"
                )
            return min(max(4 * k, 20), MAX_EF_SEARCH)
        if self.fetch_k < k:
            raise InvalidSearch(
                f"fetch_k={self.fetch_k} is below k={k}: MMR picks k of the fetched rows; "
                "raise fetch_k or leave it unset"
            )
        return self.fetch_k

    def select(
        self, query: Any, candidates: Any, k: int, *, metric: str | Metric = Metric.COSINE
    ) -> list[int]:
        """:func:`mmr` with this ``lambda_``: the indices of the ``k`` picks, in order.

        Example::

            >>> MMR(lambda_=1.0).select([1.0, 0.0], [[0.0, 1.0], [1.0, 0.0]], k=1)
            [1]
        """
        return mmr(query, candidates, k, lambda_=self.lambda_, metric=metric)


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidSearch(f"k must be a positive integer, got {k!r}")
    return k


def _check_lambda(lambda_: object) -> float:
    if isinstance(lambda_, bool) or not isinstance(lambda_, numbers.Real):
        raise InvalidSearch(f"lambda_ must be a number from 0 to 1, got {lambda_!r}")
    lam = float(lambda_)
    if not 0.0 <= lam <= 1.0:  # also False for NaN
        raise InvalidSearch(
            f"lambda_ must be from 0 to 1, got {lambda_!r}; 1 ranks by relevance only, "
            "0 by diversity only"
        )
    return lam


def _mmr_metric(metric: str | Metric) -> Metric:
    m = Metric.parse(metric)
    if m not in _MMR_METRICS:
        raise InvalidSearch(
            f"mmr compares float vectors by cosine, l2, inner_product or l1, not {m.value}; "
            "re-rank bit vectors by their exact distance instead"
        )
    return m


def _as_matrix(candidates: Any) -> _FloatArray:
    """The candidates as an n x dim float64 array, or a clear error."""
    if isinstance(candidates, (str, bytes)):
        raise InvalidVector("candidates must be a 2-D array or a list of vectors, not a string")
    if not isinstance(candidates, np.ndarray):
        try:
            rows = list(candidates)
        except TypeError:
            raise InvalidVector(
                f"candidates must be a 2-D array or a list of vectors, got "
                f"{type(candidates).__name__}"
            ) from None
        if not rows:
            return np.empty((0, 0), dtype=np.float64)
        vectors = [_as_row(r, f"candidate {i}") for i, r in enumerate(rows)]
        sizes = {len(v) for v in vectors}
        if len(sizes) > 1:
            first = len(vectors[0])
            bad = next(i for i, v in enumerate(vectors) if len(v) != first)
            raise DimensionMismatch(
                f"candidate {bad} has {len(vectors[bad])} dimensions but candidate 0 has "
                f"{first}; all candidates must come from the same column"
            )
        arr = np.stack(vectors)
    else:
        if candidates.ndim != 2:
            raise InvalidVector(
                f"candidates must be a 2-D array (one row per candidate), got shape "
                f"{candidates.shape}"
            )
        try:
            arr = np.asarray(candidates, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidVector(f"candidates must hold numbers ({exc})") from None
    if arr.shape[0] and arr.shape[1] == 0:
        raise InvalidVector("candidates are empty vectors")
    finite = np.isfinite(arr)
    if not finite.all():
        row, col = (int(x) for x in np.argwhere(~finite)[0])
        raise InvalidVector(
            f"candidate {row} has a non-finite value ({arr[row, col]}) at index {col}; "
            "vectors must hold finite numbers"
        )
    return arr


def _as_row(value: Any, what: str) -> _FloatArray:
    if hasattr(value, "to_numpy"):  # pgvector Vector / HalfVector / SparseVector
        value = value.to_numpy()
    if isinstance(value, (str, bytes)):
        raise InvalidVector(f"{what} must be a list of numbers or an array, not a string")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidVector(f"{what} cannot be read as numbers ({exc})") from None
    if arr.ndim != 1:
        raise InvalidVector(f"{what} must be one-dimensional, got shape {arr.shape}")
    return arr


def _as_query(query: Any, dim: int, metric: Metric) -> _FloatArray:
    q = _as_row(query, "query vector")
    if q.shape[0] == 0:
        raise InvalidVector("query vector is empty")
    if dim and q.shape[0] != dim:
        raise DimensionMismatch(
            f"query vector has {q.shape[0]} dimensions but the candidates have {dim}; "
            "compare vectors from the same model"
        )
    finite = np.isfinite(q)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise InvalidVector(
            f"query vector has a non-finite value ({q[bad]}) at index {bad}; "
            "vectors must hold finite numbers"
        )
    if metric is Metric.COSINE and not q.any():
        raise InvalidVector(
            "query vector is all zeros; a zero vector has no direction, so its cosine "
            "similarity is undefined: check the embedding"
        )
    return q


def _distance(metric: Metric, a: _FloatArray, b: _FloatArray) -> _FloatArray:
    """pgvector's distance between each row of ``a`` (m x dim) and of ``b`` (n x dim)."""
    if metric is Metric.INNER_PRODUCT:
        return cast(_FloatArray, -(a @ b.T))  # <#> is the negative inner product
    if metric is Metric.COSINE:
        norms = np.linalg.norm(a, axis=1)[:, None] * np.linalg.norm(b, axis=1)[None, :]
        dots = a @ b.T
        # A zero vector has no direction: count it as orthogonal (similarity 0) rather
        # than NaN, which would poison every argmax.
        safe = np.where(norms > 0, norms, 1.0)
        cos = np.where(norms > 0, dots / safe, 0.0)
        return 1.0 - np.clip(cos, -1.0, 1.0)
    diff = a[:, None, :] - b[None, :, :]
    if metric is Metric.L2:
        return cast(_FloatArray, np.sqrt(np.einsum("ijk,ijk->ij", diff, diff)))
    return cast(_FloatArray, np.abs(diff).sum(axis=2))  # l1


def _similarity(metric: Metric, a: _FloatArray, b: _FloatArray) -> _FloatArray:
    # Metric.similarity is written with arithmetic that works elementwise on arrays;
    # going through it keeps one definition of "similarity" for hits and for MMR.
    sim = metric.similarity(cast(Any, _distance(metric, a, b)))
    return np.asarray(sim, dtype=np.float64)


# -- custom re-rankers -------------------------------------------------------------------


@runtime_checkable
class Reranker(Protocol):
    """Anything that scores candidates for a query: ``(query, hits) -> scores``.

    It is called once with all the candidates and returns one finite number per hit,
    higher is better. A plain function is a ``Reranker``.

    Example::

        def by_length(query: str, hits: Sequence[Hit]) -> list[float]:
            return [-len(h.row.body) for h in hits]   # shorter bodies first

        apply_rerank(by_length, "vacuum", hits, k=5)
    """

    def __call__(self, query: Any, hits: Sequence[Any], /) -> Sequence[float]:
        """Score ``hits`` against ``query``; higher is better."""
        ...


def apply_rerank(
    reranker: Callable[[Any, Sequence[Any]], Any], query: Any, items: Sequence[T], k: int
) -> list[tuple[T, float]]:
    """Score ``items`` with ``reranker`` (called once) and keep the ``k`` best.

    Returns ``(item, score)`` pairs, best first; items with equal scores keep their
    input order (so the original ranking breaks ties). ``reranker`` must return one
    finite number per item, else :class:`~vecalchemy.InvalidSearch` names the reranker
    and what it returned. With no items the reranker is not called.

    Example::

        hits = vecalchemy.search(session, Doc.embedding, q, k=50)
        best = apply_rerank(CrossEncoderReranker(model, text=lambda h: h.row.body),
                            "how do I vacuum", hits, k=5)
        [(hit.row.id, round(score, 2)) for hit, score in best]
    """
    _check_k(k)
    if not callable(reranker):
        raise InvalidArgument(
            f"reranker must be callable as reranker(query, hits), got {type(reranker).__name__}"
        )
    items = list(items)
    if not items:
        return []
    name = _name(reranker)
    raw = reranker(query, items)
    scores = _check_scores(raw, len(items), name)
    # sorted() is stable with reverse=True too: equal scores keep the input order.
    ranked = sorted(zip(items, scores, strict=True), key=lambda pair: pair[1], reverse=True)
    return ranked[:k]


def _name(reranker: object) -> str:
    if isinstance(reranker, CrossEncoderReranker):
        return repr(reranker)
    qualname = getattr(reranker, "__qualname__", None)
    return str(qualname) if qualname else type(reranker).__qualname__


def _check_scores(raw: object, n: int, name: str) -> list[float]:
    if not isinstance(raw, (np.ndarray, Sequence)) and hasattr(raw, "__array__"):
        raw = np.asarray(raw)  # a tensor or an array-like
    if isinstance(raw, np.ndarray):
        if raw.ndim != 1:
            raise InvalidSearch(
                f"reranker {name} returned an array of shape {raw.shape}; it must return one "
                "score per hit (a 1-D sequence)"
            )
        values: list[object] = raw.tolist()
    elif isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        raise InvalidSearch(
            f"reranker {name} returned {type(raw).__name__}; it must return a sequence with "
            "one score per hit"
        )
    else:
        values = list(raw)
    if len(values) != n:
        raise InvalidSearch(
            f"reranker {name} returned {len(values)} scores for {n} hits; it must return "
            "one score per hit, in the same order"
        )
    scores: list[float] = []
    for i, value in enumerate(values):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise InvalidSearch(
                f"reranker {name} returned {value!r} for hit {i}; scores must be numbers"
            )
        score = float(value)
        if not math.isfinite(score):
            raise InvalidSearch(
                f"reranker {name} returned a non-finite score ({score}) for hit {i}; scores "
                "must be finite numbers"
            )
        scores.append(score)
    return scores


class PairScorer(Protocol):
    """A model scoring (query, text) pairs, as sentence-transformers' ``CrossEncoder``."""

    def predict(self, sentences: list[tuple[str, str]], /) -> Any:
        """One relevance score per pair (a list or 1-D array)."""
        ...


class CrossEncoderReranker:
    """A :class:`Reranker` from a cross-encoder: scores each ``(query, text of hit)`` pair.

    ``model`` is anything with a sentence-transformers style
    ``predict(list[tuple[str, str]])`` returning one score per pair, such as
    ``sentence_transformers.CrossEncoder("cross-encoder/ms-marco-MiniLM-L-6-v2")``.
    ``text`` gets a hit's text (``lambda hit: hit.row.body``); without it, hits must be
    strings. The query must be text. The model is called once per re-rank.

    Example::

        from sentence_transformers import CrossEncoder

        rerank = CrossEncoderReranker(
            CrossEncoder("cross-encoder/ms-marco-MiniLM-L-6-v2"), text=lambda h: h.row.body
        )
        hits = vecalchemy.search(session, Doc.embedding, embed(question), k=50)
        best = apply_rerank(rerank, question, hits, k=5)
    """

    def __init__(self, model: PairScorer, *, text: Callable[[Any], str] | None = None) -> None:
        if not callable(getattr(model, "predict", None)):
            raise InvalidArgument(
                f"model must have a predict(pairs) method, as sentence_transformers.CrossEncoder "
                f"has; got {type(model).__name__}"
            )
        if text is not None and not callable(text):
            raise InvalidArgument(f"text must be a callable hit -> str, got {type(text).__name__}")
        self.model = model
        self.text = text

    def __repr__(self) -> str:
        return f"CrossEncoderReranker({type(self.model).__name__})"

    def __call__(self, query: Any, hits: Sequence[Any], /) -> list[float]:
        """Score every ``(query, text(hit))`` pair with one ``model.predict`` call."""
        if not isinstance(query, str):
            raise InvalidArgument(
                f"{self!r} needs the query as text, got {type(query).__name__}; a "
                "cross-encoder reads the query and each hit's text together"
            )
        pairs = [(query, self._text_of(hit, i)) for i, hit in enumerate(hits)]
        scores = np.asarray(self.model.predict(pairs))
        if scores.ndim == 2 and scores.shape[1] == 1:
            scores = scores[:, 0]  # one label, as some models return it
        if scores.ndim != 1:
            raise InvalidSearch(
                f"{self!r}: the model returned scores of shape {scores.shape} for "
                f"{len(pairs)} pairs; use a cross-encoder with a single output label"
            )
        return cast(list[float], scores.tolist())

    def _text_of(self, hit: Any, i: int) -> str:
        text = self.text(hit) if self.text is not None else hit
        if not isinstance(text, str):
            how = "text= must return" if self.text is not None else "hits without text= must be"
            raise InvalidArgument(
                f"{self!r}: {how} a str, got {type(text).__name__} for hit {i}; pass "
                "text=lambda hit: hit.row.body (or whatever holds the hit's text)"
            )
        return text
