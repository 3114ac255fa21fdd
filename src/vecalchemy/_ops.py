"""SQL operators written once.

Private to vecalchemy.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Float

__all__ = ["divide"]

# Division binds like SQL's "/" (tighter than + and -), so operands get parentheses.
_DIV_PRECEDENCE = 8


def divide(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[float]:
    """``a / b`` in double precision, without SQLAlchemy's true-division casts."""
    return a.op("/", precedence=_DIV_PRECEDENCE, return_type=Float)(b)
