"""A metadata filter language, compiled to parameterised SQL over a JSONB column.

Filters are dictionaries in the style of MongoDB::

    {"lang": "en"}                                   # equality
    {"year": {"$gte": 2020, "$lt": 2025}}            # ranges (several operators: AND)
    {"tags": {"$in": ["db", "search"]}}              # membership
    {"draft": {"$exists": False}}                    # presence
    {"$or": [{"lang": "en"}, {"lang": "de"}], "$not": {"source": "wiki"}}
    {"author.name": "Ada"}                           # a dotted key walks nested objects

Operators: ``$eq $ne $lt $lte $gt $gte $in $nin $exists`` on fields, and ``$and $or $not``
to combine filters. A field given a plain value means ``$eq``.

Semantics, chosen so that every operator is exact and never fails at run time:

* ``$eq``/``$in`` compare whole JSON values, by JSON type: ``1`` equals ``1.0``, but not
  ``true`` or ``"1"``. They compile to JSONB containment (``metadata @> '{"lang": "en"}'``),
  which the collection's GIN index serves.
* ``$ne``/``$nin`` are their negations, so they also match rows without the field.
* ``$lt $lte $gt $gte`` match only values of the same JSON type as the bound (numbers with
  numbers, strings with strings, in the database's collation), so a string never
  compares with a number and no cast can fail.
* ``$exists`` is true for a field present with any value, including ``null``.

Keys and values never become SQL text: they are bound parameters (JSON documents and
text arrays). Anything else is refused with :class:`FilterError` before any SQL runs:
unknown operators, field names starting with ``$``, empty names, NUL characters,
non-finite numbers, nesting deeper than 32 levels, values that are not JSON scalars.

Example::

    from vecalchemy.filters import compile_filter

    clause = compile_filter(Chunk.metadata_, {"lang": "en", "year": {"$gte": 2020}})
    session.scalars(select(Chunk).where(clause))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, false, func, not_, or_, true
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.types import Text

from vecalchemy.errors import FilterError

__all__ = ["FIELD_OPERATORS", "LOGICAL_OPERATORS", "compile_filter", "json_type"]

FIELD_OPERATORS = ("$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$nin", "$exists")
LOGICAL_OPERATORS = ("$and", "$or", "$not")
_RANGE = {"$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">="}
_MAX_DEPTH = 32
_MAX_IN = 10_000

Scalar = str | int | float | bool | None


def json_type(value: Scalar) -> str:
    """The ``jsonb_typeof`` name of a JSON scalar: number, string, boolean or null.

    Example::

        >>> json_type(True), json_type(3), json_type("x"), json_type(None)
        ('boolean', 'number', 'string', 'null')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


def _scalar(value: Any, where: str) -> Scalar:
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FilterError(f"{where}: {value!r} is not a finite number; JSON has no NaN or inf")
        return value
    if isinstance(value, str):
        if "\x00" in value:
            raise FilterError(f"{where}: strings may not contain NUL characters")
        return value
    raise FilterError(
        f"{where}: expected a JSON scalar (string, number, boolean or null), got "
        f"{type(value).__name__}; use $in for lists"
    )


def _path(field: Any) -> list[str]:
    if not isinstance(field, str) or not field:
        raise FilterError(f"field names must be non-empty strings, got {field!r}")
    if field.startswith("$"):
        raise FilterError(
            f"unknown operator {field!r}; use one of {', '.join(LOGICAL_OPERATORS)} to "
            "combine filters (field names may not start with $)"
        )
    if "\x00" in field:
        raise FilterError("field names may not contain NUL characters")
    parts = field.split(".")
    if any(not p for p in parts):
        raise FilterError(f"field name {field!r} has an empty part between dots")
    return parts


def _nest(path: list[str], value: Scalar) -> dict[str, Any]:
    doc: Any = value
    for key in reversed(path):
        doc = {key: doc}
    result: dict[str, Any] = doc
    return result


def _contains(column: ColumnElement[Any], path: list[str], value: Scalar) -> ColumnElement[bool]:
    return column.op("@>", is_comparison=True)(bindparam(None, _nest(path, value), type_=JSONB))


def _get(column: ColumnElement[Any], path: list[str]) -> ColumnElement[Any]:
    return column.op("#>", return_type=JSONB)(bindparam(None, path, type_=ARRAY(Text)))


def _objects_along(column: ColumnElement[Any], path: list[str]) -> list[ColumnElement[bool]]:
    """Conditions that every parent on ``path`` is an object.

    ``#>`` would also index arrays with a numeric part (``tags.0``), but a dotted name
    walks objects only, as containment (``$eq``) does.
    """
    return [func.jsonb_typeof(_get(column, path[:i])) == "object" for i in range(1, len(path))]


def _exists(column: ColumnElement[Any], path: list[str]) -> ColumnElement[bool]:
    if len(path) == 1:  # the ? operator, which the GIN index serves
        return column.op("?", is_comparison=True)(bindparam(None, path[0], type_=Text))
    return func.coalesce(
        and_(*_objects_along(column, path), _get(column, path).is_not(None)), false()
    )


def _field(column: ColumnElement[Any], field: str, spec: Any, depth: int) -> ColumnElement[bool]:
    path = _path(field)
    if not isinstance(spec, Mapping) or not spec:
        if isinstance(spec, Mapping):
            raise FilterError(f"{field!r}: empty operator object; give at least one operator")
        return _contains(column, path, _scalar(spec, repr(field)))
    if not all(isinstance(k, str) and k.startswith("$") for k in spec):
        raise FilterError(
            f"{field!r}: an operator object may only hold operators ({', '.join(FIELD_OPERATORS)});"
            " to match a nested object use dotted field names"
        )
    clauses = [_operator(column, field, path, op, arg) for op, arg in spec.items()]
    return and_(*clauses) if len(clauses) > 1 else clauses[0]


def _operator(
    column: ColumnElement[Any], field: str, path: list[str], op: str, arg: Any
) -> ColumnElement[bool]:
    where = f"{field!r} {op}"
    if op == "$eq":
        return _contains(column, path, _scalar(arg, where))
    if op == "$ne":
        return not_(_contains(column, path, _scalar(arg, where)))
    if op in ("$in", "$nin"):
        if isinstance(arg, (str, bytes, Mapping)) or not isinstance(arg, Sequence):
            raise FilterError(f"{where} expects a list of values, got {type(arg).__name__}")
        if len(arg) > _MAX_IN:
            raise FilterError(f"{where} has {len(arg):,} values; at most {_MAX_IN:,} are allowed")
        values = [_scalar(v, where) for v in arg]
        anyof = or_(*(_contains(column, path, v) for v in values)) if values else false()
        return anyof if op == "$in" else not_(anyof)
    if op == "$exists":
        if not isinstance(arg, bool):
            raise FilterError(f"{where} expects true or false, got {arg!r}")
        present = _exists(column, path)
        return present if arg else not_(present)
    if op in _RANGE:
        bound = _scalar(arg, where)
        if bound is None:
            raise FilterError(f"{where}: null has no order; use $eq null or $exists")
        value = _get(column, path)
        compared = and_(
            *_objects_along(column, path),
            func.jsonb_typeof(value) == json_type(bound),
            value.op(_RANGE[op], is_comparison=True)(bindparam(None, bound, type_=JSONB)),
        )
        # A missing field makes the comparison NULL, and NOT NULL is NULL again: keep every
        # clause strictly true or false so that $not and $nor mean what they say.
        return func.coalesce(compared, false())
    raise FilterError(
        f"unknown operator {op!r} for {field!r}; use one of {', '.join(FIELD_OPERATORS)}"
    )


def _compile(column: ColumnElement[Any], where: Any, depth: int) -> ColumnElement[bool]:
    if depth > _MAX_DEPTH:
        raise FilterError(f"filter is nested more than {_MAX_DEPTH} levels deep")
    if not isinstance(where, Mapping):
        raise FilterError(f"a filter must be an object (a dict), got {type(where).__name__}")
    clauses: list[ColumnElement[bool]] = []
    for key, spec in where.items():
        if key in ("$and", "$or"):
            if (
                isinstance(spec, (str, bytes, Mapping))
                or not isinstance(spec, Sequence)
                or not spec
            ):
                raise FilterError(f"{key} expects a non-empty list of filters")
            parts = [_compile(column, sub, depth + 1) for sub in spec]
            clauses.append(and_(*parts) if key == "$and" else or_(*parts))
        elif key == "$not":
            clauses.append(not_(_compile(column, spec, depth + 1)))
        else:
            clauses.append(_field(column, key, spec, depth))
    if not clauses:
        return true()
    return and_(*clauses) if len(clauses) > 1 else clauses[0]


def compile_filter(column: ColumnElement[Any], where: Mapping[str, Any]) -> ColumnElement[bool]:
    """Compile a metadata filter to a SQLAlchemy boolean expression over ``column`` (JSONB).

    Raises :class:`~vecalchemy.errors.FilterError` for anything outside the language;
    nothing of the filter ever becomes SQL text. ``column`` must be ``NOT NULL`` (the
    collection's is): every clause is then strictly true or false.

    Example::

        clause = compile_filter(table.c.metadata, {"lang": {"$in": ["en", "de"]}})
        # metadata @> %(param_1)s OR metadata @> %(param_2)s
    """
    return _compile(column, where, 0)
