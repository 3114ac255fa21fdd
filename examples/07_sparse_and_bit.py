"""Sparse and binary vectors: the cheatsheet's "Sparse vectors" (and pgvector's bit type).

Cheatsheet pattern::

    from pgvector.sqlalchemy import SPARSEVEC   # pgvector 0.7+
    # For ColBERT-style or keyword-augmented embeddings.

With vecalchemy the storage type is one more word of the declaration:

* ``Embedding(30_000, storage="sparsevec", metric="inner_product")``: a keyword vector
  over a 30,000-term vocabulary with a handful of non-zero weights per row, indexed with
  ``sparsevec_ip_ops`` (HNSW; pgvector indexes sparse values of up to 1,000 non-zeros).
  Query vectors may be a ``{index: weight}`` dict or a ``pgvector.SparseVector``.
* ``Embedding(384, storage="bit", metric="hamming")`` and ``metric="jaccard"``: binary
  codes (here the signs of a dense embedding, i.e. binary quantization), indexed with
  ``bit_hamming_ops`` / ``bit_jaccard_ops``. Query vectors may be booleans, 0/1 values, a
  '0101...' string or a ``pgvector.Bit``.

A metric that does not apply to the storage (``storage="bit", metric="cosine"``) is
refused with ``UnsupportedIndex`` when the column is declared, and ``similarity`` is
higher-is-closer for these metrics too: the inner product for sparsevec, the fraction of
equal bits for hamming, the Jaccard index for jaccard.

Run it: ``python examples/07_sparse_and_bit.py``.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter

import numpy as np
from pgvector import Bit, SparseVector
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import Embedding
from vecalchemy.embedders import HashingEmbedder

VOCABULARY = 30_000
dense = HashingEmbedder(384)


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "ex07_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    keywords = Embedding(VOCABULARY, storage="sparsevec", metric="inner_product")
    code_hamming = Embedding(384, storage="bit", metric="hamming")
    code_jaccard = Embedding(384, storage="bit", metric="jaccard")


DOCS = [
    "postgres vacuum reclaims storage from dead tuples",
    "postgres autovacuum tuning for busy tables",
    "python asyncio event loop and tasks",
    "python packaging with wheels and pyproject",
]


def keyword_vector(text: str) -> dict[int, float]:
    """Term weights keyed by a stable hash of each word: a toy sparse embedding."""
    counts = Counter(text.lower().split())
    weights = {
        int(hashlib.blake2b(word.encode(), digest_size=4).hexdigest(), 16) % VOCABULARY: 1.0
        + math.log(n)
        for word, n in counts.items()
    }
    norm = math.sqrt(sum(w * w for w in weights.values()))
    return {i: w / norm for i, w in weights.items()}


def main() -> None:
    try:
        Embedding(384, storage="bit", metric="cosine")
        raise AssertionError("cosine on bit was accepted")
    except vecalchemy.UnsupportedIndex as exc:
        print("UnsupportedIndex:", exc)

    engine = vecalchemy.create_engine()
    Base.metadata.create_all(engine)
    try:
        with Session(engine) as session:
            for body, vec in zip(DOCS, dense.embed_documents(DOCS), strict=True):
                code = Bit(vec > 0)  # binary quantization: 384 dims -> 384 bits (48 bytes)
                session.add(
                    Doc(
                        body=body,
                        keywords=SparseVector(keyword_vector(body), VOCABULARY),
                        code_hamming=code,
                        code_jaccard=code,
                    )
                )
            session.commit()

        with Session(engine) as session:
            stored = session.get(Doc, 1)
            assert stored is not None
            nnz = len(stored.keywords.indices())
            print(f"row 1 keywords: {stored.keywords.dimensions()} dims, {nnz} non-zero")

            hits = vecalchemy.search(session, Doc.keywords, keyword_vector("postgres vacuum"), k=2)
            for hit in hits:
                print(
                    f"sparsevec ip  distance={hit.distance:+.3f} "
                    f"similarity={hit.similarity:.3f} {hit.row.body}"
                )
            assert hits[0].row.body == DOCS[0]
            assert hits[0].distance == -hits[0].similarity  # <#> is the negative inner product
            assert hits[0].similarity > hits[1].similarity > 0

            query_bits = dense.embed_query("python asyncio tasks") > 0  # booleans work as a query
            for column in (Doc.code_hamming, Doc.code_jaccard):
                hits = vecalchemy.search(session, column, query_bits, k=2)
                for hit in hits:
                    print(
                        f"bit {column.key[5:]:<8} distance={hit.distance:6.3f} "
                        f"similarity={hit.similarity:.3f} {hit.row.body}"
                    )
                assert hits[0].row.body == DOCS[2], column.key
                assert hits[0].similarity > hits[1].similarity

            exact = vecalchemy.search(session, Doc.code_hamming, query_bits, k=1)[0]
            stored_bits = np.array([c == "1" for c in str(session.get(Doc, 3).code_hamming)])
            differing = int((stored_bits != query_bits).sum())
            assert exact.distance == differing  # hamming distance: the number of differing bits
            assert abs(exact.similarity - (1 - differing / 384)) < 1e-9
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


if __name__ == "__main__":
    main()
