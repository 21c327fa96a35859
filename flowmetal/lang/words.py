"""Word scanning: quotes, escapes, $-expansions, backticks, tilde and brace expansion."""
from __future__ import annotations

import re

from flowmetal.lang.ast import (
    DQ,
    SQ,
    ArithSub,
    ArithText,
    ArrayLit,
    Assign,
    BraceAlt,
    BraceSeq,
    CmdSub,
    Lit,
    Param,
    Tilde,
    Word,
)
from flowmetal.lang.limits import MAX_NESTING, nesting_message

# Scanning modes: they differ only in which characters end a word.
NORMAL, ASSIGN, PARAM, PARAM_SLASH, SUBSCRIPT, REGEX = range(6)

# Runs of characters that need no special handling in each mode (the fast path).
_PLAIN = {
    NORMAL: re.compile(r"[^ \t\n;&|<>()'\"\\$`]+"),
    ASSIGN: re.compile(r"[^ \t\n;&|<>()'\"\\$`:]+"),
    PARAM: re.compile(r"[^'\"\\$`{}]+"),
    PARAM_SLASH: re.compile(r"[^'\"\\$`{}/]+"),
    SUBSCRIPT: re.compile(r"[^'\"\\$`\[\]\n]+"),
    REGEX: re.compile(r"[^ \t\n'\"\\$`()]+"),
}
_DQ_PLAIN = re.compile(r'[^"\\$`]+')
_HD_PLAIN = re.compile(r"[^\\$`\n]+")
METACHARS = " \t\n;&|<>()"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!\-]")
_TILDE = re.compile(r"~([A-Za-z0-9._+\-]*)")
_SEQ_NUM = re.compile(r"(-?[0-9]+)\.\.(-?[0-9]+)(?:\.\.(-?[0-9]+))?\Z")
_SEQ_CHR = re.compile(r"([A-Za-z])\.\.([A-Za-z])(?:\.\.(-?[0-9]+))?\Z")
_ANSI = {"a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r",
         "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?"}
_OCT = re.compile(r"[0-7]{1,3}")
_HEX = {"x": re.compile(r"[0-9a-fA-F]{1,2}"), "u": re.compile(r"[0-9a-fA-F]{1,4}"),
        "U": re.compile(r"[0-9a-fA-F]{1,8}")}


class _Parts:
    """Accumulates word parts, merging adjacent literal text into one Lit."""
    __slots__ = ("parts", "buf", "bstart", "bend", "src")

    def __init__(self, src):
        self.parts = []
        self.buf = []
        self.bstart = -1
        self.bend = -1
        self.src = src

    def lit(self, s, start, end):
        if self.bstart < 0:
            self.bstart = start
        self.buf.append(s)
        self.bend = end

    def flush(self):
        if self.bstart >= 0:
            self.parts.append(Lit("".join(self.buf), self.src.span(self.bstart, self.bend)))
            self.buf = []
            self.bstart = -1

    def add(self, part):
        self.flush()
        self.parts.append(part)

    def done(self):
        self.flush()
        return self.parts


def _enter(ctx, pos):
    if ctx.depth >= MAX_NESTING:
        raise ctx.src.error(f"`$( )` {nesting_message()}", pos)


def _tilde(ctx, p, pos, mode):
    """A ~ or ~user prefix at pos if it ends at `/` or the end of the word; else None."""
    text = ctx.text
    m = _TILDE.match(text, pos)
    e = m.end()
    if e < len(text):
        c = text[e]
        if c != "/" and not (mode == ASSIGN and c == ":"):
            if mode in (NORMAL, ASSIGN):
                if c not in METACHARS:
                    return None
            elif mode == PARAM or mode == PARAM_SLASH:
                if c != "}":
                    return None
            else:
                return None
    p.add(Tilde(m.group(1), ctx.src.span(pos, e)))
    return e


def scan_word(ctx, pos, mode=NORMAL, tilde=True):
    """Scan one word starting at pos; return (list of parts, end offset)."""
    text = ctx.text
    n = len(text)
    src = ctx.src
    plain = _PLAIN[mode]
    p = _Parts(src)
    depth = 0
    if tilde and pos < n and text[pos] == "~" and mode not in (SUBSCRIPT, REGEX):
        e = _tilde(ctx, p, pos, mode)
        if e is not None:
            pos = e
    while pos < n:
        m = plain.match(text, pos)
        if m:
            e = m.end()
            p.lit(m.group(), pos, e)
            pos = e
            if pos >= n:
                break
        c = text[pos]
        if c == "\\":
            if pos + 1 >= n:
                raise src.error("a `\\` at the end of the input continues the line",
                                pos, pos + 1, incomplete=n == len(src.text))
            nx = text[pos + 1]
            if nx == "\n":
                if pos + 2 >= n and n == len(src.text):
                    raise src.error("line continuation at the end of the input",
                                    pos, pos + 1, incomplete=True)
                pos += 2
                continue
            p.add(SQ(nx, src.span(pos, pos + 2)))
            pos += 2
        elif c == "'":
            e = text.find("'", pos + 1)
            if e < 0:
                raise src.error("unterminated single quote (opened here)", pos, pos + 1,
                                incomplete=True)
            p.add(SQ(text[pos + 1:e], src.span(pos, e + 1)))
            pos = e + 1
        elif c == '"':
            part, pos = scan_dq(ctx, pos)
            p.add(part)
        elif c == "$":
            part, e = scan_dollar(ctx, pos, False)
            if part is None:
                p.lit("$", pos, pos + 1)
            else:
                p.add(part)
            pos = e
        elif c == "`":
            part, pos = scan_backtick(ctx, pos, False)
            p.add(part)
        elif mode == NORMAL:
            break
        elif mode == ASSIGN:
            if c != ":":
                break
            p.lit(":", pos, pos + 1)
            pos += 1
            if pos < n and text[pos] == "~":
                e = _tilde(ctx, p, pos, mode)
                if e is not None:
                    pos = e
        elif mode == PARAM or mode == PARAM_SLASH:
            if c == "{":
                depth += 1
            elif c == "}":
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0:  # '/' in PARAM_SLASH mode
                break
            p.lit(c, pos, pos + 1)
            pos += 1
        elif mode == SUBSCRIPT:
            if c == "[":
                depth += 1
            elif c == "]":
                if depth == 0:
                    break
                depth -= 1
            else:  # newline: not a subscript
                break
            p.lit(c, pos, pos + 1)
            pos += 1
        else:  # REGEX: parentheses group, and blanks inside them are part of the regex
            if c == "(":
                depth += 1
            elif c == ")":
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0:
                break
            p.lit(c, pos, pos + 1)
            pos += 1
    return p.done(), pos


def scan_dq(ctx, pos):
    """A "..." string at pos; return (DQ, end)."""
    text = ctx.text
    n = len(text)
    src = ctx.src
    p = _Parts(src)
    q = pos
    pos += 1
    while True:
        if pos >= n:
            raise src.error("unterminated double quote (opened here)", q, q + 1,
                            incomplete=True)
        m = _DQ_PLAIN.match(text, pos)
        if m:
            e = m.end()
            p.lit(m.group(), pos, e)
            pos = e
            continue
        c = text[pos]
        if c == '"':
            return DQ(tuple(p.done()), src.span(q, pos + 1)), pos + 1
        pos = _quoted_special(ctx, p, pos, n, '$`"\\')


def _quoted_special(ctx, p, pos, end, escapable):
    """A backslash escape, $-expansion or backtick at pos, inside double quotes or an expanding
    here-document (which differ only in what a backslash escapes); returns the new pos."""
    text = ctx.text
    c = text[pos]
    if c == "\\":
        nx = text[pos + 1] if pos + 1 < end else ""
        if nx == "\n":
            return pos + 2
        if nx and nx in escapable:
            p.lit(nx, pos, pos + 2)
            return pos + 2
        p.lit("\\", pos, pos + 1)
        return pos + 1
    if c == "$":
        part, e = scan_dollar(ctx, pos, True)
        if part is None:
            p.lit("$", pos, pos + 1)
        else:
            p.add(part)
        return e
    part, pos = scan_backtick(ctx, pos, True)
    p.add(part)
    return pos


def scan_heredoc(ctx, start, end, strip_tabs):
    """The parts of an expanding here-document body text[start:end] (ctx is bounded at end)."""
    text = ctx.text
    src = ctx.src
    p = _Parts(src)
    pos = start
    if strip_tabs:
        while pos < end and text[pos] == "\t":
            pos += 1
    while pos < end:
        m = _HD_PLAIN.match(text, pos, end)
        if m:
            e = m.end()
            p.lit(m.group(), pos, e)
            pos = e
            continue
        c = text[pos]
        if c == "\n":
            p.lit("\n", pos, pos + 1)
            pos += 1
            if strip_tabs:
                while pos < end and text[pos] == "\t":
                    pos += 1
        else:
            pos = _quoted_special(ctx, p, pos, end, "$`\\")
    return tuple(p.done())


def arith_end(ctx, pos, opener):
    """Offset of the `))` closing an arithmetic text that starts at pos, or None when the
    parentheses show it is not arithmetic after all (e.g. `$( (a) | b )`). Raises Unterminated
    at the end of the text; the caller knows where the opener is and builds the error."""
    text = ctx.text
    n = len(text)
    depth = 0
    while pos < n:
        c = text[pos]
        if c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                if pos + 1 < n and text[pos + 1] == ")":
                    return pos
                if pos + 1 >= n:
                    break
                return None
            depth -= 1
        elif c == "\\":
            pos += 1
        elif c == "'" or c == '"':
            e = text.find(c, pos + 1)
            if e < 0:
                return None   # an unpaired quote: let the $(...) / (...) parse report it
            pos = e
        pos += 1
    raise Unterminated(opener)


class Unterminated(Exception):
    """An arithmetic text ran to the end of the input (see arith_end)."""

    def __init__(self, opener):
        super().__init__(opener)
        self.opener = opener


def arith_text(ctx, start, end):
    text = ctx.text[start:end]
    parts = ()
    if "$(" in text or "${" in text or "`" in text:
        parts = scan_heredoc(ctx, start, end, False)
    return ArithText(text, ctx.src.span(start, end), parts)


def scan_dollar(ctx, pos, in_dq):
    """A $-expansion at pos; return (part, end), or (None, pos + 1) for a literal `$`."""
    text = ctx.text
    n = len(text)
    src = ctx.src
    nx = text[pos + 1] if pos + 1 < n else ""
    if nx == "(":
        if pos + 2 < n and text[pos + 2] == "(":
            try:
                e = arith_end(ctx, pos + 3, "$((")
            except Unterminated:
                raise src.error("unterminated `$((`: expected `))`", pos, pos + 3,
                                incomplete=True) from None
            if e is not None:
                return (ArithSub(arith_text(ctx, pos + 3, e), src.span(pos, e + 2)), e + 2)
        _enter(ctx, pos)
        prog, e = ctx.subparse(ctx, pos + 2, "$(")
        return CmdSub(prog, src.span(pos, e)), e
    if nx == "{":
        ctx.nest += 1
        if ctx.nest > MAX_NESTING:
            raise src.error(f"`${{...}}` {nesting_message()}", pos, pos + 2)
        try:
            return scan_braced(ctx, pos)
        finally:
            ctx.nest -= 1
    if not in_dq:
        if nx == "'":
            return scan_ansi(ctx, pos)
        if nx == '"':
            dq, e = scan_dq(ctx, pos + 1)
            return DQ(dq.parts, src.span(pos, e)), e
    if not nx:
        return None, pos + 1
    m = _NAME.match(text, pos + 1)
    if m:
        return Param(m.group(), src.span(pos, m.end())), m.end()
    if "0" <= nx <= "9" or nx in "@*#?$!-":
        return Param(nx, src.span(pos, pos + 2)), pos + 2
    return None, pos + 1


def _word(ctx, parts, start, end):
    return Word(tuple(parts), ctx.src.span(start, end))


def _expect_close(ctx, p, open_pos):
    """Require the `}` closing `${` at p."""
    text = ctx.text
    if p >= len(text):
        raise ctx.src.error("unterminated `${`: expected `}`", open_pos, open_pos + 2,
                            incomplete=True)
    if text[p] != "}":
        raise ctx.src.error(f"bad substitution: unexpected `{text[p]}` in `${{...}}`", p, p + 1)
    return p + 1


def scan_braced(ctx, pos):
    """${...} at pos; return (Param, end)."""
    text = ctx.text
    n = len(text)
    src = ctx.src
    p = pos + 2
    if p >= n:
        raise src.error("unterminated `${`: expected `}`", pos, pos + 2, incomplete=True)
    op = None
    index = None
    index_all = None
    arg = arg2 = None
    c = text[p]
    if c == "#" and p + 1 < n and text[p + 1] != "}":
        m = _PNAME.match(text, p + 1)
        if m and m.end() < n and text[m.end()] in "}[":
            name, op, p = m.group(), "len", m.end()
        else:
            name, p = "#", p + 1
    elif c == "!" and p + 1 < n and text[p + 1] != "}":
        m = _NAME.match(text, p + 1)
        if m and text.startswith(("[@]", "[*]"), m.end()):
            name, op, index_all = m.group(), "keys", text[m.end() + 1]
            index = Word((Lit(index_all, src.span(m.end() + 1, m.end() + 2)),),
                         src.span(m.end() + 1, m.end() + 2))
            p = _expect_close(ctx, m.end() + 3, pos)
            return (Param(name, src.span(pos, p), index, index_all, op, None, None, True), p)
        raise src.error("indirect expansion `${!name}` is not supported: use an associative "
                        "array (`declare -A`) instead", pos, p + 1)
    else:
        m = _PNAME.match(text, p)
        if not m:
            raise src.error("bad substitution: expected a parameter name after `${`", pos,
                            p + 1)
        name, p = m.group(), m.end()
    if p < n and text[p] == "[":
        if text.startswith(("@]", "*]"), p + 1):
            index_all = text[p + 1]
            index = Word((Lit(index_all, src.span(p + 1, p + 2)),), src.span(p + 1, p + 2))
            p += 3
        else:
            parts, e = scan_word(ctx, p + 1, SUBSCRIPT, tilde=False)
            if e >= n:
                raise src.error("unterminated `${`: expected `]` then `}`", pos, pos + 2,
                                incomplete=True)
            if text[e] != "]":
                raise src.error("unterminated array subscript: expected `]`", p, p + 1)
            index = _word(ctx, parts, p + 1, e)
            p = e + 1
    if op == "len":
        p = _expect_close(ctx, p, pos)
        return Param(name, src.span(pos, p), index, index_all, op, None, None, True), p
    if p >= n:
        raise src.error("unterminated `${`: expected `}`", pos, pos + 2, incomplete=True)
    c = text[p]
    if c == "}":
        return Param(name, src.span(pos, p + 1), index, index_all, None, None, None, True), p + 1
    if c == ":" and p + 1 < n and text[p + 1] in "-=?+":
        op = text[p:p + 2]
        arg, p = _arg(ctx, p + 2, PARAM)
    elif c == ":":
        op = ":"
        s = p + 1
        e = _arith_until(ctx, s, ":}", pos)
        arg = arith_text(ctx, s, e)
        p = e
        if text[e] == ":":
            e2 = _arith_until(ctx, e + 1, "}", pos)
            arg2 = arith_text(ctx, e + 1, e2)
            p = e2
    elif c in "-=?+":
        op = c
        arg, p = _arg(ctx, p + 1, PARAM)
    elif c in "#%^,":
        if p + 1 < n and text[p + 1] == c:
            op, p = c + c, p + 2
        else:
            op, p = c, p + 1
        arg, p = _arg(ctx, p, PARAM)
    elif c == "/":
        if p + 1 < n and text[p + 1] in "/#%":
            op, p = text[p:p + 2], p + 2
        else:
            op, p = "/", p + 1
        arg, p = _arg(ctx, p, PARAM_SLASH)
        if p < n and text[p] == "/":
            arg2, p = _arg(ctx, p + 1, PARAM)
    else:
        raise src.error(f"bad substitution: unexpected `{c}` in `${{...}}`", p, p + 1)
    p = _expect_close(ctx, p, pos)
    return Param(name, src.span(pos, p), index, index_all, op, arg, arg2, True), p


def _arg(ctx, start, mode):
    parts, e = scan_word(ctx, start, mode)
    return (_word(ctx, parts, start, e) if parts else None), e


def _arith_until(ctx, pos, stops, open_pos):
    """End of an arithmetic operand inside ${x:off:len}: the first stop char at depth 0."""
    text = ctx.text
    n = len(text)
    depth = 0
    while pos < n:
        c = text[pos]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                if c == "}" and "}" in stops:
                    return pos
                raise ctx.src.error(f"bad substitution: unexpected `{c}`", pos, pos + 1)
            depth -= 1
        elif c == ":" and depth == 0 and ":" in stops:
            return pos
        pos += 1
    raise ctx.src.error("unterminated `${`: expected `}`", open_pos, open_pos + 2,
                        incomplete=True)


def _byte(v: int) -> str:
    """A byte from `\\xHH` or `\\NNN`: bytes >= 0x80 are kept as surrogate escapes, the form in
    which fm carries bytes that are not UTF-8 (so $'\\xff' is the byte 0xff, as in bash)."""
    return chr(v) if v < 0x80 else chr(0xDC00 + v)


def scan_ansi(ctx, pos):
    """$'...' at pos: decode the ANSI-C escapes; return (SQ, end)."""
    text = ctx.text
    n = len(text)
    out = []
    p = pos + 2
    while True:
        if p >= n:
            raise ctx.src.error("unterminated `$'` string (opened here)", pos, pos + 2,
                                incomplete=True)
        c = text[p]
        if c == "'":
            # As in bash, a NUL ends the string (no program can receive one).
            return SQ("".join(out).split("\0", 1)[0], ctx.src.span(pos, p + 1)), p + 1
        if c != "\\" or p + 1 >= n:
            out.append(c)
            p += 1
            continue
        e = text[p + 1]
        p += 2
        if e in _ANSI:
            out.append(_ANSI[e])
        elif e in "01234567":
            m = _OCT.match(text, p - 1)
            out.append(_byte(int(m.group(), 8) & 0xFF))
            p = m.end()
        elif e in _HEX and _HEX[e].match(text, p):
            m = _HEX[e].match(text, p)
            v = int(m.group(), 16)
            if e == "x":
                out.append(_byte(v))
            else:
                out.append(chr(v) if v <= 0x10FFFF and not 0xD800 <= v < 0xE000 else "\ufffd")
            p = m.end()
        elif e == "c" and p < n:
            out.append(chr(ord(text[p]) & 0x1F))
            p += 1
        else:
            out.append("\\" + e)


def scan_backtick(ctx, pos, in_dq):
    """`...` at pos; return (CmdSub, end)."""
    text = ctx.text
    n = len(text)
    p = pos + 1
    has_escape = False
    while True:
        if p >= n:
            raise ctx.src.error("unterminated backquote (opened here)", pos, pos + 1,
                                incomplete=True)
        c = text[p]
        if c == "\\":
            has_escape = True
            p += 2
            continue
        if c == "`":
            break
        p += 1
    _enter(ctx, pos)
    if not has_escape:
        prog, _ = ctx.subparse(ctx.bounded(p), pos + 1, "`")
    else:
        # Inside backquotes \` \$ \\ (and \" inside "...") stand for the bare character: parse
        # the unescaped text on its own and map its offsets back onto the original.
        chars = []
        offs = []
        i = pos + 1
        specials = '$`\\"' if in_dq else "$`\\"
        while i < p:
            c = text[i]
            if c == "\\" and i + 1 < p and text[i + 1] in specials:
                i += 1
                c = text[i]
            chars.append(c)
            offs.append(i)
            i += 1
        offs.append(p)
        prog = _subparse_mapped(ctx, "".join(chars), offs)
    return CmdSub(prog, ctx.src.span(pos, p + 1)), p + 1


def _subparse_mapped(ctx, inner, offs):
    from flowmetal.lang.parser import parse_mapped
    return parse_mapped(ctx, inner, offs)


# ----------------------------------------------------------------------------------------------
# Brace expansion: a post-pass over the parts of an unquoted word.

def has_brace(parts):
    for q in parts:
        if type(q) is Lit and "{" in q.text:
            return True
    return False


def brace_expand(ctx, parts):
    """Rewrite a word's parts so valid `{a,b}` / `{1..5}` become BraceAlt / BraceSeq."""
    # Flatten into items: (char, offset) for unquoted literal characters, else a part.
    items = []
    for q in parts:
        if type(q) is Lit:
            s = q.span.start
            exact = len(q.text) == q.span.end - s
            for k, ch in enumerate(q.text):
                items.append((ch, s + k if exact else s))
        else:
            items.append(q)
    return _brace_seq(ctx, items, 0, len(items), 0)


def _brace_seq(ctx, items, i, j, level):
    """Parts for items[i:j], expanding braces found in them."""
    src = ctx.src
    if level > MAX_NESTING:
        raise src.error(f"brace expansion {nesting_message()}", items[i - 1][1])
    p = _Parts(src)
    while i < j:
        it = items[i]
        if type(it) is not tuple:
            p.add(it)
            i += 1
            continue
        if it[0] == "{":
            r = _brace_at(ctx, items, i, j, level)
            if r is not None:
                part, i = r
                p.add(part)
                continue
        p.lit(it[0], it[1], it[1] + 1)
        i += 1
    return p.done()


def _brace_at(ctx, items, i, j, level):
    """A brace expansion starting at items[i] == '{', or None when it is literal."""
    depth = 0
    commas = []
    k = i + 1
    while k < j:
        it = items[k]
        if type(it) is tuple:
            ch = it[0]
            if ch == "{":
                depth += 1
            elif ch == "}":
                if depth == 0:
                    break
                depth -= 1
            elif ch == "," and depth == 0:
                commas.append(k)
        k += 1
    else:
        return None
    start = items[i][1]
    end = items[k][1] + 1
    span = ctx.src.span(start, end)
    if commas:
        bounds = [i] + commas + [k]
        alts = tuple(tuple(_brace_seq(ctx, items, bounds[a] + 1, bounds[a + 1], level + 1))
                     for a in range(len(bounds) - 1))
        return BraceAlt(alts, span), k + 1
    inner = items[i + 1:k]
    if all(type(x) is tuple for x in inner):
        s = "".join(x[0] for x in inner)
        m = _SEQ_NUM.match(s) or _SEQ_CHR.match(s)
        if m:
            step = int(m.group(3)) if m.group(3) else None
            return BraceSeq(m.group(1), m.group(2), step, span), k + 1
    return None


# ----------------------------------------------------------------------------------------------
# Assignments and array literals

_ASSIGN_HEAD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\[)?")
_DECL_ARRAY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=\(")


def scan_assign(ctx, pos):
    """An assignment word at pos: return (Assign, end) or None if it is not one."""
    text = ctx.text
    n = len(text)
    m = _ASSIGN_HEAD.match(text, pos)
    if not m:
        return None
    p = m.end()
    index = None
    if m.group(2):
        parts, e = scan_word(ctx, p, SUBSCRIPT, tilde=False)
        if e >= n or text[e] != "]":
            return None
        index = _word(ctx, parts, p, e)
        p = e + 1
    if text.startswith("+=", p):
        op = "+="
        p += 2
    elif text.startswith("=", p):
        op = "="
        p += 1
    else:
        return None
    if p < n and text[p] == "(":
        if index is not None:
            raise ctx.src.error("cannot assign a list to an array element", pos, p + 1)
        value, p = scan_array(ctx, p)
    else:
        parts, e = scan_word(ctx, p, ASSIGN)
        value = _word(ctx, parts, p, e) if parts else None
        p = e
    return Assign(m.group(1), op, value, ctx.src.span(pos, p), index), p


def scan_decl_array(ctx, pos):
    """`name=(...)` as an argument of declare/local/...: a Word of Lit('name=') + ArrayLit."""
    m = _DECL_ARRAY.match(ctx.text, pos)
    if not m:
        return None
    e = m.end() - 1
    lit = Lit(ctx.text[pos:e], ctx.src.span(pos, e))
    arr, p = scan_array(ctx, e)
    return Word((lit, arr), ctx.src.span(pos, p)), p


def skip_blanks(text: str, p: int, comments: bool = False) -> int:
    """The offset after blanks, newlines and line continuations (and `#` comments) at p."""
    n = len(text)
    while p < n:
        c = text[p]
        if c in " \t\n":
            p += 1
        elif c == "\\" and p + 1 < n and text[p + 1] == "\n":
            p += 2
        elif c == "#" and comments:
            e = text.find("\n", p)
            p = n if e < 0 else e
        else:
            break
    return p


def scan_array(ctx, pos):
    """( item ... ) at pos: return (ArrayLit, end)."""
    text = ctx.text
    n = len(text)
    src = ctx.src
    items = []
    p = pos + 1
    while True:
        p = skip_blanks(text, p, comments=True)
        if p >= n:
            raise src.error("unterminated array literal: expected `)`", pos, pos + 1,
                            incomplete=True)
        c = text[p]
        if c == ")":
            return ArrayLit(tuple(items), src.span(pos, p + 1)), p + 1
        if c in ";&|<>(":
            raise src.error(f"unexpected `{c}` in an array literal", p, p + 1)
        if c == "[":
            parts, e = scan_word(ctx, p + 1, SUBSCRIPT, tilde=False)
            if e < n and text[e] == "]" and text.startswith("=", e + 1):
                key = _word(ctx, parts, p + 1, e)
                vparts, ve = scan_word(ctx, e + 2, ASSIGN)
                items.append((key, _word(ctx, vparts, e + 2, ve)))
                p = ve
                continue
        parts, e = scan_word(ctx, p, NORMAL)
        if has_brace(parts):
            parts = brace_expand(ctx, parts)
        items.append(_word(ctx, parts, p, e))
        p = e
