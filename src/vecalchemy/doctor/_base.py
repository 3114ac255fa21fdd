"""What every check of :func:`vecalchemy.doctor` shares: the finding, its codes, and
the catalog read once per call.

Private to :mod:`vecalchemy.doctor`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from vecalchemy._catalog import mentions

__all__ = ["CODES", "Catalog", "Finding", "expression_of", "indexes_on"]

#: Every finding's code and name.
CODES: dict[str, str] = {
    "VA101": "extension-missing",
    "VA102": "extension-old",
    "VA201": "vector-without-dimensions",
    "VA202": "too-many-dimensions",
    "VA203": "toasted-vectors",
    "VA301": "duplicate-vector-index",
    "VA302": "invalid-index",
    "VA303": "ivfflat-lists",
    "VA304": "dead-tuples",
    "VA305": "hnsw-exceeds-maintenance-work-mem",
    "VA306": "opclass-mismatch",
    "VA307": "missing-vector-index",
    "VA401": "random-page-cost",
    "VA500": "query-not-planned",
    "VA501": "query-operator-not-indexed",
    "VA502": "distance-order-without-limit",
    "VA503": "limit-above-ef-search",
    "VA504": "filter-without-iterative-scan",
    "VA505": "filter-column-without-index",
}


@dataclass(frozen=True)
class Finding:
    """One mistake found: ``code`` (stable, e.g. ``VA301``), ``name``, ``severity``
    (``error``: results are wrong or an index cannot work; ``warning``: slow or
    degraded; ``info``), the ``object`` it concerns (table, column or index), what was
    found, why it matters, and the SQL that ``fix``-es it."""

    code: str
    severity: str
    object: str
    message: str
    why: str
    fix: str

    @property
    def name(self) -> str:
        """The code's name, e.g. ``duplicate-vector-index``."""
        return CODES[self.code]

    def as_dict(self) -> dict[str, Any]:
        """The finding as a JSON-ready dict."""
        return {"name": self.name, **asdict(self)}


_INDEXES = """
SELECT n.nspname, t.relname AS tbl, i.relname AS idx, am.amname, x.indisvalid,
       pg_get_indexdef(x.indexrelid) AS definition, opc.opcname, x.indkey[0] AS attnum,
       a.attname, a.atttypmod AS typmod, i.reloptions,
       greatest(t.reltuples, 0)::bigint AS rows,
       x.indpred IS NOT NULL AS partial
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = i.relam
JOIN pg_opclass opc ON opc.oid = x.indclass[0]
LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
WHERE am.amname IN ('hnsw', 'ivfflat')
  AND (CAST(:table AS text) IS NULL OR t.relname = :table)
ORDER BY 1, 2, 3
"""


def expression_of(definition: str) -> str:
    """The indexed expression of a vector index, from its definition."""
    m = re.search(r"USING \w+ \((.*)\)(?: WITH| WHERE|$)", definition)
    return m.group(1) if m else definition


class Catalog:
    """What the checks read, each catalog query run once per :func:`doctor` call."""

    def __init__(self, conn: sa.Connection, table: str | None) -> None:
        self.conn = conn
        self.table = table

    @functools.cached_property
    def indexes(self) -> list[Any]:
        """The vector indexes (hnsw, ivfflat), valid or not."""
        return list(self.conn.execute(sa.text(_INDEXES), {"table": self.table}).all())


def indexes_on(cat: Catalog, schema: str, table: str, column: str) -> list[Any]:
    """The valid vector indexes of ``schema.table`` on ``column`` (or an expression of it)."""
    return [
        r
        for r in cat.indexes
        if r.nspname == schema
        and r.tbl == table
        and r.indisvalid
        and (r.attname == column or mentions(expression_of(r.definition), column))
    ]
