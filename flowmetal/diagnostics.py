"""Render an error at a source location: `file:line:col: error: msg`, the line, a caret."""
from __future__ import annotations


def render(filename: str, text: str, start: int, end: int, line: int, col: int,
           message: str, kind: str = "error") -> str:
    """Return the diagnostic for a span of `text` (no trailing newline):

        fm: deploy.fm:12:5: error: `curl -f x` exited with status 22
           12 |     curl -f x
              |     ^~~~
    """
    lines = text.split("\n")
    src = lines[line - 1] if 0 < line <= len(lines) else ""
    src = src.replace("\t", " ")
    width = max(1, min(end - start, len(src) - (col - 1)))
    caret = " " * (col - 1) + "^" + "~" * (width - 1)
    return (f"fm: {filename}:{line}:{col}: {kind}: {message}\n"
            f"{line:>5} | {src}\n"
            f"{'':>5} | {caret}")
