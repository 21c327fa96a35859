"""`fm check` accepts only what runs (issue 17): every bash builtin, every option of the builtins
whose options are checked, and every grammar form is either refused when parsed, or runs
without "not supported" / "command not found" / "invalid option".

Scripts run in-process on the real connectors (in a temporary directory, no stdin), so the
whole walk takes a few seconds."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from flowmetal.connectors import Term, perform
from flowmetal.errors import ParseError
from flowmetal.lang import ast as A
from flowmetal.lang import parse
from flowmetal.lang.support import OPTIONS, UNSUPPORTED, unsupported
from flowmetal.machine import Machine, initial_state
from flowmetal.machine.builtins import BUILTINS
from flowmetal.records import fields, is_record

BAD = ("not supported", "command not found", "invalid option", "unsupported", "cannot expand")

BASH_BUILTINS = """. : [ alias bg bind break builtin caller cd command compgen complete compopt
continue declare dirs disown echo enable eval exec exit export false fc fg getopts hash help
history jobs kill let local logout mapfile popd printf pushd pwd read readarray readonly return
set shift shopt source suspend test times trap true type typeset ulimit umask unalias unset
wait""".split()
"""bash 5.2's `compgen -b` (the test adds whatever the local bash lists besides)."""

SAMPLES = {
    "[": ["[ a = a ]"], "break": ["for x in 1; do break; done"],
    "continue": ["for x in 1; do continue; done"], "caller": ["f() { caller 0; }; f"],
    "cd": ["cd ."], "command": ["command -v echo", "command -p true"],
    "declare": ["declare -i n=1+1; declare -p n", "declare -n r=n; n=1; echo $r"],
    "eval": ["eval 'echo hi'"], "exec": ["exec 3>/dev/null"], "exit": ["exit 0"],
    "export": ["export A=1"], "getopts": ["getopts ab: o -a"], "hash": ["hash -r"],
    "let": ["let 'x=1+1'"], "local": ["f() { local -i x=1; }; f"],
    "mapfile": ["mapfile -t a <<< x"], "readarray": ["readarray -t a <<< x"],
    "printf": ["printf -v v %s x"], "read": ["read -r x <<< a", "read -ra x <<< a"],
    "readonly": ["readonly R=1"], "return": ["f() { return 0; }; f"],
    "set": ["set -euo pipefail", "set -f"], "shift": ["set -- a; shift"],
    "shopt": ["shopt -s lastpipe", "shopt -q failglob"], "source": ["echo : > s.sh; . ./s.sh"],
    ".": ["echo : > s.sh; . ./s.sh"], "test": ["test -n a"], "trap": ["trap 'echo' EXIT ERR"],
    "type": ["type echo"], "typeset": ["typeset x=1"], "unset": ["x=1; unset x"],
    "wait": ["true & wait"], "kill": ["kill -0 $$"], "builtin": ["builtin echo x"],
}
"""Invocations of a builtin that must run (a bare name is tried too)."""


def run(text: str, cwd) -> tuple:
    """Run a script with the real connectors: (its stdout + stderr, its done record)."""
    state = initial_state(job="j-000000", argv=["t.fm"], env={"PATH": os.environ["PATH"]},
                          cwd=str(cwd), filename="t.fm", pid=os.getpid())
    m = Machine(state, text)
    term = Term(stdin_fd=None, echo=False)
    out = []
    pending = m.start()
    while pending:
        p = pending.pop(0)
        res = json.loads(json.dumps(perform(p["req"], term)))
        if p["req"]["op"] == "write":
            out.append(p["req"]["data"])
        out += [res.get("out", ""), res.get("err", "")]
        pending += m.feed(p["step"], res)
    done = m.done()
    return "".join(out) + json.dumps(done.get("error") or {}), done


def checked(text: str) -> bool:
    """What `fm check` says: True when the script is accepted."""
    try:
        parse(text, "t.fm")
    except ParseError:
        return False
    return True


def bash_builtins() -> list:
    names = set(BASH_BUILTINS)
    if shutil.which("bash"):
        got = subprocess.run(["bash", "-c", "compgen -b"], capture_output=True, text=True)
        names.update(got.stdout.split())
    return sorted(names)


@pytest.mark.parametrize("name", bash_builtins())
def test_a_bash_builtin_is_refused_or_runs(name, tmp_path):
    tried = 0
    for text in SAMPLES.get(name, []) + [name]:
        if not checked(text):
            continue
        tried += 1
        said, _ = run(text, tmp_path)
        assert not any(b in said for b in BAD), (text, said)
    if name in UNSUPPORTED:
        assert tried == 0
    else:
        assert tried, f"{name}: no sample is accepted"
        assert name in BUILTINS or name == "kill", f"{name}: accepted but not a builtin"


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_an_unsupported_builtin_says_the_same_at_check_and_at_run_time(name, tmp_path):
    with pytest.raises(ParseError) as e:
        parse(f"{name} x", "t.fm")
    assert e.value.message == unsupported(name)
    assert (e.value.line, e.value.col) == (1, 1)
    said, done = run(f"cmd={name}; $cmd x", tmp_path)
    assert done["error"]["message"] == unsupported(name)
    assert done["status"] == 2


def _option_samples():
    for name, spec in sorted(OPTIONS.items()):
        for k, ch in enumerate(spec):
            if ch in "+:":
                continue
            takes = spec[k + 1:k + 2] == ":"
            yield name, f"-{ch}", takes
            if spec.startswith("+") and not takes:
                yield name, f"+{ch}", False
        yield name, "-Z", False


OPERANDS = {"read": "v <<< 'a b'", "getopts": "a o", "printf": "%s x", "trap": "",
            "mapfile": "arr < /dev/null", "readarray": "arr < /dev/null", "unset": "v",
            "declare": "v", "typeset": "v", "local": "v", "export": "v", "readonly": "v",
            "shopt": "lastpipe", "hash": "ls", "caller": ""}
ARGS = {("read", "-t"): "1", ("read", "-u"): "0", ("read", "-d"): ",", ("read", "-n"): "1",
        ("read", "-N"): "1", ("mapfile", "-u"): "0", ("readarray", "-u"): "0",
        ("mapfile", "-d"): ",", ("readarray", "-d"): ","}


@pytest.mark.parametrize("name,opt,takes", list(_option_samples()))
def test_every_option_is_refused_or_runs(name, opt, takes, tmp_path):
    arg = ARGS.get((name, opt), "1" if name in ("mapfile", "readarray") else "arr") \
        if takes else ""
    text = f"set +e; {'f() { ' if name == 'local' else ''}{name} {opt} {arg} " \
        f"{OPERANDS.get(name, '')}{'; }; f' if name == 'local' else ''}"
    if opt == "-Z":
        assert not checked(text), text
        return
    if not checked(text):
        return
    said, _ = run(text, tmp_path)
    assert not any(b in said for b in BAD), (text, said)


GRAMMAR = [
    "echo 'sq' \"dq $HOME\" $'\\t' a\\ b", "x=1 y+=2; a=(1 2); a[3]=x; a+=(y); declare -A m; m[k]=v",
    "echo ~ ${x:-d} ${#a[@]} ${a[*]} ${!m[@]} $((1+2)) $(echo c) `echo d` {a,b} {1..3}",
    "x=abc; echo ${x#a} ${x%c} ${x/b/B} ${x:1:1} ${x^^}", "true | cat | cat", "! false",
    "true && true || true", "{ echo g; } > /dev/null", "( echo s )", "if true; then :; fi",
    "if false; then :; elif true; then :; else :; fi", "while false; do :; done",
    "until true; do :; done", "for x in a b; do :; done", "for ((i=0; i<2; i++)); do :; done",
    "case a in a|b) echo ;; *) ;; esac", "[[ a == a && -n b ]]", "(( 1 + 1 ))",
    "f() { :; }; f", "function g { :; }; g", "cat <<EOF\nx\nEOF", "cat <<'E'\n$x\nE",
    "cat <<-EOF\n\tx\n\tEOF", "cat <<< x", "echo x >f 2>&1; cat <f >>g; echo 2>/dev/null",
    "try { false; } catch { :; } finally { :; }", "true &\nwait", "x=$(< /dev/null)",
    "echo *", "retry --attempts 1 -- true", "timeout 5 true", "now > /dev/null",
    "echo '{}' | json valid", "exec 3>&-", "coproc x", "select x in a; do :; done",
    "echo <(true)", "echo ${!x}", "echo ${x@Q}", "time true",
]


def _node_types(obj, seen: set):
    if isinstance(obj, (tuple, list)):
        for o in obj:
            _node_types(o, seen)
    elif is_record(obj):
        seen.add(type(obj).__name__)
        for name in fields(obj):
            _node_types(getattr(obj, name), seen)


@pytest.mark.parametrize("text", GRAMMAR)
def test_a_grammar_form_is_refused_or_runs(text, tmp_path):
    (tmp_path / "f").write_text("x\n")
    if not checked(text):
        return
    said, _ = run("x=1; declare -A m=([k]=v); a=(1); " + text, tmp_path)
    assert not any(b in said for b in BAD), (text, said)


def test_the_grammar_walk_covers_every_node_type():
    seen: set = set()
    for text in GRAMMAR:
        if checked(text):
            _node_types(parse(text, "t.fm"), seen)
    nodes = {n for n in dir(A) if isinstance(getattr(A, n), type) and is_record_type(n)}
    assert nodes - seen == set()


def is_record_type(name: str) -> bool:
    cls = getattr(A, name)
    return hasattr(cls, "__dataclass_fields__") and cls.__module__ == A.__name__
