"""`[[ ... ]]` evaluation; file tests are effects (memoised by the caller)."""
from __future__ import annotations

import re

from flowmetal.lang import ast as A
from flowmetal.machine import pattern
from flowmetal.machine.errors import ShellError
from flowmetal.machine.expand import Expander

_FILE_TESTS = {"-e", "-a", "-f", "-d", "-r", "-w", "-x", "-s", "-L", "-h", "-p", "-S", "-b",
               "-c", "-g", "-u", "-k", "-O", "-G", "-N", "-t"}
_INT_OPS = {"-eq": lambda a, b: a == b, "-ne": lambda a, b: a != b, "-lt": lambda a, b: a < b,
            "-le": lambda a, b: a <= b, "-gt": lambda a, b: a > b, "-ge": lambda a, b: a >= b}


def file_test(vm, f, op: str, path: str, path2=None) -> bool:
    """Shared by [[ ]] and test/[: variables and options are pure, files are effects."""
    if op == "-v":
        if path.endswith("]") and "[" in path:
            name, key = path[:-1].split("[", 1)
            return vm.get_item(name, key) is not None
        return vm.cell(path) is not None and (vm.get(path) is not None or
                                              bool(vm.array_values(path)))
    if op == "-o":
        return bool(vm.br["opts"].get({"errexit": "e", "nounset": "u", "xtrace": "x",
                                          "noglob": "f"}
                                         .get(path, path)))
    if op == "-a":
        op = "-e"
    req = {"op": "test", "test": op, "path": path, "cwd": vm.br["cwd"]}
    if path2 is not None:
        req["path2"] = path2
    return bool(vm.effect(f, req).get("result"))


def evaluate_cond(vm, code, f, expr) -> bool:
    ex = Expander(vm, code, f)

    def ev(e) -> bool:
        t = type(e)
        if t is A.CondAnd:
            return ev(e.left) and ev(e.right)
        if t is A.CondOr:
            return ev(e.left) or ev(e.right)
        if t is A.CondNot:
            return not ev(e.expr)
        if t is A.CondWord:
            return ex.string(e.word) != ""
        if t is A.CondUnary:
            v = ex.string(e.operand)
            if e.op == "-z":
                return v == ""
            if e.op == "-n":
                return v != ""
            if e.op in _FILE_TESTS or e.op in ("-v", "-o"):
                return file_test(vm, f, e.op, v)
            raise ShellError(2, f"unknown test operator `{e.op}`", e.span)
        if t is A.CondBinary:
            op = e.op
            left = ex.string(e.left)
            if op in ("==", "=", "!="):
                m = pattern.match(ex.pattern_segments(e.right), left)
                return m if op != "!=" else not m
            if op == "=~":
                segs = ex.pattern_segments(e.right)
                rx = "".join(re.escape(s) if q else s for s, q in segs)
                try:
                    m = re.search(rx, left)
                except re.error as err:
                    raise ShellError(2, f"bad regular expression `{rx}`: {err}",
                                     e.right.span) from None
                if m:
                    vm.set_array("BASH_REMATCH", [m.group(0)] + [g or "" for g in m.groups()])
                else:
                    vm.set_array("BASH_REMATCH", [])
                return m is not None
            right = ex.string(e.right)
            if op == "<":
                return left < right
            if op == ">":
                return left > right
            if op in _INT_OPS:
                a = vm.arith(A.ArithText(left, e.left.span))
                b = vm.arith(A.ArithText(right, e.right.span))
                return _INT_OPS[op](a, b)
            if op in ("-nt", "-ot", "-ef"):
                return file_test(vm, f, op, left, right)
            raise ShellError(2, f"unknown test operator `{op}`", e.span)
        raise ShellError(2, "bad conditional expression", getattr(e, "span", None))

    return ev(expr)
