"""Durable branches (SPEC 1.7): `cmd &` starts a branch of the job, `wait` joins branches.

A branch is one more stack of frames in the state (`branches[id]`), with a copy of its
parent's variables, functions, fd table and cwd, as `( ... )` would have. The machine runs
branches in turn; each one stops at its own effects. A branch whose code has ended waits for
its own branches before it is over (structured concurrency), then leaves its outcome in
`exits` until its parent reaps it with `wait` or ends itself.
"""
from __future__ import annotations

from flowmetal.machine.builtins import builtin
from flowmetal.machine.errors import LimitError, NeedBranches
from flowmetal.machine.state import MAIN, branch, clone, frame

MAX_BRANCHES = 1000
"""The most branches of a job that run at once (ended ones do not count): a runaway
`f() { f & f & }` is an error (LimitError) instead of exhausting memory."""


class BranchOps:
    """Mixin for the Machine: starting, ending and joining branches."""

    def op_SPAWN(self, f, code, ins):
        """SPAWN code node: start a branch that runs `code` (the body of `node &`)."""
        st, br = self.state, self.br
        if len(st["branches"]) >= MAX_BRANCHES or st.get("fatal"):
            why = f"more than {MAX_BRANCHES} branches at once" if not st.get("fatal") else \
                "the job is stopping a runaway"
            raise LimitError(1, f"cannot start a branch: {why} (endless `&`?)", ins[2].span)
        st["nbr"] += 1
        bid = str(st["nbr"])
        bottom = frame(ins[1], "br", a=list(self.positional()))
        if any(fr["k"] in ("fn", "src") or fr.get("fnr") for fr in br["frames"]):
            bottom["fnr"] = 1          # `return` ends the branch, as it ends bash's subshell
        owner = self.deadline_owner()
        if owner is not None:
            # inside `timeout`: the branch's effects are bound by the same deadline
            bottom.update(dl=owner["dl"], id=owner["id"])
            bottom["t"]["ctl"] = owner["t"].get("ctl", {})
        kid = branch(frames=[bottom], scopes=clone(br["scopes"]), funcs=dict(br["funcs"]),
                     fds=dict(self.fds()), cwd=br["cwd"], opts=dict(br["opts"]),
                     parent=self.bid)
        kid["cmd"] = self.snippet(code, ins[2].command.span)
        st["branches"][bid] = kid
        br["kids"].append(bid)
        br["bg"] = bid
        br["status"] = 0
        f["pc"] += 1

    def end_branch(self, done: dict):
        """The running branch's code has ended with `done`: it is over once its own branches
        are (close_branch). Returns None: an ended branch makes no request."""
        self.br["final"] = done
        self.close_branch(self.bid)
        return None

    def close_branch(self, bid: str) -> None:
        """Finish branch `bid` if none of its branches still runs, else block it until one ends.

        Its un-reaped branches are reaped here; under `set -e`, the first of them that failed
        fails this branch too, unless it failed or was cancelled on its own."""
        st = self.state
        br = st["branches"][bid]
        if any(k in st["branches"] for k in br["kids"]):
            br["blocked"] = 1
            return
        done = br.pop("final")
        failed = sorted((k for k in br["kids"] if st["exits"][k]["st"] != 0
                         and not st["exits"][k].get("scoped")),
                        key=lambda k: st["exits"][k]["n"])
        if failed and br["opts"].get("e") and not done.get("error") \
                and not done.get("cancelled") and not done.get("status"):
            done = {"op": "done", "status": st["exits"][failed[0]]["st"],
                    "error": self.branch_failure(failed[0], st["exits"][failed[0]], where=False)}
        for k in br["kids"]:
            del st["exits"][k]
        del st["branches"][bid]
        if bid == MAIN:
            st["done"] = done
        else:
            st["nend"] += 1
            st["exits"][bid] = {"st": done.get("status", 0), "err": done.get("error"),
                                "cmd": br.get("cmd", ""), "n": st["nend"]}
            if (done.get("error") or {}).get("deadline_of") is not None:
                # ended by the deadline of a `timeout` it was started in: that `timeout` has
                # reported it; only an explicit `wait` still sees the status
                st["exits"][bid]["scoped"] = 1
        for other in st["branches"].values():
            other.pop("blocked", None)       # each blocked branch looks again
            if other.get("wake") is not None and other["wake"] == other["await"]:
                other["woken"] = 1

    def branch_failure(self, bid: str, ex: dict, *, where: bool) -> dict:
        """The error record for a branch that ended with a non-zero status. `where`: name the
        place of the branch's own error in the message (the record's span points elsewhere)."""
        err = ex.get("err") or {}
        what = f"`{ex['cmd']}` (branch {bid}) failed"
        inner = err.get("message") or f"exited with status {ex['st']}"
        span = err.get("span")
        if where and span:
            _, filename = self.unit_source(err.get("unit", "main"))
            inner = f"{filename}:{span[2]}:{span[3]}: {inner}"
        rec = {"status": ex["st"], "message": f"{what}: {inner}"}
        if not where and span:
            rec.update(unit=err.get("unit", "main"), span=span)
        return rec

    def wait_branches(self, c, ids: list, first: bool) -> int:
        """`wait [-n] [ID...]`: block until the branches have ended, then reap them."""
        st, br = self.state, self.br
        kids = br["kids"]
        for bid in ids:
            if bid not in kids:
                return c.fail(f"wait: `{bid}` is not a branch started here (see `$!`)", 127)
        targets = ids or list(kids)
        if first and not targets:
            return c.fail("wait -n: no branch to wait for", 127)
        while True:
            ended = [k for k in targets if k in st["exits"]]
            if ended if first else len(ended) == len(targets):
                break
            self._block(c)
        if first:
            return self._reap(c, [min(ended, key=lambda k: st["exits"][k]["n"])], ids=True)
        return self._reap(c, targets, ids=bool(ids))

    def _block(self, c) -> None:
        """Wait for another branch to end. Under a durable deadline (`timeout`) the wait is a
        timer until it, which the end of a branch cuts short (`wake`), so that the deadline
        still ends it; elsewhere the branch just blocks."""
        owner = self.deadline_owner()
        if owner is None:
            raise NeedBranches()
        c.effect({"op": "sleep", "until": owner["dl"], "why": "wait", "wake": True})

    def wakes(self) -> list:
        """Steps of timers that `wait`s under a deadline await and that the end of a branch
        has cut short: the runner completes each with {"woken": true}."""
        return [br["await"] for br in self.state["branches"].values()
                if br.get("woken") and br["await"] is not None and br.get("wake") == br["await"]]

    def _reap(self, c, targets: list, *, ids: bool) -> int:
        """Forget ended branches; the status: the last one's (`wait ID...`), or the first
        failure's in the order they ended (`wait`)."""
        exits = self.state["exits"]
        ended = [(k, exits[k]) for k in targets]
        for k in targets:
            self.br["kids"].remove(k)
            del exits[k]
        if ids:
            pick = ended[-1]
        else:
            failed = sorted((e for e in ended if e[1]["st"] != 0), key=lambda e: e[1]["n"])
            pick = failed[0] if failed else None
        if pick is None or pick[1]["st"] == 0:
            return 0
        return c.fail(self.branch_failure(pick[0], pick[1], where=True)["message"], pick[1]["st"])


@builtin("wait")
def b_wait(c):
    args = c.argv[1:]
    first = False
    if args and args[0] == "-n":
        first, args = True, args[1:]
    if args and args[0].startswith("-"):
        return c.fail(f"wait: unknown option `{args[0]}` (usage: wait [-n] [ID...])", 2)
    return c.vm.wait_branches(c, args, first)
