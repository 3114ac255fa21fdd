"""The outbox under failure: real worker processes, signals, concurrent writers, poison
inputs and a database restart, against a real PostgreSQL.

Every test ends with the same check (:func:`assert_in_sync`): each row's stored hash is
the content hash of its current text, its vector is ``HashingEmbedder(16)``'s vector of
that text (NULL for an empty text), its model is that embedder's name, and nothing is
left in the queue; the dead-letter test checks its poisoned rows apart.

The tests share one fresh database (its own ``vecalchemy`` schema); each makes its own
table, so each has its own target, and every worker is limited to that target. Worker
processes run ``python -m vecalchemy worker`` or, where a batch must take a while,
``tests/sync_worker_proc.py`` (the same worker with a slow embedder). Their counts
(``--json``) go to stdout, their logs to a file under ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import NullPool

import vecalchemy
import vecalchemy.sync
from tests.conftest import FAST_SETTINGS
from vecalchemy import Embedding
from vecalchemy.embedders import HashingEmbedder
from vecalchemy.errors import EmbedderError
from vecalchemy.sync import Worker, content_hash, source_text

HASHING = HashingEmbedder(16)
#: Where the vecalchemy under test lives, for the worker processes' PYTHONPATH.
SRC = Path(vecalchemy.__file__).resolve().parents[1]
SLOW_WORKER = Path(__file__).with_name("sync_worker_proc.py")

WORDS = [
    *("postgres", "vector", "index", "search", "query", "table", "column", "embedding"),
    *("model", "text", "queue", "worker", "trigger", "batch", "lease", "claim", "signal"),
    *("restart", "commit", "rollback", "cluster", "replica", "shard", "cache"),
]


# -- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def db_url(module_db_url: URL) -> URL:
    return module_db_url


@pytest.fixture(scope="module")
def db(module_db: Engine) -> Engine:
    return module_db


def url_text(url: URL | str) -> str:
    return url if isinstance(url, str) else url.render_as_string(hide_password=False)


def make_doc(engine: Engine, rows: int, *, seed: int = 0) -> tuple[type[Any], str]:
    """A new table ``docs_<random>`` with ``rows`` rows, its outbox installed first (so
    the inserts queue every row); returns the model and its target name."""

    class Base(DeclarativeBase):
        pass

    class Doc(Base):
        __tablename__ = f"docs_{uuid.uuid4().hex[:8]}"
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str | None]
        embedding = Embedding(16, source="body", embedder="hashing:16", sync="outbox")

    Base.metadata.create_all(engine)
    target = vecalchemy.sync.install(engine, Doc.embedding).name
    rng = random.Random(seed)
    if rows:
        with engine.begin() as conn:
            conn.execute(
                sa.insert(Doc.__table__),
                [{"id": i, "body": random_text(rng, i)} for i in range(1, rows + 1)],
            )
    return Doc, target


def random_text(rng: random.Random, i: int) -> str:
    return f"document {i} " + " ".join(rng.choices(WORDS, k=rng.randint(3, 12)))


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def queued(engine: Engine, target: str) -> int:
    return int(
        scalar(engine, "SELECT count(*) FROM vecalchemy.sync_queue WHERE target = :t", t=target)
    )


def embedded(engine: Engine, doc: type[Any]) -> int:
    return int(scalar(engine, f"SELECT count(embedding) FROM {doc.__tablename__}"))


def assert_in_sync(engine: Engine, doc: type[Any], target: str, *, skip: Sequence[int] = ()) -> int:
    """Every row (but ``skip``) holds the vector of its current text, made by
    ``HashingEmbedder(16)``, and the target's queue is empty. Returns the rows checked."""
    t = doc.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                t.c.id, t.c.body, t.c.embedding, t.c.embedding_source_hash, t.c.embedding_model
            )
            .where(t.c.id.not_in(list(skip)))
            .order_by(t.c.id)
        ).all()
    texts = [source_text([r.body]) for r in rows]
    nonempty = [s for s in texts if s.strip()]
    expected = (
        dict(zip(nonempty, HASHING.embed_documents(nonempty), strict=True)) if nonempty else {}
    )
    for r, text in zip(rows, texts, strict=True):
        assert r.embedding_source_hash == content_hash(text), f"row {r.id}: stale hash"
        if text.strip():
            assert r.embedding_model == HASHING.name, f"row {r.id}"
            assert r.embedding is not None, f"row {r.id}: no embedding"
            assert np.allclose(np.asarray(r.embedding), expected[text], atol=1e-6), f"row {r.id}"
        else:
            assert r.embedding is None, f"row {r.id}: a vector for an empty text"
            assert r.embedding_model is None, f"row {r.id}"
    assert queued(engine, target) == 0
    return len(rows)


@dataclass
class Proc:
    """A worker process, its log file, and (once it exited) its JSON counts."""

    popen: subprocess.Popen[str]
    log: Path
    _out: Any
    _err: Any

    @property
    def pid(self) -> int:
        return self.popen.pid

    def finish(self, timeout: float) -> tuple[int, dict[str, int] | None]:
        """Wait for the exit; its code and the counts it printed (None if none)."""
        try:
            rc = self.popen.wait(timeout=timeout)
        finally:
            self._out.close()
            self._err.close()
        lines = self.log.with_suffix(".out").read_text().strip().splitlines()
        return rc, json.loads(lines[-1]) if lines else None

    def logs(self) -> str:
        return self.log.read_text()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start a worker process (``python -m vecalchemy ...`` or a script); any still
    running at the end of the test is killed."""
    started: list[Proc] = []

    def start(*args: str) -> Proc:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
        log = tmp_path / f"worker-{len(started)}.log"
        out = open(log.with_suffix(".out"), "w")  # noqa: SIM115 - closed by Proc.finish
        err = open(log, "w")  # noqa: SIM115
        popen = subprocess.Popen(
            [sys.executable, *args], stdout=out, stderr=err, text=True, env=env, cwd=tmp_path
        )
        proc = Proc(popen, log, out, err)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.popen.poll() is None:
            proc.popen.kill()
        if not proc._out.closed:
            proc.finish(timeout=30)


def cli_worker(url: URL | str, target: str, *extra: str) -> list[str]:
    return ["-m", "vecalchemy", "worker", "--url", url_text(url), "--target", target, *extra]


def slow_worker(url: URL | str, target: str, *, delay: float, batch_size: int) -> list[str]:
    return [
        str(SLOW_WORKER),
        "--url",
        url_text(url),
        "--target",
        target,
        "--delay",
        str(delay),
        "--batch-size",
        str(batch_size),
    ]


def wait_for(what: str, check: Callable[[], Any], timeout: float, *procs: Proc) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds
    with the workers' logs (and fail at once if a worker exited)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        for p in procs:
            assert p.popen.poll() is None, f"worker exited ({p.popen.returncode}):\n{p.logs()}"
        time.sleep(0.05)
    logs = "\n".join(p.logs()[-3000:] for p in procs)
    pytest.fail(f"timed out after {timeout} s waiting for {what}\n{logs}")


def wait_drained(engine: Engine, target: str, timeout: float, *procs: Proc) -> None:
    """Wait until the target's queue is empty; fail with its status after ``timeout``."""
    try:
        wait_for("an empty queue", lambda: queued(engine, target) == 0, timeout, *procs)
    except pytest.fail.Exception as exc:
        (s,) = vecalchemy.sync.status(engine, [target])
        pytest.fail(f"{exc}\nstatus: {s.as_dict()}")


def listeners(engine: Engine) -> int:
    """How many connections to this database listen for the outbox's notifications."""
    return int(
        scalar(
            engine,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND query = 'LISTEN vecalchemy_sync'",
        )
    )


def claims(engine: Engine, target: str) -> list[tuple[int, int]]:
    """(row id, claiming backend pid) of the target's claimed queue items."""
    with engine.connect() as conn:
        return [
            (int(r[0]), int(r[1]))
            for r in conn.execute(
                sa.text(
                    "SELECT (key->>0)::int, claimed_by FROM vecalchemy.sync_queue"
                    " WHERE target = :t AND claimed_by IS NOT NULL ORDER BY 1"
                ),
                {"t": target},
            )
        ]


# -- 1. SIGKILL mid-batch -------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_mid_batch_loses_nothing(
    db: Engine, db_url: URL, spawn: Callable[..., Proc]
) -> None:
    """A worker killed with SIGKILL while it embeds a batch leaves its claims behind; a
    second worker takes them over (the claiming backend is gone), and every row, also
    those whose text changed while claimed, ends with the vector of its current text."""
    doc, target = make_doc(db, 300, seed=1)
    assert queued(db, target) == 300
    killed = spawn(*slow_worker(db_url, target, delay=3.0, batch_size=50))
    held = wait_for("a claimed batch", lambda: claims(db, target), 30, killed)
    assert len(held) == 50  # one claim transaction: the whole batch at once
    assert len({pid for _, pid in held}) == 1
    claimed_ids = [i for i, _ in held]
    unclaimed_ids = sorted(set(range(1, 301)) - set(claimed_ids))
    changed = claimed_ids[:5] + unclaimed_ids[:5]
    with db.begin() as conn:
        for i in changed:
            conn.execute(
                sa.update(doc.__table__).where(doc.__table__.c.id == i).values(body=f"edited {i}")
            )
    assert embedded(db, doc) == 0  # killed before it wrote anything
    os.kill(killed.pid, signal.SIGKILL)
    rc, counts = killed.finish(timeout=10)
    assert rc == -signal.SIGKILL
    assert counts is None
    assert queued(db, target) == 300  # the edits re-hashed queued items, none added

    second = spawn(*cli_worker(db_url, target, "--until-idle", "--json", "--poll-interval", "0.2"))
    rc, counts = second.finish(timeout=60)
    assert rc == 0, second.logs()
    assert counts is not None
    assert (counts["done"], counts["failed"], counts["dead"], counts["superseded"]) == (
        300,
        0,
        0,
        0,
    )
    assert assert_in_sync(db, doc, target) == 300
    with db.connect() as conn:
        bodies = dict(conn.execute(sa.text(f"SELECT id, body FROM {doc.__tablename__}")).all())
    assert all(bodies[i] == f"edited {i}" for i in changed)
    print(f"killed worker held {len(held)} claims; {counts['done']} rows done by the second")


# -- 2. concurrent writers and workers ------------------------------------------------------


@pytest.mark.slow
def test_writers_and_three_workers_converge(
    db: Engine, db_url: URL, spawn: Callable[..., Proc]
) -> None:
    """Four threads rewriting the same 200 rows while three worker processes embed them:
    once the writers stop the queue drains, SIGTERM stops each worker with exit code 0,
    and every row holds the vector of its last text (no older embedding wins)."""
    doc, target = make_doc(db, 200, seed=2)
    workers = [
        spawn(*cli_worker(db_url, target, "--poll-interval", "0.2", "--batch-size", "20", "--json"))
        for _ in range(3)
    ]
    # The writers start once all three are up: each has a LISTEN connection once it
    # found nothing to claim.
    wait_drained(db, target, 60, *workers)
    wait_for("three listening workers", lambda: listeners(db) == 3, 30, *workers)
    updates_per_writer = 100

    def write(seed: int) -> int:
        rng = random.Random(seed)
        n = 0
        for _ in range(updates_per_writer):
            i = rng.randint(1, 200)
            with db.begin() as conn:
                n += conn.execute(
                    sa.update(doc.__table__)
                    .where(doc.__table__.c.id == i)
                    .values(body=random_text(rng, i))
                ).rowcount
            time.sleep(rng.uniform(0, 0.05))
        return n

    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        done = [f.result() for f in [pool.submit(write, s) for s in range(4)]]
    writing = time.monotonic() - started
    assert done == [updates_per_writer] * 4
    wait_drained(db, target, 60, *workers)
    drained = time.monotonic() - started
    for w in workers:
        w.popen.send_signal(signal.SIGTERM)
    results = [w.finish(timeout=30) for w in workers]
    assert [rc for rc, _ in results] == [0, 0, 0], "\n".join(w.logs() for w in workers)
    counts = [c for _, c in results]
    assert all(c is not None for c in counts)
    assert sum(c["failed"] for c in counts) == 0  # type: ignore[index]
    assert sum(c["dead"] for c in counts) == 0  # type: ignore[index]
    assert scalar(db, "SELECT count(*) FROM vecalchemy.sync_dead WHERE target = :t", t=target) == 0
    assert assert_in_sync(db, doc, target) == 200
    print(
        f"400 updates in {writing:.1f} s, queue empty {drained:.1f} s after the first; workers: "
        + "; ".join(f"done {c['done']} superseded {c['superseded']}" for c in counts)  # type: ignore[index]
    )


# -- 3. poison inputs -----------------------------------------------------------------------


class Poisoned:
    """``HashingEmbedder(16)``, except that it raises for a text containing POISON,
    returns NaN for NAN and a vector of 17 dimensions for WIDE."""

    def __init__(self) -> None:
        self.inner = HashingEmbedder(16)
        self.calls = 0

    @property
    def dim(self) -> int:
        return 16

    @property
    def name(self) -> str:
        return self.inner.name

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        if any("POISON" in t for t in texts):
            raise EmbedderError("the model rejected a POISON text")
        out = self.inner.embed_documents(texts)
        if any("WIDE" in t for t in texts):
            return np.hstack([out, np.ones((len(texts), 1), dtype=np.float32)])
        for n, t in enumerate(texts):
            if "NAN" in t:
                out[n, 3] = np.nan
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


def test_poison_inputs_become_dead_letters(db: Engine) -> None:
    """Texts the embedder fails on (an exception, NaN, the wrong dimension) are retried
    ``max_attempts`` times and then land in ``sync_dead`` with the cause, their embedding
    NULL; the other rows are embedded. Fixing a poisoned row's text removes its dead
    letter and embeds it; ``retry`` requeues the rest with fresh attempts."""
    doc, target = make_doc(db, 20, seed=3)
    poison = {21: "a POISON pill", 22: "more POISON here", 23: "a NAN text", 24: "too WIDE text"}
    with db.begin() as conn:
        conn.execute(sa.insert(doc.__table__), [{"id": i, "body": b} for i, b in poison.items()])
    embedder = Poisoned()
    worker = Worker(db, targets=[target], embedders={target: embedder}, max_attempts=3, backoff=0)
    stats = worker.run(until_idle=True)
    assert (stats.done, stats.failed, stats.dead, stats.superseded) == (20, 12, 4, 0)
    with db.connect() as conn:
        dead = {
            int(r.id): r
            for r in conn.execute(
                sa.text(
                    "SELECT (key->>0)::int AS id, attempts, error, hash FROM vecalchemy.sync_dead"
                    " WHERE target = :t"
                ),
                {"t": target},
            )
        }
        stored = conn.execute(
            sa.text(
                f"SELECT id FROM {doc.__tablename__} WHERE id > 20 AND (embedding IS NOT NULL"
                " OR embedding_model IS NOT NULL OR embedding_source_hash IS NOT NULL)"
            )
        ).all()
    assert sorted(dead) == [21, 22, 23, 24]
    assert all(d.attempts == 3 for d in dead.values())
    assert all(d.hash == content_hash(poison[i]) for i, d in dead.items())
    assert "POISON" in dead[21].error
    assert "POISON" in dead[22].error
    assert "NaN" in dead[23].error
    assert "17 dimensions" in dead[24].error
    assert stored == []  # never a corrupt (or any) vector for a poisoned row
    assert assert_in_sync(db, doc, target, skip=list(poison)) == 20

    # Fixing the text: the trigger drops the dead letter and queues the row.
    with db.begin() as conn:
        conn.execute(
            sa.update(doc.__table__).where(doc.__table__.c.id == 21).values(body="a harmless pill")
        )
    assert scalar(db, "SELECT count(*) FROM vecalchemy.sync_dead WHERE target = :t", t=target) == 3
    assert queued(db, target) == 1
    stats = Worker(db, targets=[target], embedders={target: embedder}).run(until_idle=True)
    assert (stats.done, stats.failed) == (1, 0)
    assert assert_in_sync(db, doc, target, skip=[22, 23, 24]) == 21

    # retry: the three left go back to the queue with fresh attempts.
    assert vecalchemy.sync.retry(db, [target]) == 3
    with db.connect() as conn:
        requeued = conn.execute(
            sa.text(
                "SELECT (key->>0)::int, attempts, last_error, claimed_by FROM"
                " vecalchemy.sync_queue WHERE target = :t ORDER BY 1"
            ),
            {"t": target},
        ).all()
    assert [tuple(r) for r in requeued] == [
        (22, 0, None, None),
        (23, 0, None, None),
        (24, 0, None, None),
    ]
    assert scalar(db, "SELECT count(*) FROM vecalchemy.sync_dead WHERE target = :t", t=target) == 0
    (s,) = vecalchemy.sync.status(db, [target])
    assert (s.queued, s.dead, s.in_progress) == (3, 0, 0)
    # Still poisonous: three attempts each, and dead letters again.
    stats = Worker(
        db, targets=[target], embedders={target: embedder}, max_attempts=3, backoff=0
    ).run(until_idle=True)
    assert (stats.done, stats.failed, stats.dead) == (0, 9, 3)
    assert queued(db, target) == 0


def test_reverted_edit_leaves_nothing_queued(db: Engine) -> None:
    """An edit undone before a worker reaches it (A, then B, then A again) leaves the
    row current: the queue drains, and no claim is left behind, even with a short lease
    and several batches to go."""
    doc, target = make_doc(db, 3, seed=7)
    assert Worker(db, targets=[target]).run(until_idle=True).done == 3
    t = doc.__table__
    with db.connect() as conn:
        original = conn.execute(sa.select(t.c.body).where(t.c.id == 2)).scalar_one()
    for body in ("an edit about to be undone", original):
        with db.begin() as conn:
            conn.execute(sa.update(t).where(t.c.id == 2).values(body=body))
    worker = Worker(db, targets=[target], lease_seconds=1, poll_interval=0.2)
    worker.run(until_idle=True, max_batches=3)
    assert worker.stats.failed == 0
    assert claims(db, target) == []
    assert assert_in_sync(db, doc, target) == 3


def test_reverted_poison_edit_drops_its_dead_letter(db: Engine) -> None:
    """A row whose new text became a dead letter, then edited back to the text its
    vector was made from, is current again: its dead letter goes, nothing is queued,
    and it keeps that vector."""
    doc, target = make_doc(db, 2, seed=8)
    embedder = Poisoned()
    assert Worker(db, targets=[target], embedders={target: embedder}).run(until_idle=True).done == 2
    t = doc.__table__
    with db.connect() as conn:
        original = conn.execute(sa.select(t.c.body).where(t.c.id == 1)).scalar_one()
    with db.begin() as conn:
        conn.execute(sa.update(t).where(t.c.id == 1).values(body="now a POISON text"))
    stats = Worker(
        db, targets=[target], embedders={target: embedder}, max_attempts=2, backoff=0
    ).run(until_idle=True)
    assert (stats.done, stats.failed, stats.dead) == (0, 2, 1)
    with db.begin() as conn:
        conn.execute(sa.update(t).where(t.c.id == 1).values(body=original))
    assert scalar(db, "SELECT count(*) FROM vecalchemy.sync_dead WHERE target = :t", t=target) == 0
    assert vecalchemy.sync.status(db, [target])[0].dead == 0
    assert assert_in_sync(db, doc, target) == 2


# -- 4. database restart --------------------------------------------------------------------


@pytest.fixture
def own_server() -> Iterator[vecalchemy.server.EmbeddedServer]:
    """A server of the test's own, to restart. Not under tmp_path: as root the server
    runs as another user, who cannot enter pytest's 0700 directories."""
    from vecalchemy.server import EmbeddedServer

    data_dir = Path(tempfile.mkdtemp(prefix="vecalchemy-restart-"))
    server = EmbeddedServer(data_dir, settings=FAST_SETTINGS)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.mark.slow
def test_workers_survive_a_database_restart(own_server: Any, spawn: Callable[..., Proc]) -> None:
    """Two workers embedding while the server stops and starts again: they reconnect
    (with backoff), take over the claims the restart orphaned, and finish every row;
    they are still running afterwards and exit 0 on SIGTERM, reporting reconnects."""
    url = own_server.url()
    engine = vecalchemy.create_engine(url, poolclass=NullPool)
    try:
        doc, target = make_doc(engine, 400, seed=4)
        workers = [spawn(*slow_worker(url, target, delay=0.3, batch_size=20)) for _ in range(2)]
        wait_for("100 embedded rows", lambda: embedded(engine, doc) >= 100, 60, *workers)
        started = time.monotonic()
        before = embedded(engine, doc)
        assert own_server.stop() is True
        time.sleep(1.0)
        own_server.start()
        assert own_server.url() == url  # the same port: the workers' URL still works
        restarted = time.monotonic() - started
        wait_drained(engine, target, 90, *workers)
        recovered = time.monotonic() - started
        assert all(w.popen.poll() is None for w in workers)
        for w in workers:
            w.popen.send_signal(signal.SIGTERM)
        results = [w.finish(timeout=30) for w in workers]
        assert [rc for rc, _ in results] == [0, 0], "\n".join(w.logs() for w in workers)
        counts = [c for _, c in results]
        assert all(c is not None and c["reconnects"] >= 1 for c in counts), counts
        assert sum(c["done"] for c in counts) == 400  # type: ignore[index]
        assert sum(c["failed"] for c in counts) == 0  # type: ignore[index]
        assert assert_in_sync(engine, doc, target) == 400
        print(
            f"{before} rows embedded at the stop; restart took {restarted:.1f} s, queue empty "
            f"{recovered:.1f} s after the stop; reconnects {[c['reconnects'] for c in counts]}"  # type: ignore[index]
        )
    finally:
        engine.dispose()


@pytest.mark.slow
def test_idle_worker_survives_a_database_restart(
    own_server: Any, spawn: Callable[..., Proc]
) -> None:
    """A worker waiting on LISTEN when the server restarts reports a lost connection (a
    warning and a reconnect, not a failed batch), listens again, and embeds the rows
    inserted after the restart long before its next poll."""
    url = own_server.url()
    engine = vecalchemy.create_engine(url, poolclass=NullPool)
    try:
        doc, target = make_doc(engine, 10, seed=6)
        proc = spawn(*cli_worker(url, target, "--poll-interval", "60", "--json"))
        wait_drained(engine, target, 30, proc)
        time.sleep(0.5)  # now it waits on LISTEN (its next poll is a minute away)
        own_server.stop()
        time.sleep(1.0)
        own_server.start()
        with engine.begin() as conn:
            conn.execute(
                sa.insert(doc.__table__),
                [{"id": i, "body": f"written after the restart {i}"} for i in range(11, 21)],
            )
        started = time.monotonic()
        wait_drained(engine, target, 20, proc)
        took = time.monotonic() - started
        proc.popen.send_signal(signal.SIGTERM)
        rc, counts = proc.finish(timeout=30)
        assert rc == 0, proc.logs()
        assert counts is not None
        assert (counts["done"], counts["failed"]) == (20, 0)
        assert counts["reconnects"] >= 1
        assert "lost the database connection" in proc.logs()
        assert "worker batch failed" not in proc.logs(), proc.logs()
        assert assert_in_sync(engine, doc, target) == 20
        print(f"rows after the restart embedded in {took:.2f} s; reconnects {counts['reconnects']}")
    finally:
        engine.dispose()


# -- 5. SIGTERM -----------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_finishes_the_batch_in_hand(
    db: Engine, db_url: URL, spawn: Callable[..., Proc]
) -> None:
    """SIGTERM while a worker embeds a batch: it writes that batch, releases nothing
    half-done, and exits 0 soon after; the rows it did not reach stay queued, unclaimed."""
    doc, target = make_doc(db, 100, seed=5)
    delay = 2.0
    proc = spawn(*slow_worker(db_url, target, delay=delay, batch_size=50))
    held = wait_for("a claimed batch", lambda: claims(db, target), 30, proc)
    (backend,) = {pid for _, pid in held}
    assert len(held) == 50
    assert embedded(db, doc) == 0
    sent = time.monotonic()
    proc.popen.send_signal(signal.SIGTERM)
    rc, counts = proc.finish(timeout=delay + 10)
    took = time.monotonic() - sent
    assert rc == 0, proc.logs()
    assert counts is not None
    assert (counts["done"], counts["batches"], counts["failed"]) == (50, 1, 0)
    assert took < delay + 5
    assert embedded(db, doc) == 50
    assert claims(db, target) == []
    assert (
        scalar(db, "SELECT count(*) FROM vecalchemy.sync_queue WHERE claimed_by = :p", p=backend)
        == 0
    )
    assert queued(db, target) == 50
    # The written half is exactly the claimed half, and it is correct.
    with db.connect() as conn:
        written = (
            conn.execute(
                sa.text(
                    f"SELECT id FROM {doc.__tablename__} WHERE embedding IS NOT NULL ORDER BY id"
                )
            )
            .scalars()
            .all()
        )
    assert written == [i for i, _ in held]
    stats = Worker(db, targets=[target]).run(until_idle=True)
    assert stats.done == 50
    assert assert_in_sync(db, doc, target) == 100
    print(f"exited {took:.2f} s after SIGTERM with its batch of 50 written")


# -- 6. empty and NULL texts ----------------------------------------------------------------


def test_empty_and_null_texts_have_no_embedding(db: Engine) -> None:
    """A row whose text is empty, blank or NULL gets a NULL embedding (no dead letter,
    nothing asked of the embedder), and a row whose text becomes empty or NULL loses the
    vector of its old text."""
    doc, target = make_doc(db, 0)
    bodies = {1: "", 2: None, 3: "   \n ", 4: "a real text", 5: "soon empty", 6: "soon null"}
    with db.begin() as conn:
        conn.execute(sa.insert(doc.__table__), [{"id": i, "body": b} for i, b in bodies.items()])
    assert queued(db, target) == 6
    stats = Worker(db, targets=[target]).run(until_idle=True)
    assert (stats.done, stats.failed, stats.dead) == (6, 0, 0)
    assert assert_in_sync(db, doc, target) == 6
    assert embedded(db, doc) == 3

    with db.begin() as conn:
        t = doc.__table__
        conn.execute(sa.update(t).where(t.c.id == 5).values(body=""))
        conn.execute(sa.update(t).where(t.c.id == 6).values(body=None))
        conn.execute(sa.update(t).where(t.c.id == 1).values(body=""))  # no change: not queued
    assert queued(db, target) == 2
    stats = Worker(db, targets=[target]).run(until_idle=True)
    assert (stats.done, stats.failed, stats.dead) == (2, 0, 0)
    assert assert_in_sync(db, doc, target) == 6
    assert embedded(db, doc) == 1
    assert scalar(db, "SELECT count(*) FROM vecalchemy.sync_dead WHERE target = :t", t=target) == 0
