"""Index settings that belong to the statement that needs them, and to no other.

Every distance vecalchemy builds carries the index scan that can serve it, and when a
statement is compiled the compiler records those scans with the LIMIT of the SELECT
each appears in (:mod:`vecalchemy._sql`). The compiled statement is cached, so the scans
travel with every execution of the statement: ``Session.execute``,
``Connection.execute``, ``AsyncSession``, streamed results, a nearest-neighbour query
embedded in your own query as a subquery or CTE, or a cheatsheet-style
``select(Doc).order_by(Doc.embedding.cosine_distance(q)).limit(10)`` on an
:func:`~vecalchemy.Embedding` column.

This module sets, for each such statement, every setting its scans depend on, so that
no statement inherits another's:

=========================  ======================================================
``hnsw.ef_search``         ``max(40, LIMIT)`` (at most 1,000), or ``ef_search=``
``hnsw.iterative_scan``    ``strict_order`` (rows in exact distance order), or
                           ``relaxed_order`` for the runners, which re-sort
``hnsw.max_scan_tuples``   20,000 (pgvector's default), or ``max_scan_tuples=``
``ivfflat.probes``         ``sqrt(lists)`` of the index (read by the server from the
                           index, in the same statement), or ``probes=``
``ivfflat.iterative_scan`` ``relaxed_order`` (pgvector has no strict mode for IVFFlat)
``ivfflat.max_probes``     32,768 (every list), or ``max_probes=``
``plan_cache_mode``        ``force_custom_plan`` when the SELECT filters, so that a
                           prepared statement is planned with its actual values
                           (partial indexes, partition pruning, real selectivity)
=========================  ======================================================

Iterative scans are always on: a filter, or the dead index entries that updates,
deletes and rejected loads leave behind, would otherwise cut a result short.

How, and why this way
---------------------
* **Listeners on SQLAlchemy's** ``Engine`` **and** ``Pool`` **classes**, installed when
  vecalchemy is imported, so every engine gets them, also one built without
  :func:`vecalchemy.setup`: a statement that needs settings never runs without them.
  For a statement without distances the cost is one attribute lookup. Execution
  options applied by an event would be lost as soon as a statement is embedded in
  another, and a compile-time wrapper cannot reach the ORM's result handling.
* **Before the statement**, one round trip: ``SELECT current_setting(n, true), ...,
  set_config(n, v, true), ...`` reads the values in effect and sets the new ones (the
  target list is evaluated left to right) on the statement's own DBAPI connection.
* **After it**, in a transaction, the old values are put back lazily: before the next
  statement on that connection, in the same statement as that statement's own
  settings if it is a vecalchemy statement (so consecutive searches cost one settings
  statement each), or not at all when the transaction ends first (``set_config(...,
  true)`` is ``SET LOCAL``). Every statement that goes through SQLAlchemy afterwards
  sees the transaction's own values. In AUTOCOMMIT each statement is its own
  transaction, so the settings are set for the session just before the statement and
  restored right after it, also when it fails (three round trips instead of two).
* **Streamed results** (server-side cursors) compute their rows as they are fetched,
  so their settings stay until the cursor is closed; a statement run meanwhile on the
  same connection gets settings that serve both (the larger ``ef_search``, and so on).

Per-statement overrides are execution options::

    session.execute(stmt, execution_options={"vecalchemy": ScanOptions(ef_search=200)})
    nearest(Doc.embedding, q, k=10).execution_options(vecalchemy=ScanOptions(probes=20))

On first use of a column through an engine, its indexes in the database are checked
against the declared metric (:class:`~vecalchemy.MetricMismatch` when the database's
index serves another metric: every query would silently scan the table).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import re
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BindParameter, Engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.pool import Pool

from vecalchemy._catalog import Tuning, check_metric, indexes_sql, parse_indexes
from vecalchemy._engine_state import EngineState, engine_state
from vecalchemy._sql import NEEDS_ATTR, TOP_LIMIT_ATTR, Scan, ScanNeed
from vecalchemy._typing import Order
from vecalchemy.errors import InvalidSearch, VecalchemyError
from vecalchemy.metrics import MAX_EF_SEARCH

__all__ = [
    "DEFAULT_EF_SEARCH",
    "OPTION",
    "ScanOptions",
    "after_driver_error",
    "apply_in_transaction",
    "autocommit",
    "check_scans",
    "rerun_exact",
    "settings_for",
]

log = logging.getLogger("vecalchemy.settings")

#: Execution option under which a statement's :class:`ScanOptions` are passed.
OPTION = "vecalchemy"

#: pgvector's default ``hnsw.ef_search``; vecalchemy never sets less than ``max(this, k)``.
DEFAULT_EF_SEARCH = 40
#: pgvector's default ``hnsw.max_scan_tuples``: how far an iterative scan walks.
DEFAULT_MAX_SCAN_TUPLES = 20_000
#: pgvector's default ``ivfflat.max_probes`` (every list).
DEFAULT_MAX_PROBES = 32_768
#: ``ivfflat.probes`` for an index without a ``lists`` option (pgvector builds 100).
_DEFAULT_LISTS_PROBES = 10

_STATE_KEY = "vecalchemy_settings"
_RESTORE_ATTR = "_vecalchemy_restore"


def _check_int(name: str, value: object, lo: int, hi: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidSearch(f"{name} must be an integer from {lo:,} to {hi:,}, got {value!r}")
    return value


@dataclass(frozen=True)
class ScanOptions:
    """Per-statement overrides of the index settings (see the table in this module).

    ``ef_search`` (1..1000) must not be below the statement's LIMIT; ``probes``
    (1..32768); ``order``: ``"strict"`` (default, rows in exact distance order) or
    ``"relaxed"`` (better recall, rows slightly out of order: for callers that
    re-sort); ``max_scan_tuples`` and ``max_probes`` bound iterative scans;
    ``fallback=False`` keeps what the index returns even when it is fewer rows than the
    statement's LIMIT (by default the statement then runs again without the index).

    Example::

        opts = ScanOptions(ef_search=200)
        session.execute(nearest(Doc.embedding, q, k=50), execution_options={"vecalchemy": opts})
    """

    ef_search: int | None = None
    probes: int | None = None
    order: Order = "strict"
    max_scan_tuples: int | None = None
    max_probes: int | None = None
    #: Run the statement again without the vector index when it returns fewer rows than
    #: its LIMIT (dead index entries, a selective filter); False keeps the index's rows.
    fallback: bool = True

    def __post_init__(self) -> None:
        _check_int("ef_search", self.ef_search, 1, MAX_EF_SEARCH)
        _check_int("probes", self.probes, 1, 32_768)
        _check_int("max_scan_tuples", self.max_scan_tuples, 1, 2**31 - 1)
        _check_int("max_probes", self.max_probes, 1, 32_768)
        if self.order not in ("strict", "relaxed"):
            raise InvalidSearch(f"order must be 'strict' or 'relaxed', got {self.order!r}")


_DEFAULT_OPTIONS = ScanOptions()


@dataclass(frozen=True)
class Probes:
    """``ivfflat.probes`` computed by the server: ``sqrt(lists)`` of the given indexes
    (the largest), read from their ``reloptions`` in the settings statement itself, so
    a rebuilt index is never served a stale value."""

    indexes: tuple[str, ...]
    floor: int = 1


#: A setting's value: text, or ivfflat.probes computed by the server.
Value = str | Probes


def default_probes(lists: int) -> int:
    """pgvector's advice: ``sqrt(lists)`` probes."""
    return max(1, min(lists, round(math.sqrt(lists))))


# -- which settings a statement needs -------------------------------------------------


#: A scan's key in the per-engine index checks: (table, column, opclass).
ScanKey = tuple[str, str, str]


def scan_key(scan: Scan) -> ScanKey | None:
    """The key of ``scan``'s column in the engine's index checks (None: not checked)."""
    if not scan.opclass or not scan.table:
        return None
    return (scan.table, scan.column, scan.opclass)


def settings_for(
    scans: Sequence[tuple[Scan, int | None, bool]],
    options: ScanOptions = _DEFAULT_OPTIONS,
    tuned: Mapping[ScanKey, Tuning] | None = None,
) -> dict[str, Value]:
    """The settings a statement's scans need: ``(scan, LIMIT or None, filtered)`` each.

    ``tuned`` holds the settings :func:`vecalchemy.tune` stored on the columns' indexes;
    they replace pgvector's defaults (``ef_search`` 40, ``probes`` sqrt(lists)) where
    ``options`` sets nothing, never going below a LIMIT.

    Raises :class:`~vecalchemy.InvalidSearch` for an ``ef_search`` below a LIMIT, a
    ``probes`` on an HNSW-only statement, or an ``ef_search`` on an IVFFlat-only one.

    Example::

        settings_for([(scan, 100, True)])
        # {'hnsw.ef_search': '100', 'hnsw.iterative_scan': 'strict_order', ...}
    """
    settings: dict[str, Value] = {}
    stored = tuned or {}

    def tuned_value(scan: Scan, setting: str) -> int | None:
        key = scan_key(scan)
        found = stored.get(key) if key is not None else None
        return found.value if found is not None and found.setting == setting else None

    hnsw = [(s, n) for s, n, _ in scans if s.may_use_hnsw]
    ivf = [(s, n) for s, n, _ in scans if s.may_use_ivfflat]
    if options.ef_search is not None and not hnsw:
        raise InvalidSearch("ef_search applies to HNSW indexes; this search uses IVFFlat")
    if options.probes is not None and not ivf:
        raise InvalidSearch("probes applies to IVFFlat indexes; this search uses HNSW")
    if hnsw:
        limit = max((n for _, n in hnsw if n is not None), default=0)
        if options.ef_search is not None:
            if options.ef_search < min(limit, MAX_EF_SEARCH):
                raise InvalidSearch(
                    f"ef_search={options.ef_search} is below the LIMIT {limit}: an HNSW scan "
                    "returns ef_search rows at a time, so raise ef_search or leave it unset"
                )
            ef = options.ef_search
        else:
            ef = min(
                max(max(tuned_value(s, "ef_search") or DEFAULT_EF_SEARCH, n or 0) for s, n in hnsw),
                MAX_EF_SEARCH,
            )
        settings["hnsw.ef_search"] = str(ef)
        settings["hnsw.iterative_scan"] = (
            "relaxed_order" if options.order == "relaxed" else "strict_order"
        )
        settings["hnsw.max_scan_tuples"] = str(options.max_scan_tuples or DEFAULT_MAX_SCAN_TUPLES)
    if ivf:
        if options.probes is not None:
            settings["ivfflat.probes"] = str(options.probes)
        else:
            chosen = {s: tuned_value(s, "probes") for s, _ in ivf}
            known = [v for v in chosen.values() if v is not None]
            known += [
                default_probes(s.lists) for s, _ in ivf if s.lists is not None and not chosen[s]
            ]
            lookup = tuple(
                sorted({s.index for s, _ in ivf if s.lists is None and s.index and not chosen[s]})
            )
            floor = max(known, default=1)
            settings["ivfflat.probes"] = Probes(lookup, floor) if lookup else str(floor)
        settings["ivfflat.iterative_scan"] = "relaxed_order"
        settings["ivfflat.max_probes"] = str(options.max_probes or DEFAULT_MAX_PROBES)
    if any(filtered for _, _, filtered in scans):
        settings["plan_cache_mode"] = "force_custom_plan"
    if any(limit is None for _, limit, _ in scans):
        # A distance in a SELECT without a LIMIT (all rows in order, or a filter on the
        # distance): an index scan would stop after ef_search rows, or max_scan_tuples,
        # where the caller wants them all. A planner that thinks random reads cheap
        # (random_page_cost=1.1) picks one, and so does one told enable_seqscan=off;
        # a sort never loses rows.
        settings["enable_indexscan"] = "off"
        settings["enable_seqscan"] = "on"
    return settings


def _merge(a: Mapping[str, Value], b: Mapping[str, Value]) -> dict[str, Value]:
    """Settings that serve two statements at once (a stream and a statement run while it
    is open): the larger sizes, strict order over relaxed, custom plans if either."""
    out = dict(a)
    for name, value in b.items():
        old = out.get(name)
        if old is None or old == value:
            out[name] = value
        elif isinstance(old, str) and isinstance(value, str) and old.isdigit() and value.isdigit():
            out[name] = str(max(int(old), int(value)))
        elif name == "hnsw.iterative_scan":
            out[name] = "strict_order"
        elif isinstance(old, Probes) or isinstance(value, Probes):
            out[name] = Probes(
                tuple(sorted({*getattr(old, "indexes", ()), *getattr(value, "indexes", ())})),
                max(getattr(old, "floor", 1), getattr(value, "floor", 1)),
            )
        else:
            out[name] = value
    return out


def _limit_value(context: Any, limit: int | BindParameter[Any] | None) -> int | None:
    """The value at this execution of a SELECT's LIMIT (a literal or a bind parameter)."""
    if limit is None or isinstance(limit, int):
        return limit
    compiled = context.compiled
    name = compiled.bind_names.get(limit)
    if name is not None:
        for params in context.compiled_parameters or ():
            value = params.get(name)
            if value is not None:
                return int(value)
        if limit.literal_execute:  # rendered into the SQL and popped from the parameters
            value = compiled.construct_params(
                extracted_parameters=context.extracted_parameters
            ).get(name)
            if value is not None:
                return int(value)
    value = limit.effective_value
    return int(value) if value is not None else None


def statement_settings(
    context: Any, tuned: Mapping[ScanKey, Tuning] | None = None
) -> dict[str, Value] | None:
    """The settings the statement being executed in ``context`` needs, or None."""
    compiled = getattr(context, "compiled", None)
    needs: list[ScanNeed] | None = getattr(compiled, NEEDS_ATTR, None) if compiled else None
    if not needs:
        return None
    options = context.execution_options.get(OPTION, _DEFAULT_OPTIONS)
    if not isinstance(options, ScanOptions):
        raise InvalidSearch(
            f"the {OPTION!r} execution option must be vecalchemy.ScanOptions(...), got {options!r}"
        )
    scans = [(n.scan, _rows_to_scan(context, n), n.filtered) for n in needs]
    return settings_for(scans, options, tuned)


def _rows_to_scan(context: Any, need: ScanNeed) -> int | None:
    """How many rows the scan must produce: the LIMIT, plus the OFFSET it skips."""
    limit = _limit_value(context, need.limit)
    if limit is None:
        return None
    return limit + (_limit_value(context, need.offset) or 0)


# -- the SQL that applies them ----------------------------------------------------------


def _placeholder(paramstyle: str, n: int) -> str:
    if paramstyle in ("numeric_dollar",):
        return f"${n}"
    if paramstyle == "numeric":
        return f":{n}"
    if paramstyle == "qmark":
        return "?"
    return "%s"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@functools.lru_cache(maxsize=256)
def _sql(
    paramstyle: str,
    capture: tuple[str, ...],
    assign: tuple[tuple[str, Probes | None], ...],
    local: bool,
) -> str:
    """``SELECT current_setting(...), ..., set_config(...), ...`` for one shape of settings.

    Setting names are vecalchemy's own constants, written as literals; values are
    parameters, in the order of ``assign`` (a :class:`Probes` takes one per index).
    """
    parts = [f"current_setting({_literal(n)}, true)" for n in capture]
    number = 0

    def param() -> str:
        nonlocal number
        number += 1
        return _placeholder(paramstyle, number)

    flag = "true" if local else "false"
    for name, probes in assign:
        if probes is None:
            value = param()
        else:
            # sqrt(lists) of each index, computed from its reloptions by the server.
            regs = ", ".join(f"to_regclass({param()})" for _ in probes.indexes)
            value = (
                "(SELECT greatest("
                f"{probes.floor}, max(greatest(1, round(sqrt(coalesce(o.option_value::int, "
                f"{_DEFAULT_LISTS_PROBES**2})))))::int)::text "
                "FROM pg_class c LEFT JOIN LATERAL pg_options_to_table(c.reloptions) o "
                "ON o.option_name = 'lists' "
                f"WHERE c.oid IN ({regs}))"
            )
        parts.append(f"set_config({_literal(name)}, {value}, {flag})")
    return "SELECT " + ", ".join(parts)


#: What vecalchemy's own values look like (numbers and keywords): written as literals.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.]+")


@functools.lru_cache(maxsize=256)
def _fresh_sql(wanted: tuple[tuple[str, str], ...]) -> str | None:
    """``SELECT current_setting(n, true), ..., set_config(n, 'v', true), ...`` with the
    values written in: the settings statement of a transaction's first search, which
    has nothing to put back (None when a value is not a plain number or keyword)."""
    if not all(_PLAIN_VALUE.fullmatch(value) for _, value in wanted):
        return None
    reads = [f"current_setting({_literal(name)}, true)" for name, _ in wanted]
    sets = [f"set_config({_literal(name)}, {_literal(value)}, true)" for name, value in wanted]
    return "SELECT " + ", ".join(reads + sets)


def _execute(
    fairy: Any,
    paramstyle: str,
    *,
    capture: Sequence[str] = (),
    assign: Mapping[str, Value | None] | None = None,
    local: bool,
) -> dict[str, str | None]:
    """Run one settings statement on the DBAPI connection; return the captured values."""
    assign = assign or {}
    shape = tuple((name, v if isinstance(v, Probes) else None) for name, v in assign.items())
    params: list[Any] = []
    for value in assign.values():
        if isinstance(value, Probes):
            params.extend(value.indexes)
        else:
            params.append(value)  # None resets the setting (set_config(name, NULL))
    sql = _sql(paramstyle, tuple(capture), shape, local)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s %s", sql, params)
    cursor = fairy.dbapi_connection.cursor()
    try:
        cursor.execute(sql, tuple(params) if params else ())
        row = cursor.fetchone() if capture else None
    finally:
        cursor.close()
    if row is None:
        return {}
    return {
        name: (None if value is None else str(value))
        for name, value in zip(capture, row[: len(capture)], strict=True)
    }


# -- per-connection state ---------------------------------------------------------------


@dataclass
class _State:
    """What vecalchemy set on one DBAPI connection in the current transaction."""

    #: The transaction's own values of the settings vecalchemy changed (to put back).
    saved: dict[str, str | None] = field(default_factory=dict)
    #: What vecalchemy set, in effect now.
    current: dict[str, Value] = field(default_factory=dict)
    #: The execution contexts of streamed results whose server-side cursors still
    #: compute their rows with ``current``. Weak references: a result the caller
    #: abandoned (a loop left early) stops counting once it is garbage.
    streams: list[weakref.ref[Any]] = field(default_factory=list)

    def streaming(self) -> bool:
        self.streams = [ref for ref in self.streams if _open(ref)]
        return bool(self.streams)

    def clear(self) -> None:
        self.saved.clear()
        self.current.clear()
        self.streams.clear()


def _open(ref: weakref.ref[Any]) -> bool:
    context = ref()
    cursor = getattr(context, "cursor", None)
    if cursor is None:
        return False
    closed = getattr(cursor, "closed", None)
    if isinstance(closed, bool):
        return not closed
    return getattr(cursor, "_cursor", None) is not None  # SQLAlchemy's asyncpg cursor


def autocommit(fairy: Any) -> bool:
    """Whether the pooled connection ``fairy`` is in AUTOCOMMIT (every statement its own
    transaction)."""
    return bool(getattr(fairy.dbapi_connection, "autocommit", False))


def _state(fairy: Any) -> _State | None:
    state: _State | None = fairy.info.get(_STATE_KEY)
    return state


def _restore(fairy: Any, paramstyle: str, state: _State) -> None:
    if state.saved:
        _execute(fairy, paramstyle, assign=dict(state.saved), local=True)
    state.clear()


# -- the listeners ----------------------------------------------------------------------


@event.listens_for(Engine, "before_cursor_execute")
def _before_cursor_execute(
    conn: Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    compiled = getattr(context, "compiled", None) if context is not None else None
    wanted = None
    needs = getattr(compiled, NEEDS_ATTR, None) if compiled is not None else None
    if needs:
        wanted = statement_settings(context, check_scans(conn, needs))
    fairy = conn.connection
    paramstyle = conn.dialect.paramstyle
    if wanted is None:
        state = _state(fairy)
        if state is not None and state.saved and not state.streaming():
            _restore(fairy, paramstyle, state)
        return
    if autocommit(fairy):
        old = _execute(fairy, paramstyle, capture=list(wanted), assign=wanted, local=False)
        setattr(context, _RESTORE_ATTR, old)
        return
    apply_in_transaction(fairy, paramstyle, wanted)


def apply_in_transaction(
    fairy: Any, paramstyle: str, wanted: Mapping[str, Value], cursor: Any = None
) -> None:
    """Give the statement about to run on ``fairy`` (a pooled connection in a
    transaction) the settings ``wanted``: in one settings statement that also saves the
    transaction's own values (and puts back those of an earlier statement that this one
    does not set), or none at all when they are in effect already.

    ``cursor``: a client-side cursor of ``fairy`` to run it on (else one is opened).
    """
    state = _state(fairy)
    if state is None:
        state = fairy.info.setdefault(_STATE_KEY, _State())
    if not state.saved and not state.current and not state.streams:
        # The transaction's first search: nothing to put back, nothing to merge.
        plain = tuple((n, v) for n, v in wanted.items() if isinstance(v, str))
        sql = _fresh_sql(plain) if len(plain) == len(wanted) else None
        if sql is not None:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s", sql)
            own = cursor is None
            cur = fairy.dbapi_connection.cursor() if own else cursor
            try:
                cur.execute(sql)
                row = cur.fetchone()
            finally:
                if own:
                    cur.close()
            for (name, _), value in zip(plain, row[: len(plain)], strict=True):
                state.saved[name] = None if value is None else str(value)
            state.current.update(wanted)
            return
    if state.streaming():
        wanted = _merge(state.current, wanted)
    capture = [name for name in wanted if name not in state.saved]
    restore = {name: value for name, value in state.saved.items() if name not in wanted}
    assign: dict[str, Value | None] = {
        name: value
        for name, value in wanted.items()
        if name in capture or state.current.get(name) != value
    }
    if capture or restore or assign:
        captured = _execute(
            fairy, paramstyle, capture=capture, assign={**assign, **restore}, local=True
        )
        state.saved.update(captured)
    for name in restore:
        state.saved.pop(name, None)
        state.current.pop(name, None)
    state.current.update(wanted)


#: What an exact re-run sets: no index scan can serve it, a sequential (or bitmap) scan
#: can, and a prepared statement is planned again rather than reusing its index plan.
_EXACT: dict[str, Value | None] = {
    "enable_indexscan": "off",
    "enable_seqscan": "on",
    "plan_cache_mode": "force_custom_plan",
}


def _rows_returned(cursor: Any) -> int | None:
    count = getattr(cursor, "rowcount", -1)
    if isinstance(count, int) and count >= 0:
        return count
    rows = getattr(cursor, "_rows", None)  # SQLAlchemy's asyncpg cursor buffers its rows
    return len(rows) if rows is not None else None


def _fallback(conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any) -> None:
    """A SELECT that returned fewer rows than its LIMIT from a vector index runs again,
    on the same cursor, without the index: every row that matches is found."""
    limit = getattr(context.compiled, TOP_LIMIT_ATTR, None)
    if limit is None or getattr(context, "_is_server_side", False):
        return
    options = context.execution_options.get(OPTION, _DEFAULT_OPTIONS)
    if isinstance(options, ScanOptions) and not options.fallback:
        return
    wanted = _limit_value(context, limit)
    got = _rows_returned(cursor)
    if wanted is None or got is None or got >= wanted or _writes(context.compiled):
        return
    log.debug("index scan returned %d of %d rows; running the statement exactly", got, wanted)
    rerun_exact(conn.connection, conn.dialect.paramstyle, cursor, statement, parameters)


def rerun_exact(fairy: Any, paramstyle: str, cursor: Any, statement: str, parameters: Any) -> None:
    """Run ``statement`` again on ``cursor`` with no index scan allowed (see
    :data:`_EXACT`), then put the settings back; its rows are the cursor's to fetch."""
    local = not autocommit(fairy)
    old = _execute(fairy, paramstyle, capture=list(_EXACT), assign=_EXACT, local=local)
    if local:
        # If the exact run fails, its error is the one to see: the transaction (or its
        # savepoint) is aborted, and rolling it back puts the settings back.
        cursor.execute(statement, parameters)
        _execute(fairy, paramstyle, assign=old, local=True)
        return
    try:
        cursor.execute(statement, parameters)
    finally:
        _execute(fairy, paramstyle, assign=old, local=False)


def _writes(compiled: Any) -> bool:
    """Whether the statement holds a data-modifying CTE (``WITH ... INSERT ...``): it
    must not run twice."""
    ctes = getattr(compiled, "ctes", None) or {}
    return any(getattr(getattr(cte, "element", None), "is_dml", False) for cte in ctes)


@event.listens_for(Engine, "after_cursor_execute")
def _after_cursor_execute(
    conn: Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    if context is None:
        return
    if not executemany and getattr(context.compiled, NEEDS_ATTR, None):
        _fallback(conn, cursor, statement, parameters, context)
    old = context.__dict__.pop(_RESTORE_ATTR, None)
    if old is not None:
        # AUTOCOMMIT: the session-level values go back at once. A streamed result in
        # AUTOCOMMIT holds a transaction of its own until closed, so it keeps them.
        _execute(conn.connection, conn.dialect.paramstyle, assign=old, local=False)
        return
    if getattr(context, "_is_server_side", False) and statement_settings(context) is not None:
        state = _state(conn.connection)
        if state is not None:
            state.streams.append(weakref.ref(context))


@event.listens_for(Engine, "handle_error")
def _handle_error(context: Any) -> Any:
    original = context.original_exception
    execution = context.execution_context
    connection = context.connection
    if execution is not None and connection is not None and not context.is_disconnect:
        old = execution.__dict__.pop(_RESTORE_ATTR, None)
        fairy = connection.connection if not connection.closed else None
        if fairy is not None and fairy.dbapi_connection is not None:
            if old is not None:
                try:
                    _execute(fairy, connection.dialect.paramstyle, assign=old, local=False)
                except Exception:  # the connection is unusable; the pool will drop it
                    fairy.invalidate()
            elif isinstance(original, connection.dialect.loaded_dbapi.Error):
                after_driver_error(fairy, connection.dialect.paramstyle)
    # A value refused by a checked column type (or another vecalchemy check) while the
    # statement's parameters were processed: raise it as it is, not as StatementError.
    if isinstance(original, VecalchemyError):
        return original
    return None


def after_driver_error(fairy: Any, paramstyle: str) -> None:
    """Settle the settings state of ``fairy`` after the driver raised in a transaction.

    A statement the server refused aborts the transaction (or its savepoint), and
    rolling back puts the settings back; the restore then fails and is not needed. A
    driver error raised before anything was sent left the transaction working: the
    restore is needed, and runs. (An error that is not the driver's, such as a
    vecalchemy check or a bind value, leaves the state as it is, for the next statement
    to restore; an open stream keeps them: its rows are still computed with them.)
    """
    state = _state(fairy)
    if state is not None and not state.streaming():
        with contextlib.suppress(Exception):
            _restore(fairy, paramstyle, state)
        state.clear()


@event.listens_for(Engine, "commit")
@event.listens_for(Engine, "rollback")
def _transaction_end(conn: Connection) -> None:
    if conn.closed or conn.invalidated:
        return
    state = _state(conn.connection)
    if state is not None:
        state.clear()  # SET LOCAL ends with the transaction


@event.listens_for(Pool, "checkin")
def _checkin(dbapi_connection: Any, record: Any) -> None:
    state: _State | None = record.info.get(_STATE_KEY) if record is not None else None
    if state is not None:
        state.clear()  # returned to the pool: its transaction was rolled back


# -- the database's own indexes must serve the declared metric --------------------------


def check_scans(conn: Connection, needs: Sequence[ScanNeed]) -> dict[ScanKey, Tuning]:
    """On first use through this engine (and again after RECHECK_SECONDS), check that
    the database's vector indexes on each scanned column serve the metric the statement
    orders by, and read the setting :func:`vecalchemy.tune` stored on the serving index.
    Returns the stored settings of the statement's columns."""
    state = engine_state(conn.engine)
    keys = {key: n.scan for n in needs if (key := scan_key(n.scan)) is not None}
    todo = [scan for key, scan in keys.items() if not state.fresh(key)]
    if todo:
        _read_indexes(conn, state, todo)
    return {key: found for key in keys if (found := state.tuned(key)) is not None}


def _read_indexes(conn: Connection, state: EngineState, todo: Sequence[Scan]) -> None:
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    sql = indexes_sql(_placeholder(conn.dialect.paramstyle, 1))
    for table in sorted({s.table for s in todo}):
        cursor = dbapi.cursor()
        try:
            cursor.execute(sql, (table,))
            indexes = parse_indexes(cursor.fetchall())
        finally:
            cursor.close()
        for scan in (s for s in todo if s.table == table):
            assert scan.opclass is not None
            label = f"column {_display(scan.table)}.{scan.column}"
            serving = check_metric(label, scan.column, scan.opclass, scan.metric, indexes)
            tuning = serving.tuning if serving is not None else None
            state.checked_index((scan.table, scan.column, scan.opclass), tuning)


def _display(qualified: str) -> str:
    """``"public"."docs"`` as ``public.docs``, for messages."""
    return ".".join(part.strip('"').replace('""', '"') for part in qualified.split('"."'))
