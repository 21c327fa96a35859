"""Tests for flowmetal.machine.testexpr: the test / [ builtin, compared with bash's."""
from __future__ import annotations

import os
import random
import shlex
import stat
import subprocess

import pytest

from flowmetal.machine.testexpr import TestError, evaluate, strip_bracket

BASH = "/bin/bash"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    d = tmp_path_factory.mktemp("testexpr")
    (d / "f").write_text("data")
    (d / "e").write_text("")
    (d / "d").mkdir()
    (d / "x").write_text("#!/bin/sh\n")
    os.chmod(d / "x", 0o755)
    os.symlink("f", d / "l")
    os.symlink("missing", d / "dangling")
    os.link(d / "f", d / "hard")
    os.utime(d / "e", (1_000_000_000, 1_000_000_000))
    os.utime(d / "f", (1_500_000_000, 1_500_000_000))
    return d


def make_file_test(root, variables=frozenset({"x", "HOME"})):
    def file_test(op, path, path2):
        p = os.path.join(root, path) if path else path
        if op == "-v":
            return path in variables
        if op in ("-o", "-R", "-t"):
            return False
        if op in ("-nt", "-ot", "-ef"):
            q = os.path.join(root, path2) if path2 else path2
            try:
                s1 = os.stat(p)
            except (OSError, TypeError):
                s1 = None
            try:
                s2 = os.stat(q)
            except (OSError, TypeError):
                s2 = None
            if op == "-nt":
                return s1 is not None and (s2 is None or s1.st_mtime > s2.st_mtime)
            if op == "-ot":
                return s2 is not None and (s1 is None or s1.st_mtime < s2.st_mtime)
            return s1 is not None and s2 is not None and \
                (s1.st_dev, s1.st_ino) == (s2.st_dev, s2.st_ino)
        if op in ("-h", "-L"):
            return bool(path) and os.path.islink(p)
        if not path:
            return False
        try:
            st = os.stat(p)
        except OSError:
            return False
        mode = st.st_mode
        return {
            "-e": True, "-f": stat.S_ISREG(mode), "-d": stat.S_ISDIR(mode),
            "-s": st.st_size > 0, "-r": os.access(p, os.R_OK), "-w": os.access(p, os.W_OK),
            "-x": os.access(p, os.X_OK), "-p": stat.S_ISFIFO(mode), "-S": stat.S_ISSOCK(mode),
            "-b": stat.S_ISBLK(mode), "-c": stat.S_ISCHR(mode), "-g": bool(mode & stat.S_ISGID),
            "-u": bool(mode & stat.S_ISUID), "-k": bool(mode & stat.S_ISVTX),
            "-O": st.st_uid == os.geteuid(), "-G": st.st_gid == os.getegid(),
            "-N": st.st_mtime > st.st_atime,
        }[op]
    return file_test


def ours(args, root) -> int:
    try:
        return evaluate(args, make_file_test(root))
    except TestError:
        return 2


def bash_statuses(cases, root) -> list[int]:
    lines = [f"cd {shlex.quote(str(root))}", "x=1"]
    for args in cases:
        lines.append("test " + " ".join(shlex.quote(a) for a in args) + " 2>/dev/null; echo $?")
    out = subprocess.run([BASH], input="\n".join(lines), capture_output=True, text=True,
                         timeout=60).stdout.split()
    assert len(out) == len(cases)
    return [int(s) for s in out]


TABLE = [
    [], [""], ["a"], ["-f"], ["!"], ["!", "a"], ["!", ""], ["-q", "a"], ["a", "b"], ["-z", ""],
    ["x", "-a", ""], ["x", "-o", ""], ["(", "x", ")"], ["(", "", ")"], ["!", "a", "=", "b"],
    ["(", "-n", "x", ")"], ["a", "b", "c"], ["1", "-eq", "x"], [" 1 ", "-eq", "1"],
    ["010", "-eq", "10"], ["0x1", "-eq", "1"], ["99999999999999999999", "-gt", "1"],
    ["", "-eq", "0"], ["a", "-a", "b", "-o", "c"], ["(", "a"], ["(", "a", "b"], ["a", "-a"],
    ["-n"], ["-n", "a", "b", "c", "d"], ["a", "=", "b", "c", "d", "e"], ["!", "!", "a"],
    ["!", "!", ""], ["(", "a", ")", "-a", "(", "", ")"], ["-f", "f", "-a", "-d", "d"],
    ["a", "<", "b"], ["b", "<", "a"], ["a", ">", "b"], ["-t"], ["x", "="], ["=", "=", "="],
    ["!", "=", "!"], ["-a", "-a", "-a"], ["-o", "-o", "-o"], ["(", ")"],
    ["!", "(", "a", "=", "a", ")"], ["-v", "HOME"], ["-v", "x"], ["-v", "nope"],
    ["-n", "a", "-a", "-z", "", "-a", "-n", "b", "x"], ["1", "-eq", "1", "-a"],
    ["(", "a", "-a", "b"], ["a", ")"], ["a", "-eq"], ["-e"], ["x", "-nt", "y"], ["-l", "x"],
    ["+1", "-eq", "1"], ["-1", "-lt", "0"], ["1 ", "-eq", "1"], ["1x", "-eq", "1"], ["-"],
    ["--"], ["(", "(", "a", ")", ")"], ["!", "-z", "a", "-a", "-n", "b"],
    ["-f", "f"], ["-f", "d"], ["-d", "d"], ["-e", "nope"], ["-s", "f"], ["-s", "e"],
    ["-x", "x"], ["-x", "f"], ["-L", "l"], ["-h", "l"], ["-L", "f"], ["-h", "dangling"],
    ["-e", "dangling"], ["-a", "f"], ["-a", "nope"], ["-r", "f"], ["-w", "f"], ["-O", "f"],
    ["-G", "f"], ["-p", "f"], ["-S", "f"], ["-b", "f"], ["-c", "f"], ["-g", "f"], ["-u", "f"],
    ["-k", "f"], ["f", "-nt", "e"], ["e", "-nt", "f"], ["f", "-ot", "e"], ["e", "-ot", "f"],
    ["f", "-nt", "nope"], ["nope", "-ot", "f"], ["f", "-ef", "hard"], ["f", "-ef", "e"],
    ["l", "-ef", "f"], ["-t", "abc"], ["-t", "7"], ["2", "-ge", "2"], ["2", "-le", "1"],
    ["2", "-ne", "3"], ["-2", "-gt", "-3"], ["a", "==", "a"], ["a", "!=", "a"],
    ["!", "-f", "d", "-o", "-f", "f"], ["-f", "f", "-o", "1", "-eq", "x"],
    ["(", "-f", "f", ")", "-a", "!", "(", "-d", "f", ")"], ["a", "-o", "b", "-a", ""],
    ["", "-o", "b", "-a", ""], ["!", "", "-a", "a"], ["a", "-gt"], ["-o", "a"], ["-R", "a"],
    ["a", "-a", "(", "b"], ["a", "-a", "b", ")"], ["-z", "-z", "-z"], ["-n", "-n"],
    ["!", "!", "!", "a", "=", "a"], ["(", "!", ")"], ["!", "(", ")"], ["a", "=", "b", "-o"],
    ["9223372036854775807", "-gt", "-9223372036854775808"], ["9223372036854775808", "-gt", "1"],
]


def test_table_matches_bash(sandbox):
    expected = bash_statuses(TABLE, sandbox)
    got = [ours(a, sandbox) for a in TABLE]
    mismatches = [(a, g, e) for a, g, e in zip(TABLE, got, expected) if g != e]
    assert not mismatches


TOKENS = ["!", "(", ")", "-a", "-o", "-n", "-z", "-f", "-d", "-e", "-L", "=", "!=", "<", ">",
          "-eq", "-lt", "-ge", "-nt", "-ef", "a", "", "1", "2", "-3", "f", "d", "l", "nope",
          "x", "-v", "e"]


def test_random_argument_lists_match_bash(sandbox):
    r = random.Random(99)
    cases = [[r.choice(TOKENS) for _ in range(r.randint(0, 8))] for _ in range(1500)]
    expected = bash_statuses(cases, sandbox)
    got = [ours(a, sandbox) for a in cases]
    mismatches = [(a, g, e) for a, g, e in zip(cases, got, expected) if g != e]
    assert not mismatches[:10]


def never(op, path, path2):
    raise AssertionError("file_test should not be called")


@pytest.mark.parametrize("args,message", [
    (["1", "-eq", "abc"], "test: `-eq`: integer expression expected: abc"),
    (["x", "-lt", "2"], "test: `-lt`: integer expression expected: x"),
    (["a", "b"], "test: `a`: unary operator expected"),
    (["a", "b", "c"], "test: `b`: binary operator expected"),
    (["a", "=", "b", "c", "d"], "test: too many arguments"),
    (["a", "=", "b", "-x", "d"], "test: syntax error: `-x` unexpected"),
    (["1", "=", "1", "-a"], "test: argument expected"),
    (["(", "a", "-a", "b"], "test: `)` expected"),
    (["(", "a", "=", "a", "b", "c"], "test: `)` expected, found `b`"),
])
def test_error_messages(args, message):
    with pytest.raises(TestError) as ei:
        evaluate(args, never)
    assert ei.value.message == message == str(ei.value)


def test_name_prefix():
    with pytest.raises(TestError, match=r"^\[: `a`: unary operator expected$"):
        evaluate(["a", "b"], never, name="[")


def test_strip_bracket():
    assert strip_bracket(["-n", "x", "]"]) == ["-n", "x"]
    assert strip_bracket(["]"]) == []
    for bad in ([], ["-n", "x"], ["]", "x"]):
        with pytest.raises(TestError) as ei:
            strip_bracket(bad)
        assert ei.value.message == "[: missing `]`"


def test_delegation():
    calls = []

    def ft(op, path, path2):
        calls.append((op, path, path2))
        return path == "yes"

    assert evaluate(["-f", "yes"], ft) == 0
    assert evaluate(["-v", "no"], ft) == 1
    assert evaluate(["-a", "yes"], ft) == 0            # -a FILE is -e FILE
    assert evaluate(["yes", "-nt", "other"], ft) == 0
    assert evaluate(["-t", "1"], ft) == 1
    assert evaluate(["-t", "x"], ft) == 1              # not a number: false, no call
    assert calls == [("-f", "yes", None), ("-v", "no", None), ("-e", "yes", None),
                     ("-nt", "yes", "other"), ("-t", "1", None)]


def test_string_ops_do_not_touch_files():
    assert evaluate(["abc", "=", "abc"], never) == 0
    assert evaluate(["abc", "<", "abd"], never) == 0
    assert evaluate(["-z", ""], never) == 0
    assert evaluate(["-n", ""], never) == 1
    assert evaluate(["10", "-gt", "9"], never) == 0
    assert evaluate(["10", ">", "9"], never) == 1      # string comparison
