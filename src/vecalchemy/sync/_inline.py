"""In-process re-embedding: the ORM embeds a row in the flush that writes its text.

A class-level ``before_flush`` listener on :class:`sqlalchemy.orm.Session` (installed
when :mod:`vecalchemy` is imported) finds, among the flush's new and changed objects,
those with an ``Embedding(..., source=..., embedder=...)`` column in ``inline`` mode
whose source text differs from the text their vector was made from (its content hash),
and embeds all of them in one call per embedder. Objects whose source columns did not
change are never looked at; a source column set to the text it already had is never
re-embedded. Under :class:`~sqlalchemy.ext.asyncio.AsyncSession` the flush runs in
SQLAlchemy's greenlet, and the embedder's async twin runs off the event loop.

A vector assigned by the application in the same flush is kept (its model is recorded
as NULL, "provided by the application").

Bulk ``update(Doc).values(body=...)`` / ``insert(Doc)`` statements run through a
Session bypass the unit of work; one that sets a source column but not the embedding
raises :class:`~vecalchemy.sync.StaleEmbedding` instead of leaving an old vector behind.
Core statements on a ``Connection`` are not seen at all: declare ``sync="outbox"``,
whose trigger catches every write.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy import Column, event, inspect
from sqlalchemy.orm import Mapper, ORMExecuteState, Session, attributes
from sqlalchemy.orm.base import PASSIVE_NO_INITIALIZE
from sqlalchemy.util.concurrency import await_, in_greenlet

from vecalchemy._engine_state import engine_state
from vecalchemy._names import describe
from vecalchemy._source import (
    SOURCE_KEY,
    SourceSpec,
    content_hash,
    hash_column_name,
    model_column_name,
    source_text,
)
from vecalchemy._sql import INFO_KEY
from vecalchemy.embedders import Embedder
from vecalchemy.errors import EmbedderError, StaleEmbedding
from vecalchemy.sync._embed import check_vectors, resolve_embedder, too_long

__all__ = ["SourcedColumn", "sourced_columns"]

log = logging.getLogger("vecalchemy.sync")

_MAPPER_KEY = "_vecalchemy_sourced"


@dataclass(frozen=True)
class SourcedColumn:
    """An embedding column with a source, as the ORM sees it: attribute keys of the
    embedding, its source columns and its companion columns."""

    column: Column[Any]
    spec: SourceSpec
    key: str
    source_keys: tuple[str, ...]
    hash_key: str
    model_key: str


def sourced_columns(mapper: Mapper[Any]) -> tuple[SourcedColumn, ...]:
    """The embedding columns of ``mapper`` that have a ``source=``, cached on the mapper."""
    cached = mapper.__dict__.get(_MAPPER_KEY)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    found: list[SourcedColumn] = []
    for prop in mapper.column_attrs:
        col = prop.columns[0]
        if not isinstance(col, Column):
            continue
        spec = col.info.get(SOURCE_KEY)
        if not isinstance(spec, SourceSpec):
            continue
        by_name = {p.columns[0].name: p.key for p in mapper.column_attrs}
        missing = [c for c in spec.columns if c not in by_name]
        if missing:
            raise StaleEmbedding(
                f"{describe(col)} is embedded from {', '.join(missing)}, which "
                f"{'is' if len(missing) == 1 else 'are'} not a column of {mapper.class_.__name__}; "
                "fix source="
            )
        found.append(
            SourcedColumn(
                column=col,
                spec=spec,
                key=prop.key,
                source_keys=tuple(by_name[c] for c in spec.columns),
                hash_key=by_name[hash_column_name(col.name)],
                model_key=by_name[model_column_name(col.name)],
            )
        )
    result = tuple(found)
    mapper.__dict__[_MAPPER_KEY] = result  # kept on the mapper, like engine_state()
    return result


def _changed(obj: Any, keys: Sequence[str]) -> bool:
    return any(attributes.get_history(obj, k, passive=PASSIVE_NO_INITIALIZE).added for k in keys)


def _work(session: Session) -> dict[int, tuple[SourcedColumn, list[tuple[Any, str, str]]]]:
    """Per sourced column: the objects to embed now, with their text and its hash."""
    todo: dict[int, tuple[SourcedColumn, list[tuple[Any, str, str]]]] = {}
    for obj in (*session.new, *session.dirty):
        state = inspect(obj)
        for sc in sourced_columns(state.mapper):
            if sc.spec.sync != "inline":
                continue
            new = state.key is None
            if not new and not _changed(obj, sc.source_keys):
                continue
            text = source_text(getattr(obj, k) for k in sc.source_keys)
            digest = content_hash(text)
            if _changed(obj, (sc.key,)) and getattr(obj, sc.key) is not None:
                # The application supplied the vector: keep it, record its text.
                setattr(obj, sc.hash_key, digest)
                setattr(obj, sc.model_key, None)
                continue
            if (
                not new
                and getattr(obj, sc.hash_key) == digest
                and (
                    not text.strip()
                    or (
                        getattr(obj, sc.key) is not None
                        and getattr(obj, sc.model_key) in (None, resolve_embedder(sc.column).name)
                    )
                )
            ):
                continue  # the same text as the stored vector's, by this model
            todo.setdefault(id(sc.column), (sc, []))[1].append((obj, text, digest))
    return todo


def _embed(embedder: Embedder, texts: list[str]) -> Any:
    if in_greenlet():
        # AsyncSession: the flush runs in SQLAlchemy's greenlet; await the async twin
        # so that the event loop keeps running while the model computes.
        return await_(embedder.aembed_documents(texts))
    return embedder.embed_documents(texts)


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    if not session.new and not session.dirty:
        return
    for sc, items in _work(session).values():
        embedder = resolve_embedder(sc.column)
        _check_registered(session, sc, embedder)
        texts = [text for _, text, _ in items if text.strip()]
        if not sc.spec.truncate:
            for text in texts:
                why = too_long(embedder, text)
                if why is not None:
                    raise EmbedderError(f"{describe(sc.column)}: {why}; nothing was written")
        vectors: npt.NDArray[np.float32] | None = None
        if texts:
            spec = sc.column.info[INFO_KEY]
            vectors = check_vectors(
                _embed(embedder, texts),
                rows=len(texts),
                dim=spec.dim,
                metric=spec.metric,
                embedder=embedder,
            )
        row = 0
        for obj, text, digest in items:
            if text.strip():
                assert vectors is not None
                setattr(obj, sc.key, vectors[row])
                setattr(obj, sc.model_key, embedder.name)
                row += 1
            else:
                setattr(obj, sc.key, None)  # no text, no vector (and no stale one)
                setattr(obj, sc.model_key, None)
            setattr(obj, sc.hash_key, digest)
        log.debug("embedded %d rows of %s in the flush", len(texts), describe(sc.column))


def _check_registered(session: Session, sc: SourcedColumn, embedder: Embedder) -> None:
    """Once per engine and column: the database's record of the column's embedder (set
    by a migration) must be this one, or the flush would mix two models."""
    conn = session.connection(bind_arguments={"clause": sc.column.table})
    state = engine_state(conn.engine)
    table = sc.column.table
    schema = getattr(table, "schema", None) or "public"
    name = f"{schema}.{getattr(table, 'name', '')}.{sc.column.name}"
    if ("sync", name, embedder.name) in state.checked:
        return
    recorded = None
    if conn.execute(sa.text("SELECT to_regclass('vecalchemy.sync_targets')")).scalar() is not None:
        recorded = conn.execute(
            sa.text("SELECT embedder_name FROM vecalchemy.sync_targets WHERE target = :t"),
            {"t": name},
        ).scalar()
    if recorded is not None and recorded != embedder.name:
        raise StaleEmbedding(
            f"{describe(sc.column)} holds vectors made with {recorded} (its migration "
            f"swapped them in), but it is declared with {embedder.name}; nothing was "
            "written. Declare the column with the new embedder and dimension"
        )
    state.remember(("sync", name, embedder.name))


@event.listens_for(Session, "do_orm_execute")
def _bulk_writes(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_insert):
        return
    mapper = state.bind_mapper
    if mapper is None:
        return
    sourced = [sc for sc in sourced_columns(mapper) if sc.spec.sync == "inline"]
    if not sourced:
        return
    params = state.parameters
    keys: set[str] = set()
    if isinstance(params, dict):
        keys.update(str(k) for k in params)
    elif isinstance(params, list):
        for p in params:
            keys.update(str(k) for k in p)
    values = getattr(state.statement, "_values", None) or {}
    for k in values:
        keys.add(getattr(k, "key", str(k)))
    for sc in sourced:
        touched = sorted(keys & {*sc.source_keys, *sc.spec.columns})
        if touched and not keys & {sc.key, sc.column.name}:
            verb = "insert" if state.is_insert else "update"
            raise StaleEmbedding(
                f"a bulk {verb}() of {mapper.class_.__name__} writes {', '.join(touched)} "
                f"without {sc.key}, which is embedded from {', '.join(sc.spec.columns)} in "
                "the flush; nothing was written. Write through the Session "
                "(obj.body = ...), include the embedding in the statement, or declare "
                "sync='outbox' so that a trigger queues every write"
            )
