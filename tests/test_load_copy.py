"""load() writes whole batches as binary COPY tuples: every plain type round-trips, and
values it does not encode itself go through psycopg's dumpers, as before."""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from pgvector.sqlalchemy import VECTOR
from psycopg.types.json import Jsonb, set_json_dumps
from sqlalchemy.dialects.postgresql import JSON, JSONB
from sqlalchemy.ext.asyncio import AsyncEngine

import vecalchemy
from vecalchemy.load import aload, load

COLUMNS = ["id", "i2", "i4", "f4", "f8", "flag", "body", "short", "raw", "doc", "plain", "vec"]


@pytest.fixture
def typed(engine: sa.Engine) -> Iterator[sa.Table]:
    """A table with one column of every type the batch encoder writes itself."""
    metadata = sa.MetaData()
    table = sa.Table(
        "typed",
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("i2", sa.SmallInteger),
        sa.Column("i4", sa.Integer),
        sa.Column("f4", sa.REAL),
        sa.Column("f8", sa.Double),
        sa.Column("flag", sa.Boolean),
        sa.Column("body", sa.Text),
        sa.Column("short", sa.String(8)),
        sa.Column("raw", sa.LargeBinary),
        sa.Column("doc", JSONB),
        sa.Column("plain", JSON),
        sa.Column("vec", VECTOR(2)),
    )
    metadata.create_all(engine)
    yield table
    metadata.drop_all(engine)


ROWS: list[tuple[Any, ...]] = [
    (
        -(2**63),
        -32768,
        -(2**31),
        1.5,
        -2.5e-300,
        True,
        "héllo wörld 中文 🐘",
        "abc",
        b"\x00\xff",
        {"nested": {"list": [1, "two", None, 3.25, False]}, "big": 2**70, "é": "ü"},
        [1, {"a": None}],
        [0.5, -1.0],
    ),
    (2**63 - 1, 32767, 2**31 - 1, -0.0, 1e300, False, "", "", b"", "just a string", 3, [1, 2]),
    (0, None, None, None, None, None, None, None, None, None, None, None),
    (1, 7, 8, 2.0, math.inf, True, "tab\there\nnewline\\", "x", b"bytes", {}, {}, [3, 4]),
]


def _read(engine: sa.Engine, table: sa.Table) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).order_by(table.c.id)).all()
    return [
        (*r[:-1], None if r[-1] is None else [float(x) for x in r[-1]])
        for r in (tuple(row) for row in rows)
    ]


def _expected() -> list[tuple[Any, ...]]:
    return sorted(
        [(*r[:-1], None if r[-1] is None else [float(x) for x in r[-1]]) for r in ROWS],
        key=lambda r: r[0],
    )


def test_every_plain_type_round_trips(engine: sa.Engine, typed: sa.Table) -> None:
    """Integers at their limits, floats, booleans, unicode text, bytes, JSON (nested,
    unicode, big integers, a bare string) and NULL in every column read back as sent."""
    assert load(engine, typed, ROWS, columns=COLUMNS) == len(ROWS)
    assert _read(engine, typed) == _expected()


async def test_every_plain_type_round_trips_async(
    async_engine: AsyncEngine, engine: sa.Engine, typed: sa.Table
) -> None:
    """aload() writes the same values, with each async driver."""
    assert await aload(async_engine, typed, ROWS, columns=COLUMNS) == len(ROWS)
    assert _read(engine, typed) == _expected()


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


def test_values_of_other_types_go_through_the_driver(engine: sa.Engine, typed: sa.Table) -> None:
    """A batch holding a value the encoder leaves to psycopg (an IntEnum, a Jsonb wrapper,
    a numpy integer) is written by psycopg's dumpers; the other batches of the same
    COPY by the encoder; every row lands."""
    rows = []
    for i in range(50):
        doc: Any = {"n": i}
        size: Any = i
        if i == 13:
            size = Size.LARGE
        if i == 27:
            doc = Jsonb({"wrapped": i})
        if i == 41:
            size = np.int64(41)
        rows.append((i, size, f"text {i}", doc))
    assert load(engine, typed, rows, columns=["id", "i4", "body", "doc"], batch_size=10) == 50
    with engine.connect() as conn:
        got = conn.execute(
            sa.select(typed.c.id, typed.c.i4, typed.c.body, typed.c.doc).order_by(typed.c.id)
        ).all()
    assert [tuple(r) for r in got] == [
        (i, 2 if i == 13 else i, f"text {i}", {"wrapped": i} if i == 27 else {"n": i})
        for i in range(50)
    ]


@pytest.mark.parametrize(
    ("column", "value", "typname"),
    [
        ("i4", 2**40, "int4"),
        ("i2", -40_000, "int2"),
        ("id", 2**63, "int8"),
        ("f4", 1e300, "float4"),
    ],
)
def test_an_out_of_range_number_is_refused_and_nothing_is_written(
    engine: sa.Engine, typed: sa.Table, column: str, value: Any, typname: str
) -> None:
    """A number too big for its column raises InvalidRows naming the row and the column
    (psycopg would write 2**40 into an int4 as 0); the batches already sent are
    discarded too."""
    rows: list[tuple[Any, Any]] = [(i, i) for i in range(30)]
    rows.append((30, value) if column != "id" else (value, 1))
    cols = ["id", column] if column != "id" else ["id", "i4"]
    with pytest.raises(
        vecalchemy.InvalidRows,
        match=rf"row 30: .* in column '{column}' is out of range for type {typname}; .*"
        "nothing was loaded",
    ):
        load(engine, typed, rows, columns=cols, batch_size=10)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(typed)).scalar_one() == 0


def test_a_column_of_another_type_is_written_by_the_driver(engine: sa.Engine) -> None:
    """A table with a type the encoder does not know (timestamptz, numeric) still loads,
    through psycopg's dumpers for every row."""
    import datetime as dt
    from decimal import Decimal

    metadata = sa.MetaData()
    table = sa.Table(
        "stamped",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True)),
        sa.Column("amount", sa.Numeric),
        sa.Column("vec", VECTOR(2)),
    )
    metadata.create_all(engine)
    try:
        at = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
        rows = [(i, at, Decimal("1.25") * i, [i, 1.0]) for i in range(5)]
        assert load(engine, table, rows) == 5
        with engine.connect() as conn:
            got = conn.execute(sa.select(table.c.at, table.c.amount).order_by(table.c.id)).all()
        assert [tuple(r) for r in got] == [(at, Decimal("1.25") * i) for i in range(5)]
    finally:
        metadata.drop_all(engine)


def test_the_connections_json_dumps_is_used(
    server_url: sa.URL, engine: sa.Engine, typed: sa.Table
) -> None:
    """JSON is serialised with the dumps psycopg would use on that connection
    (``set_json_dumps``), not a dumps of the encoder's own."""
    eng = vecalchemy.create_engine(server_url)

    @sa.event.listens_for(eng, "connect")
    def _dumps(dbapi_connection: Any, record: Any) -> None:
        set_json_dumps(lambda obj: json.dumps({"via": obj}), dbapi_connection)

    try:
        load(eng, typed, [(1, {"a": 1}, [2])], columns=["id", "doc", "plain"])
    finally:
        eng.dispose()
    with engine.connect() as conn:  # plain JSON reads
        row = conn.execute(sa.select(typed.c.doc, typed.c.plain)).one()
    assert tuple(row) == ({"via": {"a": 1}}, {"via": [2]})
