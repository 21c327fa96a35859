"""`trap`: the EXIT, ERR, INT and TERM handlers of a branch, and how the machine runs them.

A trap's text is kept in the branch's state (`traps`, docs/state.md) and runs as a frame of its
own (kind `trap`) pushed where it fires, so it is journaled, snapshotted and resumed like any
other code. The frame remembers what to do when it ends (`then`): go on as before, go on with
the error or cancellation it interrupted, or end the branch (`done`, the EXIT trap).
"""
from __future__ import annotations

from flowmetal.lang.support import TRAP_SIGNALS, action_problem, trap_problem
from flowmetal.machine.builtins import Call, builtin, with_options
from flowmetal.machine.errors import Unwind
from flowmetal.machine.state import frame

_ORDER = ("EXIT", "INT", "TERM", "ERR")
_SHOWN = {"EXIT": "EXIT", "INT": "SIGINT", "TERM": "SIGTERM", "ERR": "ERR"}


@builtin("trap")
@with_options
def b_trap(c, opts, args):
    br = c.vm.br
    traps = br.get("traps", {})
    if "l" in opts:
        c.out(" 2) SIGINT\t15) SIGTERM\n")
        return 0
    if "p" in opts or not args:
        return _print(c, traps, args)
    action, names = (None, args) if len(args) == 1 else (args[0], args[1:])
    if action == "-":
        action = None
    problem = trap_problem(action, names) or action and action_problem(action)
    if problem:
        return c.fail(problem, 2)
    traps = dict(traps)
    for n in names:
        key = TRAP_SIGNALS[n.upper()]
        if action is None:
            traps.pop(key, None)
        else:
            traps[key] = action
    if traps:
        br["traps"] = traps
    else:
        br.pop("traps", None)
    return 0


def _print(c: Call, traps: dict, names: list) -> int:
    """`trap -p [NAME...]`: the traps set, as commands that would set them again."""
    wanted = _ORDER
    if names:
        problem = trap_problem(None, names)
        if problem:
            return c.fail(problem, 2)
        wanted = [TRAP_SIGNALS[n.upper()] for n in names]
    for key in wanted:
        if key in traps:
            text = traps[key]
            quoted = "'" + text.replace("'", "'\\''") + "'"
            c.out(f"trap -- {quoted} {_SHOWN[key]}\n")
    return 0


class TrapOps:
    """Mixin for the Machine: firing traps and ending their frames."""

    def push_trap(self, name: str, **extra) -> bool:
        """Push the frame of trap `name` (extra: its frame's `then`, `done`); False when the
        branch has no such trap or ignores it (`trap '' ERR`)."""
        br = self.br
        text = br.get("traps", {}).get(name)
        if not text:
            return False
        code = self.add_unit(text, "trap", "e:")
        br["frames"].append(frame(code, "trap", trap=name, st=br["status"], **extra))
        return True

    def exit_trap(self, done: dict) -> bool:
        """The branch's code has ended with `done`: run its EXIT trap first (once), if it has
        one; the trap's frame ends the branch with `done` when it ends."""
        traps = self.br.get("traps")
        if not traps or not traps.get("EXIT"):
            return False
        self.br["status"] = done.get("status", 0)
        pushed = self.push_trap("EXIT", done=done)
        traps.pop("EXIT", None)
        return pushed

    def scope_exit_trap(self, b: dict, kind=None, value=None) -> bool:
        """Leaving the scope block `b` (`( ... )`, `$(...)`) that set an EXIT trap of its own:
        run it first (once), as bash runs a subshell's; then the scope is left again (the
        instruction runs again, or the unwind by `kind` goes on). True when pushed."""
        traps = self.br.get("traps")
        if not traps or not traps.get("EXIT") or \
                traps["EXIT"] == b["save"].get("traps", {}).get("EXIT"):
            return False
        then = None
        if kind is not None:
            if kind in ("exit", "raise"):
                self.br["status"] = value         # `$?` in the trap
            then = {"k": kind, "v": value,
                    "err": self.br.get("err") if kind == "raise" else None}
        pushed = self.push_trap("EXIT", then=then)
        traps.pop("EXIT")
        return pushed

    def err_trap(self, status: int, raising: bool = False) -> bool:
        """A command failed with `status`: run the ERR trap unless a condition or a `catch`
        handles the failure, a trap is running, or (`raising`: the error is on its way out)
        the failure is inside a `$(...)`, whose end fires it instead. True when pushed."""
        br = self.br
        if "ERR" not in br.get("traps", ()) or br.get("cancelled"):
            return False
        for fr in br["frames"]:
            if fr["k"] == "trap":
                return False
            for b in fr["b"]:
                if b["t"] == "h" or raising and b["t"] == "s" and b.get("cap") is not None:
                    return False
        then = {"k": "raise", "v": status, "err": br.get("err")} if raising else None
        return self.push_trap("ERR", then=then, ln=self._failed_line(raising))

    def _failed_line(self, raising: bool) -> int:
        """The line of the command that failed: `$LINENO` in the ERR trap, as in bash."""
        span = (self.br.get("err") or {}).get("span") if raising else None
        if span:
            return span[2]
        f = self.br["frames"][-1]
        return self.line_of(self.code(f["c"]), dict(f, pc=max(f["pc"] - 1, 0)))

    def cancel_trap(self, reason: str) -> bool:
        """The job is being cancelled: run the INT trap (Ctrl-C) or the TERM trap (anything
        else, `fm cancel`) before the cancellation unwinds the branch."""
        name = "INT" if "SIGINT" in reason else "TERM"
        return self.push_trap(name, then={"k": "cancel", "v": 130})

    def trap_ended(self, f: dict):
        """The trap frame `f` has run to its end (and is popped): the done record of an EXIT
        trap, else None after resuming what it interrupted."""
        if "done" in f:
            return f["done"]
        then = f.get("then")
        if then:
            if then.get("err") is not None:
                self.br["err"] = then["err"]
            raise Unwind(then["k"], then["v"])
        self.br["status"] = f["st"]
        return None

    def trap_unwound(self, f: dict, kind: str, value):
        """An EXIT trap's frame left by `kind` (exit, an error, a cancellation): the branch's
        done record; a trap's `exit N` sets the status."""
        st = self.br
        if st.get("cancelled"):
            return {"op": "done", "status": 130, "cancelled": st["cancelled"]}
        if kind == "raise":
            return {"op": "done", "status": value, "error": st.get("err")}
        if kind == "exit":
            return {"op": "done", "status": value}
        return f["done"]
