"""Checking and encoding vectors in PostgreSQL's binary format, a batch at a time."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pgvector import Bit, HalfVector, Vector

from vecalchemy._vectors import as_row, check_bits, check_dense, check_sparse_value
from vecalchemy.errors import InvalidRows
from vecalchemy.load._plan import ColumnType, VectorColumn
from vecalchemy.metrics import Storage

__all__ = [
    "COPY_SIGNATURE",
    "copy_encoders",
    "encode_batch",
    "encode_tuples",
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


def _dense_records(
    arr: npt.NDArray[Any], spec: VectorColumn, rows: Sequence[int], *, length: bool
) -> npt.NDArray[np.uint8]:
    """Check a 2-D batch of dense vectors at once; each row in the type's binary format
    (uint16 dimensions, uint16 zero, then big-endian floats), preceded by its int32
    length as a binary COPY field when ``length`` is true: one array, a row per vector.

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
    n, dim = values.shape if values.ndim == 2 else (len(values), 0)
    fields: list[tuple[Any, ...]] = [("dim", ">u2"), ("unused", ">u2")]
    if dim:
        fields.append(("data", values.dtype.newbyteorder(">"), (dim,)))
    if length:
        fields.insert(0, ("length", ">i4"))
    records = np.zeros(n, dtype=fields)
    if length:
        records["length"] = 4 + values.dtype.itemsize * dim
    records["dim"] = dim
    if dim:
        records["data"] = values
    return records.view(np.uint8).reshape(n, records.dtype.itemsize)


def _encode_dense(arr: npt.NDArray[Any], spec: VectorColumn, rows: Sequence[int]) -> list[bytes]:
    """Check a 2-D batch of dense vectors at once and encode each row as vector/halfvec."""
    records = _dense_records(arr, spec, rows, length=False)
    data, step = records.tobytes(), records.shape[1]
    return [data[i : i + step] for i in range(0, len(data), step)]


def _dense_fields(arr: npt.NDArray[Any], spec: VectorColumn, start: int) -> list[bytes]:
    """A 2-D batch of dense vectors as binary COPY fields (length word included)."""
    records = _dense_records(arr, spec, range(start, start + len(arr)), length=True)
    # Slices of bytes: cheaper to make, and to join, than memoryviews of the array.
    data, step = records.tobytes(), records.shape[1]
    return [data[i : i + step] for i in range(0, len(data), step)]


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


# -- whole tuples in binary COPY format ----------------------------------------------

#: The start of every binary COPY stream: the signature, no flags, no header extension.
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8

_NULL = b"\xff\xff\xff\xff"  # a field's length of -1: NULL, no bytes follow
_LENGTH = struct.Struct(">i").pack
#: Fixed-size types: their packer, their size, the Python types sent as they are.
_FIXED: dict[str, tuple[Callable[[Any], bytes], int, frozenset[type]]] = {
    "int2": (struct.Struct(">h").pack, 2, frozenset({int})),
    "int4": (struct.Struct(">i").pack, 4, frozenset({int})),
    "int8": (struct.Struct(">q").pack, 8, frozenset({int})),
    "float4": (struct.Struct(">f").pack, 4, frozenset({int, float})),
    "float8": (struct.Struct(">d").pack, 8, frozenset({int, float})),
    "bool": (lambda v: b"\x01" if v else b"\x00", 1, frozenset({bool})),
}
_TEXT_TYPES = frozenset({"text", "varchar", "name", "bpchar"})
_PLAIN = frozenset({*_FIXED, "bytea"})
_TEXT_OID = 25

#: One column of a batch as binary COPY fields: each value's length word, its bytes.
_Fields = tuple[Iterable[bytes], Iterable[bytes]]


class _Unsupported(Exception):
    """A value this encoder does not handle: the driver's own dumpers take the batch."""


def _variable(values: Sequence[Any], encode: Callable[[Any], bytes]) -> _Fields:
    """Variable-length fields; ``encode`` raises TypeError for a value it cannot take."""
    try:
        data = list(map(encode, values))
    except TypeError:
        data = []  # NULLs among the values, or a value of another type
    else:
        return list(map(_LENGTH, map(len, data))), data
    try:
        data = [b"" if v is None else encode(v) for v in values]
    except TypeError:
        raise _Unsupported from None
    lengths = [_NULL if v is None else _LENGTH(len(b)) for v, b in zip(values, data, strict=True)]
    return lengths, data


def _bytea(value: Any) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError
    return bytes(value)


def _fixed(values: Sequence[Any], typname: str, name: str, start: int) -> _Fields:
    pack, size, kinds = _FIXED[typname]
    found = set(map(type, values))
    # Exactly these types (not bool for an int, not numpy scalars): the driver converts
    # the others, or refuses them, as it always did.
    if not found <= {*kinds, type(None)}:
        raise _Unsupported
    length = _LENGTH(size)
    try:
        if found <= kinds:
            return itertools.repeat(length, len(values)), list(map(pack, values))
        return (
            [_NULL if v is None else length for v in values],
            [b"" if v is None else pack(v) for v in values],
        )
    except (struct.error, OverflowError):
        # psycopg would truncate an integer silently (2**40 into an int4 is 0).
        row, value = next(
            (i, v) for i, v in enumerate(values) if v is not None and _too_big(pack, v)
        )
        raise InvalidRows(
            f"row {start + row}: {value!r} in column {name!r} is out of range for type "
            f"{typname}; use a wider column type or a smaller value{_NOTHING}"
        ) from None


def _too_big(pack: Callable[[Any], bytes], value: Any) -> bool:
    try:
        pack(value)
    except (struct.error, OverflowError):
        return True
    return False


def _json(values: Sequence[Any], dumps: Callable[[Any], Any], prefix: bytes) -> _Fields:
    """JSON values serialised with the driver's ``dumps``: each object once, an empty
    dict for free (the chunks of one document share their metadata object)."""
    seen: dict[int, bytes] = {}
    empty = prefix + b"{}"
    data = []
    for v in values:
        if v is None:
            data.append(b"")
        elif v.__class__ is dict and not v:
            data.append(empty)
        else:
            found = seen.get(id(v))
            if found is None:
                if not isinstance(v, (dict, list, str, int, float)):
                    raise _Unsupported  # a Json wrapper, or what the driver may know better
                text = dumps(v)
                found = prefix + (text.encode("utf-8") if isinstance(text, str) else bytes(text))
                seen[id(v)] = found
            data.append(found)
    lengths = [_NULL if v is None else _LENGTH(len(b)) for v, b in zip(values, data, strict=True)]
    return lengths, data


def _vectors(values: Sequence[Any], spec: ColumnType, start: int) -> _Fields:
    """A vector column checked and encoded: a 2-D array at once, anything else as
    :func:`encode_batch` does."""
    vector = spec.vector
    assert vector is not None
    if (
        vector.kind in ("vector", "halfvec")
        and isinstance(values, np.ndarray)
        and values.ndim == 2
        and values.dtype.kind in "biuf"
    ):
        return itertools.repeat(b"", len(values)), _dense_fields(values, vector, start)
    return _variable(_encode(values, vector, start), bytes)


def copy_encoders(columns: list[ColumnType], json_dumps: Any) -> list[str] | None:
    """How :func:`encode_tuples` sends each column, or None when a column has a type it
    does not encode (the driver's dumpers then send every row)."""
    kinds = []
    for c in columns:
        if c.vector is not None:
            kinds.append("encoded")
        elif c.typname in _TEXT_TYPES or c.oid == _TEXT_OID:
            kinds.append("text")
        elif c.typname in _PLAIN or (c.typname in ("json", "jsonb") and json_dumps is not None):
            kinds.append(c.typname)
        else:
            return None
    return kinds


def encode_tuples(
    values: list[Sequence[Any]],
    columns: list[ColumnType],
    kinds: list[str],
    json_dumps: Any,
    start: int,
) -> bytes | None:
    """A batch as binary COPY tuples, its vectors checked as :func:`encode_batch` checks
    them, or None when a value is not of the plain Python type its column takes (the
    driver then sends that batch, converting, or refusing, as it always does). A number
    out of its column's range raises :class:`~vecalchemy.errors.InvalidRows` naming the
    row (psycopg would truncate an integer silently).

    Every value of a column is encoded by one C-level loop where possible, and the
    tuples are joined once: no per-row Python objects.
    """
    fields: list[_Fields] = []
    try:
        for column, spec, kind in zip(values, columns, kinds, strict=True):
            if kind == "encoded":
                fields.append(_vectors(column, spec, start))
            elif kind == "text":
                fields.append(_variable(column, str.encode))
            elif kind == "bytea":
                fields.append(_variable(column, _bytea))
            elif kind in ("json", "jsonb"):
                fields.append(_json(column, json_dumps, b"\x01" if kind == "jsonb" else b""))
            else:
                fields.append(_fixed(column, kind, spec.name, start))
    except (_Unsupported, UnicodeEncodeError):
        return None
    rows = len(values[0]) if values else 0
    parts: list[Iterable[bytes]] = [itertools.repeat(struct.pack(">h", len(kinds)), rows)]
    for lengths, data in fields:
        parts += [lengths, data]
    return b"".join(itertools.chain.from_iterable(zip(*parts, strict=True)))
