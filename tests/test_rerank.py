"""rerank: maximal marginal relevance and custom re-rankers (pure numpy, no database)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pgvector import HalfVector, Vector

from vecalchemy.errors import (
    DimensionMismatch,
    InvalidArgument,
    InvalidSearch,
    InvalidVector,
    UnknownMetric,
)
from vecalchemy.metrics import Metric
from vecalchemy.search.rerank import MMR, CrossEncoderReranker, Reranker, apply_rerank, mmr

METRICS = ["cosine", "l2", "inner_product", "l1"]


def exact_similarity(metric: str, q: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Similarity of each row of ``c`` to ``q``, written independently of rerank.py."""
    q = q.astype(np.float64)
    c = c.astype(np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(c, axis=1) * np.linalg.norm(q)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(norms > 0, (c @ q) / np.where(norms > 0, norms, 1), 0.0)
    if metric == "inner_product":
        return c @ q
    if metric == "l2":
        return 1 / (1 + np.sqrt(((c - q) ** 2).sum(axis=1)))
    return 1 / (1 + np.abs(c - q).sum(axis=1))


def naive_mmr(metric: str, q: np.ndarray, c: np.ndarray, k: int, lam: float) -> list[int]:
    """MMR by its definition, pair by pair, as the reference for the vectorised one."""
    rel = exact_similarity(metric, q, c)
    picked = [int(np.argmax(rel))]
    while len(picked) < min(k, len(c)):
        best, best_score = -1, -np.inf
        for i in range(len(c)):
            if i in picked:
                continue
            red = max(exact_similarity(metric, c[i], c[[s]])[0] for s in picked)
            score = lam * rel[i] - (1 - lam) * red
            if score > best_score:
                best, best_score = i, score
        picked.append(best)
    return picked


# Small integers keep similarities exact enough that a near-tie cannot flip an argmax
# between two ways of computing the same number.
coords = st.integers(min_value=-4, max_value=4).map(float)


@st.composite
def problems(draw: st.DrawFn) -> tuple[str, np.ndarray, np.ndarray, int]:
    metric = draw(st.sampled_from(METRICS))
    dim = draw(st.integers(1, 6))
    n = draw(st.integers(1, 25))
    cands = draw(arrays(np.float64, (n, dim), elements=coords))
    query = draw(arrays(np.float64, (dim,), elements=coords))
    if metric == "cosine":
        assume(query.any())
    k = draw(st.integers(1, n + 3))
    return metric, query, cands, k


def distinct_gap(values: np.ndarray) -> bool:
    """True when no two values tie or nearly tie (two formulas could order them apart)."""
    v = np.sort(values)
    return len(v) < 2 or float(np.min(np.diff(v))) > 1e-7


@given(problems())
@settings(max_examples=200, deadline=None)
def test_lambda_one_is_relevance_order(problem: tuple[str, np.ndarray, np.ndarray, int]) -> None:
    """lambda_=1 returns the top min(k, n) by similarity, most similar first."""
    metric, q, c, k = problem
    got = mmr(q, c, k, lambda_=1.0, metric=metric)
    sims = exact_similarity(metric, q, c)
    want = np.sort(sims)[::-1][: min(k, len(c))]
    np.testing.assert_allclose(sims[got], want, rtol=1e-9, atol=1e-9)
    # Ties go to the lower index, as a stable sort by descending similarity orders them.
    if distinct_gap(sims):
        assert got == list(np.argsort(-sims, kind="stable")[: min(k, len(c))])


@given(problems(), st.floats(0.0, 1.0))
@settings(max_examples=200, deadline=None)
def test_picks_are_distinct_and_first_is_most_similar(
    problem: tuple[str, np.ndarray, np.ndarray, int], lam: float
) -> None:
    """Any lambda_: min(k, n) distinct indices, the first one the most similar candidate."""
    metric, q, c, k = problem
    got = mmr(q, c, k, lambda_=lam, metric=metric)
    assert len(got) == min(k, len(c))
    assert len(set(got)) == len(got)
    assert all(isinstance(i, int) and 0 <= i < len(c) for i in got)
    sims = exact_similarity(metric, q, c)
    assert sims[got[0]] == pytest.approx(sims.max(), abs=1e-9)


@given(problems(), st.sampled_from([0.0, 0.3, 0.5, 0.8, 1.0]))
@settings(max_examples=200, deadline=None)
def test_every_pick_maximises_the_objective(
    problem: tuple[str, np.ndarray, np.ndarray, int], lam: float
) -> None:
    """Each pick has the best MMR score among the candidates left (ties may go either way)."""
    metric, q, c, k = problem
    got = mmr(q, c, k, lambda_=lam, metric=metric)
    rel = exact_similarity(metric, q, c)
    for step in range(1, len(got)):
        picked = got[:step]
        left = [i for i in range(len(c)) if i not in picked]
        red = np.array([max(exact_similarity(metric, c[i], c[picked])) for i in range(len(c))])
        score = lam * rel - (1 - lam) * red
        assert got[step] in left
        assert score[got[step]] == pytest.approx(score[left].max(), abs=1e-9)


def test_skips_a_near_duplicate() -> None:
    """A near-copy of the first pick loses to a less relevant but different candidate."""
    q = np.array([1.0, 0.0, 0.0])
    cands = np.array(
        [
            [1.0, 0.10, 0.0],  # most relevant
            [1.0, 0.11, 0.0],  # near-duplicate of 0, second most relevant
            [1.0, -0.5, 0.3],  # different direction, less relevant
            [0.0, 0.0, 1.0],  # irrelevant
        ]
    )
    assert mmr(q, cands, 2, lambda_=1.0) == [0, 1]
    assert mmr(q, cands, 2, lambda_=0.5) == [0, 2]
    assert mmr(q, cands, 4, lambda_=0.5) == [0, 2, 1, 3]
    # lambda_=0: after the first pick, always the candidate least like anything picked.
    assert mmr(q, cands, 2, lambda_=0.0) == [0, 3]


def test_lambda_zero_is_maximal_diversity() -> None:
    """With lambda_=0 each pick minimises its largest similarity to the earlier picks."""
    q = np.array([1.0, 0.0])
    angles = np.deg2rad([0, 10, 20, 90, 100, 180])
    cands = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    got = mmr(q, cands, 3, lambda_=0.0)
    assert got == [0, 5, 3]  # 0 degrees, then opposite (180), then orthogonal (90)


@pytest.mark.parametrize("metric", METRICS)
def test_every_metric_matches_definition(metric: str) -> None:
    """A fixed random case per metric agrees with the pair-by-pair reference."""
    rng = np.random.default_rng(5)
    c = rng.normal(size=(40, 8))
    q = rng.normal(size=8)
    for lam in (0.0, 0.25, 0.7, 1.0):
        assert mmr(q, c, 10, lambda_=lam, metric=metric) == naive_mmr(metric, q, c, 10, lam)


def test_inputs_of_every_shape() -> None:
    """Lists, numpy arrays (float32 too), pgvector objects and Metric values all work."""
    q = [1.0, 0.0]
    rows = [[1.0, 0.1], [1.0, 0.11], [1.0, -0.5]]
    expected = [0, 2]
    assert mmr(q, rows, 2) == expected
    assert mmr(np.array(q), np.array(rows, dtype=np.float32), 2) == expected
    assert mmr(Vector(q), [Vector(r) for r in rows], 2) == expected
    assert mmr(q, [HalfVector(r) for r in rows], 2, lambda_=1.0) == [0, 1]
    assert mmr(q, rows, 2, metric=Metric.COSINE) == expected
    assert mmr(q, rows, 2, metric="dot") == mmr(q, rows, 2, metric="inner_product")
    assert mmr(q, [], 3) == []
    assert mmr(q, np.empty((0, 2)), 3) == []


def test_zero_candidate_under_cosine() -> None:
    """A zero candidate is orthogonal to everything for cosine, not NaN."""
    q = np.array([1.0, 0.0])
    cands = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    assert mmr(q, cands, 3, lambda_=1.0) == [1, 0, 2]  # similarities 0, 1, -1


ERRORS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"k": 0}, InvalidSearch, r"^k must be a positive integer, got 0$"),
    ({"k": True}, InvalidSearch, r"k must be a positive integer, got True"),
    ({"k": 2.0}, InvalidSearch, r"k must be a positive integer, got 2\.0"),
    ({"lambda_": 1.5}, InvalidSearch, r"lambda_ must be from 0 to 1, got 1\.5; 1 ranks by"),
    ({"lambda_": -0.1}, InvalidSearch, r"lambda_ must be from 0 to 1, got -0\.1"),
    ({"lambda_": float("nan")}, InvalidSearch, r"lambda_ must be from 0 to 1, got nan"),
    ({"lambda_": "0.5"}, InvalidSearch, r"lambda_ must be a number from 0 to 1, got '0\.5'"),
    ({"lambda_": True}, InvalidSearch, r"lambda_ must be a number"),
    ({"metric": "hamming"}, InvalidSearch, r"mmr compares float vectors by cosine, l2, inner"),
    ({"metric": "cosinus"}, UnknownMetric, r"unknown metric 'cosinus'; use one of"),
    ({"query": [1.0, 0.0, 0.0]}, DimensionMismatch, r"query vector has 3 dimensions but the can"),
    ({"query": [1.0, np.nan]}, InvalidVector, r"query vector has a non-finite value \(nan\) at"),
    ({"query": [np.inf, 1.0]}, InvalidVector, r"query vector has a non-finite value \(inf\) at"),
    ({"query": [0.0, 0.0]}, InvalidVector, r"query vector is all zeros; a zero vector has no"),
    ({"query": []}, InvalidVector, r"query vector is empty"),
    ({"query": "hello"}, InvalidVector, r"query vector must be .* not a string"),
    ({"query": [[1.0, 0.0]]}, InvalidVector, r"must be one-dimensional, got shape \(1, 2\)"),
    ({"query": ["a", "b"]}, InvalidVector, r"query vector cannot be read as numbers"),
    (
        {"candidates": [[1.0, 0.0], [1.0, np.nan]]},
        InvalidVector,
        r"candidate 1 has a non-finite value \(nan\) at index 1; vectors must hold finite",
    ),
    (
        {"candidates": np.array([[1.0, 0.0], [np.inf, 0.0]])},
        InvalidVector,
        r"candidate 1 has a non-finite value \(inf\) at index 0",
    ),
    (
        {"candidates": [[1.0, 0.0], [1.0, 0.0, 0.0]]},
        DimensionMismatch,
        r"candidate 1 has 3 dimensions but candidate 0 has 2; all candidates must come",
    ),
    ({"candidates": np.ones(4)}, InvalidVector, r"candidates must be a 2-D array .* shape \(4,\)"),
    ({"candidates": "abc"}, InvalidVector, r"candidates must be a 2-D array .* not a string"),
    ({"candidates": 5}, InvalidVector, r"candidates must be a 2-D array .* got int"),
    ({"candidates": [["a", "b"]]}, InvalidVector, r"candidate 0 cannot be read as numbers"),
    ({"candidates": np.ones((3, 0))}, InvalidVector, r"candidates are empty vectors"),
]


@pytest.mark.parametrize(("change", "error", "message"), ERRORS)
def test_mmr_errors(change: dict[str, Any], error: type[Exception], message: str) -> None:
    """Every bad argument raises its own error class with a message saying what to do."""
    args: dict[str, Any] = {
        "query": [1.0, 0.0],
        "candidates": [[1.0, 0.0], [0.0, 1.0]],
        "k": 1,
        "lambda_": 0.5,
        "metric": "cosine",
    }
    args.update(change)
    with pytest.raises(error, match=message):
        mmr(args.pop("query"), args.pop("candidates"), args.pop("k"), **args)


# -- MMR settings ----------------------------------------------------------------------


def test_mmr_settings_fetch_for() -> None:
    """fetch_for(k): max(4k, 20) by default, capped at 1,000; fetch_k when given."""
    assert MMR().fetch_for(1) == 20
    assert MMR().fetch_for(10) == 40
    assert MMR().fetch_for(300) == 1000
    assert MMR().fetch_for(1000) == 1000
    assert MMR(fetch_k=50).fetch_for(10) == 50
    assert MMR(fetch_k=10).fetch_for(10) == 10
    assert MMR(lambda_=0.0).lambda_ == 0.0
    assert MMR(0.3, 30) == MMR(lambda_=0.3, fetch_k=30)  # a value: compares and hashes
    assert len({MMR(), MMR()}) == 1


def test_mmr_settings_select() -> None:
    """select() is mmr() with the settings' lambda_."""
    rows = [[1.0, 0.1], [1.0, 0.11], [1.0, -0.5]]
    assert MMR(lambda_=0.5).select([1.0, 0.0], rows, 2) == [0, 2]
    assert MMR(lambda_=1.0).select([1.0, 0.0], rows, 2) == [0, 1]
    assert MMR().select([1.0, 0.0], rows, 2, metric="l2") == mmr([1.0, 0.0], rows, 2, metric="l2")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lambda_": 2.0}, r"lambda_ must be from 0 to 1, got 2\.0"),
        ({"lambda_": None}, r"lambda_ must be a number from 0 to 1, got None"),
        ({"fetch_k": 0}, r"fetch_k must be an integer from 1 to 1,000, got 0; an HNSW scan"),
        ({"fetch_k": 1001}, r"fetch_k must be an integer from 1 to 1,000, got 1001"),
        ({"fetch_k": 20.0}, r"fetch_k must be an integer from 1 to 1,000, got 20\.0"),
        ({"fetch_k": True}, r"fetch_k must be an integer"),
    ],
)
def test_mmr_settings_are_validated(kwargs: dict[str, Any], message: str) -> None:
    """MMR(...) refuses bad settings when it is made, not when a search runs."""
    with pytest.raises(InvalidSearch, match=message):
        MMR(**kwargs)


def test_mmr_fetch_for_errors() -> None:
    """fetch_for refuses a k that fetch_k (or an HNSW scan) cannot cover."""
    with pytest.raises(InvalidSearch, match=r"fetch_k=5 is below k=10: MMR picks k of the"):
        MMR(fetch_k=5).fetch_for(10)
    with pytest.raises(InvalidSearch, match=r"k=1001 is above 1,000, the most candidates MMR"):
        MMR().fetch_for(1001)
    with pytest.raises(InvalidSearch, match=r"k must be a positive integer, got 0"):
        MMR().fetch_for(0)


# -- custom re-rankers -------------------------------------------------------------------


def by_length(query: str, hits: Sequence[str]) -> list[float]:
    return [float(len(h)) for h in hits]


def test_apply_rerank_sorts_stably_and_keeps_k() -> None:
    """Best score first; equal scores keep the input order; k of them are kept."""
    calls: list[tuple[Any, list[str]]] = []

    def scorer(query: Any, hits: Sequence[str]) -> list[float]:
        calls.append((query, list(hits)))
        return [float(len(h)) for h in hits]

    items = ["bb", "a", "ccc", "dd", "e"]
    got = apply_rerank(scorer, "q", items, 4)
    assert got == [("ccc", 3.0), ("bb", 2.0), ("dd", 2.0), ("a", 1.0)]
    assert calls == [("q", items)]  # called once, with every item
    assert apply_rerank(scorer, "q", items, 10) == sorted(
        zip(items, [2.0, 1.0, 3.0, 2.0, 1.0], strict=True), key=lambda p: -p[1]
    )
    assert apply_rerank(scorer, "q", [], 3) == []
    assert len(calls) == 2  # not called for no items


def test_apply_rerank_accepts_arrays_and_numpy_scores() -> None:
    """numpy arrays, tuples and numpy scalars are fine scores."""
    items = ["x", "y", "z"]
    assert apply_rerank(lambda q, h: np.array([0.1, 0.9, 0.5]), None, items, 2) == [
        ("y", 0.9),
        ("z", 0.5),
    ]
    assert apply_rerank(lambda q, h: (np.float32(1), 3, np.int64(2)), None, items, 3) == [
        ("y", 3.0),
        ("z", 2.0),
        ("x", 1.0),
    ]
    assert isinstance(by_length, Reranker)


class Named:
    """A callable object: the message names its class."""

    def __init__(self, result: Any) -> None:
        self.result = result

    def __call__(self, query: Any, hits: Sequence[Any]) -> Any:
        return self.result


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ([1.0, 2.0], r"reranker Named returned 2 scores for 3 hits; it must return one score"),
        ([1.0, 2.0, 3.0, 4.0], r"reranker Named returned 4 scores for 3 hits"),
        ([1.0, float("nan"), 2.0], r"reranker Named returned a non-finite score \(nan\) for hit 1"),
        ([1.0, 2.0, float("-inf")], r"non-finite score \(-inf\) for hit 2; scores must be finite"),
        ([1.0, "2", 3.0], r"reranker Named returned '2' for hit 1; scores must be numbers"),
        ([1.0, None, 3.0], r"reranker Named returned None for hit 1; scores must be numbers"),
        ([True, 1.0, 0.0], r"reranker Named returned True for hit 0; scores must be numbers"),
        (None, r"reranker Named returned NoneType; it must return a sequence with one score"),
        (0.5, r"reranker Named returned float; it must return a sequence"),
        ("abc", r"reranker Named returned str; it must return a sequence"),
        (np.ones((3, 1)), r"reranker Named returned an array of shape \(3, 1\); it must return"),
    ],
)
def test_apply_rerank_validates_scores(result: Any, message: str) -> None:
    """Wrong count, non-finite or non-numeric scores raise InvalidSearch naming the reranker."""
    with pytest.raises(InvalidSearch, match=message):
        apply_rerank(Named(result), "q", ["a", "b", "c"], 2)


def test_apply_rerank_names_functions() -> None:
    """A function reranker is named by its qualified name."""

    def my_scores(query: Any, hits: Sequence[Any]) -> list[float]:
        return []

    with pytest.raises(InvalidSearch, match=r"reranker .*my_scores returned 0 scores for 1 hits"):
        apply_rerank(my_scores, "q", ["a"], 1)


def test_apply_rerank_argument_errors() -> None:
    """A non-callable reranker or a bad k is refused before anything is called."""
    with pytest.raises(InvalidArgument, match=r"reranker must be callable as reranker\(query, hi"):
        apply_rerank("nope", "q", ["a"], 1)  # type: ignore[arg-type]
    called = []
    with pytest.raises(InvalidSearch, match=r"k must be a positive integer, got 0"):
        apply_rerank(lambda q, h: called.append(1) or [1.0], "q", ["a"], 0)
    assert called == []


# -- cross-encoder adapter -------------------------------------------------------------


class FakeCrossEncoder:
    """A stand-in for sentence_transformers.CrossEncoder: scores shared words.

    Real cross-encoder weights are not available offline; the adapter only relies on
    ``predict(list[tuple[str, str]])`` returning one score per pair.
    """

    def __init__(self, shape: str = "1d") -> None:
        self.calls: list[list[tuple[str, str]]] = []
        self.shape = shape

    def predict(self, sentences: list[tuple[str, str]]) -> np.ndarray:
        self.calls.append(list(sentences))
        scores = np.array(
            [len(set(q.split()) & set(t.split())) for q, t in sentences], dtype=np.float32
        )
        if self.shape == "column":
            return scores[:, None]
        if self.shape == "two labels":
            return np.stack([scores, -scores], axis=1)
        return scores


class Row:
    def __init__(self, body: str) -> None:
        self.body = body


def test_cross_encoder_reranker() -> None:
    """Pairs of (query, text(hit)) go to predict() in one call; scores rank the hits."""
    model = FakeCrossEncoder()
    rerank = CrossEncoderReranker(model, text=lambda r: r.body)
    rows = [Row("python asyncio"), Row("postgres vacuum tuning"), Row("postgres vacuum")]
    got = apply_rerank(rerank, "postgres vacuum tuning", rows, 2)
    assert [(r.body, s) for r, s in got] == [
        ("postgres vacuum tuning", 3.0),
        ("postgres vacuum", 2.0),
    ]
    assert model.calls == [[("postgres vacuum tuning", r.body) for r in rows]]
    assert isinstance(rerank, Reranker)
    # Without text=, hits are their own text.
    plain = CrossEncoderReranker(FakeCrossEncoder("column"))
    assert plain("a b", ["a", "a b", "c"]) == [1.0, 2.0, 0.0]


def test_cross_encoder_reranker_errors() -> None:
    """A model without predict, a non-text query or hit, or multi-label output are refused."""
    with pytest.raises(InvalidArgument, match=r"model must have a predict\(pairs\) method"):
        CrossEncoderReranker(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"text must be a callable hit -> str, got str"):
        CrossEncoderReranker(FakeCrossEncoder(), text="body")  # type: ignore[arg-type]
    model = FakeCrossEncoder()
    rerank = CrossEncoderReranker(model)
    with pytest.raises(
        InvalidArgument, match=r"CrossEncoderReranker\(FakeCrossEncoder\) needs the query as text"
    ):
        apply_rerank(rerank, [0.1, 0.2], ["a"], 1)
    with pytest.raises(InvalidArgument, match=r"hits without text= must be a str, got Row for hit"):
        apply_rerank(rerank, "q", [Row("a")], 1)
    with pytest.raises(InvalidArgument, match=r"text= must return a str, got int for hit 0"):
        CrossEncoderReranker(model, text=len)("q", ["a", "bb"])  # type: ignore[arg-type]
    assert model.calls == []  # every check ran before the model was called
    two = CrossEncoderReranker(FakeCrossEncoder("two labels"))
    with pytest.raises(InvalidSearch, match=r"model returned scores of shape \(2, 2\) for 2 pairs"):
        two("q", ["a", "b"])
