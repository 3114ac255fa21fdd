"""Collections off the happy path: foreign tables, other embedders and metrics, read paths
without DDL, concurrent writers of the same documents, and adds that do not block readers."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import vecalchemy
from vecalchemy import Collection
from vecalchemy.cli import main
from vecalchemy.embedders import HashingEmbedder

TEXTS = ["PostgreSQL has extensions.", "pgvector adds vector search.", "Cats sleep a lot."]


@pytest.fixture
def name(engine: sa.Engine) -> Iterator[str]:
    table = f"guard_{uuid.uuid4().hex[:8]}"
    yield table
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{table}"')


@pytest.fixture
def coll(engine: sa.Engine, name: str) -> Collection:
    c = Collection(name, embedder=HashingEmbedder(64), engine=engine, splitter="chars:200:20")
    c.add(TEXTS, ids=["pg", "pgvector", "cats"], metadata=[{"n": 1}, {"n": 2}, {"n": 3}])
    return c


@pytest.fixture
def statements(engine: sa.Engine) -> Iterator[list[str]]:
    sent: list[str] = []

    def capture(conn: object, cursor: object, statement: str, *args: object) -> None:
        sent.append(statement)

    sa.event.listen(engine, "before_cursor_execute", capture)
    yield sent
    sa.event.remove(engine, "before_cursor_execute", capture)


def _ddl(statements: list[str]) -> list[str]:
    words = ("CREATE", "ALTER", "COMMENT", "DROP")
    return [s for s in statements if s.lstrip().upper().startswith(words)]


# -- a table vecalchemy did not create is left alone -------------------------------------


def test_a_foreign_table_is_refused_and_untouched(engine: sa.Engine, name: str) -> None:
    """A table of that name made by someone else: every operation refuses it before any
    change (no tsv column, no index, no comment), and drop() does not drop it."""
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE TABLE "{name}" (id text PRIMARY KEY, body text)')
        conn.exec_driver_sql(f"COMMENT ON TABLE \"{name}\" IS 'the billing team''s table'")

    def shape() -> tuple[object, ...]:
        with engine.connect() as conn:
            cols = conn.execute(
                sa.text(
                    "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute "
                    "WHERE attrelid = to_regclass(:t) AND attnum > 0"
                ),
                {"t": name},
            ).scalar()
            indexes = conn.execute(
                sa.text("SELECT count(*) FROM pg_indexes WHERE tablename = :t"), {"t": name}
            ).scalar()
            comment = conn.execute(
                sa.text("SELECT obj_description(to_regclass(:t), 'pg_class')"), {"t": name}
            ).scalar()
        return cols, indexes, comment

    before = shape()
    c = Collection(name, embedder="hashing", engine=engine)
    for action in (
        lambda: c.add(["x"]),
        lambda: c.upsert(["x"], ids=["a"]),
        lambda: c.create(),
        lambda: c.search("x"),
        lambda: c.count(),
        lambda: c.drop(),
        lambda: c.upgrade(),
        lambda: Collection.open(name, engine=engine),
    ):
        with pytest.raises(vecalchemy.ConfigurationError, match="vecalchemy did not create"):
            action()
    assert shape() == before == ("id,body", 1, "the billing team's table")


# -- reads never change the schema ---------------------------------------------------------


def test_read_paths_run_no_ddl(coll: Collection, statements: list[str]) -> None:
    """search (both modes), get, count on a fresh Collection object: no DDL at all."""
    fresh = Collection.open(coll.name, engine=coll.engine, embedder=HashingEmbedder(64))
    statements.clear()
    assert fresh.search("vector search", k=2)[0].id == "pgvector"
    assert fresh.search("vector search", k=2, mode="hybrid")
    assert [r.id for r in fresh.get(["cats"])] == ["cats"]
    assert fresh.count() == 3
    assert statements
    assert _ddl(statements) == []


def test_searching_a_missing_collection_is_an_error(engine: sa.Engine, name: str) -> None:
    """A collection that was never written: search says so (and creates nothing)."""
    c = Collection(name, embedder="hashing", engine=engine)
    with pytest.raises(vecalchemy.ConfigurationError, match="no collection"):
        c.search("anything")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": name}).scalar() is None


# -- searches refuse another embedder or metric ------------------------------------------


def test_search_with_another_embedder_is_refused(coll: Collection) -> None:
    """The same dimension, another model: its vectors are not comparable, so no search."""
    other = Collection(coll.name, embedder=HashingEmbedder(64, seed=7), engine=coll.engine)
    for mode in ("vector", "hybrid"):
        with pytest.raises(vecalchemy.EmbedderError, match="holds vectors from hashing-v1"):
            other.search("vector search", k=2, mode=mode)  # type: ignore[arg-type]


def test_search_with_another_metric_is_refused(coll: Collection) -> None:
    """A collection opened with metric='l2' on a cosine table is refused with the fix."""
    wrong = Collection(coll.name, embedder=HashingEmbedder(64), engine=coll.engine, metric="l2")
    with pytest.raises(vecalchemy.MetricMismatch, match="created with metric 'cosine'"):
        wrong.search("vector search", k=2)
    with pytest.raises(vecalchemy.MetricMismatch):
        wrong.add(["more"], ids=["more"])
    assert coll.count() == 3


def test_cli_search_with_another_embedder(coll: Collection, server_url: sa.URL) -> None:
    """vecalchemy search --embedder <another>: a clean error, exit code 1."""
    url = server_url.render_as_string(hide_password=False)
    result = CliRunner().invoke(
        main,
        ["search", "vector", "-c", coll.name, "--embedder", "hashing:128", "--url", url],
        catch_exceptions=False,
    )
    assert result.exit_code == 1
    assert "error:" in result.stderr
    assert "dimension" in result.stderr or "holds vectors from" in result.stderr


# -- concurrent writers -----------------------------------------------------------------------


def test_concurrent_upserts_of_one_id_all_succeed(coll: Collection) -> None:
    """4 threads x 20 upserts of the same document with different texts: every call
    succeeds (no UniqueViolation, no deadlock), and the stored document is whole: the
    chunks of exactly one of the texts, the last one written."""
    texts = [f"version {t}-{i}: " + "words " * (10 + i) for t in range(4) for i in range(20)]
    order: list[str] = []
    lock = threading.Lock()

    def writer(t: int) -> None:
        for i in range(20):
            text = texts[t * 20 + i]
            coll.upsert([text], ids=["shared"])
            with lock:
                order.append(text)

    with ThreadPoolExecutor(4) as pool:
        for f in [pool.submit(writer, t) for t in range(4)]:
            f.result()
    records = coll.get(["shared"])
    assert len({r.content_hash for r in records}) == 1  # one version, not a mix
    assert sorted(r.chunk for r in records) == list(range(len(records)))
    stored = records[0].text
    assert any(stored.startswith(t[:14]) for t in texts)
    # The last writer to take the document's lock wins; the order of the returns above
    # can differ from the order of the locks by the few microseconds between commit and
    # return, so the stored text is among the last four writes.
    assert any(t.startswith(stored.split(":")[0]) for t in order[-4:])


def test_mixed_concurrent_writes_do_not_deadlock(coll: Collection) -> None:
    """Upserts of overlapping sets of documents in random orders, and deletes, from four
    threads: no deadlock, no unique violation."""
    ids = [f"d{i}" for i in range(12)]
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            for step in range(15):
                chosen = rnd.sample(ids, 5)
                if step % 5 == 4:
                    coll.delete(chosen[:2])
                else:
                    coll.upsert([f"{i} text {seed} {step}" for i in chosen], ids=chosen)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for record in coll.get(ids):
        assert record.text.startswith(record.id + " text ")


def test_a_change_made_after_the_first_look_still_loses_to_the_later_write(
    coll: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writer A looks (its text equals the stored one: nothing to embed), writer B then
    changes the document, then A writes: A came last, so A's text is what is stored."""
    original = coll.get(["cats"])[0].text
    a_embedding = threading.Event()
    b_done = threading.Event()
    real_embed = coll._embed

    def slow_embed(texts: list[str], batch_size: int, progress: object) -> object:
        if threading.current_thread().name == "writer-a" and not a_embedding.is_set():
            a_embedding.set()
            assert b_done.wait(30)
        return real_embed(texts, batch_size, progress)  # type: ignore[arg-type]

    monkeypatch.setattr(coll, "_embed", slow_embed)
    a = threading.Thread(
        target=lambda: coll.upsert([original, "new doc"], ids=["cats", "new"]), name="writer-a"
    )
    a.start()
    assert a_embedding.wait(30)
    coll.upsert(["Dogs bark at night."], ids=["cats"])  # B, while A embeds "new"
    b_done.set()
    a.join(30)
    assert not a.is_alive()
    assert coll.get(["cats"])[0].text == original


def test_add_of_an_existing_id_by_a_concurrent_writer_is_a_clean_error(
    coll: Collection,
) -> None:
    """Two adds of the same new id at once: one succeeds, the other gets InvalidRows."""
    results: list[object] = []

    def add() -> None:
        try:
            coll.add(["same id twice"], ids=["race"])
            results.append("ok")
        except vecalchemy.InvalidRows as exc:
            results.append(exc)

    threads = [threading.Thread(target=add) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 1
    assert all("already in collection" in str(r) for r in results if r != "ok")
    assert len(coll.get(["race"])) == 1


# -- adds into a live collection do not lock readers out -----------------------------------


@pytest.mark.slow
def test_a_large_add_into_a_live_collection_keeps_its_index(
    coll: Collection, statements: list[str]
) -> None:
    """10,000+ chunks into a collection that has rows: the HNSW index is maintained row by
    row (no DROP INDEX, which would take an ACCESS EXCLUSIVE lock and block searches);
    into a new collection, or with defer_index=True, it is rebuilt after the load."""
    many = [f"note {i}" for i in range(10_000)]
    statements.clear()
    coll.add(many, ids=[f"n{i}" for i in range(10_000)])
    assert not [s for s in statements if "DROP INDEX" in s.upper()]
    fresh = Collection(
        f"{coll.name}_new", embedder=HashingEmbedder(64), engine=coll.engine, splitter="none"
    )
    try:
        statements.clear()
        fresh.add(many)
        assert [s for s in statements if "DROP INDEX" in s.upper()]
        statements.clear()
        fresh.add(["x"] * 10_000, defer_index=True)
        assert [s for s in statements if "DROP INDEX" in s.upper()]
    finally:
        fresh.drop()
    assert coll.search("note 42", k=1)[0].id.startswith("n")
