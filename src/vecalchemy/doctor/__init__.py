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
VA203   toasted-vectors                      vectors wider than 2 KB stored out of line
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
VA306   opclass-mismatch                     (with ``metadata=``) an index whose operator class
                                             is not the metric the model declares
VA307   missing-vector-index                 (with ``metadata=``) a declared index the
                                             database lacks
VA401   random-page-cost                     a ``random_page_cost`` low enough that an
                                             unbounded distance ordering uses the index
                                             (and returns only ``ef_search`` rows)
======  ===================================  ==================================================

Example::

    for finding in vecalchemy.doctor(engine):
        print(finding.code, finding.severity, finding.object, finding.message)
        print("  fix:", finding.fix)
"""

from __future__ import annotations

from vecalchemy.doctor._checks import CODES, Finding, doctor

__all__ = ["CODES", "Finding", "doctor"]
