"""The one vector validator: query vectors, column writes and load batches, before any SQL.

Every vector vecalchemy sends is checked here, whether it is a search's query vector
(:func:`as_query_value`), a value written to an :func:`~vecalchemy.Embedding` column, or a
batch of rows for :func:`vecalchemy.load` (:func:`check_dense`, :func:`check_sparse_value`,
:func:`check_bits`): its dimension, that every value is finite (and within halfvec's range
for halfvec), that a cosine column gets no zero vector (no direction, so its distance to
anything is undefined), sparse indices in range and given once, bits of 0 and 1. The
messages name the value (``query vector``, ``row 17: docs.embedding``) and say what to do.

Query vectors may be lists, tuples, numpy arrays or pgvector objects (``Vector``,
``HalfVector``, ``SparseVector``, ``Bit``); :func:`as_query_value` returns the pgvector
object the drivers send in binary form.

Example::

    >>> from vecalchemy.metrics import Storage
    >>> as_query_value([0.1, 0.2, 0.3], dim=3, storage=Storage.VECTOR)
    Vector([0.1, 0.2, 0.3])
    >>> as_query_value([0.1, float("nan"), 0.3], dim=3, storage=Storage.VECTOR)
    Traceback (most recent call last):
    ...
    vecalchemy.errors.InvalidVector: query vector has a non-finite value (nan) at index 1 ...
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from pgvector import Bit, HalfVector, SparseVector, Vector

from vecalchemy.errors import DimensionMismatch, InvalidVector
from vecalchemy.metrics import STORAGE_DIM_LIMITS, Storage

__all__ = [
    "HALF_MAX",
    "as_dense_array",
    "as_query_value",
    "as_row",
    "bits_text",
    "check_bits",
    "check_dense",
    "check_sparse",
    "check_sparse_value",
]

#: The largest finite float16: halfvec's range.
HALF_MAX = 65504.0
_MAX_DIM = STORAGE_DIM_LIMITS[Storage.VECTOR]  # 16,000, for vector and halfvec alike

#: How a value is named in a message, given its row in the batch.
Namer = Callable[[int], str]


def _zero_message(what: str) -> str:
    return (
        f"{what} is all zeros; a zero vector has no direction, so its cosine distance is "
        "undefined: check the embedding"
    )


# -- dense vectors ---------------------------------------------------------------------


def check_dense(
    arr: npt.NDArray[Any],
    *,
    dim: int | None,
    storage: Storage,
    name: Namer,
    column: str = "the column",
    zero_ok: bool = True,
    suffix: str = "",
) -> npt.NDArray[Any]:
    """Check a 2-D batch of dense vectors at once; return it in the column's dtype.

    ``name(i)`` names row ``i`` in messages; ``suffix`` ends them (``"; nothing was
    loaded"``). float16 for halfvec (a value beyond its range is an error, not an
    infinity), else float32.
    """
    n, got = arr.shape
    if n and dim is not None and got != dim:
        raise DimensionMismatch(
            f"{name(0)} has {got} dimensions but {column} has {dim}; embed with the same "
            f"model the column was filled with{suffix}"
        )
    if n and not 1 <= got <= _MAX_DIM:
        raise InvalidVector(
            f"{name(0)} has {got} dimensions; pgvector stores 1 to {_MAX_DIM:,}{suffix}"
        )
    native = np.dtype(np.float16 if storage is Storage.HALFVEC else np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.asarray(arr, dtype=native)
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        index = int(np.flatnonzero(~np.isfinite(values[bad]))[0])
        value = np.asarray(arr)[bad, index]
        if storage is Storage.HALFVEC and np.isfinite(value):
            raise InvalidVector(
                f"{name(bad)} has {value} at index {index}, outside halfvec's range "
                f"(±{HALF_MAX:g}); scale the vectors or store them as vector{suffix}"
            )
        raise InvalidVector(
            f"{name(bad)} has a non-finite value ({value}) at index {index}; embeddings "
            f"must be finite numbers: check the model output{suffix}"
        )
    if not zero_ok and n:
        zero = ~values.any(axis=1)
        if zero.any():
            raise InvalidVector(_zero_message(name(int(np.flatnonzero(zero)[0]))) + suffix)
    return values


def as_row(value: Any, *, what: str, suffix: str = "") -> npt.NDArray[np.float32]:
    """One dense vector as a 1-D float32 array, or the clear error of why it is not one."""
    if isinstance(value, (Vector, HalfVector, SparseVector)):
        return np.asarray(value.to_numpy(), dtype=np.float32)
    if isinstance(value, (str, bytes)):
        raise InvalidVector(
            f"{what} must be a list of numbers, a numpy array or a pgvector object, not a "
            f"string; embed the text first{suffix}"
        )
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidVector(
            f"{what} must be a list of numbers, a numpy array or a pgvector object: {exc}{suffix}"
        ) from None
    if arr.ndim != 1:
        raise InvalidVector(
            f"{what} must be one-dimensional, got shape {arr.shape}; pass one vector at a "
            f"time{suffix}"
        )
    return arr


def as_dense_array(
    value: Any,
    *,
    dim: int,
    what: str = "query vector",
    column: str = "the column",
    storage: Storage = Storage.VECTOR,
    zero_ok: bool = True,
) -> npt.NDArray[np.float32]:
    """``value`` as a checked 1-D float32 array of length ``dim``, or a clear error."""
    if (
        type(value) is np.ndarray
        and value.dtype == np.float32
        and value.shape == (dim,)
        and storage is not Storage.HALFVEC
    ):
        # What embedders return, checked in one pass: the squared norm is finite only
        # when every value is, and zero only for the zero vector. (A norm that overflows
        # float32 takes the slow path below, which tells the two apart.)
        square = float(value.dot(value))
        if math.isfinite(square) and (zero_ok or square > 0.0):
            return value
    arr = as_row(value, what=what)
    if arr.shape[0] == 0:
        raise InvalidVector(f"{what} is empty")
    check_dense(
        arr[None, :], dim=dim, storage=storage, name=lambda _: what, column=column,
        zero_ok=zero_ok,
    )  # fmt: skip
    return arr


# -- sparse vectors --------------------------------------------------------------------


def check_sparse(
    value: SparseVector, *, dim: int, what: str = "query vector", suffix: str = ""
) -> SparseVector:
    """Check a sparse vector's indices against ``dim``; return it ready for the binary format.

    Indices are 0-based and must lie below ``dim``, each given once. Explicit zeros are
    dropped and indices sorted: pgvector's text input accepts both, but its binary
    input (what the drivers send) refuses them. Values must already be finite.
    Messages start with ``what`` and end with ``suffix``.

    Example::

        >>> check_sparse(SparseVector({2: 0.5, 0: 0.0}, 3), dim=3)
        SparseVector({2: 0.5}, 3)
        >>> check_sparse(SparseVector({3: 1.0}, 3), dim=3)
        Traceback (most recent call last):
        ...
        vecalchemy.errors.InvalidVector: query vector has index 3, out of range: ...
    """
    indices = np.asarray(value.indices(), dtype=np.int64)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        values = np.asarray(value.values(), dtype=np.float32)
    if indices.size:
        out = (indices < 0) | (indices >= dim)
        if out.any():
            bad = int(indices[np.flatnonzero(out)[0]])
            raise InvalidVector(
                f"{what} has index {bad}, out of range: a sparse vector of {dim:,} dimensions "
                f"takes indices 0 to {dim - 1:,} (0-based){suffix}"
            )
    ordered = bool((np.diff(indices) > 0).all())
    if not ordered:
        unique, counts = np.unique(indices, return_counts=True)
        if (counts > 1).any():
            bad = int(unique[np.flatnonzero(counts > 1)[0]])
            raise InvalidVector(
                f"{what} has index {bad} more than once; give each index once{suffix}"
            )
    # float32 is what is sent, so a tiny float64 weight that rounds to zero is a zero too.
    zeros = values == 0
    if ordered and not zeros.any():
        return value
    return SparseVector(
        {int(i): float(v) for i, v in zip(indices[~zeros], values[~zeros], strict=True)}, dim
    )


def check_sparse_value(
    value: Any,
    *,
    dim: int | None,
    what: str,
    column: str = "the column",
    zero_ok: bool = True,
    max_nnz: int | None = None,
    suffix: str = "",
) -> SparseVector:
    """A sparse vector (a ``SparseVector``, an ``{index: weight}`` dict or a dense list)
    checked for ``dim``, finite values, index range, ``max_nnz`` non-zeros (pgvector's
    HNSW index takes at most 1,000) and, unless ``zero_ok``, at least one non-zero."""
    if isinstance(value, Mapping):
        try:
            if dim is None:
                raise ValueError("a dict needs a column with a dimension")
            value = SparseVector(dict(value), dim)
        except (TypeError, ValueError) as exc:
            raise InvalidVector(
                f"{what} as a dict must map integer indices to numbers ({exc}){suffix}"
            ) from None
    if not isinstance(value, SparseVector):
        try:
            if isinstance(value, (str, bytes)):
                raise TypeError("a string is not a vector")
            value = SparseVector(as_row(value, what=what, suffix=suffix))
        except (TypeError, ValueError) as exc:
            raise InvalidVector(
                f"{what} needs a SparseVector, a dict of {{index: weight}} or a dense "
                f"list/array, got {type(value).__name__} ({exc}){suffix}"
            ) from None
    if dim is not None and value.dimensions() != dim:
        raise DimensionMismatch(
            f"{what} has {value.dimensions()} dimensions but {column} has {dim}{suffix}"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.asarray(value.values(), dtype=np.float32)
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise InvalidVector(
            f"{what} has a non-finite value ({values[bad]}) at index {value.indices()[bad]}; "
            f"embeddings must be finite numbers: check the model output{suffix}"
        )
    checked: SparseVector = check_sparse(value, dim=value.dimensions(), what=what, suffix=suffix)
    nnz = len(checked.indices())
    if not zero_ok and nnz == 0:
        raise InvalidVector(_zero_message(what) + suffix)
    if max_nnz is not None and nnz > max_nnz:
        raise InvalidVector(
            f"{what} has {nnz:,} non-zero elements, but pgvector's HNSW index on sparsevec "
            f"takes at most {max_nnz:,} per row; keep the {max_nnz:,} largest weights, or "
            f"declare the column with index=None (exact search only){suffix}"
        )
    return checked


# -- bits ------------------------------------------------------------------------------


def bits_text(value: Any, *, what: str = "value") -> str:
    """A bit string (``"0101"``) from a ``Bit``, a str of 0/1, or booleans / 0-1 numbers.

    Example::

        >>> bits_text([True, False, 1, 0])
        '1010'
    """
    if isinstance(value, Bit):
        bits = value.to_text()
    elif isinstance(value, str):
        bits = value
        if bits.strip("01"):
            raise InvalidVector(f"{what} for a bit column must contain only 0 and 1")
    else:
        arr = np.asarray(value)
        if arr.ndim != 1:
            raise InvalidVector(f"{what} must be one-dimensional, got shape {arr.shape}")
        if arr.dtype != np.bool_ and not np.isin(arr, (0, 1)).all():
            raise InvalidVector(
                f"{what} for a bit column must be booleans or 0/1 values; "
                "use binary quantization to turn floats into bits"
            )
        bits = "".join("1" if b else "0" for b in arr.tolist())
    return bits


def check_bits(
    value: Any, *, dim: int | None, what: str, column: str = "the column", suffix: str = ""
) -> str:
    """A bit value as a checked bit string of length ``dim``."""
    try:
        bits = bits_text(value, what=what)
    except InvalidVector as exc:
        raise InvalidVector(f"{exc}{suffix}") from None
    if not bits:
        raise InvalidVector(f"{what} is empty{suffix}")
    if dim is not None and len(bits) != dim:
        raise DimensionMismatch(f"{what} has {len(bits)} bits but {column} has {dim}{suffix}")
    return bits


# -- query vectors -----------------------------------------------------------------------


def as_query_value(
    value: Any,
    *,
    dim: int,
    storage: Storage,
    column: str = "the column",
    zero_ok: bool = True,
    what: str = "query vector",
) -> Vector | HalfVector | SparseVector | str:
    """Check ``value`` and convert it to what the driver sends for ``storage``.

    ``zero_ok=False`` rejects the zero vector (it has no direction, so its cosine
    distance to anything is NaN). ``what`` names the value in messages.
    """
    if storage is Storage.BIT:
        return check_bits(value, dim=dim, what=what, column=column)
    if storage is Storage.SPARSEVEC:
        return check_sparse_value(value, dim=dim, what=what, column=column, zero_ok=zero_ok)
    arr = as_dense_array(value, dim=dim, what=what, column=column, storage=storage, zero_ok=zero_ok)
    if storage is Storage.HALFVEC:
        return HalfVector(arr)
    return Vector(arr)
