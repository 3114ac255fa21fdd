"""Re-embedding on change: the cheatsheet's "Re-embedding on text change" hook.

Cheatsheet pattern::

    @event.listens_for(Doc, "before_update")
    def re_embed(mapper, connection, target):
        if target.body_changed:
            target.embedding = embed_sync(target.body)

``target.body_changed`` is not something SQLAlchemy provides; the real test is the
attribute's history, ``sqlalchemy.inspect(target).attrs.body.history.has_changes()``.
This example runs the hook in-process with ``HashingEmbedder`` (microseconds per text):
an UPDATE that changes ``body`` also writes the new embedding, one that changes only
other columns leaves the embedding (and the embedder) alone. A ``before_insert`` hook
embeds new rows the same way. Setting a column attribute inside ``before_update`` is
supported by SQLAlchemy: it is part of the same UPDATE statement.

What vecalchemy adds: the embedding column still has its declared metric and index, so
the re-embedded rows are searchable at once. For slow embedders (an HTTP model), the
cheatsheet's alternative is an outbox table and a worker; vecalchemy does not ship one
yet.

Run it: ``python examples/08_reembed_on_change.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import event, inspect
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import Embedding
from vecalchemy.embedders import HashingEmbedder

embedder = HashingEmbedder(384)
embedded: list[str] = []  # every text the hooks sent to the embedder


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "ex08_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    body: Mapped[str]
    embedding = Embedding(384, metric="cosine")


def embed(text: str) -> list[float]:
    embedded.append(text)
    return embedder.embed_query(text).tolist()


@event.listens_for(Doc, "before_insert")
def embed_new(mapper: Any, connection: Any, target: Doc) -> None:
    if target.embedding is None:
        target.embedding = embed(target.body)


@event.listens_for(Doc, "before_update")
def re_embed(mapper: Any, connection: Any, target: Doc) -> None:
    # before_update runs for every dirty object, even without net changes: check history.
    if inspect(target).attrs.body.history.has_changes():
        target.embedding = embed(target.body)


def main() -> None:
    engine = vecalchemy.create_engine()
    Base.metadata.create_all(engine)
    try:
        with Session(engine) as session:
            session.add(Doc(id=1, title="Cats", body="The cat sleeps on the sofa"))
            session.add(Doc(id=2, title="Bread", body="Bake the bread for forty minutes"))
            session.commit()
            assert embedded == ["The cat sleeps on the sofa", "Bake the bread for forty minutes"]
            original = np.array(session.get(Doc, 1).embedding)

            # Only the title changes: no call to the embedder, the embedding stays.
            doc = session.get(Doc, 1)
            doc.title = "Sleepy cats"
            session.commit()
            after_title = np.array(session.get(Doc, 1).embedding)
            unchanged = bool(np.array_equal(original, after_title))
            print(
                f"title changed: embedder calls {len(embedded)} - embedding unchanged: {unchanged}"
            )
            assert len(embedded) == 2
            assert np.array_equal(original, after_title)

            # Assigning the same body is no change either.
            doc = session.get(Doc, 1)
            doc.body = "The cat sleeps on the sofa"
            session.commit()
            assert len(embedded) == 2

            # The body changes: the same UPDATE writes the new embedding.
            doc = session.get(Doc, 1)
            doc.body = "The dog chases the ball in the garden"
            session.commit()
            after_body = np.array(session.get(Doc, 1).embedding)
            expected = embedder.embed_query("The dog chases the ball in the garden")
            unchanged = bool(np.array_equal(original, after_body))
            print(
                f"body changed:  embedder calls {len(embedded)} - embedding unchanged: {unchanged}"
            )
            assert len(embedded) == 3
            assert not np.array_equal(original, after_body)
            assert np.allclose(after_body, expected, atol=1e-6)

        with Session(engine) as session:
            hits = vecalchemy.search(
                session, Doc.embedding, embedder.embed_query("dog garden"), k=1
            )
            print("search 'dog garden':", hits[0].row.title, "-", hits[0].row.body)
            assert hits[0].row.id == 1
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


if __name__ == "__main__":
    main()
