"""Choose a collection's hybrid fusion on judged queries: :func:`tune_fusion`.

Private to :mod:`vecalchemy.eval`.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vecalchemy._progress import Progress, progress_reporter
from vecalchemy.collection import Collection
from vecalchemy.errors import InvalidArgument
from vecalchemy.eval._metrics import DEFAULT_CUTOFF, metric_names
from vecalchemy.eval._run import EvalResult, evaluate, load_qrels, load_queries
from vecalchemy.query.fusion import RRF, Fusion, Weighted

__all__ = ["FusionTuning", "default_grid", "fusion_label", "tune_fusion"]


def default_grid() -> list[Fusion]:
    """The fusions :func:`tune_fusion` tries unless told: ``RRF()`` and the convex
    combinations ``Weighted((a, 1 - a))`` for a dense weight ``a`` of 0.05 to 0.95 in
    steps of 0.05.

    Example::

        >>> len(default_grid()), default_grid()[1]
        (20, Weighted(weights=(0.05, 0.95)))
    """
    grid: list[Fusion] = [RRF()]
    for step in range(1, 20):
        a = round(step * 0.05, 2)
        grid.append(Weighted((a, round(1.0 - a, 2))))
    return grid


def fusion_label(fusion: Fusion) -> str:
    """A short name of ``fusion``, as the tables of ``vecalchemy eval`` print it.

    Example::

        >>> fusion_label(RRF()), fusion_label(Weighted((0.7, 0.3)))
        ('rrf k=60', 'weighted 0.70/0.30')
    """
    if isinstance(fusion, RRF):
        return f"rrf k={fusion.k}"
    if fusion.weights is None:
        return "weighted 0.50/0.50"
    return "weighted " + "/".join(f"{w:.2f}" for w in fusion.weights)


@dataclass
class FusionTuning:
    """What :func:`tune_fusion` measured.

    ``fusion``: the best of the ``scores`` (the mean of ``metric`` over every judged
    query, per fusion tried, by :func:`fusion_label`); ``score`` its mean. ``heldout``:
    the cross-validated estimate of what the choice gives on queries it was not chosen
    on (each of ``folds`` parts of the queries scored with the fusion chosen on the
    others): expect this, not ``score``, on new queries. ``vector`` and ``text``: each
    leg alone. ``stored``: whether it was recorded in the collection.

    Example::

        tuning = tune_fusion(docs, "queries.jsonl", "qrels/test.tsv")
        tuning.fusion, tuning.heldout, tuning.vector, tuning.text
    """

    collection: str
    metric: str
    fusion: Fusion
    score: float
    heldout: float
    vector: float
    text: float
    scores: dict[str, float]
    folds: int
    queries: int
    seed: int
    stored: bool = False
    #: Each fold's choice, in fold order (by :func:`fusion_label`).
    fold_choices: list[str] = field(default_factory=list)

    @property
    def beats_both_legs(self) -> bool:
        """Whether the held-out estimate is above each leg alone."""
        return self.heldout > max(self.vector, self.text)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the result.

        Example::

            json.dumps(tuning.as_dict(), indent=2)
        """
        return {
            "collection": self.collection,
            "metric": self.metric,
            "fusion": fusion_label(self.fusion),
            "score": round(self.score, 6),
            "heldout": round(self.heldout, 6),
            "vector": round(self.vector, 6),
            "text": round(self.text, 6),
            "beats_both_legs": self.beats_both_legs,
            "folds": self.folds,
            "fold_choices": self.fold_choices,
            "queries": self.queries,
            "seed": self.seed,
            "stored": self.stored,
            "scores": {label: round(v, 6) for label, v in self.scores.items()},
        }


def _check_grid(grid: Sequence[Fusion] | None) -> list[Fusion]:
    if grid is None:
        return default_grid()
    if isinstance(grid, (str, bytes)) or not isinstance(grid, Sequence) or not grid:
        raise InvalidArgument("grid must be a non-empty list of RRF(...) / Weighted(...) fusions")
    out: list[Fusion] = []
    for fusion in grid:
        if not isinstance(fusion, (RRF, Weighted)):
            raise InvalidArgument(f"grid holds {fusion!r}; give RRF(...) or Weighted(...) fusions")
        if isinstance(fusion, Weighted) and fusion.weights is not None and len(fusion.weights) != 2:
            raise InvalidArgument(
                f"{fusion!r} has {len(fusion.weights)} weights; hybrid search has 2 legs"
            )
        out.append(fusion)
    return out


def _check_folds(folds: object, queries: int) -> int:
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise InvalidArgument(f"folds must be an integer of at least 2, got {folds!r}")
    if queries < folds:
        raise InvalidArgument(
            f"{queries} judged queries cannot be split into {folds} folds; give more queries "
            "or fewer folds"
        )
    return folds


def _best(scores: Mapping[str, list[float]], rows: Sequence[int]) -> str:
    """The fusion with the highest mean over ``rows`` (the first of equals, grid order)."""
    best, value = "", float("-inf")
    for label, per_query in scores.items():
        mean = statistics.fmean(per_query[i] for i in rows)
        if mean > value + 1e-12:
            best, value = label, mean
    return best


def tune_fusion(
    collection: Collection,
    queries: str | Path | Mapping[str, str],
    qrels: str | Path | Mapping[str, Mapping[str, int]],
    *,
    grid: Sequence[Fusion] | None = None,
    metric: str | None = None,
    k: int = 100,
    cutoff: int = DEFAULT_CUTOFF,
    folds: int = 5,
    seed: int = 0,
    where: Mapping[str, Any] | None = None,
    store: bool = False,
    progress: Progress | bool | None = None,
) -> FusionTuning:
    """Find the hybrid fusion that ranks ``collection`` best on judged queries.

    Every fusion of ``grid`` (default :func:`default_grid`: RRF and the convex
    combinations 0.05/0.95 ... 0.95/0.05 of min-max normalised scores) is evaluated with
    :func:`evaluate` (``mode="hybrid"``, in SQL, as searches run), and so are the two
    legs alone. ``metric`` (default ``ndcg@<cutoff>``) picks the best. The choice is
    cross-validated: the judged queries are split at random (``seed``) into ``folds``
    parts, each part scored with the fusion that is best on the others, and
    :attr:`FusionTuning.heldout` is that score, the honest estimate for new queries.

    ``store=True`` records the fusion chosen on all queries in the collection
    (:meth:`Collection.set_fusion`, with what was measured), so that
    ``search(mode="hybrid")`` uses it without being told, in every process.

    Raises :class:`~vecalchemy.InvalidArgument` for a bad grid, metric or folds, and
    what :func:`evaluate` raises for bad files, before anything is stored.

    Example::

        tuning = vecalchemy.tune_fusion(docs, "queries.jsonl", "qrels/test.tsv", store=True)
        print(tuning.fusion, tuning.heldout, tuning.vector, tuning.text)
    """
    if not isinstance(collection, Collection):
        raise InvalidArgument(
            f"tune_fusion() needs a Collection, got {type(collection).__name__}; open one "
            "with Collection.open(name)"
        )
    fusions = _check_grid(grid)
    names = metric_names(k, cutoff)
    metric = metric or f"ndcg@{cutoff}"
    if metric not in names:
        raise InvalidArgument(f"unknown metric {metric!r}; use one of: {', '.join(names)}")
    texts = load_queries(queries)
    judged = load_qrels(qrels)
    order = [q for q in texts if q in judged]
    folds = _check_folds(folds, len(order))
    labels = [fusion_label(f) for f in fusions]
    if len(set(labels)) != len(labels):
        raise InvalidArgument("grid holds the same fusion twice; give each once")

    def run(mode: Any, fusion: Fusion | None = None) -> EvalResult:
        return evaluate(
            collection, texts, judged, mode=mode, k=k, cutoff=cutoff, where=where, fusion=fusion
        )

    per_query: dict[str, list[float]] = {}
    with progress_reporter(progress, unit="fusions") as report:
        legs = {mode: run(mode) for mode in ("vector", "text")}
        for done, (label, fusion) in enumerate(zip(labels, fusions, strict=True), 1):
            result = run("hybrid", fusion)
            per_query[label] = [result.per_query[q][metric] for q in order]
            if report is not None:
                report("evaluating", done, len(fusions))
    shuffled = list(range(len(order)))
    random.Random(seed).shuffle(shuffled)
    parts = [shuffled[i::folds] for i in range(folds)]
    held: list[float] = []
    choices = []
    for i, part in enumerate(parts):
        train = [j for p, other in enumerate(parts) if p != i for j in other]
        choice = _best(per_query, train)
        choices.append(choice)
        held.extend(per_query[choice][j] for j in part)
    best = _best(per_query, range(len(order)))
    chosen = fusions[labels.index(best)]
    tuning = FusionTuning(
        collection=collection.name,
        metric=metric,
        fusion=chosen,
        score=statistics.fmean(per_query[best]),
        heldout=statistics.fmean(held),
        vector=legs["vector"].metrics[metric],
        text=legs["text"].metrics[metric],
        scores={label: statistics.fmean(v) for label, v in per_query.items()},
        folds=folds,
        queries=len(order),
        seed=seed,
        fold_choices=choices,
    )
    if store:
        collection.set_fusion(
            chosen,
            tuned={
                "metric": metric,
                "score": round(tuning.score, 6),
                "heldout": round(tuning.heldout, 6),
                "vector": round(tuning.vector, 6),
                "text": round(tuning.text, 6),
                "queries": tuning.queries,
                "folds": folds,
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
        tuning.stored = True
    return tuning
