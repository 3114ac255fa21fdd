"""The direct path of a nearest-neighbour search: compiled once, run on the DBAPI cursor.

``Connection.execute`` costs the driver's own work several times over for a top-k
query of ten rows (the execution context, the compiled-cache key, the event dispatch,
the cursor result). For the index statement of a plan :func:`vecalchemy.run` built
itself (a :class:`~vecalchemy.query.nearest.NearestPlan` template, the same ``Select``
object for every query of one column and ``k``), this module does the same work with
SQLAlchemy's public API only:

* the statement is compiled once per engine (``Select.compile`` with its dialect) and
  kept in the engine's state; its parameters go through the bind processors of their
  types, as ``Connection.execute`` would send them;
* the transaction is begun as autobegin would (``Connection.begin`` when none is in
  progress), so ``commit()`` and ``rollback()`` behave exactly as after ``execute``;
* the settings come from the same code as the listeners' (the per-connection state with
  its lazy restore, the metric check and stored tuning of the column's index), so they
  are set for this statement and put back before the next one, however it runs;
* an index scan that came back short runs again exactly, as the listener's fallback does;
* rows are SQLAlchemy ``Row`` objects (``row.id``, ``row._mapping["id"]`` and
  ``row._mapping[docs.c.id]`` all work), made with the result processors of the
  selected columns' types;
* a driver error is raised as ``Connection.execute`` raises it: the matching
  ``sqlalchemy.exc.DBAPIError`` subclass, and a connection found dead is invalidated.

It steps aside (the statement runs through ``Connection.execute``) wherever it could
change what a caller sees: a ``Session`` (ORM loading, autoflush, the identity map),
listeners other than vecalchemy's on statement or cursor execution or on errors
(logging, tracing), ``echo``, AUTOCOMMIT, execution options other than a few that
do not concern a SELECT, a closed or invalidated connection, and statements whose
SQL is rendered per execution (expanding ``IN`` lists, literal-execute parameters).

Async connections run the same code inside ``AsyncConnection.run_sync``.

Private to vecalchemy. The debug log ``vecalchemy.search.direct`` says when it steps aside.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from sqlalchemy import BindParameter, Connection, Select, exc
from sqlalchemy.engine import Row, result_tuple
from sqlalchemy.ext.asyncio import AsyncConnection

from vecalchemy._engine_state import engine_state
from vecalchemy._sql import NEEDS_ATTR, TOP_LIMIT_ATTR, ScanNeed
from vecalchemy.search._settings import (
    OPTION,
    ScanOptions,
    after_driver_error,
    apply_in_transaction,
    autocommit,
    check_scans,
    rerun_exact,
    settings_for,
)

__all__ = ["DirectRows"]

log = logging.getLogger("vecalchemy.search.direct")

#: Execution options that do not change how a SELECT runs or what it returns.
_HARMLESS_OPTIONS = frozenset(
    {"isolation_level", "compiled_cache", "logging_token", "preserve_rowcount"}
)

#: The listeners vecalchemy itself installs (on every Engine): any more, and the
#: statement runs through ``Connection.execute`` so that they see it.
_OWN_LISTENERS = {
    "before_execute": 0,
    "after_execute": 0,
    "before_cursor_execute": 1,
    "after_cursor_execute": 1,
}
_OWN_ERROR_LISTENERS = 1


@dataclass
class _Compiled:
    """One statement compiled for one dialect, and how to bind and read it."""

    sql: str
    #: Bind names in the order of the SQL's placeholders (positional paramstyles).
    order: tuple[str, ...] | None
    defaults: dict[str, Any]
    processors: dict[str, Callable[[Any], Any]]
    needs: tuple[ScanNeed, ...]
    #: The top SELECT's LIMIT (an int or a bind name), for the exact fallback.
    top_limit: int | str | None
    #: For each ScanNeed: its LIMIT and OFFSET as ints or bind names.
    limits: tuple[tuple[int | str | None, int | str | None], ...]
    columns: tuple[Any, ...]
    #: Made at the first execution, from the cursor's description.
    make_row: Callable[[Sequence[Any]], Row[Any]] | None = None
    row_processors: list[Callable[[Any], Any] | None] | None = None
    #: Settings per (options, stored tuning), which are the same for every query.
    settings: dict[Any, dict[str, Any]] = field(default_factory=dict)


#: What the engine's ``compiled`` cache holds for a statement the direct path leaves to
#: SQLAlchemy (so it is not compiled again on every call).
_NOT_DIRECT = object()


def _bind_name(compiled: Any, value: int | BindParameter[Any] | None) -> int | str | None:
    if value is None or isinstance(value, int):
        return value
    name = compiled.bind_names.get(value)
    if name is None:
        raise LookupError("a LIMIT outside the compiled statement")
    return str(name)


def _compile(stmt: Select[Any], dialect: Any) -> _Compiled | None:
    compiled = stmt.compile(dialect=dialect)
    if (
        compiled.literal_execute_params
        or compiled.post_compile_params
        or getattr(compiled, "escaped_bind_names", None)
    ):
        return None  # the SQL is rendered per execution: leave it to SQLAlchemy
    try:
        top = _bind_name(compiled, getattr(compiled, TOP_LIMIT_ATTR, None))
        needs: tuple[ScanNeed, ...] = tuple(getattr(compiled, NEEDS_ATTR, None) or ())
        limits = tuple(
            (_bind_name(compiled, n.limit), _bind_name(compiled, n.offset)) for n in needs
        )
    except LookupError:
        return None
    processors: dict[str, Callable[[Any], Any]] = {}
    for bind, name in compiled.bind_names.items():
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors[name] = processor
    return _Compiled(
        sql=str(compiled),
        order=tuple(compiled.positiontup or ()) if compiled.positional else None,
        defaults=dict(compiled.construct_params()),
        processors=processors,
        needs=needs,
        top_limit=top,
        limits=limits,
        columns=tuple(stmt.selected_columns),
    )


def _compiled_for(conn: Connection, stmt: Select[Any]) -> _Compiled | None:
    """``stmt`` compiled for ``conn``'s dialect, kept with the engine (see EngineState)."""
    cache = engine_state(conn.engine).compiled
    found = cache.get(stmt)
    if found is None:
        found = _compile(stmt, conn.dialect) or _NOT_DIRECT
        cache[stmt] = found
    return found if isinstance(found, _Compiled) else None


def _eligible(conn: Connection) -> bool:
    """Whether running on the DBAPI cursor changes nothing anyone can see."""
    if conn.closed or conn.invalidated:
        return False
    if not _HARMLESS_OPTIONS.issuperset(conn.get_execution_options()):
        return False
    engine = conn.engine
    if engine.echo or engine.logger.isEnabledFor(logging.INFO):
        return False
    dispatch = conn.dispatch
    for name, ours in _OWN_LISTENERS.items():
        if len(getattr(dispatch, name)) != ours:
            return False
    return len(conn.dialect.dispatch.handle_error) == _OWN_ERROR_LISTENERS


def _value(params: Mapping[str, Any], ref: int | str | None) -> int | None:
    if ref is None or isinstance(ref, int):
        return ref
    value = params.get(ref)
    return None if value is None else int(value)


def _settings(c: _Compiled, conn: Connection, params: Mapping[str, Any], scan: ScanOptions) -> Any:
    tuned = check_scans(conn, c.needs) if c.needs else {}
    key = (scan, tuple(sorted(tuned.items())))
    if all(not isinstance(r, str) for pair in c.limits for r in pair):
        found = c.settings.get(key)
        if found is not None:
            return found
    scans = []
    for need, (limit, offset) in zip(c.needs, c.limits, strict=True):
        rows = _value(params, limit)
        if rows is not None:
            rows += _value(params, offset) or 0
        scans.append((need.scan, rows, need.filtered))
    wanted = settings_for(scans, scan, tuned)
    if len(c.settings) < 64:
        c.settings[key] = wanted
    return wanted


def direct_rows(
    conn: Connection, stmt: Select[Any], params: Mapping[str, Any], scan: ScanOptions
) -> list[Row[Any]] | None:
    """The rows of ``stmt`` run on ``conn``'s DBAPI cursor, or None when it steps aside."""
    if not _eligible(conn):
        log.debug("stepping aside: the connection has listeners, echo or options")
        return None
    dialect = conn.dialect
    c = _compiled_for(conn, stmt)
    if c is None:
        return None
    fairy = conn.connection
    if autocommit(fairy):
        return None
    values = {**c.defaults, **params}
    dbapi = fairy.dbapi_connection
    if dbapi is None:
        return None
    if log.isEnabledFor(logging.DEBUG):
        log.debug("ran directly: %s", c.sql)
    if not conn.in_transaction():
        conn.begin()  # what autobegin does before a statement
    paramstyle = dialect.paramstyle
    cursor = None
    try:
        # The index check reads the catalog on first use: inside, so that its driver
        # errors are raised as SQLAlchemy's too.
        wanted = _settings(c, conn, values, scan) if c.needs else None
        for name, processor in c.processors.items():
            values[name] = processor(values.get(name))
        bound: Any = tuple(values[n] for n in c.order) if c.order is not None else values
        cursor = dbapi.cursor()
        if wanted is not None:
            apply_in_transaction(fairy, paramstyle, wanted, cursor)
        cursor.execute(c.sql, bound)
        rows = cursor.fetchall()
        limit = _value(values, c.top_limit)
        if scan.fallback and c.needs and limit is not None and len(rows) < limit:
            log.debug("index scan returned %d of %d rows; running it exactly", len(rows), limit)
            rerun_exact(fairy, paramstyle, cursor, c.sql, bound)
            rows = cursor.fetchall()
        if c.make_row is None:
            _prepare_rows(c, dialect, cursor.description)
    except dialect.loaded_dbapi.Error as error:
        if cursor is not None:
            with contextlib.suppress(Exception):
                cursor.close()
        _raise(conn, fairy, cursor, c.sql, values, error)
    cursor.close()
    assert c.make_row is not None
    make, processors = c.make_row, c.row_processors
    if processors is None:
        return [make(row) for row in rows]
    return [
        make([v if p is None else p(v) for p, v in zip(processors, row, strict=True)])
        for row in rows
    ]


def _prepare_rows(c: _Compiled, dialect: Any, description: Any) -> None:
    if len(description) != len(c.columns):
        raise AssertionError("the statement returned other columns than it selects")
    keys = [d[0] for d in description]
    extra = [
        (col, col.key) if getattr(col, "key", None) not in (None, d[0]) else (col,)
        for col, d in zip(c.columns, description, strict=True)
    ]
    processors = [
        col.type.dialect_impl(dialect).result_processor(dialect, d[1])
        for col, d in zip(c.columns, description, strict=True)
    ]
    c.row_processors = processors if any(p is not None for p in processors) else None
    c.make_row = result_tuple(keys, extra=extra)


def _raise(
    conn: Connection, fairy: Any, cursor: Any, sql: str, params: Any, error: Exception
) -> NoReturn:
    """Raise a driver error as ``Connection.execute`` does; settle the settings state."""
    dialect = conn.dialect
    dbapi = fairy.dbapi_connection
    disconnect = bool(dbapi is not None and dialect.is_disconnect(error, dbapi, cursor))  # type: ignore[arg-type]
    if not disconnect and dbapi is not None:
        after_driver_error(fairy, dialect.paramstyle)
    wrapped = exc.DBAPIError.instance(
        sql,
        params,
        error,
        dialect.loaded_dbapi.Error,
        hide_parameters=conn.engine.hide_parameters,
        connection_invalidated=disconnect,
        dialect=dialect,
    )
    if disconnect:
        conn.invalidate(error)
    raise wrapped from error


@dataclass(frozen=True)
class DirectRows:
    """The step that runs a reused statement (a nearest-neighbour template's index
    statement, or a reused fused statement) with its values bound: directly on a
    ``Connection`` where it can (see this module), else through ``execute``."""

    statement: Select[Any]
    params: Mapping[str, Any]
    scan: ScanOptions

    def run(self, bind: Any) -> list[Any]:
        """The rows, directly on a Connection, else through ``bind.execute``."""
        if isinstance(bind, Connection):
            rows = direct_rows(bind, self.statement, self.params, self.scan)
            if rows is not None:
                return rows
        result = bind.execute(
            self.statement, dict(self.params), execution_options={OPTION: self.scan}
        )
        return list(result.all())

    async def arun(self, bind: Any) -> list[Any]:
        """The async twin of :meth:`run` (``AsyncConnection.run_sync``)."""
        if isinstance(bind, AsyncConnection):
            rows = await bind.run_sync(direct_rows, self.statement, self.params, self.scan)
            if rows is not None:
                return rows
        result = await bind.execute(
            self.statement, dict(self.params), execution_options={OPTION: self.scan}
        )
        return list(result.all())
