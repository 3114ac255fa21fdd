"""Synced columns as the outbox records them: building a :class:`Target` from a declared
column, registering it, and reading targets back.

Private to :mod:`vecalchemy.sync`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Column, Engine, Table

from vecalchemy._names import describe
from vecalchemy._source import SOURCE_KEY, SourceSpec, hash_column_name, model_column_name
from vecalchemy._sql import INFO_KEY, column_of
from vecalchemy.embedders import Embedder, get_embedder
from vecalchemy.errors import ConfigurationError, SyncError
from vecalchemy.sync._ddl import SCHEMA, Target, lit, q
from vecalchemy.sync._embed import check_dim

__all__ = [
    "LOCK",
    "begin",
    "connect",
    "load_targets",
    "register",
    "register_statement",
    "resolve_or_declared",
    "resolve_target",
    "stale_condition",
    "target_for",
    "target_from",
]

#: One advisory lock key serialises installs, migrations and swaps.
LOCK = 0x7665_6373_796E  # "vecsyn"


def _embedder_of(spec: SourceSpec, override: Embedder | str | None) -> tuple[Embedder, str | None]:
    chosen = override if override is not None else spec.embedder
    embedder = get_embedder(chosen)
    return embedder, chosen if isinstance(chosen, str) else None


def target_for(
    column: Any,
    *,
    embedder: Embedder | str | None = None,
    max_attempts: int = 5,
    outbox: bool = True,
) -> Target:
    """The :class:`Target` of an ``Embedding(..., source=..., sync="outbox")`` column
    (of any sourced column with ``outbox=False``)."""
    col = column_of(column)
    spec = col.info.get(SOURCE_KEY)
    vspec = col.info.get(INFO_KEY)
    if not isinstance(spec, SourceSpec) or vspec is None:
        raise SyncError(
            f"{describe(col)} has no source; declare it with Embedding(dim, source='body', "
            "embedder='minilm', sync='outbox')"
        )
    if outbox and spec.sync != "outbox":
        raise SyncError(
            f"{describe(col)} is declared with sync={spec.sync!r}, so the ORM embeds it in "
            "the flush; declare sync='outbox' to queue its rows for workers instead"
        )
    table = col.table
    if not isinstance(table, Table):
        raise SyncError(f"{describe(col)} is not attached to a table")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ConfigurationError(f"max_attempts must be a positive integer, got {max_attempts!r}")
    missing = [c for c in spec.columns if c not in table.c]
    if missing:
        raise SyncError(
            f"{describe(col)} is embedded from {', '.join(missing)}, which table "
            f"{table.name} does not have; fix source="
        )
    if vspec.storage.value not in ("vector", "halfvec"):
        raise SyncError(
            f"{describe(col)} stores {vspec.storage.value}; the outbox writes dense "
            "embeddings (vector or halfvec columns)"
        )
    keys = list(table.primary_key.columns)
    if not keys:
        raise SyncError(f"table {table.name} has no primary key; the outbox queues rows by key")
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    emb, emb_spec = _embedder_of(spec, embedder)
    check_dim(emb, vspec.dim, describe(col))
    return Target(
        name=f"{table.schema or 'public'}.{table.name}.{col.name}",
        schema=table.schema or "public",
        table=table.name,
        column=col.name,
        key_columns=tuple(k.name for k in keys),
        key_types=tuple(_key_type(k, dialect) for k in keys),
        source_columns=spec.columns,
        hash_column=hash_column_name(col.name),
        model_column=model_column_name(col.name),
        dim=vspec.dim,
        storage=vspec.storage.value,
        metric=vspec.metric.value,
        embedder=emb_spec,
        embedder_name=emb.name,
        max_attempts=max_attempts,
        sync=spec.sync,
        truncate=spec.truncate,
    )


def _key_type(col: Column[Any], dialect: Any) -> str:
    kind = col.type.compile(dialect=dialect).lower()
    # A serial key is an integer in a cast.
    return {"serial": "integer", "bigserial": "bigint"}.get(kind, kind)


def register_statement(t: Target) -> str:
    """The ``INSERT ... ON CONFLICT`` that records ``t`` in ``vecalchemy.sync_targets``,
    with literal values, so that a migration can emit it as it is."""
    row = asdict(t)
    values: list[str] = []
    for value in row.values():
        if value is None:
            values.append("NULL")
        elif isinstance(value, bool):
            values.append("true" if value else "false")
        elif isinstance(value, int):
            values.append(str(value))
        elif isinstance(value, tuple):
            values.append(lit(json.dumps(list(value))) + "::jsonb")
        else:
            values.append(lit(str(value)))
    names = ", ".join(_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS[1:])
    return (
        f"INSERT INTO {SCHEMA}.sync_targets ({names}) VALUES ({', '.join(values)})"
        f" ON CONFLICT (target) DO UPDATE SET {updates}"
    )


#: The registry's columns, in the order of :class:`Target`'s fields.
_COLUMNS = (
    "target",
    "schema_name",
    "table_name",
    "column_name",
    "key_columns",
    "key_types",
    "source_columns",
    "hash_column",
    "model_column",
    "dim",
    "storage",
    "metric",
    "embedder",
    "embedder_name",
    "max_attempts",
    "sync",
    "truncate",
)


def target_from(values: Sequence[Any]) -> Target:
    """A :class:`Target` from the registry's columns in :data:`_COLUMNS` order (JSON
    arrays become tuples), as read back or as a migration stores it."""
    fields: list[Any] = [tuple(v) if isinstance(v, list) else v for v in values]
    return Target(*fields)


def register(conn: sa.Connection, t: Target) -> None:
    """Record ``t`` in ``vecalchemy.sync_targets`` (insert or update)."""
    conn.exec_driver_sql(register_statement(t))


class begin:
    """``engine.begin()``, or a nested transaction on a connection the caller holds."""

    def __init__(self, bind: Engine | sa.Connection) -> None:
        self.bind = bind
        self._ctx: Any = None

    def __enter__(self) -> sa.Connection:
        if isinstance(self.bind, sa.Connection):
            self._ctx = (
                self.bind.begin_nested() if self.bind.in_transaction() else self.bind.begin()
            )
            self._ctx.__enter__()
            return self.bind
        self._ctx = self.bind.begin()
        conn: sa.Connection = self._ctx.__enter__()
        return conn

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)


def load_targets(conn: sa.Connection, names: Sequence[str] | None = None) -> list[Target]:
    """The installed targets (all, or those named), read from ``vecalchemy.sync_targets``."""
    if (
        conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": f"{SCHEMA}.sync_targets"}).scalar()
        is None
    ):
        return []
    rows = conn.execute(
        sa.text(f"SELECT {', '.join(_COLUMNS)} FROM {SCHEMA}.sync_targets ORDER BY target")
    ).all()
    found = [target_from(row) for row in rows]
    if names is None:
        return found
    by_name = {t.name: t for t in found}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SyncError(
            f"no synced column {', '.join(map(repr, unknown))}; installed: "
            f"{', '.join(by_name) or 'none'} (install with vecalchemy.sync.install)"
        )
    return [by_name[n] for n in names]


def resolve_target(conn: sa.Connection, target: Any) -> Target:
    """A target by name (``"public.docs.embedding"`` or ``"docs.embedding"``) or column."""
    if isinstance(target, str):
        name = target if target.count(".") >= 2 else f"public.{target}"
        return load_targets(conn, [name])[0]
    col = column_of(target)
    table = col.table
    name = f"{getattr(table, 'schema', None) or 'public'}.{getattr(table, 'name', '')}.{col.name}"
    return load_targets(conn, [name])[0]


def resolve_or_declared(
    conn: sa.Connection, target: Any, embedder: Embedder | None = None
) -> Target:
    """An installed target, or for an inline column its declaration (not registered)."""
    if not isinstance(target, str):
        col = column_of(target)
        spec = col.info.get(SOURCE_KEY)
        if isinstance(spec, SourceSpec) and spec.sync == "inline":
            t = target_for(col, embedder=embedder, outbox=False)
            found = {x.name: x for x in load_targets(conn)}
            return found.get(t.name, t)
    return resolve_target(conn, target)


def stale_condition(t: Target, row: str = "d") -> str:
    """SQL: ``row`` is not the embedding of its current text by ``t``'s embedder."""
    h = t.text_hash(row)
    return (
        f"({row}.{q(t.hash_column)} IS DISTINCT FROM {h} OR ({row}.{q(t.model_column)} "
        f"IS DISTINCT FROM {lit(t.embedder_name)} AND NOT ({row}.{q(t.column)} IS NULL AND "
        f"{row}.{q(t.model_column)} IS NULL)))"
    )


class connect:
    def __init__(self, bind: Engine | sa.Connection) -> None:
        self.bind = bind
        self._conn: sa.Connection | None = None

    def __enter__(self) -> sa.Connection:
        if isinstance(self.bind, sa.Connection):
            return self.bind
        self._conn = self.bind.connect()
        return self._conn

    def __exit__(self, *exc: Any) -> None:
        if self._conn is not None:
            self._conn.close()
