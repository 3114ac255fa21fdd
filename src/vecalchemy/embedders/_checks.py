"""Checks and helpers every embedder shares: texts, queries, batch sizes, output matrices.

Private to :mod:`vecalchemy.embedders`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from vecalchemy.errors import EmbedderError

__all__ = ["as_matrix", "batches", "check_batch_size", "check_query", "check_texts"]

_T = TypeVar("_T")


def check_texts(texts: Sequence[str]) -> list[str]:
    """Return ``texts`` as a list after checking that each is a non-blank ``str``.

    Raises :class:`~vecalchemy.errors.EmbedderError` for a single ``str`` (a common
    slip that would embed every character), and naming the index of the first item
    that is not a ``str`` or is empty or whitespace only: such a text has no meaning
    to embed, and the vector a model makes of it would match arbitrary queries.

    Example::

        >>> check_texts(("a text", "another"))
        ['a text', 'another']
        >>> check_texts(["fine", " "])
        Traceback (most recent call last):
        ...
        vecalchemy.errors.EmbedderError: text at index 1 is empty or whitespace only; ...
    """
    if isinstance(texts, (str, bytes)):
        raise EmbedderError(
            f"embed_documents() takes a sequence of texts, got a single {type(texts).__name__}; "
            "wrap it in a list or use embed_query()"
        )
    checked = list(texts)
    for index, text in enumerate(checked):
        if not isinstance(text, str):
            raise EmbedderError(
                f"text at index {index} is a {type(text).__name__}, not a str; embed strings only"
            )
        if not text.strip():
            raise EmbedderError(
                f"text at index {index} is empty or whitespace only; its vector would mean "
                "nothing, so leave such texts out (or give them a title)"
            )
    return checked


def check_query(text: str) -> str:
    """Return ``text`` after checking that it is one non-blank ``str``.

    Example::

        >>> check_query("where is the config file?")
        'where is the config file?'
    """
    if not isinstance(text, str):
        raise EmbedderError(f"embed_query() takes a str, got {type(text).__name__}")
    return check_texts([text])[0]


def check_batch_size(batch_size: int) -> int:
    """Return ``batch_size`` after checking that it is a positive ``int``.

    Example::

        >>> check_batch_size(64)
        64
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise EmbedderError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def batches(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    """Yield consecutive slices of ``items`` of ``size`` items (the last may be shorter).

    Example::

        >>> [list(b) for b in batches(["a", "b", "c", "d", "e"], 2)]
        [['a', 'b'], ['c', 'd'], ['e']]
    """
    for start in range(0, len(items), size):
        yield items[start : start + size]


def as_matrix(vectors: Any, *, rows: int, dim: int | None, source: str) -> npt.NDArray[np.float32]:
    """Check what a model returned and give it back as a C-contiguous float32 matrix.

    ``vectors`` must be ``rows`` finite vectors of ``dim`` numbers each (any ``dim``
    when it is ``None``); otherwise :class:`~vecalchemy.errors.EmbedderError` says what
    ``source`` (the model, or the server's URL) returned instead.

    Example::

        >>> as_matrix([[1, 0], [0, 1]], rows=2, dim=2, source="my model").dtype
        dtype('float32')
    """
    try:
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise EmbedderError(f"{source} returned vectors that are not numbers: {exc}") from exc
    if matrix.ndim != 2 or matrix.shape[0] != rows:
        raise EmbedderError(
            f"{source} returned an array of shape {matrix.shape} for {rows} texts; "
            f"expected ({rows}, {dim if dim is not None else 'dim'})"
        )
    if dim is not None and matrix.shape[1] != dim:
        raise EmbedderError(
            f"{source} returned vectors of {matrix.shape[1]} dimensions, expected {dim}; "
            "check that the model is the one the embedder was configured for"
        )
    if not np.isfinite(matrix).all():
        row = int(np.flatnonzero(~np.isfinite(matrix).all(axis=1))[0])
        raise EmbedderError(f"{source} returned NaN or infinity in the vector of text {row}")
    return matrix
