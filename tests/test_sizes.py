"""vecalchemy.storage_report measures what each vector column costs (per value, heap,
TOAST, indexes) and what halfvec or binary quantization would save, on real tables;
read-only by default (also for roles that may read nothing), and with measure_indexes
it leaves no temporary object behind."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import vecalchemy
from tests.test_engine import fresh_database, login_role
from vecalchemy import ColumnStorage, InvalidArgument, Storage
from vecalchemy.cli import main

ROWS = 300
DIM = 1536


@pytest.fixture(scope="module")
def url(module_db_url: sa.URL, module_db: sa.Engine) -> sa.URL:
    with module_db.connect():  # creates the extension
        pass
    return module_db_url


@pytest.fixture(scope="module")
def plain(url: sa.URL) -> Iterator[sa.Engine]:
    """A plain SQLAlchemy engine (AUTOCOMMIT), as on a database vecalchemy did not create."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def run(engine: sa.Engine, *statements: str) -> None:
    with engine.connect() as conn:
        for stmt in statements:
            conn.exec_driver_sql(stmt)


def fill(n: int, dim: int, scale: float = 1.0) -> str:
    """``n`` rows of (id, a random vector(dim))."""
    return (
        f"SELECT g, (SELECT array_agg((random() - 0.5) * {scale})::real[]"
        f" FROM generate_series(1, {dim}) WHERE g > 0)::vector FROM generate_series(1, {n}) g"
    )


@pytest.fixture(scope="module")
def docs(plain: sa.Engine) -> Iterator[str]:
    """300 rows of vector(1536) (out of line: 6 KB values) with an HNSW index (m=8)."""
    name = "sizes_docs"
    run(
        plain,
        f"CREATE TABLE {name} (id int PRIMARY KEY, embedding vector({DIM}))",
        f"INSERT INTO {name} {fill(ROWS, DIM)}",
        f"CREATE INDEX {name}_hnsw ON {name} USING hnsw (embedding vector_cosine_ops)"
        " WITH (m = 8, ef_construction = 32)",
        f"ANALYZE {name}",
    )
    yield name
    run(plain, f"DROP TABLE {name}")


@pytest.fixture
def table(plain: sa.Engine) -> Iterator[str]:
    name = f"sz_{uuid.uuid4().hex[:8]}"
    yield name
    run(plain, f'DROP TABLE IF EXISTS "{name}" CASCADE')


def one(engine: sa.Engine | sa.Connection, table: str, **kwargs: object) -> ColumnStorage:
    [col] = vecalchemy.storage_report(engine, table=table, **kwargs)  # type: ignore[arg-type]
    return col


def temp_relations(conn: sa.Connection) -> int:
    """Relations in this session's temporary schemas (tables, TOAST, indexes)."""
    return int(
        conn.exec_driver_sql(
            "SELECT count(*) FROM pg_class c WHERE c.relpersistence = 't' AND (c.relnamespace"
            " = pg_my_temp_schema() OR c.relnamespace::regnamespace::text = replace("
            "pg_my_temp_schema()::regnamespace::text, 'pg_temp_', 'pg_toast_temp_'))"
            " OR c.relname LIKE 'vecalchemy\\_sizes%%'"
        ).scalar_one()
    )


# -- per value, computed and measured ---------------------------------------------------------


@pytest.mark.parametrize(
    ("dim", "stored_minus", "out_of_line"),
    [
        (8, 3, False),  # 40 bytes: stored with a 1-byte header instead of 4
        (384, 0, False),  # 1,544 bytes, in line
        (499, 0, False),  # 2,004 bytes: the widest vector a (int, vector) row keeps in line
        (500, 4, True),  # 2,008 bytes: the row passes 2,032 bytes, the vector goes to TOAST
    ],
)
def test_computed_bytes_match_pg_column_size(
    plain: sa.Engine, table: str, dim: int, stored_minus: int, out_of_line: bool
) -> None:
    """computed_bytes is pgvector's 4·d + 8; measured_bytes is pg_column_size of the
    stored values: equal in line, 3 less for a short (1-byte) header, 4 less out of line
    (pg_column_size counts the TOAST payload without its header). Values are out of
    line once the row passes TOAST's 2,032-byte threshold, and are never compressed
    (pgvector's types have storage EXTERNAL)."""
    run(
        plain,
        f'CREATE TABLE "{table}" (id int, v vector({dim}))',
        f'INSERT INTO "{table}" {fill(50, dim)}',
    )
    with plain.connect() as conn:
        stored = conn.exec_driver_sql(f'SELECT pg_column_size(v) FROM "{table}" LIMIT 1').scalar()
        typstorage = conn.exec_driver_sql(
            "SELECT typstorage FROM pg_type WHERE typname = 'vector'"
        ).scalar()
    assert typstorage == "e"
    col = one(plain, table)
    assert col.computed_bytes == 4 * dim + 8 == Storage.VECTOR.bytes_per_row(dim)
    assert col.measured_bytes == stored == 4 * dim + 8 - stored_minus
    assert (col.rows, col.rows_counted, col.values, col.sampled) == (50, True, 50, 50)
    assert col.storage == "external"
    assert col.compressed == 0
    assert col.out_of_line == (50 if out_of_line else 0)
    assert (col.toast_bytes > 0) is out_of_line
    assert col.indexes == ()


def test_halfvec_sparsevec_and_bit_columns(plain: sa.Engine, table: str) -> None:
    """halfvec is 2·d + 8 (and can still be binary-quantized), bit ⌈d/8⌉ + 8, sparsevec
    8·nnz + 16 with the sample's non-zeros; sparsevec and bit have no smaller option."""
    run(
        plain,
        f'CREATE TABLE "{table}" (id int, h halfvec(1536), s sparsevec(1000), b bit(64))',
        f"INSERT INTO \"{table}\" SELECT g, v::halfvec(1536), '{{1:1,2:2,3:3,400:4,999:5}}/1000',"
        f" binary_quantize(subvector(v, 1, 64)) FROM ({fill(20, 1536)}) AS f(g, v)",
    )
    cols = {c.column: c for c in vecalchemy.storage_report(plain, table=table)}
    assert list(cols) == ["h", "s", "b"]
    h, s, b = cols["h"], cols["s"], cols["b"]
    assert (h.type, h.dims, h.computed_bytes) == ("halfvec", 1536, 3080)
    assert h.measured_bytes == 3076  # out of line: the payload without its 4-byte header
    assert [o.type for o in h.options] == ["halfvec(1536)", "bit(1536)"]
    assert h.options[1].measured_bytes == 200
    assert (s.type, s.dims, s.computed_bytes) == ("sparsevec", 1000, 8 * 5 + 16)
    assert s.measured_bytes == 8 * 5 + 16 - 3  # short header
    assert len(s.options) == 1
    assert any("not to sparsevec" in n for n in s.notes)
    assert (b.type, b.dims, b.computed_bytes, b.measured_bytes) == ("bit", 64, 16, 13)
    assert len(b.options) == 1


def test_halfvec_and_bit_savings_measured(plain: sa.Engine, docs: str) -> None:
    """On vector(1536): the halfvec cast measures 3,080 bytes (about 50% saved per
    value), the binary quantization 200 (about 97% saved); the table's heap is small,
    its TOAST holds the vectors, and the HNSW index is reported with its size."""
    col = one(plain, docs)
    assert (col.rows, col.rows_counted, col.sampled, col.out_of_line) == (ROWS, False, ROWS, ROWS)
    now, half, bit = col.options
    assert (now.type, half.type, bit.type) == (f"vector({DIM})", f"halfvec({DIM})", f"bit({DIM})")
    assert (half.computed_bytes, half.measured_bytes) == (3080, 3080)
    assert (bit.computed_bytes, bit.measured_bytes) == (200, 200)
    assert half.saving is not None
    assert bit.saving is not None
    assert half.saving.value_bytes == 6148 - 3080
    assert half.saving.value_pct == pytest.approx(49.9, abs=0.1)
    assert bit.saving.value_pct == pytest.approx(96.7, abs=0.1)
    assert half.saving.table_bytes is None  # projected only with measure_indexes
    assert now.table_bytes == col.heap_bytes + col.toast_bytes + col.toast_index_bytes
    assert col.toast_bytes >= ROWS * 6148 > 50 * col.heap_bytes
    assert col.toast_index_bytes > 0
    [ix] = col.indexes
    assert (ix.name, ix.method, ix.opclass, ix.key, ix.valid) == (
        f"{docs}_hnsw",
        "hnsw",
        "vector_cosine_ops",
        "embedding",
        True,
    )
    assert ix.options == ("m=8", "ef_construction=32")
    with plain.connect() as conn:
        sizes = conn.exec_driver_sql(
            f"SELECT pg_relation_size('{docs}_hnsw'), pg_total_relation_size('{docs}')"
        ).one()
    assert (ix.bytes, col.total_bytes) == tuple(sizes)
    assert col.total_bytes >= col.table_bytes + col.index_bytes


def test_plain_storage_keeps_values_in_line(plain: sa.Engine, table: str) -> None:
    """SET STORAGE PLAIN: vector(1000) values stay in the heap; nothing in TOAST."""
    run(
        plain,
        f'CREATE TABLE "{table}" (id int, v vector(1000) STORAGE PLAIN)',
        f'INSERT INTO "{table}" {fill(30, 1000)}',
    )
    col = one(plain, table)
    assert (col.storage, col.out_of_line, col.toast_bytes, col.measured_bytes) == (
        "plain",
        0,
        0,
        4008,
    )
    assert col.heap_bytes >= 30 * 4008


def test_expression_indexes_and_a_sample(plain: sa.Engine, table: str) -> None:
    """Indexes on expressions of the column count (a binary-quantized HNSW), an index
    whose only link is a WHERE on the column does not; a sample smaller than the table
    measures that many values."""
    run(
        plain,
        f'CREATE TABLE "{table}" (id int, v vector(16))',
        f'INSERT INTO "{table}" {fill(400, 16)}',
        f'CREATE INDEX "{table}_bq" ON "{table}" USING hnsw'
        " ((binary_quantize(v)::bit(16)) bit_hamming_ops)",
        f'CREATE INDEX "{table}_id" ON "{table}" (id) WHERE v IS NOT NULL',
        f'ANALYZE "{table}"',
    )
    col = one(plain, table, sample=20)
    assert [(ix.name, ix.opclass, ix.key) for ix in col.indexes] == [
        (f"{table}_bq", "bit_hamming_ops", "(binary_quantize(v)::bit(16))")
    ]
    assert (col.sampled, col.rows, col.values) == (20, 400, 400)


def test_nulls_and_halfvec_overflow(plain: sa.Engine, table: str) -> None:
    """values counts the non-null ones; a value with an element beyond halfvec's range
    is left out of the halfvec measurement (the cast would fail) and noted."""
    run(
        plain,
        f'CREATE TABLE "{table}" (id int, v vector(4))',
        f"INSERT INTO \"{table}\" VALUES (1, '[1,2,3,4]'), (2, '[70000,0,0,0]'), (3, NULL),"
        " (4, '[0.5,0.5,0.5,0.5]')",
    )
    col = one(plain, table)
    assert (col.rows, col.values, col.sampled) == (4, 3, 3)
    assert col.options[1].measured_bytes == 16  # 2·4 + 8, from the two values that fit
    assert any("1 of 3 sampled values have elements beyond halfvec's range" in n for n in col.notes)
    measured = one(plain, table, measure_indexes=True)
    assert measured.options[1].table_bytes is not None
    assert measured.options[1].index == 'hnsw ("v" halfvec_l2_ops)'  # no index: HNSW, l2


# -- measure_indexes ----------------------------------------------------------------------------


def test_measure_indexes_projects_sizes_and_leaves_nothing(plain: sa.Engine, docs: str) -> None:
    """With measure_indexes, a third of the rows copied into temporary tables projects
    the HNSW index to within 10% of the real one, halfvec to about half of it and bit to
    under a tenth, with the column's m and ef_construction; the table projections follow
    the per-value savings. In the caller's session (AUTOCOMMIT) no temporary relation
    remains, and the read-only report is unchanged."""
    with plain.connect() as conn:
        before = temp_relations(conn)
        col = one(conn, docs, sample=100, measure_indexes=True)
        assert temp_relations(conn) == before == 0
    now, half, bit = col.options
    assert now.index == 'hnsw ("embedding" vector_cosine_ops) WITH (m=8, ef_construction=32)'
    assert half.index == 'hnsw ("embedding" halfvec_cosine_ops) WITH (m=8, ef_construction=32)'
    assert bit.index == 'hnsw ("embedding" bit_hamming_ops) WITH (m=8, ef_construction=32)'
    assert now.index_bytes is not None
    assert half.index_bytes is not None
    assert bit.index_bytes is not None
    assert now.index_bytes == pytest.approx(col.index_bytes, rel=0.1)
    assert 0.4 < half.index_bytes / now.index_bytes < 0.6
    assert bit.index_bytes / now.index_bytes < 0.1
    assert now.table_bytes == col.table_bytes  # the actual one
    assert half.table_bytes is not None
    assert bit.table_bytes is not None
    assert 0.4 < half.table_bytes / col.table_bytes < 0.6
    assert bit.table_bytes / col.table_bytes < 0.1
    assert half.saving is not None
    assert bit.saving is not None
    assert half.saving.index_bytes == now.index_bytes - half.index_bytes
    assert half.saving.index_pct == pytest.approx(
        100 * (now.index_bytes - half.index_bytes) / now.index_bytes
    )
    assert bit.saving.table_pct is not None
    assert bit.saving.table_pct > 90
    assert any("projected from 100 sampled rows" in n for n in col.notes)
    plain_report = one(plain, docs)
    assert (plain_report.measured_bytes, plain_report.indexes) == (col.measured_bytes, col.indexes)


def test_projections_match_real_tables(plain: sa.Engine, table: str) -> None:
    """The copies hold whole rows (the text column too), so the projected halfvec and bit
    tables and indexes match tables really stored that way, within 2%: with 1.4 KB of
    text per row, four rows fill a page as vector(128) and as halfvec(128) alike, five
    as bit (copies of the vector column alone would project 14% and 5% too little)."""
    body = "(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 44) WHERE g > 0)"
    run(
        plain,
        f'CREATE TABLE "{table}" (id int, body text, v vector(128))',
        f'INSERT INTO "{table}" SELECT g, substr({body}, 1, 1400), v'
        f" FROM ({fill(1000, 128)}) f(g, v)",
        f'CREATE INDEX ON "{table}" USING hnsw (v vector_l2_ops) WITH (m = 8)',
        f'ANALYZE "{table}"',
    )
    real = {}
    with plain.connect() as conn:
        for kind, value, opclass in (
            ("halfvec", "v::halfvec(128)", "halfvec_l2_ops"),
            ("bit", "binary_quantize(v)::bit(128)", "bit_hamming_ops"),
        ):
            conn.exec_driver_sql(
                f'CREATE TABLE "{table}_{kind}" (id int, body text, v {kind}(128))'
            )
            conn.exec_driver_sql(
                f'INSERT INTO "{table}_{kind}" SELECT id, body, {value} FROM "{table}"'
            )
            conn.exec_driver_sql(
                f'CREATE INDEX "{table}_{kind}_ix" ON "{table}_{kind}" USING hnsw'
                f" (v {opclass}) WITH (m = 8)"
            )
            real[kind] = conn.exec_driver_sql(
                "SELECT pg_relation_size(c.oid) + pg_table_size(c.reltoastrelid),"
                f" pg_relation_size('\"{table}_{kind}_ix\"')"
                f" FROM pg_class c WHERE c.oid = '\"{table}_{kind}\"'::regclass"
            ).one()
            conn.exec_driver_sql(f'DROP TABLE "{table}_{kind}"')
    col = one(plain, table, measure_indexes=True)
    for opt in col.options[1:]:
        heap, index = real[opt.storage.value]
        assert opt.table_bytes == pytest.approx(heap, rel=0.02), opt.type
        assert opt.index_bytes == pytest.approx(index, rel=0.02), opt.type
    assert col.options[0].index_bytes == pytest.approx(col.index_bytes, rel=0.02)


def test_measure_indexes_after_the_table_changed(url: sa.URL, plain: sa.Engine, table: str) -> None:
    """When the values are gone between the read and the copies (another session set
    them to NULL), the report says so instead of projecting from nothing."""
    run(
        plain,
        f'CREATE TABLE "{table}" (id int, v vector(4))',
        f'INSERT INTO "{table}" {fill(5, 4)}',
    )
    engine = sa.create_engine(url)
    begins: list[object] = []

    def on_begin(conn: sa.Connection) -> None:
        begins.append(conn)
        if len(begins) == 2:  # the measuring transaction
            run(plain, f'UPDATE "{table}" SET v = NULL')

    sa.event.listen(engine, "begin", on_begin)
    try:
        col = one(engine, table, measure_indexes=True)
    finally:
        engine.dispose()
    assert col.sampled == 5
    assert "indexes not measured: the copy got no values" in col.notes
    assert col.options[1].table_bytes is None


def test_measure_indexes_in_a_caller_transaction(url: sa.URL, docs: str) -> None:
    """On a caller's connection in a transaction, the temporary tables are gone before
    storage_report returns (checked in that same transaction)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            one(conn, docs, sample=30, measure_indexes=True)
            assert conn.in_transaction()
            assert temp_relations(conn) == 0
            conn.rollback()
    finally:
        engine.dispose()


def test_measure_indexes_over_the_index_limit_and_ivfflat(plain: sa.Engine, table: str) -> None:
    """vector(3072) cannot be indexed as vector (2,000 dimensions), its halfvec copy can;
    an IVFFlat column gets IVFFlat copies with the lists scaled to the sample."""
    run(
        plain,
        f'CREATE TABLE "{table}" (id int, v vector(3072), w vector(8))',
        f'INSERT INTO "{table}" SELECT g, v, subvector(v, 1, 8) FROM ({fill(40, 3072)}) f(g, v)',
        f'INSERT INTO "{table}" SELECT g + 40, NULL, v FROM ({fill(960, 8)}) f(g, v)',
        f'CREATE INDEX ON "{table}" USING ivfflat (w vector_l2_ops) WITH (lists = 10)',
        f'ANALYZE "{table}"',
    )
    big, small = vecalchemy.storage_report(plain, table=table, sample=100, measure_indexes=True)
    assert big.options[0].index == "none: pgvector indexes vector up to 2,000 dimensions"
    assert big.options[0].index_bytes is None
    assert big.options[1].index == 'hnsw ("v" halfvec_l2_ops)'
    assert big.options[1].index_bytes
    assert big.options[1].saving is not None
    assert big.options[1].saving.index_bytes is None  # nothing to compare with
    assert small.options[0].index == 'ivfflat ("w" vector_l2_ops) WITH (lists=1)'
    assert small.options[2].index == 'ivfflat ("w" bit_hamming_ops) WITH (lists=1)'


# -- rights, read-only ---------------------------------------------------------------------------


def test_read_only_roles(url: sa.URL, plain: sa.Engine, docs: str) -> None:
    """A role with SELECT gets the same report, in a READ ONLY transaction (a write in
    it fails); a role with no rights gets the catalog sizes, the computed bytes and a
    note instead of an error, also with measure_indexes."""
    full = one(plain, docs)
    with login_role(url) as role:
        weak = sa.create_engine(url.set(username=role))
        try:
            none = one(weak, docs, measure_indexes=True)
            assert (none.sampled, none.measured_bytes, none.out_of_line) == (0, None, None)
            assert none.computed_bytes == 6152
            assert none.options[1].measured_bytes is None
            assert (none.rows, none.heap_bytes, none.toast_bytes, none.indexes) == (
                full.rows,
                full.heap_bytes,
                full.toast_bytes,
                full.indexes,
            )
            assert any("no SELECT right on embedding" in n for n in none.notes)
            assert "indexes not measured: no SELECT right on the column" in none.notes
            run(plain, f'GRANT SELECT ON {docs} TO "{role}"')
            with weak.connect() as conn:
                assert one(conn, docs) == full
                with pytest.raises(sa.exc.InternalError, match="read-only transaction"):
                    conn.exec_driver_sql("CREATE TEMP TABLE x (i int)")
            run(
                plain,
                f'REVOKE SELECT ON {docs} FROM "{role}"',
                f'GRANT SELECT (embedding) ON {docs} TO "{role}"',
            )
            part = one(weak, docs, sample=30, measure_indexes=True)
            assert part.options[1].table_bytes is not None
            assert any("leave out 1 column(s) the role may not read" in n for n in part.notes)
        finally:
            weak.dispose()
            run(plain, f'REVOKE SELECT ON {docs} FROM "{role}"')


def test_measure_indexes_without_temp_rights_or_failing(server_url: sa.URL) -> None:
    """Without the TEMP privilege measure_indexes adds a note and measures nothing; when
    a copy fails midway (no USAGE on the halfvec type) the error propagates and no
    temporary table remains, in the caller's AUTOCOMMIT session as with an engine."""
    with fresh_database(server_url, "CREATE EXTENSION vector") as url:
        admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            run(
                admin,
                "CREATE TABLE t (id int, v vector(8))",
                f"INSERT INTO t {fill(20, 8)}",
                f'REVOKE TEMP ON DATABASE "{url.database}" FROM PUBLIC',
            )
            with login_role(url) as role:
                run(admin, f'GRANT SELECT ON t TO "{role}"')
                weak = sa.create_engine(url.set(username=role))
                auto = weak.execution_options(isolation_level="AUTOCOMMIT")
                try:
                    col = one(weak, "t", measure_indexes=True)
                    assert any("needs the TEMP privilege" in n for n in col.notes)
                    assert col.options[1].index is None
                    run(
                        admin,
                        f'GRANT TEMP ON DATABASE "{url.database}" TO "{role}"',
                        "REVOKE USAGE ON TYPE halfvec FROM PUBLIC",
                    )
                    with auto.connect() as conn:
                        with pytest.raises(sa.exc.ProgrammingError, match="type halfvec"):
                            one(conn, "t", measure_indexes=True)
                        assert temp_relations(conn) == 0
                    with pytest.raises(sa.exc.ProgrammingError, match="type halfvec"):
                        one(weak, "t", measure_indexes=True)
                    with weak.connect() as conn:
                        assert temp_relations(conn) == 0
                finally:
                    weak.dispose()
                    run(admin, f'DROP OWNED BY "{role}"')
        finally:
            admin.dispose()


# -- which tables ---------------------------------------------------------------------------------


def test_tables_without_vectors_missing_and_partitioned(plain: sa.Engine, table: str) -> None:
    """A table without vector columns has no report; a missing one is a clear error
    (nothing is written); a partitioned table reports each partition; schema.table
    names a table in another schema."""
    run(
        plain,
        f'CREATE TABLE "{table}" (id int, body text)',
        f'CREATE TABLE "{table}_p" (id int, v vector(4)) PARTITION BY HASH (id)',
        *(
            f'CREATE TABLE "{table}_p{i}" PARTITION OF "{table}_p"'
            f" FOR VALUES WITH (MODULUS 2, REMAINDER {i})"
            for i in (0, 1)
        ),
        f"INSERT INTO \"{table}_p\" SELECT g, '[1,2,3,4]' FROM generate_series(1, 10) g",
        f'CREATE SCHEMA "{table}_s"',
        f'CREATE TABLE "{table}_s".docs (v halfvec(4))',
    )
    try:
        assert vecalchemy.storage_report(plain, table=table) == []
        with pytest.raises(InvalidArgument, match=r"no table 'no_such_table' in this database"):
            vecalchemy.storage_report(plain, table="no_such_table")
        parts = vecalchemy.storage_report(plain, table=f"{table}_p")
        assert [c.table for c in parts] == [f"{table}_p0", f"{table}_p1"]
        assert sum(c.sampled for c in parts) == 10
        [other] = vecalchemy.storage_report(plain, table=f"{table}_s.docs")
        assert (other.schema, other.table, other.type, other.sampled) == (
            f"{table}_s",
            "docs",
            "halfvec",
            0,
        )
        assert "no non-null value in the sample: nothing to measure" in other.notes
        everything = vecalchemy.storage_report(plain)
        assert {(c.table, c.column) for c in everything} >= {
            (f"{table}_p0", "v"),
            ("docs", "v"),
        }
        with pytest.raises(InvalidArgument, match="sample must be a positive integer"):
            vecalchemy.storage_report(plain, sample=0)
    finally:
        run(plain, f'DROP TABLE "{table}_p"', f'DROP SCHEMA "{table}_s" CASCADE')


# -- CLI ------------------------------------------------------------------------------------------


def test_cli_sizes(url: sa.URL, docs: str, plain: sa.Engine, table: str) -> None:
    """vecalchemy doctor --sizes prints the storage and savings tables (human-readable
    sizes), --json the report, --measure-indexes the projections; a missing table, or
    --measure-indexes / --metadata used the wrong way, are clear errors."""
    text = url.render_as_string(hide_password=False)
    runner = CliRunner()
    base = ["doctor", "--url", text, "--sizes", "--table", docs]
    out = runner.invoke(main, base, catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert f"public.{docs}.embedding" in out.output
    for expected in ("vector(1536)", "6,152", "6,148", "49.9%", "96.7%", "add --measure-indexes"):
        assert expected in out.output
    assert f"{docs}_hnsw: hnsw vector_cosine_ops," in out.output
    assert " MB" in out.output  # the TOAST table, human-readable

    out = runner.invoke(main, [*base, "--json"], catch_exceptions=False)
    assert out.exit_code == 0
    [col] = json.loads(out.output)
    assert (col["column"], col["dims"], col["computed_bytes"], col["rows"]) == (
        "embedding",
        DIM,
        6152,
        ROWS,
    )
    assert [o["storage"] for o in col["options"]] == ["vector", "halfvec", "bit"]
    assert col["options"][1]["saving"]["value_pct"] == pytest.approx(49.9, abs=0.1)
    assert col["index_bytes"] == col["indexes"][0]["bytes"] > 0

    out = runner.invoke(
        main, [*base, "--json", "--measure-indexes", "--sample", "50"], catch_exceptions=False
    )
    assert out.exit_code == 0
    [col] = json.loads(out.output)
    assert (
        col["options"][2]["index"]
        == 'hnsw ("embedding" bit_hamming_ops) WITH (m=8, ef_construction=32)'
    )
    assert col["options"][2]["saving"]["index_pct"] > 80
    out = runner.invoke(main, [*base, "--measure-indexes", "--sample", "50"])
    assert "projected" in out.output
    assert "(actual)" in out.output

    run(plain, f'CREATE TABLE "{table}" (id int)')
    out = runner.invoke(main, ["doctor", "--url", text, "--sizes", "--table", table])
    assert (out.exit_code, out.output.strip()) == (0, f"no vector columns in {table}")
    out = runner.invoke(main, ["doctor", "--url", text, "--sizes", "--table", "nope"])
    assert out.exit_code == 1
    assert "error: no table 'nope' in this database" in out.output
    out = runner.invoke(main, ["doctor", "--url", text, "--measure-indexes"])
    assert out.exit_code == 1
    assert "--measure-indexes goes with --sizes" in out.output
    out = runner.invoke(main, ["doctor", "--url", text, "--sizes", "--metadata", "m:Base"])
    assert out.exit_code == 1
    assert "does not go with --sizes" in out.output
