"""Find the pgvector mistakes in any PostgreSQL database, read-only.

:func:`doctor` reads the catalog and the statistics (nothing else: it runs in a
``READ ONLY`` transaction, and a role with only ``SELECT`` rights, or none on the
tables, can run it) and returns one :class:`Finding` per mistake, each with a stable
code, a severity, the object it concerns, why it matters and the SQL that fixes it.

======  ===================================  ==================================================
code    name                                 what it detects
======  ===================================  ==================================================
VA101   extension-missing                    the database has no ``vector`` extension
VA102   extension-old                        pgvector older than 0.8.0 (no iterative scans)
VA201   vector-without-dimensions            a ``vector`` column declared without ``(n)``
VA202   too-many-dimensions                  a column over the index limit with no halfvec
                                             expression index
VA203   toasted-vectors                      vectors stored out of line (over 2 KB, or wide rows)
                                             (the planner then prefers sequential scans)
VA301   duplicate-vector-index               two vector indexes on the same column/expression
VA302   invalid-index                        an index left invalid by a failed ``CONCURRENTLY``
VA303   ivfflat-lists                        IVFFlat ``lists`` far from the rule for the rows
                                             it has now (built on an empty or small table,
                                             or the table grew)
VA304   dead-tuples                          many dead rows in a table with a vector index
                                             (dead index entries shorten searches)
VA305   hnsw-exceeds-maintenance-work-mem    an HNSW graph that would not fit in
                                             maintenance_work_mem when rebuilt
VA306   opclass-mismatch                     an index whose operator class is not the metric
                                             the model (``metadata=``) or the Collection
                                             (its table's record) declares
VA307   missing-vector-index                 (with ``metadata=``) a declared index the
                                             database lacks
VA401   random-page-cost                     a ``random_page_cost`` low enough that an
                                             unbounded distance ordering uses the index
                                             (and returns only ``ef_search`` rows)
VA500   query-not-planned                    (``queries=``) a query EXPLAIN could not plan
VA501   query-operator-not-indexed           a query's distance operator (or expression) that
                                             the column's index cannot serve
VA502   distance-order-without-limit         ORDER BY distance without LIMIT (at most
                                             ``ef_search`` rows through an index)
VA503   limit-above-ef-search                a LIMIT above ``hnsw.ef_search`` with iterative
                                             scans off (the result is cut to ef_search rows)
VA504   filter-without-iterative-scan        a filtered index scan with iterative scans off
                                             (fewer rows than the LIMIT)
VA505   filter-column-without-index          a column vector queries filter on that no index
                                             leads with
======  ===================================  ==================================================

The VA5xx checks plan the application's own queries (``queries=``, ``vecalchemy doctor
--query-file``) with ``EXPLAIN``; the session settings they compare with are those a
new session of the connecting role gets in that database.

Example::

    for finding in vecalchemy.doctor(engine):
        print(finding.code, finding.severity, finding.object, finding.message)
        print("  fix:", finding.fix)

:func:`storage_report` is the other half (``vecalchemy doctor --sizes``): per vector
column, the bytes per value (computed from the type and measured on a sample), the
table's heap, TOAST and index sizes, and what halfvec or binary quantization would save,
measured on the sample (with ``measure_indexes=True``, also in temporary tables with the
column's index built on each, scaled to the table)::

    for col in vecalchemy.storage_report(engine, table="docs"):
        print(col.column, col.measured_bytes, [o.saving for o in col.options[1:]])
"""

from __future__ import annotations

from vecalchemy.doctor._checks import CODES, Finding, doctor
from vecalchemy.doctor._queries import split_queries
from vecalchemy.doctor._sizes import (
    ColumnStorage,
    IndexSize,
    Saving,
    StorageOption,
    storage_report,
)

__all__ = [
    "CODES",
    "ColumnStorage",
    "Finding",
    "IndexSize",
    "Saving",
    "StorageOption",
    "doctor",
    "split_queries",
    "storage_report",
]
