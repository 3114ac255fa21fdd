"""How many chunks exceed all-MiniLM-L6-v2's 256-token window, before and after (issue 9).

The corpus is real Markdown: this repository's ``README.md`` and ``docs/*.md``, and the
Markdown long descriptions (``METADATA`` bodies of at least 500 characters) of every
distribution installed in this environment, one document each. Each document is split

* **before**: with ``MarkdownSplitter()`` alone (1,000 characters, overlap 100), which
  is what a ``Collection`` with the default ``splitter="markdown"`` did;
* **after**: with the splitter a ``Collection`` now uses for MiniLM, the same
  ``MarkdownSplitter()`` wrapped in ``TokenLimitSplitter`` with the model's tokenizer
  and a budget of 256 - 2 special tokens.

Every chunk is counted with the model's own tokenizer, ``[CLS]`` and ``[SEP]`` included
(``SentenceTransformerEmbedder.count_tokens``). Reported per splitter: chunks, the share
over 256 tokens, the tokens past the window (what the model never sees), the largest
chunk, and mean tokens per chunk. No database is needed. Run from the repository::

    .venv/bin/python benchmarks/chunk_fit.py        # about 20 s; writes results/chunk_fit.json
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from importlib.metadata import distributions, version
from pathlib import Path
from typing import Any

from vecalchemy import Collection
from vecalchemy.chunking import MarkdownSplitter, Splitter
from vecalchemy.embedders import SentenceTransformerEmbedder

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "chunk_fit.json"


def corpus() -> dict[str, str]:
    """``name -> Markdown text``: the repository's docs and installed packages' READMEs."""
    docs = {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8") for p in
            [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}  # fmt: skip
    for dist in sorted(distributions(), key=lambda d: d.metadata["Name"].lower()):
        kind = dist.metadata.get("Description-Content-Type") or ""
        body = dist.metadata.get_payload() or ""  # type: ignore[attr-defined]
        if kind.startswith("text/markdown") and len(body) >= 500:
            docs.setdefault(f"pypi:{dist.metadata['Name']}", body)
    return docs


def measure(
    splitter: Splitter, docs: dict[str, str], embedder: SentenceTransformerEmbedder
) -> dict[str, Any]:
    window = embedder.max_tokens
    assert window is not None
    started = time.perf_counter()
    chunks = [c for text in docs.values() for c in splitter.split(text)]
    seconds = time.perf_counter() - started
    counts = [embedder.count_tokens(c.text) for c in chunks]
    over = [n for n in counts if n > window]
    return {
        "chunks": len(chunks),
        "over_window": len(over),
        "share_over_window": round(len(over) / len(chunks), 4),
        "tokens_past_window": sum(n - window for n in over),
        "max_tokens": max(counts),
        "mean_tokens": round(statistics.fmean(counts), 1),
        "mean_characters": round(statistics.fmean(len(c.text) for c in chunks), 1),
        "split_seconds": round(seconds, 3),
    }


def main() -> None:
    embedder = SentenceTransformerEmbedder().load()
    docs = corpus()
    total_tokens = sum(embedder.count_tokens(t) - 2 for t in docs.values())
    before = MarkdownSplitter()
    # The splitter a Collection with the default splitter="markdown" uses for MiniLM.
    after, _, _ = Collection("chunk_fit", embedder=embedder)._chunking()
    result = {
        "embedder": embedder.name,
        "window": embedder.max_tokens,
        "corpus": {
            "documents": len(docs),
            "characters": sum(map(len, docs.values())),
            "tokens": total_tokens,
            "sources": "README.md, docs/*.md, Markdown descriptions of installed packages",
        },
        "before": {"splitter": repr(before), **measure(before, docs, embedder)},
        "after": {
            "splitter": f"{type(after).__name__}(MarkdownSplitter(size=1000, overlap=100), "
            f"size={getattr(after, 'size', None)}, tokenizer=the model's token_spans)",
            **measure(after, docs, embedder),
        },
        "environment": {
            "python": platform.python_version(),
            "vecalchemy": version("vecalchemy"),
            "tokenizers": version("tokenizers"),
        },
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for label in ("before", "after"):
        r = result[label]
        print(
            f"{label:>6}: {r['chunks']} chunks, {r['over_window']} over {result['window']} "
            f"tokens ({100 * r['share_over_window']:.1f}%), {r['tokens_past_window']} tokens "
            f"past the window, max {r['max_tokens']}, mean {r['mean_tokens']}"
        )
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
