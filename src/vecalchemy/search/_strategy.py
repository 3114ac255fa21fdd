"""Choosing between the vector index and an exact scan for a filtered search.

With a filter, one extra round trip asks the planner how many rows the filter matches
(``EXPLAIN (FORMAT JSON)`` of the filter alone, beside the whole table). Few matches,
found cheaply (an index on the filter column, or a small table): an exact scan of them
is faster than walking the vector index, and its recall is 1. The planner's estimate
was chosen over a bounded ``count(*)``: it costs the same whatever the filter matches,
while a count on an unindexed filter scans the table. A wrong estimate costs time,
never rows: an index scan that comes back short is followed by an exact scan.

Example::

    found = session.execute(filter_estimate(Doc.__table__, [Doc.lang == "de"])).scalar()
    prefers_exact_scan(found)   # True for 200 matches of 200,000 via a B-tree
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, literal_column, select, union_all

from vecalchemy.query.explain import Explain

__all__ = ["EXACT_SCAN_COST", "EXACT_SCAN_FACTOR", "filter_estimate", "prefers_exact_scan"]

#: ``strategy="auto"`` scans exactly when the planner expects the filter to match at most
#: ``sqrt(EXACT_SCAN_FACTOR * ef_search * table rows)`` rows (an exact scan costs about
#: one distance per match; an iterative index scan visits about ef_search / selectivity
#: tuples; the factor is fitted to docs/benchmarks.md: 1,450 rows of 20,000, 4,600 of
#: 200,000 at ef_search 40)...
EXACT_SCAN_FACTOR = 2.6
#: ...and finding them costs at most this much (planner cost units), or at most half a
#: sequential scan of the table: a filter served by an index.
EXACT_SCAN_COST = 10_000.0


def filter_estimate(table: Any, clauses: Sequence[ColumnElement[bool]]) -> Explain:
    """``EXPLAIN (FORMAT JSON)`` of the filter's rows beside the whole table's (for its
    row count), as :func:`prefers_exact_scan` reads it."""
    matching: Select[Any] = select(literal_column("1")).select_from(table).where(*clauses)
    return Explain(union_all(matching, select(literal_column("1")).select_from(table)), fmt="json")


def prefers_exact_scan(plan: Any, *, ef_search: int = 40) -> bool:
    """Whether :func:`filter_estimate`'s plan says an exact scan beats an iterative index
    scan.

    An exact scan computes the distance of every matching row; an iterative index scan
    visits about ``ef_search / selectivity`` rows. Few matches, found cheaply: the exact
    scan is faster, and its recall is 1. An unreadable plan means the index.

    Example::

        prefers_exact_scan(plan_json)   # True for 200 matches of 200,000 via a B-tree
    """
    if isinstance(plan, (str, bytes)):
        plan = json.loads(plan)
    try:
        filtered, whole = plan[0]["Plan"]["Plans"][:2]
        rows, cost = float(filtered["Plan Rows"]), float(filtered["Total Cost"])
        total_rows, scan_cost = float(whole["Plan Rows"]), float(whole["Total Cost"])
    except (LookupError, TypeError, ValueError):
        return False
    limit = math.sqrt(EXACT_SCAN_FACTOR * ef_search * max(total_rows, 1.0))
    return rows <= limit and cost <= max(EXACT_SCAN_COST, 0.5 * scan_cost)
