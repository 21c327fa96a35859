"""The step machine: a job's whole state is JSON; it asks for effects and is handed results.

API used by the runner:

    from flowmetal.machine import Machine, initial_state

    state = initial_state(job="hello-ab12cd", argv=["hello.fm", "a"], env={...}, cwd="/srv",
                          filename="hello.fm")
    m = Machine(state, source="...script text...")     # `source` is unit "main"
    pending = m.start()      # [{"step": 1, "br": "0", "req": {...}}, ...]: one per branch
    while m.done() is None:
        step, res = ...      # the runner journals each request, performs them (concurrently),
        pending += m.feed(step, res)    # and hands each result back in the order they finish
    m.done() == {"op": "done", "status": 0}                  # or, when an error ended it:
    m.done() == {"op": "done", "status": 22, "error": {"message": "...", "unit": "main",
                                                       "span": [start, end, line, col]}}

`m.cancel(reason)` unwinds every branch through its `finally` blocks (their requests are
returned); `m.wakes()` lists timers the machine cut short (a `wait` under a deadline whose
branch ended: complete them with {"woken": true}); `m.main_waits()` the branches the ended main
code waits for; `m.layout()` a hash of the compiled code layout that snapshots record.

`m.state` is the plain-JSON state (mutated in place, documented in docs/state.md); json.dumps it
for a snapshot and pass json.loads of it to Machine(...) to resume: the machine continues exactly
where it was, awaiting the same steps. `m.state["step"]` is the number of requests made so far.
`m.unit_source(unit) -> (text, filename)` gives the source of a code unit (for rendering error
spans). Every request carries "op"; see docs/effects.md.
"""
from flowmetal.machine.vm import Machine, initial_state

__all__ = ["Machine", "initial_state"]
