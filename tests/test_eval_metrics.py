"""nDCG@k, recall@k and reciprocal rank, against cases worked out by hand.

The hand-worked values were also checked against pytrec_eval 0.5.11 (trec_eval's
``ndcg_cut``, ``recall`` and ``recip_rank``), which BEIR uses; so were 3,000 random
cases with tied scores ranked by :func:`rank_scores`.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vecalchemy.errors import InvalidArgument
from vecalchemy.eval import ndcg_at_k, rank_scores, recall_at_k, reciprocal_rank
from vecalchemy.eval._metrics import dedupe

L2 = math.log2
#: Grades 3, 2, 0, 1, 2; d9 is not judged.
QRELS = {"d1": 3, "d2": 2, "d3": 0, "d4": 1, "d5": 2}
#: trec_eval's order of {"d3": .9, "d2": .8, "d9": .8, "d1": .5, "d4": .1}: d9 and d2 tie
#: at 0.8 and go by id descending, so d9 comes first.
RANKING = ["d3", "d9", "d2", "d1", "d4"]
IDEAL5 = 3 + 2 / L2(3) + 2 / L2(4) + 1 / L2(5)  # grades 3, 2, 2, 1 (d3's 0 adds nothing)


def test_rank_scores_breaks_ties_by_id_descending_as_trec_eval_does() -> None:
    assert rank_scores({"d3": 0.9, "d2": 0.8, "d9": 0.8, "d1": 0.5, "d4": 0.1}) == RANKING
    assert rank_scores({}) == []


def test_ndcg_uses_linear_gains_and_the_ideal_of_every_judged_document() -> None:
    """d2 (grade 2) at rank 3, d1 (3) at rank 4, d4 (1) at rank 5; d5 is never found but
    is in the ideal ranking."""
    assert ndcg_at_k(RANKING, QRELS, 1) == 0.0
    assert ndcg_at_k(RANKING, QRELS, 3) == pytest.approx((2 / L2(4)) / (3 + 2 / L2(3) + 2 / L2(4)))
    assert ndcg_at_k(RANKING, QRELS, 3) == pytest.approx(0.19004688335796713)  # pytrec_eval
    dcg5 = 2 / L2(4) + 3 / L2(5) + 1 / L2(6)
    assert ndcg_at_k(RANKING, QRELS, 5) == pytest.approx(dcg5 / IDEAL5)
    assert ndcg_at_k(RANKING, QRELS, 10) == pytest.approx(0.4705956098941162)  # pytrec_eval


def test_ndcg_is_one_for_the_ideal_order_and_below_for_a_swap() -> None:
    assert ndcg_at_k(["d1", "d2", "d5", "d4"], QRELS, 10) == pytest.approx(1.0)
    # d5 and d2 have the same grade: either order is ideal.
    assert ndcg_at_k(["d1", "d5", "d2", "d4"], QRELS, 10) == pytest.approx(1.0)
    swapped = ndcg_at_k(["d2", "d1", "d5", "d4"], QRELS, 10)
    assert swapped == pytest.approx((2 + 3 / L2(3) + 2 / L2(4) + 1 / L2(5)) / IDEAL5)
    assert swapped < 1.0


def test_ndcg_at_k_cuts_the_ideal_at_k_too() -> None:
    """Only one place at k=1: finding the best document is perfect, whatever is missing."""
    assert ndcg_at_k(["d1"], QRELS, 1) == 1.0
    assert ndcg_at_k(["d2"], QRELS, 1) == pytest.approx(2 / 3)


def test_negative_and_zero_judgements_are_not_relevant() -> None:
    qrels = {"a": -1, "b": 1, "c": 0}
    assert ndcg_at_k(["a", "b"], qrels, 10) == pytest.approx(1 / L2(3))  # pytrec_eval too
    assert recall_at_k(["a", "c"], qrels, 10) == 0.0
    assert reciprocal_rank(["a", "c", "b"], qrels) == pytest.approx(1 / 3)


def test_recall_counts_relevant_documents_in_the_top_k() -> None:
    # Relevant: d1, d2, d4, d5 (d3 is judged 0).
    assert recall_at_k(RANKING, QRELS, 1) == 0.0
    assert recall_at_k(RANKING, QRELS, 3) == 0.25
    assert recall_at_k(RANKING, QRELS, 5) == 0.75
    assert recall_at_k(RANKING, QRELS, 100) == 0.75


def test_reciprocal_rank_with_and_without_a_cut_off() -> None:
    assert reciprocal_rank(RANKING, QRELS) == pytest.approx(1 / 3)
    assert reciprocal_rank(RANKING, QRELS, 3) == pytest.approx(1 / 3)
    assert reciprocal_rank(RANKING, QRELS, 2) == 0.0
    assert reciprocal_rank(["d4"], QRELS, 10) == 1.0


def test_a_query_without_relevant_documents_scores_zero() -> None:
    """As trec_eval and BEIR count it: 0, not left out (the mean includes it)."""
    qrels = {"a": 0, "b": 0}
    assert ndcg_at_k(["a", "b"], qrels, 10) == 0.0
    assert recall_at_k(["a", "b"], qrels, 10) == 0.0
    assert reciprocal_rank(["a", "b"], qrels) == 0.0
    assert ndcg_at_k(["a"], {}, 10) == 0.0


def test_an_empty_ranking_scores_zero() -> None:
    assert ndcg_at_k([], QRELS, 10) == 0.0
    assert recall_at_k([], QRELS, 10) == 0.0
    assert reciprocal_rank([], QRELS) == 0.0


def test_a_document_listed_twice_counts_once_at_its_best_rank() -> None:
    """The copy takes no place in the top k: d1 is pushed into the top 2, not out."""
    assert dedupe(["d2", "d2", "d1"]) == ["d2", "d1"]
    assert recall_at_k(["d2", "d2", "d1"], QRELS, 2) == 0.5
    assert ndcg_at_k(["d2", "d2", "d1"], QRELS, 2) == ndcg_at_k(["d2", "d1"], QRELS, 2)
    assert reciprocal_rank(["x", "x", "d4"], QRELS) == 0.5


@pytest.mark.parametrize("k", [0, -1, 1.5, True, None])
def test_a_bad_cut_off_is_refused(k: object) -> None:
    with pytest.raises(InvalidArgument, match="cut-off k that is a positive integer"):
        ndcg_at_k(["a"], {"a": 1}, k)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="positive integer"):
        recall_at_k(["a"], {"a": 1}, k)  # type: ignore[arg-type]
    if k is not None:
        with pytest.raises(InvalidArgument, match="positive integer"):
            reciprocal_rank(["a"], {"a": 1}, k)  # type: ignore[arg-type]


def test_a_string_is_not_a_ranking() -> None:
    with pytest.raises(InvalidArgument, match="list of document ids, not one string"):
        recall_at_k("d1", QRELS, 10)


grades = st.dictionaries(
    st.text("abcdefgh", min_size=1, max_size=2), st.integers(-1, 3), min_size=1, max_size=12
)


@given(grades, st.integers(1, 15))
def test_the_ideal_ranking_is_perfect(qrels: dict[str, int], k: int) -> None:
    """Judged documents sorted by grade score nDCG 1, and find every relevant one in reach."""
    ideal = sorted(qrels, key=lambda d: qrels[d], reverse=True)
    relevant = sum(g > 0 for g in qrels.values())
    if relevant == 0:
        assert ndcg_at_k(ideal, qrels, k) == 0.0
        return
    assert ndcg_at_k(ideal, qrels, k) == pytest.approx(1.0)
    assert recall_at_k(ideal, qrels, k) == pytest.approx(min(k, relevant) / relevant)
    assert reciprocal_rank(ideal, qrels, k) == 1.0


@given(grades, st.lists(st.text("abcdefghxyz", min_size=1, max_size=2), max_size=20))
def test_metrics_stay_in_range_and_grow_with_k(qrels: dict[str, int], ranking: list[str]) -> None:
    for k in (1, 5, 10):
        for metric in (ndcg_at_k, recall_at_k, reciprocal_rank):
            assert 0.0 <= metric(ranking, qrels, k) <= 1.0 + 1e-12
        assert recall_at_k(ranking, qrels, k) <= recall_at_k(ranking, qrels, k + 5)
        assert reciprocal_rank(ranking, qrels, k) <= reciprocal_rank(ranking, qrels)
