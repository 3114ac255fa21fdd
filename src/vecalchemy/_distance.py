"""The query vector as a parameter, and the distance an index serves.

Shared by the schema (the distance methods of an :func:`~vecalchemy.Embedding` column) and
the query builders. Private to vecalchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import BindParameter, ColumnElement, bindparam, cast, func

from vecalchemy._names import describe
from vecalchemy._sql import QUERY_PARAM, Distance, column_of, plain_type, vector_param_type
from vecalchemy._vectors import as_query_value
from vecalchemy.metrics import Metric

if TYPE_CHECKING:
    from vecalchemy.schema import VectorSpec

__all__ = [
    "hamming_candidates_distance",
    "indexed_distance",
    "query_param",
    "query_value",
    "template_param",
]


def query_value(
    spec: VectorSpec, query: Any, *, column: str = "the column", exact: bool = False
) -> Any:
    """The checked query vector, as the object the driver sends for the ordered type.

    A zero vector is refused for cosine (its distance to anything is undefined).
    ``exact`` checks it for the column's own storage instead of the indexed one.
    """
    return as_query_value(
        query,
        dim=spec.dim,
        storage=spec.storage if exact else spec.query_storage,
        column=column,
        zero_ok=spec.metric is not Metric.COSINE,
    )


def query_param(
    spec: VectorSpec,
    query: Any,
    *,
    column: str = "the column",
    exact: bool = False,
    key: str = QUERY_PARAM,
) -> BindParameter[Any]:
    """The checked query vector as a bind parameter of the ordered expression's type."""
    storage = spec.storage if exact else spec.query_storage
    typ = vector_param_type(storage.value, spec.dim, plain_type(storage, spec.dim))
    return bindparam(key, query_value(spec, query, column=column, exact=exact), type_=typ)


def template_param(spec: VectorSpec, *, key: str = QUERY_PARAM) -> BindParameter[Any]:
    """The query-vector parameter without a value, bound at execution."""
    storage = spec.query_storage
    typ = vector_param_type(storage.value, spec.dim, plain_type(storage, spec.dim))
    return bindparam(key, None, type_=typ)


def indexed_distance(column: Any, spec: VectorSpec, query: Any, *, scan: bool = True) -> Distance:
    """The distance the column's index serves: on exactly the indexed expression, with
    the index's operator, the query vector cast to the indexed type (a constant to the
    planner), and the index's :class:`~vecalchemy._sql.Scan` unless ``scan=False``.

    ``query`` is a vector (checked here) or a bind parameter. For a binary-quantized
    index this is the exact distance on the column, which no index serves.
    """
    col = column_of(column)
    param = (
        query
        if isinstance(query, BindParameter)
        else query_param(spec, query, column=describe(col))
    )
    typ = spec.queryplain_type()
    lhs: ColumnElement[Any] = column
    if spec.uses_expression_index and not spec.binary_quantized:
        lhs = cast(column, typ)
    # A CAST of a parameter is still a constant to the planner, so the index is usable,
    # and it fixes the parameter's type for drivers that infer it (asyncpg).
    found = spec.scan(col) if scan and not spec.binary_quantized else None
    return Distance(lhs, cast(param, typ), spec.metric.operator, found)


def hamming_candidates_distance(
    column: Any, spec: VectorSpec, param: BindParameter[Any]
) -> Distance:
    """The Hamming distance a binary-quantized index serves:
    ``binary_quantize(column)::bit(dim) <~> binary_quantize(query)``."""
    col = column_of(column)
    codes = cast(func.binary_quantize(column), spec.indexplain_type())
    query_codes = func.binary_quantize(cast(param, spec.queryplain_type()))
    return Distance(codes, query_codes, Metric.HAMMING.operator, spec.scan(col), candidates=True)
