"""The step machine on random valid scripts, with a fake world: it must only ever return
requests or a done record, and its state must stay plain JSON at every request."""
from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from lang.test_fuzz import SEEDS, fast, mutated

from flowmetal.errors import ParseError
from flowmetal.machine import Machine, initial_state

EXTRA = [
    "x=1; echo $x ${x:-d} ${#x} $((x+1))\n", "a=(1 2 3); echo ${a[@]:1} ${#a[@]}\n",
    "f() { return 3; }; if f; then echo y; else echo n; fi\n",
    "try { false; } catch { echo $?; } finally { echo f; }\n",
    "case x in x) echo 1;& y) echo 2;;& *) echo 3;; esac\n",
    "while read l; do echo $l; done <<< 'a'\n", "echo $(echo a | tr a b) | cat\n",
    "declare -A m; m[k]=v; echo ${!m[@]} ${m[k]}\n", "set +e; false; echo $?\n",
    "( cd /; exit 3 ) || echo $?\n", "for ((i=0;i<3;i++)); do continue; done\n",
    "eval 'echo hi'; shift 0; printf '%s-%d\\n' a 1\n", "[[ a == a* && -n x ]] && echo ok\n",
    "retry --attempts 3 --delay 1s { false; }\n", "timeout 5s -- sleep 10\n",
    "echo $RANDOM $((RANDOM % 6)) $EPOCHSECONDS\n", "once true; now +%Y; sleep 1m\n",
    "echo '{\"a\":1}' | json get .a\n", "a=([k]=v [2]=x)\n",
]

BRANCHES = [
    "sleep 1 &\n", "{ echo a; false; } &\n", "f() { echo $1; }; f x & f y &\n", "wait\n",
    "wait $!\n", "wait -n || echo $?\n", "x=$(echo a &)\n", "( true & ); wait\n",
    "retry --attempts 2 { false; } &\n", "echo a | cat &\n", "exit 3 &\n",
]


def fake(req):
    op = req["op"]
    if op == "exec":
        res = {"status": [0] * len(req["stages"])}
        if any(str(fd) == "1" and t["kind"] == "capture" for s in req["stages"]
               for fd, t in s["fds"].items()):
            res["capture"] = "one\ntwo\n"
        return res
    return {"glob": {"matches": ["a.txt"]}, "test": {"result": True}, "cd": {"cwd": "/tmp"},
            "read_line": {"line": None}, "read_file": {"data": "echo sourced\n"},
            "realpath": {"path": "/tmp"}, "clock": {"now": 1000.0, "text": "1970"},
            "sleep": {"now": 1000.0}, "random": {"int": 7, "float": 0.5}}.get(op, {})


def run(text, order=None):
    """Drive the machine to its end with a fake world. With several requests outstanding
    (durable branches), `order` (a list of ints) picks which completes next."""
    state = initial_state(job="j-000000", argv=["t.fm", "a", "b"], env={"PATH": "/bin"},
                          cwd="/tmp", filename="t.fm", pid=1)
    try:
        m = Machine(state, text)
    except ParseError:
        return
    pending = m.start()
    picks = iter(order or ())
    for _ in range(300):
        if not pending:
            done = m.done()
            assert done is not None and isinstance(done["status"], int)
            return
        assert {p["step"] for p in pending} == set(m.pending())
        json.dumps(m.state)             # plain JSON at every effect boundary
        p = pending.pop(next(picks, 0) % len(pending))
        pending += m.feed(p["step"], fake(p["req"]))


@fast(400)
@given(st.lists(st.sampled_from(SEEDS + EXTRA), min_size=1, max_size=5).map("".join))
def test_valid_scripts_run(text):
    run(text)


@fast(600)
@given(mutated())
def test_mutated_scripts_run(text):
    run(text)


@fast(400)
@given(st.lists(st.sampled_from(SEEDS + EXTRA + BRANCHES), min_size=1, max_size=6).map("".join),
       st.lists(st.integers(0, 7), max_size=40))
def test_scripts_with_branches_run(text, order):
    run(text, order)
