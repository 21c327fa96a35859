"""The `test` / `[` builtin: POSIX argument-count rules, then `! -a -o ( )` precedence parsing."""
from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["TestError", "evaluate", "strip_bracket", "UNARY_OPS", "BINARY_OPS"]

FileTest = "Callable[[str, str, str | None], bool]"  # (op, path, path2) -> bool


class TestError(Exception):
    """Bad usage of test/[ (bash's status 2). `message` is complete, e.g.
    "test: `-eq`: integer expression expected: abc"."""

    __test__ = False  # not a pytest test class

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


_STRING_UNARY = frozenset(("-n", "-z"))
# delegated to file_test(op, arg, None); -a is passed on as -e (its synonym), -t only with an
# integer argument, -o (shell option set) and -R (nameref) and -v (variable set) likewise
_FILE_UNARY = frozenset(("-a", "-b", "-c", "-d", "-e", "-f", "-g", "-h", "-k", "-p", "-r",
                         "-s", "-t", "-u", "-w", "-x", "-G", "-L", "-O", "-S", "-N", "-o",
                         "-R", "-v"))
UNARY_OPS = _STRING_UNARY | _FILE_UNARY
_STRING_BINARY = frozenset(("=", "==", "!=", "<", ">"))
_INT_BINARY = frozenset(("-eq", "-ne", "-lt", "-le", "-gt", "-ge"))
_FILE_BINARY = frozenset(("-nt", "-ot", "-ef"))
BINARY_OPS = _STRING_BINARY | _INT_BINARY | _FILE_BINARY

_INT_RE = re.compile(r"[ \t\n\v\f\r]*([-+]?[0-9]+)[ \t]*\Z")
_MIN, _MAX = -(2 ** 63), 2 ** 63 - 1


def _legal_int(s: str) -> int | None:
    m = _INT_RE.match(s)
    if not m:
        return None
    v = int(m.group(1))
    return v if _MIN <= v <= _MAX else None


def strip_bracket(args: Sequence[str]) -> list:
    """For `[ ... ]`: the arguments without the closing `]`; TestError if it is missing."""
    if not args or args[-1] != "]":
        raise TestError("[: missing `]`")
    return list(args[:-1])


class _Test:
    def __init__(self, args: Sequence[str], file_test: FileTest, name: str):
        self.a = list(args)
        self.n = len(self.a)
        self.pos = 0
        self.file_test = file_test
        self.name = name

    def error(self, message: str) -> TestError:
        return TestError(f"{self.name}: {message}")

    # -- operators --------------------------------------------------------------------------
    def unary(self, op: str, arg: str) -> bool:
        if op == "-z":
            return arg == ""
        if op == "-n":
            return arg != ""
        if op == "-a":
            op = "-e"
        return bool(self.file_test(op, arg, None))

    def binary(self, left: str, op: str, right: str) -> bool:
        if op in ("=", "=="):
            return left == right
        if op == "!=":
            return left != right
        if op == "<":
            return left < right
        if op == ">":
            return left > right
        if op in _INT_BINARY:
            lv = _legal_int(left)
            if lv is None:
                raise self.error(f"`{op}`: integer expression expected: {left}")
            rv = _legal_int(right)
            if rv is None:
                raise self.error(f"`{op}`: integer expression expected: {right}")
            if op == "-eq":
                return lv == rv
            if op == "-ne":
                return lv != rv
            if op == "-lt":
                return lv < rv
            if op == "-le":
                return lv <= rv
            if op == "-gt":
                return lv > rv
            return lv >= rv
        return bool(self.file_test(op, left, right))

    # -- POSIX rules by argument count ------------------------------------------------------
    def one(self, k: int) -> bool:
        return self.a[k] != ""

    def two(self, k: int) -> bool:
        op, arg = self.a[k], self.a[k + 1]
        if op == "!":
            return arg == ""
        if op in UNARY_OPS:
            if op == "-t" and _legal_int(arg) is None:
                return False
            return self.unary(op, arg)
        raise self.error(f"`{op}`: unary operator expected")

    def three(self, k: int) -> bool:
        x, op, y = self.a[k], self.a[k + 1], self.a[k + 2]
        if op in BINARY_OPS:
            return self.binary(x, op, y)
        if op == "-a":
            return self.one(k) and self.one(k + 2)
        if op == "-o":
            return self.one(k) or self.one(k + 2)
        if x == "!":
            return not self.two(k + 1)
        if x == "(" and y == ")":
            return self.one(k + 1)
        raise self.error(f"`{op}`: binary operator expected")

    def run(self) -> bool:
        n = self.n
        if n == 0:
            return False
        if n == 1:
            return self.one(0)
        if n == 2:
            return self.two(0)
        if n == 3:
            return self.three(0)
        if n == 4:
            if self.a[0] == "!":
                return not self.three(1)
            if self.a[0] == "(" and self.a[3] == ")":
                return self.two(1)
        value = self.expr()
        if self.pos != n:
            arg = self.a[self.pos]
            if arg.startswith("-"):
                raise self.error(f"syntax error: `{arg}` unexpected")
            raise self.error("too many arguments")
        return value

    # -- general expressions (5+ arguments, or 4 that fit no rule) --------------------------
    def expr(self) -> bool:
        return self.or_()

    def or_(self) -> bool:
        value = self.and_()
        if self.pos < self.n and self.a[self.pos] == "-o":
            self.pos += 1
            right = self.or_()  # both sides are evaluated, as in bash
            return value or right
        return value

    def and_(self) -> bool:
        value = self.term()
        if self.pos < self.n and self.a[self.pos] == "-a":
            self.pos += 1
            right = self.and_()
            return value and right
        return value

    def term(self) -> bool:
        a, n = self.a, self.n
        if self.pos >= n:
            raise self.error("argument expected")
        if a[self.pos] == "!":
            negate = False
            while self.pos < n and a[self.pos] == "!":
                self.pos += 1
                negate = not negate
            value = self.term()
            return not value if negate else value
        if a[self.pos] == "(":
            self.pos += 1
            value = self.expr()
            if self.pos >= n:
                raise self.error("`)` expected")
            if a[self.pos] != ")":
                raise self.error(f"`)` expected, found `{a[self.pos]}`")
            self.pos += 1
            return value
        if self.pos + 3 <= n and a[self.pos + 1] in BINARY_OPS:
            value = self.binary(a[self.pos], a[self.pos + 1], a[self.pos + 2])
            self.pos += 3
            return value
        if self.pos + 2 <= n and a[self.pos] in UNARY_OPS:
            op, arg = a[self.pos], a[self.pos + 1]
            if op == "-t" and _legal_int(arg) is None:
                self.pos += 1
                return False
            self.pos += 2
            return self.unary(op, arg)
        value = a[self.pos] != ""
        self.pos += 1
        return value


def evaluate(args: Sequence[str], file_test: FileTest, *, name: str = "test") -> int:
    """Run `test args...`: 0 (true) or 1 (false); TestError for bad usage (status 2).
    File operators, -v NAME, -o OPTION, -R NAME and -t FD call file_test(op, arg, arg2_or_None);
    `name` prefixes error messages ("test" or "[")."""
    return 0 if _Test(args, file_test, name).run() else 1
