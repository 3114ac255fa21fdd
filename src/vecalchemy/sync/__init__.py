"""Embeddings that stay in sync with their text: in the flush, or through an outbox.

Declare where a column's vectors come from, once::

    class Doc(Base):
        __tablename__ = "docs"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]
        body: Mapped[str]
        # embedded by the ORM in the flush that inserts the row or changes its text
        embedding = Embedding(384, source=("title", "body"), embedder="hashing")
        # queued by a trigger in the writer's transaction, embedded by `vecalchemy worker`
        slow = Embedding(1536, source="body", embedder="openai:text-embedding-3-small",
                         sync="outbox")

* **inline** (the default): :mod:`vecalchemy.sync._inline`. ``doc.body = "..."`` then
  ``session.commit()`` re-embeds ``doc`` in the same flush, with every other changed
  row of the flush in one embedder call; rows whose text did not change are not
  embedded again (content hash).
* **outbox**: :func:`install` adds the queue and the column's trigger;
  :class:`Worker` (``vecalchemy worker``) embeds queued rows; :func:`status`,
  :func:`retry` and :func:`backfill` look after the queue; :func:`migrate` moves a
  column to another embedder without mixing models.

Each row records the content hash of the text its vector was made from
(``<column>_source_hash``) and the embedder that made it (``<column>_model``).
"""

from __future__ import annotations

from vecalchemy._source import content_hash, source_text
from vecalchemy.sync._ddl import Target
from vecalchemy.sync._inline import sourced_columns
from vecalchemy.sync.migrate import MigrationResult, migrate
from vecalchemy.sync.outbox import (
    TargetStatus,
    backfill,
    install,
    install_statements,
    retry,
    status,
    uninstall,
)
from vecalchemy.sync.worker import Worker, WorkerStats

__all__ = [
    "MigrationResult",
    "Target",
    "TargetStatus",
    "Worker",
    "WorkerStats",
    "backfill",
    "content_hash",
    "install",
    "install_statements",
    "migrate",
    "retry",
    "source_text",
    "sourced_columns",
    "status",
    "uninstall",
]
