"""The language conformance corpus: run every case of tests/spec/*.test.fm under fm and bash.

`test_fm` runs a case under `python -m flowmetal t.fm` and checks stdout, status and stderr.
`test_bash_agrees` runs the bash-compatible cases (no fm-only / bash-skip) under /bin/bash and
checks stdout and status, so the corpus itself stays honest: what it claims is bash behaviour is
bash behaviour. Select one side with `-k test_fm` / `-k bash`, one file with `-k words.test.fm`
(no case name contains "bash", so `-k bash` selects exactly the bash runs).

Each case runs as its own process in a fresh directory <tmp>/work holding only t.fm (so globs
see nothing else), with HOME=<tmp>, FM_HOME=<tmp>/home, LC_ALL=C.UTF-8, the PATH pytest was
started with, stdin from /dev/null and a 20 s timeout.

Environment knobs:
  FM_SPEC_CMD   the fm command line instead of `python -m flowmetal`, e.g. `bin/fm`, or
                `/bin/bash` to see what the fm-side failure reports look like.
  FM_SPEC_JOBS  how many fm cases run at once (default: the CPU count). The selected fm cases
                are all run up front by a thread pool, then each test checks its own result;
                FM_SPEC_JOBS=1 runs each case inside its own test instead, as does every
                pytest-xdist worker (./bin/test runs two): the workers share the load.

Collection never imports the interpreter: fm runs in a child process, so a missing or broken
`flowmetal.cli` shows up as failing cases with a clear message, not as a collection error.
"""
from __future__ import annotations

import difflib
import importlib.util
import os
import shlex
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spec_format import SpecCase, SpecFormatError, load_dir, parse_text  # noqa: E402

SPEC_DIR = Path(__file__).resolve().parent / "spec"
REPO = Path(__file__).resolve().parent.parent
BASH = "/bin/bash"
TIMEOUT = 20
SCRIPT = "t.fm"

CASES, FORMAT_ERRORS = load_dir(SPEC_DIR)
BASH_CASES = [c for c in CASES if c.runs_in_bash]
# Captured once at import so every case sees the same PATH, whatever a test does to os.environ.
PATH = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")


def _env(tmp: Path) -> dict[str, str]:
    return {
        "PATH": PATH,
        "HOME": str(tmp),
        "FM_HOME": str(tmp / "home"),
        "LC_ALL": "C.UTF-8",
    }


@dataclass(frozen=True)
class Outcome:
    status: int | None       # None when the run timed out
    stdout: str
    stderr: str


def _execute(argv: list[str], case: SpecCase, tmp: Path, extra_env: dict | None = None) -> Outcome:
    """Run one case; never raises for the script's behaviour (safe to call from a thread)."""
    work = tmp / "work"
    work.mkdir()
    (work / SCRIPT).write_text(case.body, encoding="utf-8")
    env = _env(tmp)
    env.update(extra_env or {})
    try:
        # A session of its own, so a timeout can kill the script's children along with it.
        proc = subprocess.Popen(argv + [SCRIPT], cwd=work, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
    except OSError as e:
        return Outcome(None, "", f"cannot run {argv!r}: {e}")
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            stdout, stderr = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:   # a grandchild outside the group holds the pipes
            proc.kill()
            stdout, stderr = b"", b""
        return Outcome(None, _text(stdout), _text(stderr))
    return Outcome(proc.returncode, _text(stdout), _text(stderr))


def _text(b) -> str:
    if b is None:
        return ""
    return b.decode("utf-8", "backslashreplace") if isinstance(b, bytes) else b


def _clip(text: str, limit: int = 4000) -> str:
    """Keep failure reports readable when a runaway script prints megabytes."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... [{len(text) - limit} more characters not shown]\n"


def _where(case: SpecCase) -> str:
    return f"tests/spec/{case.file}:{case.line}: {case.name}"


def _numbered(body: str) -> str:
    lines = body.rstrip("\n").split("\n")
    return "--- t.fm:\n" + "\n".join(f"{i:>4} | {l}" for i, l in enumerate(lines, 1))


def _diff(label: str, expected: str, actual: str) -> str:
    d = difflib.unified_diff(expected.splitlines(keepends=True), actual.splitlines(keepends=True),
                             fromfile=f"expected {label}", tofile=f"actual {label}")
    out = []
    for line in d:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out) or f"({label} differs only in invisible ways: {expected!r} vs {actual!r})\n"


def _check(case: SpecCase, who: str, out: Outcome, check_stderr: bool) -> None:
    stdout, stderr = out.stdout, out.stderr
    problems = []
    if out.status is None:
        problems.append(f"no exit status: timed out after {TIMEOUT}s or could not start\n")
    elif out.status != case.status:
        problems.append(f"status: expected {case.status}, got {out.status}\n")
    if stdout != case.stdout:
        problems.append(_diff("stdout", case.stdout, stdout))
    if check_stderr:
        if case.stderr is not None and stderr != case.stderr:
            problems.append(_diff("stderr", case.stderr, stderr))
        for needle in case.stderr_contains:
            if needle not in stderr:
                problems.append(f"stderr does not contain {needle!r}\n")
        for needle in case.stderr_not_contains:
            if needle in stderr:
                problems.append(f"stderr contains {needle!r}, which it must not\n")
    if problems:
        report = [f"{_where(case)} [{who}]\n", *map(_clip, problems),
                  _numbered(case.body), "\n--- actual stdout:\n", _clip(stdout),
                  "--- actual stderr:\n", _clip(stderr)]
        pytest.fail("".join(report), pytrace=False)


def _fm_missing() -> str | None:
    try:
        if importlib.util.find_spec("flowmetal.__main__") is None:
            return ("flowmetal/__main__.py does not exist yet, so `python -m flowmetal` cannot run "
                    "(the interpreter and flowmetal.cli are not built yet)")
    except Exception as e:   # a broken package must not break collection either
        return f"cannot locate flowmetal: {e!r}"
    return None


def test_spec_files_parse():
    assert not FORMAT_ERRORS, "malformed spec files:\n" + "\n".join(FORMAT_ERRORS)
    assert CASES, f"no cases found in {SPEC_DIR}"
    # `-k bash` must select only test_bash_agrees.
    named_bash = [c.id for c in CASES if "bash" in c.id.lower()]
    assert not named_bash, f"case ids must not contain 'bash': {named_bash}"


_SAMPLE = """header text is ignored
#### one
echo a
## STDOUT:
a
  ## not a key inside a block
## END
## status: 3
## stderr-contains:     2 | x
## stderr-contains: more
## stderr-not-contains: Traceback
## fm-only: reason here

# a comment between cases
#### two
printf x
## stdout-json: "x"
## STDERR:
## END
## bash-skip: fm syntax
#### three
echo b
## stdout: b
"""


def test_spec_format_reads_every_key():
    one, two, three = parse_text(_SAMPLE, "s.test.fm")
    assert (one.name, one.line, one.body) == ("one", 2, "echo a\n")
    assert one.stdout == "a\n  ## not a key inside a block\n" and one.status == 3
    assert one.stderr is None and one.fm_only == "reason here" and not one.runs_in_bash
    assert one.stderr_contains == ("    2 | x", "more")
    assert one.stderr_not_contains == ("Traceback",)
    assert (two.stdout, two.stderr, two.bash_skip) == ("x", "", "fm syntax")
    assert (three.stdout, three.status, three.runs_in_bash) == ("b\n", 0, True)
    assert three.id == "s.test.fm::three"


@pytest.mark.parametrize("text, message", [
    ("#### a\necho\n## STDOUT:\nx\n", "not closed"),
    ("#### a\necho\n## stdout: x\necho stray\n", "script text after"),
    ("#### a\necho\n## stauts: 1\n", "unknown key"),
    ("#### a\necho\n## status: one\n", "integer"),
    ("#### a\necho\n#### a\necho\n", "duplicate"),
    ("#### a\n## stdout: x\n", "empty body"),
    ("#### a\necho\n## stdout: x\n## stdout: y\n", "twice"),
])
def test_spec_format_rejects_mistakes(text, message):
    with pytest.raises(SpecFormatError, match=message):
        parse_text(text, "bad.test.fm")


def _fm_argv() -> list[str]:
    override = os.environ.get("FM_SPEC_CMD")
    if override:
        argv = shlex.split(override)
        # A relative launcher path is relative to the repository, not to the case's directory.
        if argv and "/" in argv[0] and not os.path.isabs(argv[0]):
            argv[0] = str(REPO / argv[0])
        return argv
    return [sys.executable, "-m", "flowmetal"]


def _jobs() -> int:
    try:
        return max(1, int(os.environ.get("FM_SPEC_JOBS") or os.cpu_count() or 1))
    except ValueError:
        return 1


FM_ENV = {"PYTHONPATH": str(REPO)}


@pytest.fixture(scope="session")
def fm_outcomes(request, tmp_path_factory) -> dict[str, Outcome]:
    """Every selected fm case, run up front FM_SPEC_JOBS at a time (each still its own process)."""
    if _jobs() == 1 or os.environ.get("PYTEST_XDIST_WORKER") or (
            not os.environ.get("FM_SPEC_CMD") and _fm_missing()):
        return {}
    cases = [item.callspec.params["case"] for item in request.session.items
             if getattr(item, "originalname", None) == "test_fm"]
    argv = _fm_argv()
    dirs = [tmp_path_factory.mktemp("fm") for _ in cases]   # created here: mktemp is not threaded
    with ThreadPoolExecutor(_jobs()) as pool:
        outcomes = pool.map(lambda cd: _execute(argv, cd[0], cd[1], FM_ENV), zip(cases, dirs))
        return {case.id: out for case, out in zip(cases, outcomes)}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fm(case: SpecCase, tmp_path: Path, fm_outcomes: dict[str, Outcome]):
    if not os.environ.get("FM_SPEC_CMD"):
        missing = _fm_missing()
        if missing:
            pytest.fail(f"{_where(case)} [fm]: {missing}", pytrace=False)
    out = fm_outcomes.get(case.id) or _execute(_fm_argv(), case, tmp_path, FM_ENV)
    if case.fm_pending:
        # Strict: once the feature lands this fails, and the marker must go.
        try:
            _check(case, "fm", out, check_stderr=True)
        except pytest.fail.Exception:
            pytest.xfail(case.fm_pending)
        pytest.fail(f"{_where(case)} [fm]: passes now; remove `## fm-pending`", pytrace=False)
    _check(case, "fm", out, check_stderr=True)


@pytest.mark.parametrize("case", BASH_CASES, ids=[c.id for c in BASH_CASES])
def test_bash_agrees(case: SpecCase, tmp_path: Path):
    _check(case, "bash", _execute([BASH], case, tmp_path), check_stderr=False)
