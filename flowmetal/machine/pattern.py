"""Bash glob patterns: matching, ${x#p} ${x%p} ${x/p/r} ${x^p}, conversion to regex and glob."""
from __future__ import annotations

import functools
import re
from collections.abc import Iterable

__all__ = ["to_regex", "match", "strip_prefix", "strip_suffix", "replace", "has_glob",
           "to_glob", "case_modify", "pattern_text"]

Segments = "Sequence[tuple[str, bool]]"  # [(text, quoted), ...]

# token kinds
_LIT, _ANY, _STAR, _BRACKET = "L", "?", "*", "B"

_MAXCP = 0x10FFFF


def _ranges(*spans: str) -> tuple:
    out = []
    for sp in spans:
        if len(sp) == 3 and sp[1] == "-":
            out.append((ord(sp[0]), ord(sp[2])))
        else:
            out.extend((ord(c), ord(c)) for c in sp)
    return tuple(out)


# POSIX classes (ASCII, as in the C locale)
_CLASSES = {
    "alpha": _ranges("a-z", "A-Z"),
    "digit": _ranges("0-9"),
    "alnum": _ranges("a-z", "A-Z", "0-9"),
    "upper": _ranges("A-Z"),
    "lower": _ranges("a-z"),
    "space": _ranges(" \t\n\r\f\v"),
    "blank": _ranges(" \t"),
    "punct": _ranges("!-/", ":-@", "[-`", "{-~"),
    "print": ((0x20, 0x7E),),
    "graph": ((0x21, 0x7E),),
    "cntrl": ((0x00, 0x1F), (0x7F, 0x7F)),
    "xdigit": _ranges("0-9", "A-F", "a-f"),
    "word": _ranges("a-z", "A-Z", "0-9", "_"),
}


def pattern_text(segments: Segments) -> str:
    """One bash pattern string: quoted text backslash-escaped, unquoted text as is."""
    parts = []
    for text, quoted in segments:
        if quoted:
            parts.append("".join("\\" + c for c in text))
        else:
            parts.append(text)
    return "".join(parts)


def _parse_bracket(p: str, i: int):
    """Parse a bracket expression starting at p[i] == '['. Returns (token, end) or None."""
    n = len(p)
    j = i + 1
    neg = False
    if j < n and p[j] in "!^":
        neg = True
        j += 1
    members: list[tuple[int, int]] = []
    first = True
    while True:
        if j >= n:
            return None
        c = p[j]
        if c == "]" and not first:
            return (_BRACKET, neg, tuple(members)), j + 1
        first = False
        if c == "[" and j + 1 < n and p[j + 1] in ":=.":
            kind = p[j + 1]
            close = p.find(kind + "]", j + 2)
            if close != -1:
                name = p[j + 2:close]
                if kind == ":":
                    members.extend(_CLASSES.get(name, ()))
                elif len(name) == 1:
                    members.append((ord(name), ord(name)))
                j = close + 2
                continue
        if c == "\\" and j + 1 < n:
            lo = p[j + 1]
            j += 2
        else:
            lo = c
            j += 1
        if j + 1 < n and p[j] == "-" and p[j + 1] != "]":
            if p[j + 1] == "\\" and j + 2 < n:
                hi = p[j + 2]
                j += 3
            else:
                hi = p[j + 1]
                j += 2
            if ord(lo) <= ord(hi):
                members.append((ord(lo), ord(hi)))
        else:
            members.append((ord(lo), ord(lo)))


@functools.lru_cache(maxsize=4096)
def _tokens(p: str) -> tuple:
    """Tokenize a pattern string: (LIT, c) / (ANY,) / (STAR,) / (BRACKET, neg, ranges)."""
    out: list = []
    i, n = 0, len(p)
    while i < n:
        c = p[i]
        if c == "\\":
            if i + 1 < n:
                out.append((_LIT, p[i + 1]))
                i += 2
            else:
                out.append((_LIT, "\\"))
                i += 1
        elif c == "*":
            if not (out and out[-1][0] == _STAR):
                out.append((_STAR,))
            i += 1
        elif c == "?":
            out.append((_ANY,))
            i += 1
        elif c == "[":
            r = _parse_bracket(p, i)
            if r is None:
                out.append((_LIT, "["))
                i += 1
            else:
                out.append(r[0])
                i = r[1]
        else:
            out.append((_LIT, c))
            i += 1
    return tuple(out)


def _class_char(cp: int) -> str:
    c = chr(cp)
    return "\\" + c if c in "\\]^-[" else c


def _bracket_regex(neg: bool, ranges: tuple) -> str:
    if not ranges:
        return "." if neg else "(?!)"
    body = "".join(_class_char(lo) if lo == hi else f"{_class_char(lo)}-{_class_char(hi)}"
                   for lo, hi in ranges)
    return f"[{'^' if neg else ''}{body}]"


def _regex_from_tokens(toks: Iterable, lazy: bool) -> str:
    out = []
    lit: list[str] = []
    for t in toks:
        if t[0] == _LIT:
            lit.append(t[1])
            continue
        if lit:
            out.append(re.escape("".join(lit)))
            lit = []
        if t[0] == _STAR:
            out.append(".*?" if lazy else ".*")
        elif t[0] == _ANY:
            out.append(".")
        else:
            out.append(_bracket_regex(t[1], t[2]))
    if lit:
        out.append(re.escape("".join(lit)))
    return "(?s:" + "".join(out) + ")"


def _literal(toks: tuple) -> str | None:
    """The text a pattern matches when it has no glob tokens, else None."""
    if all(t[0] == _LIT for t in toks):
        return "".join(t[1] for t in toks)
    return None


@functools.lru_cache(maxsize=4096)
def _compiled(p: str, variant: str) -> "re.Pattern[str]":
    """variant: 'g' greedy, 'l' lazy, 'rg'/'rl' the same for the reversed pattern."""
    toks = _tokens(p)
    if variant[0] == "r":
        toks = toks[::-1]
    return re.compile(_regex_from_tokens(toks, variant[-1] == "l"))


# --------------------------------------------------------------------------------------------
# Public API

def to_regex(segments: Segments) -> str:
    """A Python regex (no anchors) equivalent to the pattern; `*` is greedy and matches
    newlines."""
    return _regex_from_tokens(_tokens(pattern_text(segments)), False)


def has_glob(segments: Segments) -> bool:
    """True when unquoted text has a live `*`, `?` or a complete `[...]`."""
    if not any(not q and any(c in t for c in "*?[") for t, q in segments):
        return False
    return any(t[0] != _LIT for t in _tokens(pattern_text(segments)))


def match(segments: Segments, s: str) -> bool:
    """Whole-string match, as `case` and `[[ s == p ]]` do."""
    p = pattern_text(segments)
    lit = _literal(_tokens(p))
    if lit is not None:
        return s == lit
    return _compiled(p, "g").fullmatch(s) is not None


def _prefix_end(p: str, s: str, longest: bool) -> int:
    """End of the shortest/longest prefix of s matching p, or -1."""
    lit = _literal(_tokens(p))
    if lit is not None:
        return len(lit) if s.startswith(lit) else -1
    m = _compiled(p, "g" if longest else "l").match(s)
    return m.end() if m else -1


def _suffix_start(p: str, s: str, longest: bool) -> int:
    """Start of the shortest/longest suffix of s matching p, or -1."""
    lit = _literal(_tokens(p))
    if lit is not None:
        return len(s) - len(lit) if s.endswith(lit) else -1
    m = _compiled(p, "rg" if longest else "rl").match(s[::-1])
    return len(s) - m.end() if m else -1


def strip_prefix(segments: Segments, s: str, longest: bool) -> str:
    """`${s#p}` (shortest) / `${s##p}` (longest)."""
    end = _prefix_end(pattern_text(segments), s, longest)
    return s if end < 0 else s[end:]


def strip_suffix(segments: Segments, s: str, longest: bool) -> str:
    """`${s%p}` (shortest) / `${s%%p}` (longest)."""
    start = _suffix_start(pattern_text(segments), s, longest)
    return s if start < 0 else s[:start]


def replace(segments: Segments, s: str, repl: str, mode: str = "first") -> str:
    """`${s/p/r}` (mode 'first'), `${s//p/r}` ('all'), `${s/#p/r}` ('prefix'),
    `${s/%p/r}` ('suffix'). The longest match at the leftmost position is replaced.
    An empty pattern replaces nothing in 'first'/'all' mode; like bash, it inserts `repl`
    at the start ('prefix') or end ('suffix'). `&` in repl is not special."""
    p = pattern_text(segments)
    if mode == "prefix":
        end = _prefix_end(p, s, True)
        return s if end < 0 else repl + s[end:]
    if mode == "suffix":
        start = _suffix_start(p, s, True)
        return s if start < 0 else s[:start] + repl
    if mode not in ("first", "all"):
        raise ValueError(f"unknown replace mode {mode!r}")
    if not p:
        return s
    lit = _literal(_tokens(p))
    if lit is not None:
        return s.replace(lit, repl, 1 if mode == "first" else -1)
    rx = _compiled(p, "g")
    out: list[str] = []
    pos = 0
    n = len(s)
    while pos <= n:
        m = rx.search(s, pos)
        if m is None:
            break
        a, b = m.span()
        if a == b:
            # only an all-`*` pattern matches empty text, and only at the end: bash replaces
            # it when the whole string is empty
            if n == 0:
                out.append(repl)
            break
        out.append(s[pos:a])
        out.append(repl)
        pos = b
        if mode == "first":
            break
    out.append(s[pos:])
    return "".join(out)


_CASE_OPS = {"^", "^^", ",", ",,", "~", "~~"}


def _convert(c: str, op: str) -> str:
    if op[0] == "^":
        u = c.upper()
    elif op[0] == ",":
        u = c.lower()
    else:
        u = c.swapcase()
    return u if len(u) == 1 else c


def case_modify(s: str, op: str, segments: Segments | None = None) -> str:
    """`${s^}` `${s^^}` `${s,}` `${s,,}` (and bash's `${s~}` `${s~~}` toggles); with a pattern,
    only characters matching it change."""
    if op not in _CASE_OPS:
        raise ValueError(f"unknown case operator {op!r}")
    if not s:
        return s
    p = pattern_text(segments) if segments else ""
    if p:
        rx = _compiled(p, "g")
        ok = lambda c: rx.fullmatch(c) is not None  # noqa: E731
    else:
        ok = lambda c: True  # noqa: E731
    if len(op) == 1:
        c = s[0]
        return (_convert(c, op) if ok(c) else c) + s[1:]
    if not p:
        if op == "^^":
            return "".join(_convert(c, op) for c in s) if not s.isascii() else s.upper()
        if op == ",,":
            return "".join(_convert(c, op) for c in s) if not s.isascii() else s.lower()
    return "".join(_convert(c, op) if ok(c) else c for c in s)


# --------------------------------------------------------------------------------------------
# Python glob syntax

_GLOB_MAGIC = "*?["


def _glob_char(c: str) -> str:
    return f"[{c}]" if c in _GLOB_MAGIC else c


def _glob_bracket(neg: bool, ranges: tuple) -> str:
    if not ranges:
        return "?" if neg else "[z-a]"  # fnmatch turns an empty range into "never matches"
    if not neg and len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return _glob_char(chr(ranges[0][0]))
    # split ranges so that ']' and '-' only occur as single characters, which are placed first
    # and last; '!' must not come first in a non-negated class
    rs: list[tuple[int, int]] = []
    specials = {ord("]"), ord("-")}
    for lo, hi in ranges:
        while lo <= hi:
            if lo in specials:
                rs.append((lo, lo))
                lo += 1
                continue
            if hi in specials:
                rs.append((hi, hi))
                hi -= 1
                continue
            inner = [sp for sp in specials if lo < sp < hi]
            if inner:
                sp = min(inner)
                rs.append((lo, sp - 1))
                rs.append((sp, sp))
                lo = sp + 1
                continue
            rs.append((lo, hi))
            break
    rs = list(dict.fromkeys(rs))
    close = [(lo, hi) for lo, hi in rs if lo == hi == ord("]")]
    dash = [(lo, hi) for lo, hi in rs if lo == hi == ord("-")]
    rest = [r for r in rs if r not in close and r not in dash]
    if not neg and not close and rest and rest[0][0] == ord("!"):
        # a leading '!' would negate the class: move it to the end
        lo, hi = rest.pop(0)
        if hi > lo:
            rest.insert(0, (lo + 1, hi))
        rest.append((lo, lo))
        if len(rest) == 1:
            if not dash:
                return "!"
            rest, dash = dash, rest
    ordered = close + rest + dash
    body = "".join(chr(lo) if lo == hi else f"{chr(lo)}-{chr(hi)}" for lo, hi in ordered)
    return f"[{'!' if neg else ''}{body}]"


def to_glob(segments: Segments) -> str:
    """The pattern in Python glob/fnmatch syntax (quoted parts escaped as glob.escape does,
    POSIX classes expanded, `[^..]` written `[!..]`)."""
    out = []
    for t in _tokens(pattern_text(segments)):
        if t[0] == _LIT:
            out.append(_glob_char(t[1]))
        elif t[0] == _STAR:
            out.append("*")
        elif t[0] == _ANY:
            out.append("?")
        else:
            out.append(_glob_bracket(t[1], t[2]))
    return "".join(out)
