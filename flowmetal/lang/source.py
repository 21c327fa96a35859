"""Source text bookkeeping: offsets to Spans (line/col) and error construction."""
from __future__ import annotations

import re
from bisect import bisect_right

from flowmetal.errors import ParseError
from flowmetal.lang import IncompleteInput
from flowmetal.lang.ast import Span

_NL = re.compile("\n")


class Source:
    """The text being parsed, with a line index so any offset maps to a 1-based line/col."""
    __slots__ = ("text", "filename", "starts", "subparses")

    def __init__(self, text: str, filename: str):
        self.text = text
        self.filename = filename
        # Nested parses by (start, kind, bound): a word that is scanned twice (an assignment
        # candidate that turns out not to be one) must not re-parse its $(...) again, or
        # nesting would make parsing exponential.
        self.subparses = {}
        self.starts = [0]
        self.starts.extend(m.end() for m in _NL.finditer(text))

    def span(self, start: int, end: int) -> Span:
        line = bisect_right(self.starts, start)
        return Span(start, end, line, start - self.starts[line - 1] + 1)

    def line_of(self, pos: int) -> int:
        return bisect_right(self.starts, pos)

    def error(self, message: str, start: int, end: int | None = None,
              incomplete: bool = False) -> ParseError:
        start = max(0, min(start, len(self.text)))
        if end is None or end < start:
            end = start + 1
        line = bisect_right(self.starts, start)
        col = start - self.starts[line - 1] + 1
        cls = IncompleteInput if incomplete else ParseError
        # A diagnostic is one line: quote control characters from the source (`\n`).
        message = message.translate(_VISIBLE)
        return cls(message, self.filename, self.text, start, end, line, col)


_VISIBLE = {c: repr(chr(c))[1:-1] for c in range(32)}


class Ctx:
    """What the word scanner needs: the (possibly truncated) text, the Source for spans and
    errors, the nesting depth, and a callback that parses a nested program ($(...), `...`)."""
    __slots__ = ("text", "src", "depth", "subparse", "nest")

    def __init__(self, text, src, depth, subparse):
        self.text = text
        self.src = src
        self.depth = depth
        self.subparse = subparse
        self.nest = 0       # ${...} / brace-expansion nesting inside the current word

    def bounded(self, end: int) -> "Ctx":
        c = Ctx(self.text[:end], self.src, self.depth, self.subparse)
        c.nest = self.nest
        return c
