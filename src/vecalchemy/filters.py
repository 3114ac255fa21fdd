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
  ``true`` or ``"1"``. They compile to JSONB containment (``metadata @> '{"lang": "en"}'``,
  and ``metadata @> ANY(<array of such documents>)`` for a list of up to 10 values), which
  the collection's GIN index serves. A longer list is bound as one JSON array and
  matched with a hashed ``metadata -> 'lang' IN (SELECT jsonb_array_elements(...))``,
  whose cost does not grow with the list: the same rows, without the index (whose
  lookups, one per value, cost more than a scan for long lists on common keys).
* ``$ne``/``$nin`` are their negations, so they also match rows without the field.
* ``$lt $lte $gt $gte`` match only values of the same JSON type as the bound (numbers with
  numbers, strings with strings, in the database's collation), so a string never
  compares with a number and no cast can fail.
* ``$exists`` is true for a field present with any value, including ``null``.

There is no empty filter: ``{}``, ``None`` (JSON ``null``), ``""`` and ``[]`` are refused,
at the top as inside ``$and``/``$or``/``$not``, rather than silently matching every row
(or, under ``$not``, none). To select every row, pass no filter (``where=None``).
:func:`parse_filter` reads a filter from JSON text, as a command line gives it.

Keys and values never become SQL text: they are bound parameters (JSON documents, arrays
of them, text and text arrays). Anything else is refused with :class:`FilterError` before any
SQL is built: unknown operators, field names starting with ``$``, empty names or dotted
parts, NUL characters, text that is not valid Unicode (lone surrogates, which UTF-8
cannot encode), non-finite numbers, integers beyond the range of a double, values that
are not JSON scalars, and filters over budget. The budget, far above what an
application writes by hand or generates, keeps a hostile filter cheap to refuse and
every accepted one within what PostgreSQL and its drivers take:

=======================  =========  ======================================================
constant                 value      bounds
=======================  =========  ======================================================
``MAX_DEPTH``            32         nesting of ``$and``/``$or``/``$not``
``MAX_FIELD_LENGTH``     1,000      characters of one field name, dots included
``MAX_FIELD_PARTS``      32         parts of one dotted field name (``a.b.c`` has 3)
``MAX_IN``               10,000     values of one ``$in``/``$nin`` list
``MAX_PARAMETERS``       5,000      bound parameters of the compiled filter (PostgreSQL
                                    takes 65,535 per statement); every condition binds
                                    one to four, however long its ``$in`` list
``MAX_FILTER_SIZE``      1 MiB      bytes of keys and values the compiled filter binds
                                    (UTF-8; a number by its digits): a field name counts
                                    once per parameter holding it, so once per value of a
                                    short ``$in`` list
``MAX_FILTER_TEXT``      2 MiB      JSON text given to :func:`parse_filter`
=======================  =========  ======================================================

Checking and compiling take time linear in the size of the filter.

Example::

    from vecalchemy.filters import compile_filter

    clause = compile_filter(Chunk.metadata_, {"lang": "en", "year": {"$gte": 2020}})
    session.scalars(select(Chunk).where(clause))
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeAlias

from sqlalchemy import ColumnElement, and_, any_, bindparam, false, func, not_, or_, select
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.types import Text

from vecalchemy.errors import FilterError

__all__ = [
    "compile_filter",
    "parse_filter",
]

FIELD_OPERATORS = ("$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$nin", "$exists")
LOGICAL_OPERATORS = ("$and", "$or", "$not")

#: Nesting of ``$and``/``$or``/``$not`` (a filter with none is at depth 0).
MAX_DEPTH = 32
#: Characters of one field name, dots included.
MAX_FIELD_LENGTH = 1_000
#: Parts of one dotted field name.
MAX_FIELD_PARTS = 32
#: Values of one ``$in``/``$nin`` list.
MAX_IN = 10_000
#: Bound parameters of the compiled filter. PostgreSQL takes at most 65,535 per statement,
#: so this leaves room for the rest of the query and for several filters in one; it also
#: bounds the number of conditions (each binds at least one), and so the cost of building
#: and planning the statement (about 1.5 s on one core for 1,666 ranges, the worst case).
MAX_PARAMETERS = 5_000
#: Bytes of keys and values the compiled filter binds (see the module docstring).
MAX_FILTER_SIZE = 1 << 20
#: Characters (or bytes) of JSON text :func:`parse_filter` reads.
MAX_FILTER_TEXT = 2 << 20

_RANGE = {"$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">="}
# $in lists up to this long compile to containment, which the GIN index serves; longer
# ones to a hashed IN over one bound array. With the default jsonb_ops index a lookup
# reads the key's whole posting list, so on a key most rows have (100,000 rows, PostgreSQL
# 18) each value costs 15 ms against 70 ms to scan and hash: 1,000 values took 15 s by the
# index and 0.07 s by the scan. For rarer keys the index wins, so short lists keep it.
_CONTAINMENT_IN = 10
# Integers must fit a double's range, as JSON readers elsewhere expect (and json.dumps
# cannot write integers of more than 4,300 digits at all).
_MAX_INT_BITS = 1024
_NO_FILTER = "for no filter, pass where=None instead of a filter"

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


# -- checking: a filter (dicts and lists) to a tree of conditions, within the budget ------


@dataclass(frozen=True)
class _Equal:
    """``path`` holds ``value`` (``$eq``), or with ``negate`` does not (``$ne``)."""

    path: tuple[str, ...]
    value: Scalar
    negate: bool


@dataclass(frozen=True)
class _In:
    """``path`` holds one of ``values`` (``$in``), or with ``negate`` none (``$nin``)."""

    path: tuple[str, ...]
    values: tuple[Scalar, ...]
    negate: bool


@dataclass(frozen=True)
class _Exists:
    path: tuple[str, ...]
    present: bool


@dataclass(frozen=True)
class _Range:
    path: tuple[str, ...]
    op: str
    bound: str | int | float | bool


@dataclass(frozen=True)
class _Not:
    clause: _Node


@dataclass(frozen=True)
class _Combine:
    op: str  # "$and" or "$or"
    clauses: tuple[_Node, ...]


_Node: TypeAlias = "_Equal | _In | _Exists | _Range | _Not | _Combine"


def _parameters(node: _Equal | _In | _Exists | _Range) -> int:
    """Bound parameters :func:`_sql` gives a condition (kept next to it, and tested)."""
    nested = len(node.path) > 1  # the parents-are-objects document
    if isinstance(node, _Exists):
        return 1 + nested  # key (?), or parents document and path
    if isinstance(node, _Range):
        return 3 + nested  # key or path, JSON type name, bound
    if isinstance(node, _In) and len(node.values) > _CONTAINMENT_IN:
        return 2 + nested  # key or path, the array of values
    return 1  # one document, or one array of documents


def _path_copies(node: _Equal | _In | _Exists | _Range) -> int:
    """How many bound parameters hold (part of) the path, for the size budget."""
    if isinstance(node, _In) and len(node.values) <= _CONTAINMENT_IN:
        return max(1, len(node.values))  # one document per value
    return 1 if isinstance(node, _Equal) else 1 + (len(node.path) > 1)


def _show(value: object) -> str:
    """``repr`` of a name or value for a message, cut short if long."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else f"{value[:40]!r}..."
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}..."


class _Budget:
    """Counts parameters and bytes as the filter is read, and stops it at the limits."""

    __slots__ = ("parameters", "size")

    def __init__(self) -> None:
        self.parameters = 0
        self.size = 0

    def charge(self, parameters: int, size: int) -> None:
        self.parameters += parameters
        self.size += size
        if self.parameters > MAX_PARAMETERS:
            raise FilterError(
                f"the filter needs more than {MAX_PARAMETERS:,} bound parameters; combine "
                "equality tests on one field into $in, or filter on fewer conditions"
            )
        if self.size > MAX_FILTER_SIZE:
            raise FilterError(
                f"the filter is larger than {MAX_FILTER_SIZE:,} bytes of keys and values "
                "(a field name counts once per parameter holding it, so once per value of "
                f"an $in list of up to {_CONTAINMENT_IN}); filter on fewer or shorter values"
            )


def _utf8_size(text: str, what: str) -> int:
    """Bytes of ``text`` in UTF-8; refuses NUL and what UTF-8 cannot encode."""
    if "\x00" in text:
        raise FilterError(f"{what} may not contain NUL characters")
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise FilterError(
            f"{what} is not valid Unicode text: lone surrogate {text[exc.start]!r} at "
            f"position {exc.start} cannot be encoded as UTF-8"
        ) from None


def _scalar(value: Any, where: str) -> tuple[Scalar, int]:
    """The value, checked, and its size."""
    if value is None:
        return None, 4
    if isinstance(value, bool):
        return value, 5
    if isinstance(value, int):
        if value.bit_length() > _MAX_INT_BITS:
            raise FilterError(
                f"{where}: integer of {value.bit_length():,} bits is too large; numbers "
                "must lie within the range of a double (about 1.8e308)"
            )
        return value, len(str(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FilterError(f"{where}: {value!r} is not a finite number; JSON has no NaN or inf")
        return value, len(repr(value))
    if isinstance(value, str):
        return value, _utf8_size(value, f"{where}: string value")
    raise FilterError(
        f"{where}: expected a JSON scalar (string, number, boolean or null), got "
        f"{type(value).__name__}; use $in for lists"
    )


def _path(field: Any) -> tuple[tuple[str, ...], int]:
    """The parts of a dotted field name, checked, and the name's size."""
    if not isinstance(field, str) or not field:
        raise FilterError(f"field names must be non-empty strings, got {_show(field)}")
    if field.startswith("$"):
        raise FilterError(
            f"unknown operator {_show(field)}; use one of {', '.join(LOGICAL_OPERATORS)} to "
            "combine filters (field names may not start with $)"
        )
    if len(field) > MAX_FIELD_LENGTH:
        raise FilterError(
            f"field name {_show(field)} is {len(field):,} characters long; at most "
            f"{MAX_FIELD_LENGTH:,} are allowed"
        )
    size = _utf8_size(field, f"field name {_show(field)}")
    parts = tuple(field.split("."))
    if len(parts) > MAX_FIELD_PARTS:
        raise FilterError(
            f"field name {_show(field)} has {len(parts):,} dotted parts; at most "
            f"{MAX_FIELD_PARTS} are allowed"
        )
    if not all(parts):
        raise FilterError(f"field name {_show(field)} has an empty part between dots")
    return parts, size


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def _empty(where: Any) -> str | None:
    """How to name ``where`` if it is an empty or null filter, else None."""
    if where is None:
        return "None (JSON null)"
    if isinstance(where, (str, bytes)):
        return "an empty string" if not where else None
    if isinstance(where, Mapping):
        return "an empty object {}" if not where else None
    return "an empty list []" if _is_list(where) and not where else None


def _refuse_filter(where: Any, inside: str | None) -> NoReturn:
    """Refuse what is not a filter object, or an empty one, saying what to do instead."""
    empty = _empty(where)
    if empty is None:
        hint = "; read JSON text with parse_filter()" if isinstance(where, (str, bytes)) else ""
        place = f"{inside}: " if inside else ""
        raise FilterError(
            f"{place}a filter must be an object (a dict), got {type(where).__name__}{hint}"
        )
    if inside is None:
        raise FilterError(
            f"the filter is {empty}; a filter needs at least one condition ({_NO_FILTER})"
        )
    raise FilterError(f"{inside} got {empty}; a filter needs at least one condition")


def _check(where: Any, depth: int, budget: _Budget, inside: str | None) -> _Node:
    if depth > MAX_DEPTH:
        raise FilterError(f"filter is nested more than {MAX_DEPTH} levels deep")
    if not isinstance(where, Mapping) or not where:
        _refuse_filter(where, inside)
    clauses: list[_Node] = []
    for key, spec in where.items():
        if key in ("$and", "$or"):
            if not _is_list(spec) or not spec:
                raise FilterError(f"{key} expects a non-empty list of filters")
            budget.charge(0, len(key))
            clauses.append(_Combine(key, tuple(_check(s, depth + 1, budget, key) for s in spec)))
        elif key == "$not":
            budget.charge(0, len(key))
            clauses.append(_Not(_check(spec, depth + 1, budget, key)))
        else:
            clauses.extend(_field(key, spec, budget))
    return clauses[0] if len(clauses) == 1 else _Combine("$and", tuple(clauses))


def _field(field: str, spec: Any, budget: _Budget) -> list[_Node]:
    path, key_size = _path(field)
    name = _show(field)
    plain = not isinstance(spec, Mapping)  # a plain value means $eq
    if plain:
        spec = {"$eq": spec}
    elif not spec:
        raise FilterError(f"{name}: empty operator object; give at least one operator")
    elif not all(isinstance(k, str) and k.startswith("$") for k in spec):
        raise FilterError(
            f"{name}: an operator object may only hold operators ({', '.join(FIELD_OPERATORS)});"
            " to match a nested object use dotted field names"
        )
    nodes: list[_Node] = []
    for op, arg in spec.items():
        node, size = _operator(name if plain else f"{name} {op}", name, path, op, arg)
        budget.charge(_parameters(node), len(op) + key_size * _path_copies(node) + size)
        nodes.append(node)
    return nodes


def _operator(
    where: str, name: str, path: tuple[str, ...], op: str, arg: Any
) -> tuple[_Equal | _In | _Exists | _Range, int]:
    """The condition ``op`` makes, and the size of its values."""
    if op in ("$eq", "$ne"):
        value, size = _scalar(arg, where)
        return _Equal(path, value, negate=op == "$ne"), size
    if op in ("$in", "$nin"):
        if not _is_list(arg) or isinstance(arg, Mapping):
            raise FilterError(f"{where} expects a list of values, got {type(arg).__name__}")
        if len(arg) > MAX_IN:
            raise FilterError(f"{where} has {len(arg):,} values; at most {MAX_IN:,} are allowed")
        checked = [_scalar(v, where) for v in arg]
        values = tuple(v for v, _ in checked)
        return _In(path, values, negate=op == "$nin"), sum(size for _, size in checked)
    if op == "$exists":
        if not isinstance(arg, bool):
            raise FilterError(f"{where} expects true or false, got {_show(arg)}")
        return _Exists(path, arg), 0
    if op in _RANGE:
        bound, size = _scalar(arg, where)
        if bound is None:
            raise FilterError(f"{where}: null has no order; use $eq null or $exists")
        return _Range(path, op, bound), size
    raise FilterError(
        f"unknown operator {_show(op)} for {name}; use one of {', '.join(FIELD_OPERATORS)}"
    )


# -- compiling: the checked tree to SQL ---------------------------------------------------


def _nest(path: Sequence[str], value: Any) -> dict[str, Any]:
    doc: Any = value
    for key in reversed(path):
        doc = {key: doc}
    result: dict[str, Any] = doc
    return result


def _contains(column: ColumnElement[Any], path: Sequence[str], value: Any) -> ColumnElement[bool]:
    return column.op("@>", is_comparison=True)(bindparam(None, _nest(path, value), type_=JSONB))


def _parents_are_objects(column: ColumnElement[Any], path: tuple[str, ...]) -> ColumnElement[bool]:
    """Every parent on ``path`` is an object, in one containment test (``{"a": {"b": {}}}``).

    ``#>`` would also index arrays with a numeric part (``tags.0``), but a dotted name
    walks objects only, as containment (``$eq``) does.
    """
    return _contains(column, path[:-1], {})


def _get(column: ColumnElement[Any], path: tuple[str, ...]) -> ColumnElement[Any]:
    """The value at ``path``: ``->`` for one key (NULL on an array, as containment
    treats it), ``#>`` for a dotted path (guard it with :func:`_parents_are_objects`)."""
    if len(path) == 1:
        return column.op("->", return_type=JSONB)(bindparam(None, path[0], type_=Text))
    return column.op("#>", return_type=JSONB)(bindparam(None, list(path), type_=ARRAY(Text)))


def _guarded(
    column: ColumnElement[Any], path: tuple[str, ...], *clauses: ColumnElement[bool]
) -> ColumnElement[bool]:
    """``clauses`` on the value at ``path``, false where a parent is not an object or a
    value is missing: a missing field makes a comparison NULL, and NOT NULL is NULL
    again, so every clause is kept strictly true or false for $not to mean what it says."""
    parents = [_parents_are_objects(column, path)] if len(path) > 1 else []
    return func.coalesce(and_(*parents, *clauses), false())


def _sql(column: ColumnElement[Any], node: _Node) -> ColumnElement[bool]:
    if isinstance(node, _Combine):
        parts = [_sql(column, n) for n in node.clauses]
        return and_(*parts) if node.op == "$and" else or_(*parts)
    if isinstance(node, _Not):
        return not_(_sql(column, node.clause))
    if isinstance(node, _Equal):
        clause = _contains(column, node.path, node.value)
    elif isinstance(node, _In):
        if len(node.values) > _CONTAINMENT_IN:
            # One JSON array, unpacked once and hashed: jsonb equality and hashing agree
            # with containment on scalars (1 = 1.0, "1" <> 1), and arrays or objects never
            # equal a scalar.
            values = bindparam(None, list(node.values), type_=JSONB)
            elements = select(func.jsonb_array_elements(values).table_valued("value").c.value)
            clause = _guarded(column, node.path, _get(column, node.path).in_(elements))
        elif len(node.values) == 1:
            clause = _contains(column, node.path, node.values[0])
        else:
            # One parameter for the list (an array of documents, empty for []), which a
            # GIN bitmap index scan serves.
            docs = [_nest(node.path, v) for v in node.values]
            clause = column.op("@>", is_comparison=True)(
                any_(bindparam(None, docs, type_=ARRAY(JSONB)))
            )
    elif isinstance(node, _Exists):
        if len(node.path) == 1:  # the ? operator, which the GIN index serves
            clause = column.op("?", is_comparison=True)(bindparam(None, node.path[0], type_=Text))
        else:
            clause = and_(
                _parents_are_objects(column, node.path), _get(column, node.path).is_not(None)
            )
        return clause if node.present else not_(clause)
    else:
        value = _get(column, node.path)
        return _guarded(
            column,
            node.path,
            func.jsonb_typeof(value) == json_type(node.bound),
            value.op(_RANGE[node.op], is_comparison=True)(bindparam(None, node.bound, type_=JSONB)),
        )
    return not_(clause) if node.negate else clause


def compile_filter(column: ColumnElement[Any], where: Mapping[str, Any]) -> ColumnElement[bool]:
    """Compile a metadata filter to a SQLAlchemy boolean expression over ``column`` (JSONB).

    Raises :class:`~vecalchemy.errors.FilterError` for anything outside the language or
    over the budget (see the module docstring), before any SQL is built; nothing of the
    filter ever becomes SQL text. An empty filter (``{}``, ``None``) is an error: for no
    filter, leave the query without a ``WHERE`` (``where=None``). ``column`` must be
    ``NOT NULL`` (the collection's is): every clause is then strictly true or false.

    Example::

        clause = compile_filter(table.c.metadata, {"lang": {"$in": ["en", "de"]}})
        # metadata @> ANY (%(param_1)s::JSONB[])
    """
    return _sql(column, _check(where, 0, _Budget(), None))


def parse_filter(text: str | bytes) -> dict[str, Any]:
    """Read a filter from JSON text (a command line's ``--where``) and check it.

    Raises :class:`~vecalchemy.errors.FilterError` for text that is not JSON (or holds
    NaN, Infinity or a key twice), for ``null``, for anything but a non-empty object,
    and for anything :func:`compile_filter` would refuse; callers with no filter pass
    ``None`` instead.

    Example::

        >>> parse_filter('{"lang": "en", "year": {"$gte": 2020}}')
        {'lang': 'en', 'year': {'$gte': 2020}}
    """
    if not isinstance(text, (str, bytes)):
        raise FilterError(
            f"parse_filter reads JSON text (str or bytes), got {type(text).__name__}; "
            "pass a dict to compile_filter as it is"
        )
    if len(text) > MAX_FILTER_TEXT:
        raise FilterError(
            f"filter text is {len(text):,} characters long; at most {MAX_FILTER_TEXT:,} are allowed"
        )
    if not text.strip():
        raise FilterError(f"the filter text is empty ({_NO_FILTER})")
    try:
        where = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise FilterError(f"filter is nested more than {MAX_DEPTH} levels deep") from None
    except FilterError:
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise FilterError(f"filter is not valid JSON: {exc}") from None
    _check(where, 0, _Budget(), None)
    result: dict[str, Any] = where
    return result


def _no_constant(name: str) -> NoReturn:
    raise FilterError(f"filter text holds {name}, which is not JSON; numbers must be finite")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise FilterError(
                f"filter text gives {_show(key)} twice in one object; JSON would keep only "
                "the last, so put both conditions in one operator object or in $and"
            )
        result[key] = value
    return result
