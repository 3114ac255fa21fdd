"""Collection chunks that fit the embedder's token window (max_tokens).

Fast tests with a fake embedder (the hashing embedder with a window of a few word
tokens); the real all-MiniLM-L6-v2 tokenizer and weights in the slow ones.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from vecalchemy.chunking import MarkdownSplitter
from vecalchemy.collection import Collection
from vecalchemy.embedders import HashingEmbedder, SentenceTransformerEmbedder

_WORD = re.compile(r"\w+|[^\w\s]")
DOCS = Path(__file__).resolve().parents[1] / "docs"


class WindowedHashing(HashingEmbedder):
    """The hashing embedder, pretending to be a model with a window of ``window`` tokens:
    words and punctuation marks, plus a start and an end token."""

    def __init__(self, window: int) -> None:
        super().__init__(64)
        self._window = window

    @property
    def max_tokens(self) -> int:  # type: ignore[override]
        return self._window

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in _WORD.finditer(text)]

    def count_tokens(self, text: str) -> int:
        return len(self.token_spans(text)) + 2


LONG = (
    "# Guide\n\n"
    + " ".join(f"Sentence number {i} says something about vectors." for i in range(30))
    + "\n\n## Details\n\nA short paragraph.\n"
)


@pytest.fixture
def name(engine: sa.Engine) -> Iterator[str]:
    coll = f"win_{uuid.uuid4().hex[:8]}"
    yield coll
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{coll}"')


def _covers(text: str, chunks: list[tuple[int, int]]) -> bool:
    """Only whitespace lies outside every chunk."""
    covered = 0
    for start, end in sorted(chunks):
        if text[covered:start].strip():
            return False
        covered = max(covered, end)
    return not text[covered:].strip()


def test_default_splitter_fits_the_window(engine: sa.Engine, name: str) -> None:
    """With the default markdown splitter, no stored chunk has more tokens than the window
    (special tokens included), no text is lost, and nothing is reported truncated."""
    embedder = WindowedHashing(20)
    coll = Collection(name, embedder=embedder, engine=engine)
    result = coll.add([LONG], ids=["guide"])
    records = coll.get(["guide"])
    assert result.chunks == len(records) > 3
    assert all(embedder.count_tokens(r.text) <= 20 for r in records)
    assert all(LONG[r.start : r.end] == r.text for r in records)
    assert _covers(LONG, [(r.start, r.end) for r in records])
    assert (result.truncated_chunks, result.truncated_tokens) == (0, 0)
    assert records[-1].text == "## Details\n\nA short paragraph."  # fits: kept as it was


@pytest.mark.parametrize("splitter", ["chars:2000", "tokens:500", "markdown:3000:0"])
def test_every_sizing_spec_fits_the_window(engine: sa.Engine, name: str, splitter: str) -> None:
    """chars, tokens and markdown specs all keep their size as an upper bound and fit the
    window too."""
    embedder = WindowedHashing(16)
    coll = Collection(name, embedder=embedder, engine=engine, splitter=splitter)
    result = coll.add([LONG], ids=["guide"])
    assert result.truncated_chunks == 0
    assert all(embedder.count_tokens(r.text) <= 16 for r in coll.get(["guide"]))


def test_none_splitter_reports_truncation(engine: sa.Engine, name: str) -> None:
    """splitter='none' is used as it is: chunks past the window are counted in the result
    (chunks and tokens dropped) and a warning says what to do."""
    embedder = WindowedHashing(20)
    coll = Collection(name, embedder=embedder, engine=engine, splitter="none")
    over = embedder.count_tokens(LONG.strip()) - 20
    with pytest.warns(UserWarning, match=r"1 of 2 chunks are longer than the 20-token window"):
        result = coll.add([LONG, "short text"], ids=["long", "short"])
    assert (result.truncated_chunks, result.truncated_tokens) == (1, over)
    assert result.chunks == 2
    with pytest.warns(UserWarning, match=rf"ignored their last {over + 1} tokens.*splitter="):
        again = coll.upsert([LONG + " more"], ids=["long"])
    assert again.truncated_chunks == 1


def test_a_splitter_object_is_used_as_it_is(engine: sa.Engine, name: str) -> None:
    """A splitter object is the caller's choice: not re-split, truncation reported."""
    coll = Collection(
        name, embedder=WindowedHashing(20), engine=engine, splitter=MarkdownSplitter(size=4000)
    )
    with pytest.warns(UserWarning, match="chunks are longer than the 20-token window"):
        result = coll.add([LONG], ids=["guide"])
    assert (result.chunks, result.truncated_chunks) == (2, 1)  # the short section fits


def test_an_embedder_without_a_window_changes_nothing(engine: sa.Engine, name: str) -> None:
    """The hashing embedder has max_tokens None: the splitter's chunks are stored as they
    are, with nothing counted."""
    coll = Collection(name, embedder=HashingEmbedder(64), engine=engine)
    result = coll.add([LONG], ids=["guide"])
    expected = [c.text for c in MarkdownSplitter().split(LONG)]
    assert [r.text for r in coll.get(["guide"])] == expected
    assert result.truncated_chunks == 0


def test_max_tokens_of_the_embedders() -> None:
    """MiniLM: 256 (known without loading it); hashing: None; OpenAI: 8191 for its
    embedding models, None for an unknown one, or as given."""
    from vecalchemy.embedders import OpenAIEmbedder

    code = (
        "import sys\n"
        "from vecalchemy.embedders import SentenceTransformerEmbedder\n"
        "e = SentenceTransformerEmbedder()\n"
        "print(e.max_tokens, e.loaded, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["256", "False", "False"]
    assert HashingEmbedder().max_tokens is None
    assert OpenAIEmbedder("text-embedding-3-small").max_tokens == 8191
    assert OpenAIEmbedder("text-embedding-3-large").max_tokens == 8191
    local = "http://localhost:11434/v1"
    assert OpenAIEmbedder("nomic-embed-text", base_url=local).max_tokens is None
    assert OpenAIEmbedder("nomic-embed-text", base_url=local, max_tokens=2048).max_tokens == 2048


# --- the real all-MiniLM-L6-v2 -------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder().load()


def _markdown_corpus() -> str:
    return "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.glob("*.md")))


def test_minilm_window_and_tokenizer(minilm: SentenceTransformerEmbedder) -> None:
    """max_tokens is the model's max_seq_length; count_tokens and token_spans agree with
    the model's own tokenizer, untruncated, with [CLS] and [SEP] counted."""
    model, _ = minilm._load()
    assert minilm.max_tokens == model.max_seq_length == 256
    text = "pgvector adds vector search to PostgreSQL. " * 100
    ids = model.tokenizer(text, add_special_tokens=True, truncation=False, verbose=False)
    ids = ids["input_ids"]
    assert minilm.count_tokens(text) == len(ids) > 256
    assert minilm.count_tokens("") == 2
    assert len(minilm.token_spans(text)) == len(ids) - 2
    short = "pgvector cats"
    assert [short[a:b] for a, b in minilm.token_spans(short)] == [
        "pg",
        "ve",
        "ctor",
        "cats",
    ]


@pytest.mark.slow
def test_minilm_chunks_fit_its_window(
    engine: sa.Engine, name: str, minilm: SentenceTransformerEmbedder
) -> None:
    """On the repository's own Markdown docs, every chunk the default splitter stores for
    MiniLM has at most 256 tokens of the model's tokenizer (special tokens included), and
    together the chunks cover the whole text."""
    text = _markdown_corpus()
    over_before = [c for c in MarkdownSplitter().split(text) if minilm.count_tokens(c.text) > 256]
    assert over_before, "the corpus no longer has chunks over the window: pick another"
    coll = Collection(name, embedder=minilm, engine=engine)
    result = coll.add([text], ids=["docs"])
    records = coll.get(["docs"])
    counts = [minilm.count_tokens(r.text) for r in records]
    assert max(counts) <= 256
    assert all(text[r.start : r.end] == r.text for r in records)
    assert _covers(text, [(r.start, r.end) for r in records])
    assert result.truncated_chunks == 0
    hits = coll.search("advisory locks for concurrent writers", k=3)
    assert any("advisory" in h.text for h in hits)


def test_minilm_none_splitter_reports_truncation(
    engine: sa.Engine, name: str, minilm: SentenceTransformerEmbedder
) -> None:
    """splitter='none' on a long text with MiniLM: the result counts the truncated chunk
    and the tokens past 256, and a warning says so."""
    text = "Vector search with PostgreSQL and pgvector is fast. " * 60
    total = minilm.count_tokens(text.strip())
    coll = Collection(name, embedder=minilm, engine=engine, splitter="none")
    with pytest.warns(UserWarning, match="longer than the 256-token window of st:"):
        result = coll.add([text], ids=["long"])
    assert (result.truncated_chunks, result.truncated_tokens) == (1, total - 256)
