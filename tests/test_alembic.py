"""Alembic migrations of vecalchemy models run: autogenerate writes a migration that
imports what it uses and gives every vector index its operator class, ``alembic upgrade
head`` and ``downgrade base`` run against the real server, and a second autogenerate
finds no change. IVFFlat indexes are not built on empty tables."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

MODELS = """
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from vecalchemy import HNSW, Embedding, IVFFlat


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "mig_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    lang: Mapped[str] = mapped_column(String(8))
    embedding = Embedding(16, metric="cosine", index=HNSW(m=8, ef_construction=32))
    l2 = Embedding(16, metric="l2", storage="halfvec", index=HNSW())
    big = Embedding(3072, metric="inner_product", index=HNSW())
    bq = Embedding(64, metric="cosine", index=HNSW(quantize="binary"))
    ivf = Embedding(16, metric="l2", index=IVFFlat())
    sparse = Embedding(100, metric="inner_product", storage="sparsevec", index=HNSW())
    exact = Embedding(8, index=None)


class Page(Base):
    __tablename__ = "mig_pages"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    embedding = Embedding(16, source="body", embedder="hashing:16", sync="outbox")
"""

ENV = """
from alembic import context
from sqlalchemy import create_engine

import vecalchemy.alembic
from models import Base

engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        **vecalchemy.alembic.options(),
    )
    with context.begin_transaction():
        context.run_migrations()
"""


@pytest.fixture
def project(tmp_path: Path, module_db_url: sa.URL, module_db: sa.Engine) -> Path:
    with module_db.connect():  # the extension
        pass
    (tmp_path / "models.py").write_text(MODELS)
    (tmp_path / "migrations" / "versions").mkdir(parents=True)
    (tmp_path / "migrations" / "env.py").write_text(ENV)
    (tmp_path / "migrations" / "script.py.mako").write_text(
        textwrap.dedent(
            '''\
            """${message}"""
            from alembic import op
            import sqlalchemy as sa
            ${imports if imports else ""}
            revision = ${repr(up_revision)}
            down_revision = ${repr(down_revision)}
            branch_labels = None
            depends_on = None


            def upgrade() -> None:
                ${upgrades if upgrades else "pass"}


            def downgrade() -> None:
                ${downgrades if downgrades else "pass"}
            '''
        )
    )
    url = module_db_url.render_as_string(hide_password=False).replace("%", "%%")
    (tmp_path / "alembic.ini").write_text(
        f"[alembic]\nscript_location = migrations\nsqlalchemy.url = {url}\n"
    )
    return tmp_path


def alembic(project: Path, *args: str) -> str:
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": f"{project}{os.pathsep}{src}"}
    done = subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def indexes(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(
            conn.execute(
                sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'mig_docs'")
            ).all()
        )


@pytest.mark.slow
def test_autogenerate_upgrade_downgrade_round_trip(project: Path, module_db: sa.Engine) -> None:
    """autogenerate → upgrade head: every vector index exists with the operator class of
    its metric and storage; the IVFFlat index is left for after the data; autogenerate
    again → no operations; downgrade base → the table is gone."""
    alembic(project, "revision", "--autogenerate", "-m", "init")
    [script] = (project / "migrations" / "versions").glob("*.py")
    text = script.read_text()
    assert "import pgvector.sqlalchemy" in text
    assert "pgvector.sqlalchemy.VECTOR(16)" in text
    assert "op.create_vector_index(" in text
    alembic(project, "upgrade", "head")
    got = indexes(module_db)
    defs = "\n".join(got.values())
    assert "USING hnsw (embedding vector_cosine_ops) WITH (m='8', ef_construction='32')" in defs
    assert "(l2 halfvec_l2_ops)" in defs
    assert "((big)::halfvec(3072)) halfvec_ip_ops" in defs
    assert "((binary_quantize(bq))::bit(64)) bit_hamming_ops" in defs
    assert "(sparse sparsevec_ip_ops)" in defs
    assert not any("ivfflat" in d for d in got.values())  # empty table: not built
    assert "op.install_sync_outbox(" in text
    with module_db.begin() as conn:  # the outbox trigger runs: an insert is queued
        conn.execute(sa.text("INSERT INTO mig_pages (id, body) VALUES (1, 'hello')"))
        queued = (
            conn.execute(
                sa.text(
                    "SELECT key FROM vecalchemy.sync_queue"
                    " WHERE target = 'public.mig_pages.embedding'"
                )
            )
            .scalars()
            .all()
        )
    assert queued == [[1]]
    second = alembic(project, "revision", "--autogenerate", "-m", "again")
    [again] = [p for p in (project / "migrations" / "versions").glob("*.py") if p != script]
    body = again.read_text()
    upgrade = body[body.index("def upgrade") : body.index("def downgrade")]
    assert "op." not in upgrade, (upgrade, second)
    again.unlink()
    alembic(project, "downgrade", "base")
    with module_db.connect() as conn:
        assert conn.execute(sa.text("SELECT to_regclass('mig_docs')")).scalar() is None
        assert conn.execute(sa.text("SELECT count(*) FROM vecalchemy.sync_targets")).scalar() == 0


@pytest.mark.slow
def test_build_ivfflat_index_after_data(project: Path, module_db: sa.Engine) -> None:
    """op.build_ivfflat_index in a data migration builds the index with lists from the
    rows present (pgvector's rule); on an empty table it refuses."""
    alembic(project, "revision", "--autogenerate", "-m", "init")
    alembic(project, "upgrade", "head")
    try:
        with module_db.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO mig_docs (id, lang, ivf) SELECT g, 'en',"
                    " (SELECT array_agg(random())::real[] FROM generate_series(1, 16)"
                    " WHERE g > 0)::vector FROM generate_series(1, 3000) g"
                )
            )
        versions = project / "migrations" / "versions"
        [first] = versions.glob("*.py")
        rev = first.read_text().split("revision = ")[1].split("\n")[0].strip("'\"")
        (versions / "b_data.py").write_text(
            textwrap.dedent(
                f'''\
                from alembic import op
                import vecalchemy.alembic

                revision = "b_data"
                down_revision = "{rev}"
                branch_labels = None
                depends_on = None


                def upgrade() -> None:
                    op.build_ivfflat_index(
                        "ix_mig_docs_ivf_ivfflat", "mig_docs", "ivf", opclass="vector_l2_ops"
                    )


                def downgrade() -> None:
                    op.drop_vector_index("ix_mig_docs_ivf_ivfflat", "mig_docs")
                '''
            )
        )
        alembic(project, "upgrade", "head")
        assert "WITH (lists='3')" in indexes(module_db)["ix_mig_docs_ivf_ivfflat"]
        alembic(project, "downgrade", rev)
        assert "ix_mig_docs_ivf_ivfflat" not in indexes(module_db)
    finally:
        alembic(project, "downgrade", "base")


def test_build_ivfflat_index_on_an_empty_table_is_refused(module_db: sa.Engine) -> None:
    """op.build_ivfflat_index on an empty table raises IndexBuildError; nothing is built."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    import vecalchemy
    import vecalchemy.alembic

    with module_db.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE mig_empty (id int, v vector(4))")
        op = Operations(MigrationContext.configure(conn))
        with pytest.raises(vecalchemy.IndexBuildError, match="mig_empty is empty"):
            op.build_ivfflat_index("ix_e", "mig_empty", "v", opclass="vector_l2_ops")
        n = conn.execute(sa.text("SELECT count(*) FROM pg_indexes WHERE tablename = 'mig_empty'"))
        assert n.scalar() == 0
        conn.exec_driver_sql("DROP TABLE mig_empty")


def test_create_and_drop_vector_index_concurrently(project: Path, module_db: sa.Engine) -> None:
    """op.create_vector_index(..., concurrently=True) and its drop run outside the
    migration's transaction (CREATE/DROP INDEX CONCURRENTLY cannot run inside one); an
    INVALID index of the same name, left by an earlier failed build, is rebuilt rather
    than kept by IF NOT EXISTS."""
    with module_db.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS mig_conc")
        conn.exec_driver_sql("CREATE TABLE mig_conc (id int PRIMARY KEY, v vector(4))")
        conn.exec_driver_sql(
            "INSERT INTO mig_conc SELECT g, ARRAY[g, 1, 2, 3]::vector"
            " FROM generate_series(1, 500) g"
        )
    versions = project / "migrations" / "versions"
    (versions / "c_conc.py").write_text(
        textwrap.dedent(
            """\
            from alembic import op
            import vecalchemy.alembic

            revision = "c_conc"
            down_revision = None
            branch_labels = None
            depends_on = None


            def upgrade() -> None:
                op.create_vector_index(
                    "ix_mig_conc_v", "mig_conc", "v", method="hnsw",
                    opclass="vector_l2_ops", with_={"m": 8}, concurrently=True,
                )


            def downgrade() -> None:
                op.drop_vector_index("ix_mig_conc_v", "mig_conc", concurrently=True)
            """
        )
    )

    def index_state() -> list[tuple[str, bool]]:
        with module_db.connect() as conn:
            return [
                (str(d), bool(v))
                for d, v in conn.execute(
                    sa.text(
                        "SELECT pg_get_indexdef(x.indexrelid), x.indisvalid FROM pg_index x"
                        " JOIN pg_class i ON i.oid = x.indexrelid"
                        " WHERE i.relname = 'ix_mig_conc_v'"
                    )
                ).all()
            ]

    try:
        alembic(project, "upgrade", "head")
        [(definition, valid)] = index_state()
        assert valid
        assert "USING hnsw (v vector_l2_ops) WITH (m='8')" in definition
        alembic(project, "downgrade", "base")
        assert index_state() == []

        # An invalid index of that name, as a cancelled CREATE INDEX CONCURRENTLY leaves.
        with module_db.begin() as conn:
            conn.exec_driver_sql(
                "CREATE INDEX ix_mig_conc_v ON mig_conc USING hnsw (v vector_l2_ops)"
            )
            conn.exec_driver_sql(
                "UPDATE pg_index SET indisvalid = false"
                " WHERE indexrelid = 'ix_mig_conc_v'::regclass"
            )
        assert [valid for _, valid in index_state()] == [False]
        alembic(project, "upgrade", "head")
        [(definition, valid)] = index_state()
        assert valid
        assert "WITH (m='8')" in definition
    finally:
        alembic(project, "downgrade", "base")
        with module_db.begin() as conn:
            conn.exec_driver_sql("DROP TABLE mig_conc")
