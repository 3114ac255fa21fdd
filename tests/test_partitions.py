"""Partitioned tables: a partition per tenant (LIST) or hash bucket (HASH), each indexed."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import Connection, String
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from tests.conftest import explain
from vecalchemy import Embedding, nearest, search
from vecalchemy.errors import ConfigurationError, InvalidArgument
from vecalchemy.partitions import add_partition, hash_partitions

DIM = 16
rng = np.random.default_rng(23)
TENANTS = ["a", "b", "c"]
PER_TENANT = 60
VECS = rng.normal(size=(len(TENANTS) * PER_TENANT, DIM)).astype(np.float32)


class Base(DeclarativeBase):
    pass


class Doc(Base):
    """Partitioned by tenant; the primary key includes the partition key, as PostgreSQL needs."""

    __tablename__ = "part_docs"
    __table_args__: ClassVar[dict[str, Any]] = {"postgresql_partition_by": "LIST (tenant)"}
    tenant: Mapped[str] = mapped_column(String, primary_key=True)
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding = Embedding(DIM, metric="cosine")


class HashBase(DeclarativeBase):
    pass


class HashDoc(HashBase):
    __tablename__ = "part_hdocs"
    __table_args__: ClassVar[dict[str, Any]] = {"postgresql_partition_by": "HASH (tenant)"}
    tenant: Mapped[str] = mapped_column(String, primary_key=True)
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding = Embedding(DIM, metric="l2")


class IntBase(DeclarativeBase):
    pass


class IntDoc(IntBase):
    __tablename__ = "part_idocs"
    __table_args__: ClassVar[dict[str, Any]] = {"postgresql_partition_by": "LIST (shard)"}
    shard: Mapped[int] = mapped_column(primary_key=True)
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding = Embedding(DIM, metric="cosine")


class RangeBase(DeclarativeBase):
    pass


class RangeDoc(RangeBase):
    __tablename__ = "part_rdocs"
    __table_args__: ClassVar[dict[str, Any]] = {"postgresql_partition_by": "RANGE (id)"}
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding = Embedding(DIM, metric="cosine")


class PlainBase(DeclarativeBase):
    pass


class Plain(PlainBase):
    __tablename__ = "part_plain"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding = Embedding(DIM, metric="cosine")


def partitions(conn: Connection | Session, parent: str) -> list[str]:
    """The partitions of ``parent`` in the database, sorted."""
    rows = conn.execute(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:t) ORDER BY 1"
        ),
        {"t": parent},
    )
    return [r[0] for r in rows]


def indexes(conn: Connection | Session, table: str) -> list[str]:
    """``indexdef`` of every index of ``table``, from pg_indexes."""
    rows = conn.execute(
        sa.text("SELECT indexdef FROM pg_indexes WHERE tablename = :t ORDER BY indexname"),
        {"t": table},
    )
    return [r[0] for r in rows]


def explain_on_ssd(conn: Connection | Session, stmt: sa.Select[Any]) -> str:
    """explain() with random reads priced as on an SSD (random_page_cost = 1.1): on
    partitions this small, postgres's default (4) rightly prefers the btree on the
    partition key plus a sort of the tenant's rows to the HNSW index."""
    conn.execute(sa.text("SET LOCAL random_page_cost = 1.1"))
    return explain(conn, stmt)


def hnsw_index_of(conn: Connection | Session, table: str) -> str:
    rows = conn.execute(
        sa.text("SELECT indexname FROM pg_indexes WHERE tablename = :t AND indexdef LIKE '%hnsw%'"),
        {"t": table},
    ).all()
    assert len(rows) == 1, rows
    return str(rows[0][0])


def rows_for(tenants: list[str]) -> dict[str, Any]:
    n = len(tenants) * PER_TENANT
    return {
        "tenant": [tenants[i // PER_TENANT] for i in range(n)],
        "id": list(range(n)),
        "embedding": VECS[:n],
    }


@pytest.fixture
def tenants(session: Session) -> Session:
    """part_docs with partitions a, b, c, loaded with 60 rows each, and analysed."""
    conn = session.connection()
    Base.metadata.create_all(conn)
    for t in TENANTS:
        assert add_partition(conn, Doc, values=[t]) == f"part_docs_{t}"
    vecalchemy.load(conn, Doc, rows_for(TENANTS))
    # Without statistics the planner guesses tenant = 'a' is selective and may prefer
    # the primary key's B-tree to the HNSW index.
    conn.execute(sa.text("ANALYZE part_docs"))
    return session


def test_list_partitions_get_the_parent_hnsw_index(tenants: Session) -> None:
    """Each tenant partition has its own HNSW index (and primary key), made by PostgreSQL."""
    assert partitions(tenants, "part_docs") == ["part_docs_a", "part_docs_b", "part_docs_c"]
    parent = indexes(tenants, "part_docs")
    assert any(
        "ON ONLY public.part_docs USING hnsw (embedding vector_cosine_ops)" in d for d in parent
    )
    for t in TENANTS:
        defs = indexes(tenants, f"part_docs_{t}")
        assert len(defs) == 2, defs
        hnsw = [d for d in defs if "USING hnsw" in d]
        assert len(hnsw) == 1
        assert f"ON public.part_docs_{t} USING hnsw (embedding vector_cosine_ops)" in hnsw[0]
        assert "m='16', ef_construction='64'" in hnsw[0]
        # The rows went to their tenant's partition.
        n = tenants.execute(
            sa.text(f"SELECT count(*), min(tenant), max(tenant) FROM part_docs_{t}")
        )
        assert tuple(n.one()) == (PER_TENANT, t, t)


def test_search_one_tenant(tenants: Session) -> None:
    """where=Doc.tenant == 'a' returns k rows, all tenant a, the exact nearest among them."""
    q = rng.normal(size=DIM).astype(np.float32)
    hits = search(tenants, Doc.embedding, q, k=5, where=Doc.tenant == "a", ef_search=100)
    assert len(hits) == 5
    assert {h.row.tenant for h in hits} == {"a"}
    mine = VECS[:PER_TENANT]
    exact = 1 - (mine @ q) / (np.linalg.norm(mine, axis=1) * np.linalg.norm(q))
    assert [h.row.id for h in hits] == list(np.argsort(exact)[:5])
    other = search(tenants, Doc.embedding, q, k=5, where=Doc.tenant == "c")
    assert {h.row.tenant for h in other} == {"c"}
    assert all(h.row.id >= 2 * PER_TENANT for h in other)


def test_plan_prunes_to_one_partition(tenants: Session) -> None:
    """The plan scans only tenant a's partition, through that partition's HNSW index."""
    q = rng.normal(size=DIM).astype(np.float32)
    plan = explain_on_ssd(tenants, nearest(Doc.embedding, q, k=5).where(Doc.tenant == "a"))
    index = hnsw_index_of(tenants, "part_docs_a")
    assert f"Index Scan using {index} on part_docs_a" in plan, plan
    assert "part_docs_b" not in plan
    assert "part_docs_c" not in plan
    # Without the partition key, every partition's index is scanned and merged.
    plan_all = explain_on_ssd(tenants, nearest(Doc.embedding, q, k=5))
    for t in TENANTS:
        assert f"Index Scan using {hnsw_index_of(tenants, f'part_docs_{t}')}" in plan_all
    assert "Merge Append" in plan_all


def test_default_partition_takes_other_tenants(tenants: Session) -> None:
    """default=True makes <table>_default, which takes tenants without a partition."""
    conn = tenants.connection()
    assert add_partition(conn, Doc, default=True) == "part_docs_default"
    assert "USING hnsw" in " ".join(indexes(conn, "part_docs_default"))
    tenants.add(Doc(tenant="zeta", id=1, embedding=VECS[0]))
    tenants.flush()
    where = conn.execute(
        sa.text("SELECT tableoid::regclass::text FROM part_docs WHERE tenant = 'zeta'")
    )
    assert where.scalar_one() == "part_docs_default"


def test_rows_without_a_partition_are_refused(tenants: Session) -> None:
    """Without a DEFAULT partition, a tenant with no partition cannot be written."""
    tenants.add(Doc(tenant="nobody", id=1, embedding=VECS[0]))
    with pytest.raises(sa.exc.IntegrityError, match="no partition of relation"):
        tenants.flush()


def test_hash_partitions(session: Session) -> None:
    """HASH (modulus 4): four partitions with HNSW indexes; a tenant's query prunes to one."""
    conn = session.connection()
    HashBase.metadata.create_all(conn)
    names = hash_partitions(conn, HashDoc, 4)
    assert names == [f"part_hdocs_p{r}" for r in range(4)]
    assert partitions(conn, "part_hdocs") == names
    for name in names:
        hnsw = [d for d in indexes(conn, name) if "USING hnsw" in d]
        assert len(hnsw) == 1
        assert f"ON public.{name} USING hnsw (embedding vector_l2_ops)" in hnsw[0]
    # One tenant per partition ('a', 'b' and 'c' all hash to the same one of four).
    homes = dict(
        conn.execute(
            sa.text(
                "SELECT DISTINCT ON (r) 't' || g, r FROM generate_series(0, 200) g, "
                "generate_series(0, 3) r WHERE satisfies_hash_partition("
                "'part_hdocs'::regclass, 4, r, CAST('t' || g AS varchar)) ORDER BY r, g"
            )
        ).all()
    )
    assert sorted(homes.values()) == [0, 1, 2, 3]
    tenants = sorted(homes)
    vecs = rng.normal(size=(len(tenants) * PER_TENANT, DIM)).astype(np.float32)
    vecalchemy.load(conn, HashDoc, {**rows_for(tenants), "embedding": vecs})
    conn.execute(sa.text("ANALYZE part_hdocs"))

    q = rng.normal(size=DIM).astype(np.float32)
    for i, tenant in enumerate(tenants):
        home = f"part_hdocs_p{homes[tenant]}"
        where = HashDoc.tenant == tenant
        hits = search(session, HashDoc.embedding, q, k=5, where=where, ef_search=100)
        assert len(hits) == 5
        assert {h.row.tenant for h in hits} == {tenant}
        mine = vecs[i * PER_TENANT : (i + 1) * PER_TENANT]
        exact = np.linalg.norm(mine - q, axis=1)
        assert [h.row.id - i * PER_TENANT for h in hits] == list(np.argsort(exact)[:5])

        plan = explain_on_ssd(session, nearest(HashDoc.embedding, q, k=5).where(where))
        assert f"Index Scan using {hnsw_index_of(conn, home)} on {home}" in plan, plan
        assert [n for n in names if n in plan] == [home]


def test_single_hash_partition(session: Session) -> None:
    """add_partition(modulus=, remainder=) creates one hash partition, named <table>_p<r>."""
    conn = session.connection()
    HashBase.metadata.create_all(conn)
    assert add_partition(conn, HashDoc, modulus=2, remainder=1) == "part_hdocs_p1"
    assert add_partition(conn, HashDoc, "part_hdocs_even", modulus=2, remainder=0) == (
        "part_hdocs_even"
    )
    bounds = dict(
        conn.execute(
            sa.text(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'part_hdocs'::regclass"
            )
        ).all()
    )
    assert bounds == {
        "part_hdocs_p1": "FOR VALUES WITH (modulus 2, remainder 1)",
        "part_hdocs_even": "FOR VALUES WITH (modulus 2, remainder 0)",
    }


HOSTILE = [
    "o'brien",
    '"; DROP TABLE part_victim; --',
    "x'); DROP TABLE part_victim; --",
    "back\\slash",
    "back\\'; DROP TABLE part_victim; --",
    "100%",
    "%s %(x)s",
    ":name",
    "$1",
    "Zoë 🐘",
    "",
]


def test_hostile_tenant_values(session: Session) -> None:
    """Tenant values are quoted constants: each lands in its own partition, nothing else runs."""
    conn = session.connection()
    Base.metadata.create_all(conn)
    conn.execute(sa.text("CREATE TABLE part_victim (id int)"))
    names = {value: add_partition(conn, Doc, values=[value]) for value in HOSTILE}
    assert len(set(names.values())) == len(HOSTILE)
    assert sorted(names.values()) == partitions(conn, "part_docs")
    for value, name in names.items():
        assert len(name.encode()) <= 63
        session.add(Doc(tenant=value, id=1, embedding=VECS[0]))
    session.flush()
    placed = dict(
        conn.execute(sa.text("SELECT tenant, tableoid::regclass::text FROM part_docs")).all()
    )
    assert placed == names  # every row went to the partition made for its value
    assert conn.execute(sa.text("SELECT to_regclass('part_victim')::text")).scalar() == (
        "part_victim"
    )
    assert names["o'brien"].startswith("part_docs_o_brien_")
    assert names['"; DROP TABLE part_victim; --'].startswith("part_docs_drop_table_part_victim_")


def test_backslashes_whatever_standard_conforming_strings(session: Session) -> None:
    """A value with a backslash is the same value with standard_conforming_strings off."""
    conn = session.connection()
    Base.metadata.create_all(conn)
    conn.execute(sa.text("SET LOCAL standard_conforming_strings = off"))
    conn.execute(sa.text("SET LOCAL escape_string_warning = off"))
    value = "a\\'); DROP TABLE part_docs; --"
    name = add_partition(conn, Doc, values=value)
    conn.execute(sa.text("SET LOCAL standard_conforming_strings = on"))
    session.add(Doc(tenant=value, id=1, embedding=VECS[0]))
    session.flush()
    placed = conn.execute(sa.text("SELECT tableoid::regclass::text FROM part_docs")).scalar_one()
    assert placed == name


def test_default_names(session: Session) -> None:
    """Names: <table>_<value>; a hash when the value had to change; 63 bytes at most."""
    conn = session.connection()
    Base.metadata.create_all(conn)
    assert add_partition(conn, Doc, values="plain_1") == "part_docs_plain_1"
    upper = add_partition(conn, Doc, values="Plain_1")
    assert upper.startswith("part_docs_plain_1_")
    assert upper != "part_docs_plain_1"
    two = add_partition(conn, Doc, values=["x", "y"])
    assert two == "part_docs_x_y"
    long = add_partition(conn, Doc, values=["t" * 200])
    assert len(long.encode()) == 63
    assert long.startswith("part_docs_ttt")
    longer = add_partition(conn, Doc, values=["t" * 201])
    assert longer != long
    assert len(longer.encode()) == 63
    named = add_partition(conn, Doc, "Tenant_Q", values=["q"])
    assert named == "Tenant_Q"
    assert "Tenant_Q" in partitions(conn, "part_docs")
    IntBase.metadata.create_all(conn)
    assert add_partition(conn, IntDoc, values=[7, 8]) == "part_idocs_7_8"
    assert add_partition(conn, IntDoc, values=-1).startswith("part_idocs_1_")
    assert add_partition(conn, IntDoc, values=[None]) == "part_idocs_null"


def test_engine_bind_commits(engine: sa.Engine) -> None:
    """With an Engine the partition is created and committed in its own transaction."""
    Base.metadata.create_all(engine)
    try:
        assert add_partition(engine, Doc, values=["e"]) == "part_docs_e"
        with engine.connect() as conn:
            assert partitions(conn, "part_docs") == ["part_docs_e"]
            assert "USING hnsw" in " ".join(indexes(conn, "part_docs_e"))
    finally:
        Base.metadata.drop_all(engine)


async def test_async_code_uses_run_sync(async_engine: AsyncEngine) -> None:
    """An async engine is refused with the run_sync recipe."""
    with pytest.raises(InvalidArgument, match=r"from async code call await conn\.run_sync\("):
        add_partition(async_engine, Doc, values=["a"])  # type: ignore[arg-type]


async def test_run_sync_from_async(async_engine: AsyncEngine) -> None:
    """The recipe works on both async drivers."""
    async with async_engine.connect() as conn:
        await conn.begin()
        await conn.run_sync(Base.metadata.create_all)
        name = await conn.run_sync(lambda c: add_partition(c, Doc, values=["r"]))
        assert name == "part_docs_r"
        found = await conn.run_sync(lambda c: partitions(c, "part_docs"))
        assert found == ["part_docs_r"]
        await conn.rollback()


ARGUMENT_ERRORS: list[tuple[Any, dict[str, Any], str]] = [
    (Doc, {}, r"give exactly one of values=\[\.\.\.\] \(LIST\), .* got none of them"),
    (Doc, {"values": ["a"], "default": True}, r"exactly one of .* got values and default"),
    (Doc, {"values": ["a"], "modulus": 2}, r"got values and modulus/remainder"),
    (Doc, {"modulus": 2, "remainder": 0}, r"partitioned by LIST \(tenant\); give values="),
    (Doc, {"values": []}, r"values is empty; give the key value\(s\)"),
    (Doc, {"values": ["a", "a"]}, r"value 'a' is given twice in values"),
    (
        Doc,
        {"values": [1]},
        r"partition value 1 for part_docs\.tenant \(VARCHAR\) must be of type str",
    ),
    (Doc, {"values": ["a\x00b"]}, r"contains a NUL character, which PostgreSQL cannot store"),
    (Doc, {"default": "yes"}, r"default must be True or False, got 'yes'"),
    (IntDoc, {"values": ["7"]}, r"partition value '7' for part_idocs\.shard .* type int, got str"),
    (IntDoc, {"values": [True]}, r"must be of type int, got bool"),
    (IntDoc, {"values": [1.5]}, r"must be of type int, got float"),
    (HashDoc, {"values": ["a"]}, r"partitioned by HASH \(tenant\); give modulus= and remainder="),
    (HashDoc, {"default": True}, r"a hash-partitioned table cannot have a default partition"),
    (HashDoc, {"modulus": 4}, r"give both modulus= and remainder= for a hash partition"),
    (HashDoc, {"remainder": 1}, r"give both modulus= and remainder="),
    (
        HashDoc,
        {"modulus": 4, "remainder": 4},
        r"remainder must be from 0 to modulus - 1 \(3\), got 4",
    ),
    (HashDoc, {"modulus": 4, "remainder": -1}, r"remainder must be from 0 to modulus - 1"),
    (HashDoc, {"modulus": 0, "remainder": 0}, r"modulus must be a positive integer, got 0"),
    (HashDoc, {"modulus": True, "remainder": 0}, r"modulus must be a positive integer, got True"),
    (HashDoc, {"modulus": 2, "remainder": "1"}, r"remainder must be an integer, got '1'"),
    (RangeDoc, {"values": [1]}, r"partitioned by RANGE; add_partition\(\) creates LIST and HASH"),
    (
        Plain,
        {"values": [1]},
        r"table 'part_plain' is not partitioned; declare it with .*postgresql_partition_by",
    ),
    ("part_docs", {"values": ["a"]}, r"table must be a sqlalchemy Table or a mapped class"),
    (Doc, {"values": ["a"], "name": "1abc"}, r"partition name must be a plain identifier .*'1abc'"),
    (Doc, {"values": ["a"], "name": "a; DROP"}, r"partition name must be a plain identifier"),
    (Doc, {"values": ["a"], "name": 'a"b'}, r"partition name must be a plain identifier"),
    (Doc, {"values": ["a"], "name": 5}, r"partition name must be a plain identifier .* got 5"),
    (
        Doc,
        {"values": ["a"], "name": "n" * 64},
        r"partition name 'n+' is 64 bytes; PostgreSQL names",
    ),
]


@pytest.mark.parametrize(("table", "kwargs", "message"), ARGUMENT_ERRORS)
def test_argument_errors(
    connection: Connection, table: Any, kwargs: dict[str, Any], message: str
) -> None:
    """Bad arguments are refused before any SQL: nothing is created."""
    for base in (Base, HashBase, IntBase, RangeBase, PlainBase):
        base.metadata.create_all(connection)
    before = connection.execute(sa.text("SELECT count(*) FROM pg_class")).scalar()
    name = kwargs.pop("name", None)
    with pytest.raises(InvalidArgument, match=message):
        add_partition(connection, table, name, **kwargs)
    assert connection.execute(sa.text("SELECT count(*) FROM pg_class")).scalar() == before


@pytest.mark.parametrize(
    ("modulus", "message"),
    [(0, r"modulus must be a positive integer, got 0"), (2.0, r"got 2\.0")],
)
def test_hash_partitions_errors(connection: Connection, modulus: Any, message: str) -> None:
    """hash_partitions checks the modulus and the table before any SQL."""
    HashBase.metadata.create_all(connection)
    with pytest.raises(InvalidArgument, match=message):
        hash_partitions(connection, HashDoc, modulus)
    with pytest.raises(InvalidArgument, match=r"partitioned by LIST \(tenant\); give values="):
        hash_partitions(connection, Doc, 2)
    assert partitions(connection, "part_hdocs") == []


def test_bind_errors(session: Session) -> None:
    """Only an Engine or a Connection is a bind."""
    with pytest.raises(InvalidArgument, match=r"got Session; for a Session, pass session\.conn"):
        add_partition(session, Doc, values=["a"])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"bind must be a SQLAlchemy Engine or Connection"):
        hash_partitions(None, HashDoc, 2)  # type: ignore[arg-type]


def test_database_disagrees_with_the_model(connection: Connection) -> None:
    """A table missing, not partitioned or partitioned otherwise in the database: clear errors."""
    with pytest.raises(ConfigurationError, match=r"table 'part_docs' does not exist in the data"):
        add_partition(connection, Doc, values=["a"])

    plain = sa.Table(
        "part_docs",
        sa.MetaData(),
        sa.Column("tenant", sa.String, primary_key=True),
        sa.Column("id", sa.Integer, primary_key=True),
    )
    plain.create(connection)
    with pytest.raises(
        InvalidArgument,
        match=r"table 'part_docs' exists but is not partitioned in the database, though its "
        r"model declares postgresql_partition_by",
    ):
        add_partition(connection, Doc, values=["a"])
    plain.drop(connection)

    hashed = sa.Table(
        "part_docs",
        sa.MetaData(),
        sa.Column("tenant", sa.String, primary_key=True),
        postgresql_partition_by="HASH (tenant)",
    )
    hashed.create(connection)
    with pytest.raises(
        ConfigurationError,
        match=r"partitioned by HASH in the database but by LIST in its model",
    ):
        add_partition(connection, Doc, values=["a"])
    assert partitions(connection, "part_docs") == []


def test_existing_names_and_overlaps(tenants: Session) -> None:
    """A name in use is refused before the DDL; an overlapping value is PostgreSQL's error.

    Either way the caller's transaction goes on: the DDL ran in a SAVEPOINT.
    """
    conn = tenants.connection()
    with pytest.raises(InvalidArgument, match=r"a table named 'part_docs_a' already exists; pass"):
        add_partition(conn, Doc, values=["a"])
    with pytest.raises(sa.exc.ProgrammingError, match=r"would overlap partition"):
        add_partition(conn, Doc, "part_docs_a2", values=["a"])
    with pytest.raises(sa.exc.DBAPIError, match=r"would overlap partition"):
        add_partition(conn, Doc, "part_docs_ab", values=["b", "new"])
    assert partitions(conn, "part_docs") == ["part_docs_a", "part_docs_b", "part_docs_c"]
    assert conn.execute(sa.text("SELECT count(*) FROM part_docs")).scalar() == 3 * PER_TENANT


def test_load_with_deferred_indexes(session: Session) -> None:
    """load(indexes="defer") drops the parent's HNSW index (and so every partition's), loads,
    and rebuilds it on the parent, which builds it on every partition again."""
    conn = session.connection()
    Base.metadata.create_all(conn)
    for t in TENANTS:
        add_partition(conn, Doc, values=[t])
    result = vecalchemy.load(conn, Doc, rows_for(TENANTS), indexes="defer")
    assert result == len(TENANTS) * PER_TENANT
    assert result.indexes_rebuilt == ["ix_part_docs_embedding_hnsw"]
    for t in TENANTS:
        assert "USING hnsw (embedding vector_cosine_ops)" in " ".join(
            indexes(conn, f"part_docs_{t}")
        )
    conn.execute(sa.text("ANALYZE part_docs"))
    q = rng.normal(size=DIM).astype(np.float32)
    plan = explain_on_ssd(session, nearest(Doc.embedding, q, k=5).where(Doc.tenant == "b"))
    assert f"Index Scan using {hnsw_index_of(conn, 'part_docs_b')} on part_docs_b" in plan
