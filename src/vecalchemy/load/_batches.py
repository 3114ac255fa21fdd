"""Rows or columns in, batches of columns out (streamed, lengths checked early)."""

from __future__ import annotations

import itertools
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import aclosing
from typing import Any

import numpy as np

from vecalchemy.errors import (
    InvalidRows,
)

__all__ = [
    "Batch",
    "arow_batches",
    "column_batches",
    "each",
    "row_batches",
]

#: (index of the batch's first row in the input, the batch's values column by column)
Batch = tuple[int, list[Sequence[Any]]]
# -- batching -------------------------------------------------------------------------


def _batch_columns(
    batch: list[Sequence[Any]], start: int, width: int, *, explicit: bool
) -> list[Sequence[Any]]:
    """A batch of row tuples as columns, after checking that each row has ``width`` values."""
    for i, row in enumerate(batch):
        if isinstance(row, (str, bytes, Mapping)) or len(row) != width:
            got = (
                f"a {type(row).__name__}"
                if isinstance(row, (str, bytes, Mapping))
                else f"{len(row)} values"
            )
            hint = "" if explicit else "; name the columns you give with columns=[...]"
            raise InvalidRows(f"row {start + i} has {got}, expected {width}{hint}")
    return list(zip(*batch, strict=True))


def row_batches(
    rows: Iterable[Sequence[Any]], width: int, batch_size: int, *, explicit: bool
) -> Iterator[Batch]:
    """(first row's index, the batch's columns) for each batch of row tuples."""
    it = iter(rows)
    start = 0
    while batch := list(itertools.islice(it, batch_size)):
        yield start, _batch_columns(batch, start, width, explicit=explicit)
        start += len(batch)


async def arow_batches(
    rows: AsyncIterable[Sequence[Any]], width: int, batch_size: int, *, explicit: bool
) -> AsyncGenerator[Batch, None]:
    """The async twin of :func:`row_batches`, for an async iterable of row tuples."""
    start = 0
    batch: list[Sequence[Any]] = []
    async for row in rows:
        batch.append(row)
        if len(batch) == batch_size:
            yield start, _batch_columns(batch, start, width, explicit=explicit)
            start += len(batch)
            batch = []
    if batch:
        yield start, _batch_columns(batch, start, width, explicit=explicit)


async def each(
    batches: Iterator[Batch] | AsyncGenerator[Batch, None],
) -> AsyncGenerator[Batch, None]:
    """The batches of a sync or async source, as one async iterator."""
    if isinstance(batches, AsyncGenerator):
        async with aclosing(batches):
            async for batch in batches:
                yield batch
    else:
        for batch in batches:
            yield batch


def column_batches(data: Mapping[str, Any], names: list[str], batch_size: int) -> Iterator[Batch]:
    """(first row's index, the batch's columns) for each slice of a dict of columns.

    The lengths are checked now, before any SQL runs; the slices are made lazily.
    """
    lengths = {name: len(data[name]) for name in names}
    if len(set(lengths.values())) > 1:
        raise InvalidRows(f"the columns have different lengths: {lengths}")
    return _slices(data, names, next(iter(lengths.values()), 0), batch_size)


def _slices(
    data: Mapping[str, Any], names: list[str], total: int, batch_size: int
) -> Iterator[Batch]:
    for start in range(0, total, batch_size):
        batch: list[Sequence[Any]] = []
        for name in names:
            part = data[name][start : start + batch_size]
            if isinstance(part, np.ndarray) and part.ndim == 1:
                part = part.tolist()  # python scalars for the drivers' encoders
            batch.append(part)
        yield start, batch
