"""The metadata filter language: same answers as a Python oracle, parameterised SQL only.

Hypothesis generates filters (including hostile keys and values) and checks that
PostgreSQL returns exactly the rows a plain-Python reading of the documented semantics
selects, over a fixed dataset full of awkward keys, values and types.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

import vecalchemy
from tests.conftest import recorded_statements
from vecalchemy.filters import (
    MAX_FIELD_LENGTH,
    MAX_FIELD_PARTS,
    MAX_FILTER_SIZE,
    MAX_FILTER_TEXT,
    MAX_IN,
    MAX_PARAMETERS,
    _Budget,
    _check,
    compile_filter,
    parse_filter,
)

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


def _sql_ids(conn: Connection, where: dict[str, Any], *also: sa.ColumnElement[bool]) -> set[int]:
    clause = compile_filter(metadata_table.c.meta, where)
    return set(conn.scalars(sa.select(metadata_table.c.id).where(*also, clause)))


@pytest.fixture(params=["containment", "hashed"])
def in_form(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Compile $in/$nin lists as short ones (containment) or as long ones (hashed IN)."""
    if request.param == "hashed":
        monkeypatch.setattr(vecalchemy.filters, "_CONTAINMENT_IN", 0)
    return str(request.param)


@pytest.mark.slow
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(where=filters)
def test_filters_match_the_oracle(loaded: Connection, in_form: str, where: dict[str, Any]) -> None:
    """For any filter, PostgreSQL selects exactly the rows the documented semantics select.

    Both forms of $in/$nin (containment for short lists, a hashed IN for long ones) give
    the same rows.
    """
    want = {i for i, m in enumerate(DATA) if _oracle(m, where)}
    assert _sql_ids(loaded, where) == want, json.dumps(where)


@given(key=st.text(min_size=1, max_size=30), value=st.one_of(st.text(max_size=30), st.integers()))
def test_hostile_keys_and_values_stay_parameters(key: str, value: Any) -> None:
    """No key or value ever reaches the SQL text: all are bound parameters.

    The SQL is exactly that of a placeholder key of the same dotted shape and a
    placeholder value (a substring test would trip over keys such as 'fal' in 'false').
    """

    def sql(k: str, v: Any) -> str:
        where = {k: v, "$or": [{k: {"$gt": v}}, {k: {"$in": [v, v]}}, {k: {"$exists": True}}]}
        clause = compile_filter(sa.column("meta", JSONB), where)
        return str(clause.compile(dialect=postgresql.psycopg.dialect()))

    try:
        hostile = sql(key, value)
    except vecalchemy.FilterError:
        return  # refused up front (a $ key, an empty dotted part, a NUL): also safe
    assert hostile == sql(".".join("k" * len(key.split("."))), "v")


def test_containment_uses_the_gin_index(loaded: Connection) -> None:
    """Equality and $in (up to 10 values) compile to @> and the GIN index serves them."""
    loaded.exec_driver_sql("SET LOCAL enable_seqscan = off")
    for where in ({"lang": "en"}, {"lang": {"$in": ["en", "de"]}}, {"year": {"$in": [*range(10)]}}):
        stmt = sa.select(metadata_table.c.id).where(compile_filter(metadata_table.c.meta, where))
        plan = vecalchemy.explain(loaded, stmt)
        assert "Bitmap Index Scan on ix_filter_docs_meta" in plan, plan
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


# -- refused before any SQL runs ------------------------------------------------------------


def _refused_delete(conn: Connection, where: Any, message: str) -> vecalchemy.FilterError:
    """A DELETE with the filter raises FilterError matching ``message`` and touches nothing."""
    with recorded_statements(conn) as sent, pytest.raises(vecalchemy.FilterError) as info:
        conn.execute(sa.delete(metadata_table).where(compile_filter(metadata_table.c.meta, where)))
    assert re.search(message, str(info.value)), str(info.value)
    assert sent == []
    count = sa.select(sa.func.count()).select_from(metadata_table)
    assert conn.execute(count).scalar() == len(DATA)
    return info.value


def _parameters(where: dict[str, Any]) -> int:
    clause = compile_filter(sa.column("meta", JSONB), where)
    return len(clause.compile(dialect=postgresql.psycopg.dialect()).params)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=filters)
def test_the_budget_counts_every_parameter(in_form: str, where: dict[str, Any]) -> None:
    """The parameters the budget counts are exactly those the compiled filter binds."""
    budget = _Budget()
    _check(where, 0, budget, None)
    assert budget.parameters == _parameters(where), json.dumps(where)


@pytest.mark.parametrize(
    "where",
    [{"$not": {}}, {"$and": [{}]}, {"$or": [{"lang": "en"}, {}]}],
    ids=["not", "and", "or"],
)
@pytest.mark.parametrize("empty", [{}, None, [], ""], ids=["object", "null", "list", "string"])
def test_empty_filters_are_refused(loaded: Connection, empty: Any, where: Any) -> None:
    """{}, None, [] and "" are no filter at all: an error saying to pass where=None.

    Nested in $and/$or/$not they are refused too, rather than matching everything (or,
    under $not, nothing). Until now {} compiled to TRUE, and a DELETE with it emptied
    the table.
    """
    exc = _refused_delete(loaded, empty, r"needs at least one condition \(for no filter, pass")
    assert "where=None" in str(exc)
    op = next(iter(where))
    nested = json.loads(json.dumps(where).replace("{}", json.dumps(empty)))
    _refused_delete(loaded, nested, f"^\\{op} got .*; a filter needs at least one condition$")


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"lang": "\ud800"}, r"^'lang': string value is not valid Unicode text: lone surrogate"),
        ({"lang": {"$in": ["en", "x\udfff"]}}, r"^'lang' \$in: string value .* position 1 "),
        ({"year": {"$gt": "\ud800"}}, r"^'year' \$gt: string value is not valid Unicode"),
        ({"a\ud800b": 1}, r"^field name 'a\\ud800b' is not valid Unicode text"),
        ({"a\ud800": {"$exists": True}}, r"^field name 'a\\ud800' is not valid Unicode"),
        ({"nested.\udc80": {"$lt": 3}}, r"^field name 'nested\.\\udc80' .* position 7 "),
    ],
    ids=["value", "in", "range", "key", "exists-key", "dotted-key"],
)
def test_unencodable_text_is_refused(loaded: Connection, where: Any, message: str) -> None:
    """Lone surrogates (which UTF-8 cannot encode) give FilterError naming the key.

    They used to reach the driver: psycopg failed to encode them, or PostgreSQL refused
    the JSON document.
    """
    exc = _refused_delete(loaded, where, message)
    assert "cannot be encoded as UTF-8" in str(exc)


def test_huge_integers_are_refused(loaded: Connection) -> None:
    """Integers beyond a double's range are refused (json.dumps cannot even write 10**5000)."""
    _refused_delete(loaded, {"year": 10**5000}, r"^'year': integer of 16,610 bits is too large")
    assert _sql_ids(loaded, {"year": {"$lt": 2**1024 - 1}}) == {
        i for i, m in enumerate(DATA) if _op(_get(m, ["year"]), "$lt", 2**1024 - 1)
    }


# -- the budget -----------------------------------------------------------------------------

LONG_KEY = ".".join(["a"] * 5_000)  # 9,999 characters, 5,000 parts


@pytest.mark.parametrize("spec", [1, {"$gt": 1}, {"$exists": True}, {"$in": [1, 2]}])
def test_long_field_names_are_refused(loaded: Connection, spec: Any) -> None:
    """A 10 KB dotted key is refused at once (it took 12 s of CPU, or hit a RecursionError)."""
    _refused_delete(
        loaded,
        {LONG_KEY: spec},
        r"^field name 'a\.a\.a.*'\.\.\. is 9,999 characters long; at most 1,000 are allowed$",
    )


def test_deep_field_names_are_refused(loaded: Connection) -> None:
    """A dotted key of more than MAX_FIELD_PARTS parts is refused."""
    key = ".".join(["k"] * (MAX_FIELD_PARTS + 1))
    _refused_delete(loaded, {key: {"$lt": 1}}, r"has 33 dotted parts; at most 32 are allowed$")


def test_dotted_paths_bind_a_fixed_number_of_parameters() -> None:
    """A path's parents are checked in one parameter, not one per prefix (which was quadratic)."""
    for parts in (2, MAX_FIELD_PARTS):
        key = ".".join(["k"] * parts)
        assert _parameters({key: {"$gt": 1}}) == 4  # parents, path, JSON type, bound
        assert _parameters({key: {"$exists": True}}) == 2  # parents, path
        assert _parameters({key: 1}) == 1
        assert _parameters({key: {"$in": list(range(10))}}) == 1  # documents
        assert _parameters({key: {"$nin": list(range(11))}}) == 3  # parents, path, values
    assert _parameters({"k": {"$in": list(range(MAX_IN))}}) == 2  # key, values


def test_the_longest_and_deepest_field_names_work(loaded: Connection) -> None:
    """A key of MAX_FIELD_PARTS parts and MAX_FIELD_LENGTH characters compiles and matches."""
    part = "p" * ((MAX_FIELD_LENGTH - MAX_FIELD_PARTS + 1) // MAX_FIELD_PARTS)
    path = [part] * (MAX_FIELD_PARTS - 1) + [
        "q" * (MAX_FIELD_LENGTH - (MAX_FIELD_PARTS - 1) * (len(part) + 1))
    ]
    key = ".".join(path)
    assert len(key) == MAX_FIELD_LENGTH
    deep: Any = 7
    for p in reversed(path):
        deep = {p: deep}
    wrong: Any = [{path[-1]: 7}]  # an array where an object should be
    for p in reversed(path[:-1]):
        wrong = {p: wrong}
    loaded.execute(
        sa.insert(metadata_table), [{"id": 1000, "meta": deep}, {"id": 1001, "meta": wrong}]
    )
    assert _sql_ids(loaded, {key: 7}) == {1000}
    assert _sql_ids(loaded, {key: {"$in": [7, 8]}}) == {1000}
    assert _sql_ids(loaded, {key: {"$gte": 7, "$lt": 8}}) == {1000}
    assert _sql_ids(loaded, {key: {"$exists": True}}) == {1000}  # not 1001: an array
    assert _sql_ids(loaded, {key: {"$ne": 7}}) == set(range(len(DATA))) | {1001}


def test_long_in_lists_bind_one_parameter_each(loaded: Connection) -> None:
    """Seven $in lists of 10,000 values bind two parameters each and are hashed, not scanned.

    They used to bind one parameter per value (70,000) and failed at the driver, which
    takes at most 65,535, after 14 s of CPU. (test_containment_uses_the_gin_index shows
    the index serving short lists.)
    """
    # Each list holds a few of the dataset's values and integers that occur nowhere in it
    # (SCALARS holds none of them), so the oracle needs only the few.
    few = {key: SCALARS[j::7] for j, key in enumerate(HOSTILE_KEYS[:7])}
    filler = list(range(1_000, 1_000 + MAX_IN))
    lists = {key: (v + filler)[:MAX_IN] for key, v in few.items()}
    where: dict[str, Any] = {"$or": [{k: {"$in": v}} for k, v in lists.items()]}
    assert _parameters(where) == 14
    stmt = sa.select(metadata_table.c.id).where(compile_filter(metadata_table.c.meta, where))
    assert vecalchemy.explain(loaded, stmt).count("hashed SubPlan") == 7
    # The first rows only (PostgreSQL tests the cheap id first): the oracle test covers
    # the semantics; this one the size.
    rows = range(40)
    first = metadata_table.c.id < len(rows)
    oracle = {"$or": [{k: {"$in": v}} for k, v in few.items()]}
    want = {i for i in rows if _oracle(DATA[i], oracle)}
    assert want
    assert _sql_ids(loaded, where, first) == want
    key = HOSTILE_KEYS[0]
    want = {i for i in rows if _oracle(DATA[i], {key: {"$nin": few[key]}})}
    assert want
    assert _sql_ids(loaded, {key: {"$nin": lists[key]}}, first) == want
    assert _sql_ids(loaded, {"lang": {"$in": []}}) == set()
    assert _sql_ids(loaded, {"lang": {"$nin": []}}) == set(range(len(DATA)))


def test_too_many_parameters_are_refused(loaded: Connection) -> None:
    """A filter binding more than MAX_PARAMETERS parameters is refused before SQL is built."""
    at_limit = {"$or": [{"year": i} for i in range(MAX_PARAMETERS)]}
    assert _parameters(at_limit) == MAX_PARAMETERS
    over = {"$or": [{"year": i} for i in range(MAX_PARAMETERS + 1)]}
    _refused_delete(loaded, over, r"^the filter needs more than 5,000 bound parameters; combine")
    ranges = {"$or": [{"year": {"$gt": i}} for i in range(MAX_PARAMETERS // 3 + 1)]}
    _refused_delete(loaded, ranges, r"more than 5,000 bound parameters")


def test_too_large_filters_are_refused(loaded: Connection) -> None:
    """A filter binding more than MAX_FILTER_SIZE bytes of keys and values is refused.

    A field name counts once per parameter holding it: once per value of a short $in
    list, whose documents repeat it.
    """
    message = r"^the filter is larger than 1,048,576 bytes of keys and values"
    _refused_delete(loaded, {"lang": {"$in": ["x" * 200] * 6_000}}, message)
    key = "k" * MAX_FIELD_LENGTH
    short = {"$or": [{key: {"$in": list(range(10))}}] * 105}  # 105 x 10 x 1,000 bytes
    _refused_delete(loaded, short, message)
    assert _sql_ids(loaded, {"$or": short["$or"][:100]}) == set()
    _refused_delete(loaded, {"$or": [{"lang": "é" * 50_000}] * 11}, message)  # UTF-8 bytes
    assert MAX_FILTER_SIZE == 1 << 20
    fits = {"lang": {"$in": ["x" * 100] * MAX_IN}}  # 10,000 x (4 + 100) bytes
    assert _sql_ids(loaded, fits) == set()


# -- parse_filter ---------------------------------------------------------------------------


def test_parse_filter_reads_json_objects(loaded: Connection) -> None:
    """parse_filter returns the filter as a dict, which selects what the dict selects."""
    text = '{"$or": [{"lang": "en"}, {"year": {"$gte": 1, "$lt": 2.5}}], "draft": {"$ne": true}}'
    where = parse_filter(text)
    assert where == {
        "$or": [{"lang": "en"}, {"year": {"$gte": 1, "$lt": 2.5}}],
        "draft": {"$ne": True},
    }
    assert parse_filter(text.encode()) == where
    want = {i for i, m in enumerate(DATA) if _oracle(m, where)}
    assert want
    assert _sql_ids(loaded, where) == want


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("null", r"^the filter is None \(JSON null\); .* pass where=None"),
        ("{}", r"^the filter is an empty object \{\}; .* pass where=None"),
        ("[]", r"^the filter is an empty list \[\]; .* pass where=None"),
        ('""', r"^the filter is an empty string; .* pass where=None"),
        ("", r"^the filter text is empty \(for no filter, pass where=None"),
        (" \n", r"^the filter text is empty"),
        ('"lang"', r"^a filter must be an object \(a dict\), got str"),
        ("[1]", r"^a filter must be an object \(a dict\), got list"),
        ("3", r"^a filter must be an object \(a dict\), got int"),
        ('{"lang": "en"', r"^filter is not valid JSON: Expecting ',' delimiter: line 1 column 14"),
        ("{'lang': 'en'}", r"^filter is not valid JSON: Expecting property name"),
        ('{"a": NaN}', r"^filter text holds NaN, which is not JSON"),
        ('{"a": {"$gt": -Infinity}}', r"^filter text holds -Infinity"),
        ('{"a": 1e999}', r"^'a': inf is not a finite number"),
        ('{"a": 1, "a": 2}', r"^filter text gives 'a' twice in one object"),
        ('{"a": "\\ud800"}', r"^'a': string value is not valid Unicode text"),
        ('{"a": {"$regex": "x"}}', r"^unknown operator '\$regex' for 'a'"),
        ('{"$not": {}}', r"^\$not got an empty object \{\}"),
        ("[" * 100_000, r"^filter is nested more than 32 levels deep"),
        ('{"a": ' + "1" * 5_000 + "}", r"^filter is not valid JSON: Exceeds the limit"),
        (b'{"a": "\xff"}', r"^filter is not valid JSON: 'utf-8' codec can't decode byte 0xff"),
        (" " * (MAX_FILTER_TEXT + 1), r"^filter text is 2,097,153 characters long; at most"),
    ],
)
def test_parse_filter_refuses_what_is_not_a_filter(text: str | bytes, message: str) -> None:
    """Invalid JSON, null, non-objects, empty objects and bad filters raise FilterError."""
    with pytest.raises(vecalchemy.FilterError) as info:
        parse_filter(text)
    assert re.search(message, str(info.value)), str(info.value)


def test_parse_filter_wants_text() -> None:
    """A dict given to parse_filter is a mistake worth naming."""
    with pytest.raises(vecalchemy.FilterError, match=r"reads JSON text \(str or bytes\), got dict"):
        parse_filter({"lang": "en"})  # type: ignore[arg-type]


def test_filter_text_is_a_hint_for_compile_filter() -> None:
    """JSON text given to compile_filter points at parse_filter."""
    with pytest.raises(vecalchemy.FilterError, match=r"got str; read JSON text with parse_filter"):
        compile_filter(sa.column("meta", JSONB), '{"lang": "en"}')  # type: ignore[arg-type]


async def test_every_form_runs_on_the_async_drivers(async_connection: AsyncConnection) -> None:
    """Each compiled form (containment, arrays of documents, the hashed IN over one JSON
    array, dotted guards, ranges) binds and selects the oracle's rows on psycopg async
    and asyncpg too."""
    await async_connection.run_sync(metadata_table.create)
    await async_connection.execute(
        sa.insert(metadata_table), [{"id": i, "meta": m} for i, m in enumerate(DATA)]
    )
    long_list = [*SCALARS, *range(1_000, 1_100)]
    for where in [
        {"lang": "en"},
        {"lang": {"$in": ["en", "de"]}},
        {"lang": {"$nin": long_list[:3]}, "nested.lvl": {"$in": long_list}},
        {"year": {"$in": []}},
        {"nested.a'b": {"$exists": False}, "score": {"$gte": 1}},
        {"$not": {"nested.lvl": {"$lt": "z"}}},
        parse_filter('{"$or": [{"draft": true}, {"tags": {"$in": [1, "1", null]}}]}'),
    ]:
        clause = compile_filter(metadata_table.c.meta, where)
        got = set(await async_connection.scalars(sa.select(metadata_table.c.id).where(clause)))
        assert got == {i for i, m in enumerate(DATA) if _oracle(m, where)}, json.dumps(where)
