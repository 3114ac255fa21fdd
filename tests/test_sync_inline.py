"""In-process re-embedding: the ORM embeds a row in the flush that inserts it or changes
its source text, batched per flush, and never re-embeds text that did not change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import sqlalchemy as sa
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import EmbedderError, Embedding, StaleEmbedding
from vecalchemy._source import sql_content_hash
from vecalchemy.embedders import HashingEmbedder
from vecalchemy.sync import content_hash, source_text

DIM = 16
HASHING = HashingEmbedder(DIM)


class Counting:
    """A HashingEmbedder that counts its calls and texts (sync and async separately)."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner or HashingEmbedder(DIM)
        self.calls: list[list[str]] = []
        self.async_calls = 0

    @property
    def dim(self) -> int:
        return int(self.inner.dim)

    @property
    def name(self) -> str:
        return str(self.inner.name)

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(list(texts))
        return self.result(list(texts))

    def result(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return self.inner.embed_documents(texts)  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        return self.inner.embed_query(text)  # type: ignore[no-any-return]

    async def aembed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.async_calls += 1
        self.calls.append(list(texts))
        return self.result(list(texts))

    async def aembed_query(self, text: str) -> npt.NDArray[np.float32]:
        return self.inner.embed_query(text)  # type: ignore[no-any-return]

    @property
    def texts(self) -> int:
        return sum(len(c) for c in self.calls)


COUNTER = Counting()


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "sync_inline_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str | None]
    body: Mapped[str | None]
    views: Mapped[int] = mapped_column(default=0)
    embedding = Embedding(DIM, source=("title", "body"), embedder=COUNTER)


def expected(text: str) -> npt.NDArray[np.float32]:
    return HASHING.embed_documents([text])[0]


@pytest.fixture
def s(session: Session) -> Session:
    Base.metadata.create_all(session.connection())
    COUNTER.calls.clear()
    COUNTER.async_calls = 0
    return session


def stored(session: Session, id_: int) -> sa.Row[Any]:
    return session.execute(
        sa.text(
            "SELECT embedding::text AS e, embedding_source_hash AS h, embedding_model AS m,"
            " title, body FROM sync_inline_notes WHERE id = :id"
        ),
        {"id": id_},
    ).one()


def vector(text: str | None) -> npt.NDArray[np.float32] | None:
    return None if text is None else np.array(text.strip("[]").split(","), dtype=np.float32)


def test_companion_columns_and_join_rule() -> None:
    """The table gets <col>_source_hash and <col>_model; several sources join non-NULL
    values with a blank line, as concat_ws(E'\\n\\n', ...) does in PostgreSQL."""
    assert {"embedding_source_hash", "embedding_model"} <= set(Note.__table__.c.keys())
    assert source_text(["A", None, "B"]) == "A\n\nB"
    assert source_text([None, None]) == ""


def test_insert_embeds_in_the_flush_in_one_call(s: Session) -> None:
    """50 new rows are embedded by one embedder call, each from its title and body."""
    s.add_all([Note(id=i, title=f"title {i}", body=f"body text {i}") for i in range(50)])
    s.flush()
    assert len(COUNTER.calls) == 1
    assert COUNTER.texts == 50
    row = stored(s, 7)
    text = "title 7\n\nbody text 7"
    assert np.allclose(vector(row.e), expected(text), atol=1e-6)  # type: ignore[arg-type]
    assert row.h == content_hash(text)
    assert row.m == HASHING.name


def test_hash_matches_what_postgresql_computes(s: Session) -> None:
    """The Python hash of the source text equals the SQL one the triggers use (with a
    NULL title and non-ASCII text)."""
    s.add(Note(id=1, title=None, body="Größe ünd 漢字"))
    s.flush()
    trigger_sql = sql_content_hash(["title", "body"])  # what the triggers compute
    got = s.execute(sa.text(f"SELECT {trigger_sql} FROM sync_inline_notes WHERE id = 1")).scalar()
    assert got == stored(s, 1).h == content_hash("Größe ünd 漢字")


def test_change_of_a_source_column_re_embeds(s: Session) -> None:
    """d.body = '...' then flush: the stored vector is the new text's."""
    note = Note(id=1, title="t", body="old text")
    s.add(note)
    s.flush()
    note.body = "completely new words"
    s.flush()
    row = stored(s, 1)
    assert np.allclose(vector(row.e), expected("t\n\ncompletely new words"), atol=1e-6)  # type: ignore[arg-type]
    assert row.h == content_hash("t\n\ncompletely new words")
    assert len(COUNTER.calls) == 2


def test_other_columns_and_unchanged_text_do_no_work(s: Session) -> None:
    """Changing a column that is not a source, or setting a source to the text it
    already had, calls no embedder."""
    note = Note(id=1, title="t", body="same")
    s.add(note)
    s.flush()
    s.expire_all()
    note = s.get(Note, 1)  # type: ignore[assignment]
    note.views = 5
    s.flush()
    note.body = "same"
    s.flush()
    assert len(COUNTER.calls) == 1


def test_text_changed_back_is_not_re_embedded(s: Session) -> None:
    """A->B->A within one flush: the text is the stored vector's, no embedder call."""
    note = Note(id=1, title=None, body="A")
    s.add(note)
    s.flush()
    note.body = "B"
    note.body = "A"
    s.flush()
    assert len(COUNTER.calls) == 1


def test_blank_text_has_no_embedding_and_clears_a_stale_one(s: Session) -> None:
    """A row without text gets a NULL embedding; text changed to blank clears the old
    vector instead of leaving it behind."""
    s.add_all([Note(id=1, title=None, body=None), Note(id=2, title="t", body="words")])
    s.flush()
    assert stored(s, 1).e is None
    assert stored(s, 1).m is None
    note = s.get(Note, 2)
    assert note is not None
    note.title, note.body = None, "   "
    s.flush()
    row = stored(s, 2)
    assert row.e is None
    assert row.m is None
    assert row.h == content_hash("   ")


def test_an_assigned_vector_is_kept(s: Session) -> None:
    """A vector the application assigns in the flush is stored as given (model NULL)."""
    v = np.ones(DIM, dtype=np.float32)
    s.add(Note(id=1, title="t", body="b", embedding=v))
    s.flush()
    row = stored(s, 1)
    assert np.allclose(vector(row.e), v)
    assert row.m is None
    assert row.h == content_hash("t\n\nb")
    assert COUNTER.calls == []


def test_search_finds_the_new_text(s: Session) -> None:
    """After an edit, a search for the new text finds the row first."""
    s.add_all([Note(id=i, title=None, body=f"filler row number {i}") for i in range(30)])
    s.flush()
    note = s.get(Note, 3)
    assert note is not None
    note.body = "quantum chromodynamics lecture"
    s.flush()
    hits = vecalchemy.search(s, Note.embedding, HASHING.embed_query("quantum chromodynamics"), k=1)
    assert hits[0].row.id == 3


def test_bulk_update_of_a_source_is_refused(s: Session) -> None:
    """update(Note).values(body=...) bypasses the flush: StaleEmbedding, nothing written."""
    s.add(Note(id=1, title="t", body="before"))
    s.flush()
    with pytest.raises(StaleEmbedding, match=r"bulk update.*body.*nothing was written"):
        s.execute(update(Note).where(Note.id == 1).values(body="after"))
    assert stored(s, 1).body == "before"
    with pytest.raises(StaleEmbedding, match="bulk insert"):
        s.execute(insert(Note), [{"id": 2, "body": "x"}])
    assert s.execute(select(sa.func.count()).select_from(Note)).scalar() == 1


def test_bulk_writes_that_carry_the_embedding_or_no_source_run(s: Session) -> None:
    """A bulk update of other columns, or one that sets the embedding too, runs."""
    s.add(Note(id=1, title="t", body="before"))
    s.flush()
    s.execute(update(Note).where(Note.id == 1).values(views=3))
    v = expected("after")
    s.execute(update(Note).where(Note.id == 1).values(body="after", embedding=v))
    assert stored(s, 1).body == "after"


class Broken(Counting):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def result(self, texts: list[str]) -> npt.NDArray[np.float32]:
        out = self.inner.embed_documents(texts)
        if self.mode == "nan":
            out[0, 0] = np.nan
        elif self.mode == "wide":
            out = np.hstack([out, out])
        elif self.mode == "zero":
            out[0] = 0
        return out  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("mode", "message"),
    [("nan", "NaN"), ("wide", "32 dimensions, expected 16"), ("zero", "zero vector")],
)
def test_a_buggy_embedder_writes_nothing(session: Session, mode: str, message: str) -> None:
    """An embedder returning NaN, the wrong dimension or a zero vector (cosine) fails the
    flush with EmbedderError; no row is written."""

    class B(DeclarativeBase):
        pass

    class Bad(B):
        __tablename__ = f"sync_inline_bad_{mode}"
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str]
        embedding = Embedding(DIM, source="body", embedder=Broken(mode))

    B.metadata.create_all(session.connection())
    session.add(Bad(id=1, body="some text"))
    with pytest.raises(EmbedderError, match=message):
        session.flush()
    # The hook runs before the flush sends anything: the session is still usable.
    with session.no_autoflush:
        count = session.execute(sa.text(f"SELECT count(*) FROM {Bad.__tablename__}")).scalar()
    assert count == 0


def test_embedder_of_another_dimension_is_refused(session: Session) -> None:
    """A 32-dimension embedder on a 16-dimension column: EmbedderError naming both."""

    class B(DeclarativeBase):
        pass

    class Wide(B):
        __tablename__ = "sync_inline_wide"
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str]
        embedding = Embedding(DIM, source="body", embedder="hashing:32")

    B.metadata.create_all(session.connection())
    session.add(Wide(id=1, body="text"))
    with pytest.raises(EmbedderError, match="32-dimension vectors but column sync_inline_wide"):
        session.flush()


def test_declaration_errors() -> None:
    """source without embedder, embedder without source, an unknown sync mode, and a
    source column the model lacks are clear errors."""
    with pytest.raises(vecalchemy.ConfigurationError, match="needs embedder="):
        Embedding(DIM, source="body")
    with pytest.raises(vecalchemy.ConfigurationError, match="name the text column"):
        Embedding(DIM, embedder="hashing")
    with pytest.raises(vecalchemy.ConfigurationError, match="sync must be one of"):
        Embedding(DIM, source="body", embedder="hashing", sync="later")
    with pytest.raises(vecalchemy.ConfigurationError, match="names a column twice"):
        Embedding(DIM, source=("a", "a"), embedder="hashing")


def test_missing_source_column_is_named(session: Session) -> None:
    """A source naming a column the model does not have fails the first flush."""

    class B(DeclarativeBase):
        pass

    class Typo(B):
        __tablename__ = "sync_inline_typo"
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str]
        embedding = Embedding(DIM, source="bdoy", embedder="hashing:16")

    B.metadata.create_all(session.connection())
    session.add(Typo(id=1, body="x"))
    with pytest.raises(StaleEmbedding, match="embedded from bdoy, which is not a column"):
        session.flush()


async def test_async_session_embeds_off_the_event_loop(async_session: AsyncSession) -> None:
    """Under AsyncSession the flush awaits the embedder's async twin."""
    conn = await async_session.connection()
    await conn.run_sync(lambda c: Base.metadata.create_all(c))
    COUNTER.calls.clear()
    COUNTER.async_calls = 0
    async_session.add_all([Note(id=i, title=None, body=f"async text {i}") for i in range(5)])
    await async_session.flush()
    assert COUNTER.async_calls == 1
    assert COUNTER.texts == 5
    note = await async_session.get(Note, 2)
    assert note is not None
    note.body = "changed asynchronously"
    await async_session.flush()
    assert COUNTER.async_calls == 2
    got = (
        await async_session.execute(
            sa.text("SELECT embedding_source_hash FROM sync_inline_notes WHERE id = 2")
        )
    ).scalar()
    assert got == content_hash("changed asynchronously")


class Windowed(Counting):
    """An embedder whose window is 8 tokens (a token being a word, plus two specials)."""

    max_tokens = 8

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 2


def test_text_beyond_the_window_is_refused_or_truncated_on_request(session: Session) -> None:
    """A text longer than the model's window fails the flush with the token counts and
    the fix (nothing written); with truncate=True it is embedded (the model reads its
    start)."""

    class B(DeclarativeBase):
        pass

    class Strict(B):
        __tablename__ = "sync_inline_strict"
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str]
        embedding = Embedding(DIM, source="body", embedder=Windowed())

    class Lenient(B):
        __tablename__ = "sync_inline_lenient"
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str]
        embedding = Embedding(DIM, source="body", embedder=Windowed(), truncate=True)

    B.metadata.create_all(session.connection())
    long_text = " ".join(f"word{i}" for i in range(10))
    session.add_all([Strict(id=1, body="short text"), Strict(id=2, body=long_text)])
    with pytest.raises(EmbedderError, match=r"12 tokens but .* reads at most 8.*truncate=True"):
        session.flush()
    with session.no_autoflush:
        assert session.execute(sa.text("SELECT count(*) FROM sync_inline_strict")).scalar() == 0
    session.expunge_all()
    session.add(Lenient(id=1, body=long_text))
    session.flush()
    assert session.execute(
        sa.text("SELECT embedding IS NOT NULL FROM sync_inline_lenient")
    ).scalar()


def test_a_vector_of_another_model_is_re_embedded_on_a_text_write(s: Session) -> None:
    """A row whose vector another model made is embedded again when its text is written,
    even if the new text is the one that vector was made from."""
    s.add(Note(id=1, title=None, body="kept text"))
    s.flush()
    # Written outside the ORM: other text, and a vector of another model.
    s.execute(
        sa.text(
            "UPDATE sync_inline_notes SET body = 'other', embedding_model = 'old-model'"
            " WHERE id = 1"
        )
    )
    s.expire_all()
    note = s.get(Note, 1)
    assert note is not None
    note.body = "kept text"  # the text of the stored hash
    s.flush()
    assert len(COUNTER.calls) == 2
    assert stored(s, 1).m == HASHING.name


def test_copies_and_mixins_keep_one_set_of_companion_columns() -> None:
    """Table.to_metadata() of a synced table (Alembic does it) copies the companion
    columns once; a mixin's synced column gives each table its own companions."""
    copy = Note.__table__.to_metadata(sa.MetaData())
    names = [col.name for col in copy.columns]
    assert [n for n in names if n.startswith("embedding")] == [
        "embedding",
        "embedding_source_hash",
        "embedding_model",
    ]

    class B(DeclarativeBase):
        pass

    class Synced:
        body: Mapped[str]
        embedding = Embedding(DIM, source="body", embedder="hashing:16")

    class One(Synced, B):
        __tablename__ = "sync_mixin_one"
        id: Mapped[int] = mapped_column(primary_key=True)

    class Two(Synced, B):
        __tablename__ = "sync_mixin_two"
        id: Mapped[int] = mapped_column(primary_key=True)

    for model in (One, Two):
        assert {"embedding_source_hash", "embedding_model"} <= set(model.__table__.c.keys())
