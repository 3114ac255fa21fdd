"""The COPY drivers: psycopg (sync and async) and asyncpg, each writing checked batches.

Private to :mod:`vecalchemy.load`.
"""

from __future__ import annotations

import queue
import struct
import threading
from collections.abc import (
    AsyncGenerator,
    Callable,
    Iterator,
    Sequence,
)
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import psycopg
import sqlalchemy as sa
from pgvector import HalfVector, SparseVector, Vector
from psycopg import sql
from psycopg.abc import Buffer
from psycopg.adapt import Dumper
from psycopg.copy import LibpqWriter
from psycopg.pq import Format

from vecalchemy.errors import (
    ConfigurationError,
)
from vecalchemy.load._batches import Batch, each
from vecalchemy.load._encoding import COPY_SIGNATURE, copy_encoders, encode_batch, encode_tuples
from vecalchemy.load._plan import ColumnType

if TYPE_CHECKING:
    from vecalchemy.load._statements import Copy

__all__ = [
    "copy_asyncpg",
    "copy_psycopg",
    "copy_psycopg_async",
]


class _EncodedDumper(Dumper):
    """Passes on values already in PostgreSQL's binary format (vectors encoded per batch)."""

    format = Format.BINARY

    def dump(self, obj: Any) -> Buffer:
        encoded: bytes = obj
        return encoded


def _copy_statement(step: Copy) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(*([step.schema] if step.schema else []), step.name),
        sql.SQL(", ").join(sql.Identifier(c.name) for c in step.columns),
    )


def _register_encoded(
    cursor: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any], columns: list[ColumnType]
) -> None:
    for column in columns:
        if column.vector is not None:
            # On this cursor only: the caller's connection keeps its own adapters.
            dumper = type("_EncodedVectorDumper", (_EncodedDumper,), {"oid": column.oid})
            cursor.adapters.register_dumper(None, dumper)


class _BackgroundWriter(LibpqWriter):
    """Sends each block of a COPY from a thread, so that the next batch is encoded while
    the server takes this one (libpq releases the GIL while it waits on the socket).

    At most :data:`_QUEUED` blocks wait to be sent: a load streams, however fast its
    rows come (psycopg's ``QueuedLibpqWriter`` queues up to 1,024 buffers).
    """

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        super().__init__(cursor)
        self._blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUED)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _send(self) -> None:
        try:
            while (block := self._blocks.get()) is not None:
                super().write(memoryview(block))  # sliced without copies
        except BaseException as exc:  # handed to the loading thread
            self._error = exc
            while self._blocks.get() is not None:
                pass  # unblock the loading thread until it finishes

    def write(self, data: Buffer) -> None:
        if self._error is not None:
            raise self._error
        if self._thread is None:
            self._thread = threading.Thread(target=self._send, name="vecalchemy-copy")
            self._thread.start()
        self._blocks.put(bytes(data))

    def finish(self, exc: BaseException | None = None) -> None:
        if self._thread is not None:
            self._blocks.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error
        super().finish(exc)


#: Blocks (batches) waiting for the COPY thread, at most.
_QUEUED = 2


def _json_dumps(
    cursor: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any], columns: list[ColumnType]
) -> Any:
    """The ``dumps`` psycopg's binary JSON dumper uses on this cursor (``set_json_dumps``
    may have changed it), or None when a JSON column has a dumper of another kind."""
    dumps = None
    for column in columns:
        if column.vector is None and column.typname in ("json", "jsonb"):
            dumper = cursor.adapters.get_dumper_by_oid(column.oid, Format.BINARY)
            dumps = getattr(dumper, "_dumps", None)
            if not callable(dumps):
                return None
    return dumps


def _block(
    values: list[Sequence[Any]], step: Copy, kinds: list[str] | None, dumps: Any, start: int
) -> bytes | None:
    """The batch as COPY tuples, its vectors checked, or None: psycopg's dumpers then
    send it row by row."""
    return None if kinds is None else encode_tuples(values, step.columns, kinds, dumps, start)


def copy_psycopg(conn: sa.Connection, step: Copy, batches: Iterator[Batch]) -> int:
    raw = conn.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise ConfigurationError("load() needs a psycopg 3 connection; use postgresql+psycopg://")
    written = 0
    with raw.cursor() as cur:
        _register_encoded(cur, step.columns)
        dumps = _json_dumps(cur, step.columns)
        kinds = copy_encoders(step.columns, dumps)
        # A worker thread sends each block while the next batch is encoded here.
        writer = _BackgroundWriter(cur) if kinds is not None else None
        with cur.copy(_copy_statement(step), writer=writer) as copy:
            copy.set_types([c.oid for c in step.columns])
            if kinds is not None:
                copy.write(COPY_SIGNATURE)
            # An exception in here (a bad batch, the caller's generator) ends the COPY
            # with an error: the server discards every row sent so far.
            for start, values in batches:
                block = _block(values, step, kinds, dumps, start)
                if block is not None:
                    copy.write(block)
                else:  # a type encode_tuples leaves to psycopg's dumpers
                    prepared = encode_batch(values, step.columns, start)
                    for row in zip(*prepared, strict=True):
                        copy.write_row(row)
                written += len(values[0])
    return written


async def copy_psycopg_async(
    raw: psycopg.AsyncConnection[Any],
    step: Copy,
    batches: Iterator[Batch] | AsyncGenerator[Batch, None],
) -> int:
    written = 0
    async with raw.cursor() as cur:
        _register_encoded(cur, step.columns)
        dumps = _json_dumps(cur, step.columns)
        kinds = copy_encoders(step.columns, dumps)
        async with cur.copy(_copy_statement(step)) as copy:
            copy.set_types([c.oid for c in step.columns])
            if kinds is not None:
                await copy.write(COPY_SIGNATURE)
            async with aclosing(each(batches)) as source:
                async for start, values in source:
                    block = _block(values, step, kinds, dumps, start)
                    if block is not None:
                        await copy.write(block)
                    else:
                        prepared = encode_batch(values, step.columns, start)
                        for row in zip(*prepared, strict=True):
                            await copy.write_row(row)
                    written += len(values[0])
    return written


async def copy_asyncpg(
    raw: Any,
    step: Copy,
    batches: Iterator[Batch] | AsyncGenerator[Batch, None],
    dumps: Callable[[Any], str],
) -> int:
    """One ``copy_records_to_table`` per batch, each batch checked in full before it starts.

    asyncpg aborts a COPY whose record source raises by cancelling the query from
    another connection; a batch that is already checked and converted never does.
    """
    converters = [_asyncpg_converter(c, dumps) for c in step.columns]
    names = [c.name for c in step.columns]
    written = 0
    async with aclosing(each(batches)) as source:
        async for start, values in source:
            prepared = encode_batch(values, step.columns, start)
            converted = [
                column if convert is None else [None if v is None else convert(v) for v in column]
                for column, convert in zip(prepared, converters, strict=True)
            ]
            records = list(zip(*converted, strict=True))
            await raw.copy_records_to_table(
                step.name, records=records, columns=names, schema_name=step.schema
            )
            written += len(records)
    return written


class _EncodedVector(Vector):
    """A vector checked and encoded by :func:`_encode`: the codec sends its bytes as they are.

    The pgvector codecs asyncpg uses (vecalchemy's and pgvector-python's) call
    ``to_binary()`` on an instance of the type, so the bytes the psycopg path sends go
    through unchanged.
    """

    def __init__(self, binary: bytes) -> None:
        self._binary = binary

    def to_binary(self) -> bytes:
        return self._binary


class _EncodedHalfVector(HalfVector):
    """A halfvec already checked and encoded (see :class:`_EncodedVector`)."""

    def __init__(self, binary: bytes) -> None:
        self._binary = binary

    def to_binary(self) -> bytes:
        return self._binary


class _EncodedSparseVector(SparseVector):
    """A sparsevec already checked and encoded (see :class:`_EncodedVector`)."""

    def __init__(self, binary: bytes) -> None:
        self._binary = binary

    def to_binary(self) -> bytes:
        return self._binary


def _bit_string(binary: bytes) -> Any:
    """asyncpg's BitString from a bit value in PostgreSQL's binary format."""
    from asyncpg import BitString

    (length,) = struct.unpack_from(">i", binary)
    return BitString.frombytes(binary[4:], length)


def _asyncpg_converter(column: ColumnType, dumps: Callable[[Any], str]) -> Any:
    """What turns a column's (encoded) values into what asyncpg's codec for it takes."""
    if column.vector is not None:
        return {
            "vector": _EncodedVector,
            "halfvec": _EncodedHalfVector,
            "sparsevec": _EncodedSparseVector,
            "bit": _bit_string,
        }[column.vector.kind]
    if column.typname in ("json", "jsonb"):
        return dumps  # SQLAlchemy's asyncpg codecs take JSON text, as psycopg takes objects
    return None
