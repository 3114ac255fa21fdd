"""``vecalchemy ingest``: files in, a collection kept in sync with them.

:func:`ingest_files` reads the files (:func:`~vecalchemy.cli._sources.read_sources`),
upserts them (only changed texts are re-embedded), then finds the documents this
command stored earlier under the same paths whose files are gone: with ``prune`` they
are deleted, else counted as stale. Documents from other directories, or added through
the Python API (no ``origin`` of ``"vecalchemy ingest"`` in their metadata), are never
touched.

Example::

    report = ingest_files(collection, ["docs"], prune=True)
    report.result.documents, report.pruned, [s.reason for s in report.skipped]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from vecalchemy.cli._sources import ORIGIN, Skipped, read_sources, stale_documents
from vecalchemy.collection import AddResult, Collection
from vecalchemy.errors import ConfigurationError, InvalidArgument

__all__ = ["IngestReport", "ingest_files", "stored_sources"]


@dataclass
class IngestReport:
    """What :func:`ingest_files` did.

    ``files`` documents were read and upserted (``result``); ``skipped`` files were not
    used, each with its reason; ``pruned`` documents whose files are gone were deleted
    (with ``prune``), ``stale`` are such documents left in place (without it).
    """

    files: int
    result: AddResult
    skipped: list[Skipped] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    seconds: float = 0.0


def stored_sources(collection: Collection) -> dict[str, dict[str, Any]]:
    """``id -> metadata`` of the documents that ``vecalchemy ingest`` stored in ``collection``.

    Example::

        sorted(stored_sources(Collection.open("kb")))
    """
    table = collection.table
    stmt = (
        sa.select(table.c.id, table.c.metadata)
        .where(table.c.chunk == 0)
        .where(table.c.metadata["origin"].astext == ORIGIN)
    )
    with collection.engine.connect() as conn:
        rows = conn.execute(stmt).all()
        conn.rollback()
    return {row.id: row.metadata for row in rows}


def ingest_files(
    collection: Collection,
    paths: Sequence[str | Path],
    *,
    glob: str | None = None,
    encoding: str = "utf-8",
    root: str | Path | None = None,
    prune: bool = False,
    progress: bool = False,
) -> IngestReport:
    """Upsert the documents read from ``paths`` into ``collection``; prune or count the
    documents whose files are gone (see the module docstring).

    Raises :class:`~vecalchemy.InvalidArgument` when no file could be read, unless
    ``prune`` is set and the collection exists (an emptied directory is then pruned).

    Example::

        report = ingest_files(Collection.open("kb"), ["docs"], prune=True)
    """
    sources = read_sources(paths, glob=glob, encoding=encoding, root=root)
    docs = sources.documents
    if not docs:
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in sources.skipped[:5])
        nothing = InvalidArgument(
            "no readable text, Markdown, reStructuredText or HTML files found"
            + (f" (skipped {reasons})" if reasons else "")
            + "; check the paths, --glob and --encoding"
        )
        if not prune:
            raise nothing
        try:
            collection.count()  # only an existing collection has anything to prune
        except ConfigurationError:
            raise nothing from None
    started = time.perf_counter()
    result = (
        collection.upsert(
            [d.text for d in docs],
            metadata=[d.metadata for d in docs],
            ids=[d.id for d in docs],
            progress=progress,  # a bar with rows/s on stderr
        )
        if docs
        else AddResult(ids=[])
    )
    report = IngestReport(files=len(docs), result=result, skipped=sources.skipped)
    gone = stale_documents(stored_sources(collection), paths)
    if prune and gone:
        collection.delete(gone)
        report.pruned = gone
    else:
        report.stale = gone
    report.seconds = time.perf_counter() - started
    return report
