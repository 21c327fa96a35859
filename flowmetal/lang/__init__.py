"""The fm language front end: `parse(text, filename)` turns source text into an ast.Program."""
from __future__ import annotations

from flowmetal.errors import ParseError


class IncompleteInput(ParseError):
    """A syntax error at the end of the input that more input could fix (an unclosed quote, an
    open `if`, a trailing `|`, an unclosed here-document): the interactive shell keeps reading."""


def parse(text: str, filename: str = "<input>"):
    """Parse fm source text into an ast.Program; raise ParseError (or IncompleteInput)."""
    # Imported lazily so that `import flowmetal.lang` stays cheap for callers that only need
    # the error classes.
    from flowmetal.lang.parser import parse_program
    return parse_program(text, filename)


__all__ = ["parse", "IncompleteInput", "ParseError"]
