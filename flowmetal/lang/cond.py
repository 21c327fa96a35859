"""The `[[ ... ]]` sub-language: a small recursive-descent parser run by the lexer."""
from __future__ import annotations

from flowmetal.lang.ast import CondAnd, CondBinary, CondNot, CondOr, CondUnary, CondWord, Lit, Word
from flowmetal.lang.limits import MAX_NESTING, nesting_message
from flowmetal.lang.words import NORMAL, REGEX, scan_word, skip_blanks

UNARY = frozenset("-a -b -c -d -e -f -g -h -k -p -r -s -t -u -w -x -G -L -N -O -S -z -n -o -v "
                  "-R".split())
BINARY = frozenset("== = != =~ < > -eq -ne -lt -le -gt -ge -nt -ot -ef".split())
_DELIM = " \t\n;&|<>()"


def _lit(w):
    """The text of a word made of one unquoted literal, else None."""
    if len(w.parts) == 1 and type(w.parts[0]) is Lit:
        return w.parts[0].text
    return None


class CondParser:
    """Parses from just after `[[` to just after the matching `]]`."""

    def __init__(self, ctx, open_pos, pos):
        self.ctx = ctx
        self.text = ctx.text
        self.src = ctx.src
        self.open_pos = open_pos
        self.pos = pos
        self.tok = None   # lookahead: (kind, value, start, end)
        self.nest = 0

    # -- tokens ---------------------------------------------------------------------------
    def _skip(self):
        self.pos = skip_blanks(self.text, self.pos)

    def _lex(self, regex=False):
        self._skip()
        text = self.text
        p = self.pos
        n = len(text)
        if p >= n:
            raise self.src.error("unterminated `[[`: expected `]]`", self.open_pos,
                                 self.open_pos + 2, incomplete=True)
        c = text[p]
        two = text[p:p + 2]
        if two == "]]" and (p + 2 >= n or text[p + 2] in _DELIM):
            return ("END", "]]", p, p + 2)
        if two == "&&":
            return ("AND", "&&", p, p + 2)
        if two == "||":
            return ("OR", "||", p, p + 2)
        if not regex:
            if c == "(":
                return ("LP", "(", p, p + 1)
            if c == ")":
                return ("RP", ")", p, p + 1)
            if c in "<>":
                return ("WORD", Word((Lit(c, self.src.span(p, p + 1)),),
                                     self.src.span(p, p + 1)), p, p + 1)
        if c in ";&|" or (c in "<>()" and not regex):
            raise self.src.error(f"unexpected `{c}` inside `[[ ]]`", p, p + 1)
        if c == "!" and (p + 1 >= n or text[p + 1] in _DELIM):
            return ("NOT", "!", p, p + 1)
        parts, e = scan_word(self.ctx, p, REGEX if regex else NORMAL)
        if e == p:
            raise self.src.error(f"unexpected `{c}` inside `[[ ]]`", p, p + 1)
        return ("WORD", Word(tuple(parts), self.src.span(p, e)), p, e)

    def peek(self):
        if self.tok is None:
            self.tok = self._lex()
        return self.tok

    def next(self, regex=False):
        t = self.tok
        if t is None or regex:
            # A regex after =~ is lexed differently: re-read the lookahead in that mode.
            t = self._lex(regex)
        self.tok = None
        self.pos = t[3]
        return t

    def _unexpected(self, t, what):
        if t[0] == "END":
            raise self.src.error(f"unexpected `]]`: expected {what}", t[2], t[3])
        text = self.text[t[2]:t[3]]
        raise self.src.error(f"unexpected `{text}` inside `[[ ]]`: expected {what}", t[2], t[3])

    # -- grammar --------------------------------------------------------------------------
    def parse(self):
        """Return (expr, end offset after `]]`)."""
        t = self.peek()
        if t[0] == "END":
            raise self.src.error("empty `[[ ]]`: expected an expression", self.open_pos, t[3])
        e = self.or_expr()
        t = self.next()
        if t[0] != "END":
            self._unexpected(t, "`]]`, `&&` or `||`")
        return e, t[3]

    def or_expr(self):
        left = self.and_expr()
        while self.peek()[0] == "OR":
            self.next()
            right = self.and_expr()
            left = CondOr(left, right, self._span(left, right))
        return left

    def and_expr(self):
        left = self.not_expr()
        while self.peek()[0] == "AND":
            self.next()
            right = self.not_expr()
            left = CondAnd(left, right, self._span(left, right))
        return left

    def not_expr(self):
        t = self.peek()
        if t[0] == "NOT":
            self.next()
            self._deeper(t)
            e = self.not_expr()
            self.nest -= 1
            return CondNot(e, self.src.span(t[2], e.span.end))
        return self.primary()

    def _deeper(self, t):
        self.nest += 1
        if self.nest > MAX_NESTING:
            raise self.src.error(f"`[[ ]]` expression {nesting_message()}", t[2], t[3])

    def primary(self):
        t = self.next()
        kind = t[0]
        if kind == "LP":
            self._deeper(t)
            e = self.or_expr()
            self.nest -= 1
            r = self.next()
            if r[0] != "RP":
                self._unexpected(r, "`)`")
            return e
        if kind != "WORD":
            self._unexpected(t, "an expression")
        w = t[1]
        lit = _lit(w)
        if lit in UNARY:
            nt = self.peek()
            if nt[0] == "WORD":
                self.next()
                return CondUnary(lit, nt[1], self.src.span(t[2], nt[3]))
            raise self.src.error(f"expected an operand after `{lit}`", nt[2], nt[3],
                                 incomplete=False)
        nt = self.peek()
        if nt[0] == "WORD":
            op = _lit(nt[1])
            if op in BINARY:
                self.next()
                r = self.next(regex=(op == "=~"))
                if r[0] != "WORD":
                    self._unexpected(r, f"an operand after `{op}`")
                return CondBinary(op, w, r[1], self.src.span(t[2], r[3]))
            self._unexpected(nt, "a binary operator such as `==`, `-eq` or `]]`")
        return CondWord(w, w.span)

    def _span(self, a, b):
        return self.src.span(a.span.start, b.span.end)
