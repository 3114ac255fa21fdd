"""Writing a benchmark's generated section into ``docs/benchmarks.md``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["replace_section"]


def replace_section(doc: Path, name: str, text: str) -> None:
    """Put ``text`` between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``doc``
    (appended with a heading when the markers are missing)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    current = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    block = f"{start}\n{text.strip()}\n{end}"
    if start in current and end in current:
        head, rest = current.split(start, 1)
        _, tail = rest.split(end, 1)
        doc.write_text(f"{head}{block}{tail}", encoding="utf-8")
    else:
        doc.write_text(f"{current.rstrip()}\n\n## {name}\n\n{block}\n", encoding="utf-8")
