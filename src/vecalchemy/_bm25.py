"""BM25 ranking computed by PostgreSQL, with no extension: analyser, storage, statistics.

Design (docs/design.md, "BM25"):

* **Analyser** (:class:`Analyzer`), in Python, the same for documents and queries:
  lower-case, split with the regex ``(?u)\\b\\w\\w+\\b`` (words of two or more word
  characters), drop the stop words (bm25s's English list), stem with the Snowball
  stemmer of PyStemmer. It is bm25s's ``tokenize(..., stopwords="en", stemmer=...)``
  step for step, so the same text gives the same terms.
* **Storage**: one ``jsonb`` column per document, ``{"<term>": tf, ..., "": length}``
  (the key ``""`` holds the document length; the analyser never makes an empty term).
  The write path fills it (:func:`BM25` columns: an insert default and an ORM flush
  hook; Core updates pass :func:`bm25_document` themselves).
* **Postings** ``<table>_<column>_bm25_postings(term, key_0.., tf, dl)``, primary key
  ``(term, key..) INCLUDE (tf, dl)``: one row per term per row, written by
  statement-level ``AFTER INSERT/UPDATE/DELETE`` triggers from the transition tables
  (an update rewrites only the rows whose key or terms changed). A query reads the
  postings of its terms by index-only scans: the candidates, their ``tf`` and ``dl``,
  and each term's document frequency (``count(*)``, exact under MVCC).
* **Corpus** ``<table>_<column>_bm25_corpus(n, len)``: append-only deltas of the
  document count and total length, one row per write statement, summed when read and
  folded by :func:`compact_bm25`. Writers only append, so they never wait for each
  other on a shared counter row, never deadlock, and no update can be lost; a
  rolled-back write takes its rows with it.
* **Scoring** at query time from the live statistics (:func:`bm25_query`): bm25s's
  default method ``lucene``: ``idf = ln(1 + (N - df + 0.5) / (df + 0.5))``, ``tf part
  = tf / (tf + k1 * (1 - b + b * dl / avgdl))``, summed over the query's terms (a term
  the query repeats counts once per occurrence, as in bm25s), OR semantics.

Private: the public names are re-exported by :mod:`vecalchemy.bm25`.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import Stemmer
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import InstrumentedAttribute, MappedColumn, Mapper, mapped_column

from vecalchemy._names import fit_identifier, qualified
from vecalchemy.errors import InvalidArgument, InvalidSearch

__all__ = [
    "BM25",
    "BM25_INFO_KEY",
    "DEFAULT_B",
    "DEFAULT_K1",
    "ENGLISH_STOP_WORDS",
    "LENGTH_KEY",
    "TOKEN_PATTERN",
    "Analyzer",
    "BM25Spec",
    "BM25Statistics",
    "bm25_column",
    "bm25_document",
    "bm25_query",
    "bm25_scores",
    "bm25_statistics",
    "compact_bm25",
    "install_bm25",
    "query_terms",
    "resolve_bm25",
    "uninstall_bm25",
]

#: Key under which a column's :class:`BM25Spec` is kept in ``Column.info``.
BM25_INFO_KEY = "vecalchemy_bm25"

#: The document's key holding its length (number of terms after analysis).
LENGTH_KEY = ""

#: bm25s's defaults (``bm25s.BM25(k1=1.5, b=0.75, method="lucene")``).
DEFAULT_K1 = 1.5
DEFAULT_B = 0.75

#: The token regex (bm25s's and scikit-learn's default): two or more word characters.
TOKEN_PATTERN = r"(?u)\b\w\w+\b"

#: bm25s's English stop words (``stopwords="en"``: NLTK's/Lucene's short list).
ENGLISH_STOP_WORDS: frozenset[str] = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Analyzer:
    """Turns text into BM25 terms: lower-case, split, drop stop words, stem.

    ``language`` is a Snowball stemmer of PyStemmer (``english``, ``german``, ...; see
    ``Stemmer.algorithms()``) or ``None`` for no stemming. ``stop_words`` defaults to
    bm25s's English list for English and to none otherwise. ``pattern`` is the token
    regex; stop words are matched on the lower-cased token before stemming, as bm25s does.

    Example::

        >>> Analyzer().tokens("The Cats are running")
        ['cat', 'run']
        >>> Analyzer().document("cats and cats")
        {'cat': 2, '': 2}
    """

    language: str | None = "english"
    stop_words: frozenset[str] | None = None
    pattern: str = TOKEN_PATTERN
    lowercase: bool = True
    _local: threading.local = field(
        default_factory=threading.local, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if self.language is not None and self.language not in Stemmer.algorithms():
            raise InvalidArgument(
                f"no snowball stemmer for language {self.language!r}; use one of "
                f"{', '.join(sorted(Stemmer.algorithms()))}, or language=None for no stemming"
            )
        try:
            compiled = re.compile(self.pattern)
        except (re.error, TypeError) as exc:
            raise InvalidArgument(
                f"analyser token pattern {self.pattern!r} is not a valid regex: {exc}"
            ) from exc
        if compiled.groups:
            raise InvalidArgument(
                f"analyser token pattern {self.pattern!r} has a capturing group; use "
                "(?:...) so that findall() returns whole tokens"
            )
        if self.stop_words is None:
            words = ENGLISH_STOP_WORDS if self.language == "english" else frozenset()
            object.__setattr__(self, "stop_words", words)

    def _stemmer(self) -> Any:
        # PyStemmer's objects are not thread-safe: one per thread.
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None and self.language is not None:
            stemmer = self._local.stemmer = Stemmer.Stemmer(self.language)
        return stemmer

    def tokens(self, text: str) -> list[str]:
        """The terms of ``text`` in order, repeats kept.

        Example::

            >>> Analyzer().tokens("Indexing indexes, and an index!")
            ['index', 'index', 'index']
        """
        if not isinstance(text, str):
            raise InvalidArgument(f"text to analyse must be a string, got {type(text).__name__}")
        if self.lowercase:
            text = text.lower()
        stop = self.stop_words or frozenset()
        words = [w for w in re.findall(self.pattern, text) if w not in stop]
        stemmer = self._stemmer()
        if stemmer is None:
            return [w for w in words if w]
        return [w for w in stemmer.stemWords(words) if w]

    def document(self, text: str) -> dict[str, int]:
        """``text`` as stored in a BM25 column: ``{term: frequency, "": length}``.

        Example::

            >>> Analyzer().document("vacuum the vacuum")
            {'vacuum': 2, '': 2}
        """
        terms = self.tokens(text)
        doc: dict[str, int] = dict(Counter(terms))
        doc[LENGTH_KEY] = len(terms)
        return doc


_DEFAULT_ANALYZER = Analyzer()


def bm25_document(text: str, analyzer: Analyzer | None = None) -> dict[str, int]:
    """The value of a BM25 column for ``text`` (for Core inserts and updates).

    Example::

        conn.execute(docs.update().where(docs.c.id == 1).values(
            body=new_body, body_bm25=bm25_document(new_body)))
    """
    return (analyzer or _DEFAULT_ANALYZER).document(text)


def _check_source(name: object) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise InvalidArgument(
            f"BM25 source column {name!r} must be a column name of letters, digits and "
            "underscores (at most 63), not starting with a digit, e.g. BM25('title', 'body')"
        )
    return name


@dataclass(frozen=True)
class BM25Spec:
    """What vecalchemy knows about a BM25 column: its source columns and analyser.

    Stored in ``Column.info["vecalchemy_bm25"]`` by :func:`BM25`.

    Example::

        spec = Doc.__table__.c.body_bm25.info["vecalchemy_bm25"]
        spec.sources, spec.analyzer.language     # (('title', 'body'), 'english')
    """

    sources: tuple[str, ...]
    analyzer: Analyzer = field(default_factory=Analyzer)

    def __post_init__(self) -> None:
        if not self.sources:
            raise InvalidArgument("BM25 needs at least one source column, e.g. BM25('body')")
        for name in self.sources:
            _check_source(name)
        if not isinstance(self.analyzer, Analyzer):
            raise InvalidArgument(
                f"analyzer must be a vecalchemy.bm25.Analyzer, got {type(self.analyzer).__name__}"
            )

    def document(self, values: Mapping[str, Any]) -> dict[str, int]:
        """The stored value for a row whose source columns hold ``values``."""
        text = " ".join(str(values[s]) for s in self.sources if values.get(s) is not None)
        return self.analyzer.document(text)


def _insert_default(spec: BM25Spec) -> Any:
    def default(context: Any) -> dict[str, int]:
        return spec.document(context.get_current_parameters())

    return default


def BM25(
    *source_columns: str,
    language: str | None = "english",
    analyzer: Analyzer | None = None,
    **kw: Any,
) -> MappedColumn[Any]:
    """Declare a BM25 column over ``source_columns``: a ``jsonb`` of the row's terms.

    Inserts fill it from the source columns (Core and ORM); ORM flushes that change a
    source column refill it. UPDATE statements (Core, or ORM bulk ``update()``) run no
    Python per row: set the column with :func:`bm25_document` in the same statement.
    ``metadata.create_all()`` installs the postings and corpus tables and the triggers
    that keep them (:func:`install_bm25`); ``drop_all()`` removes them. ``analyzer`` (or
    ``language``, a Snowball stemmer name) fixes the analysis for documents and queries.

    Example::

        class Doc(Base):
            __tablename__ = "docs"
            id: Mapped[int] = mapped_column(primary_key=True)
            body: Mapped[str]
            body_bm25 = BM25("body")

        session.execute(bm25_query(Doc.body_bm25, "vacuum tuning", k=10)).all()
    """
    spec = BM25Spec(tuple(source_columns), analyzer or Analyzer(language=language))
    info = dict(kw.pop("info", None) or {})
    info[BM25_INFO_KEY] = spec
    kw.setdefault("nullable", True)
    return mapped_column(JSONB, default=_insert_default(spec), info=info, **kw)


def bm25_column(
    name: str,
    *source_columns: str,
    language: str | None = "english",
    analyzer: Analyzer | None = None,
    **kw: Any,
) -> sa.Column[Any]:
    """The Core twin of :func:`BM25`: a ``Column`` for a ``sqlalchemy.Table``.

    Example::

        docs = Table("docs", metadata, Column("id", Integer, primary_key=True),
                     Column("body", Text), bm25_column("body_bm25", "body"))
    """
    spec = BM25Spec(tuple(source_columns), analyzer or Analyzer(language=language))
    info = dict(kw.pop("info", None) or {})
    info[BM25_INFO_KEY] = spec
    return sa.Column(name, JSONB, default=_insert_default(spec), info=info, **kw)


# --- names and DDL -------------------------------------------------------------------


@dataclass(frozen=True)
class _Names:
    schema: str | None
    table: str
    column: str
    #: The table's primary key: (column name, SQL type) in order.
    key: tuple[tuple[str, str], ...]

    @property
    def base(self) -> str:
        return f"{self.table}_{self.column}_bm25"

    def q(self, name: str) -> str:
        return qualified(self.schema, name)

    @property
    def postings(self) -> str:
        return fit_identifier(self.base, "postings")

    @property
    def corpus(self) -> str:
        return fit_identifier(self.base, "corpus")

    def function(self, op: str) -> str:
        return fit_identifier(self.base, op)

    @property
    def keys(self) -> list[str]:
        """The postings' copies of the primary key: ``key_0, key_1, ...``."""
        return [f"key_{i}" for i in range(len(self.key))]


_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _names(table: sa.Table, column: sa.Column[Any]) -> _Names:
    pk = list(table.primary_key.columns)
    if not pk:
        raise InvalidArgument(
            f"table {table.name} has no primary key; a BM25 column needs one (its postings "
            "point at rows by primary key)"
        )
    key = tuple((c.name, c.type.compile(dialect=_DIALECT)) for c in pk)
    return _Names(table.schema, table.name, column.name, key)


def _postings_select(names: _Names, rows: str) -> str:
    """``(term, key_0.., tf, dl)`` of every term of every row of ``rows``."""
    col = qualified(None, names.column)
    keys = ", ".join(f"r.{qualified(None, n)}" for n, _ in names.key)
    return (
        f"SELECT k.key AS term, {keys}, k.value::int AS tf, (r.{col} ->> '')::int AS dl "
        f"FROM {rows} r, jsonb_each_text(r.{col}) AS k WHERE k.key <> ''"
    )


def _corpus_delta(names: _Names, sides: Sequence[tuple[str, int]]) -> str:
    """Append the change of the document count and total length that ``sides`` make."""
    col = qualified(None, names.column)
    parts = " UNION ALL ".join(
        f"SELECT {sign} AS n, {sign} * coalesce((r.{col} ->> ''), '0')::bigint AS len "
        f"FROM {rows} r WHERE r.{col} IS NOT NULL"
        for rows, sign in sides
    )
    return (
        f"INSERT INTO {names.q(names.corpus)} (n, len) SELECT sum(n), sum(len) FROM ({parts}) d "
        "HAVING sum(n) <> 0 OR sum(len) <> 0"
    )


def _delete_postings(names: _Names, rows: str) -> str:
    col = qualified(None, names.column)
    match = " AND ".join(
        f"p.{k} = d.{qualified(None, n)}" for k, (n, _) in zip(names.keys, names.key, strict=True)
    )
    keys = ", ".join(f"r.{qualified(None, n)}" for n, _ in names.key)
    return (
        f"DELETE FROM {names.q(names.postings)} p USING (SELECT k.key AS term, {keys} "
        f"FROM {rows} r, jsonb_object_keys(r.{col}) AS k(key) WHERE k.key <> '') d "
        f"WHERE p.term = d.term AND {match}"
    )


def _insert_postings(names: _Names, rows: str) -> str:
    cols = ", ".join(["term", *names.keys, "tf", "dl"])
    return (
        f"INSERT INTO {names.q(names.postings)} ({cols}) {_postings_select(names, rows)} "
        f"ORDER BY 1, {', '.join(str(i + 2) for i in range(len(names.key)))}"
    )


def _install_statements(names: _Names) -> list[str]:
    postings = names.q(names.postings)
    corpus = names.q(names.corpus)
    table = names.q(names.table)
    col = qualified(None, names.column)
    key_defs = ", ".join(
        f"{k} {t} NOT NULL" for k, (_, t) in zip(names.keys, names.key, strict=True)
    )
    pk_list = ", ".join(qualified(None, n) for n, _ in names.key)
    stmts = [
        f"CREATE TABLE IF NOT EXISTS {postings} (term text NOT NULL, {key_defs}, "
        f"tf int NOT NULL, dl int NOT NULL, PRIMARY KEY (term, {', '.join(names.keys)}) "
        "INCLUDE (tf, dl))",
        f"CREATE TABLE IF NOT EXISTS {corpus} (n bigint NOT NULL, len bigint NOT NULL)",
        f"COMMENT ON TABLE {postings} IS 'vecalchemy BM25 postings of "
        f"{names.table}.{names.column}: one row per term per row, kept by triggers'",
        f"COMMENT ON TABLE {corpus} IS 'vecalchemy BM25 corpus of "
        f"{names.table}.{names.column}: append-only deltas of the document count and total "
        "length, summed when read'",
    ]
    # An update rewrites the postings only of the rows whose key or terms changed.
    changed_old = (
        f"(SELECT {pk_list}, {col} FROM old_rows EXCEPT ALL SELECT {pk_list}, {col} FROM new_rows)"
    )
    changed_new = (
        f"(SELECT {pk_list}, {col} FROM new_rows EXCEPT ALL SELECT {pk_list}, {col} FROM old_rows)"
    )
    bodies = {
        "ins": (
            "INSERT",
            "REFERENCING NEW TABLE AS new_rows",
            [_insert_postings(names, "new_rows"), _corpus_delta(names, [("new_rows", 1)])],
        ),
        "del": (
            "DELETE",
            "REFERENCING OLD TABLE AS old_rows",
            [_delete_postings(names, "old_rows"), _corpus_delta(names, [("old_rows", -1)])],
        ),
        "upd": (
            "UPDATE",
            "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
            [
                _delete_postings(names, changed_old),
                _insert_postings(names, changed_new),
                _corpus_delta(names, [("new_rows", 1), ("old_rows", -1)]),
            ],
        ),
    }
    for op, (event_, referencing, sql) in bodies.items():
        fn = names.q(names.function(op))
        body = "; ".join(sql)
        stmts.append(
            f"CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $bm25$ "
            f"BEGIN {body}; RETURN NULL; END $bm25$"
        )
        stmts.append(
            f'CREATE OR REPLACE TRIGGER "{names.function(op)}" AFTER {event_} ON {table} '
            f"{referencing} FOR EACH STATEMENT EXECUTE FUNCTION {fn}()"
        )
    fn = names.q(names.function("trunc"))
    stmts.append(
        f"CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $bm25$ "
        f"BEGIN DELETE FROM {postings}; DELETE FROM {corpus}; RETURN NULL; END $bm25$"
    )
    stmts.append(
        f'CREATE OR REPLACE TRIGGER "{names.function("trunc")}" AFTER TRUNCATE ON {table} '
        f"FOR EACH STATEMENT EXECUTE FUNCTION {fn}()"
    )
    return stmts


def _uninstall_statements(names: _Names) -> list[str]:
    table = names.q(names.table)
    stmts = []
    for op in ("ins", "del", "upd", "trunc"):
        stmts.append(f'DROP TRIGGER IF EXISTS "{names.function(op)}" ON {table}')
        stmts.append(f"DROP FUNCTION IF EXISTS {names.q(names.function(op))}()")
    stmts.append(f"DROP TABLE IF EXISTS {names.q(names.postings)}")
    stmts.append(f"DROP TABLE IF EXISTS {names.q(names.corpus)}")
    return stmts


def _resolve(column: Any) -> tuple[sa.Table, sa.Column[Any], BM25Spec]:
    col: Any = column
    if isinstance(column, InstrumentedAttribute):
        cols = getattr(column.property, "columns", None)
        col = cols[0] if cols else None
    if not isinstance(col, sa.Column) or not isinstance(col.table, sa.Table):
        raise InvalidArgument(
            f"expected a BM25 column of a table (Doc.body_bm25 or table.c.body_bm25), "
            f"got {column!r}"
        )
    spec = col.info.get(BM25_INFO_KEY)
    if not isinstance(spec, BM25Spec):
        raise InvalidArgument(
            f"column {col.table.name}.{col.name} is not a BM25 column; declare it with "
            "vecalchemy.bm25.BM25('body') (or bm25_column for a Core table)"
        )
    return col.table, col, spec


def resolve_bm25(column: Any) -> tuple[sa.Table, sa.Column[Any], BM25Spec]:
    """The table, column and :class:`BM25Spec` behind a BM25 column (ORM or Core).

    Raises :class:`~vecalchemy.errors.InvalidArgument` for any other column.

    Example::

        table, col, spec = resolve_bm25(Doc.body_bm25)
    """
    return _resolve(column)


def install_bm25(conn: sa.Connection, column: Any) -> None:
    """Create the postings and corpus tables and the triggers of a BM25 column, and fill them.

    Idempotent. Takes ``SHARE ROW EXCLUSIVE`` on the table for the rest of the
    transaction (writers wait; readers do not), so the postings built from the rows
    already there and the triggers that follow every later write never miss or double
    count a row. ``create_all()`` runs it for tables with a :func:`BM25` column.

    Example::

        with engine.begin() as conn:
            install_bm25(conn, Doc.body_bm25)
    """
    table, col, _ = _resolve(column)
    names = _names(table, col)
    conn.exec_driver_sql(f"LOCK TABLE {names.q(names.table)} IN SHARE ROW EXCLUSIVE MODE")
    for stmt in _install_statements(names):
        conn.exec_driver_sql(stmt)
    conn.exec_driver_sql(f"DELETE FROM {names.q(names.postings)}")
    conn.exec_driver_sql(f"DELETE FROM {names.q(names.corpus)}")
    existing = names.q(names.table)
    conn.exec_driver_sql(_insert_postings(names, existing))
    conn.exec_driver_sql(_corpus_delta(names, [(existing, 1)]))


def uninstall_bm25(conn: sa.Connection, column: Any) -> None:
    """Drop the triggers, functions, postings and corpus tables of a BM25 column.

    Idempotent. The column stays; :func:`install_bm25` rebuilds the rest from it.

    Example::

        with engine.begin() as conn:
            uninstall_bm25(conn, Doc.body_bm25)
    """
    table, col, _ = _resolve(column)
    for stmt in _uninstall_statements(_names(table, col)):
        conn.exec_driver_sql(stmt)


def compact_bm25(conn: sa.Connection, column: Any, *, wait: bool = True) -> int:
    """Fold a BM25 column's corpus deltas into one row; returns the rows removed.

    Every write statement appends one delta row (so that writers never wait for each
    other); reads sum them, so compact now and then (the postings need nothing;
    collections compact after each write). Safe while others write: the rows folded
    are the ones this statement's snapshot sees, and deltas committed meanwhile stay.
    Compactions of one column take turns (an advisory lock); ``wait=False`` returns 0
    at once when another one holds it. Reads are exact before, during and after.

    Example::

        with engine.begin() as conn:
            compact_bm25(conn, Doc.body_bm25)
    """
    table, col, _ = _resolve(column)
    names = _names(table, col)
    corpus = names.q(names.corpus)
    key = {"n": f"vecalchemy:bm25:{corpus}"}
    if wait:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:n, 0))"), key)
    elif not conn.execute(
        sa.text("SELECT pg_try_advisory_xact_lock(hashtextextended(:n, 0))"), key
    ).scalar_one():
        return 0
    before = conn.exec_driver_sql(f"SELECT count(*) FROM {corpus}").scalar_one()
    conn.exec_driver_sql(
        f"WITH gone AS (DELETE FROM {corpus} RETURNING n, len) "
        f"INSERT INTO {corpus} (n, len) SELECT sum(n), sum(len) FROM gone "
        "HAVING sum(n) <> 0 OR sum(len) <> 0"
    )
    after = conn.exec_driver_sql(f"SELECT count(*) FROM {corpus}").scalar_one()
    return int(before) - int(after)


@dataclass(frozen=True)
class BM25Statistics:
    """A BM25 column's corpus statistics as the current snapshot sees them.

    Example::

        stats = bm25_statistics(conn, Doc.body_bm25)
        stats.documents, stats.avgdl, stats.df["vacuum"]
    """

    documents: int
    total_length: int
    df: dict[str, int]

    @property
    def avgdl(self) -> float:
        """The average document length (0.0 for an empty corpus)."""
        return self.total_length / self.documents if self.documents else 0.0


def bm25_statistics(
    conn: sa.Connection, column: Any, terms: Sequence[str] | None = None
) -> BM25Statistics:
    """Document count, total length and document frequencies (of ``terms``, or all).

    Example::

        bm25_statistics(conn, Doc.body_bm25, ["vacuum"]).df    # {'vacuum': 12}
    """
    table, col, _ = _resolve(column)
    names = _names(table, col)
    postings, corpus = _side_tables(col, names)
    documents, length = conn.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(corpus.c.n), 0),
            sa.func.coalesce(sa.func.sum(corpus.c.len), 0),
        )
    ).one()
    if terms is not None and not list(terms):
        return BM25Statistics(int(documents), int(length), {})
    query = sa.select(postings.c.term, sa.func.count()).group_by(postings.c.term)
    if terms is not None:
        query = query.where(postings.c.term == sa.any_(_text_array(terms)))
    df = {term: int(count) for term, count in conn.execute(query)}
    return BM25Statistics(int(documents), int(length), df)


# --- the query -----------------------------------------------------------------------


_TABLES_INFO_KEY = "vecalchemy_bm25_tables"


def _side_tables(col: sa.Column[Any], names: _Names) -> tuple[sa.Table, sa.Table]:
    """The postings and corpus ``Table`` objects of ``col``, made once and kept on the
    column: SQLAlchemy caches a statement's compiled SQL by the tables it names, so a
    new ``Table`` per query would compile every query afresh."""
    cached = col.info.get(_TABLES_INFO_KEY)
    if cached is None or cached[0] != names:
        cached = (names, _postings_table(names), _corpus_table(names))
        col.info[_TABLES_INFO_KEY] = cached
    return cached[1], cached[2]


def _postings_table(names: _Names) -> sa.Table:
    return sa.Table(
        names.postings,
        sa.MetaData(),
        sa.Column("term", sa.Text),
        *(sa.Column(k, sa.types.NullType()) for k in names.keys),
        sa.Column("tf", sa.Integer),
        sa.Column("dl", sa.Integer),
        schema=names.schema,
    )


def _corpus_table(names: _Names) -> sa.Table:
    return sa.Table(
        names.corpus,
        sa.MetaData(),
        sa.Column("n", sa.BigInteger),
        sa.Column("len", sa.BigInteger),
        schema=names.schema,
    )


def _text_array(values: Sequence[str], key: str | None = None) -> sa.BindParameter[Any]:
    # Rendered into the SQL at execution (the compiled form stays cached): with the
    # terms as parameters, a prepared statement's generic plan cannot see how many
    # postings they have, and was measured 80 times slower than the custom plan.
    return sa.bindparam(key, list(values), type_=ARRAY(sa.Text), literal_execute=True)


def _check_param(what: str, value: object, *, upper: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise InvalidSearch(f"{what} must be a number, got {value!r}")
    if value < 0 or (upper is not None and value > upper):
        bound = f"between 0 and {upper}" if upper is not None else "0 or more"
        raise InvalidSearch(f"{what} must be {bound}, got {value!r}")
    return float(value)


def _check_query(query_text: object, k: object) -> None:
    if not isinstance(query_text, str):
        raise InvalidSearch(
            f"query text must be a string, got {type(query_text).__name__}; pass the words "
            "to search for"
        )
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise InvalidSearch(f"k must be a positive integer or None, got {k!r}")


def bm25_scores(
    column: Any,
    query_text: str,
    limit: int | None = None,
    *,
    k1: float = DEFAULT_K1,
    b: float = DEFAULT_B,
) -> sa.Subquery | None:
    """``(key_0, ..., score)`` of every row sharing a term with ``query_text``.

    The building block of :func:`bm25_query` (and of a hybrid query's text leg):
    ``key_<i>`` is the row's i-th primary key column. ``limit``: only the best rows
    (ties by key). None when the query has no terms.

    Example::

        scores = bm25_scores(Doc.body_bm25, "vacuum", limit=40)
        select(Doc.id, scores.c.score).join(scores, Doc.id == scores.c.key_0)
    """
    table, col, spec = _resolve(column)
    _check_query(query_text, limit)
    k1 = _check_param("k1", k1)
    b = _check_param("b", b, upper=1.0)
    found = query_terms(spec, query_text)
    if found is None:
        return None
    terms, qtf = found
    names = _names(table, col)
    pk = list(table.primary_key.columns)
    # Plain SQL text: the same statement built from SQLAlchemy constructs cost more
    # client time per query than the server spent running it.
    stmt = sa.text(_scores_sql(names, limited=limit is not None)).bindparams(
        _text_array(terms, "bm25_terms"),
        sa.bindparam("bm25_qtf", qtf, type_=ARRAY(sa.Integer), literal_execute=True),
        sa.bindparam("bm25_k1b", k1 * b, type_=sa.Float(precision=53)),
        sa.bindparam("bm25_c0", k1 * (1.0 - b), type_=sa.Float(precision=53)),
        *([] if limit is None else [sa.bindparam("bm25_limit", limit, type_=sa.Integer)]),
    )
    columns = [sa.column(k, c.type) for k, c in zip(names.keys, pk, strict=True)]
    return stmt.columns(*columns, sa.column("score", sa.Float(precision=53))).subquery(
        "bm25_scores"
    )


def query_terms(spec: BM25Spec, query_text: str) -> tuple[list[str], list[int]] | None:
    """The query's distinct terms (sorted) and how often each occurs, through the
    column's analyser: the values of :func:`bm25_scores`'s ``bm25_terms`` and
    ``bm25_qtf`` parameters. None when the query has no terms."""
    counts = Counter(spec.analyzer.tokens(query_text))
    if not counts:
        return None
    terms = sorted(counts)
    return terms, [counts[t] for t in terms]


def _scores_sql(names: _Names, *, limited: bool) -> str:
    """The SQL of :func:`bm25_scores` for a column (see docs/design.md, "BM25")."""
    keys = ", ".join(names.keys)
    h_keys = ", ".join(f"h.{k}" for k in names.keys)
    sql = (
        "WITH bm25_hits AS MATERIALIZED ("
        f"SELECT term, {keys}, tf, dl FROM {names.q(names.postings)} "
        "WHERE term = ANY(:bm25_terms)), "
        "bm25_corpus AS (SELECT sum(n)::float8 AS n, sum(len)::float8 AS total "
        f"FROM {names.q(names.corpus)}), "
        "bm25_weights AS (SELECT d.term, "
        "q.qtf * ln(1.0 + (c.n - d.df + 0.5) / (d.df + 0.5)) AS idf, "
        "coalesce(:bm25_k1b * c.n / nullif(c.total, 0.0), 0.0) AS c1 "
        "FROM (SELECT term, count(*)::float8 AS df FROM bm25_hits GROUP BY term) AS d "
        "JOIN unnest(:bm25_terms, :bm25_qtf) AS q(term, qtf) ON q.term = d.term "
        "CROSS JOIN bm25_corpus AS c) "
        f"SELECT {h_keys}, sum(w.idf * h.tf / (h.tf + :bm25_c0 + w.c1 * h.dl)) AS score "
        "FROM bm25_hits AS h JOIN bm25_weights AS w ON w.term = h.term "
        f"GROUP BY {h_keys}"
    )
    if limited:
        sql += f" ORDER BY score DESC, {h_keys} LIMIT :bm25_limit"
    return sql


def bm25_query(
    column: Any,
    query_text: str,
    k: int | None = 10,
    *,
    where: Any = None,
    k1: float = DEFAULT_K1,
    b: float = DEFAULT_B,
) -> sa.Select[Any]:
    """``SELECT <row>, score``: the rows sharing any term with ``query_text``, best first.

    Real BM25 (bm25s's default ``lucene`` variant) from the live statistics:
    ``sum over query terms of ln(1 + (N - df + 0.5) / (df + 0.5)) * tf / (tf + k1 * (1 -
    b + b * dl / avgdl))``. The query is analysed with the column's analyser; a row
    qualifies if it has ANY of the terms, so queries of any length work. A query with
    no terms (empty, or only stop words) selects no rows. ``k=None``: every match.
    ``where``: a filter on the table (an expression or a list), applied before the
    top ``k`` are taken. For an ORM column the row is the mapped entity, for a Core
    column the table's columns.

    Example::

        for doc, score in session.execute(bm25_query(Doc.body_bm25, "vacuum tuning")):
            print(doc.id, round(score, 3))
    """
    table, _, _ = _resolve(column)
    _check_query(query_text, k)
    entity: Any = column.class_ if isinstance(column, InstrumentedAttribute) else table
    pk = list(table.primary_key.columns)
    filters = [] if where is None else list(where) if isinstance(where, (list, tuple)) else [where]
    scores = bm25_scores(column, query_text, None if filters else k, k1=k1, b=b)
    if scores is None:
        empty = sa.select(entity, sa.literal(0.0, sa.Float).label("score")).where(sa.false())
        return empty.limit(k) if k is not None else empty
    on = sa.and_(*(c == scores.c[f"key_{i}"] for i, c in enumerate(pk)))
    stmt = (
        sa.select(entity, scores.c.score)
        .join(scores, on)
        .where(*filters)
        .order_by(scores.c.score.desc(), *pk)
    )
    return stmt.limit(k) if k is not None else stmt


# --- wiring: DDL on create/drop, ORM flush hook ---------------------------------------


@event.listens_for(sa.Column, "after_parent_attach")
def _attach(column: sa.Column[Any], parent: Any) -> None:
    spec = column.info.get(BM25_INFO_KEY)
    if not isinstance(spec, BM25Spec) or not isinstance(parent, sa.Table):
        return

    def after_create(target: sa.Table, connection: sa.Connection, **kw: Any) -> None:
        install_bm25(connection, target.c[column.name])

    def before_drop(target: sa.Table, connection: sa.Connection, **kw: Any) -> None:
        uninstall_bm25(connection, target.c[column.name])

    event.listen(parent, "after_create", after_create)
    event.listen(parent, "before_drop", before_drop)


def _bm25_columns(mapper: Mapper[Any]) -> list[tuple[str, BM25Spec, list[str]]]:
    found = []
    for prop_col in mapper.columns:
        spec = prop_col.info.get(BM25_INFO_KEY)
        if isinstance(spec, BM25Spec):
            key = mapper.get_property_by_column(prop_col).key
            sources = [
                mapper.get_property_by_column(mapper.local_table.c[s]).key for s in spec.sources
            ]
            found.append((key, spec, sources))
    return found


@event.listens_for(Mapper, "before_update")
def _refresh_on_update(mapper: Mapper[Any], connection: Any, target: Any) -> None:
    columns = _bm25_columns(mapper)
    if not columns:
        return
    state = sa.inspect(target)
    for key, spec, sources in columns:
        if any(state.attrs[s].history.has_changes() for s in sources):
            values = {c: getattr(target, s) for c, s in zip(spec.sources, sources, strict=True)}
            setattr(target, key, spec.document(values))
