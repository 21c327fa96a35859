"""Run a script in the machine in-process with a world that only takes writes: for tests of
pure machine work (no programs, no files)."""
from __future__ import annotations

import json

from flowmetal.machine import Machine, initial_state


def run_script(text: str, scopes: dict | None = None, max_effects: int = 100_000):
    """Run `text`; -> (what it wrote to fd 1, its writes to fd 2, the global variables at
    the last write, as a snapshot would hold them, and the done record)."""
    state = initial_state(job="j-000000", argv=["t.fm"], env={}, cwd="/tmp", filename="t.fm",
                          pid=1)
    state["branches"]["0"]["scopes"][0].update(scopes or {})
    m = Machine(state, text)
    out, err, glob = [], [], None
    pending = m.start()
    for _ in range(max_effects):
        if not pending:
            break
        p = pending.pop(0)
        req = p["req"]
        assert req["op"] == "write", req
        if req["target"] == {"kind": "term", "fd": 1}:
            out.append(req["data"])
        elif req["target"] == {"kind": "term", "fd": 2}:
            err.append(req["data"])
        glob = json.loads(json.dumps(m.state["branches"]["0"]["scopes"][0]))
        pending += m.feed(p["step"], {})
    return "".join(out), "".join(err), glob, m.done()
