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
from sqlalchemy import Engine

from vecalchemy.embedders import Embedder
from vecalchemy.errors import ConfigurationError, SyncError
from vecalchemy.sync._ddl import (
    SCHEMA,
    Target,
    outbox_tables,
    q,
    trigger_statements,
    untrigger_statements,
)
from vecalchemy.sync._targets import (
    LOCK,
    begin,
    connect,
    load_targets,
    register_statement,
    resolve_target,
    stale_condition,
    target_for,
)

__all__ = [
    "TargetStatus",
    "backfill",
    "install",
    "install_statements",
    "retry",
    "status",
    "uninstall",
]


def install_statements(t: Target) -> list[str]:
    """Every statement :func:`install` runs for ``t`` (tables, trigger, guard, registry
    entry), as plain SQL for a migration to emit with ``op.execute``.

    Example::

        from vecalchemy.sync._targets import target_for   # in an Alembic migration
        for stmt in vecalchemy.sync.install_statements(target_for(Doc.embedding)):
            op.execute(stmt)
    """
    return [*outbox_tables(), *trigger_statements(t), register_statement(t)]


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
    with begin(engine) as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK})
        _check_companions(conn, t)
        for stmt in install_statements(t):
            conn.exec_driver_sql(stmt)
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


def uninstall(engine: Engine | sa.Connection, target: Any) -> None:
    """Remove a column's trigger, queue, dead letters and registry entry (not its data)."""
    with begin(engine) as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK})
        t = resolve_target(conn, target)
        for stmt in untrigger_statements(t):
            conn.exec_driver_sql(stmt)
        for table in ("sync_queue", "sync_dead", "sync_log"):
            conn.execute(sa.text(f"DELETE FROM {SCHEMA}.{table} WHERE target = :t"), {"t": t.name})
        conn.execute(sa.text(f"DELETE FROM {SCHEMA}.sync_targets WHERE target = :t"), {"t": t.name})


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
    with connect(engine) as conn:
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


def retry(engine: Engine | sa.Connection, targets: Sequence[str] | None = None) -> int:
    """Move dead letters (of every target, or of ``targets``) back to the queue with
    fresh attempts; returns how many. Each row is embedded from its current text.

    Example::

        requeued = vecalchemy.sync.retry(engine)
    """
    with begin(engine) as conn:
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
