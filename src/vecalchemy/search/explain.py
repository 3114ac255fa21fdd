"""See the plan PostgreSQL picks for a query, with its bound query vector and settings.

Example::

    stmt = vecalchemy.nearest(Doc.embedding, q, k=10).where(Doc.lang == "en")
    print(vecalchemy.explain(session, stmt))
    assert vecalchemy.index_used(session, stmt) == "ix_docs_embedding_hnsw"
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from vecalchemy.query.explain import Explain

__all__ = ["aexplain", "explain", "index_used"]

_INDEX_SCAN = re.compile(r"Index (?:Only )?Scan using (\S+)")


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
