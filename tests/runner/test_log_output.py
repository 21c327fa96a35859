"""`fm log` shows each step's output under it (clipped, `--full`, `--no-output`), with real
jobs run by the real `fm`."""
from __future__ import annotations

import re

from runner.helpers import home, only_job, real_fm, work  # noqa: F401

SCRIPT = """\
echo hello
seq 1 25
x=$(printf 'one\\ntwo\\n' | cat)
ls /nonexistent-fm-log-test || true
echo done
"""

_TIME = r"\d\d:\d\d:\d\d\.\d\d\d"


def _job(work, home):
    (work / "steps.fm").write_text(SCRIPT)
    p = real_fm("steps.fm", cwd=work, home=home)
    assert p.returncode == 0, p.stderr
    return only_job(home)[0]


def _under(lines: list, pattern: str) -> list:
    """The output lines under the history line that matches `pattern`."""
    k = next(i for i, ln in enumerate(lines) if re.search(pattern, ln))
    out = []
    for ln in lines[k + 1:]:
        if re.match(_TIME, ln):
            break
        out.append(ln.strip())
    return out


def test_each_step_shows_its_output_clipped(work, home):
    job = _job(work, home)
    p = real_fm("log", job, cwd=work, home=home)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert _under(lines, r"write  stdout 6 bytes") == ["out| hello"]
    seq = _under(lines, r"exec  seq 1 25")
    assert seq == [f"out| {n}" for n in range(1, 11)] + ["out| ... 15 more lines (--full shows all)"]
    assert _under(lines, r"exec  cat") == ["cap| one", "cap| two"]
    ls = _under(lines, r"exec  ls /nonexistent-fm-log-test")
    assert len(ls) == 1 and ls[0].startswith("err| ls: ") and "nonexistent-fm-log-test" in ls[0]
    for ln in lines:
        if not re.match(_TIME, ln):
            assert ln.startswith(" " * 23) and ln[23:27] in ("out|", "err|", "cap|"), ln


def test_full_shows_everything_and_no_output_hides_it(work, home):
    job = _job(work, home)
    full = real_fm("log", "--full", job, cwd=work, home=home).stdout.splitlines()
    assert _under(full, r"exec  seq 1 25") == [f"out| {n}" for n in range(1, 26)]
    bare = real_fm("log", "--no-output", job, cwd=work, home=home)
    assert bare.returncode == 0
    assert all(re.match(_TIME, ln) for ln in bare.stdout.splitlines()), bare.stdout
    assert [ln for ln in full if re.match(_TIME, ln)] == bare.stdout.splitlines()
    p = real_fm("log", "--no-output", "--full", job, cwd=work, home=home)
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    p = real_fm("log", "--output", "--no-output", job, cwd=work, home=home)
    assert p.returncode == 2 and p.stderr.count("\n") == 1
