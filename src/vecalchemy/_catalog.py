"""What the database says about a table's vector indexes, and whether they fit a column.

One query, run by the settings listener on a statement's first use of a column (raw
DBAPI cursor) and by :func:`vecalchemy.build_indexes` (SQLAlchemy connection), so both
judge the database's indexes the same way.

Private to vecalchemy.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from vecalchemy.errors import MetricMismatch
from vecalchemy.metrics import Metric

__all__ = [
    "TUNING_KEY",
    "IndexInfo",
    "Tuning",
    "check_metric",
    "comment_record",
    "indexes_sql",
    "mentions",
    "on_column",
    "parse_indexes",
    "parse_tuning",
    "version_tuple",
]


def indexes_sql(placeholder: str) -> str:
    """The catalog query for one table (``to_regclass`` of the placeholder's value)."""
    return (
        "SELECT i.relname, am.amname, opc.opcname, a.attname, "
        "pg_get_indexdef(x.indexrelid), x.indisvalid, x.indpred IS NOT NULL, "
        "obj_description(x.indexrelid, 'pg_class') "
        "FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_am am ON am.oid = i.relam "
        "JOIN pg_opclass opc ON opc.oid = x.indclass[0] "
        "LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0] "
        f"WHERE x.indrelid = to_regclass({placeholder}) AND am.amname IN ('hnsw', 'ivfflat') "
        "ORDER BY i.relname"
    )


#: The key of vecalchemy's record in an index's comment: ``{"vecalchemy": {"tuned": ...}}``.
TUNING_KEY = "vecalchemy"


@dataclass(frozen=True)
class Tuning:
    """A setting measured by :func:`vecalchemy.tune` and stored on the index it was
    measured on (in the index's comment): ``setting`` is ``"ef_search"`` or
    ``"probes"``, ``value`` what searches of the column use by default, reaching
    ``recall`` (held-out) at ``k`` against a ``target``, on ``rows`` rows, at ``at``
    (ISO time)."""

    setting: str
    value: int
    k: int
    target: float
    recall: float
    rows: int
    at: str

    @staticmethod
    def record_comment(record: dict[str, Any]) -> str:
        """An index comment holding vecalchemy's ``record``."""
        return json.dumps({TUNING_KEY: record}, sort_keys=True)

    def as_comment(self, existing: dict[str, Any] | None = None) -> str:
        """The index comment that records this tuning (keeping ``existing``'s other keys)."""
        record = dict(existing or {})
        record["tuned"] = {
            "setting": self.setting,
            "value": self.value,
            "k": self.k,
            "target": self.target,
            "recall": self.recall,
            "rows": self.rows,
            "at": self.at,
        }
        return self.record_comment(record)


def comment_record(comment: str | None) -> dict[str, Any] | None:
    """vecalchemy's record in an index comment, ``{}`` for no comment, or None when the
    comment is someone else's text (which vecalchemy must not overwrite)."""
    if not comment:
        return {}
    try:
        parsed = json.loads(comment)
    except ValueError:
        return None
    if isinstance(parsed, dict) and set(parsed) == {TUNING_KEY}:
        record = parsed[TUNING_KEY]
        return dict(record) if isinstance(record, dict) else None
    return None


def parse_tuning(comment: str | None) -> Tuning | None:
    """The :class:`Tuning` recorded in an index comment, or None (none, or unreadable:
    a hand-edited comment never breaks a search)."""
    record = comment_record(comment)
    tuned = record.get("tuned") if record else None
    if not isinstance(tuned, dict):
        return None
    try:
        found = Tuning(
            setting=str(tuned["setting"]),
            value=int(tuned["value"]),
            k=int(tuned["k"]),
            target=float(tuned["target"]),
            recall=float(tuned["recall"]),
            rows=int(tuned["rows"]),
            at=str(tuned["at"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
    limit = 1000 if found.setting == "ef_search" else 32_768
    if found.setting not in ("ef_search", "probes") or not 1 <= found.value <= limit:
        return None
    return found


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
    #: The index's comment (where :func:`vecalchemy.tune` stores its setting).
    comment: str | None = None

    @property
    def tuning(self) -> Tuning | None:
        """The tuned setting stored on this index, if any."""
        return parse_tuning(self.comment)

    @property
    def metric(self) -> Metric | None:
        """The metric the index's operator class serves."""
        found = Metric.from_opclass(self.opclass)
        return found[0] if found is not None else None


def parse_indexes(rows: Iterable[Sequence[Any]]) -> list[IndexInfo]:
    """The rows of :func:`indexes_sql` as :class:`IndexInfo` objects."""
    return [
        IndexInfo(str(r[0]), str(r[1]), str(r[2]), r[3], str(r[4]), bool(r[5]), bool(r[6]), r[7])
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
