"""See the plan PostgreSQL picks for a query, keeping its bound query vector.

``EXPLAIN`` needs the statement with its parameters, and the query vector is a bound
parameter; :func:`explain` compiles ``EXPLAIN <your select>`` with the select's own
parameters, and :func:`index_used` says which index (if any) served it.

Example::

    stmt = vecalchemy.nearest(Doc.embedding, q, k=10).where(Doc.lang == "en")
    print(vecalchemy.explain(session, stmt))
    assert vecalchemy.index_used(session, stmt) == "ix_docs_embedding_hnsw"
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection, Executable
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

__all__ = ["Explain", "aexplain", "explain", "index_used"]

_INDEX_SCAN = re.compile(r"Index (?:Only )?Scan using (\S+)")


class Explain(Executable, ClauseElement):
    """``EXPLAIN [ANALYZE] <statement>`` with the statement's own bound parameters.

    ``fmt="json"`` asks for ``FORMAT JSON`` (one row holding the plan as JSON).

    Example::

        plan = session.execute(Explain(select(Doc.id).where(Doc.lang == "en"), fmt="json"))
    """

    inherit_cache = False

    def __init__(self, stmt: Any, analyze: bool = False, *, fmt: str = "text") -> None:
        self.stmt = stmt
        self.analyze = analyze
        self.fmt = fmt


@compiles(Explain)
def _compile(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    options = ["ANALYZE", "BUFFERS"] if element.analyze else []
    if element.fmt == "json":
        options.append("FORMAT JSON")
    prefix = f"EXPLAIN ({', '.join(options)}) " if options else "EXPLAIN "
    return prefix + compiler.process(element.stmt, **kw)


def explain(session: Session | Connection, stmt: Any, *, analyze: bool = False) -> str:
    """The plan PostgreSQL chooses for ``stmt``, as text.

    ``analyze=True`` runs the query too and reports real timings and buffers.

    Example::

        print(vecalchemy.explain(session, vecalchemy.nearest(Doc.embedding, q)))
        # Limit  (cost=...)
        #   ->  Index Scan using ix_docs_embedding_hnsw on docs  (cost=...)
    """
    rows = session.execute(Explain(stmt, analyze)).all()
    return "\n".join(str(r[0]) for r in rows)


async def aexplain(
    session: AsyncSession | AsyncConnection, stmt: Any, *, analyze: bool = False
) -> str:
    """The async twin of :func:`explain`.

    Example::

        print(await vecalchemy.aexplain(async_session, stmt))
    """
    rows = (await session.execute(Explain(stmt, analyze))).all()
    return "\n".join(str(r[0]) for r in rows)


def index_used(session: Session | Connection, stmt: Any) -> str | None:
    """The name of the index PostgreSQL would scan for ``stmt``, or None.

    Example::

        assert vecalchemy.index_used(session, stmt) == "ix_docs_embedding_hnsw"
    """
    found = _INDEX_SCAN.search(explain(session, stmt))
    return found.group(1) if found else None
