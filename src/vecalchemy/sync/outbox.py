"""Installing the outbox for an embedding column, and looking after its queue.

Example::

    class Doc(Base):
        __tablename__ = "docs"
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str]
        embedding = Embedding(384, source="body", embedder="minilm", sync="outbox")

    Base.metadata.create_all(engine)
    vecalchemy.sync.install(engine, Doc.embedding)   # trigger + queue, idempotent
    vecalchemy.sync.backfill(engine, Doc.embedding)  # queue the rows already there
    # then run `vecalchemy worker` (or vecalchemy.sync.Worker(engine).run())
    for s in vecalchemy.sync.status(engine):
        print(s.target, s.queued, s.lag_seconds, s.dead)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Column, Engine, Table

from vecalchemy._names import describe
from vecalchemy._source import SOURCE_KEY, SourceSpec, hash_column_name, model_column_name
from vecalchemy._sql import INFO_KEY, column_of
from vecalchemy.embedders import Embedder, get_embedder
from vecalchemy.errors import ConfigurationError, SyncError
from vecalchemy.sync._ddl import (
    SCHEMA,
    Target,
    lit,
    outbox_tables,
    q,
    trigger_statements,
    untrigger_statements,
)
from vecalchemy.sync._embed import check_dim

__all__ = [
    "TargetStatus",
    "backfill",
    "install",
    "load_targets",
    "retry",
    "status",
    "target_for",
    "uninstall",
]

#: One advisory lock key serialises installs, migrations and swaps.
_LOCK = 0x7665_6373_796E  # "vecsyn"


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
    )


def _key_type(col: Column[Any], dialect: Any) -> str:
    kind = col.type.compile(dialect=dialect).lower()
    # A serial key is an integer in a cast.
    return {"serial": "integer", "bigserial": "bigint"}.get(kind, kind)


def _register(conn: sa.Connection, t: Target) -> None:
    row = asdict(t)
    row.pop("name")
    conn.execute(
        sa.text(
            f"INSERT INTO {SCHEMA}.sync_targets (target, schema_name, table_name, column_name,"
            " key_columns, key_types, source_columns, hash_column, model_column, dim,"
            " storage, metric, embedder, embedder_name, max_attempts, sync)"
            " VALUES (:target, :schema, :table, :column, :key_columns, :key_types,"
            " :source_columns, :hash_column, :model_column, :dim, :storage, :metric,"
            " :embedder, :embedder_name, :max_attempts, :sync)"
            " ON CONFLICT (target) DO UPDATE SET schema_name = EXCLUDED.schema_name,"
            " table_name = EXCLUDED.table_name, column_name = EXCLUDED.column_name,"
            " key_columns = EXCLUDED.key_columns, key_types = EXCLUDED.key_types,"
            " source_columns = EXCLUDED.source_columns, hash_column = EXCLUDED.hash_column,"
            " model_column = EXCLUDED.model_column, dim = EXCLUDED.dim,"
            " storage = EXCLUDED.storage, metric = EXCLUDED.metric,"
            " embedder = EXCLUDED.embedder, embedder_name = EXCLUDED.embedder_name,"
            " max_attempts = EXCLUDED.max_attempts, sync = EXCLUDED.sync"
        ),
        {
            "target": t.name,
            **{k: json.dumps(list(v)) if isinstance(v, tuple) else v for k, v in row.items()},
        },
    )


def install_statements(t: Target) -> list[str]:
    """Every statement :func:`install` runs for ``t``, for a migration to emit."""
    return [*outbox_tables(), *trigger_statements(t)]


def install(
    engine: Engine | sa.Connection,
    column: Any,
    *,
    embedder: Embedder | str | None = None,
    max_attempts: int = 5,
) -> Target:
    """Install the outbox of an ``Embedding(..., sync="outbox")`` column: the queue tables
    (once per database), its trigger, and its entry in ``vecalchemy.sync_targets``.

    Idempotent, and safe to run from several processes at once. Rows already in the
    table are not queued: :func:`backfill` does that. ``embedder`` overrides the
    declared one (a spec string is stored, so ``vecalchemy worker`` can rebuild it; for
    an embedder object, pass it to the worker too). Returns the installed target.

    Example::

        target = vecalchemy.sync.install(engine, Doc.embedding)
        target.name   # 'public.docs.embedding'
    """
    t = target_for(column, embedder=embedder, max_attempts=max_attempts)
    with _begin(engine) as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
        for stmt in install_statements(t):
            conn.exec_driver_sql(stmt)
        _check_companions(conn, t)
        _register(conn, t)
    return t


def _check_companions(conn: sa.Connection, t: Target) -> None:
    have = set(
        conn.execute(
            sa.text(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:rel)"
                " AND attnum > 0 AND NOT attisdropped"
            ),
            {"rel": t.relation},
        ).scalars()
    )
    need = [t.column, t.hash_column, t.model_column, *t.source_columns, *t.key_columns]
    missing = [c for c in need if c not in have]
    if missing:
        raise SyncError(
            f"table {t.relation} has no column {', '.join(missing)}; create the table from "
            "the model (create_all or a migration) before installing its outbox"
        )


class _begin:
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
        sa.text(
            f"SELECT target, schema_name, table_name, column_name, key_columns, key_types,"
            f" source_columns, hash_column, model_column, dim, storage, metric, embedder,"
            f" embedder_name, max_attempts, sync FROM {SCHEMA}.sync_targets ORDER BY target"
        )
    ).all()
    found = [
        Target(
            name=r.target,
            schema=r.schema_name,
            table=r.table_name,
            column=r.column_name,
            key_columns=tuple(r.key_columns),
            key_types=tuple(r.key_types),
            source_columns=tuple(r.source_columns),
            hash_column=r.hash_column,
            model_column=r.model_column,
            dim=r.dim,
            storage=r.storage,
            metric=r.metric,
            embedder=r.embedder,
            embedder_name=r.embedder_name,
            max_attempts=r.max_attempts,
            sync=r.sync,
        )
        for r in rows
    ]
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


def uninstall(engine: Engine | sa.Connection, target: Any) -> None:
    """Remove a column's trigger, queue, dead letters and registry entry (not its data)."""
    with _begin(engine) as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
        t = resolve_target(conn, target)
        for stmt in untrigger_statements(t):
            conn.exec_driver_sql(stmt)
        for table in ("sync_queue", "sync_dead", "sync_log"):
            conn.execute(sa.text(f"DELETE FROM {SCHEMA}.{table} WHERE target = :t"), {"t": t.name})
        conn.execute(sa.text(f"DELETE FROM {SCHEMA}.sync_targets WHERE target = :t"), {"t": t.name})


def stale_condition(t: Target, row: str = "d") -> str:
    """SQL: ``row`` is not the embedding of its current text by ``t``'s embedder."""
    h = t.text_hash(row)
    return (
        f"({row}.{q(t.hash_column)} IS DISTINCT FROM {h} OR ({row}.{q(t.model_column)} "
        f"IS DISTINCT FROM {lit(t.embedder_name)} AND NOT ({row}.{q(t.column)} IS NULL AND "
        f"{row}.{q(t.model_column)} IS NULL)))"
    )


def backfill(
    engine: Engine,
    target: Any,
    *,
    batch_size: int = 1000,
    restart: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Queue every row of a synced column that has no embedding or a stale one (other
    text, other model). Returns how many rows were queued.

    Runs in batches of ``batch_size`` rows in key order, each its own transaction, and
    records where it got to in ``vecalchemy.sync_targets.backfill_cursor``: an
    interrupted backfill resumes there (``restart=True`` starts over). Rows already
    queued stay queued once. ``progress(done, total)`` is called after each batch.

    Example::

        queued = vecalchemy.sync.backfill(engine, Doc.embedding)
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigurationError(f"batch_size must be a positive integer, got {batch_size!r}")
    with engine.connect() as conn:
        t = resolve_target(conn, target)
        total = int(conn.execute(sa.text(f"SELECT count(*) FROM {t.relation}")).scalar_one())
        cursor = (
            None
            if restart
            else conn.execute(
                sa.text(f"SELECT backfill_cursor FROM {SCHEMA}.sync_targets WHERE target = :t"),
                {"t": t.name},
            ).scalar()
        )
    keys = ", ".join(f"d.{q(c)}" for c in t.key_columns)
    last_first = ", ".join(f"{q(c)} DESC" for c in t.key_columns)
    queued = 0
    seen = 0
    if cursor is not None:
        with engine.connect() as conn:
            seen = int(
                conn.execute(
                    sa.text(
                        f"SELECT count(*) FROM {t.relation} d WHERE ({keys}) <= ({_cursor_sql(t)})"
                    ),
                    {"cursor": json.dumps(cursor)},
                ).scalar_one()
            )
    while True:
        after = f"WHERE ({keys}) > ({_cursor_sql(t)})" if cursor is not None else ""
        with engine.begin() as conn:
            rows = conn.execute(
                sa.text(
                    f"WITH page AS (SELECT d.*, {t.key_json('d')} AS vk FROM {t.relation} d {after}"
                    f" ORDER BY {keys} LIMIT :n),"
                    f" q AS (INSERT INTO {SCHEMA}.sync_queue (target, key, hash)"
                    f" SELECT :t, d.vk, {t.text_hash('d')} FROM page d WHERE {stale_condition(t)}"
                    f" ON CONFLICT (target, key) DO NOTHING RETURNING 1)"
                    f" SELECT (SELECT count(*) FROM page) AS n,"
                    f" (SELECT vk FROM page ORDER BY {last_first} LIMIT 1) AS last,"
                    f" (SELECT count(*) FROM q) AS queued"
                ),
                {"n": batch_size, "t": t.name, "cursor": json.dumps(cursor)},
            ).one()
            if rows.n == 0:
                conn.execute(
                    sa.text(
                        f"UPDATE {SCHEMA}.sync_targets SET backfill_cursor = NULL WHERE target = :t"
                    ),
                    {"t": t.name},
                )
                break
            cursor = rows.last
            queued += int(rows.queued)
            seen += int(rows.n)
            conn.execute(
                sa.text(
                    f"UPDATE {SCHEMA}.sync_targets SET backfill_cursor = CAST(:c AS jsonb)"
                    " WHERE target = :t"
                ),
                {"c": json.dumps(cursor), "t": t.name},
            )
            if queued:
                conn.execute(sa.text("SELECT pg_notify('vecalchemy_sync', :t)"), {"t": t.name})
        if progress is not None:
            progress(min(seen, total), total)
    return queued


def _cursor_sql(t: Target) -> str:
    return ", ".join(f"(CAST(:cursor AS jsonb)->>{i})::{typ}" for i, typ in enumerate(t.key_types))


@dataclass(frozen=True)
class TargetStatus:
    """The state of one synced column's outbox.

    ``queued``: rows waiting (``in_progress`` of them claimed by a worker now,
    ``retrying`` of them failed at least once); ``lag_seconds``: age of the oldest
    queued item (0 when the queue is empty); ``dead``: dead letters;
    ``done_last_minute`` / ``failed_last_minute``: batch results of the last 60 s;
    ``per_second``: completions per second over the last minute.
    """

    target: str
    embedder: str
    queued: int
    in_progress: int
    retrying: int
    lag_seconds: float
    dead: int
    done_last_minute: int
    failed_last_minute: int
    per_second: float
    migrating_to: str | None

    def as_dict(self) -> dict[str, Any]:
        """The status as a JSON-ready dict."""
        return asdict(self)


def status(
    engine: Engine | sa.Connection, targets: Sequence[str] | None = None
) -> list[TargetStatus]:
    """The outbox status of every synced column (or of ``targets``).

    Example::

        for s in vecalchemy.sync.status(engine):
            print(f"{s.target}: {s.queued} queued, lag {s.lag_seconds:.1f} s, {s.dead} dead")
    """
    with _connect(engine) as conn:
        found = load_targets(conn, targets)
        if not found:
            return []
        rows = conn.execute(
            sa.text(
                f"""SELECT t.target, t.embedder_name, t.migrating_to,
       (SELECT count(*) FROM {SCHEMA}.sync_queue q WHERE q.target = t.target) AS queued,
       (SELECT count(*) FROM {SCHEMA}.sync_queue q WHERE q.target = t.target
            AND q.claimed_by IS NOT NULL AND q.lease_until > now()) AS in_progress,
       (SELECT count(*) FROM {SCHEMA}.sync_queue q WHERE q.target = t.target
            AND q.attempts > 0) AS retrying,
       COALESCE((SELECT extract(epoch FROM clock_timestamp() - min(q.enqueued_at))
            FROM {SCHEMA}.sync_queue q WHERE q.target = t.target), 0) AS lag,
       (SELECT count(*) FROM {SCHEMA}.sync_dead d WHERE d.target = t.target) AS dead,
       COALESCE((SELECT sum(done) FROM {SCHEMA}.sync_log l WHERE l.target = t.target
            AND l.at > clock_timestamp() - interval '60 seconds'), 0) AS done,
       COALESCE((SELECT sum(failed) FROM {SCHEMA}.sync_log l WHERE l.target = t.target
            AND l.at > clock_timestamp() - interval '60 seconds'), 0) AS failed
FROM {SCHEMA}.sync_targets t WHERE t.target = ANY(:names) ORDER BY t.target"""
            ),
            {"names": [t.name for t in found]},
        ).all()
    return [
        TargetStatus(
            target=r.target,
            embedder=r.embedder_name,
            queued=int(r.queued),
            in_progress=int(r.in_progress),
            retrying=int(r.retrying),
            lag_seconds=round(float(r.lag), 3),
            dead=int(r.dead),
            done_last_minute=int(r.done),
            failed_last_minute=int(r.failed),
            per_second=round(int(r.done) / 60.0, 2),
            migrating_to=r.migrating_to,
        )
        for r in rows
    ]


class _connect:
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


def retry(engine: Engine | sa.Connection, targets: Sequence[str] | None = None) -> int:
    """Move dead letters (of every target, or of ``targets``) back to the queue with
    fresh attempts; returns how many. Each row is embedded from its current text.

    Example::

        requeued = vecalchemy.sync.retry(engine)
    """
    with _begin(engine) as conn:
        names = [t.name for t in load_targets(conn, targets)]
        moved = conn.execute(
            sa.text(
                f"WITH d AS (DELETE FROM {SCHEMA}.sync_dead WHERE target = ANY(:names)"
                " RETURNING target, key, hash),"
                f" i AS (INSERT INTO {SCHEMA}.sync_queue (target, key, hash)"
                " SELECT target, key, hash FROM d ON CONFLICT (target, key) DO UPDATE"
                " SET attempts = 0, last_error = NULL, not_before = clock_timestamp()"
                " RETURNING 1) SELECT count(*) FROM i"
            ),
            {"names": names},
        ).scalar_one()
        if moved:
            for n in names:
                conn.execute(sa.text("SELECT pg_notify('vecalchemy_sync', :t)"), {"t": n})
    return int(moved)
