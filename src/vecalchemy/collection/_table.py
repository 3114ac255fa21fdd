"""A collection's table: its definition, what the database holds, creation and upgrades.

Reading the table's state is one catalog query and never changes anything; creating a
table, and upgrading one made by an older vecalchemy, are explicit steps
(:meth:`Collection.create`, :meth:`Collection.upgrade`). A table that exists but was not
made by vecalchemy (its comment does not say so) is never touched.

Private to :mod:`vecalchemy.collection`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from vecalchemy._bm25 import Analyzer, bm25_column, install_bm25
from vecalchemy._fulltext import FULLTEXT_INFO_KEY, fulltext_column, fulltext_index_name
from vecalchemy._names import fit_identifier, qualified
from vecalchemy.errors import ConfigurationError, VecalchemyError
from vecalchemy.metrics import Metric
from vecalchemy.query.fusion import RRF, Fusion, Weighted
from vecalchemy.schema import HNSW, IVFFlat, embedding_column

__all__ = [
    "RANKINGS",
    "STORAGE_SQL",
    "TERMS",
    "TSV",
    "TableState",
    "add_bm25",
    "add_fulltext",
    "collection_config",
    "collection_table",
    "fusion_config",
    "keep_vectors_inline",
    "read_state",
    "stored_fusion",
    "write_comment",
]

#: The generated full-text column of every collection table.
TSV = "tsv"

#: The BM25 terms column of a collection declared with ``text_ranking="bm25"``.
TERMS = "terms"

#: How a collection ranks its text leg: PostgreSQL's ``ts_rank_cd`` over ``tsv``, or
#: BM25 over ``terms`` (:mod:`vecalchemy.bm25`).
RANKINGS = ("tsvector", "bm25")

#: The key under which a collection's configuration lives in its table's comment.
_CONFIG_KEY = "vecalchemy"


def collection_table(
    name: str,
    dim: int,
    metric: Metric,
    index: HNSW | IVFFlat | None,
    language: str,
    analyzer: Analyzer | None = None,
) -> sa.Table:
    """The ``Table`` of a collection (see :class:`~vecalchemy.Collection` for the columns).

    With an ``analyzer`` the table also has the BM25 ``terms`` column of ``text``."""
    extra = [] if analyzer is None else [bm25_column(TERMS, "text", analyzer=analyzer)]
    table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("chunk", sa.Integer, primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("start", sa.Integer, nullable=False),
        sa.Column("end", sa.Integer, nullable=False),
        sa.Column("metadata", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("content_hash", sa.Text, nullable=False),
        sa.Column("embedder", sa.Text, nullable=False),
        embedding_column("embedding", dim, metric=metric, index=index, nullable=False),
        fulltext_column(TSV, "text", language=language),
        *extra,
        sa.Index(fit_identifier(f"ix_{name}_metadata"), "metadata", postgresql_using="gin"),
    )
    # Vectors stay in the row (STORAGE MAIN): with pgvector's default (EXTERNAL), a chunk's
    # text, tsvector and BM25 terms push the row past TOAST's 2 KB and the vector, the
    # widest value, is moved out of line, so every exact scan reads it from the TOAST
    # table (4x slower measured on dbpedia-entity-5k's hybrid search; doctor's VA203).
    sa.event.listen(table, "after_create", sa.DDL(STORAGE_SQL.format(name=name)))  # type: ignore[no-untyped-call]
    return table


#: Keeps a collection's vectors in its rows (see :func:`collection_table`).
STORAGE_SQL = 'ALTER TABLE "{name}" ALTER COLUMN embedding SET STORAGE MAIN'


def keep_vectors_inline(conn: sa.Connection, name: str) -> bool:
    """Give a collection made before vectors were kept in the row STORAGE MAIN; return
    whether it changed. Rows written before keep their place until the table is
    rewritten (``VACUUM FULL``). Only from :meth:`Collection.upgrade`."""
    storage = conn.execute(
        sa.text(
            "SELECT attstorage FROM pg_attribute WHERE attrelid = to_regclass(:t) "
            "AND attname = 'embedding'"
        ),
        {"t": qualified(None, name)},
    ).scalar()
    if storage in (None, "m"):
        return False
    conn.exec_driver_sql(STORAGE_SQL.format(name=name))
    return True


@dataclass(frozen=True)
class TableState:
    """What the database holds under a collection's name, read without changing anything.

    ``config`` is the configuration recorded in the table's comment (None when the table
    has no vecalchemy comment: a table vecalchemy did not create). ``dim`` is the
    embedding column's dimension, ``tsv`` the expression of its full-text column (None
    when missing: a table made before hybrid search).
    """

    exists: bool
    config: dict[str, Any] | None
    dim: int | None
    tsv: str | None

    @property
    def ours(self) -> bool:
        """Whether vecalchemy made the table (its comment records a configuration)."""
        return self.config is not None

    @property
    def language(self) -> str | None:
        """The text search configuration the ``tsv`` column was built with."""
        found = re.search(r"'([a-z_]+)'::regconfig", self.tsv or "")
        return found.group(1) if found else None


_STATE_SQL = sa.text(
    "SELECT c.oid IS NOT NULL, obj_description(c.oid, 'pg_class'), "
    "(SELECT atttypmod FROM pg_attribute WHERE attrelid = c.oid AND attname = 'embedding' "
    " AND NOT attisdropped), "
    "(SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
    " JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
    " WHERE a.attrelid = c.oid AND a.attname = :tsv AND NOT a.attisdropped) "
    "FROM (SELECT to_regclass(:t) AS oid) r LEFT JOIN pg_class c ON c.oid = r.oid"
)


def read_state(conn: sa.Connection, name: str) -> TableState:
    """The :class:`TableState` of collection ``name`` (one catalog query, no writes)."""
    exists, comment, typmod, tsv = conn.execute(
        _STATE_SQL, {"t": qualified(None, name), "tsv": TSV}
    ).one()
    dim = int(typmod) if typmod is not None and typmod > 0 else None
    return TableState(bool(exists), collection_config(comment), dim, tsv)


def collection_config(comment: str | None) -> dict[str, Any] | None:
    """The configuration a collection's table comment records (None: not a collection)."""
    if not comment:
        return None
    try:
        parsed = json.loads(comment)
    except ValueError:
        return None
    if isinstance(parsed, dict) and isinstance(parsed.get(_CONFIG_KEY), dict):
        return dict(parsed[_CONFIG_KEY])
    return None


#: The configuration key of the hybrid fusion a collection searches with by default.
_FUSION_KEY = "fusion"


def fusion_config(
    config: Mapping[str, Any], fusion: Fusion | None, tuned: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``config`` recording ``fusion`` (None: none) as the collection's hybrid fusion."""
    out = dict(config)
    out.pop(_FUSION_KEY, None)
    if isinstance(fusion, RRF):
        out[_FUSION_KEY] = {"rrf": fusion.k}
    elif isinstance(fusion, Weighted):
        weights = None if fusion.weights is None else [float(w) for w in fusion.weights]
        out[_FUSION_KEY] = {"weighted": weights}
    if fusion is not None and tuned is not None:
        out[_FUSION_KEY]["tuned"] = dict(tuned)
    return out


def stored_fusion(name: str, config: Mapping[str, Any] | None) -> Fusion | None:
    """The fusion ``config`` records, None when it records none.

    Raises :class:`~vecalchemy.ConfigurationError` for an entry vecalchemy did not write
    (an edited comment), rather than searching with a fusion nobody chose.
    """
    entry = (config or {}).get(_FUSION_KEY)
    if entry is None:
        return None
    try:
        if isinstance(entry, dict) and "rrf" in entry:
            return RRF(k=entry["rrf"])
        if isinstance(entry, dict) and "weighted" in entry:
            weights = entry["weighted"]
            return Weighted(None if weights is None else tuple(weights))
    except (TypeError, ValueError, VecalchemyError):
        pass
    raise ConfigurationError(
        f"collection {name!r} records a hybrid fusion vecalchemy cannot read ({entry!r}); "
        f"reset it with Collection.open({name!r}).set_fusion(None)"
    )


def write_comment(conn: sa.Connection, name: str, config: Mapping[str, Any]) -> None:
    """Record ``config`` in the table's comment, where :meth:`Collection.open` reads it."""
    # COMMENT takes no parameters; the name is checked against the collection name rule
    # and the comment is quoted as a standard SQL string (quotes doubled). Sent without
    # parameters, so the driver reads no placeholders: a % in the comment is just a %.
    comment = json.dumps({_CONFIG_KEY: dict(config)}).replace("'", "''")
    conn.exec_driver_sql(
        f"COMMENT ON TABLE \"{name}\" IS '{comment}'",
        execution_options={"no_parameters": True},
    )


def add_fulltext(conn: sa.Connection, table: sa.Table, state: TableState) -> bool:
    """Give a table made before hybrid search its ``tsv`` column and GIN index.

    Adding a stored generated column rewrites the table under an exclusive lock, once;
    this runs only from :meth:`Collection.upgrade`. Returns whether anything changed.
    """
    name = table.name
    column = table.c[TSV]
    changed = False
    if state.tsv is None:
        spec = column.info[FULLTEXT_INFO_KEY]
        # The name is checked against the collection name rule and the expression is
        # built from a checked language: no user text reaches this DDL unchecked.
        conn.exec_driver_sql(
            f'ALTER TABLE "{name}" ADD COLUMN IF NOT EXISTS {TSV} tsvector '
            f"GENERATED ALWAYS AS ({spec.expression}) STORED"
        )
        changed = True
    index = fulltext_index_name(table, column)
    exists = conn.execute(sa.text("SELECT to_regclass(:i)"), {"i": qualified(None, index)})
    if exists.scalar() is None:
        conn.exec_driver_sql(f'CREATE INDEX IF NOT EXISTS "{index}" ON "{name}" USING gin ({TSV})')
        changed = True
    return changed


#: Chunks analysed and written per statement when a collection switches to BM25.
_BM25_BATCH = 2_000

_PAGE_SQL = (
    'SELECT id, chunk, text FROM "{name}" WHERE (id, chunk) > (:id, :chunk) '
    "ORDER BY id, chunk LIMIT :n"
)
_FILL_SQL = (
    'UPDATE "{name}" AS t SET {terms} = r.terms '
    "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(id text, chunk int, terms jsonb) "
    "WHERE t.id = r.id AND t.chunk = r.chunk"
)


def add_bm25(conn: sa.Connection, table: sa.Table, analyzer: Analyzer) -> None:
    """Switch a ``tsvector`` collection's table to BM25, in the caller's transaction.

    Adds the ``terms`` column, fills it chunk by chunk in key order (keyset pages of
    :data:`_BM25_BATCH`, analysed here: the analyser is Python), then installs the
    postings, corpus and triggers, which count the rows now there. The triggers come
    last, so the fill itself is not counted twice. Only from
    :meth:`Collection.upgrade`.
    """
    name = table.name
    column = table.c[TERMS]
    # The name is checked against the collection name rule; TERMS is a constant.
    conn.exec_driver_sql(f'ALTER TABLE "{name}" ADD COLUMN IF NOT EXISTS {TERMS} jsonb')
    page = sa.text(_PAGE_SQL.format(name=name))
    fill = sa.text(_FILL_SQL.format(name=name, terms=TERMS))
    last: tuple[str, int] = ("", -1)
    while rows := conn.execute(page, {"id": last[0], "chunk": last[1], "n": _BM25_BATCH}).all():
        payload = [{"id": r.id, "chunk": r.chunk, "terms": analyzer.document(r.text)} for r in rows]
        conn.execute(fill, {"rows": json.dumps(payload)})
        last = (rows[-1].id, rows[-1].chunk)
    install_bm25(conn, column)
