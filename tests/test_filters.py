"""The metadata filter language: same answers as a Python oracle, parameterised SQL only.

Hypothesis generates filters (including hostile keys and values) and checks that
PostgreSQL returns exactly the rows a plain-Python reading of the documented semantics
selects, over a fixed dataset full of awkward keys, values and types.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB

import vecalchemy
from vecalchemy.filters import compile_filter

HOSTILE_KEYS = [
    "lang",
    "year",
    "score",
    "tags",
    "draft",
    "a'b",
    'x"; DROP TABLE filter_docs; --',
    "ключ",
    "sp ace",
    "back\\slash",
    "emoji🎉",
    "%(p)s",
    "?",
]
HOSTILE_STRINGS = [
    "en",
    "de",
    "",
    "'; DROP TABLE filter_docs; --",
    "%s",
    "%(x)s",
    "\\",
    "ü",
    "🎉",
    "1",
]
SCALARS: list[Any] = [0, 1, 2, -3, 1.0, 2.5, 1e20, True, False, None, *HOSTILE_STRINGS]

metadata_table = sa.Table(
    "filter_docs",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("meta", JSONB, nullable=False),
    sa.Index("ix_filter_docs_meta", "meta", postgresql_using="gin"),
)


def _dataset() -> list[dict[str, Any]]:
    import random

    rng = random.Random(5)
    rows = []
    for _ in range(160):
        meta: dict[str, Any] = {}
        for key in rng.sample(HOSTILE_KEYS, rng.randint(0, 6)):
            roll = rng.random()
            if roll < 0.75:
                meta[key] = rng.choice(SCALARS)
            elif roll < 0.9:
                meta[key] = rng.sample(SCALARS, 2)
            else:
                meta[key] = {rng.choice(HOSTILE_KEYS): rng.choice(SCALARS)}
        if rng.random() < 0.3:
            meta["nested"] = {"lvl": rng.choice(SCALARS), "a'b": rng.choice(SCALARS)}
        rows.append(meta)
    return rows


DATA = _dataset()

# -- the oracle: the documented semantics, in plain Python --------------------------------

MISSING = object()


def _jtype(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def _get(meta: Any, path: list[str]) -> Any:
    for key in path:
        if not isinstance(meta, dict) or key not in meta:
            return MISSING
        meta = meta[key]
    return meta


def _equal(x: Any, v: Any) -> bool:
    return (
        x is not MISSING
        and _jtype(x) == _jtype(v)
        and _jtype(x) not in ("array", "object")
        and x == v
    )


def _oracle(meta: dict[str, Any], where: dict[str, Any]) -> bool:
    for key, spec in where.items():
        if key == "$and":
            ok = all(_oracle(meta, w) for w in spec)
        elif key == "$or":
            ok = any(_oracle(meta, w) for w in spec)
        elif key == "$not":
            ok = not _oracle(meta, spec)
        else:
            x = _get(meta, key.split("."))
            ops = spec if isinstance(spec, dict) else {"$eq": spec}
            ok = all(_op(x, op, arg) for op, arg in ops.items())
        if not ok:
            return False
    return True


def _op(x: Any, op: str, arg: Any) -> bool:
    if op == "$eq":
        return _equal(x, arg)
    if op == "$ne":
        return not _equal(x, arg)
    if op == "$in":
        return any(_equal(x, v) for v in arg)
    if op == "$nin":
        return not any(_equal(x, v) for v in arg)
    if op == "$exists":
        return (x is not MISSING) == arg
    if x is MISSING or _jtype(x) != _jtype(arg):
        return False
    return {"$lt": x < arg, "$lte": x <= arg, "$gt": x > arg, "$gte": x >= arg}[op]


# -- strategies ----------------------------------------------------------------------------

fields = st.sampled_from([*HOSTILE_KEYS, "nested.lvl", "nested.a'b", "missing", "tags.0"])
scalars = st.sampled_from(SCALARS)
orderable = st.sampled_from([s for s in SCALARS if s is not None])
field_ops = st.one_of(
    scalars,
    st.fixed_dictionaries({"$eq": scalars}),
    st.fixed_dictionaries({"$ne": scalars}),
    st.fixed_dictionaries({"$in": st.lists(scalars, max_size=4)}),
    st.fixed_dictionaries({"$nin": st.lists(scalars, max_size=4)}),
    st.fixed_dictionaries({"$exists": st.booleans()}),
    st.dictionaries(
        st.sampled_from(["$lt", "$lte", "$gt", "$gte"]), orderable, min_size=1, max_size=2
    ),
)
leaf = st.dictionaries(fields, field_ops, min_size=1, max_size=2)
filters = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.fixed_dictionaries({"$and": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"$or": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"$not": inner}),
    ),
    max_leaves=6,
)


@pytest.fixture
def loaded(connection: Connection) -> Connection:
    metadata_table.create(connection)
    connection.execute(
        sa.insert(metadata_table), [{"id": i, "meta": m} for i, m in enumerate(DATA)]
    )
    return connection


def _sql_ids(conn: Connection, where: dict[str, Any]) -> set[int]:
    clause = compile_filter(metadata_table.c.meta, where)
    return set(conn.scalars(sa.select(metadata_table.c.id).where(clause)))


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(where=filters)
def test_filters_match_the_oracle(loaded: Connection, where: dict[str, Any]) -> None:
    """For any filter, PostgreSQL selects exactly the rows the documented semantics select."""
    want = {i for i, m in enumerate(DATA) if _oracle(m, where)}
    assert _sql_ids(loaded, where) == want, json.dumps(where)


@given(key=st.text(min_size=1, max_size=30), value=st.one_of(st.text(max_size=30), st.integers()))
def test_hostile_keys_and_values_stay_parameters(key: str, value: Any) -> None:
    """No key or value ever appears in the SQL text: all are bound parameters."""
    try:
        clause = compile_filter(
            sa.column("meta", JSONB), {key: value, "$or": [{key: {"$gt": value}}]}
        )
    except vecalchemy.FilterError:
        return  # refused up front (a $ key, an empty dotted part, a NUL): also safe
    sql = str(clause.compile(dialect=postgresql.dialect()))
    for part in key.split("."):
        if len(part) > 2:
            assert part not in sql
    if isinstance(value, str) and len(value) > 2:
        assert value not in sql


def test_containment_uses_the_gin_index(loaded: Connection) -> None:
    """Equality and $in compile to @> and the GIN index serves them."""
    loaded.exec_driver_sql("SET LOCAL enable_seqscan = off")
    stmt = sa.select(metadata_table.c.id).where(
        compile_filter(metadata_table.c.meta, {"lang": {"$in": ["en", "de"]}})
    )
    plan = vecalchemy.explain(loaded, stmt)
    assert "ix_filter_docs_meta" in plan, plan
    stmt = sa.select(metadata_table.c.id).where(
        compile_filter(metadata_table.c.meta, {"draft": {"$exists": True}})
    )
    assert "ix_filter_docs_meta" in vecalchemy.explain(loaded, stmt)


def test_hostile_strings_round_trip(loaded: Connection) -> None:
    """A value that looks like SQL or a placeholder is matched literally."""
    evil = "'; DROP TABLE filter_docs; --"
    want = {i for i, m in enumerate(DATA) if any(_equal(v, evil) for v in m.values())}
    got = _sql_ids(loaded, {"$or": [{k: evil} for k in HOSTILE_KEYS]})
    assert got == want
    assert got  # the dataset has some
    assert loaded.execute(sa.select(sa.func.count()).select_from(metadata_table)).scalar() == len(
        DATA
    )


BAD = [
    ({"$where": "1=1"}, "unknown operator '\\$where'"),
    ({"lang": {"$regex": "e.*"}}, "unknown operator '\\$regex' for 'lang'"),
    ({"lang": {"$eq": "en", "other": 1}}, "may only hold operators"),
    ({"": 1}, "non-empty strings"),
    ({"a..b": 1}, "empty part between dots"),
    ({"lang": {}}, "empty operator object"),
    ({"lang": ["en"]}, "expected a JSON scalar .* got list; use \\$in"),
    ({"lang": {"$in": "en"}}, "expects a list of values, got str"),
    ({"score": {"$gt": None}}, "null has no order"),
    ({"score": float("nan")}, "not a finite number"),
    ({"score": {"$lt": float("inf")}}, "not a finite number"),
    ({"lang": "a\x00b"}, "NUL"),
    ({"a\x00": 1}, "NUL"),
    ({"draft": {"$exists": "yes"}}, "expects true or false"),
    ({"$or": []}, "non-empty list"),
    ({"$and": {"a": 1}}, "non-empty list"),
    ({"$not": [1]}, "must be an object"),
    ({"x": {"$in": list(range(10_001))}}, "at most 10,000"),
]


@pytest.mark.parametrize(("where", "message"), BAD)
def test_bad_filters_are_refused(where: dict[str, Any], message: str) -> None:
    """Everything outside the language raises FilterError (a ValueError) with a clear message."""
    with pytest.raises(vecalchemy.FilterError, match=message) as info:
        compile_filter(sa.column("meta", JSONB), where)
    assert isinstance(info.value, ValueError)


def test_deep_nesting_is_refused() -> None:
    """Filters nested more than 32 levels deep are refused rather than recursed into."""
    where: dict[str, Any] = {"a": 1}
    for _ in range(40):
        where = {"$not": where}
    with pytest.raises(vecalchemy.FilterError, match="more than 32 levels"):
        compile_filter(sa.column("meta", JSONB), where)


def test_empty_filter_matches_everything(loaded: Connection) -> None:
    """{} selects every row."""
    assert _sql_ids(loaded, {}) == set(range(len(DATA)))
