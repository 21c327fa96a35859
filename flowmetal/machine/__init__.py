"""The step machine: a job's whole state is JSON; it asks for effects and is handed results.

API used by the runner:

    from flowmetal.machine import Machine, initial_state

    state = initial_state(job="hello-ab12cd", argv=["hello.fm", "a"], env={...}, cwd="/srv",
                          filename="hello.fm")
    m = Machine(state, source="...script text...")     # `source` is unit "main"
    req = m.run()            # first request
    while req["op"] != "done":
        res = perform(req)   # the runner journals req, performs it, journals res
        req = m.run(res)
    req == {"op": "done", "status": 0}                       # or, when an error ended it:
    req == {"op": "done", "status": 22, "error": {"message": "...", "unit": "main",
                                                  "span": [start, end, line, col]}}

`m.state` is the plain-JSON state (mutated in place); json.dumps it for a snapshot and
pass json.loads of it to Machine(...) to resume: the machine continues exactly where it was
(it was stopped at a request: call m.run(result_of_that_request) next). `m.state["step"]` is the
number of requests made so far. `m.unit_source(unit) -> (text, filename)` gives the source of a
code unit (for rendering error spans). Every request carries "op"; see docs/effects.md.
"""
from flowmetal.machine.vm import Machine, initial_state

__all__ = ["Machine", "initial_state"]
