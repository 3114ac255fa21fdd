"""Metric and Storage: operators, operator classes, index methods, distance <-> similarity.

The expected tables are copied from /work/shared/reference/pgvector-facts.md and are
also checked against the running server's catalogs (pg_opclass, pg_amop), so a wrong
fact fails here rather than in a user's CREATE INDEX.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import assume, given
from hypothesis import strategies as st
from pgvector.sqlalchemy import BIT, HALFVEC, SPARSEVEC, VECTOR
from sqlalchemy.dialects import postgresql

from vecalchemy import InvalidSearch, Metric, Storage, UnknownMetric, UnsupportedIndex
from vecalchemy.errors import VecalchemyError
from vecalchemy.metrics import INDEX_DIM_LIMITS, MAX_EF_SEARCH, IndexMethod

HNSW = IndexMethod.HNSW
IVF = IndexMethod.IVFFLAT
BOTH = frozenset({HNSW, IVF})
HNSW_ONLY = frozenset({HNSW})

#: metric -> (operator, {storage: (opclass, index methods)}); absent storages do not apply.
FACTS: dict[Metric, tuple[str, dict[Storage, tuple[str, frozenset[IndexMethod]]]]] = {
    Metric.L2: (
        "<->",
        {
            Storage.VECTOR: ("vector_l2_ops", BOTH),
            Storage.HALFVEC: ("halfvec_l2_ops", BOTH),
            Storage.SPARSEVEC: ("sparsevec_l2_ops", HNSW_ONLY),
        },
    ),
    Metric.INNER_PRODUCT: (
        "<#>",
        {
            Storage.VECTOR: ("vector_ip_ops", BOTH),
            Storage.HALFVEC: ("halfvec_ip_ops", BOTH),
            Storage.SPARSEVEC: ("sparsevec_ip_ops", HNSW_ONLY),
        },
    ),
    Metric.COSINE: (
        "<=>",
        {
            Storage.VECTOR: ("vector_cosine_ops", BOTH),
            Storage.HALFVEC: ("halfvec_cosine_ops", BOTH),
            Storage.SPARSEVEC: ("sparsevec_cosine_ops", HNSW_ONLY),
        },
    ),
    Metric.L1: (
        "<+>",
        {
            Storage.VECTOR: ("vector_l1_ops", HNSW_ONLY),
            Storage.HALFVEC: ("halfvec_l1_ops", HNSW_ONLY),
            Storage.SPARSEVEC: ("sparsevec_l1_ops", HNSW_ONLY),
        },
    ),
    Metric.HAMMING: ("<~>", {Storage.BIT: ("bit_hamming_ops", BOTH)}),
    Metric.JACCARD: ("<%>", {Storage.BIT: ("bit_jaccard_ops", HNSW_ONLY)}),
}

ALL_COMBINATIONS = [(m, s) for m in Metric for s in Storage]
SUPPORTED = [(m, s) for m, s in ALL_COMBINATIONS if s in FACTS[m][1]]
UNSUPPORTED = [(m, s) for m, s in ALL_COMBINATIONS if s not in FACTS[m][1]]

_SUFFIX = {
    Metric.L2: "l2_ops",
    Metric.INNER_PRODUCT: "ip_ops",
    Metric.COSINE: "cosine_ops",
    Metric.L1: "l1_ops",
    Metric.HAMMING: "hamming_ops",
    Metric.JACCARD: "jaccard_ops",
}


def _ids(pairs: list[tuple[Metric, Storage]]) -> list[str]:
    return [f"{m.value}-{s.value}" for m, s in pairs]


# -- operators, operator classes and index methods -------------------------------------------


def test_the_facts_table_covers_every_combination() -> None:
    """The 6 metrics x 4 storages split into 14 indexable and 10 impossible combinations."""
    assert set(FACTS) == set(Metric)
    assert len(ALL_COMBINATIONS) == 24
    assert len(SUPPORTED) == 14
    assert len(UNSUPPORTED) == 10


@pytest.mark.parametrize("metric", list(Metric), ids=lambda m: m.value)
def test_operator_is_pgvectors(metric: Metric) -> None:
    """Each metric uses pgvector's operator: <-> l2, <#> ip, <=> cosine, <+> l1, <~>, <%>."""
    assert metric.operator == FACTS[metric][0]


@pytest.mark.parametrize(("metric", "storage"), SUPPORTED, ids=_ids(SUPPORTED))
def test_opclass_and_index_methods_of_supported_combinations(
    metric: Metric, storage: Storage
) -> None:
    """opclass() and index_methods() match pgvector's table for every supported pair."""
    opclass, methods = FACTS[metric][1][storage]
    assert metric.opclass(storage) == opclass
    assert metric.index_methods(storage) == methods
    assert storage in metric.storages
    metric.check_storage(storage)  # does not raise


@pytest.mark.parametrize(("metric", "storage"), UNSUPPORTED, ids=_ids(UNSUPPORTED))
def test_unsupported_combinations_raise_unsupported_index(metric: Metric, storage: Storage) -> None:
    """A metric that does not apply to a storage raises UnsupportedIndex naming what fits."""
    assert metric.index_methods(storage) == frozenset()
    assert storage not in metric.storages
    fits = sorted(m.value for m in Metric if storage in FACTS[m][1])
    for call in (metric.opclass, metric.check_storage):
        with pytest.raises(UnsupportedIndex) as info:
            call(storage)
        message = str(info.value)
        assert f"metric {metric.value!r} does not apply to {storage.value} columns" in message
        assert f"{storage.value} supports: {', '.join(fits)}" in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("metric", "storage", "methods"),
    [
        (Metric.L2, Storage.VECTOR, BOTH),
        (Metric.INNER_PRODUCT, Storage.HALFVEC, BOTH),
        (Metric.COSINE, Storage.HALFVEC, BOTH),
        (Metric.HAMMING, Storage.BIT, BOTH),
        (Metric.L1, Storage.VECTOR, HNSW_ONLY),
        (Metric.L1, Storage.HALFVEC, HNSW_ONLY),
        (Metric.JACCARD, Storage.BIT, HNSW_ONLY),
        (Metric.COSINE, Storage.SPARSEVEC, HNSW_ONLY),
        (Metric.L2, Storage.SPARSEVEC, HNSW_ONLY),
        (Metric.INNER_PRODUCT, Storage.SPARSEVEC, HNSW_ONLY),
    ],
)
def test_ivfflat_only_for_l2_ip_cosine_dense_and_hamming(
    metric: Metric, storage: Storage, methods: frozenset[IndexMethod]
) -> None:
    """IVFFlat serves l2/ip/cosine on vector and halfvec, and hamming on bit; else HNSW only."""
    assert metric.index_methods(storage) == methods


def test_every_ivfflat_pair_is_listed() -> None:
    """Exactly 7 metric/storage pairs can be indexed with IVFFlat."""
    ivf = {(m, s) for m, s in ALL_COMBINATIONS if IVF in m.index_methods(s)}
    assert ivf == {
        (Metric.L2, Storage.VECTOR),
        (Metric.L2, Storage.HALFVEC),
        (Metric.INNER_PRODUCT, Storage.VECTOR),
        (Metric.INNER_PRODUCT, Storage.HALFVEC),
        (Metric.COSINE, Storage.VECTOR),
        (Metric.COSINE, Storage.HALFVEC),
        (Metric.HAMMING, Storage.BIT),
    }


@pytest.mark.parametrize(("metric", "storage"), SUPPORTED, ids=_ids(SUPPORTED))
def test_from_opclass_round_trips(metric: Metric, storage: Storage) -> None:
    """from_opclass(opclass(storage)) gives back (metric, storage)."""
    assert Metric.from_opclass(metric.opclass(storage)) == (metric, storage)


@pytest.mark.parametrize(
    "name", ["bit_cosine_ops", "vector_hamming_ops", "vector_foo_ops", "", "VECTOR_L2_OPS"]
)
def test_from_opclass_of_unknown_names_is_none(name: str) -> None:
    """Names that are not a pgvector operator class give None, not an error."""
    assert Metric.from_opclass(name) is None


SA_TYPES = {
    Storage.VECTOR: VECTOR(3),
    Storage.HALFVEC: HALFVEC(3),
    Storage.SPARSEVEC: SPARSEVEC(3),
    Storage.BIT: BIT(3),
}


@pytest.mark.parametrize(("metric", "storage"), SUPPORTED, ids=_ids(SUPPORTED))
def test_comparator_method_emits_the_metric_operator(metric: Metric, storage: Storage) -> None:
    """pgvector-python's comparator method named by the metric compiles to its operator."""
    col = sa.column("embedding", SA_TYPES[storage])
    method = metric.comparator_method
    assert method is not None
    expr = getattr(col.comparator, method)(sa.literal_column("q"))
    sql = str(expr.compile(dialect=postgresql.dialect(paramstyle="named")))
    assert sql == f"embedding {metric.operator} q"


# -- the same facts, from the server's catalogs ---------------------------------------------

_OPCLASS_SQL = sa.text(
    "SELECT am.amname, op.oprname FROM pg_opclass oc "
    "JOIN pg_am am ON am.oid = oc.opcmethod "
    "JOIN pg_amop ao ON ao.amopfamily = oc.opcfamily AND ao.amopmethod = am.oid "
    "AND ao.amoppurpose = 'o' "
    "JOIN pg_operator op ON op.oid = ao.amopopr "
    "WHERE oc.opcname = :name"
)


@pytest.mark.parametrize(("metric", "storage"), ALL_COMBINATIONS, ids=_ids(ALL_COMBINATIONS))
def test_opclasses_agree_with_the_server_catalog(
    connection: sa.Connection, metric: Metric, storage: Storage
) -> None:
    """pg_opclass has the operator class for exactly the index methods vecalchemy offers,
    ordering by exactly the metric's operator; impossible pairs have no operator class."""
    name = f"{storage.value}_{_SUFFIX[metric]}"
    rows = {tuple(row) for row in connection.execute(_OPCLASS_SQL, {"name": name})}
    expected = {(m.value, metric.operator) for m in metric.index_methods(storage)}
    assert rows == expected
    if not expected:
        assert name not in {metric.opclass(s) for s in metric.storages}


def test_max_ef_search_is_the_servers_limit(connection: sa.Connection) -> None:
    """hnsw.ef_search accepts MAX_EF_SEARCH and refuses one more."""
    connection.exec_driver_sql(f"SET LOCAL hnsw.ef_search = {MAX_EF_SEARCH}")
    assert connection.exec_driver_sql("SHOW hnsw.ef_search").scalar() == str(MAX_EF_SEARCH)
    with pytest.raises(sa.exc.DataError, match="outside the valid"), connection.begin_nested():
        connection.exec_driver_sql(f"SET LOCAL hnsw.ef_search = {MAX_EF_SEARCH + 1}")


def test_index_dim_limits_match_the_facts() -> None:
    """Indexes take 2,000 vector, 4,000 halfvec and 64,000 bit dimensions, 1,000 sparse nnz."""
    assert INDEX_DIM_LIMITS == {
        Storage.VECTOR: 2_000,
        Storage.HALFVEC: 4_000,
        Storage.BIT: 64_000,
        Storage.SPARSEVEC: 1_000,
    }


# -- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "metric"),
    [
        ("cosine", Metric.COSINE),
        ("cos", Metric.COSINE),
        ("cosine_distance", Metric.COSINE),
        ("  COSINE ", Metric.COSINE),
        ("l2", Metric.L2),
        ("L2", Metric.L2),
        ("euclidean", Metric.L2),
        ("l2_distance", Metric.L2),
        ("inner_product", Metric.INNER_PRODUCT),
        ("inner-product", Metric.INNER_PRODUCT),
        ("Inner Product", Metric.INNER_PRODUCT),
        ("ip", Metric.INNER_PRODUCT),
        ("dot", Metric.INNER_PRODUCT),
        ("dot_product", Metric.INNER_PRODUCT),
        ("dot-product", Metric.INNER_PRODUCT),
        ("max_inner_product", Metric.INNER_PRODUCT),
        ("l1", Metric.L1),
        ("manhattan", Metric.L1),
        ("taxicab", Metric.L1),
        ("l1_distance", Metric.L1),
        ("hamming", Metric.HAMMING),
        ("hamming_distance", Metric.HAMMING),
        ("jaccard", Metric.JACCARD),
        ("Jaccard_Distance", Metric.JACCARD),
    ],
)
def test_parse_accepts_names_and_aliases(text: str, metric: Metric) -> None:
    """Metric.parse accepts names and aliases in any case, with '-' or ' ' for '_'."""
    assert Metric.parse(text) is metric


@pytest.mark.parametrize("metric", list(Metric), ids=lambda m: m.value)
def test_parse_passes_metrics_through(metric: Metric) -> None:
    """A Metric parses to itself, and so does its value."""
    assert Metric.parse(metric) is metric
    assert Metric.parse(metric.value) is metric


@pytest.mark.parametrize("text", ["", "dist", "cosine similarity", "l3", "hnsw", "vector"])
def test_parse_unknown_metric_lists_the_choices(text: str) -> None:
    """An unknown name raises UnknownMetric (a ValueError) that lists every metric."""
    with pytest.raises(UnknownMetric) as info:
        Metric.parse(text)
    assert str(info.value) == (
        f"unknown metric {text!r}; use one of: cosine, l2, inner_product, l1, hamming, jaccard"
    )
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, VecalchemyError)


@pytest.mark.parametrize("storage", list(Storage), ids=lambda s: s.value)
def test_storage_parse(storage: Storage) -> None:
    """Storage.parse accepts the storage, its name in any case, and surrounding spaces."""
    assert Storage.parse(storage) is storage
    assert Storage.parse(f" {storage.value.upper()} ") is storage


def test_storage_parse_unknown_lists_the_choices() -> None:
    """An unknown storage raises UnknownMetric listing vector, halfvec, sparsevec, bit."""
    with pytest.raises(UnknownMetric) as info:
        Storage.parse("float16")
    assert str(info.value) == (
        "unknown storage 'float16'; use one of: vector, halfvec, sparsevec, bit"
    )


@pytest.mark.parametrize(
    ("storage", "literal", "dim", "nnz"),
    [
        (Storage.VECTOR, "'[1,2,3]'::vector", 3, None),
        (Storage.VECTOR, f"'[{','.join(['0.5'] * 384)}]'::vector", 384, None),
        (Storage.HALFVEC, f"'[{','.join(['0.5'] * 384)}]'::halfvec", 384, None),
        (Storage.BIT, f"B'{'10' * 50}'::bit(100)", 100, None),
        (Storage.BIT, "B'1'::bit(1)", 1, None),
        (Storage.SPARSEVEC, "'{1:1,3:2,70:4}/100'::sparsevec", 100, 3),
    ],
)
def test_bytes_per_row_matches_pg_column_size(
    connection: sa.Connection, storage: Storage, literal: str, dim: int, nnz: int | None
) -> None:
    """bytes_per_row is the size PostgreSQL reports for one value."""
    size = connection.exec_driver_sql(f"SELECT pg_column_size({literal})").scalar()
    assert storage.bytes_per_row(dim, nnz=nnz) == size


# -- distance -> similarity -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "distance", "similarity"),
    [
        (Metric.COSINE, 0.0, 1.0),
        (Metric.COSINE, 1.0, 0.0),
        (Metric.COSINE, 2.0, -1.0),
        (Metric.COSINE, 0.25, 0.75),
        (Metric.INNER_PRODUCT, -0.8, 0.8),
        (Metric.INNER_PRODUCT, 3.0, -3.0),
        (Metric.L2, 0.0, 1.0),
        (Metric.L2, 1.0, 0.5),
        (Metric.L2, 3.0, 0.25),
        (Metric.L1, 0.0, 1.0),
        (Metric.L1, 4.0, 0.2),
        (Metric.JACCARD, 0.0, 1.0),
        (Metric.JACCARD, 1.0, 0.0),
        (Metric.JACCARD, 0.25, 0.75),
    ],
)
def test_similarity_values(metric: Metric, distance: float, similarity: float) -> None:
    """Similarity formulas: 1-d (cosine, jaccard), -d (ip), 1/(1+d) (l2, l1)."""
    assert metric.similarity(distance) == pytest.approx(similarity)


def test_hamming_similarity_is_the_fraction_of_equal_bits() -> None:
    """Hamming similarity is 1 - d/dim and needs the dimension."""
    assert Metric.HAMMING.similarity(0, dim=64) == 1.0
    assert Metric.HAMMING.similarity(16, dim=64) == 0.75
    assert Metric.HAMMING.similarity(64, dim=64) == 0.0
    for dim in (None, 0):
        with pytest.raises(InvalidSearch, match="hamming similarity needs the column's dimension"):
            Metric.HAMMING.similarity(3, dim=dim)
        with pytest.raises(InvalidSearch, match="needs the column's dimension"):
            Metric.HAMMING.max_distance_for(0.5, dim=dim)


#: Reachable distances and similarities of each metric (hamming with dim=HAMMING_DIM).
HAMMING_DIM = 256
_DIST = {
    Metric.COSINE: st.floats(0.0, 2.0),
    Metric.JACCARD: st.floats(0.0, 1.0),
    Metric.INNER_PRODUCT: st.floats(-1e9, 1e9),
    Metric.L2: st.floats(0.0, 1e9),
    Metric.L1: st.floats(0.0, 1e9),
    Metric.HAMMING: st.integers(0, HAMMING_DIM).map(float),
}
_SIM = {
    Metric.COSINE: st.floats(-1.0, 1.0),
    Metric.JACCARD: st.floats(0.0, 1.0),
    Metric.INNER_PRODUCT: st.floats(-1e9, 1e9),
    Metric.L2: st.floats(1e-9, 1.0),
    Metric.L1: st.floats(1e-9, 1.0),
    Metric.HAMMING: st.floats(0.0, 1.0),
}


def _dim(metric: Metric) -> int | None:
    return HAMMING_DIM if metric is Metric.HAMMING else None


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@given(data=st.data())
@pytest.mark.parametrize("metric", list(Metric), ids=lambda m: m.value)
def test_closer_means_more_similar(metric: Metric, data: st.DataObject) -> None:
    """For every metric, a smaller distance gives a strictly higher similarity."""
    d1 = data.draw(_DIST[metric], label="d1")
    d2 = data.draw(_DIST[metric], label="d2")
    assume(not _close(d1, d2))
    near, far = min(d1, d2), max(d1, d2)
    dim = _dim(metric)
    assert metric.similarity(near, dim=dim) > metric.similarity(far, dim=dim)


@given(data=st.data())
@pytest.mark.parametrize("metric", list(Metric), ids=lambda m: m.value)
def test_max_distance_for_inverts_similarity(metric: Metric, data: st.DataObject) -> None:
    """similarity(max_distance_for(s)) == s, and max_distance_for(similarity(d)) == d."""
    dim = _dim(metric)
    s = data.draw(_SIM[metric], label="s")
    assert _close(metric.similarity(metric.max_distance_for(s, dim=dim), dim=dim), s)
    d = data.draw(_DIST[metric], label="d")
    assert math.isclose(
        metric.max_distance_for(metric.similarity(d, dim=dim), dim=dim),
        d,
        rel_tol=1e-7,
        abs_tol=1e-7,
    )


@given(data=st.data())
@pytest.mark.parametrize("metric", list(Metric), ids=lambda m: m.value)
def test_threshold_keeps_exactly_the_similar_enough(metric: Metric, data: st.DataObject) -> None:
    """A distance is within max_distance_for(s) exactly when its similarity is >= s."""
    dim = _dim(metric)
    s = data.draw(_SIM[metric], label="s")
    d = data.draw(_DIST[metric], label="d")
    limit = metric.max_distance_for(s, dim=dim)
    assume(not math.isclose(d, limit, rel_tol=1e-9, abs_tol=1e-9))
    assert (d <= limit) == (metric.similarity(d, dim=dim) >= s)


@pytest.mark.parametrize("metric", [Metric.L2, Metric.L1], ids=lambda m: m.value)
def test_zero_similarity_threshold_keeps_every_distance(metric: Metric) -> None:
    """For l2/l1, min_similarity=0 allows any distance (infinity)."""
    assert metric.max_distance_for(0.0) == math.inf
    assert metric.max_distance_for(1.0) == 0.0


@pytest.mark.parametrize(
    ("metric", "threshold", "bounds"),
    [
        (Metric.COSINE, 1.5, "[-1, 1]"),
        (Metric.COSINE, -1.01, "[-1, 1]"),
        (Metric.JACCARD, 1.1, "[0, 1]"),
        (Metric.JACCARD, -0.1, "[0, 1]"),
        (Metric.HAMMING, 1.5, "[0, 1]"),
        (Metric.HAMMING, -0.5, "[0, 1]"),
        (Metric.L2, 1.0001, "[0, 1]"),
        (Metric.L2, -0.1, "[0, 1]"),
        (Metric.L1, 2.0, "[0, 1]"),
        (Metric.L1, -1.0, "[0, 1]"),
    ],
)
def test_unreachable_thresholds_raise(metric: Metric, threshold: float, bounds: str) -> None:
    """A min_similarity outside the metric's range raises InvalidSearch saying no row matches."""
    with pytest.raises(InvalidSearch) as info:
        metric.max_distance_for(threshold, dim=_dim(metric))
    message = str(info.value)
    assert f"outside {bounds}" in message
    assert metric.value in message
    assert "no row could match" in message


@pytest.mark.parametrize("metric", list(Metric), ids=lambda m: m.value)
@pytest.mark.parametrize("threshold", [math.nan, math.inf, -math.inf])
def test_non_finite_thresholds_raise(metric: Metric, threshold: float) -> None:
    """NaN and infinite thresholds raise InvalidSearch for every metric."""
    with pytest.raises(InvalidSearch, match="min_similarity must be a finite number"):
        metric.max_distance_for(threshold, dim=_dim(metric))


def test_inner_product_accepts_any_finite_threshold() -> None:
    """Inner products are unbounded: max_distance_for(s) is -s for any finite s."""
    assert Metric.INNER_PRODUCT.max_distance_for(0.8) == -0.8
    assert Metric.INNER_PRODUCT.max_distance_for(-1e6) == 1e6


# -- the formulas against pgvector's own distances -----------------------------------------


def _vec(a: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in a) + "]"


def _random_pairs(seed: int, n: int = 20, dim: int = 16) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        (
            rng.uniform(-1, 1, dim).astype(np.float32).astype(np.float64),
            rng.uniform(-1, 1, dim).astype(np.float32).astype(np.float64),
        )
        for _ in range(n)
    ]


def _server_distance(conn: sa.Connection, metric: Metric, a: str, b: str, typ: str) -> float:
    sql = sa.text(f"SELECT CAST(:a AS {typ}) {metric.operator} CAST(:b AS {typ})")
    return float(conn.execute(sql, {"a": a, "b": b}).scalar_one())


def test_cosine_similarity_matches_numpy(connection: sa.Connection) -> None:
    """similarity(a <=> b) is numpy's cosine similarity."""
    for a, b in _random_pairs(1):
        d = _server_distance(connection, Metric.COSINE, _vec(a), _vec(b), "vector")
        expected = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
        assert Metric.COSINE.similarity(d) == pytest.approx(expected, abs=1e-5)


def test_inner_product_similarity_matches_numpy(connection: sa.Connection) -> None:
    """similarity(a <#> b) is numpy's inner product (pgvector returns its negative)."""
    for a, b in _random_pairs(2):
        d = _server_distance(connection, Metric.INNER_PRODUCT, _vec(a), _vec(b), "vector")
        assert d == pytest.approx(-(a @ b), rel=1e-5, abs=1e-5)
        assert Metric.INNER_PRODUCT.similarity(d) == pytest.approx(a @ b, rel=1e-5, abs=1e-5)


def test_l2_similarity_matches_numpy(connection: sa.Connection) -> None:
    """similarity(a <-> b) is 1 / (1 + Euclidean distance)."""
    for a, b in _random_pairs(3):
        d = _server_distance(connection, Metric.L2, _vec(a), _vec(b), "vector")
        assert Metric.L2.similarity(d) == pytest.approx(1 / (1 + np.linalg.norm(a - b)), rel=1e-5)


def test_l1_similarity_matches_numpy(connection: sa.Connection) -> None:
    """similarity(a <+> b) is 1 / (1 + Manhattan distance)."""
    for a, b in _random_pairs(4):
        d = _server_distance(connection, Metric.L1, _vec(a), _vec(b), "vector")
        assert Metric.L1.similarity(d) == pytest.approx(1 / (1 + np.abs(a - b).sum()), rel=1e-5)


def _random_bits(seed: int, n: int = 20, dim: int = 64) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    pairs = []
    while len(pairs) < n:
        a, b = rng.integers(0, 2, dim).astype(bool), rng.integers(0, 2, dim).astype(bool)
        if (a | b).any():
            pairs.append((a, b))
    return pairs


def _bits(a: np.ndarray) -> str:
    return "".join("1" if x else "0" for x in a)


def test_hamming_similarity_matches_numpy(connection: sa.Connection) -> None:
    """similarity(a <~> b, dim) is the fraction of equal bits."""
    for a, b in _random_bits(5):
        d = _server_distance(connection, Metric.HAMMING, _bits(a), _bits(b), "bit(64)")
        assert d == (a != b).sum()
        assert Metric.HAMMING.similarity(d, dim=64) == pytest.approx((a == b).mean())


def test_jaccard_similarity_matches_numpy(connection: sa.Connection) -> None:
    """similarity(a <%> b) is the Jaccard index |a & b| / |a | b|."""
    for a, b in _random_bits(6):
        d = _server_distance(connection, Metric.JACCARD, _bits(a), _bits(b), "bit(64)")
        expected = (a & b).sum() / (a | b).sum()
        assert Metric.JACCARD.similarity(d) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("metric", "typ"),
    [
        (Metric.COSINE, "halfvec"),
        (Metric.L2, "halfvec"),
        (Metric.INNER_PRODUCT, "sparsevec"),
        (Metric.L1, "sparsevec"),
    ],
)
def test_operators_work_on_the_other_float_storages(
    connection: sa.Connection, metric: Metric, typ: str
) -> None:
    """The metric's operator gives the same distance on halfvec and sparsevec as on vector."""
    a, b = [1.0, 0.0, 2.0, -1.0], [0.5, 1.0, 0.0, 2.0]

    def literal(v: list[float]) -> str:
        if typ == "sparsevec":
            items = ",".join(f"{i + 1}:{x}" for i, x in enumerate(v) if x)
            return f"{{{items}}}/{len(v)}"
        return _vec(np.array(v))

    on_vector = _server_distance(connection, metric, _vec(np.array(a)), _vec(np.array(b)), "vector")
    other = _server_distance(connection, metric, literal(a), literal(b), typ)
    assert other == pytest.approx(on_vector, rel=1e-3)
