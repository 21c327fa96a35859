"""Hostile inputs (issue 17 item 5): grammar-made and mutated scripts with deep nesting, NUL
bytes, invalid UTF-8, huge numbers and array indexes, slow regexes and glob patterns, bad
builtin arguments. Each one goes through `fm check` and a run in the machine (in-process, with
the fake world of tests/machine/test_machine_fuzz.py), each within a time bound; a sample also
runs as real `fm` processes. None may end in an internal error, a traceback or a hang.

Quick mode in the suite; FM_FUZZ_FULL=1 runs ten times as many inputs (figures:
docs/reliability.md, "Hostile inputs")."""
from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lang.test_fuzz import FRAGMENTS, SEEDS, fast
from lang.test_nesting import FORMS
from machine.test_machine_fuzz import run as machine_run

from flowmetal.cli import run_cli
from flowmetal.lang.limits import MAX_NESTING

FULL = os.environ.get("FM_FUZZ_FULL") == "1"
SCALE = 10 if FULL else 1
BOUND = 20      # seconds one input may take in the machine (each takes well under one)
OUTCOMES: collections.Counter = collections.Counter()

HOSTILE = [
    "a[9000000000000000000]=1; echo ${#a[@]}\n", "a[-9223372036854775808]=1\n",
    "echo $((9223372036854775807 + 1)) $((-9223372036854775808 / -1))\n",
    "echo $((1 << 64)) $((2 ** 63)) $((10 % 0))\n", "a=(x); echo ${a[99999999999999999999]}\n",
    "echo ${x:99999999999999999999} ${x: -99999999999999999999:5}\n",
    "printf '%*d' 99999999999999999999 1\n", "printf '%.99999999999999999999s' a\n",
    "x=\x00y; echo \"$x\"\n", "echo $'\\x00' $'\\u0000' $'\\udc80' \xff\xfe\n",
    "[[ $(printf 'a%.0s' {1..18})b =~ (a+)+$ ]] && echo m\n",
    "[[ aaaaaaaaaaaaaaaaaab == *(a|a)*(a|a)*(a|a)*(a|a)c ]] && echo m\n",
    "case aaaaaaaaaaaaaaaaaaaaaaab in *a*a*a*a*a*a*a*a*c) echo m;; esac\n",
    "x=aaaaaaaaaaaaaaaaaaaaaaaaaaaa; echo ${x//*(a)*(a)b/z}\n",
    "[[ x =~ ( ]]; [[ x =~ [[:nope:]] ]]; [[ x =~ \\ ]]\n", "echo {1..99999999999}\n",
    "echo {a..z..-99999999999999999999}\n", "shift 99999999999999999999\n",
    "exit 99999999999999999999\n", "return -- -1\n", "read -n 99999999999999999999 x <<< a\n",
    "read -t -1 x <<< a; read -d '' x <<< a; read -u 99 x\n", "mapfile -n -1 a <<< x\n",
    "declare -i n=1+; local x; export -n; declare -Q\n", "set -o nosuch; shopt -s nosuch\n",
    "printf %d xyz; printf '%q' $'\\xff'; printf '%b' '\\c'\n", "ulimit; times; umask 99\n",
    "trap 'echo t' NOSUCH; getopts; getopts :a: o -a\n", "cd ''; pushd; popd; dirs -9\n",
    "timeout 0 true; timeout -1 true; retry --attempts 0 true; sleep -1\n",
    "f() { f; }; f\n", "eval \"$(printf 'eval %.0s' {1..50})true\"\n", "unset -v 'a[x'\n",
    "declare -A m; m[$'\\xff']=1; echo ${!m[@]}\n", "echo \"${@:99999999999999999999}\"\n",
]


def nested(draw) -> str:
    form = draw(st.sampled_from(sorted(FORMS)))
    depth = draw(st.sampled_from([1, 50, MAX_NESTING - 1, MAX_NESTING, MAX_NESTING + 1,
                                  3 * MAX_NESTING]))
    return FORMS[form](depth) + "\n"


@st.composite
def hostile(draw) -> bytes:
    """A script as bytes (it may not be UTF-8)."""
    kind = draw(st.sampled_from(["nested", "pieces", "mutated", "bytes"]))
    if kind == "nested":
        text = nested(draw)
    elif kind == "pieces":
        text = "".join(draw(st.lists(st.sampled_from(HOSTILE + SEEDS), min_size=1,
                                     max_size=4)))
    else:
        text = draw(st.sampled_from(HOSTILE + SEEDS))
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(text)))
            j = draw(st.integers(i, min(len(text), i + 8)))
            ins = draw(st.sampled_from(FRAGMENTS + HOSTILE + ["\x00", "\udcff", "(" * 40]))
            text = text[:i] + ins + text[j:] if draw(st.booleans()) else text[:i] + text[j:]
    data = text.encode("utf-8", "surrogateescape")
    if kind == "bytes":
        i = draw(st.integers(0, len(data)))
        data = data[:i] + draw(st.binary(min_size=1, max_size=6)) + data[i:]
    return data


class Hang(BaseException):
    """An input took longer than BOUND seconds."""


def _bounded(fn, *args):
    def fire(signum, frame):
        raise Hang(f"more than {BOUND} s")
    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, BOUND)
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _check_and_run(tmp_path_factory, capsys, data: bytes):
    path = tmp_path_factory.mktemp("hostile") / "h.fm"
    path.write_bytes(data)
    status = _bounded(run_cli, ["check", str(path)])
    out, err = capsys.readouterr()
    assert status in (0, 2), (status, err)
    assert "Traceback" not in err and "internal" not in err, err
    OUTCOMES["inputs"] += 1
    if status == 0:
        _bounded(machine_run, data.decode("utf-8", "surrogateescape"))
        OUTCOMES["accepted by fm check, ran in the machine to a done record"] += 1
    else:
        OUTCOMES["refused by fm check with a located error"] += 1


@fast(300 * SCALE)
@given(data=hostile())
def test_hostile_inputs_check_and_run(tmp_path_factory, capsys, data):
    _check_and_run(tmp_path_factory, capsys, data)


def test_each_hostile_piece(tmp_path_factory, capsys):
    for text in HOSTILE:
        _check_and_run(tmp_path_factory, capsys, text.encode("utf-8", "surrogateescape"))


SAMPLE = [b"a[9000000000000000000]=1; echo ${#a[@]}\n", b"echo \xff\xfe $'\\x00'x\n",
          FORMS["if"](MAX_NESTING + 1).encode(), FORMS["param"](MAX_NESTING - 1).encode(),
          b"printf '%*d' 99999999999999999999 1; echo $((1 << 64))\n",
          b"[[ aaaaaaaaaaaaaaaaaab == *(a|a)*(a|a)*(a|a)c ]] || echo no\n"]


@pytest.mark.parametrize("data", SAMPLE + ([h.encode("utf-8", "surrogateescape")
                                            for h in HOSTILE] if FULL else []))
def test_hostile_inputs_in_real_processes(tmp_path, data):
    script = tmp_path / "h.fm"
    script.write_bytes(data)
    env = {"FM_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    for args in (["check", str(script)], [str(script)]):
        r = subprocess.run([sys.executable, "-m", "flowmetal", *args], env=env, cwd=tmp_path,
                           capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        err = r.stderr.decode("utf-8", "replace")
        assert r.returncode != 70 and "internal error" not in err, err
        assert "Traceback" not in err, err



def test_report_outcomes(capsys):
    """The fuzz reached both kinds of input (scripts fm runs and scripts it refuses); with
    FM_FUZZ_FULL=1 (and pytest -s) it prints the figures for docs/reliability.md."""
    if OUTCOMES["inputs"]:
        assert len(OUTCOMES) == 3, OUTCOMES
    if FULL:
        with capsys.disabled():
            print("\nhostile inputs:", dict(OUTCOMES))
