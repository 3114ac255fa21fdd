"""The outbox: a trigger queues every write of a synced column's text in the writer's
transaction, and workers embed the queue with claims, hash-guarded writes, retries and
dead letters. Every test runs against its own table in a database of this module."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import Embedding, SyncError
from vecalchemy.cli import main
from vecalchemy.embedders import HashingEmbedder
from vecalchemy.sync import Worker, content_hash

DIM = 16
HASHING = HashingEmbedder(DIM)


@pytest.fixture(scope="module")
def db(module_db: sa.Engine) -> sa.Engine:
    return module_db


def make_model(table: str, embedder: Any = "hashing:16", **kw: Any) -> Any:
    class Base(DeclarativeBase):
        pass

    class Doc(Base):
        __tablename__ = table
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str | None]
        body: Mapped[str | None]
        views: Mapped[int] = mapped_column(default=0)
        embedding = Embedding(DIM, source=("title", "body"), embedder=embedder, sync="outbox", **kw)

    return Doc


@pytest.fixture
def doc(db: sa.Engine) -> Iterator[Any]:
    """A fresh synced table with its outbox installed."""
    model = make_model(f"outbox_{uuid.uuid4().hex[:8]}")
    model.metadata.create_all(db)
    vecalchemy.sync.install(db, model.embedding)
    yield model
    vecalchemy.sync.uninstall(db, model.embedding)
    model.metadata.drop_all(db)


def target(model: Any) -> str:
    return f"public.{model.__tablename__}.embedding"


def queue(db: sa.Engine, model: Any) -> list[sa.Row[Any]]:
    with db.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT key, hash, attempts, claimed_by FROM vecalchemy.sync_queue"
                    " WHERE target = :t ORDER BY id"
                ),
                {"t": target(model)},
            )
        )


def rows(db: sa.Engine, model: Any) -> dict[int, sa.Row[Any]]:
    with db.connect() as conn:
        found = conn.execute(
            sa.text(
                f"SELECT id, title, body, embedding::text AS e, embedding_source_hash AS h,"
                f" embedding_model AS m FROM {model.__tablename__} ORDER BY id"
            )
        )
        return {r.id: r for r in found}


def assert_current(db: sa.Engine, model: Any) -> None:
    """Every row holds the embedding of its current text, by the installed model."""
    for r in rows(db, model).values():
        text = vecalchemy.sync.source_text([r.title, r.body])
        assert r.h == content_hash(text), r.id
        if text.strip():
            got = np.array(r.e.strip("[]").split(","), dtype=np.float32)
            assert np.array_equal(got, HASHING.embed_documents([text])[0]), r.id  # exact
            assert r.m == HASHING.name
        else:
            assert r.e is None
            assert r.m is None
    assert queue(db, model) == []


def add(db: sa.Engine, model: Any, n: int, start: int = 0) -> None:
    with Session(db) as s:
        s.add_all([model(id=i, title=f"t{i}", body=f"body of row {i}") for i in range(start, n)])
        s.commit()


def work(db: sa.Engine, model: Any, **kw: Any) -> Any:
    with Worker(db, targets=[target(model)], poll_interval=0.1, **kw) as w:
        return w.run(until_idle=True)


# -- the trigger ------------------------------------------------------------------------


def test_insert_queues_in_the_writers_transaction(db: sa.Engine, doc: Any) -> None:
    """Inserted rows are queued with the hash of their text; a rolled-back insert
    queues nothing."""
    add(db, doc, 3)
    got = queue(db, doc)
    assert [(r.key, r.hash) for r in got] == [
        ([i], content_hash(f"t{i}\n\nbody of row {i}")) for i in range(3)
    ]
    with Session(db) as s:
        s.add(doc(id=99, body="never committed"))
        s.flush()
        s.rollback()
    assert len(queue(db, doc)) == 3


def test_only_source_changes_queue(db: sa.Engine, doc: Any) -> None:
    """After the queue is worked off: an update of another column queues nothing, an
    update that sets the same text queues nothing, a text change queues the row once
    (many edits are one item carrying the newest hash)."""
    add(db, doc, 3)
    work(db, doc)
    with db.begin() as conn:
        conn.execute(sa.text(f"UPDATE {doc.__tablename__} SET views = views + 1"))
        conn.execute(sa.text(f"UPDATE {doc.__tablename__} SET body = body"))
    assert queue(db, doc) == []
    for text in ("first edit", "second edit", "third edit"):
        with db.begin() as conn:
            conn.execute(
                sa.text(f"UPDATE {doc.__tablename__} SET body = :b WHERE id = 1"), {"b": text}
            )
    got = queue(db, doc)
    assert [(r.key, r.hash) for r in got] == [([1], content_hash("t1\n\nthird edit"))]


def test_text_changed_back_before_work_is_not_embedded_again(db: sa.Engine, doc: Any) -> None:
    """Text changed and changed back: the item carries the stored vector's hash, and
    the worker finds nothing to change (the row stays current)."""
    add(db, doc, 1)
    work(db, doc)
    with db.begin() as conn:
        conn.execute(sa.text(f"UPDATE {doc.__tablename__} SET body = 'x' WHERE id = 0"))
        conn.execute(sa.text(f"UPDATE {doc.__tablename__} SET body = 'body of row 0' WHERE id = 0"))
    work(db, doc)
    assert_current(db, doc)


def test_delete_and_truncate_remove_queued_work(db: sa.Engine, doc: Any) -> None:
    """A deleted row's queued item goes with it; TRUNCATE empties the target's queue."""
    add(db, doc, 5)
    with db.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM {doc.__tablename__} WHERE id IN (1, 3)"))
    assert [r.key for r in queue(db, doc)] == [[0], [2], [4]]
    with db.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {doc.__tablename__}"))
    assert queue(db, doc) == []


def test_key_change_moves_the_item(db: sa.Engine, doc: Any) -> None:
    """An update of the primary key removes the old key's item and queues the new key."""
    add(db, doc, 1)
    with db.begin() as conn:
        conn.execute(sa.text(f"UPDATE {doc.__tablename__} SET id = 7, body = 'moved'"))
    assert [r.key for r in queue(db, doc)] == [[7]]
    work(db, doc)
    assert_current(db, doc)


# -- the worker -------------------------------------------------------------------------


def test_worker_embeds_the_queue(db: sa.Engine, doc: Any) -> None:
    """150 rows in batches of 64: every row gets its text's embedding, hash and model;
    the queue is empty; status counts them."""
    add(db, doc, 150)
    [before] = vecalchemy.sync.status(db, [target(doc)])
    assert before.queued == 150
    assert before.lag_seconds > 0
    assert before.dead == 0
    stats = work(db, doc, batch_size=64)
    assert (stats.done, stats.failed, stats.batches) == (150, 0, 3)
    assert_current(db, doc)
    [after] = vecalchemy.sync.status(db, [target(doc)])
    assert (after.queued, after.lag_seconds, after.done_last_minute) == (0, 0.0, 150)


def test_search_after_work_finds_edited_rows(db: sa.Engine, doc: Any) -> None:
    """An edited row is found by its new text once the worker ran."""
    add(db, doc, 40)
    with db.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE {doc.__tablename__} SET body = 'volcanic basalt columns' WHERE id = 9")
        )
    work(db, doc)
    with Session(db) as s:
        q = HASHING.embed_query("volcanic basalt")
        assert vecalchemy.search(s, doc.embedding, q, k=1)[0].row.id == 9


class Editing:
    """An embedder that edits a row's text while it embeds (the write of an older text
    must lose to the newer edit)."""

    def __init__(self, db: sa.Engine, table: str) -> None:
        self.db, self.table, self.edited = db, table, False
        self.dim, self.name = HASHING.dim, HASHING.name

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not self.edited:
            self.edited = True
            with self.db.begin() as conn:
                conn.execute(
                    sa.text(f"UPDATE {self.table} SET body = 'edited meanwhile' WHERE id = 0")
                )
        return HASHING.embed_documents(texts)

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        return HASHING.embed_query(text)

    async def aembed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> npt.NDArray[np.float32]:
        return self.embed_query(text)


def test_a_newer_edit_wins(db: sa.Engine, doc: Any) -> None:
    """The row's text changes while the worker embeds the old text: the old vector is not
    written, the item stays queued for the new text, and the next batch embeds that."""
    add(db, doc, 3)
    embedder = Editing(db, doc.__tablename__)
    with Worker(db, targets=[target(doc)], embedders={target(doc): embedder}) as w:
        assert w.run_once() == 3
        assert (w.stats.done, w.stats.superseded) == (2, 1)
        r = rows(db, doc)[0]
        assert r.e is None
        assert r.h is None
        [item] = queue(db, doc)
        assert item.key == [0]
        assert item.claimed_by is None
        assert item.hash == content_hash("t0\n\nedited meanwhile")
        assert w.run_once() == 1
    assert_current(db, doc)


def test_rows_deleted_while_queued_are_dropped(db: sa.Engine, doc: Any) -> None:
    """A row deleted between claim and write is skipped and its item is gone."""
    add(db, doc, 2)
    with Worker(db, targets=[target(doc)]) as w:
        items = w._claim()
        with db.begin() as conn:
            # The trigger deletes the queue item too; re-insert it as a worker would find
            # it if the delete came after its read.
            conn.execute(sa.text(f"DELETE FROM {doc.__tablename__} WHERE id = 1"))
        w._process(w._known[target(doc)], items)
    assert queue(db, doc) == []
    assert list(rows(db, doc)) == [0]
    assert_current(db, doc)


class Poison:
    """Raises for texts with POISON, returns NaN for NAN and a wrong dimension for WIDE."""

    dim, name = HASHING.dim, HASHING.name

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if any("POISON" in t for t in texts):
            raise RuntimeError("model crashed on a poisoned text")
        out = HASHING.embed_documents(texts)
        if any("WIDE" in t for t in texts):
            return np.hstack([out, out])
        for n, t in enumerate(texts):
            if "NAN" in t:
                out[n, 0] = np.nan
        return out

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        return HASHING.embed_query(text)

    async def aembed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> npt.NDArray[np.float32]:
        return self.embed_query(text)


def test_failures_retry_then_dead_letter(db: sa.Engine, doc: Any) -> None:
    """Bad inputs fail alone (the batch is retried text by text), are retried
    max_attempts times, then land in the dead-letter table with their error; their
    embedding stays NULL; the others finish. retry() requeues them."""
    add(db, doc, 10)
    bad = {2: "POISON", 5: "NAN", 7: "WIDE"}
    with db.begin() as conn:
        for i, word in bad.items():
            conn.execute(
                sa.text(f"UPDATE {doc.__tablename__} SET body = :b WHERE id = :i"),
                {"b": f"a {word} text", "i": i},
            )
    t = target(doc)
    stats = work(db, doc, embedders={t: Poison()}, max_attempts=3, backoff=0)
    assert (stats.done, stats.dead, stats.failed) == (7, 3, 9)
    with db.connect() as conn:
        dead = {
            r.key[0]: (r.attempts, r.error)
            for r in conn.execute(
                sa.text("SELECT key, attempts, error FROM vecalchemy.sync_dead WHERE target = :t"),
                {"t": t},
            )
        }
    assert set(dead) == set(bad)
    assert dead[2] == (3, "RuntimeError: model crashed on a poisoned text")
    assert "NaN" in dead[5][1]
    assert "32 dimensions, expected 16" in dead[7][1]
    got = rows(db, doc)
    assert all(got[i].e is None and got[i].h is None for i in bad)
    assert all(got[i].e is not None for i in got if i not in bad)
    [s] = vecalchemy.sync.status(db, [t])
    assert (s.dead, s.queued) == (3, 0)
    # Fixing a row's text replaces its dead letter with fresh work.
    with db.begin() as conn:
        conn.execute(sa.text(f"UPDATE {doc.__tablename__} SET body = 'fixed' WHERE id = 2"))
    assert vecalchemy.sync.status(db, [t])[0].dead == 2
    assert vecalchemy.sync.retry(db, [t]) == 2
    work(db, doc)
    assert_current(db, doc)


def test_backoff_delays_the_retry(db: sa.Engine, doc: Any) -> None:
    """A failed item is not ready again before its backoff ends."""
    add(db, doc, 1)
    with db.begin() as conn:
        conn.execute(sa.text(f"UPDATE {doc.__tablename__} SET body = 'POISON' WHERE id = 0"))
    t = target(doc)
    with Worker(db, targets=[t], embedders={t: Poison()}, backoff=30) as w:
        assert w.run_once() == 1
        assert w.run_once() == 0  # backing off: at least 15 s with the jitter
    with db.connect() as conn:
        wait = conn.execute(
            sa.text(
                "SELECT extract(epoch FROM not_before - now()), attempts, last_error"
                " FROM vecalchemy.sync_queue WHERE target = :t"
            ),
            {"t": t},
        ).one()
    assert 14 < wait[0] <= 45
    assert wait[1] == 1
    assert "poisoned" in wait[2]


def test_blank_text_gets_no_embedding(db: sa.Engine, doc: Any) -> None:
    """Rows without text get a NULL embedding and no dead letter; text changed to blank
    loses its old vector."""
    with Session(db) as s:
        s.add_all(
            [
                doc(id=1, title=None, body=None),
                doc(id=2, title=None, body=""),
                doc(id=3, title="t", body="words"),
            ]
        )
        s.commit()
    work(db, doc)
    with db.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE {doc.__tablename__} SET title = NULL, body = ' ' WHERE id = 3")
        )
    stats = work(db, doc)
    assert stats.dead == 0
    assert all(r.e is None for r in rows(db, doc).values())
    assert_current(db, doc)


def test_a_killed_workers_claim_is_taken_over(db: sa.Engine, doc: Any) -> None:
    """Items claimed by a connection that is gone (its pid no longer in pg_stat_activity)
    are claimed again at once, without waiting for the lease."""
    add(db, doc, 5)
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE vecalchemy.sync_queue SET claimed_by = 2147483000,"
                " lease_until = now() + interval '1 hour' WHERE target = :t"
            ),
            {"t": target(doc)},
        )
    assert work(db, doc).done == 5
    assert_current(db, doc)


def test_a_live_claim_is_not_taken(db: sa.Engine, doc: Any) -> None:
    """Two workers never embed the same item: the second one finds it claimed."""
    add(db, doc, 4)
    t = target(doc)
    with Worker(db, targets=[t], batch_size=2) as a, Worker(db, targets=[t], batch_size=10) as b:
        first = a._claim()
        second = b._claim()
        assert len(first) == 2
        assert len(second) == 2
        assert {i.id for i in first}.isdisjoint({i.id for i in second})


def test_notification_wakes_a_waiting_worker(db: sa.Engine, doc: Any) -> None:
    """A worker waiting with a 30 s poll interval embeds a new row within a few seconds
    (LISTEN/NOTIFY), and stop() ends its loop promptly."""
    t = target(doc)
    w = Worker(db, targets=[t], poll_interval=30)
    thread = threading.Thread(target=w.run)
    thread.start()
    try:
        time.sleep(0.5)
        add(db, doc, 1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and rows(db, doc)[0].e is None:
            time.sleep(0.05)
        assert rows(db, doc)[0].e is not None
    finally:
        w.stop()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert_current(db, doc)


def test_worker_refuses_another_model(db: sa.Engine, doc: Any) -> None:
    """A worker given an embedder of another name than the installed one refuses."""
    add(db, doc, 1)
    t = target(doc)
    with (
        Worker(db, targets=[t], embedders={t: HashingEmbedder(16, seed=1)}) as w,
        pytest.raises(SyncError, match="never mixes two models"),
    ):
        w.run(until_idle=True)
    assert rows(db, doc)[0].e is None


# -- install, backfill ------------------------------------------------------------------


def test_backfill_queues_rows_written_before_install(db: sa.Engine) -> None:
    """Rows already in the table are queued by backfill (resumably, in batches); a
    second backfill queues nothing; rows of another model are stale and queued."""
    model = make_model(f"outbox_{uuid.uuid4().hex[:8]}")
    model.metadata.create_all(db)
    add(db, model, 25)
    vecalchemy.sync.install(db, model.embedding)
    try:
        assert queue(db, model) == []
        seen: list[tuple[int, int]] = []

        def interrupt(done: int, total: int) -> None:
            seen.append((done, total))
            if len(seen) == 2:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            vecalchemy.sync.backfill(db, model.embedding, batch_size=10, progress=interrupt)
        assert len(queue(db, model)) == 20
        seen.clear()
        assert (
            vecalchemy.sync.backfill(
                db, model.embedding, batch_size=10, progress=lambda d, t: seen.append((d, t))
            )
            == 5
        )
        assert seen[-1] == (25, 25)
        work(db, model)
        assert_current(db, model)
        assert vecalchemy.sync.backfill(db, model.embedding) == 0
        with db.begin() as conn:
            # Vectors of another model, as written before the guard trigger existed.
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            conn.execute(
                sa.text(f"UPDATE {model.__tablename__} SET embedding_model = 'old' WHERE id < 3")
            )
        assert vecalchemy.sync.backfill(db, model.embedding) == 3
    finally:
        vecalchemy.sync.uninstall(db, model.embedding)
        model.metadata.drop_all(db)


def test_install_errors_write_nothing(db: sa.Engine) -> None:
    """install() on an inline column, on a table not created yet, or with an embedder of
    another dimension raises with the fix; no target is registered."""

    class Base(DeclarativeBase):
        pass

    class Inline(Base):
        __tablename__ = f"outbox_{uuid.uuid4().hex[:8]}"
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str]
        embedding = Embedding(DIM, source="body", embedder="hashing:16")

    with pytest.raises(SyncError, match="declared with sync='inline'"):
        vecalchemy.sync.install(db, Inline.embedding)
    missing = make_model(f"outbox_{uuid.uuid4().hex[:8]}")
    with pytest.raises(SyncError, match=r"has no column .*create the table"):
        vecalchemy.sync.install(db, missing.embedding)
    with pytest.raises(vecalchemy.EmbedderError, match="32-dimension"):
        vecalchemy.sync.install(db, missing.embedding, embedder="hashing:32")
    with db.connect() as conn:
        names = conn.execute(sa.text("SELECT target FROM vecalchemy.sync_targets")).scalars().all()
        triggers = conn.execute(
            sa.text("SELECT count(*) FROM pg_proc WHERE proname LIKE 'enqueue_%'")
        ).scalar()
    assert target(missing) not in names
    assert target(Inline) not in names
    assert triggers == 2 * len(names)
    with pytest.raises(SyncError, match=r"no synced column 'public.nope.embedding'"):
        vecalchemy.sync.backfill(db, "nope.embedding")


def test_install_is_idempotent_and_concurrent(db: sa.Engine) -> None:
    """Four threads installing the same column at once all succeed; one target results."""
    model = make_model(f"outbox_{uuid.uuid4().hex[:8]}")
    model.metadata.create_all(db)
    errors: list[BaseException] = []

    def go() -> None:
        try:
            vecalchemy.sync.install(db, model.embedding)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    try:
        assert errors == []
        assert [s.target for s in vecalchemy.sync.status(db, [target(model)])] == [target(model)]
        add(db, model, 2)
        assert len(queue(db, model)) == 2  # one trigger, not four
    finally:
        vecalchemy.sync.uninstall(db, model.embedding)
        model.metadata.drop_all(db)


def test_install_statements_run_in_a_migration(db: sa.Engine) -> None:
    """install_statements() is plain SQL a migration can op.execute(): run one by one,
    they install a working trigger, guard and registry entry (workers find the target)."""
    model = make_model(f"outbox_{uuid.uuid4().hex[:8]}")
    model.metadata.create_all(db)
    from vecalchemy.sync._targets import target_for

    statements = vecalchemy.sync.install_statements(target_for(model.embedding))
    assert all(isinstance(stmt, str) for stmt in statements)
    with db.begin() as conn:
        for stmt in statements:
            conn.exec_driver_sql(stmt)
    try:
        add(db, model, 3)
        assert len(queue(db, model)) == 3
        assert work(db, model).done == 3
        assert_current(db, model)
    finally:
        vecalchemy.sync.uninstall(db, model.embedding)
        model.metadata.drop_all(db)


# -- the CLI ----------------------------------------------------------------------------


def test_cli_status_backfill_worker_retry(db: sa.Engine, doc: Any) -> None:
    """vecalchemy sync status --json, worker --until-idle --json, sync backfill and sync
    retry against the same database."""
    url = db.url.render_as_string(hide_password=False)
    runner = CliRunner()
    add(db, doc, 12)
    t = target(doc)
    out = runner.invoke(
        main, ["sync", "status", "--url", url, "--target", t, "--json"], catch_exceptions=False
    )
    assert out.exit_code == 0
    [s] = json.loads(out.output)
    assert s["target"] == t
    assert s["queued"] == 12
    out = runner.invoke(
        main,
        ["worker", "--url", url, "--target", t, "--until-idle", "--json", "--poll-interval", "0.1"],
        catch_exceptions=False,
    )
    assert out.exit_code == 0
    assert json.loads(out.output.strip().splitlines()[-1])["done"] == 12
    assert_current(db, doc)
    with db.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE {doc.__tablename__} SET embedding_source_hash = NULL WHERE id < 4")
        )
    out = runner.invoke(
        main,
        ["sync", "backfill", t.removeprefix("public."), "--url", url, "--json"],
        catch_exceptions=False,
    )
    assert json.loads(out.output) == {"target": t, "queued": 4}
    out = runner.invoke(
        main, ["sync", "retry", "--url", url, "--target", t], catch_exceptions=False
    )
    assert out.output.strip() == "requeued 0 dead letters"
    out = runner.invoke(main, ["sync", "status", "--url", url, "--target", t])
    assert t in out.output
    assert out.exit_code == 0
    out = runner.invoke(main, ["sync", "backfill", "nope.embedding", "--url", url])
    assert out.exit_code == 1
    assert "no synced column 'public.nope.embedding'" in out.output


class Windowed(Poison):
    """Window of 8 tokens (words plus two specials)."""

    max_tokens = 8

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 2


def test_text_beyond_the_window_is_a_dead_letter_at_once(db: sa.Engine, doc: Any) -> None:
    """A row whose text is longer than the model's window goes to the dead letters on
    its first attempt (no retry can make it fit), with the token counts; no vector."""
    add(db, doc, 2)
    long_text = " ".join(f"w{i}" for i in range(20))
    with db.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE {doc.__tablename__} SET body = :b WHERE id = 1"), {"b": long_text}
        )
    t = target(doc)
    stats = work(db, doc, embedders={t: Windowed()})
    assert (stats.done, stats.dead, stats.failed) == (1, 1, 1)
    with db.connect() as conn:
        attempts, error = conn.execute(
            sa.text("SELECT attempts, error FROM vecalchemy.sync_dead WHERE target = :t"),
            {"t": t},
        ).one()
    assert attempts == 5
    assert "23 tokens but" in error
    assert "reads at most 8" in error
    assert rows(db, doc)[1].e is None
