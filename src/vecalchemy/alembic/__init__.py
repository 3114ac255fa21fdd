"""Alembic migrations that run: vector types rendered with their import, vector indexes
with their operator class, IVFFlat indexes built only once there are rows.

In ``env.py``::

    import vecalchemy.alembic

    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        **vecalchemy.alembic.options(),   # render_item, include_object, compare_type
    )

``alembic revision --autogenerate`` then writes ``op.create_vector_index(...)`` for each
vector index of the models, whatever its expression (``embedding::halfvec(3072)``,
``binary_quantize(embedding)::bit(1536)``) and operator class, and compares vector
indexes by name, so a second autogenerate finds no change. Operations, usable in any
migration:

* ``op.create_vector_index(name, table, column, method=, opclass=, expression=,
  with_=, where=, concurrently=False)``: an IVFFlat index without ``lists`` is built with
  pgvector's rule from the rows present, and skipped (with a message) on an empty table.
* ``op.build_ivfflat_index(name, table, column, opclass=, expression=, lists=None)``:
  (re)build an IVFFlat index after loading data, ``lists`` from the row count.
* ``op.drop_vector_index(name, table)``.
* ``op.install_sync_outbox({...})`` / ``op.uninstall_sync_outbox({...})``: the trigger,
  guard and registry entry of a ``sync="outbox"`` column (autogenerate writes them for
  outbox columns not installed yet).
"""

from __future__ import annotations

from vecalchemy.alembic._ops import (
    BuildIvfflatIndexOp,
    CreateVectorIndexOp,
    DropVectorIndexOp,
    InstallSyncOutboxOp,
    UninstallSyncOutboxOp,
    compare_type,
    include_object,
    options,
    render_item,
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
