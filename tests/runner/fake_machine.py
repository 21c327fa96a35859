"""A stand-in for flowmetal.machine with the same API, for testing the runner on its own.

The "program" ignores its source. `$1` (default 3) is how many times it runs
`echo $((n+1)) >> counter; echo "$FM_STEP_KEY" >> keys; echo "step $((n+1))"; sleep $DELAY`
(n counts from 0; DELAY from `$2`, default 0) in the job's cwd, then writes `bye` to stdout and
ends with status 0. With `$3` = fail it ends instead with an error pointing at line 1 of the
script. Its whole state is JSON, as the real machine's is.
"""
from __future__ import annotations

COMMAND = 'echo $((n+1)) >> counter; echo "$FM_STEP_KEY" >> keys; echo "step $((n+1))"; sleep "$DELAY"'


def initial_state(*, job, argv, env, cwd, filename, pid=None, settings=None):
    n = int(argv[1]) if len(argv) > 1 else 3
    delay = argv[2] if len(argv) > 2 else "0"
    fail = len(argv) > 3 and argv[3] == "fail"
    return {"step": 0, "job": job, "argv": list(argv), "env": dict(env), "cwd": cwd,
            "filename": filename, "i": 0, "n": n, "delay": delay, "fail": fail,
            "awaiting": None, "wrote": False}


class Machine:
    def __init__(self, state, source):
        from flowmetal.lang import parse
        parse(source, state["filename"])  # like the real machine, which compiles at once
        self.state = state
        self.source = source

    def unit_source(self, unit):
        if unit != "main":
            raise KeyError(unit)
        return self.source, self.state["filename"]

    def layout(self):
        return "fake"

    def main_waits(self):
        return None

    def wakes(self):
        return []

    def done(self):
        return self.state.get("done")

    def cancel(self, reason):
        """Like the real machine with no `finally` to run: done, status 130."""
        self.state["cancelled"] = reason
        self.state["done"] = {"op": "done", "status": 130, "cancelled": reason}
        return []

    def start(self):
        return self._next(self._step(None))

    def feed(self, step, res):
        assert step == self.state["step"], (step, self.state["step"])
        return self._next(self._step(res))

    def _next(self, req):
        if req["op"] == "done":
            self.state["done"] = req
            return []
        return [{"step": self.state["step"], "br": "0", "req": req}]

    def _step(self, res=None):
        s = self.state
        if s["awaiting"] == "exec":
            if res["status"] != [0]:
                return {"op": "done", "status": res["status"][0],
                        "error": {"message": f"the command exited with status {res['status'][0]}",
                                  "unit": "main", "span": [0, 1, 1, 1]}}
            s["i"] += 1
        elif s["awaiting"] == "write":
            s["wrote"] = True
        s["awaiting"] = None
        if s["i"] < s["n"]:
            s["step"] += 1
            s["awaiting"] = "exec"
            env = dict(s["env"], n=str(s["i"]), DELAY=s["delay"],
                       FM_STEP_KEY=f"{s['job']}-{s['step']}")
            return {"op": "exec", "cwd": s["cwd"],
                    "stages": [{"argv": ["sh", "-c", COMMAND], "env": env}]}
        if not s["wrote"]:
            s["step"] += 1
            s["awaiting"] = "write"
            return {"op": "write", "target": {"kind": "term", "fd": 1}, "data": "bye\n"}
        if s["fail"]:
            return {"op": "done", "status": 3,
                    "error": {"message": "`thing` exited with status 3", "unit": "main",
                              "span": [0, 4, 1, 1]}}
        return {"op": "done", "status": 0}
