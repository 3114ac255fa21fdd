"""Evaluate search quality on your own judged queries: nDCG@10, recall@k, MRR.

:func:`evaluate` searches a :class:`~vecalchemy.Collection` with every query of a
BEIR-format ``queries.jsonl`` that a qrels file judges, and scores the rankings of
documents (a document split into chunks counts once, at its best chunk) with the
metrics of BEIR / trec_eval (:func:`ndcg_at_k`, :func:`recall_at_k`,
:func:`reciprocal_rank`; their docstrings, and :mod:`vecalchemy.eval._metrics`, give the
exact definitions: linear gains, ties in the order given, queries without a relevant
document scoring 0). :func:`read_beir`, :func:`read_corpus`, :func:`read_queries` and
:func:`read_qrels` read BEIR files with an error naming the file and line of anything
wrong. ``vecalchemy eval`` is the command line for it.

Example::

    from vecalchemy import Collection
    from vecalchemy.eval import evaluate, read_corpus

    docs = Collection("scifact", embedder="minilm")
    corpus = read_corpus("scifact/corpus.jsonl")
    docs.add([d.content for d in corpus], ids=[d.id for d in corpus])
    result = evaluate(docs, "scifact/queries.jsonl", "scifact/qrels/test.tsv", k=100)
    result.metrics          # {'ndcg@10': ..., 'recall@10': ..., 'recall@100': ..., 'mrr@10': ...}
"""

from __future__ import annotations

from vecalchemy._beir import (
    BeirDataset,
    BeirDocument,
    read_beir,
    read_corpus,
    read_qrels,
    read_queries,
)
from vecalchemy.eval._metrics import (
    metric_names,
    ndcg_at_k,
    rank_scores,
    recall_at_k,
    reciprocal_rank,
    score_rankings,
)
from vecalchemy.eval._run import EVAL_MODES, EvalMode, EvalResult, evaluate
from vecalchemy.eval._tune import FusionTuning, default_grid, fusion_label, tune_fusion

__all__ = [
    "EVAL_MODES",
    "BeirDataset",
    "BeirDocument",
    "EvalMode",
    "EvalResult",
    "FusionTuning",
    "default_grid",
    "evaluate",
    "fusion_label",
    "metric_names",
    "ndcg_at_k",
    "rank_scores",
    "read_beir",
    "read_corpus",
    "read_qrels",
    "read_queries",
    "recall_at_k",
    "reciprocal_rank",
    "score_rankings",
    "tune_fusion",
]
