"""Checking and converting vectors before any SQL runs.

Query vectors may be lists, tuples, numpy arrays or pgvector objects (``Vector``,
``HalfVector``, ``SparseVector``, ``Bit``). :func:`as_query_value` checks the dimension
and that every value is finite, and returns the pgvector object the drivers send in
binary form.

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

from typing import Any

import numpy as np
import numpy.typing as npt
from pgvector import Bit, HalfVector, SparseVector, Vector

from vecalchemy.errors import DimensionMismatch, InvalidVector
from vecalchemy.metrics import Storage

__all__ = ["as_dense_array", "as_query_value", "bits_text", "check_finite", "check_sparse"]


def check_finite(arr: npt.NDArray[Any], *, what: str = "query vector") -> None:
    """Raise :class:`InvalidVector` naming the first NaN or infinite value in ``arr``."""
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.flatnonzero(~finite.ravel())[0]
        raise InvalidVector(
            f"{what} has a non-finite value ({arr.ravel()[bad]}) at index {int(bad)}; "
            "embeddings must be finite numbers: check the model output"
        )


def as_dense_array(
    value: Any, *, dim: int, what: str = "query vector", column: str = "the column"
) -> npt.NDArray[np.float32]:
    """``value`` as a 1-D float32 array of length ``dim``, or a clear error."""
    if isinstance(value, (Vector, HalfVector, SparseVector)):
        arr = np.asarray(value.to_numpy(), dtype=np.float32)
    elif isinstance(value, (str, bytes)):
        raise InvalidVector(
            f"{what} must be a list of numbers, a numpy array or a pgvector object, "
            "not a string; embed the text first"
        )
    else:
        try:
            arr = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidVector(
                f"{what} must be a list of numbers, a numpy array or a pgvector object: {exc}"
            ) from None
    if arr.ndim != 1:
        raise InvalidVector(
            f"{what} must be one-dimensional, got shape {arr.shape}; pass one vector at a time"
        )
    if arr.shape[0] == 0:
        raise InvalidVector(f"{what} is empty")
    if arr.shape[0] != dim:
        raise DimensionMismatch(
            f"{what} has {arr.shape[0]} dimensions but {column} has {dim}; "
            "embed with the same model the column was filled with"
        )
    check_finite(arr, what=what)
    return arr


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


def _as_bits(value: Any, *, dim: int, what: str, column: str) -> str:
    bits = bits_text(value, what=what)
    if not bits:
        raise InvalidVector(f"{what} is empty")
    if len(bits) != dim:
        raise DimensionMismatch(f"{what} has {len(bits)} bits but {column} has {dim}")
    return bits


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
        return _as_bits(value, dim=dim, what=what, column=column)
    if storage is Storage.SPARSEVEC:
        if isinstance(value, SparseVector):
            if value.dimensions() != dim:
                raise DimensionMismatch(
                    f"{what} has {value.dimensions()} dimensions but {column} has {dim}"
                )
            vals = np.asarray(value.values(), dtype=np.float32)
            check_finite(vals, what=what)
            if not zero_ok and not vals.any():
                raise InvalidVector(_zero_message(what))
            return check_sparse(value, dim=dim, what=what)
        if isinstance(value, dict):
            try:
                sparse = SparseVector(value, dim)
            except (TypeError, ValueError) as exc:
                raise InvalidVector(
                    f"{what} as a dict must map integer indices to numbers ({exc})"
                ) from None
            return as_query_value(
                sparse, dim=dim, storage=storage, column=column, zero_ok=zero_ok, what=what
            )
        arr = as_dense_array(value, dim=dim, what=what, column=column)
        if not zero_ok and not arr.any():
            raise InvalidVector(_zero_message(what))
        return SparseVector(arr)
    arr = as_dense_array(value, dim=dim, what=what, column=column)
    if not zero_ok and not arr.any():
        raise InvalidVector(_zero_message(what))
    if storage is Storage.HALFVEC:
        if np.abs(arr).max() > 65504.0:
            raise InvalidVector(f"{what} has values beyond halfvec's range of +-65504")
        return HalfVector(arr)
    return Vector(arr)


def _zero_message(what: str) -> str:
    return (
        f"{what} is all zeros; a zero vector has no direction, so its cosine distance is "
        "undefined: check the embedding"
    )
