"""``EXPLAIN <statement>`` as a SQLAlchemy construct that keeps the statement's parameters.

``EXPLAIN`` needs the statement with its parameters, and the query vector is a bound
parameter; :class:`Explain` compiles ``EXPLAIN <your select>`` with the select's own
parameters (and its index settings, which the compiled statement carries).
:func:`vecalchemy.explain` runs it.

Example::

    plan = session.execute(Explain(nearest(Doc.embedding, q), fmt="json")).scalar()
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Executable
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

__all__ = ["Explain"]


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
