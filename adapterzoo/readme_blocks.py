"""Generated blocks in Markdown files (README's support matrix and benchmark table), each between two marker lines."""

from __future__ import annotations

from pathlib import Path


def find_block(path: Path, start: str, end: str) -> tuple[str, int, int]:
    """``path``'s text and the span of its block from marker ``start`` to marker ``end`` (both included)."""
    text = path.read_text()
    first, last = text.find(start), text.find(end)
    if first < 0 or last < first:
        raise ValueError(f"{path} has no generated block: put the two lines\n{start}\n{end}\nwhere it goes.")
    return text, first, last + len(end)


def replace_block(path: Path, start: str, end: str, block: str) -> None:
    """Replace the block between the markers in ``path`` with ``block`` (which brings the markers itself)."""
    text, first, last = find_block(path, start, end)
    path.write_text(text[:first] + block + text[last:])
