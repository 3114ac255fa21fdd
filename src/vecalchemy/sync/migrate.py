"""Moving an embedding column to another embedder, blue/green, without mixing models.

:func:`migrate` (``vecalchemy sync migrate --to SPEC``):

1. **Prepare** (once): adds a shadow column ``<column>__next`` of the new model's
   dimension with its own companion columns and HNSW index, and a second outbox target
   ``<target>__next`` whose trigger queues every insert and text change for it. The
   live column, its index and its embedder are untouched: searches keep using them,
   and writes keep embedding into them with the old model.
2. **Fill**: queues every row for the shadow (a resumable backfill) and, unless
   ``work=False`` (other workers do it), embeds them with the new model.
3. **Swap** (one transaction, when no row's shadow is stale): under a lock that
   blocks writes for its duration, the old column is dropped and the shadow renamed
   into its place (with its index, which takes the old index's name), and the target
   records the new embedder. Before the swap every search sees old-model vectors
   only; after it, new-model vectors only.

Every step is idempotent: an interrupted migration resumes where it stopped when it
is run again with the same ``to``. After the swap, change the column's declaration to
the new embedder and dimension (``Embedding(new_dim, source=..., embedder=SPEC)``);
until then the inline hook refuses to write old-model vectors into the column.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from vecalchemy._names import fit_identifier, qualified
from vecalchemy._source import hash_column_name, model_column_name
from vecalchemy.embedders import Embedder, get_embedder
from vecalchemy.errors import SyncError
from vecalchemy.metrics import INDEX_DIM_LIMITS, Metric, Storage
from vecalchemy.sync._ddl import (
    SCHEMA,
    Target,
    guard_statements,
    outbox_tables,
    q,
    trigger_statements,
    untrigger_statements,
)
from vecalchemy.sync._targets import LOCK, register, resolve_or_declared, stale_condition
from vecalchemy.sync.outbox import backfill
from vecalchemy.sync.worker import Worker

__all__ = ["MigrationResult", "migrate"]

SHADOW = "__next"


@dataclass(frozen=True)
class MigrationResult:
    """How a migration ended: ``swapped`` (True once the new column is live), rows
    embedded into the shadow by this call, rows still stale, and the seconds taken."""

    target: str
    embedder: str
    dim: int
    swapped: bool
    embedded: int
    remaining: int
    seconds: float


def _shadow_of(live: Target, embedder: Embedder, spec: str | None) -> Target:
    column = live.column + SHADOW
    return dataclasses.replace(
        live,
        name=live.name + SHADOW,
        column=column,
        hash_column=hash_column_name(column),
        model_column=model_column_name(column),
        dim=embedder.dim,
        embedder=spec,
        embedder_name=embedder.name,
    )


def _index_sql(t: Target) -> str:
    metric = Metric.parse(t.metric)
    storage = Storage.parse(t.storage)
    expr = q(t.column)
    if storage is Storage.VECTOR and t.dim > INDEX_DIM_LIMITS[Storage.VECTOR]:
        storage = Storage.HALFVEC
        expr = f"({q(t.column)}::halfvec({t.dim}))"
    if t.dim > INDEX_DIM_LIMITS[storage]:
        raise SyncError(
            f"pgvector cannot index {t.dim} dimensions of {storage.value}; choose a smaller model"
        )
    name = q(fit_identifier(f"ix_{t.table}_{t.column}_hnsw"))
    return (
        f"CREATE INDEX IF NOT EXISTS {name} ON {t.relation} USING hnsw "
        f"({expr} {metric.opclass(storage)})"
    )


def _prepare(conn: sa.Connection, live: Target, shadow: Target, to: str) -> None:
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK})
    current = conn.execute(
        sa.text(f"SELECT migrating_to FROM {SCHEMA}.sync_targets WHERE target = :t"),
        {"t": live.name},
    ).scalar()
    if current is not None and current != to:
        raise SyncError(
            f"{live.name} is being migrated to {current!r} already; finish that with "
            f"vecalchemy sync migrate --to {current!r}, or cancel it first"
        )
    conn.exec_driver_sql(
        f"ALTER TABLE {live.relation} ADD COLUMN IF NOT EXISTS {q(shadow.column)} "
        f"{shadow.vector_type()}, ADD COLUMN IF NOT EXISTS {q(shadow.hash_column)} text, "
        f"ADD COLUMN IF NOT EXISTS {q(shadow.model_column)} text"
    )
    conn.exec_driver_sql(_index_sql(shadow))
    for stmt in trigger_statements(shadow):
        conn.exec_driver_sql(stmt)
    register(conn, shadow)
    conn.execute(
        sa.text(f"UPDATE {SCHEMA}.sync_targets SET migrating_to = :to WHERE target = :t"),
        {"to": to, "t": live.name},
    )


def _stale(conn: sa.Connection, t: Target) -> int:
    return int(
        conn.execute(
            sa.text(f"SELECT count(*) FROM {t.relation} d WHERE {stale_condition(t)}")
        ).scalar_one()
    )


def _swap(conn: sa.Connection, live: Target, shadow: Target) -> bool:
    """Swap the shadow in; False (nothing changed) if some row's shadow is stale."""
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK})
    conn.exec_driver_sql(f"LOCK TABLE {live.relation} IN SHARE ROW EXCLUSIVE MODE")
    if _stale(conn, shadow):
        return False
    old_indexes = list(
        conn.execute(
            sa.text(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attname = :col"
                " WHERE i.indrelid = to_regclass(:rel) AND (a.attnum = ANY(i.indkey)"
                " OR pg_get_indexdef(i.indexrelid) LIKE '%' || quote_ident(:col) || '%')"
                " AND pg_get_indexdef(i.indexrelid) NOT LIKE '%' || :shadow || '%'"
            ),
            {"col": live.column, "rel": live.relation, "shadow": shadow.column},
        ).scalars()
    )
    for stmt in (*untrigger_statements(shadow), *untrigger_statements(live)):
        conn.exec_driver_sql(stmt)
    rel = live.relation
    conn.exec_driver_sql(
        f"ALTER TABLE {rel} DROP COLUMN {q(live.column)}, DROP COLUMN {q(live.hash_column)},"
        f" DROP COLUMN {q(live.model_column)}"
    )
    for old, new in (
        (shadow.column, live.column),
        (shadow.hash_column, live.hash_column),
        (shadow.model_column, live.model_column),
    ):
        conn.exec_driver_sql(f"ALTER TABLE {rel} RENAME COLUMN {q(old)} TO {q(new)}")
    shadow_index = fit_identifier(f"ix_{shadow.table}_{shadow.column}_hnsw")
    target_index = (
        old_indexes[0]
        if len(old_indexes) == 1
        else fit_identifier(f"ix_{live.table}_{live.column}_hnsw")
    )
    if target_index != shadow_index:
        conn.exec_driver_sql(
            f"ALTER INDEX {qualified(live.schema, shadow_index)} RENAME TO {q(target_index)}"
        )
    new_live = dataclasses.replace(
        live, dim=shadow.dim, embedder=shadow.embedder, embedder_name=shadow.embedder_name
    )
    for table in ("sync_queue", "sync_dead", "sync_log"):
        conn.execute(
            sa.text(f"DELETE FROM {SCHEMA}.{table} WHERE target = ANY(:t)"),
            {"t": [live.name, shadow.name]},
        )
    conn.execute(
        sa.text(f"DELETE FROM {SCHEMA}.sync_targets WHERE target = :t"), {"t": shadow.name}
    )
    register(conn, new_live)
    conn.execute(
        sa.text(
            f"UPDATE {SCHEMA}.sync_targets SET migrating_to = NULL, backfill_cursor = NULL"
            " WHERE target = :t"
        ),
        {"t": live.name},
    )
    statements = trigger_statements if live.sync == "outbox" else guard_statements
    for stmt in statements(new_live):
        conn.exec_driver_sql(stmt)
    return True


def migrate(
    engine: Engine,
    target: Any,
    *,
    to: str | Embedder,
    embedder: Embedder | None = None,
    work: bool = True,
    batch_size: int = 64,
    wait: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> MigrationResult:
    """Re-embed a synced column with the embedder ``to`` in a shadow column, then swap
    it in (see the module docstring). Resumable: run it again after an interruption.

    ``target``: the column (``Doc.embedding``) or an installed target's name.
    ``to``: the new embedder's spec (``"minilm"``), or an embedder object (whose workers
    then need it in code). ``embedder``: the current embedder object, for a column
    installed with one. ``work=False`` leaves the embedding to running workers and
    waits up to ``wait`` seconds (None: forever) for them. ``progress(done, total)``
    reports shadow rows that are current.

    Example::

        result = vecalchemy.sync.migrate(engine, Doc.embedding, to="minilm")
        result.swapped    # True: Doc.embedding now holds MiniLM vectors
    """
    started = time.perf_counter()
    new = get_embedder(to)
    spec = to if isinstance(to, str) else None
    key = spec or new.name
    with engine.begin() as conn:
        for stmt in outbox_tables():
            conn.exec_driver_sql(stmt)
        live = resolve_or_declared(conn, target, embedder)
        if live.embedder_name == new.name:
            raise SyncError(f"{live.name} is made with {new.name} already; nothing to migrate")
        if live.sync == "inline":
            register(conn, live)  # so that the swap can record the new embedder
            for stmt in guard_statements(live):
                conn.exec_driver_sql(stmt)
        shadow = dataclasses.replace(_shadow_of(live, new, spec), sync="outbox")
        _prepare(conn, live, shadow, key)
    backfill(engine, shadow.name)
    embedded = 0
    deadline = None if wait is None else time.monotonic() + wait
    while True:
        with engine.connect() as conn:
            total = int(conn.execute(sa.text(f"SELECT count(*) FROM {live.relation}")).scalar_one())
            remaining = _stale(conn, shadow)
        if progress is not None:
            progress(total - remaining, total)
        if remaining == 0:
            with engine.begin() as conn:
                if _swap(conn, live, shadow):
                    return MigrationResult(
                        live.name,
                        new.name,
                        new.dim,
                        True,
                        embedded,
                        0,
                        round(time.perf_counter() - started, 3),
                    )
            continue
        if work:
            worker = Worker(
                engine,
                targets=[shadow.name],
                embedders={shadow.name: new},
                batch_size=batch_size,
                poll_interval=0.5,
            )
            with worker:
                stats = worker.run(until_idle=True, max_batches=1)
            embedded += stats.done
            if stats.batches == 0:
                backfill(engine, shadow.name, restart=True)  # rows no one queued yet
                if stats.dead or _dead(engine, shadow):
                    raise SyncError(
                        f"rows of {live.name} failed to embed with {new.name} (see vecalchemy "
                        "sync status); fix them and run vecalchemy sync retry, then migrate again"
                    )
        else:
            if deadline is not None and time.monotonic() > deadline:
                return MigrationResult(
                    live.name,
                    new.name,
                    new.dim,
                    False,
                    embedded,
                    remaining,
                    round(time.perf_counter() - started, 3),
                )
            time.sleep(0.5)


def _dead(engine: Engine, t: Target) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(f"SELECT count(*) FROM {SCHEMA}.sync_dead WHERE target = :t"),
                {"t": t.name},
            ).scalar_one()
        )
