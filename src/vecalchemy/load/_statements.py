"""The statements a load runs, written once for every driver."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import IdentifierPreparer

from vecalchemy._names import digest, fit_identifier
from vecalchemy._steps import Execute, Step
from vecalchemy.errors import (
    InvalidRows,
)
from vecalchemy.indexes import IndexResult, build_indexes, drop_indexes
from vecalchemy.load._batches import Batch
from vecalchemy.load._drivers import copy_asyncpg, copy_psycopg, copy_psycopg_async
from vecalchemy.load._plan import (
    CATALOG_SQL,
    UNIQUE_SQL,
    ColumnType,
    Plan,
    check_arbiter,
    column_types,
)

__all__ = [
    "Copy",
    "Indexes",
    "Outcome",
    "load_steps",
]

log = logging.getLogger("vecalchemy.load")

_ROW_COLUMN = "vecalchemy_row"  # the staging table's 0-based input position
# -- the statements a load runs, written once for every driver ------------------------


@dataclass(frozen=True)
class Indexes:
    """Drop (or build) the table's vector indexes; the result is their IndexResults."""

    drop: bool
    table: sa.Table

    def run(self, conn: sa.Connection) -> list[IndexResult]:
        """Drop or build on a sync connection, in its transaction."""
        return (drop_indexes if self.drop else build_indexes)(conn, self.table)

    async def arun(self, conn: AsyncConnection) -> list[IndexResult]:
        """The async twin of :meth:`run`."""
        return await conn.run_sync(drop_indexes if self.drop else build_indexes, self.table)


@dataclass(frozen=True)
class Copy:
    """COPY every batch into a table; the result is the number of rows written."""

    schema: str | None
    name: str
    columns: list[ColumnType]
    batches: Iterator[Batch] | AsyncGenerator[Batch, None]

    def run(self, conn: sa.Connection) -> int:
        """Binary COPY through psycopg (the only sync driver)."""
        assert isinstance(self.batches, Iterator)  # make_plan refuses async rows for load()
        return copy_psycopg(conn, self, self.batches)

    async def arun(self, conn: AsyncConnection) -> int:
        """Binary COPY through psycopg async, or asyncpg's copy_records_to_table."""
        raw = (await conn.get_raw_connection()).driver_connection
        if isinstance(raw, psycopg.AsyncConnection):
            return await copy_psycopg_async(raw, self, self.batches)
        dumps = getattr(conn.dialect, "_json_serializer", None) or json.dumps
        return await copy_asyncpg(raw, self, self.batches, dumps)


@dataclass(frozen=True)
class Outcome:
    received: int
    written: int
    rebuilt: tuple[str, ...]


def load_steps(plan: Plan, preparer: IdentifierPreparer) -> Generator[Step, Any, Outcome]:
    """The statements one load runs, in order; the runner sends back each result.

    Written once for :func:`load` and :func:`aload`, whose runners only differ in how
    they execute a statement and write the batches.
    """
    tbl = plan.table
    regclass = preparer.format_table(tbl)
    catalog = (yield Execute(sa.text(CATALOG_SQL), {"table": regclass})).all()
    types, attnames = column_types(catalog, tbl, plan.columns)
    if plan.conflict:
        uniques = (yield Execute(sa.text(UNIQUE_SQL), {"table": regclass})).all()
        check_arbiter(uniques, attnames, tbl, plan.conflict)
    if plan.indexes == "defer":
        dropped: list[IndexResult] = yield Indexes(True, plan.table)
        log.info("dropped %s before loading", [r.name for r in dropped if r.action == "dropped"])
    if plan.conflict:
        received, written = yield from _upsert(plan, preparer, types)
    else:
        received = written = yield Copy(tbl.schema, tbl.name, types, plan.batches)
    rebuilt: tuple[str, ...] = ()
    if plan.indexes == "defer":
        built: list[IndexResult] = yield Indexes(False, plan.table)
        rebuilt = tuple(r.name for r in built if r.action == "built")
    return Outcome(received, written, rebuilt)


def _upsert(
    plan: Plan, preparer: IdentifierPreparer, types: list[ColumnType]
) -> Generator[Step, Any, tuple[int, int]]:
    """COPY into a staging table, refuse duplicate keys, then INSERT ... ON CONFLICT."""

    def q(name: str) -> str:
        # text() reads ":name" as a bind parameter; "\:" is a literal colon.
        return preparer.quote(name).replace(":", "\\:")

    staging = _staging_name(plan.table, types)
    target = preparer.format_table(plan.table).replace(":", "\\:")
    stg, row = q(staging), q(_ROW_COLUMN)
    names = [c.name for c in plan.columns]
    cols = ", ".join(q(n) for n in names)
    keys = ", ".join(q(k) for k in plan.conflict)

    # Only the loaded columns, without constraints: a NOT NULL column that is not
    # loaded must not fail the COPY, and every staging column gets a value anyway.
    yield Execute(
        sa.text(
            f"CREATE TEMPORARY TABLE {stg} ON COMMIT DROP AS "
            f"SELECT {cols} FROM {target} WITH NO DATA"
        )
    )
    # COPY fills the identity in input order: the 0-based position of each row.
    yield Execute(
        sa.text(
            f"ALTER TABLE {stg} ADD COLUMN {row} bigint "
            "GENERATED ALWAYS AS IDENTITY (MINVALUE 0 START WITH 0)"
        )
    )
    received: int = yield Copy(None, staging, types, plan.batches)
    present = " AND ".join(f"{q(k)} IS NOT NULL" for k in plan.conflict)
    duplicate = (
        yield Execute(
            sa.text(
                f"SELECT (array_agg({row} ORDER BY {row}))[1:6], count(*), {keys} "
                f"FROM {stg} WHERE {present} GROUP BY {keys} HAVING count(*) > 1 "
                f"ORDER BY min({row}) LIMIT 1"
            )
        )
    ).first()
    if duplicate is not None:
        raise InvalidRows(_duplicate_message(plan, duplicate))
    if plan.on_conflict == "ignore":
        action = "NOTHING"
    else:
        updates = [f"{q(n)} = EXCLUDED.{q(n)}" for n in names if n not in plan.conflict]
        action = f"UPDATE SET {', '.join(updates)}"
    inserted = yield Execute(
        sa.text(
            f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stg} "
            f"ON CONFLICT ({keys}) DO {action}"
        )
    )
    written = int(inserted.rowcount)
    yield Execute(sa.text(f"DROP TABLE {stg}"))
    return received, written


def _staging_name(tbl: sa.Table, types: list[ColumnType]) -> str:
    """A temporary table name that changes whenever the loaded columns or their types do.

    asyncpg caches the codecs of ``copy_records_to_table`` by table name and columns: a
    name reused for other column types would be sent with the wrong encoders.
    """
    shape = repr((tbl.schema, tbl.name, [(c.name, c.oid, c.vector) for c in types]))
    return fit_identifier(f"vecalchemy_load_{tbl.name}", digest(shape, 10))


def _duplicate_message(plan: Plan, duplicate: Any) -> str:
    positions = [int(p) for p in duplicate[0]]
    times = int(duplicate[1])
    key = ", ".join(plan.conflict)
    values = ", ".join(_short(v) for v in duplicate[2:])
    shown = [str(p) for p in positions[:5]]
    rows = ", ".join(shown[:-1]) + f" and {shown[-1]}"
    if times > len(shown):
        rows = ", ".join(shown) + f" and {times - len(shown)} more"
    return (
        f"rows {rows} have the same key ({key})=({values}); on_conflict="
        f"{plan.on_conflict!r} takes each key at most once per load: remove the duplicates "
        "from the input; nothing was loaded"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
