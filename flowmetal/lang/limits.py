"""The one limit on how deeply a script may nest (docs/language.md, "Limits on runaways").

Each level is one of: a compound command (`if`, `while`/`until`, `for`, `case`, `{ }`, `( )`,
a function body, `try`), a `$( )`, a `${...}`, a brace expansion `{a,b}`, one `&&`/`||` of a
chain, one operator or parenthesis of a `[[ ]]` expression, one parenthesis of an arithmetic
expression. The parser, the compiler and the machine walk these trees recursively; importing
this module raises Python's recursion limit so that MAX_NESTING levels of any of them fit
(Python 3.11 runs Python-to-Python calls without growing the C stack)."""
from __future__ import annotations

import sys

from flowmetal import records
from flowmetal.lang import ast as A

MAX_NESTING = 1000
"""The most levels a script may nest; `fm check` reports a deeper script with its position."""

RECURSION_LIMIT = 40 * MAX_NESTING
"""Python frames allowed: the deepest walk takes under 40 frames a level."""

_LEVELS = frozenset((A.If, A.While, A.For, A.ArithFor, A.Case, A.BraceGroup, A.Subshell,
                     A.FunctionDef, A.Try, A.CmdSub, A.Param, A.BraceAlt, A.AndOr, A.CondNot,
                     A.CondAnd, A.CondOr))


def allow_deep_recursion():
    if sys.getrecursionlimit() < RECURSION_LIMIT:
        sys.setrecursionlimit(RECURSION_LIMIT)


allow_deep_recursion()


def too_deep(program) -> A.Span | None:
    """The span of the first construct nested more than MAX_NESTING levels deep in `program`
    (arithmetic parentheses included), or None. Iterative: any depth is safe to walk."""
    stack = [(program, 0)]
    while stack:
        node, depth = stack.pop()
        if type(node) is tuple:
            stack.extend((x, depth) for x in node)
            continue
        if not records.is_record(node):
            continue
        if type(node) in _LEVELS:
            depth += 1
        elif type(node) is A.ArithText:
            depth += paren_depth(node.text)
        if depth > MAX_NESTING:
            return node.span
        for name in records.fields(node):
            v = getattr(node, name)
            if type(v) is tuple or records.is_record(v):
                stack.append((v, depth))
    return None


def paren_depth(text: str) -> int:
    """The deepest nesting of parentheses in an arithmetic expression's text."""
    depth = most = 0
    for ch in text:
        if ch == "(":
            depth += 1
            most = max(most, depth)
        elif ch == ")":
            depth -= 1
    return most


def nesting_message() -> str:
    return f"nested more than {MAX_NESTING} levels deep (the limit of fm)"
