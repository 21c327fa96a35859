"""`fm check` on thousands of random and mutated scripts: a clean exit or a located syntax
error (exit 2, file:line:col and a caret), never a traceback."""
from __future__ import annotations

import re
import subprocess
import sys

from hypothesis import given
from lang.test_fuzz import fast, fragment_scripts, mutated

from flowmetal.cli import run_cli

DIAG = re.compile(r"^fm: bad\.fm:\d+:\d+: error: .+\n {0,5}\d+ \| .*\n +\| +\^~*\n", re.M)


def _check(tmp_path_factory, text, capsys):
    path = tmp_path_factory.mktemp("chk") / "bad.fm"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    status = run_cli(["check", str(path)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and out == ""
    if status == 0:
        assert err == ""
    else:
        assert status == 2, err
        assert DIAG.match(err.replace(str(path.parent) + "/", "")), err


@fast(1500)
@given(text=fragment_scripts)
def test_check_random_scripts(tmp_path_factory, capsys, text):
    _check(tmp_path_factory, text, capsys)


@fast(1500)
@given(text=mutated())
def test_check_mutated_scripts(tmp_path_factory, capsys, text):
    _check(tmp_path_factory, text, capsys)


def test_check_in_a_real_process(tmp_path):
    bad = tmp_path / "bad.fm"
    bad.write_text("echo ok\nif true; then\n  echo x\nfi fi\n")
    r = subprocess.run([sys.executable, "-m", "flowmetal", "check", "bad.fm"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and r.stdout == ""
    assert DIAG.match(r.stderr), r.stderr
