"""The checks of :func:`vecalchemy.doctor` on an application's own queries, by ``EXPLAIN``.

Each query is planned (never run) with ``EXPLAIN (FORMAT JSON, VERBOSE)``, and with
``GENERIC_PLAN`` when it has parameters (``$1``; ``%s``, ``%(name)s``, ``:name`` and
``?`` are turned into ``$n``). A ``LIMIT`` given as a parameter is planned as ``LIMIT
<limit>`` (10 by default): PostgreSQL would otherwise plan a generic LIMIT for a tenth
of the table, which no application asks for. The session settings checked
(``hnsw.ef_search``, the iterative scans) are those a new session of this role gets in
this database, i.e. what the application gets unless it sets them itself.

Private to :mod:`vecalchemy.doctor`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from vecalchemy._names import qualified
from vecalchemy.doctor._base import Catalog, Finding, expression_of, indexes_on
from vecalchemy.metrics import Metric

__all__ = ["check_queries", "split_queries"]

_OPS = "<->|<=>|<#>|<\\+>|<~>|<%>"
#: ``alias.column`` (optionally cast, optionally parenthesised) before a distance operator.
_DISTANCE = re.compile(
    r"\(*(?P<alias>\"(?:[^\"]|\"\")+\"|\w+)\.(?P<col>\"(?:[^\"]|\"\")+\"|\w+)\)*"
    r"(?P<cast>::\w+(?:\(\d+\))?)?\)*\s*(?P<op>" + _OPS + ")"
)
_REF = re.compile(r"(?P<alias>\"(?:[^\"]|\"\")+\"|\w+)\.(?P<col>\"(?:[^\"]|\"\")+\"|\w+)")
_LIMIT_PARAM = re.compile(r"\b(LIMIT|FETCH\s+(?:FIRST|NEXT))\s+(\$\d+)", re.IGNORECASE)
_LIMIT_VALUE = re.compile(r"\bLIMIT\s+(\d+)|\bFETCH\s+(?:FIRST|NEXT)\s+(\d+)", re.IGNORECASE)


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def split_queries(text: str) -> list[str]:
    """The statements of a SQL file: split at semicolons outside quotes, dollar quotes
    and comments; comments removed, empty statements dropped."""
    out: list[str] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            buf.append(" ")
            continue
        if ch in ("'", '"'):
            end = i + 1
            while end < n:
                if text[end] == ch:
                    if end + 1 < n and text[end + 1] == ch:
                        end += 2
                        continue
                    break
                end += 1
            buf.append(text[i : end + 1])
            i = end + 1
            continue
        dollar = re.match(r"\$(\w*)\$", text[i:]) if ch == "$" else None
        if dollar and not dollar.group(1).isdigit():
            tag = dollar.group(0)
            end = text.find(tag, i + len(tag))
            end = n if end < 0 else end + len(tag)
            buf.append(text[i:end])
            i = end
            continue
        if ch == ";":
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    out.append("".join(buf))
    return [q.strip() for q in out if q.strip()]


def _numbered(query: str) -> str:
    """``%s``, ``%(name)s``, ``:name`` and ``?`` placeholders as ``$1``, ``$2``, ...
    (the same name gets the same number), outside quoted text."""
    if re.search(r"\$\d+", query):
        return query
    names: dict[str, int] = {}
    count = 0

    def number(name: str | None) -> str:
        nonlocal count
        if name is not None and name in names:
            return f"${names[name]}"
        count += 1
        if name is not None:
            names[name] = count
        return f"${count}"

    pattern = re.compile(
        r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|%\((\w+)\)s|%s|(?<!:):(\w+)|\?(?![|&-])"
    )

    def replace(m: re.Match[str]) -> str:
        token = m.group(0)
        if token[0] in "'\"":
            return token
        return number(m.group(1) or m.group(2))

    return pattern.sub(replace, query)


@dataclass(frozen=True)
class _Node:
    plan: dict[str, Any]
    limited: bool  # a Limit node above it


def _walk(plan: dict[str, Any], limited: bool = False) -> Iterator[_Node]:
    yield _Node(plan, limited)
    below = limited or plan.get("Node Type") == "Limit"
    for child in plan.get("Plans", ()):
        yield from _walk(child, below)


def _scans(plan: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """alias -> (schema, relation) of every scan in the plan."""
    found: dict[str, tuple[str, str]] = {}
    for node in _walk(plan):
        p = node.plan
        if "Relation Name" in p:
            relation = (p.get("Schema", "public"), p["Relation Name"])
            found[p.get("Alias", p["Relation Name"])] = relation
    return found


def _snippet(query: str) -> str:
    flat = " ".join(query.split())
    return flat if len(flat) <= 90 else flat[:87] + "..."


def check_queries(cat: Catalog, queries: Sequence[str], *, limit: int = 10) -> Iterator[Finding]:
    """Findings for ``queries`` (SQL text), planned with EXPLAIN on ``cat.conn``."""
    conn: sa.Connection = cat.conn
    if conn.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).scalar():
        # pgvector's settings exist once its library is loaded in the session.
        conn.execute(sa.text("SELECT CAST('[1]' AS vector)"))
    settings: dict[str, str] = {
        str(name): str(value)
        for name, value in conn.execute(
            sa.text(
                "SELECT name, setting FROM pg_settings WHERE name IN ('hnsw.ef_search',"
                " 'hnsw.iterative_scan', 'ivfflat.iterative_scan', 'server_version_num')"
            )
        ).all()
    }
    ef_search = int(settings.get("hnsw.ef_search", 40))
    generic = int(settings.get("server_version_num", 0)) >= 160000
    vector_indexes = {(r.nspname, r.idx): r for r in cat.indexes}
    btree_cache: dict[tuple[str, str], list[tuple[str, str]]] = {}

    def other_indexes(schema: str, table: str) -> list[tuple[str, str]]:
        """(method, definition) of the table's indexes that are not vector indexes."""
        if (schema, table) not in btree_cache:
            rows = conn.execute(
                sa.text(
                    "SELECT am.amname, pg_get_indexdef(x.indexrelid) FROM pg_index x"
                    " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam"
                    " WHERE x.indrelid = to_regclass(:t) AND x.indisvalid"
                    " AND am.amname NOT IN ('hnsw', 'ivfflat')"
                ),
                {"t": qualified(schema, table)},
            ).all()
            btree_cache[(schema, table)] = [(str(a), str(d)) for a, d in rows]
        return btree_cache[(schema, table)]

    for number, raw in enumerate(queries, 1):
        query = _numbered(raw)
        label = f"query {number} ({_snippet(raw)})"
        planned = _LIMIT_PARAM.sub(lambda m: f"{m.group(1)} {limit}", query)
        options = "FORMAT JSON, VERBOSE" + (", GENERIC_PLAN" if generic and "$" in planned else "")
        savepoint = conn.begin_nested()
        try:
            plan = conn.exec_driver_sql(
                f"EXPLAIN ({options}) {planned}", execution_options={"no_parameters": True}
            ).scalar()
            savepoint.commit()
        except sa.exc.DBAPIError as exc:
            savepoint.rollback()
            message = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            yield Finding(
                "VA500",
                "info",
                f"query {number}",
                f"{label} could not be planned: {message}",
                "doctor checks a query by planning it with EXPLAIN (it never runs it)",
                "run doctor as a role that may read the query's tables, and give queries "
                "with $1-style (or %s, :name) parameters",
            )
            continue
        assert plan is not None
        root = plan[0]["Plan"]
        aliases = _scans(root)
        literal = _LIMIT_VALUE.search(planned)
        wanted = int(next(g for g in literal.groups() if g)) if literal else None
        for node in _walk(root):
            p = node.plan
            index = p.get("Index Name")
            order = p.get("Order By") if index else None
            keys = [order] if order else list(p.get("Sort Key", ()))
            for key in keys:
                m = _DISTANCE.search(key)
                if m is None:
                    continue
                schema, table = aliases.get(_unquote(m.group("alias")), ("public", ""))
                if not table and index:
                    schema, table = p.get("Schema", "public"), p.get("Relation Name", "")
                column = _unquote(m.group("col"))
                where = f"{qualified(schema, table)}.{qualified(None, column)}"
                op = m.group("op")
                by_index = bool(order) and (schema, index) in vector_indexes
                yield from _ordering(
                    cat,
                    label,
                    where,
                    (schema, table, column),
                    op,
                    m.group("cast"),
                    by_index=by_index,
                    limited=node.limited,
                )
                if by_index:
                    ix = vector_indexes[(schema, index)]
                    if (
                        node.limited
                        and ix.amname == "hnsw"
                        and wanted
                        and wanted > ef_search
                        and (settings.get("hnsw.iterative_scan", "off") == "off")
                    ):
                        yield Finding(
                            "VA503",
                            "error",
                            where,
                            f"{label} asks for {wanted} rows through HNSW index {index}, but "
                            f"hnsw.ef_search is {ef_search} and iterative scans are off",
                            "an HNSW scan returns at most ef_search rows: the result is "
                            f"silently cut to {ef_search}",
                            f"SET hnsw.ef_search = {min(max(wanted, 40), 1000)}; -- before the "
                            "query, or: SET hnsw.iterative_scan = strict_order; (vecalchemy "
                            "sets both per statement)",
                        )
                    setting = f"{ix.amname}.iterative_scan"
                    if p.get("Filter") and settings.get(setting, "off") == "off":
                        yield Finding(
                            "VA504",
                            "warning",
                            where,
                            f"{label} filters ({p['Filter']}) the rows of {ix.amname.upper()} "
                            f"index {index} with {setting} off",
                            "the index returns its nearest candidates and the filter then "
                            "drops those that do not match: a selective filter leaves fewer "
                            "rows than the LIMIT, or none",
                            f"SET {setting} = "
                            f"{'strict_order' if ix.amname == 'hnsw' else 'relaxed_order'}; "
                            "-- per query, or ALTER DATABASE <db> SET ...; vecalchemy sets it "
                            "per statement",
                        )
                filters = [
                    q.plan["Filter"]
                    for q in _walk(p)
                    if q.plan.get("Filter") and q.plan.get("Relation Name") == table
                ]
                mine = {a for a, rel in aliases.items() if rel == (schema, table)}
                yield from _unindexed_filters(
                    label, (schema, table), mine, filters, other_indexes(schema, table)
                )


def _ordering(
    cat: Catalog,
    label: str,
    where: str,
    target: tuple[str, str, str],
    op: str,
    cast: str | None,
    *,
    by_index: bool,
    limited: bool,
) -> Iterator[Finding]:
    """Findings about one ORDER BY distance: an index it cannot use, no LIMIT."""
    schema, table, column = target
    if not limited:
        yield Finding(
            "VA502",
            "error" if by_index else "warning",
            where,
            f"{label} orders by distance ({op}) without a LIMIT"
            + (", through the vector index" if by_index else ""),
            "a vector index scan returns at most hnsw.ef_search rows (40 by default): "
            + (
                "this query's result is silently cut short"
                if by_index
                else "it scans the table now, and is cut short as soon as the planner "
                "picks the index (a lower random_page_cost, more rows)"
            ),
            "add a LIMIT (the rows you need), or SET enable_indexscan = off for it",
        )
    if by_index or not table:
        return
    on_col = indexes_on(cat, schema, table, column)
    serving = [
        r for r in on_col if (found := Metric.from_opclass(r.opcname)) and found[0].operator == op
    ]
    if serving:
        ix = serving[0]
        want = expression_of(ix.definition)
        if cast is None and "::" in want:
            yield Finding(
                "VA501",
                "error",
                where,
                f"{label} orders by {column} {op} ..., but its index {ix.idx} is on "
                f"{want}: the ORDER BY must use the same expression",
                "the index cannot serve this ORDER BY, so every search scans the table",
                f"ORDER BY {want} {op} $1::{want.split('::')[-1].strip(')')} LIMIT ...",
            )
        return
    if on_col:
        ix = on_col[0]
        found = Metric.from_opclass(ix.opcname)
        served = f"{found[0].value!r} ({found[0].operator})" if found else ix.opcname
        asked = next((m for m in Metric if m.operator == op), None)
        yield Finding(
            "VA501",
            "error",
            where,
            f"{label} orders by {op}"
            + (f" ({asked.value})" if asked else "")
            + f", but index {ix.idx} uses {ix.opcname}, which serves {served}",
            "pgvector uses an index only for the operator of its operator class: every "
            "search scans the whole table",
            f"query with {found[0].operator if found else 'the index operator'} ... or "
            f"CREATE INDEX CONCURRENTLY ON {qualified(schema, table)} USING hnsw "
            f"({qualified(None, column)} "
            f"{asked.opclass(found[1]) if asked and found else '<opclass of ' + op + '>'});",
        )


def _unindexed_filters(
    label: str,
    relation: tuple[str, str],
    aliases: set[str],
    filters: Sequence[str],
    indexes: Sequence[tuple[str, str]],
) -> Iterator[Finding]:
    """VA505 for each column a vector query filters on that no index leads with."""
    schema, table = relation
    seen: set[str] = set()
    for text in filters:
        for m in _REF.finditer(text):
            column = _unquote(m.group("col"))
            if _unquote(m.group("alias")) not in aliases or column in seen:
                continue
            seen.add(column)
            quoted = qualified(None, column)
            covered = any(
                re.search(rf"USING \w+ \(\(*({re.escape(column)}|{re.escape(quoted)})\b", d)
                for _, d in indexes
            )
            if covered:
                continue
            rel = qualified(schema, table)
            jsonb = "->" in text or "@>" in text
            yield Finding(
                "VA505",
                "warning",
                f"{rel}.{quoted}",
                f"{label} filters vector results on {column}, which no index leads with",
                "with a selective filter the fast plan is an exact scan of the matching "
                "rows found through an index on the filter; without one, every search "
                "walks the vector index and discards rows (or scans the table)",
                f"CREATE INDEX CONCURRENTLY ON {rel} USING gin ({quoted} jsonb_path_ops);"
                if jsonb
                else f"CREATE INDEX CONCURRENTLY ON {rel} ({quoted});",
            )
