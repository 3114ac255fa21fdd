"""The embedder of a sourced column, and the checks on what it returns."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Column

from vecalchemy._names import describe
from vecalchemy._source import SOURCE_KEY, SourceSpec
from vecalchemy._sql import INFO_KEY
from vecalchemy.embedders import Embedder, get_embedder
from vecalchemy.embedders._checks import as_matrix
from vecalchemy.errors import EmbedderError
from vecalchemy.metrics import Metric

__all__ = ["check_dim", "check_vectors", "resolve_embedder", "too_long"]

_EMBEDDER_KEY = "vecalchemy.embedder"


def resolve_embedder(column: Column[Any]) -> Embedder:
    """The embedder a sourced column declares, built once and kept in ``column.info``;
    its dimension must be the column's."""
    cached = column.info.get(_EMBEDDER_KEY)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    spec: SourceSpec = column.info[SOURCE_KEY]
    embedder = get_embedder(spec.embedder)
    check_dim(embedder, column.info[INFO_KEY].dim, describe(column))
    column.info[_EMBEDDER_KEY] = embedder
    return embedder


def check_dim(embedder: Embedder, dim: int, where: str) -> None:
    """:class:`EmbedderError` unless ``embedder`` makes vectors of ``dim`` dimensions."""
    if embedder.dim != dim:
        raise EmbedderError(
            f"{embedder.name} makes {embedder.dim}-dimension vectors but {where} has "
            f"{dim}; use an embedder of {dim} dimensions, or migrate the column to this "
            "one (vecalchemy sync migrate --to SPEC)"
        )


def check_vectors(
    vectors: Any, *, rows: int, dim: int, metric: Metric, embedder: Embedder
) -> npt.NDArray[np.float32]:
    """What ``embedder`` returned for ``rows`` texts, checked: shape, finite values, and
    no zero vector where the metric is cosine. Raises :class:`EmbedderError`."""
    matrix = as_matrix(vectors, rows=rows, dim=dim, source=embedder.name)
    if metric is Metric.COSINE:
        zero = np.flatnonzero(~matrix.any(axis=1))
        if zero.size:
            raise EmbedderError(
                f"{embedder.name} returned a zero vector for text {int(zero[0])}, which "
                "has no cosine distance to anything"
            )
    return matrix


def too_long(embedder: Embedder, text: str) -> str | None:
    """Why ``text`` does not fit ``embedder``'s window (the model would embed only its
    start), or None when it fits or the embedder has no window it can count."""
    window = getattr(embedder, "max_tokens", None)
    count = getattr(embedder, "count_tokens", None)
    if not window or count is None or len(text) <= window:  # a token has >= 1 character
        return None
    tokens = int(count(text))
    if tokens <= window:
        return None
    return (
        f"the text has {tokens} tokens but {embedder.name} reads at most {window}; the "
        "rest would not be embedded. Shorten or split the text (a Collection splits "
        "documents into chunks that fit), or declare the column with truncate=True to "
        "embed the start of long texts"
    )
