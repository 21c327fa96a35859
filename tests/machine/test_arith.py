"""Tests for flowmetal.machine.arith: bash arithmetic with fm's strict integer rules."""
from __future__ import annotations

import random
import shlex
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowmetal.machine.arith import ArithError, compile_expr, evaluate, parse_integer

BASH = "/bin/bash"


class FakeEnv:
    def __init__(self, scalars=None, arrays=None, assoc=None):
        self.vars = dict(scalars or {})
        self.arrays = {k: dict(v) for k, v in (arrays or {}).items()}
        self.assoc = {k: dict(v) for k, v in (assoc or {}).items()}

    def get(self, name):
        if name in self.arrays:
            return self.arrays[name].get("0")
        return self.vars.get(name)

    def set(self, name, value):
        if name in self.arrays:
            self.arrays[name]["0"] = value
        else:
            self.vars[name] = value

    def _resolve(self, name, key):
        if name in self.assoc:
            return key
        n = int(key)
        if n < 0:
            arr = self.arrays.get(name, {})
            n += max((int(k) for k in arr), default=-1) + 1
        return str(n)

    def get_item(self, name, key):
        table = self.assoc.get(name) if name in self.assoc else self.arrays.get(name, {})
        return table.get(self._resolve(name, key))

    def set_item(self, name, key, value):
        table = self.assoc if name in self.assoc else self.arrays
        table.setdefault(name, {})[self._resolve(name, key)] = value

    def is_assoc(self, name):
        return name in self.assoc


SCALARS = {"x": "3", "y": "-7", "z": "0", "big": "9223372036854775807", "h": "0x1f",
           "o": "010", "sp": " 12 ", "neg": "-0x10", "b2": "2#101", "one": "1"}


def bash_setup() -> str:
    return " ".join(f"{k}={shlex.quote(v)}" for k, v in SCALARS.items())


def run_bash(script: str) -> list[str]:
    out = subprocess.run([BASH], input=script, capture_output=True, text=True, timeout=60)
    return out.stdout.splitlines()


def ours(expr: str, scalars=SCALARS) -> str:
    env = FakeEnv(scalars)
    try:
        v = evaluate(expr, env)
    except ArithError:
        return "ERR"
    return " ".join([str(v)] + [env.vars[k] for k in ("x", "y", "z")])


def bash_many(exprs: list[str]) -> list[str]:
    """One bash run: for every expression, print result and x y z afterwards, or ERR."""
    lines = []
    for e in exprs:
        assert "'" not in e
        lines.append(f"( {bash_setup()}; eval 'r=$(( {e} ))' || exit 1; "
                     f"echo \"$r $x $y $z\" ) 2>/dev/null || echo ERR")
    out = run_bash("\n".join(lines))
    assert len(out) == len(exprs)
    return out


# -- hand-picked expressions compared against bash -------------------------------------------

TABLE = [
    "1+2*3", "(1+2)*3", "-2**2", "2**63", "2**64", "2**3**2", "1<<64", "1<<65", "1<<-1",
    "-8>>1", "-8>>64", "8>>-1", "1<<63", "-9223372036854775808 / -1",
    "-9223372036854775808 % -1", "-7/2", "-7%2", "7%-2", "7/-2", "++5", "--5", "1--5", "0x",
    "0", "010", "0X1f", "0xFF", "64#_@", "36#zZ", "2#1010", "16#ff", "62#Z", "63#@",
    "9223372036854775807 + 1", "9223372036854775808", "18446744073709551617", "1?2:3",
    "0?2:3", "1,2", "x=5,x", "!5", "!0", "~5", "~-1", "- - 5", "-+-5", "1 ? 2, 3 : 4",
    "1 ? 2 : 3 ? 4 : 5", "0 ? 2 : 0 ? 4 : 5", "0x7fffffffffffffff + 1", "!!3",
    "1 < 2 == 1", "3 & 5 ^ 6 | 8", "1 && 0 || 1", "0 || 0", "2 && 3", "5 > 3 ? 10 : 20",
    "1 << 2 + 1", "x++ + ++y", "x+++y", "x---y", "x++", "x--", "++x", "--x", "x ++",
    "- -x", "-(-x)", "x += 2, x *= 3", "x = y = 7", "x -= y", "x /= 2", "x %= 2",
    "x <<= 3", "x >>= 1", "x &= 2", "x |= 12", "x ^= 1", "y /= 2", "y %= 4", "y >>= 1",
    "x = x++", "x += x++", "x = ++x + x++", "0 && (y = 99)", "1 || (y = 98)",
    "0 ? (y = 97) : 1", "1 ? (y = 97) : (z = 5)", "0 && 1/0", "1 || 1/0", "1 ? 2 : 1/0",
    "big + 1", "big * 2", "-big - 2", "h + 1", "o + 1", "sp + 1", "neg + 1", "b2", "one",
    "$x + ${y}", "$x*$x", "1 / 0", "5 % 0", "2 ** -1", "x /= 0", "1 +", "1 + )", "5 ++",
    "1 2", "(x) = 5", "5 = 5", "08", "12abc", "37#zZ", "65#1", "2#", "0x1G", "1 ? 2",
    "x ? : 3", "~", "()", "1 == 1 != 0", "3 - 2 - 1", "64 / 4 / 2", "2 * 3 % 4",
    "(1, 2) + 3", "z || x", "z && x", "y < x", "y <= y", "y >= x", "x > y", "x != y",
    "  \t 7 ", "-9223372036854775807 - 1", "-(-9223372036854775807 - 1)",
    "(-9223372036854775807 - 1) * -1", "3 ** 40", "(-3) ** 41", "7 ** 0", "0 ** 0",
    "x = 2, x **= 3", "1 <= 2 > 0", "((((((1))))))", "(x = 5) + $x", "x++ + $x",
    "${x} * (x = 10)", "y = $y + 1", "$x++", "++$x", "$x = 1",
]


def test_table_matches_bash():
    expected = bash_many(TABLE)
    got = [ours(e) for e in TABLE]
    mismatches = [(e, g, b) for e, g, b in zip(TABLE, got, expected) if g != b]
    assert not mismatches


# -- random expressions compared against bash ------------------------------------------------

BINOPS = ["+", "-", "*", "/", "%", "**", "<<", ">>", "<", "<=", ">", ">=", "==", "!=", "&",
          "^", "|", "&&", "||", ","]
ASSIGNOPS = ["=", "+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "^=", "|="]
ATOMS = ["0", "1", "2", "3", "7", "13", "100", "-1", "0x10", "017", "2#11", "36#z", "x", "y",
         "z", "big", "h", "o", "sp", "neg", "9223372036854775807", " $x", " ${y}"]


def gen_expr(r: random.Random, depth: int) -> str:
    if depth <= 0 or r.random() < 0.25:
        return r.choice(ATOMS)
    k = r.random()
    sp = r.choice(["", " "])
    if k < 0.45:
        op = r.choice(BINOPS)
        right = gen_expr(r, depth - 1)
        if op == "**":
            right = r.choice(["0", "1", "2", "3", "5", "x", "z", "63"])
        return f"{gen_expr(r, depth - 1)}{sp}{op}{sp}{right}"
    if k < 0.55:
        return f"{r.choice(['-', '+', '!', '~'])}{sp}({gen_expr(r, depth - 1)})"
    if k < 0.65:
        return f"({gen_expr(r, depth - 1)}){sp}?{sp}{gen_expr(r, depth - 1)}{sp}:{sp}" \
               f"({gen_expr(r, depth - 1)})"
    if k < 0.8:
        return f"({r.choice(['x', 'y', 'z'])}{sp}{r.choice(ASSIGNOPS)}{sp}" \
               f"{gen_expr(r, depth - 1)})"
    if k < 0.9:
        v = r.choice(["x", "y", "z"])
        return r.choice([f"{v}++", f"{v}--", f"++{v}", f"--{v}"])
    return f"({gen_expr(r, depth - 1)})"


def test_random_expressions_match_bash():
    r = random.Random(20240611)
    exprs = [gen_expr(r, 4) for _ in range(800)]
    expected = bash_many(exprs)
    got = [ours(e) for e in exprs]
    mismatches = [(e, g, b) for e, g, b in zip(exprs, got, expected) if g != b]
    assert not mismatches[:10]
    # make sure the corpus exercised both results and errors
    assert sum(1 for b in expected if b == "ERR") < len(exprs) // 4


# -- arrays ----------------------------------------------------------------------------------

def test_arrays_match_bash():
    cases = ["a[1]", "a[-1]", "a[1+1]", "a", "a[i++] + i", "a[2] = 5, a[2]", "a[i] += 4",
             "a[5] = 1, a[5]", "m[k1]", "m[ k1 ]", "m[two words]", "m[$key]", "m[k1] += 1",
             "m[new] = 3, m[new]", "a[a[0]/10]", "a[i]++ + a[i]", "++a[1]"]
    setup = ("a=(10 20 30); declare -A m; m[k1]=5; m[' k1 ']=7; m['two words']=9; key=k1; "
             "i=0")
    script = "\n".join(f"( {setup}; eval 'r=$(( {c} ))' && echo $r ) 2>/dev/null || echo ERR"
                       for c in cases)
    expected = run_bash(script)
    got = []
    for c in cases:
        env = FakeEnv({"key": "k1", "i": "0"}, arrays={"a": {"0": "10", "1": "20", "2": "30"}},
                      assoc={"m": {"k1": "5", " k1 ": "7", "two words": "9"}})
        got.append(str(evaluate(c, env)))
    assert got == expected


def test_array_assignment_side_effects():
    env = FakeEnv({"i": "1"}, arrays={"a": {}}, assoc={"m": {}})
    assert evaluate("a[i*2] = 7", env) == 7
    assert env.arrays["a"] == {"2": "7"}
    assert evaluate("m[i*2] = 8", env) == 8
    assert env.assoc["m"] == {"i*2": "8"}
    assert evaluate("a[i++] = i", env) == 2
    assert env.arrays["a"]["1"] == "2"
    with pytest.raises(ArithError, match=r"`a\[9\]` is unset"):
        evaluate("a[9]", env)
    assert evaluate("a[9]", env, nounset=False) == 0


def test_array_subscript_errors():
    env = FakeEnv(arrays={"a": {"0": "1"}}, assoc={"m": {"x y": "4"}})
    with pytest.raises(ArithError) as ei:
        evaluate("1 + a[2", env)
    assert ei.value.message == "missing `]`" and ei.value.offset == 5
    with pytest.raises(ArithError) as ei:
        evaluate("a[1 +]", env)
    assert ei.value.message == "expected an operand" and ei.value.offset == 5
    # an associative subscript is key text, so it need not be an expression
    assert evaluate("m[x y]", env) == 4
    with pytest.raises(ArithError, match="bad array subscript"):
        evaluate("a[]", env)


# -- strict rules (differ from bash on purpose) ----------------------------------------------

ERRORS = [
    ("s + 1", "`s` is not an integer: 'abc'", 0),
    ("1 + expr", "`expr` is not an integer: '1+2'", 4),
    ("e * 2", "`e` is empty, not an integer", 0),
    ("blank", "`blank` is empty, not an integer", 0),
    ("nope + 1", "`nope` is unset", 0),
    ("2 + $nope", "`nope` is unset", 4),
    ("u++", "`u` is unset", 0),
    ("u += 1", "`u` is unset", 0),
    ("7 / z", "division by zero", 2),
    ("7 % z", "division by zero", 2),
    ("x /= 0", "division by zero", 2),
    ("1 + )", "unexpected `)`", 4),
    ("1 +", "expected an operand", 3),
    ("(1 + 2", "missing `)`", 0),
    ("1 2", "unexpected `2`", 2),
    ("2 ** -1", "exponent less than 0", 2),
    ("5 = 1", "cannot assign to a non-variable with `=`", 2),
    ("08", "invalid number `08`: value too great for base", 0),
    ("1 + 65#1", "invalid number `65#1`: invalid arithmetic base", 4),
    ("2#", "invalid number `2#`: invalid integer constant", 0),
    ("1 ? 2", "expected `:` after `?` branch", 5),
    ("1 @ 2", "unexpected `@`", 2),
    ("$ + 1", "unexpected `$`", 0),
    ("octbad", "`octbad` is not an integer: '09'", 0),
    ("sp2", "`sp2` is not an integer: '- 5'", 0),
]


@pytest.mark.parametrize("expr,message,offset", ERRORS)
def test_strict_errors(expr, message, offset):
    env = FakeEnv({"s": "abc", "expr": "1+2", "e": "", "blank": "  ", "z": "0", "x": "1",
                   "octbad": "09", "sp2": "- 5"})
    with pytest.raises(ArithError) as ei:
        evaluate(expr, env)
    assert ei.value.message == message
    assert ei.value.offset == offset
    assert str(ei.value) == message


def test_nounset_off_treats_unset_as_zero():
    env = FakeEnv()
    assert evaluate("nope + 1", env, nounset=False) == 1
    assert evaluate("u++", env, nounset=False) == 0
    assert env.vars["u"] == "1"
    assert evaluate("w += 5", env, nounset=False) == 5
    # empty and non-integer stay errors
    env.vars["e"] = ""
    with pytest.raises(ArithError):
        evaluate("e", env, nounset=False)


def test_short_circuit_skips_side_effects_and_errors():
    env = FakeEnv({"x": "1", "s": "abc"})
    assert evaluate("0 && (x = 5)", env) == 0
    assert evaluate("1 || x++", env) == 1
    assert evaluate("1 ? 2 : x--", env) == 2
    assert evaluate("0 ? x-- : 3", env) == 3
    assert env.vars["x"] == "1"
    assert evaluate("0 && nope", env) == 0
    assert evaluate("1 || s", env) == 1
    assert evaluate("0 && 1 / 0", env) == 0
    assert evaluate("1 && (x = 4)", env) == 1
    assert env.vars["x"] == "4"


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_blank_is_zero(text):
    assert evaluate(text, FakeEnv()) == 0


def test_values_written_as_decimal_strings():
    env = FakeEnv({"x": "0x10"})
    assert evaluate("x += 1", env) == 17
    assert env.vars["x"] == "17"
    assert evaluate("x = -9223372036854775807 - 2", env) == 9223372036854775807
    assert env.vars["x"] == "9223372036854775807"


@pytest.mark.parametrize("value,expected", [
    ("12", 12), (" 12 ", 12), ("-3", -3), ("+3", 3), ("0x1F", 31), ("-0x10", -16),
    ("017", 15), ("0", 0), ("2#101", 5), ("\t7\n", 7), ("abc", None), ("", None), ("1.5", None),
    ("1 2", None), ("- 5", None), ("08", None), ("1e3", None), ("--1", None),
    ("9223372036854775808", -9223372036854775808),
])
def test_parse_integer(value, expected):
    assert parse_integer(value) == expected


def test_deep_nesting_is_an_error_not_a_crash():
    with pytest.raises(ArithError, match="too deeply nested"):
        evaluate("(" * 5000 + "1" + ")" * 5000, FakeEnv())
    with pytest.raises(ArithError, match="too deeply nested"):
        evaluate("+".join(["1"] * 50000), FakeEnv())
    assert evaluate("+".join(["1"] * 300), FakeEnv()) == 300


def test_parse_is_cached():
    assert compile_expr("x + 1") is compile_expr("x + 1")


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1),
       st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1),
       st.sampled_from(["+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>", "<", "==", ">="]))
def test_binary_ops_wrap_like_c(a, b, op):
    env = FakeEnv({"a": str(a), "b": str(b)})
    try:
        got = evaluate(f"a {op} b", env)
    except ArithError as e:
        assert op in "/%" and b == 0 and e.message == "division by zero"
        return
    assert -(2 ** 63) <= got < 2 ** 63
    if op in "+-*":
        exact = {"+": a + b, "-": a - b, "*": a * b}[op]
        assert (got - exact) % (2 ** 64) == 0
    if op == "/":
        q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
        assert (got - q) % (2 ** 64) == 0
        rem = evaluate("a % b", env)
        assert (got * b + rem - a) % (2 ** 64) == 0
        assert abs(rem) < abs(b) and (rem == 0 or (rem < 0) == (a < 0))
