"""Checking and encoding vectors in PostgreSQL's binary format, a batch at a time."""

from __future__ import annotations

import struct
from collections.abc import (
    Mapping,
    Sequence,
)
from typing import Any

import numpy as np
import numpy.typing as npt
from pgvector import Bit, HalfVector, SparseVector, Vector

from vecalchemy.errors import (
    DimensionMismatch,
    InvalidVector,
)
from vecalchemy.load._plan import _ColumnType, _VectorColumn
from vecalchemy.vectors import check_sparse

_MAX_DIM = 16_000  # pgvector's limit for vector, halfvec and sparsevec
_HALF_MAX = 65504.0  # the largest finite float16
# -- checking and encoding vectors ---------------------------------------------------


def _encode(values: Sequence[Any], spec: _VectorColumn, start: int) -> list[bytes | None]:
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
    dense: list[Any], spec: _VectorColumn, rows: list[int]
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
    checked = [_as_row(v, spec, row) for v, row in zip(dense, rows, strict=True)]
    if len({len(r) for r in checked}) == 1:
        return np.stack(checked)
    return checked


def _as_row(value: Any, spec: _VectorColumn, row: int) -> npt.NDArray[np.float32]:
    if isinstance(value, (str, bytes)):
        raise InvalidVector(
            f"row {row}: {spec.label} needs a list or array of numbers, not a "
            f"{type(value).__name__}; nothing was loaded"
        )
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidVector(
            f"row {row}: {spec.label} value cannot be read as numbers ({exc}); nothing was loaded"
        ) from exc
    if arr.ndim != 1:
        raise InvalidVector(
            f"row {row}: {spec.label} needs a flat list of numbers, got shape {arr.shape}; "
            "nothing was loaded"
        )
    return arr


def _encode_dense(arr: npt.NDArray[Any], spec: _VectorColumn, rows: Sequence[int]) -> list[bytes]:
    """Check a 2-D batch of dense vectors at once and encode each row as vector/halfvec.

    ``rows`` are the input positions of the array's rows, for error messages.
    """
    n, dim = arr.shape
    if n and (spec.dim is not None and dim != spec.dim):
        raise DimensionMismatch(
            f"row {rows[0]}: {spec.label} is {spec.describe()} but the vector has {dim} "
            "dimensions; check the embedding model; nothing was loaded"
        )
    if n and not 1 <= dim <= _MAX_DIM:
        raise InvalidVector(
            f"row {rows[0]}: {spec.label} vector has {dim} dimensions; pgvector stores 1 to "
            f"{_MAX_DIM}; nothing was loaded"
        )
    native = np.dtype(np.float16 if spec.kind == "halfvec" else np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.asarray(arr, dtype=native)
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        index = int(np.flatnonzero(~np.isfinite(values[bad]))[0])
        value = np.asarray(arr)[bad, index]
        if spec.kind == "halfvec" and np.isfinite(value):
            problem = (
                f"has {value} at index {index}, outside halfvec's range (±{_HALF_MAX:g}); "
                "scale the vectors or store them as vector"
            )
        else:
            problem = f"has {value} at index {index}; vectors must hold finite {native} numbers"
        raise InvalidVector(f"row {rows[bad]}: {spec.label} {problem}; nothing was loaded")
    # The binary format: uint16 dimensions, uint16 zero, then big-endian floats.
    header = struct.pack(">HH", dim, 0)
    return [header + row.tobytes() for row in values.astype(native.newbyteorder(">"))]


def _encode_sparse(value: Any, spec: _VectorColumn, row: int) -> bytes:
    if not isinstance(value, SparseVector):
        try:
            if isinstance(value, Mapping):
                if spec.dim is None:
                    raise ValueError("a dict needs a column with a dimension")
                value = SparseVector(dict(value), spec.dim)  # {index: weight}, as search() takes
            else:
                value = SparseVector(value)
        except (TypeError, ValueError) as exc:
            raise InvalidVector(
                f"row {row}: {spec.label} needs a SparseVector, a dict of {{index: weight}} or "
                f"a dense list/array, got {type(value).__name__} ({exc}); nothing was loaded"
            ) from exc
    if spec.dim is not None and value.dimensions() != spec.dim:
        raise DimensionMismatch(
            f"row {row}: {spec.label} is {spec.describe()} but the vector has "
            f"{value.dimensions()} dimensions; nothing was loaded"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.asarray(value.values(), dtype=np.float32)
    if not np.isfinite(values).all():
        raise InvalidVector(
            f"row {row}: {spec.label} has a non-finite value; vectors must hold finite "
            "numbers; nothing was loaded"
        )
    value = check_sparse(
        value,
        dim=value.dimensions(),
        what=f"row {row}: {spec.label}",
        suffix="; nothing was loaded",
    )
    nnz = len(value.indices())
    if spec.max_nnz is not None and nnz > spec.max_nnz:
        raise InvalidVector(
            f"row {row}: {spec.label} has {nnz:,} non-zero elements, but pgvector's HNSW index "
            f"on sparsevec takes at most {spec.max_nnz:,} per row; keep the {spec.max_nnz:,} "
            "largest weights, or declare the column with index=None (exact search only); "
            "nothing was loaded"
        )
    encoded: bytes = value.to_binary()
    return encoded


def _encode_bit(value: Any, spec: _VectorColumn, row: int) -> bytes:
    if not isinstance(value, Bit):
        try:
            value = Bit(value)
        except (TypeError, ValueError) as exc:
            raise InvalidVector(
                f"row {row}: {spec.label} needs a bit string, bools or a Bit ({exc}); "
                "nothing was loaded"
            ) from exc
    length = len(value.to_text())
    if spec.dim is not None and length != spec.dim:
        raise DimensionMismatch(
            f"row {row}: {spec.label} is {spec.describe()} but the value has {length} bits; "
            "nothing was loaded"
        )
    encoded: bytes = value.to_binary()
    return encoded


def _encode_batch(
    values: list[Sequence[Any]], columns: list[_ColumnType], start: int
) -> list[Sequence[Any]]:
    """A batch with its vector columns checked and encoded; the other columns as given."""
    return [
        v if c.vector is None else _encode(v, c.vector, start)
        for v, c in zip(values, columns, strict=True)
    ]
