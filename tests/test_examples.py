"""Every script in examples/ runs as a program against the test database and prints what it shows.

Each example asserts the behaviour it demonstrates, so a broken example exits non-zero;
the lines below check that it also printed what its docstring promises. An example
without an entry in ``EXPECTED`` fails ``test_every_example_is_tested``.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: For each example, text its output must contain.
EXPECTED: dict[str, list[str]] = {
    "01_quickstart.py": [
        "USING hnsw (embedding vector_cosine_ops)",
        "pgvector adds vector similarity search to PostgreSQL",
    ],
    "02_distance_queries.py": [
        "ex02_docs.cosine <=> CAST(%(query_vector)s AS VECTOR(384)) AS distance",
        "ORDER BY distance",
        "ip     distance=-",
        "raw <#> values (negative inner product): [-",
    ],
    "03_indexes.py": [
        "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)",
        "USING ivfflat (embedding vector_l2_ops)",
        "build_indexes on the empty table: not building ivfflat index",
        "built ix_ex03_ivf_docs_embedding_ivfflat on 3000 rows with {'lists': 3}",
        "Index Scan using ix_ex03_hnsw_docs_embedding_hnsw",
        "Index Scan using ix_ex03_ivf_docs_embedding_ivfflat",
        "Seq Scan on ex03_hnsw_docs",
    ],
    "04_tuning.py": [
        "hnsw    k=100: 100 rows, ef_search 100 during the statement, 40 after it",
        "hnsw    k=5, ef_search=200: 5 rows, ef_search 200 during the statement, 40 after it",
        "ivfflat default probes: probes 4 during the statement, 1 after it",
        "InvalidSearch {'k': 50, 'ef_search': 20}: ef_search=20 is below k=50",
        "InvalidSearch {'k': 1001}: k=1001 is above 1,000",
    ],
    "05_filters_and_thresholds.py": [
        "ada, en:    [('ada', 'How to reset a forgotten password')",
        "WHERE ex05_docs.owner = ",
        "inner_product: min_similarity=0.5 is max_distance=-0.5",
        "InvalidSearch {'min_similarity': 1.5}",
    ],
    "06_halfvec_and_big_dims.py": [
        "USING hnsw (embedding halfvec_cosine_ops)",
        "USING hnsw (CAST(embedding AS HALFVEC(3072)) halfvec_cosine_ops)",
        "CAST(ex06_big_docs.embedding AS HALFVEC(3072)) <=> CAST(",
        "Index Scan using ix_ex06_big_docs_embedding_hnsw",
    ],
    "07_sparse_and_bit.py": [
        "UnsupportedIndex: metric 'cosine' does not apply to bit columns",
        "row 1 keywords: 30000 dims",
        "sparsevec ip  distance=-",
        "bit hamming",
        "bit jaccard",
    ],
    "08_reembed_on_change.py": [
        "title changed: embedder calls 2 - embedding unchanged: True",
        "body changed:  embedder calls 3 - embedding unchanged: False",
    ],
    "09_multi_vector.py": [
        "indexes: ['ix_ex09_docs_body_embedding_hnsw', 'ix_ex09_docs_title_embedding_hnsw']",
        "Tuning a postgres index",
    ],
    "10_async.py": [
        "driver: asyncpg",
        "ef_search after the search, same transaction: 40",
    ],
    "11_bulk_load.py": [
        "embedded 20,000 texts",
        "load():          20,000 rows",
        "ix_ex11_docs_embedding_hnsw built on 20,000 rows",
        "('ix_ex11_docs_embedding_hnsw', 'exists')",
        "InvalidVector: row 1:",
    ],
    "12_common_mistakes.py": [
        "UnsupportedIndex: pgvector indexes halfvec of at most 4,000 dimensions",
        "MetricMismatch: column ex12_docs.embedding was declared with metric 'cosine'",
        "MetricMismatch: index ix_ex12_cheatsheet_docs_embedding_hnsw",
        "MetricRequired:",
        "returned 20 hits",
        "DimensionMismatch:",
        "SQL statements sent: 0",
    ],
    "13_hybrid.py": [
        "tsv TSVECTOR GENERATED ALWAYS AS (to_tsvector('english'::regconfig, "
        "coalesce(title, '') || ' ' || coalesce(body, ''))) STORED",
        "CREATE INDEX ix_ex13_docs_tsv_gin ON ex13_docs USING gin (tsv)",
        "vector only: ['Crash course', 'Crash barriers', 'Crash reports']",
        "ranks=(4, 1) Release notes 4.2",
        "Index Scan using ix_ex13_docs_embedding_hnsw",
        "Bitmap Index Scan on ix_ex13_docs_tsv_gin",
        "collection, mode='hybrid': ['This release brings",
    ],
}


def _example_files() -> list[str]:
    return sorted(path.name for path in EXAMPLES.glob("*.py"))


def test_every_example_is_tested() -> None:
    """Each examples/*.py has expected output here, and each entry here has a file."""
    assert _example_files() == sorted(EXPECTED)


def test_examples_are_documented() -> None:
    """Each example's docstring names the cheatsheet pattern, and examples/README.md lists it."""
    readme = (EXAMPLES / "README.md").read_text()
    for name in _example_files():
        doc = ast.get_docstring(ast.parse((EXAMPLES / name).read_text())) or ""
        assert "Cheatsheet" in doc, name
        assert f"python examples/{name}" in doc, name
        assert f"[`{name}`]({name})" in readme, name


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str, server_url: sa.URL) -> None:
    """The example exits 0 on the test database, warns nothing and prints what it shows."""
    env = dict(os.environ)
    env["VECALCHEMY_DATABASE_URL"] = server_url.render_as_string(hide_password=False)
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES / name)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    assert proc.returncode == 0, output
    assert proc.stderr == "", output
    for expected in EXPECTED[name]:
        assert expected in proc.stdout, f"{expected!r} not printed\n{output}"
