"""What the database says about a table's vector indexes, and whether they fit a column.

One query, run by the settings listener on a statement's first use of a column (raw
DBAPI cursor) and by :func:`vecalchemy.build_indexes` (SQLAlchemy connection), so both
judge the database's indexes the same way.

Private to vecalchemy.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from vecalchemy.errors import MetricMismatch
from vecalchemy.metrics import Metric

__all__ = [
    "IndexInfo",
    "check_metric",
    "indexes_sql",
    "mentions",
    "on_column",
    "parse_indexes",
    "version_tuple",
]


def indexes_sql(placeholder: str) -> str:
    """The catalog query for one table (``to_regclass`` of the placeholder's value)."""
    return (
        "SELECT i.relname, am.amname, opc.opcname, a.attname, "
        "pg_get_indexdef(x.indexrelid), x.indisvalid, x.indpred IS NOT NULL "
        "FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_am am ON am.oid = i.relam "
        "JOIN pg_opclass opc ON opc.oid = x.indclass[0] "
        "LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0] "
        f"WHERE x.indrelid = to_regclass({placeholder}) AND am.amname IN ('hnsw', 'ivfflat') "
        "ORDER BY i.relname"
    )


@dataclass(frozen=True)
class IndexInfo:
    """One vector index of a table, as the catalog describes it."""

    name: str
    method: str
    opclass: str
    #: The indexed column, or None for an expression index (a halfvec cast, ...).
    column: str | None
    definition: str
    valid: bool
    partial: bool

    @property
    def metric(self) -> Metric | None:
        """The metric the index's operator class serves."""
        found = Metric.from_opclass(self.opclass)
        return found[0] if found is not None else None


def parse_indexes(rows: Iterable[Sequence[Any]]) -> list[IndexInfo]:
    """The rows of :func:`indexes_sql` as :class:`IndexInfo` objects."""
    return [
        IndexInfo(str(r[0]), str(r[1]), str(r[2]), r[3], str(r[4]), bool(r[5]), bool(r[6]))
        for r in rows
    ]


def on_column(index: IndexInfo, column: str) -> bool:
    """Whether ``index`` indexes ``column``, directly or through an expression on it."""
    if index.column is not None:
        return index.column == column
    return mentions(index.definition.split(" USING ", 1)[-1], column)


def mentions(expression: str, column: str) -> bool:
    """Whether an index expression (or definition) refers to ``column``, quoted or not."""
    quoted = '"' + column.replace('"', '""') + '"'
    bare = rf'(?<![\w"]){re.escape(column)}(?![\w"])'
    return quoted in expression or re.search(bare, expression) is not None


def check_metric(
    label: str, column: str, opclass: str, metric: Metric, indexes: Sequence[IndexInfo]
) -> IndexInfo | None:
    """The valid index on ``column`` with ``opclass`` (None if there is none); raises
    :class:`~vecalchemy.MetricMismatch` when the column's only vector indexes serve
    another metric, because every query by ``metric`` would scan the table."""
    mine = [ix for ix in indexes if ix.valid and on_column(ix, column)]
    for ix in mine:
        if ix.opclass == opclass:
            return ix
    if not mine:
        return None
    other = mine[0]
    found = other.metric
    if found is metric:
        raise MetricMismatch(
            f"{label} is searched with {opclass}, but its index {other.name} in the "
            f"database uses {other.opclass}: an index of the same metric on another type "
            "or expression, which this ORDER BY cannot use, so every search would scan the "
            "whole table. Declare the index as the database has it (for a halfvec "
            "expression index: HNSW(quantize='halfvec')), or rebuild it: DROP INDEX "
            f"{other.name}; then vecalchemy.build_indexes(engine, Model)"
        )
    serves = repr(found.value) if found is not None else "another metric"
    fix = f"metric={found.value!r}" if found is not None else "the metric of that index"
    raise MetricMismatch(
        f"{label} is searched by {metric.value!r} ({opclass}), but its index {other.name} "
        f"in the database uses {other.opclass}, which serves {serves} queries: every search "
        f"would scan the whole table. Declare the column with {fix} to match the "
        f"database, or rebuild the index for the declared metric: DROP INDEX {other.name}; "
        "then vecalchemy.build_indexes(engine, Model)"
    )


def version_tuple(version: str) -> tuple[int, ...]:
    """An extension version as numbers: ``"0.8.0"`` -> ``(0, 8, 0)``, ``"0.7.4-dev"`` ->
    ``(0, 7, 4)``."""
    parts = []
    for part in version.split("."):
        digits = "".join(itertools.takewhile(str.isdigit, part))
        parts.append(int(digits) if digits else 0)
    return tuple(parts)
