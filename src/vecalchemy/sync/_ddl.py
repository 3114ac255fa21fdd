"""The DDL of the outbox, as plain SQL strings (so a migration can emit them too).

Four tables in the ``vecalchemy`` schema hold the outbox of every synced column:

* ``sync_targets``: one row per synced column: its table, key, source columns,
  companion columns, embedder and retry limit. Workers need nothing else.
* ``sync_queue``: one row per row to embed (``UNIQUE (target, key)``: many edits of
  a row before a worker reaches it are one item, carrying the hash of the newest
  text). A worker's claim is ``claimed_by`` (the backend pid of its connection) and
  ``lease_until``; a claim whose backend is gone (a killed worker) or whose lease ran
  out is free again.
* ``sync_dead``: items that failed ``max_attempts`` times, with the last error.
* ``sync_log``: completed and failed counts per batch, for throughput.

Per synced column, a trigger function ``vecalchemy.enqueue_<hash>()`` fires ``AFTER
INSERT OR UPDATE OF <source columns> OR DELETE`` on each row and ``AFTER TRUNCATE``
once: an insert or a change of the source text queues the row's key with the content
hash of its text, in the writer's own transaction, and notifies ``vecalchemy_sync``; a
delete removes the row's queued work and dead letters (its embedding goes with the
row), and so does an edit back to the text its stored vector was made from; a
truncate removes the target's queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from vecalchemy._names import digest, fit_identifier, qualified
from vecalchemy._source import sql_content_hash

__all__ = [
    "CHANNEL",
    "SCHEMA",
    "Target",
    "guard_statements",
    "lit",
    "outbox_tables",
    "q",
    "trigger_statements",
    "untrigger_statements",
]

SCHEMA = "vecalchemy"
#: The LISTEN/NOTIFY channel the triggers notify and workers listen on.
CHANNEL = "vecalchemy_sync"


def q(name: str) -> str:
    """``name`` quoted as an identifier."""
    return qualified(None, name)


def lit(value: str) -> str:
    """``value`` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Target:
    """One synced embedding column, as ``vecalchemy.sync_targets`` records it."""

    name: str
    schema: str
    table: str
    column: str
    key_columns: tuple[str, ...]
    key_types: tuple[str, ...]
    source_columns: tuple[str, ...]
    hash_column: str
    model_column: str
    dim: int
    storage: str
    metric: str
    embedder: str | None
    embedder_name: str
    max_attempts: int = 5
    #: ``outbox`` (a trigger queues the rows) or ``inline`` (registered only while a
    #: migration needs to record the column's embedder).
    sync: str = "outbox"
    #: Embed the start of a text beyond the model's window instead of refusing it.
    truncate: bool = False

    @property
    def relation(self) -> str:
        """The quoted, qualified table name."""
        return qualified(self.schema, self.table)

    @property
    def function(self) -> str:
        """The quoted, qualified name of the trigger function."""
        return f"{SCHEMA}.{q(fit_identifier('enqueue_' + digest(self.name, 16)))}"

    @property
    def trigger(self) -> str:
        """The name of the row trigger on the table (quoted)."""
        return q(fit_identifier(f"vecalchemy_sync_{self.column}", digest(self.name)))

    @property
    def guard_trigger(self) -> str:
        """The name of the trigger that refuses vectors of another model (quoted)."""
        return q(fit_identifier(f"vecalchemy_guard_{self.column}", digest(self.name)))

    @property
    def guard_function(self) -> str:
        """The quoted, qualified name of the guard's function."""
        return f"{SCHEMA}.{q(fit_identifier('guard_' + digest(self.name, 16)))}"

    @property
    def truncate_trigger(self) -> str:
        """The name of the truncate trigger on the table (quoted)."""
        return q(fit_identifier(f"vecalchemy_sync_{self.column}_truncate", digest(self.name)))

    def key_json(self, row: str) -> str:
        """SQL: the row's key as a JSON array, ``row`` being ``NEW``, ``OLD`` or an alias."""
        return f"jsonb_build_array({', '.join(f'{row}.{q(c)}' for c in self.key_columns)})"

    def key_match(self, row: str, key: str) -> str:
        """SQL: ``row``'s key equals the JSON array ``key``, typed so indexes apply."""
        return " AND ".join(
            f"{row}.{q(c)} = ({key}->>{i})::{t}"
            for i, (c, t) in enumerate(zip(self.key_columns, self.key_types, strict=True))
        )

    def text_hash(self, row: str) -> str:
        """SQL: the content hash of ``row``'s source text."""
        return sql_content_hash([f"{row}.{q(c)}" for c in self.source_columns])

    def vector_type(self) -> str:
        """SQL: the column's type, e.g. ``vector(384)``."""
        return f"{self.storage}({self.dim})"


def outbox_tables() -> list[str]:
    """The statements that create the outbox's schema and tables (idempotent)."""
    s = SCHEMA
    return [
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"""CREATE TABLE IF NOT EXISTS {s}.sync_targets (
    target text PRIMARY KEY,
    schema_name text NOT NULL,
    table_name text NOT NULL,
    column_name text NOT NULL,
    key_columns jsonb NOT NULL,
    key_types jsonb NOT NULL,
    source_columns jsonb NOT NULL,
    hash_column text NOT NULL,
    model_column text NOT NULL,
    dim integer NOT NULL,
    storage text NOT NULL,
    metric text NOT NULL,
    embedder text,
    embedder_name text NOT NULL,
    max_attempts integer NOT NULL DEFAULT 5,
    sync text NOT NULL DEFAULT 'outbox',
    truncate boolean NOT NULL DEFAULT false,
    backfill_cursor jsonb,
    migrating_to text,
    created_at timestamptz NOT NULL DEFAULT now()
)""",
        f"""CREATE TABLE IF NOT EXISTS {s}.sync_queue (
    id bigserial PRIMARY KEY,
    target text NOT NULL,
    key jsonb NOT NULL,
    hash text NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    not_before timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    claimed_by integer,
    lease_until timestamptz,
    UNIQUE (target, key)
)""",
        # Columns added after the first version of the registry, for outboxes made then.
        f"ALTER TABLE {s}.sync_targets ADD COLUMN IF NOT EXISTS sync text NOT NULL"
        " DEFAULT 'outbox', ADD COLUMN IF NOT EXISTS truncate boolean NOT NULL DEFAULT false",
        f"CREATE INDEX IF NOT EXISTS sync_queue_ready ON {s}.sync_queue (not_before, id)",
        f"""CREATE TABLE IF NOT EXISTS {s}.sync_dead (
    id bigserial PRIMARY KEY,
    target text NOT NULL,
    key jsonb NOT NULL,
    hash text NOT NULL,
    attempts integer NOT NULL,
    error text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (target, key)
)""",
        f"""CREATE TABLE IF NOT EXISTS {s}.sync_log (
    target text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    done integer NOT NULL,
    failed integer NOT NULL
)""",
        f"CREATE INDEX IF NOT EXISTS sync_log_at ON {s}.sync_log (target, at)",
    ]


def trigger_statements(t: Target) -> list[str]:
    """The trigger function and triggers that queue ``t``'s rows (idempotent)."""
    target = lit(t.name)
    sources_new = ", ".join(f"NEW.{q(c)}" for c in t.source_columns)
    sources_old = ", ".join(f"OLD.{q(c)}" for c in t.source_columns)
    key_changed = " OR ".join(f"NEW.{q(c)} IS DISTINCT FROM OLD.{q(c)}" for c in t.key_columns)
    body = f"""
DECLARE
    h text;
BEGIN
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND ({key_changed})) THEN
        DELETE FROM {SCHEMA}.sync_queue WHERE target = {target} AND key = {t.key_json("OLD")};
        DELETE FROM {SCHEMA}.sync_dead WHERE target = {target} AND key = {t.key_json("OLD")};
        IF TG_OP = 'DELETE' THEN
            RETURN NULL;
        END IF;
    ELSIF TG_OP = 'UPDATE' AND ROW({sources_new}) IS NOT DISTINCT FROM ROW({sources_old}) THEN
        RETURN NULL;
    END IF;
    h := {t.text_hash("NEW")};
    IF NEW.{q(t.hash_column)} IS NOT DISTINCT FROM h
       AND (NEW.{q(t.model_column)} IS NOT DISTINCT FROM {lit(t.embedder_name)}
            OR (NEW.{q(t.column)} IS NULL AND NEW.{q(t.model_column)} IS NULL)) THEN
        -- The stored vector is of this text, by this model: work queued (or dead) for
        -- an edit since undone is moot, and a worker would write it but never finish it.
        DELETE FROM {SCHEMA}.sync_queue WHERE target = {target} AND key = {t.key_json("NEW")};
        DELETE FROM {SCHEMA}.sync_dead WHERE target = {target} AND key = {t.key_json("NEW")};
        RETURN NULL;
    END IF;
    INSERT INTO {SCHEMA}.sync_queue AS qu (target, key, hash)
    VALUES ({target}, {t.key_json("NEW")}, h)
    ON CONFLICT (target, key) DO UPDATE
        SET hash = EXCLUDED.hash, attempts = 0, last_error = NULL,
            not_before = EXCLUDED.not_before;
    DELETE FROM {SCHEMA}.sync_dead WHERE target = {target} AND key = {t.key_json("NEW")};
    PERFORM pg_notify({lit(CHANNEL)}, {target});
    RETURN NULL;
END
"""
    truncate = f"""
BEGIN
    DELETE FROM {SCHEMA}.sync_queue WHERE target = {target};
    DELETE FROM {SCHEMA}.sync_dead WHERE target = {target};
    RETURN NULL;
END
"""
    sources = ", ".join(q(c) for c in (*t.source_columns, *t.key_columns))
    fn_truncate = t.function[:-1] + '_truncate"'
    return [
        f"CREATE OR REPLACE FUNCTION {t.function}() RETURNS trigger LANGUAGE plpgsql "
        f"AS $vecalchemy${body}$vecalchemy$",
        f"CREATE OR REPLACE FUNCTION {fn_truncate}() RETURNS trigger LANGUAGE plpgsql "
        f"AS $vecalchemy${truncate}$vecalchemy$",
        f"DROP TRIGGER IF EXISTS {t.trigger} ON {t.relation}",
        f"CREATE TRIGGER {t.trigger} AFTER INSERT OR UPDATE OF {sources} OR DELETE "
        f"ON {t.relation} FOR EACH ROW EXECUTE FUNCTION {t.function}()",
        f"DROP TRIGGER IF EXISTS {t.truncate_trigger} ON {t.relation}",
        f"CREATE TRIGGER {t.truncate_trigger} AFTER TRUNCATE ON {t.relation} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {fn_truncate}()",
        *guard_statements(t),
    ]


def guard_statements(t: Target) -> list[str]:
    """A trigger that refuses a write of a vector whose recorded model is not ``t``'s:
    whatever process writes, with whatever declaration, a column never mixes two models.
    A vector written with a NULL model (supplied by the application) passes."""
    message = (
        f"column {t.table}.{t.column} holds vectors made with {t.embedder_name}; a vector "
        "made with %s was refused (a column never mixes two models)"
    )
    body = f"""
BEGIN
    IF NEW.{q(t.column)} IS NOT NULL AND NEW.{q(t.model_column)} IS NOT NULL
       AND NEW.{q(t.model_column)} <> {lit(t.embedder_name)} THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation',
            MESSAGE = format({lit(message)}, NEW.{q(t.model_column)}),
            HINT = 'declare the column with the embedder it holds, or migrate it with '
                   'vecalchemy sync migrate';
    END IF;
    RETURN NEW;
END
"""
    return [
        f"CREATE OR REPLACE FUNCTION {t.guard_function}() RETURNS trigger LANGUAGE plpgsql "
        f"AS $vecalchemy${body}$vecalchemy$",
        f"DROP TRIGGER IF EXISTS {t.guard_trigger} ON {t.relation}",
        f"CREATE TRIGGER {t.guard_trigger} BEFORE INSERT OR UPDATE OF {q(t.column)}, "
        f"{q(t.model_column)} ON {t.relation} FOR EACH ROW EXECUTE FUNCTION "
        f"{t.guard_function}()",
    ]


def untrigger_statements(t: Target) -> list[str]:
    """The statements that remove ``t``'s triggers and functions (idempotent)."""
    fn_truncate = t.function[:-1] + '_truncate"'
    return [
        f"DROP TRIGGER IF EXISTS {t.trigger} ON {t.relation}",
        f"DROP TRIGGER IF EXISTS {t.truncate_trigger} ON {t.relation}",
        f"DROP TRIGGER IF EXISTS {t.guard_trigger} ON {t.relation}",
        f"DROP FUNCTION IF EXISTS {t.function}()",
        f"DROP FUNCTION IF EXISTS {fn_truncate}()",
        f"DROP FUNCTION IF EXISTS {t.guard_function}()",
    ]
