"""`fm help BUILTIN`: every builtin the machine registers (and the keywords users meet) has a
synopsis, a description and an example, all from lang/support.py's table; docs/language.md's
builtin reference is made from the same table."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flowmetal import cli
from flowmetal.lang import parse
from flowmetal.lang.support import HELP, HELP_ALIASES, UNSUPPORTED, reference_markdown
from flowmetal.machine import vm  # noqa: F401  (imports every builtin module: they register)
from flowmetal.machine.builtins import BUILTINS, KEYWORDS

ROOT = Path(__file__).resolve().parents[2]

SPECIAL = {"once"}
"""Builtins the machine runs itself rather than through BUILTINS (machine/command.py)."""

USER_KEYWORDS = {"if", "for", "while", "until", "case", "function", "try", "catch", "finally",
                 "[[", "(("}


def _help(name: str, capsys) -> str:
    assert cli.run_cli(["help", name]) == 0, name
    out, err = capsys.readouterr()
    assert err == "", (name, err)
    return out


@pytest.mark.parametrize("name", sorted(set(BUILTINS) | SPECIAL | USER_KEYWORDS))
def test_every_builtin_and_keyword_has_help(name, capsys):
    text = _help(name, capsys)
    lines = text.split("\n")
    assert lines[0].startswith("usage: "), text
    synopsis = [ln[7:] for ln in lines if ln.startswith(("usage: ", "       "))]
    shown = {re.split(r"[ (]", form, maxsplit=1)[0] for form in synopsis}
    assert name in shown or HELP_ALIASES.get(name) in shown or name in " ".join(synopsis), text
    description = lines[len(synopsis) + 1:lines.index("example:")]
    assert len(" ".join(description)) > 30, text
    example = lines[lines.index("example:") + 1].strip()
    assert example, text
    parse(example, "example")          # the example is valid fm: `fm check` accepts it


def test_the_table_names_only_what_exists():
    known = set(BUILTINS) | SPECIAL | KEYWORDS | {"(("}
    assert set(HELP) <= known, set(HELP) - known
    assert set(HELP_ALIASES) <= known and set(HELP_ALIASES.values()) <= set(HELP)
    assert not set(UNSUPPORTED) & set(BUILTINS)


def test_a_bash_builtin_fm_lacks_says_what_to_do(capsys):
    assert _help("alias", capsys) == "`alias` is not supported in fm: define a function instead\n"


def _fm(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "flowmetal", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_help_in_a_real_process():
    p = _fm("help", "retry")
    assert p.returncode == 0 and p.stderr == ""
    assert p.stdout.startswith("usage: retry [-n N|--attempts N]")
    assert "example:\n  retry -n 3" in p.stdout
    p = _fm("help", "nosuch")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == ("fm: help: no command, builtin or keyword `nosuch` (`fm help` lists the "
                        "commands)\n")
    p = _fm("help", "run")                  # a CLI command still wins
    assert p.returncode == 0 and p.stdout.startswith("usage: fm run")
    p = _fm("help")
    assert p.returncode == 0 and "`fm help BUILTIN`" in p.stdout and "    resume  " in p.stdout


def test_docs_builtin_reference_is_the_table():
    docs = (ROOT / "docs" / "language.md").read_text()
    begin = "<!-- builtin reference: made by reference_markdown() in flowmetal/lang/support.py -->"
    end = "<!-- end of the builtin reference -->"
    assert begin in docs and end in docs
    shown = docs.split(begin, 1)[1].split(end, 1)[0].strip()
    assert shown == reference_markdown(), (
        "docs/language.md's builtin reference differs from the table: regenerate it with "
        "python -c 'from flowmetal.lang.support import reference_markdown as r; print(r())'")
