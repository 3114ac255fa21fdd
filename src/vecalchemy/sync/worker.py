"""The outbox worker: claims queued rows, embeds them outside any transaction, and
writes each vector only if the row still has the text it was embedded from.

One batch, step by step:

1. **Claim** (one short transaction): up to ``batch_size`` ready items, ``FOR UPDATE
   SKIP LOCKED`` so that concurrent workers never wait on each other, marked with the
   backend pid of this worker's connection and a lease. A claim whose backend is gone
   (the worker was killed, the server restarted) or whose lease ran out is free for any
   worker: no work is lost on SIGKILL.
2. **Read** the rows' current text (a second short transaction).
3. **Embed**, with no transaction open. If the batch fails, each text is embedded on
   its own, so one bad input fails alone.
4. **Write** (one transaction): ``UPDATE ... WHERE key = ... AND <hash of the row's
   current text> = <hash of the embedded text>``, so a newer edit always wins over an
   older embedding; the queue item is deleted only if it was not re-queued meanwhile,
   otherwise it is released for the newer text. Failures get ``attempts + 1`` and
   exponential backoff with jitter; after ``max_attempts`` the item moves to
   ``vecalchemy.sync_dead`` with its error.

Between batches the worker waits on ``LISTEN vecalchemy_sync`` with a polling timeout
(a missed notification costs at most ``poll_interval``). A failed batch or a lost
connection is logged and retried; the loop never dies on an item. :meth:`Worker.stop`
(called by SIGTERM under ``vecalchemy worker``) lets the batch in hand finish, then
returns.

Example::

    worker = vecalchemy.sync.Worker(engine)
    worker.run(until_idle=True)        # embed what is queued, then return
    print(worker.stats.done, worker.stats.failed)
"""

from __future__ import annotations

import functools
import json
import logging
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy import Engine

from vecalchemy._source import content_hash, source_text
from vecalchemy.embedders import Embedder, get_embedder
from vecalchemy.errors import ConfigurationError, EmbedderError, SyncError
from vecalchemy.metrics import Metric
from vecalchemy.sync._ddl import CHANNEL, SCHEMA, Target, q
from vecalchemy.sync._embed import check_vectors, too_long
from vecalchemy.sync._targets import load_targets

__all__ = ["Worker", "WorkerStats"]

log = logging.getLogger("vecalchemy.sync")


@dataclass
class WorkerStats:
    """What a worker did: rows embedded and written, failures, dead letters, rows
    skipped because their text changed while they were embedded, batches, reconnects."""

    done: int = 0
    failed: int = 0
    dead: int = 0
    superseded: int = 0
    batches: int = 0
    reconnects: int = 0
    embed_seconds: float = 0.0
    started: float = field(default_factory=time.monotonic)


@dataclass
class _Item:
    id: int
    target: str
    key: Any
    hash: str
    attempts: int
    text: str | None = None
    current: str | None = None


class Worker:
    """A long-lived outbox worker for every synced column of a database (or ``targets``).

    ``engine``: a SQLAlchemy engine (psycopg or any driver) or a URL. ``embedders``
    maps a target name to an embedder object (for columns installed with one rather
    than a spec string); others are built from their stored spec once. ``batch_size``
    items are claimed at a time; ``lease_seconds`` bounds how long a claim of a live
    but stuck worker holds; ``max_attempts`` overrides each target's; ``backoff`` and
    ``max_backoff`` (seconds) shape the retry delays, ``base * 2**attempts`` times a
    random factor in [0.5, 1.5).

    Any number of workers, in any processes on any machines, can serve one database.

    Example::

        worker = vecalchemy.sync.Worker("postgresql+psycopg://app@db/app", batch_size=64)
        worker.run()          # until worker.stop() or SIGTERM (vecalchemy worker)
    """

    def __init__(
        self,
        engine: Engine | str,
        *,
        targets: Sequence[str] | None = None,
        embedders: Mapping[str, Embedder] | None = None,
        batch_size: int = 64,
        poll_interval: float = 5.0,
        lease_seconds: float = 600.0,
        max_attempts: int | None = None,
        backoff: float = 1.0,
        max_backoff: float = 300.0,
    ) -> None:
        for name, value, lo in (
            ("batch_size", batch_size, 1),
            ("poll_interval", poll_interval, 0),
            ("lease_seconds", lease_seconds, 1),
            ("backoff", backoff, 0),
            ("max_backoff", max_backoff, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < lo:
                raise ConfigurationError(f"{name} must be a number of at least {lo}, got {value!r}")
        if max_attempts is not None and (not isinstance(max_attempts, int) or max_attempts < 1):
            raise ConfigurationError(
                f"max_attempts must be a positive integer, got {max_attempts!r}"
            )
        if isinstance(engine, str):
            from vecalchemy.engine import create_engine

            engine = create_engine(engine)
        self.engine = engine
        self.targets = list(targets) if targets is not None else None
        self.batch_size = int(batch_size)
        self.poll_interval = float(poll_interval)
        self.lease_seconds = float(lease_seconds)
        self.max_attempts = max_attempts
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.stats = WorkerStats()
        self._given = dict(embedders or {})
        self._embedders: dict[str, Embedder] = {}
        self._stop = threading.Event()
        self._conn: sa.Connection | None = None
        self._listen: Any = None
        self._known: dict[str, Target] = {}
        self._permanent: set[int] = set()
        self._loaded = 0.0

    # -- lifecycle ------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the worker to return from :meth:`run` once the batch in hand is written."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    def close(self) -> None:
        """Close the worker's connections."""
        self._drop_connections()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def run(self, *, until_idle: bool = False, max_batches: int | None = None) -> WorkerStats:
        """Work until :meth:`stop` (or, with ``until_idle``, until nothing is queued that
        is ready or claimed by a live worker; or after ``max_batches``). Returns stats."""
        delay = 0.5
        try:
            while not self.stopping:
                if max_batches is not None and self.stats.batches >= max_batches:
                    break
                try:
                    n = self.run_once()
                    delay = 0.5
                    if n:
                        continue
                    if until_idle and self._idle():
                        break
                    self._wait()
                except sa.exc.DBAPIError as exc:
                    if not exc.connection_invalidated and not _is_disconnect(exc):
                        log.exception("worker batch failed; retrying in %.1f s", delay)
                    else:
                        log.warning(
                            "lost the database connection (%s); reconnecting in %.1f s",
                            type(exc.orig).__name__,
                            delay,
                        )
                    self._drop_connections()
                    self.stats.reconnects += 1
                    self._stop.wait(delay)
                    delay = min(delay * 2, 10.0)
                except (SyncError, ConfigurationError):
                    raise
                except Exception:
                    log.exception("worker batch failed; retrying in %.1f s", delay)
                    self._drop_connections()
                    self._stop.wait(delay)
                    delay = min(delay * 2, 10.0)
        finally:
            self._drop_connections()
        return self.stats

    # -- connections ------------------------------------------------------------------

    def _work(self) -> sa.Connection:
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def _drop_connections(self) -> None:
        conns, self._conn, self._listen = (self._conn, self._listen), None, None
        for conn in conns:
            if conn is None:
                continue
            try:
                conn.invalidate()  # never back to the pool: it may be mid-transaction
                conn.close()
            except Exception:  # pragma: no cover - closing a dead connection
                log.debug("closing a worker connection failed", exc_info=True)

    def _wait(self) -> None:
        """Sleep until a notification, the next retry, a stop, or ``poll_interval``."""
        timeout = self.poll_interval
        nxt = (
            self._work()
            .execute(
                sa.text(
                    f"SELECT extract(epoch FROM min(not_before) - clock_timestamp())"
                    f" FROM {SCHEMA}.sync_queue WHERE target = ANY(:t) AND claimed_by IS NULL"
                ),
                {"t": self._target_names()},
            )
            .scalar()
        )
        self._work().commit()
        if nxt is not None:
            timeout = max(0.0, min(timeout, float(nxt)))
        if timeout <= 0 or self.stopping:
            return
        raw = self._listener()
        if raw is None:
            self._stop.wait(timeout)
            return
        # Short slices, so that stop() is honoured within a fraction of a second.
        end = time.monotonic() + timeout
        dbapi = self.engine.dialect.loaded_dbapi
        while not self.stopping and (left := end - time.monotonic()) > 0:
            try:
                for _ in raw.notifies(timeout=min(left, 0.5), stop_after=1):
                    return
            except dbapi.OperationalError as exc:
                # A driver call SQLAlchemy does not wrap: wrap it as SQLAlchemy would, so
                # that run() handles it as the lost connection it is.
                raise sa.exc.OperationalError(
                    "LISTEN", None, exc, connection_invalidated=True
                ) from exc

    def _listener(self) -> Any:
        if self._listen is None:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            raw = conn.connection.driver_connection
            if not hasattr(raw, "notifies"):
                conn.close()
                return None  # not psycopg 3: poll
            conn.exec_driver_sql(f"LISTEN {CHANNEL}")
            self._listen = conn
        return self._listen.connection.driver_connection

    # -- one batch --------------------------------------------------------------------

    def _target_names(self) -> list[str]:
        # Targets are read again every 30 s: a column installed or migrated meanwhile.
        if not self._known or time.monotonic() - self._loaded > 30.0:
            found = load_targets(self._work(), self.targets)
            self._work().commit()
            if self.targets is None:
                found = [t for t in found if t.sync == "outbox"]
            found = self._present(found)
            if not found:
                raise SyncError(
                    "no synced column in this database; install one with "
                    "vecalchemy.sync.install(engine, Doc.embedding)"
                )
            self._known = {t.name: t for t in found}
            self._embedders = {n: e for n, e in self._embedders.items() if n in self._known}
            self._loaded = time.monotonic()
        return list(self._known)

    def _present(self, found: list[Target]) -> list[Target]:
        """The targets whose table exists (a dropped table leaves its registry entry)."""
        conn = self._work()
        exists = conn.execute(
            sa.text("SELECT to_regclass(r) IS NOT NULL FROM unnest(CAST(:r AS text[])) AS r"),
            {"r": [t.relation for t in found]},
        ).scalars()
        kept = [t for t, ok in zip(found, list(exists), strict=True) if ok]
        conn.commit()
        for t in found:
            if t not in kept:
                log.warning(
                    "%s: table %s is gone; skipping it (vecalchemy.sync.uninstall "
                    "removes its entry)",
                    t.name,
                    t.relation,
                )
        return kept

    def _embedder(self, t: Target) -> Embedder:
        got = self._embedders.get(t.name)
        if got is not None and got.name == t.embedder_name:
            return got  # (a migration changes the target's model: build it again)
        given = self._given.get(t.name)
        if given is not None:
            embedder = given
        elif t.embedder is not None:
            embedder = get_embedder(t.embedder)
        else:
            raise SyncError(
                f"{t.name} was installed with an embedder object ({t.embedder_name}); pass "
                f"it to the worker: Worker(engine, embedders={{{t.name!r}: embedder}})"
            )
        if embedder.name != t.embedder_name:
            raise SyncError(
                f"the embedder for {t.name} is {embedder.name}, but its vectors are made "
                f"with {t.embedder_name}; a column never mixes two models: pass the "
                "installed embedder, or migrate (vecalchemy sync migrate --to SPEC)"
            )
        self._embedders[t.name] = embedder
        return embedder

    def _idle(self) -> bool:
        conn = self._work()
        left = conn.execute(
            sa.text(
                f"SELECT count(*) FROM {SCHEMA}.sync_queue q WHERE q.target = ANY(:t) AND"
                " (q.not_before <= clock_timestamp() OR (q.claimed_by IS NOT NULL AND"
                " q.lease_until > now() AND q.claimed_by = ANY(ARRAY(SELECT pid FROM"
                " pg_stat_activity))))"
            ),
            {"t": self._target_names()},
        ).scalar_one()
        conn.commit()
        return int(left) == 0

    def run_once(self) -> int:
        """Claim, embed and write one batch; returns how many items it claimed."""
        items = self._claim()
        if not items:
            return 0
        self.stats.batches += 1
        by_target: dict[str, list[_Item]] = {}
        for item in items:
            by_target.setdefault(item.target, []).append(item)
        for name, group in by_target.items():
            t = self._known.get(name)
            if t is None:
                self._known.clear()
                self._target_names()
                t = self._known[name]
            self._process(t, group)
        return len(items)

    def _claim(self) -> list[_Item]:
        conn = self._work()
        names = self._target_names()
        rows = conn.execute(
            sa.text(
                f"""WITH c AS (
    SELECT id FROM {SCHEMA}.sync_queue q
    WHERE q.target = ANY(:t) AND q.not_before <= clock_timestamp()
      AND (q.claimed_by IS NULL OR q.lease_until < now()
           OR NOT q.claimed_by = ANY(ARRAY(SELECT pid FROM pg_stat_activity)))
    ORDER BY q.not_before, q.id
    LIMIT :n FOR UPDATE SKIP LOCKED)
UPDATE {SCHEMA}.sync_queue q
SET claimed_by = pg_backend_pid(), lease_until = now() + make_interval(secs => :lease)
FROM c WHERE q.id = c.id
RETURNING q.id, q.target, q.key, q.hash, q.attempts"""
            ),
            {"t": names, "n": self.batch_size, "lease": self.lease_seconds},
        ).all()
        conn.commit()
        return [_Item(r.id, r.target, r.key, r.hash, r.attempts) for r in rows]

    def _process(self, t: Target, items: list[_Item]) -> None:
        conn = self._work()
        cols = ", ".join(f"d.{q(c)}" for c in t.source_columns)
        rows = conn.execute(
            sa.text(
                f"SELECT k.key, {cols} FROM jsonb_array_elements(CAST(:keys AS jsonb))"
                f" AS k(key) JOIN {t.relation} d ON {t.key_match('d', 'k.key')}"
            ),
            {"keys": json.dumps([i.key for i in items])},
        ).all()
        conn.commit()
        texts = {json.dumps(r[0]): source_text(r[1:]) for r in rows}
        gone: list[_Item] = []
        for item in items:
            text = texts.get(json.dumps(item.key))
            if text is None:
                gone.append(item)  # the row was deleted
            else:
                item.text = text
                item.current = content_hash(text)
        live = [i for i in items if i.text is not None]
        vectors, errors = self._embed(t, live)
        self._write(t, live, vectors, errors, gone)

    def _embed(self, t: Target, items: list[_Item]) -> tuple[dict[int, Any], dict[int, str]]:
        """Embed the items' texts; returns vectors and errors by item id (no transaction
        is open while the model runs)."""
        embedder = self._embedder(t)
        metric = Metric.parse(t.metric)
        todo = [i for i in items if i.text is not None and i.text.strip()]
        vectors: dict[int, Any] = {}
        errors: dict[int, str] = {}
        if not t.truncate:
            for i in todo:
                why = too_long(embedder, i.text or "")
                if why is not None:
                    errors[i.id] = why
                    self._permanent.add(i.id)  # no retry makes it fit
            todo = [i for i in todo if i.id not in errors]
        if not todo:
            return vectors, errors
        started = time.perf_counter()
        try:
            got = check_vectors(
                embedder.embed_documents([i.text or "" for i in todo]),
                rows=len(todo),
                dim=t.dim,
                metric=metric,
                embedder=embedder,
            )
            vectors = {i.id: got[n] for n, i in enumerate(todo)}
        except Exception as exc:
            if len(todo) == 1:
                errors[todo[0].id] = _describe(exc)
            else:
                log.warning(
                    "a batch of %d texts failed (%s); embedding them one by one",
                    len(todo),
                    _describe(exc),
                )
                for i in todo:
                    try:
                        one = check_vectors(
                            embedder.embed_documents([i.text or ""]),
                            rows=1,
                            dim=t.dim,
                            metric=metric,
                            embedder=embedder,
                        )
                        vectors[i.id] = one[0]
                    except Exception as exc1:
                        errors[i.id] = _describe(exc1)
        self.stats.embed_seconds += time.perf_counter() - started
        return vectors, errors

    def _write(
        self,
        t: Target,
        items: list[_Item],
        vectors: dict[int, Any],
        errors: dict[int, str],
        gone: list[_Item],
    ) -> None:
        conn = self._work()
        ok = [i for i in items if i.id not in errors]
        written: set[int] = set()
        if ok:
            emb = [_vector_text(vectors[i.id]) if i.id in vectors else None for i in ok]
            model = [t.embedder_name if i.id in vectors else None for i in ok]
            rows = conn.execute(
                sa.text(
                    f"""UPDATE {t.relation} d
SET {q(t.column)} = CAST(v.emb AS {t.vector_type()}), {q(t.hash_column)} = v.h,
    {q(t.model_column)} = v.model
FROM unnest(CAST(:ids AS bigint[]), CAST(:keys AS jsonb[]), CAST(:embs AS text[]),
            CAST(:hashes AS text[]), CAST(:models AS text[])) AS v(id, key, emb, h, model)
WHERE {t.key_match("d", "v.key")} AND {t.text_hash("d")} = v.h
RETURNING v.id"""
                ),
                {
                    "ids": [i.id for i in ok],
                    "keys": [json.dumps(i.key) for i in ok],
                    "embs": emb,
                    "hashes": [i.current for i in ok],
                    "models": model,
                },
            ).scalars()
            written = set(rows)
        done = [i for i in ok if i.id in written]
        # Done: delete unless re-queued for newer text meanwhile (then its hash moved on).
        finished = [*done, *gone]
        if finished:
            conn.execute(
                sa.text(
                    f"DELETE FROM {SCHEMA}.sync_queue q USING unnest(CAST(:ids AS bigint[]),"
                    " CAST(:hashes AS text[])) AS u(id, h) WHERE q.id = u.id AND"
                    " (q.hash = u.h OR u.h IS NULL)"
                ),
                {
                    "ids": [i.id for i in finished],
                    "hashes": [i.current if i in done else None for i in finished],
                },
            )
        dead = 0
        failed = [i for i in items if i.id in errors]
        limit = self.max_attempts or t.max_attempts
        for i in failed:
            attempts = limit if i.id in self._permanent else i.attempts + 1
            self._permanent.discard(i.id)
            if attempts >= limit:
                moved = conn.execute(
                    sa.text(
                        f"WITH d AS (DELETE FROM {SCHEMA}.sync_queue WHERE id = :id AND hash = :h"
                        " RETURNING target, key, hash)"
                        f" INSERT INTO {SCHEMA}.sync_dead (target, key, hash, attempts, error)"
                        " SELECT target, key, hash, :a, :e FROM d ON CONFLICT (target, key)"
                        " DO UPDATE SET hash = EXCLUDED.hash, attempts = EXCLUDED.attempts,"
                        " error = EXCLUDED.error, failed_at = now() RETURNING 1"
                    ),
                    {"id": i.id, "h": i.current, "a": attempts, "e": errors[i.id]},
                ).first()
                if moved is not None:
                    dead += 1
                    log.error(
                        "%s %s: dead letter after %d attempts: %s",
                        t.name,
                        json.dumps(i.key),
                        attempts,
                        errors[i.id],
                    )
                    continue
            delay = min(self.max_backoff, self.backoff * 2**i.attempts) * random.uniform(0.5, 1.5)
            conn.execute(
                sa.text(
                    f"UPDATE {SCHEMA}.sync_queue SET attempts = CASE WHEN hash = :h THEN :a"
                    " ELSE attempts END, last_error = :e, claimed_by = NULL, lease_until = NULL,"
                    " not_before = CASE WHEN hash = :h THEN clock_timestamp()"
                    " + make_interval(secs => :d) ELSE not_before END WHERE id = :id"
                ),
                {"id": i.id, "h": i.current, "a": attempts, "e": errors[i.id], "d": delay},
            )
            log.warning(
                "%s %s: attempt %d failed, retrying in %.1f s: %s",
                t.name,
                json.dumps(i.key),
                attempts,
                delay,
                errors[i.id],
            )
        # Superseded (the text changed while embedding): release for the newer text.
        superseded = [i.id for i in ok if i.id not in written]
        if superseded:
            conn.execute(
                sa.text(
                    f"UPDATE {SCHEMA}.sync_queue SET claimed_by = NULL, lease_until = NULL"
                    " WHERE id = ANY(CAST(:ids AS bigint[]))"
                ),
                {"ids": superseded},
            )
        conn.execute(
            sa.text(f"INSERT INTO {SCHEMA}.sync_log (target, done, failed) VALUES (:t, :d, :f)"),
            {"t": t.name, "d": len(done), "f": len(failed)},
        )
        conn.commit()
        self.stats.done += len(done)
        self.stats.failed += len(failed)
        self.stats.dead += dead
        self.stats.superseded += len(superseded)


@functools.lru_cache(maxsize=16)
def _vector_format(dim: int) -> str:
    return "[" + ",".join(["%.9g"] * dim) + "]"


def _vector_text(vector: Any) -> str:
    """pgvector's text form of a float32 vector. Nine significant digits give back the
    same float32 exactly, and one %-format of the whole row runs in C (3x faster than
    repr per element, and a shorter text for the server to parse)."""
    values = np.asarray(vector, dtype=np.float32).tolist()
    return _vector_format(len(values)) % tuple(values)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    kind = "" if isinstance(exc, EmbedderError) else f"{type(exc).__name__}: "
    return (kind + text)[:2000]


def _is_disconnect(exc: sa.exc.DBAPIError) -> bool:
    return isinstance(exc, sa.exc.OperationalError) or exc.connection_invalidated
