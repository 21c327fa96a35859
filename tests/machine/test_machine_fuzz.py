"""The step machine on random valid scripts, with a fake world: it must only ever return
requests or a done record, and its state must stay plain JSON at every request."""
from __future__ import annotations

import json

from hypothesis import given, strategies as st

from flowmetal.errors import ParseError
from flowmetal.machine import Machine, initial_state

from lang.test_fuzz import SEEDS, fast, mutated

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


def run(text):
    state = initial_state(job="j-000000", argv=["t.fm", "a", "b"], env={"PATH": "/bin"},
                          cwd="/tmp", filename="t.fm", pid=1)
    try:
        m = Machine(state, text)
    except ParseError:
        return
    req = m.run()
    for _ in range(300):
        if req["op"] == "done":
            assert isinstance(req["status"], int)
            return
        json.dumps(m.state)             # plain JSON at every effect boundary
        req = m.run(fake(req))


@fast(400)
@given(st.lists(st.sampled_from(SEEDS + EXTRA), min_size=1, max_size=5).map("".join))
def test_valid_scripts_run(text):
    run(text)


@fast(600)
@given(mutated())
def test_mutated_scripts_run(text):
    run(text)
