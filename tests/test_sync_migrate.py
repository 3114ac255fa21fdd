"""Model migration: a column moves to another embedder through a shadow column and
index, while searches keep the old vectors, and swaps in one transaction; a search
never sees vectors of two models."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import Embedding, StaleEmbedding, SyncError
from vecalchemy.cli import main
from vecalchemy.embedders import HashingEmbedder
from vecalchemy.sync import Worker, content_hash

OLD, NEW = HashingEmbedder(16), HashingEmbedder(24)


@pytest.fixture(scope="module")
def db(module_db: sa.Engine) -> sa.Engine:
    return module_db


def model(table: str, dim: int, spec: str, sync: str) -> Any:
    class Base(DeclarativeBase):
        pass

    class Doc(Base):
        __tablename__ = table
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str | None]
        embedding = Embedding(dim, source="body", embedder=spec, sync=sync)

    return Doc


@pytest.fixture(params=["outbox", "inline"])
def doc(request: pytest.FixtureRequest, db: sa.Engine) -> Iterator[Any]:
    """40 rows embedded with the old model, outbox or inline."""
    m = model(f"mig_{uuid.uuid4().hex[:8]}", 16, "hashing:16", request.param)
    m.metadata.create_all(db)
    if request.param == "outbox":
        vecalchemy.sync.install(db, m.embedding)
    with Session(db) as s:
        s.add_all([m(id=i, body=f"document number {i} about topic {i % 5}") for i in range(40)])
        s.commit()
    if request.param == "outbox":
        with Worker(db, targets=[name(m)], poll_interval=0.1) as w:
            w.run(until_idle=True)
    yield m
    with db.begin() as conn:
        for t in (name(m), name(m) + "__next"):
            for table in ("sync_queue", "sync_dead", "sync_log", "sync_targets"):
                conn.execute(sa.text(f"DELETE FROM vecalchemy.{table} WHERE target = :t"), {"t": t})
    m.metadata.drop_all(db)


def name(m: Any) -> str:
    return f"public.{m.__tablename__}.embedding"


def columns(db: sa.Engine, m: Any) -> dict[str, str]:
    with db.connect() as conn:
        return dict(
            conn.execute(
                sa.text(
                    "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
                    " WHERE attrelid = to_regclass(:t) AND attnum > 0 AND NOT attisdropped"
                ),
                {"t": m.__tablename__},
            ).all()
        )


def models_in_use(db: sa.Engine, m: Any) -> set[str | None]:
    with db.connect() as conn:
        return set(
            conn.execute(
                sa.text(f"SELECT DISTINCT embedding_model FROM {m.__tablename__}")
            ).scalars()
        )


def test_migrate_swaps_in_the_new_model(db: sa.Engine, doc: Any) -> None:
    """Rows written during the migration are embedded for both columns; until the swap
    the live column holds old-model vectors only, after it new-model vectors only, in a
    24-dimension column with the old index's name; the trigger follows the new model."""
    seen: list[tuple[int, int]] = []
    during: list[set[str | None]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        during.append(models_in_use(db, doc))
        if len(seen) == 1:
            # A write in the middle: the live column must still get the old model.
            with Session(db) as s:
                s.add(doc(id=100, body="written during the migration"))
                s.commit()
            if doc.embedding.property.columns[0].info["vecalchemy.source"].sync == "outbox":
                with Worker(db, targets=[name(doc)], poll_interval=0.1) as w:
                    w.run(until_idle=True)

    result = vecalchemy.sync.migrate(db, doc.embedding, to="hashing:24", progress=progress)
    assert result.swapped
    assert result.dim == 24
    assert result.remaining == 0
    assert all(models == {OLD.name} for models in during)  # searches saw the old model only
    assert seen[-1] == (41, 41)
    cols = columns(db, doc)
    assert cols["embedding"] == "vector(24)"
    assert not any(c.endswith("__next") or "__next_" in c for c in cols)
    assert models_in_use(db, doc) == {NEW.name}
    with db.connect() as conn:
        rows = conn.execute(
            sa.text(f"SELECT body, embedding::text, embedding_source_hash FROM {doc.__tablename__}")
        ).all()
        indexes = conn.execute(
            sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t"),
            {"t": doc.__tablename__},
        ).all()
    for body, emb, h in rows:
        assert h == content_hash(body)
        got = np.array(emb.strip("[]").split(","), dtype=np.float32)
        assert np.allclose(got, NEW.embed_documents([body])[0], atol=1e-6)
    vector_indexes = [(n, d) for n, d in indexes if "hnsw" in d]
    assert vector_indexes == [(f"ix_{doc.__tablename__}_embedding_hnsw", vector_indexes[0][1])]
    assert "(embedding vector_cosine_ops)" in vector_indexes[0][1]
    new_model = model(doc.__tablename__, 24, "hashing:24", "outbox")
    with Session(db) as s:
        q = NEW.embed_query("written during the migration")
        assert vecalchemy.search(s, new_model.embedding, q, k=1)[0].row.id == 100


def test_old_declaration_is_refused_after_the_swap(db: sa.Engine, doc: Any) -> None:
    """After a swap to another model of the same dimension, writing old-model vectors
    fails: a new engine's first flush raises StaleEmbedding naming both models before
    any SQL, the database's guard trigger refuses them from any process, and an outbox
    worker refuses the old embedder."""
    other = HashingEmbedder(16, seed=1)
    assert vecalchemy.sync.migrate(db, doc.embedding, to=other).swapped
    assert models_in_use(db, doc) == {other.name}
    inline = doc.embedding.property.columns[0].info["vecalchemy.source"].sync == "inline"
    if inline:
        fresh = vecalchemy.create_engine(db.url)
        try:
            with Session(fresh) as s:
                s.add(doc(id=200, body="new row through the old declaration"))
                with pytest.raises(StaleEmbedding, match=f"made with {other.name}.*declared with"):
                    s.flush()
        finally:
            fresh.dispose()
    with db.begin() as conn, pytest.raises(sa.exc.IntegrityError, match="never mixes two models"):
        conn.execute(
            sa.text(
                f"UPDATE {doc.__tablename__} SET embedding = embedding,"
                " embedding_model = :m WHERE id = 1"
            ),
            {"m": OLD.name},
        )
    assert models_in_use(db, doc) == {other.name}
    if not inline:
        with Session(db) as s:
            s.add(doc(id=200, body="new row"))
            s.commit()
        with (
            Worker(db, targets=[name(doc)], embedders={name(doc): OLD}) as w,
            pytest.raises(SyncError, match="never mixes two models"),
        ):
            w.run(until_idle=True)


def test_interrupted_migration_resumes(db: sa.Engine, doc: Any) -> None:
    """A migration interrupted after preparing resumes on the next run; the live column
    is untouched until then; a migration to a third model meanwhile is refused."""

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vecalchemy.sync.migrate(db, doc.embedding, to="hashing:24", progress=interrupt)
    cols = columns(db, doc)
    assert cols["embedding"] == "vector(16)"
    assert cols["embedding__next"] == "vector(24)"
    assert models_in_use(db, doc) == {OLD.name}
    [s] = vecalchemy.sync.status(db, [name(doc)])
    assert s.migrating_to == "hashing:24"
    with pytest.raises(SyncError, match="being migrated to 'hashing:24' already"):
        vecalchemy.sync.migrate(db, doc.embedding, to="hashing:32")
    result = vecalchemy.sync.migrate(db, doc.embedding, to="hashing:24")
    assert result.swapped
    assert models_in_use(db, doc) == {NEW.name}
    assert vecalchemy.sync.status(db, [name(doc)])[0].migrating_to is None


def test_migrate_errors(db: sa.Engine, doc: Any) -> None:
    """Migrating to the model already in use is refused; nothing is added."""
    with pytest.raises(SyncError, match=r"made with .* already; nothing to migrate"):
        vecalchemy.sync.migrate(db, doc.embedding, to="hashing:16")
    assert "embedding__next" not in columns(db, doc)


def test_cli_migrate(db: sa.Engine) -> None:
    """vecalchemy sync migrate TARGET --to SPEC --json on an outbox column."""
    m = model(f"mig_{uuid.uuid4().hex[:8]}", 16, "hashing:16", "outbox")
    m.metadata.create_all(db)
    vecalchemy.sync.install(db, m.embedding)
    try:
        with Session(db) as s:
            s.add_all([m(id=i, body=f"text {i}") for i in range(10)])
            s.commit()
        url = db.url.render_as_string(hide_password=False)
        out = CliRunner().invoke(
            main,
            ["sync", "migrate", name(m), "--to", "hashing:24", "--url", url, "--json"],
            catch_exceptions=False,
        )
        assert out.exit_code == 0, out.output
        assert '"swapped": true' in out.output
        assert models_in_use(db, m) == {NEW.name}
    finally:
        vecalchemy.sync.uninstall(db, m.embedding)
        m.metadata.drop_all(db)
