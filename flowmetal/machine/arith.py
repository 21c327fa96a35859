"""Bash arithmetic (`$(( ))`, `(( ))`, `for ((;;))`, subscripts) with fm's strict integer rules."""
from __future__ import annotations

import functools
import re

from flowmetal.lang.limits import MAX_NESTING, nesting_message, paren_depth

__all__ = ["ArithError", "ArithEnv", "Compiled", "evaluate", "compile_expr", "parse_integer"]

_BITS = 64
_MASK = (1 << _BITS) - 1
_SIGN = 1 << (_BITS - 1)
_MIN = -_SIGN
_MAX = _SIGN - 1


class ArithError(Exception):
    """An arithmetic error: `message` says what, `offset` indexes into the expression text."""

    def __init__(self, message: str, offset: int = 0):
        super().__init__(message)
        self.message = message
        self.offset = offset


class ArithEnv:
    """What evaluation needs from the shell's variables."""

    def get(self, name: str) -> str | None: ...
    def set(self, name: str, value: str) -> None: ...
    def get_item(self, name: str, key: str) -> str | None: ...
    def set_item(self, name: str, key: str, value: str) -> None: ...
    def is_assoc(self, name: str) -> bool: ...


def _wrap(v: int) -> int:
    if _MIN <= v <= _MAX:
        return v
    v &= _MASK
    return v - (1 << _BITS) if v & _SIGN else v


# --------------------------------------------------------------------------------------------
# Integer literals (shared by the lexer and by variable values)

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ@_"
_DIGIT_VAL = {c: i for i, c in enumerate(_DIGITS)}


def _literal(tok: str) -> tuple[int | None, str]:
    """Value of an integer constant as bash writes it, or (None, why)."""
    if tok.isdecimal() and tok.isascii() and (tok[0] != "0" or len(tok) == 1):
        return _wrap(int(tok) & _MASK), ""     # the common case, without the digit loop
    if "#" in tok:
        base_s, _, digits = tok.partition("#")
        if not base_s.isdigit() or not (2 <= int(base_s) <= 64):
            return None, "invalid arithmetic base"
        base = int(base_s)
        if not digits:
            return None, "invalid integer constant"
        fold = base <= 36
    elif tok[:2] in ("0x", "0X"):
        base, digits, fold = 16, tok[2:], True
    elif len(tok) > 1 and tok[0] == "0":
        base, digits, fold = 8, tok[1:], True
    else:
        base, digits, fold = 10, tok, True
    v = 0
    for c in digits:
        d = _DIGIT_VAL.get(c.lower() if fold else c)
        if d is None or d >= base:
            return None, "value too great for base"
        v = (v * base + d) & _MASK
    return _wrap(v), ""


_SIGNED_RE = re.compile(r"[ \t\n]*([-+]?)([0-9][0-9A-Za-z@_#]*)[ \t\n]*\Z")


@functools.lru_cache(maxsize=4096)
def parse_integer(value: str) -> int | None:
    """The integer a variable's value denotes (spaces trimmed, optional sign, 0x.., 0.., base#..),
    or None when it is not one."""
    if value.isdecimal() and value.isascii() and len(value) < 19 and \
            (value[0] != "0" or len(value) == 1):
        return int(value)                   # the common case: fits, no base, no sign
    m = _SIGNED_RE.match(value)
    if not m:
        return None
    v, _why = _literal(m.group(2))
    if v is None:
        return None
    return _wrap(-v) if m.group(1) == "-" else v


def _value_int(value: str, what: str, off: int) -> int:
    n = parse_integer(value)
    if n is None:
        if not value.strip(" \t\n"):
            raise ArithError(f"`{what}` is empty, not an integer", off)
        raise ArithError(f"`{what}` is not an integer: '{value}'", off)
    return n


# --------------------------------------------------------------------------------------------
# Lexer

_WS = " \t\n\r"
_IDSTART = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDCHARS = _IDSTART | frozenset("0123456789")
_NUMCHARS = _IDCHARS | frozenset("@#")
_OPS3 = ("<<=", ">>=")
_OPS2 = ("**", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "*=", "/=", "%=", "+=", "-=",
         "&=", "^=", "|=", "++", "--")
_OPS1 = frozenset("+-*/%<>&^|!~?:,()=")
_ASSIGN_OPS = frozenset(("=", "*=", "/=", "%=", "+=", "-=", "<<=", ">>=", "&=", "^=", "|="))

# token kinds
_NUM, _ID, _ELEM, _DOLLAR, _OP, _EOF = range(6)


class _Tok:
    __slots__ = ("kind", "val", "pos", "text", "extra")

    def __init__(self, kind, val, pos, text, extra=None):
        self.kind = kind
        self.val = val
        self.pos = pos
        self.text = text
        self.extra = extra


class _Subscript:
    """An `a[...]` subscript: raw text (the key of an associative array) and, for an indexed
    array, the compiled expression (or the syntax error it would raise)."""

    __slots__ = ("raw", "pos", "fn", "err")

    def __init__(self, raw, pos, fn, err):
        self.raw = raw
        self.pos = pos
        self.fn = fn
        self.err = err


_DOLLAR_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[?#$!])\}"
                        r"|([A-Za-z_][A-Za-z0-9_]*|[0-9]|[?#$!]))")


class _Parser:
    def __init__(self, text: str, start: int, end: int):
        self.s = text
        self.i = start
        self.end = end
        self.prev_kind = None  # kind of the previous token (for ++/-- disambiguation)
        self.tok = self._lex()

    # -- lexing -----------------------------------------------------------------------------
    def _lex(self) -> _Tok:
        s, i, end = self.s, self.i, self.end
        while i < end and s[i] in _WS:
            i += 1
        if i >= end:
            self.i = i
            return _Tok(_EOF, None, i, "")
        c = s[i]
        start = i
        if c.isdigit() and c.isascii():
            i += 1
            while i < end and s[i] in _NUMCHARS:
                i += 1
            text = s[start:i]
            v, why = _literal(text)
            if v is None:
                raise ArithError(f"invalid number `{text}`: {why}", start)
            self.i = i
            return _Tok(_NUM, v, start, text)
        if c in _IDSTART:
            i += 1
            while i < end and s[i] in _IDCHARS:
                i += 1
            name = s[start:i]
            if i < end and s[i] == "[":
                j = self._match_bracket(i)
                sub = self._subscript(i + 1, j)
                self.i = j + 1
                return _Tok(_ELEM, name, start, s[start:j + 1], sub)
            self.i = i
            return _Tok(_ID, name, start, name)
        if c == "$":
            m = _DOLLAR_RE.match(s, i, end)
            if not m:
                raise ArithError("unexpected `$`", start)
            self.i = m.end()
            return _Tok(_DOLLAR, m.group(1) or m.group(2), start, m.group(0))
        three = s[i:i + 3] if i + 3 <= end else s[i:end]
        if three in _OPS3:
            self.i = i + 3
            return _Tok(_OP, three, start, three)
        two = three[:2]
        if two in _OPS2:
            if two in ("++", "--"):
                if self.prev_kind in (_ID, _ELEM):
                    self.i = i + 2
                    return _Tok(_OP, "post" + two, start, two)
                k = i + 2
                while k < end and s[k] in _WS:
                    k += 1
                if k < end and s[k] in _IDSTART:
                    self.i = i + 2
                    return _Tok(_OP, "pre" + two, start, two)
                self.i = i + 1
                return _Tok(_OP, c, start, c)
            self.i = i + 2
            return _Tok(_OP, two, start, two)
        if c in _OPS1:
            self.i = i + 1
            return _Tok(_OP, c, start, c)
        raise ArithError(f"unexpected `{c}`", start)

    def _match_bracket(self, i: int) -> int:
        s, depth = self.s, 0
        for j in range(i, self.end):
            if s[j] == "[":
                depth += 1
            elif s[j] == "]":
                depth -= 1
                if depth == 0:
                    return j
        raise ArithError("missing `]`", i)

    def _subscript(self, a: int, b: int) -> _Subscript:
        raw = self.s[a:b]
        fn = err = None
        if not raw.strip(_WS):
            err = ArithError("bad array subscript: empty", a)
        else:
            try:
                fn = _Parser(self.s, a, b).parse()
            except ArithError as e:
                err = e
        return _Subscript(raw, a, fn, err)

    def advance(self) -> _Tok:
        t = self.tok
        self.prev_kind = t.kind
        self.tok = self._lex()
        return t

    def is_op(self, *ops) -> bool:
        return self.tok.kind == _OP and self.tok.val in ops

    def unexpected(self) -> ArithError:
        t = self.tok
        if t.kind == _EOF:
            return ArithError("expected an operand", t.pos)
        return ArithError(f"unexpected `{t.text}`", t.pos)

    # -- grammar ----------------------------------------------------------------------------
    def parse(self):
        if self.tok.kind == _EOF:
            return _const(0)
        fn = self.comma()
        if self.tok.kind != _EOF:
            raise ArithError(f"unexpected `{self.tok.text}`", self.tok.pos)
        return fn

    def comma(self):
        fn = self.assign()
        while self.is_op(","):
            self.advance()
            right = self.assign()
            fn = _comma(fn, right)
        return fn

    def assign(self):
        fn = self.cond()
        if self.tok.kind == _OP and self.tok.val in _ASSIGN_OPS:
            op_tok = self.tok
            lv = getattr(fn, "lvalue", None)
            if lv is None:
                raise ArithError(f"cannot assign to a non-variable with `{op_tok.val}`",
                                 op_tok.pos)
            self.advance()
            rhs = self.assign()
            return _assign(lv, op_tok.val, rhs, op_tok.pos)
        return fn

    def cond(self):
        fn = self.lor()
        if self.is_op("?"):
            self.advance()
            mid = self.comma()
            if not self.is_op(":"):
                if self.tok.kind == _EOF:
                    raise ArithError("expected `:` after `?` branch", self.tok.pos)
                raise ArithError(f"unexpected `{self.tok.text}` (expected `:`)", self.tok.pos)
            self.advance()
            els = self.cond()
            return _ternary(fn, mid, els)
        return fn

    def lor(self):
        fn = self.land()
        while self.is_op("||"):
            self.advance()
            fn = _or(fn, self.land())
        return fn

    def land(self):
        fn = self.binary(0)
        while self.is_op("&&"):
            self.advance()
            fn = _and(fn, self.binary(0))
        return fn

    _LEVELS = (("|",), ("^",), ("&",), ("==", "!="), ("<", "<=", ">", ">="), ("<<", ">>"),
               ("+", "-"), ("*", "/", "%"))

    def binary(self, level: int):
        if level == len(self._LEVELS):
            return self.power()
        ops = self._LEVELS[level]
        fn = self.binary(level + 1)
        while self.tok.kind == _OP and self.tok.val in ops:
            t = self.advance()
            right = self.binary(level + 1)
            fn = _binop(t.val, fn, right, t.pos)
        return fn

    def power(self):
        fn = self.unary()
        if self.is_op("**"):
            t = self.advance()
            right = self.power()
            return _binop("**", fn, right, t.pos)
        return fn

    def unary(self):
        t = self.tok
        if t.kind == _OP:
            if t.val in ("-", "+", "!", "~"):
                self.advance()
                return _unop(t.val, self.unary())
            if t.val in ("pre++", "pre--"):
                self.advance()
                target = self.tok
                if target.kind not in (_ID, _ELEM):
                    raise self.unexpected()
                self.advance()
                return _incdec(_lvalue(target), 1 if t.val == "pre++" else -1, True)
        return self.postfix()

    def postfix(self):
        t = self.tok
        if t.kind in (_ID, _ELEM):
            self.advance()
            lv = _lvalue(t)
            if self.is_op("post++", "post--"):
                op = self.advance()
                return _incdec(lv, 1 if op.val == "post++" else -1, False)
            fn = _read(lv)
            fn.lvalue = lv
            return fn
        if t.kind == _NUM:
            self.advance()
            return _const(t.val)
        if t.kind == _DOLLAR:
            self.advance()
            return _dollar(t.val, t.pos)
        if t.kind == _OP and t.val == "(":
            self.advance()
            fn = self.comma()
            if not self.is_op(")"):
                if self.tok.kind == _EOF:
                    raise ArithError("missing `)`", t.pos)
                raise ArithError(f"unexpected `{self.tok.text}` (expected `)`)", self.tok.pos)
            self.advance()
            return _group(fn)
        raise self.unexpected()


# --------------------------------------------------------------------------------------------
# Compiled closures: each takes (env, nounset) and returns an int

def _const(v):
    return lambda env, cx: v


def _group(fn):
    # a parenthesised expression is never an lvalue
    return lambda env, cx: fn(env, cx)


def _comma(a, b):
    def f(env, cx):
        a(env, cx)
        return b(env, cx)
    return f


def _and(a, b):
    return lambda env, cx: 1 if (a(env, cx) and b(env, cx)) else 0


def _or(a, b):
    return lambda env, cx: 1 if (a(env, cx) or b(env, cx)) else 0


def _ternary(c, a, b):
    return lambda env, cx: a(env, cx) if c(env, cx) else b(env, cx)


def _unop(op, a):
    if op == "-":
        return lambda env, cx: _wrap(-a(env, cx))
    if op == "+":
        return lambda env, cx: a(env, cx)
    if op == "!":
        return lambda env, cx: 0 if a(env, cx) else 1
    return lambda env, cx: ~a(env, cx)


def _cdiv(a: int, b: int, pos: int) -> int:
    if b == 0:
        raise ArithError("division by zero", pos)
    q = abs(a) // abs(b)
    return _wrap(-q if (a < 0) != (b < 0) else q)


def _cmod(a: int, b: int, pos: int) -> int:
    if b == 0:
        raise ArithError("division by zero", pos)
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def _cpow(a: int, b: int, pos: int) -> int:
    if b < 0:
        raise ArithError("exponent less than 0", pos)
    return _wrap(pow(a, b, 1 << _BITS))


def _apply(op: str, a: int, b: int, pos: int) -> int:
    if op == "+":
        return _wrap(a + b)
    if op == "-":
        return _wrap(a - b)
    if op == "*":
        return _wrap(a * b)
    if op == "/":
        return _cdiv(a, b, pos)
    if op == "%":
        return _cmod(a, b, pos)
    if op == "<<":
        return _wrap(a << (b & 63))
    if op == ">>":
        return a >> (b & 63)
    if op == "&":
        return a & b
    if op == "|":
        return a | b
    if op == "^":
        return a ^ b
    if op == "**":
        return _cpow(a, b, pos)
    raise AssertionError(op)


def _binop(op, a, b, pos):
    if op == "+":
        return lambda env, cx: _wrap(a(env, cx) + b(env, cx))
    if op == "-":
        return lambda env, cx: _wrap(a(env, cx) - b(env, cx))
    if op == "*":
        return lambda env, cx: _wrap(a(env, cx) * b(env, cx))
    if op == "<":
        return lambda env, cx: 1 if a(env, cx) < b(env, cx) else 0
    if op == "<=":
        return lambda env, cx: 1 if a(env, cx) <= b(env, cx) else 0
    if op == ">":
        return lambda env, cx: 1 if a(env, cx) > b(env, cx) else 0
    if op == ">=":
        return lambda env, cx: 1 if a(env, cx) >= b(env, cx) else 0
    if op == "==":
        return lambda env, cx: 1 if a(env, cx) == b(env, cx) else 0
    if op == "!=":
        return lambda env, cx: 1 if a(env, cx) != b(env, cx) else 0
    return lambda env, cx: _apply(op, a(env, cx), b(env, cx), pos)


class _VarRef:
    """A plain variable (`x`, `$x`, `${x}`)."""

    __slots__ = ("name", "pos")

    def __init__(self, name, pos):
        self.name = name
        self.pos = pos

    def key(self, env, cx):
        return None

    def get(self, env, cx, key):
        v = env.get(self.name)
        if v is None:
            if cx.nounset:
                raise ArithError(f"`{self.name}` is unset", self.pos)
            return 0
        return _value_int(v, self.name, self.pos)

    def set(self, env, key, value: int):
        env.set(self.name, str(value))


class _ElemRef:
    """An array element `a[sub]`."""

    __slots__ = ("name", "sub", "pos")

    def __init__(self, name, sub: _Subscript, pos):
        self.name = name
        self.sub = sub
        self.pos = pos

    def key(self, env, cx) -> str:
        sub = self.sub
        if env.is_assoc(self.name):
            if not sub.raw:
                raise ArithError("bad array subscript: empty", sub.pos)
            raw = sub.raw
            if "$" in raw:
                def expand(m):
                    name = m.group(1) or m.group(2)
                    v = cx.snap.get(name) if cx.snap is not None else env.get(name)
                    if v is None:
                        if cx.nounset:
                            raise ArithError(f"`{name}` is unset", sub.pos + m.start())
                        return ""
                    return v
                raw = _DOLLAR_RE.sub(expand, raw)
            return raw
        if sub.err is not None:
            raise ArithError(sub.err.message, sub.err.offset)
        return str(sub.fn(env, cx))

    def get(self, env, cx, key):
        v = env.get_item(self.name, key)
        what = f"{self.name}[{key}]"
        if v is None:
            if cx.nounset:
                raise ArithError(f"`{what}` is unset", self.pos)
            return 0
        return _value_int(v, what, self.pos)

    def set(self, env, key, value: int):
        env.set_item(self.name, key, str(value))


def _lvalue(t: _Tok):
    if t.kind == _ID:
        return _VarRef(t.val, t.pos)
    return _ElemRef(t.val, t.extra, t.pos)


def _read(lv):
    if isinstance(lv, _VarRef):
        name, pos = lv.name, lv.pos

        def f(env, cx):
            v = env.get(name)
            if v is None:
                if cx.nounset:
                    raise ArithError(f"`{name}` is unset", pos)
                return 0
            n = parse_integer(v)
            if n is None:
                return _value_int(v, name, pos)
            return n
        return f

    def g(env, cx):
        return lv.get(env, cx, lv.key(env, cx))
    return g


def _dollar(name, pos):
    """`$x` / `${x}`: like bash, the value the variable had before evaluation began."""
    def f(env, cx):
        v = cx.snap[name]
        if v is None:
            if cx.nounset:
                raise ArithError(f"`{name}` is unset", pos)
            return 0
        return _value_int(v, name, pos)
    return f


def _incdec(lv, delta: int, prefix: bool):
    def f(env, cx):
        key = lv.key(env, cx)
        old = lv.get(env, cx, key)
        new = _wrap(old + delta)
        lv.set(env, key, new)
        return new if prefix else old
    return f


def _assign(lv, op: str, rhs, pos: int):
    if op == "=":
        def f(env, cx):
            key = lv.key(env, cx)
            v = rhs(env, cx)
            lv.set(env, key, v)
            return v
        return f
    binop = op[:-1]

    def g(env, cx):
        key = lv.key(env, cx)
        old = lv.get(env, cx, key)
        v = _apply(binop, old, rhs(env, cx), pos)
        lv.set(env, key, v)
        return v
    return g


# --------------------------------------------------------------------------------------------
# Entry points

class _Ctx:
    __slots__ = ("nounset", "snap")

    def __init__(self, nounset: bool, snap: dict | None):
        self.nounset = nounset
        self.snap = snap


_PLAIN_CTX = {True: _Ctx(True, None), False: _Ctx(False, None)}


class Compiled:
    """A parsed expression; call it as `compiled(env, nounset=True) -> int`."""

    __slots__ = ("fn", "dollars", "text")

    def __init__(self, text: str, fn, dollars: tuple):
        self.text = text
        self.fn = fn
        self.dollars = dollars

    def __call__(self, env: ArithEnv, nounset: bool = True) -> int:
        if self.dollars:
            cx = _Ctx(nounset, {name: env.get(name) for name in self.dollars})
        else:
            cx = _PLAIN_CTX[bool(nounset)]
        return self.fn(env, cx)


@functools.lru_cache(maxsize=2048)
def compile_expr(text: str) -> Compiled:
    """Parse `text` once (raises ArithError on syntax errors; offsets index into `text`)."""
    if paren_depth(text) > MAX_NESTING:
        raise ArithError(f"expression too deeply nested: parentheses {nesting_message()}", 0)
    try:
        fn = _Parser(text, 0, len(text)).parse()
    except RecursionError:
        raise ArithError("expression too deeply nested", 0) from None
    dollars = tuple(dict.fromkeys(m.group(1) or m.group(2) for m in _DOLLAR_RE.finditer(text)))
    return Compiled(text, fn, dollars)


def evaluate(text: str, env: ArithEnv, *, nounset: bool = True) -> int:
    """Evaluate a bash arithmetic expression; blank text is 0. Raises ArithError.
    `$x`/`${x}` in the text read the value from before evaluation (bash expands them first);
    bare `x` reads the live value."""
    compiled = compile_expr(text)
    try:
        return compiled(env, nounset)
    except RecursionError:
        raise ArithError("expression too deeply nested", 0) from None
