"""Checking and encoding vectors in PostgreSQL's binary format, a batch at a time."""

from __future__ import annotations

import struct
from collections.abc import (
    Sequence,
)
from typing import Any

import numpy as np
import numpy.typing as npt
from pgvector import Bit, HalfVector, Vector

from vecalchemy._vectors import as_row, check_bits, check_dense, check_sparse_value
from vecalchemy.load._plan import ColumnType, VectorColumn
from vecalchemy.metrics import Storage

__all__ = [
    "encode_batch",
]

# -- checking and encoding vectors ---------------------------------------------------


def _encode(values: Sequence[Any], spec: VectorColumn, start: int) -> list[bytes | None]:
    """Check a batch of one vector column and encode it in the type's binary format."""
    dense_kind = spec.kind in ("vector", "halfvec")
    if dense_kind and isinstance(values, np.ndarray) and values.ndim == 2:
        if values.dtype.kind in "biuf":  # the fast path: one array, checked at once
            return list(_encode_dense(values, spec, range(start, start + len(values))))
        values = list(values)
    out: list[bytes | None] = [None] * len(values)
    present = [i for i, v in enumerate(values) if v is not None]
    if dense_kind:
        dense = [_unwrap(values[i]) for i in present]
        rows = [start + i for i in present]
        stacked = _stack(dense, spec, rows)
        if isinstance(stacked, list):  # rows of different sizes: one at a time
            encoded = [
                _encode_dense(r[None, :], spec, [row])[0]
                for r, row in zip(stacked, rows, strict=True)
            ]
        else:
            encoded = _encode_dense(stacked, spec, rows)
    elif spec.kind == "sparsevec":
        encoded = [_encode_sparse(values[i], spec, start + i) for i in present]
    else:
        encoded = [_encode_bit(values[i], spec, start + i) for i in present]
    for i, data in zip(present, encoded, strict=True):
        out[i] = data
    return out


def _unwrap(value: Any) -> Any:
    if isinstance(value, (Vector, HalfVector)):
        return value.to_numpy()
    return value


def _stack(
    dense: list[Any], spec: VectorColumn, rows: list[int]
) -> npt.NDArray[Any] | list[npt.NDArray[np.float32]]:
    """The batch as one 2-D array, or the clear error of its first unreadable row.

    Rows of different sizes (possible in a column without a dimension) come back as a
    list of 1-D arrays.
    """
    if not dense:
        return np.empty((0, spec.dim or 1), dtype=np.float32)
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            arr = np.asarray(dense, dtype=np.float32)
    except (TypeError, ValueError):
        arr = None  # ragged or unreadable: find the row
    if arr is not None and arr.ndim == 2:
        return arr
    # Row by row, only to name the first bad one; an undimensioned column may mix sizes.
    checked = [
        as_row(v, what=f"row {row}: {spec.label}", suffix=_NOTHING)
        for v, row in zip(dense, rows, strict=True)
    ]
    if len({len(r) for r in checked}) == 1:
        return np.stack(checked)
    return checked


_NOTHING = "; nothing was loaded"


def _encode_dense(arr: npt.NDArray[Any], spec: VectorColumn, rows: Sequence[int]) -> list[bytes]:
    """Check a 2-D batch of dense vectors at once and encode each row as vector/halfvec.

    ``rows`` are the input positions of the array's rows, for error messages.
    """
    storage = Storage.HALFVEC if spec.kind == "halfvec" else Storage.VECTOR
    values = check_dense(
        arr,
        dim=spec.dim,
        storage=storage,
        name=lambda i: f"row {rows[i]}: {spec.label}",
        column="the column",
        zero_ok=spec.zero_ok,
        suffix=_NOTHING,
    )
    # The binary format: uint16 dimensions, uint16 zero, then big-endian floats.
    header = struct.pack(">HH", values.shape[1] if values.size else 0, 0)
    return [header + row.tobytes() for row in values.astype(values.dtype.newbyteorder(">"))]


def _encode_sparse(value: Any, spec: VectorColumn, row: int) -> bytes:
    checked = check_sparse_value(
        value,
        dim=spec.dim,
        what=f"row {row}: {spec.label}",
        column="the column",
        zero_ok=spec.zero_ok,
        max_nnz=spec.max_nnz,
        suffix=_NOTHING,
    )
    encoded: bytes = checked.to_binary()
    return encoded


def _encode_bit(value: Any, spec: VectorColumn, row: int) -> bytes:
    bits = check_bits(
        value,
        dim=spec.dim,
        what=f"row {row}: {spec.label}",
        column="the column",
        suffix=_NOTHING,
    )
    encoded: bytes = Bit(bits).to_binary()
    return encoded


def encode_batch(
    values: list[Sequence[Any]], columns: list[ColumnType], start: int
) -> list[Sequence[Any]]:
    """A batch with its vector columns checked and encoded; the other columns as given."""
    return [
        v if c.vector is None else _encode(v, c.vector, start)
        for v, c in zip(values, columns, strict=True)
    ]
