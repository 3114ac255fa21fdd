"""The operations, renderers and comparators of :mod:`vecalchemy.alembic`."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import comparators, renderers
from alembic.operations import MigrateOperation, Operations
from sqlalchemy.dialects import postgresql

from vecalchemy._names import qualified
from vecalchemy._sql import INFO_KEY
from vecalchemy.errors import IndexBuildError
from vecalchemy.schema import (
    IVFFlat,
    VectorSpec,
    ivfflat_lists_for,
    vector_indexes,
)

__all__ = [
    "BuildIvfflatIndexOp",
    "CreateVectorIndexOp",
    "DropVectorIndexOp",
    "InstallSyncOutboxOp",
    "UninstallSyncOutboxOp",
    "compare_type",
    "include_object",
    "options",
    "render_item",
]

log = logging.getLogger("vecalchemy.alembic")

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def _rel(table: str, schema: str | None) -> str:
    return qualified(schema, table)


@Operations.register_operation("create_vector_index")
class CreateVectorIndexOp(MigrateOperation):
    """Create a vector index (see the module docstring)."""

    def __init__(
        self,
        index_name: str,
        table_name: str,
        column_name: str,
        *,
        method: str,
        opclass: str,
        expression: str | None = None,
        with_: dict[str, int] | None = None,
        where: str | None = None,
        schema: str | None = None,
        concurrently: bool = False,
    ) -> None:
        self.index_name = index_name
        self.table_name = table_name
        self.column_name = column_name
        self.method = method
        self.opclass = opclass
        self.expression = expression
        self.with_ = dict(with_ or {})
        self.where = where
        self.schema = schema
        self.concurrently = concurrently

    @classmethod
    def create_vector_index(
        cls, operations: Operations, index_name: str, table_name: str, column_name: str, **kw: Any
    ) -> Any:
        """``op.create_vector_index(...)``."""
        return operations.invoke(cls(index_name, table_name, column_name, **kw))

    @classmethod
    def from_index(cls, index: sa.Index) -> CreateVectorIndexOp:
        """The operation that creates a vector index vecalchemy declared."""
        spec: VectorSpec = index.info[INFO_KEY]
        table = index.table
        assert table is not None
        assert spec.index is not None
        column = _column_of(index)
        expr = next(iter(index.expressions))
        text = None
        if (
            isinstance(expr, sa.ColumnElement) and expr is not column
        ):  # an expression index: its SQL, as create_all writes it
            text = "(" + str(expr.compile(dialect=_PG)) + ")"
        with_: dict[str, int] = {}
        if isinstance(spec.index, IVFFlat):
            if spec.index.lists is not None:
                with_ = {"lists": spec.index.lists}
        else:
            with_ = spec.index.with_options()
        where = index.dialect_options["postgresql"].get("where")
        return cls(
            str(index.name),
            table.name,
            column.name,
            method=spec.index.method.value,
            opclass=spec.opclass,
            expression=text,
            with_=with_,
            where=None
            if where is None
            else str(where.compile(dialect=_PG, compile_kwargs={"literal_binds": True})),
            schema=table.schema,
        )

    def reverse(self) -> DropVectorIndexOp:
        return DropVectorIndexOp(self.index_name, self.table_name, schema=self.schema, create=self)

    def sql(self, rows: int | None) -> str | None:
        """The CREATE INDEX statement, or None for an IVFFlat index on an empty table."""
        with_ = dict(self.with_)
        if self.method == "ivfflat" and "lists" not in with_:
            if not rows:
                return None
            with_["lists"] = ivfflat_lists_for(rows)
        target = self.expression or qualified(None, self.column_name)
        options = ", ".join(f"{k} = {int(v)}" for k, v in with_.items())
        return (
            f"CREATE INDEX {'CONCURRENTLY ' if self.concurrently else ''}IF NOT EXISTS "
            f"{qualified(None, self.index_name)} ON {_rel(self.table_name, self.schema)} "
            f"USING {self.method} ({target} {self.opclass})"
            + (f" WITH ({options})" if options else "")
            + (f" WHERE {self.where}" if self.where else "")
        )


def _column_of(index: sa.Index) -> sa.Column[Any]:
    """The vector column an index of vecalchemy's is on (the column, or the one in its
    expression)."""
    from sqlalchemy.sql import visitors

    found = [
        e
        for expr in index.expressions
        if isinstance(expr, sa.ColumnElement)
        for e in visitors.iterate(expr)
        if isinstance(e, sa.Column) and e.info.get(INFO_KEY) is not None
    ]
    if not found:
        raise ValueError(f"vector index {index.name} is on no vector column")
    return found[0]


@Operations.register_operation("drop_vector_index")
class DropVectorIndexOp(MigrateOperation):
    """Drop a vector index; reversible when created from its creation (or definition)."""

    def __init__(
        self,
        index_name: str,
        table_name: str,
        *,
        schema: str | None = None,
        create: CreateVectorIndexOp | None = None,
        definition: str | None = None,
        concurrently: bool = False,
    ) -> None:
        self.index_name = index_name
        self.table_name = table_name
        self.schema = schema
        self.create = create
        self.definition = definition
        self.concurrently = concurrently

    @classmethod
    def drop_vector_index(
        cls, operations: Operations, index_name: str, table_name: str, **kw: Any
    ) -> Any:
        """``op.drop_vector_index(name, table)``."""
        return operations.invoke(cls(index_name, table_name, **kw))

    def reverse(self) -> MigrateOperation:
        if self.create is not None:
            return self.create
        return _ExecuteOp(self.definition or "")


class _ExecuteOp(MigrateOperation):
    def __init__(self, sql: str) -> None:
        self.sql = sql


@Operations.register_operation("build_ivfflat_index")
class BuildIvfflatIndexOp(MigrateOperation):
    """(Re)build an IVFFlat index from the rows present: ``lists`` by pgvector's rule."""

    def __init__(
        self,
        index_name: str,
        table_name: str,
        column_name: str,
        *,
        opclass: str,
        expression: str | None = None,
        lists: int | None = None,
        schema: str | None = None,
    ) -> None:
        self.create = CreateVectorIndexOp(
            index_name,
            table_name,
            column_name,
            method="ivfflat",
            opclass=opclass,
            expression=expression,
            with_={"lists": lists} if lists else None,
            schema=schema,
        )

    @classmethod
    def build_ivfflat_index(
        cls, operations: Operations, index_name: str, table_name: str, column_name: str, **kw: Any
    ) -> Any:
        """``op.build_ivfflat_index(name, table, column, opclass=...)``."""
        return operations.invoke(cls(index_name, table_name, column_name, **kw))


def _rows(operations: Operations, table: str, schema: str | None) -> int:
    return int(
        operations.get_bind()
        .execute(sa.text(f"SELECT count(*) FROM {_rel(table, schema)}"))
        .scalar_one()
    )


@Operations.implementation_for(CreateVectorIndexOp)
def _create(operations: Operations, op: CreateVectorIndexOp) -> None:
    rows = _rows(operations, op.table_name, op.schema) if op.method == "ivfflat" else None
    sql = op.sql(rows)
    if sql is None:
        log.warning(
            "ivfflat index %s not built: table %s is empty (its lists are learnt from the "
            "rows); build it after loading data with op.build_ivfflat_index(...) or "
            "vecalchemy.build_indexes()",
            op.index_name,
            op.table_name,
        )
        return
    if not op.concurrently:
        operations.execute(sql)
        return
    # CREATE INDEX CONCURRENTLY runs outside a transaction. A failed or cancelled one
    # leaves an INVALID index behind, which IF NOT EXISTS would then keep forever: an
    # invalid index of this name (from an earlier failed run) is dropped first, and one
    # left by this run is dropped before the error propagates.
    name = qualified(op.schema, op.index_name)
    with operations.get_context().autocommit_block():
        if _invalid(operations, op.index_name, op.table_name, op.schema):
            operations.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        try:
            operations.execute(sql)
        except Exception:
            if _invalid(operations, op.index_name, op.table_name, op.schema):
                operations.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            raise


def _invalid(operations: Operations, index: str, table: str, schema: str | None) -> bool:
    """Whether ``index`` of ``table`` exists and is INVALID."""
    bind = operations.get_bind()
    return bool(
        bind.execute(
            sa.text(
                "SELECT NOT x.indisvalid FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
                " WHERE x.indrelid = to_regclass(:t) AND i.relname = :ix"
            ),
            {"t": _rel(table, schema), "ix": index},
        ).scalar()
    )


@Operations.implementation_for(DropVectorIndexOp)
def _drop(operations: Operations, op: DropVectorIndexOp) -> None:
    name = qualified(op.schema, op.index_name)
    if op.concurrently:  # DROP INDEX CONCURRENTLY runs outside a transaction too
        with operations.get_context().autocommit_block():
            operations.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    else:
        operations.execute(f"DROP INDEX IF EXISTS {name}")


@Operations.implementation_for(_ExecuteOp)
def _execute(operations: Operations, op: _ExecuteOp) -> None:
    operations.execute(op.sql)


@Operations.implementation_for(BuildIvfflatIndexOp)
def _build_ivfflat(operations: Operations, op: BuildIvfflatIndexOp) -> None:
    create = op.create
    rows = _rows(operations, create.table_name, create.schema)
    if not rows:
        raise IndexBuildError(
            f"table {create.table_name} is empty; an IVFFlat index learns its lists from "
            "the rows, so load data before op.build_ivfflat_index"
        )
    operations.execute(f"DROP INDEX IF EXISTS {qualified(create.schema, create.index_name)}")
    sql = create.sql(rows)
    assert sql is not None
    operations.execute(sql)


# -- autogenerate ------------------------------------------------------------------------


def _is_vector_index(obj: Any, reflected: bool) -> bool:
    if not isinstance(obj, sa.Index):
        return False
    if isinstance(obj.info.get(INFO_KEY), VectorSpec):
        return True
    using = (obj.dialect_options["postgresql"].get("using") or "").lower()
    return using in ("hnsw", "ivfflat")


def include_object(obj: Any, name: Any, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Leave vector indexes to vecalchemy's comparator (Alembic cannot compare their
    expressions and operator classes)."""
    return not (type_ == "index" and _is_vector_index(obj, reflected))


_VECTOR_TYPES = {"VECTOR": "VECTOR", "HALFVEC": "HALFVEC", "SPARSEVEC": "SPARSEVEC"}


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render vector column types as ``pgvector.sqlalchemy.VECTOR(384)`` (and import it)."""
    if type_ != "type":
        return False
    from pgvector.sqlalchemy import HALFVEC, SPARSEVEC, VECTOR

    from vecalchemy._sql import BitString

    for cls, name in ((HALFVEC, "HALFVEC"), (SPARSEVEC, "SPARSEVEC"), (VECTOR, "VECTOR")):
        if isinstance(obj, cls):
            autogen_context.imports.add("import pgvector.sqlalchemy")
            return f"pgvector.sqlalchemy.{name}({obj.dim})"
    if isinstance(obj, BitString):
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
        return f"postgresql.BIT({obj.dim})"
    return False


def compare_type(
    context: Any,
    inspected_column: Any,
    metadata_column: Any,
    inspected_type: Any,
    metadata_type: Any,
) -> bool | None:
    """Vector types are equal when storage and dimension are (None: Alembic's default)."""
    from vecalchemy._sql import storage_of

    got = storage_of(inspected_type)
    want = storage_of(metadata_type)
    if got is None and want is None:
        return None
    return got != want


def options() -> dict[str, Any]:
    """The ``context.configure`` keyword arguments vecalchemy's migrations need."""
    return {
        "render_item": render_item,
        "include_object": include_object,
        "compare_type": compare_type,
    }


@comparators.dispatch_for("table")
def _compare_table(
    autogen_context: Any,
    modify_ops: Any,
    schema: str | None,
    tname: str,
    conn_table: sa.Table | None,
    metadata_table: sa.Table | None,
) -> None:
    """vecalchemy's comparator (one per dispatch target): vector indexes, then outboxes."""
    args = (autogen_context, modify_ops, schema, tname, conn_table, metadata_table)
    _compare_vector_indexes(*args)
    _compare_sync_outbox(*args)


def _compare_vector_indexes(
    autogen_context: Any,
    modify_ops: Any,
    schema: str | None,
    tname: str,
    conn_table: sa.Table | None,
    metadata_table: sa.Table | None,
) -> None:
    if metadata_table is None:
        return  # the table is dropped, its indexes with it
    wanted = {str(ix.name): ix for ix in vector_indexes(metadata_table)}
    existing: dict[str, str] = {}
    if conn_table is not None:
        rows = autogen_context.connection.execute(
            sa.text(
                "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x"
                " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam"
                " WHERE x.indrelid = to_regclass(:t) AND am.amname IN ('hnsw', 'ivfflat')"
            ),
            {"t": _rel(tname, schema)},
        ).all()
        existing = {r[0]: r[1] for r in rows}
    for name in sorted(set(wanted) - set(existing)):
        op = CreateVectorIndexOp.from_index(wanted[name])
        if conn_table is not None and op.method == "ivfflat" and "lists" not in op.with_:
            # Not built on an empty table (its lists are learnt from the rows): a migration
            # that creates it would create nothing. Proposed once the table has rows.
            empty = autogen_context.connection.execute(
                sa.text(f"SELECT NOT EXISTS (SELECT 1 FROM {_rel(tname, schema)})")
            ).scalar()
            if empty:
                log.info("ivfflat index %s left out: table %s is empty", name, tname)
                continue
        modify_ops.ops.append(op)
    for name in sorted(set(existing) - set(wanted)):
        modify_ops.ops.append(
            DropVectorIndexOp(name, tname, schema=schema, definition=existing[name])
        )


@renderers.dispatch_for(CreateVectorIndexOp)
def _render_create(autogen_context: Any, op: CreateVectorIndexOp) -> str:
    autogen_context.imports.add("import vecalchemy.alembic  # op.create_vector_index")
    args = [repr(op.index_name), repr(op.table_name), repr(op.column_name)]
    kw = {"method": op.method, "opclass": op.opclass}
    if op.expression:
        kw["expression"] = op.expression
    parts = [f"{k}={v!r}" for k, v in kw.items()]
    if op.with_:
        parts.append(f"with_={op.with_!r}")
    if op.where:
        parts.append(f"where={op.where!r}")
    if op.schema:
        parts.append(f"schema={op.schema!r}")
    return f"op.create_vector_index({', '.join(args + parts)})"


@renderers.dispatch_for(DropVectorIndexOp)
def _render_drop(autogen_context: Any, op: DropVectorIndexOp) -> str:
    autogen_context.imports.add("import vecalchemy.alembic  # op.drop_vector_index")
    parts = [repr(op.index_name), repr(op.table_name)]
    if op.schema:
        parts.append(f"schema={op.schema!r}")
    return f"op.drop_vector_index({', '.join(parts)})"


@renderers.dispatch_for(_ExecuteOp)
def _render_execute(autogen_context: Any, op: _ExecuteOp) -> str:
    return f"op.execute({op.sql!r})"


# -- the sync outbox ---------------------------------------------------------------------


def _target(fields: dict[str, Any]) -> Any:
    from vecalchemy.sync._targets import target_from

    return target_from(list(fields.values()))  # asdict(Target) keeps the field order


@Operations.register_operation("install_sync_outbox")
class InstallSyncOutboxOp(MigrateOperation):
    """Install the outbox of a ``sync="outbox"`` column (queue tables, trigger, guard and
    registry entry), from the target's fields as autogenerate writes them."""

    def __init__(self, target: dict[str, Any]) -> None:
        self.target = dict(target)

    @classmethod
    def install_sync_outbox(cls, operations: Operations, target: dict[str, Any]) -> Any:
        """``op.install_sync_outbox({...})``."""
        return operations.invoke(cls(target))

    def reverse(self) -> UninstallSyncOutboxOp:
        return UninstallSyncOutboxOp(self.target)


@Operations.register_operation("uninstall_sync_outbox")
class UninstallSyncOutboxOp(MigrateOperation):
    """Remove a column's outbox: its trigger, guard, queued work and registry entry."""

    def __init__(self, target: dict[str, Any]) -> None:
        self.target = dict(target)

    @classmethod
    def uninstall_sync_outbox(cls, operations: Operations, target: dict[str, Any]) -> Any:
        """``op.uninstall_sync_outbox({...})``."""
        return operations.invoke(cls(target))

    def reverse(self) -> InstallSyncOutboxOp:
        return InstallSyncOutboxOp(self.target)


@Operations.implementation_for(InstallSyncOutboxOp)
def _install_sync(operations: Operations, op: InstallSyncOutboxOp) -> None:
    from vecalchemy.sync import install_statements

    for stmt in install_statements(_target(op.target)):
        operations.execute(stmt)


@Operations.implementation_for(UninstallSyncOutboxOp)
def _uninstall_sync(operations: Operations, op: UninstallSyncOutboxOp) -> None:
    from vecalchemy.sync._ddl import lit, untrigger_statements

    t = _target(op.target)
    for stmt in untrigger_statements(t):
        operations.execute(stmt)
    for table in ("sync_queue", "sync_dead", "sync_log", "sync_targets"):
        operations.execute(f"DELETE FROM vecalchemy.{table} WHERE target = {lit(t.name)}")


def _registered(connection: Any, name: str) -> bool:
    if (
        connection.execute(sa.text("SELECT to_regclass('vecalchemy.sync_targets')")).scalar()
        is None
    ):
        return False
    found = connection.execute(
        sa.text("SELECT 1 FROM vecalchemy.sync_targets WHERE target = :t"), {"t": name}
    ).scalar()
    return found is not None


def _compare_sync_outbox(
    autogen_context: Any,
    modify_ops: Any,
    schema: str | None,
    tname: str,
    conn_table: sa.Table | None,
    metadata_table: sa.Table | None,
) -> None:
    if metadata_table is None:
        return
    from dataclasses import asdict

    from vecalchemy._source import SOURCE_KEY
    from vecalchemy.sync._targets import target_for

    for col in metadata_table.columns:
        spec = col.info.get(SOURCE_KEY)
        if spec is None or spec.sync != "outbox":
            continue
        t = target_for(col)
        if conn_table is None or not _registered(autogen_context.connection, t.name):
            modify_ops.ops.append(InstallSyncOutboxOp(asdict(t)))


@renderers.dispatch_for(InstallSyncOutboxOp)
def _render_install_sync(autogen_context: Any, op: InstallSyncOutboxOp) -> str:
    autogen_context.imports.add("import vecalchemy.alembic  # op.install_sync_outbox")
    return f"op.install_sync_outbox({op.target!r})"


@renderers.dispatch_for(UninstallSyncOutboxOp)
def _render_uninstall_sync(autogen_context: Any, op: UninstallSyncOutboxOp) -> str:
    autogen_context.imports.add("import vecalchemy.alembic  # op.uninstall_sync_outbox")
    return f"op.uninstall_sync_outbox({op.target!r})"
