"""The step machine: runs compiled instructions over a JSON state until it needs an effect."""
from __future__ import annotations

from flowmetal.lang import ast as A
from flowmetal.machine import arith as _arith
from flowmetal.machine.branches import BranchOps
from flowmetal.machine.command import CommandOps
from flowmetal.machine.durable import SYS, DurableOps
from flowmetal.machine.errors import NeedEffect, ShellError, Unwind
from flowmetal.machine.expand import Expander
from flowmetal.machine.state import FORMAT, MAIN, clone, initial_state
from flowmetal.machine.traps import TrapOps
from flowmetal.machine.variables import Variables

__all__ = ["Machine", "initial_state"]

_UNITS: dict = {}      # (unit name, sha1 of text) -> compiled Unit, shared by machines


def _digest(text: str) -> str:
    import hashlib  # only eval and source need it; kept off the start-up path
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()


def _request_key(req: dict) -> int:
    """A short stable fingerprint of a request (memo entries keep it instead of the request)."""
    import zlib
    return zlib.crc32(repr(req).encode("utf-8", "surrogateescape"))


def _compile(unit: str, text: str, filename: str):
    key = (unit, text)
    u = _UNITS.get(key)
    if u is None:
        from flowmetal.lang import parse
        from flowmetal.lang.compile import compile_unit
        u = compile_unit(parse(text, filename), unit)
        _UNITS[key] = u
    return u


_OPS: dict = {}       # instruction name -> the Machine's op_ function (filled on first use)

TICK = 50_000
"""Instructions a branch runs without an effect before it makes a tick (Machine.tick)."""


def _dispatch_table() -> dict:
    _OPS.update((name[3:], fn) for name in dir(Machine) if name.startswith("op_")
                for fn in [getattr(Machine, name)])
    return _OPS


class Machine(Variables, CommandOps, DurableOps, BranchOps, TrapOps):
    """Advance a job's state: `start()`, then `feed(step, result)` for each completed effect,
    until `done()` returns the job's done record."""

    def __init__(self, state: dict, source: str):
        self.state = state
        self.source = source
        branches = state["branches"]
        self.bid = MAIN if MAIN in branches else min(branches, key=int, default=MAIN)
        self.br = branches.get(self.bid, {})
        self.codes: dict = {}
        self.result = None
        self.has_result = False
        self._load_unit("main")

    # -- code units ---------------------------------------------------------------------------
    def _load_unit(self, unit: str):
        text, filename = self.unit_source(unit)
        u = _compile(unit, text, filename)
        self.codes.update(u.codes)
        return u

    def unit_source(self, unit: str) -> tuple:
        """(text, filename) of a code unit, for running it and for rendering error spans."""
        info = self.state["units"].get(unit, {"text": "", "file": "<fm>"})
        if unit == "main":
            return self.source, info["file"]
        return info["text"], info["file"]

    def add_unit(self, text: str, filename: str, prefix: str) -> str:
        """Register source text (eval, source) as a unit and return its top code's name.
        Raises ParseError for bad text."""
        digest = _digest(text)[:16]
        unit = f"{prefix}{digest}"
        units = self.state["units"]
        if unit not in units:
            _compile(unit, text, filename)   # parse errors surface before registering
            units[unit] = {"text": text, "file": filename}
        self._load_unit(unit)
        return f"{unit}:0"

    def layout(self) -> str:
        """A hash of the compiled code layout of the main unit and the controllers, with the
        state format: a snapshot's (code name, pc) positions mean the same only to a machine
        with the same layout. $FM_LAYOUT_SALT changes it (tests fake another fm version)."""
        import os
        import zlib  # already loaded at start-up, unlike hashlib (OpenSSL: ~3 ms)
        h = zlib.crc32(f"{FORMAT}:{os.environ.get('FM_LAYOUT_SALT', '')}".encode())
        codes = [c for c in self.codes.values() if c.unit == "main"] + list(SYS.values())
        for c in sorted(codes, key=lambda c: c.name):
            h = zlib.crc32(c.name.encode(), h)
            for ins in c.instrs:
                shape = [x for x in ins if x is None or type(x) in (int, str)
                         or type(x) is tuple and (not x or isinstance(x[0], int))]
                h = zlib.crc32(repr(shape).encode(), h)
        return f"{h:08x}"

    def code(self, name: str):
        c = self.codes.get(name) or SYS.get(name)
        if c is None:
            self._load_unit(name.rsplit(":", 1)[0])
            c = self.codes[name]
        return c

    # -- the loop -----------------------------------------------------------------------------
    def start(self) -> list:
        """Run a job that has not run yet (or every runnable branch of a restored state) until
        each branch is blocked; returns the new requests (see `feed`)."""
        return self._settle([])

    def feed(self, step: int, result) -> list:
        """Hand the result of request `step` to the branch that made it and run every branch
        that can now run; returns the requests made meanwhile, each as
        {"step": n, "br": branch id, "req": {...}}. After the last branch ends, `done()` is
        the job's done record and no request is pending."""
        for bid, br in self.state["branches"].items():
            if br["await"] == step:
                br["await"] = None
                br.pop("woken", None)
                if br.pop("tick", None) == step:     # a tick: only a passed deadline matters
                    timeout = isinstance(result, dict) and bool(result.get("timeout"))
                    r = self._run(bid, timeout, result if timeout else None)
                else:
                    r = self._run(bid, True, result)
                return self._settle([r] if r else [])
        raise KeyError(f"no branch awaits step {step}")

    def done(self):
        """The job's done record once every branch has ended, else None."""
        return self.state.get("done")

    def main_waits(self) -> list | None:
        """The ids of the branches the main code, which has ended, still waits for; None while
        the main code runs or once the job is done."""
        main = self.state["branches"].get(MAIN)
        if main is None or "final" not in main:
            return None
        return [k for k in main["kids"] if k in self.state["branches"]]

    def pending(self) -> dict:
        """{step: branch id} of the requests the branches await."""
        return {br["await"]: bid for bid, br in self.state["branches"].items()
                if br["await"] is not None}

    def _settle(self, out: list) -> list:
        """Run every branch that is neither awaiting an effect nor blocked, in id order, until
        none is left; a branch's requests are appended to `out`."""
        branches = self.state["branches"]
        again = True
        while again:
            again = False
            for bid in sorted(branches, key=int):
                br = branches.get(bid)
                if br is None or br["await"] is not None or br.get("blocked"):
                    continue
                again = True
                if "final" in br:
                    self.close_branch(bid)
                    continue
                r = self._run(bid)
                if r is not None:
                    out.append(r)
        return out

    def _select(self, bid: str):
        self.bid = bid
        self.br = self.state["branches"][bid]

    def _run(self, bid: str, has_result: bool = False, result=None):
        """Run branch `bid` until it makes a request (returned as a pending entry), blocks or
        ends (None)."""
        self._select(bid)
        st, br = self.state, self.br
        frames = br["frames"]
        self.result, self.has_result = result, has_result
        if has_result and isinstance(result, dict) and result.get("timeout"):
            done = self.deadline_passed()
            if done and not self.exit_trap(done):
                return self.end_branch(done)
        ops = _OPS or _dispatch_table()
        f = None
        left = TICK
        while True:
            if not frames:
                done = {"op": "done", "status": br["status"]}
                if self.exit_trap(done):
                    continue
                return self.end_branch(done)
            if frames[-1] is not f:         # a frame's code never changes: look it up once
                f = frames[-1]
                code = self.codes.get(f["c"]) or self.code(f["c"])
                instrs = code.instrs
                self.cur = (code, f)
            ins = instrs[f["pc"]]
            left -= 1
            if left < 0 and f["i"] is None and not self.has_result:
                req = self.tick()
            else:
                try:
                    req = ops[ins[0]](self, f, code, ins)
                except ShellError as e:
                    done = self.raise_error(f, code, e)
                    if done and not self.exit_trap(done):
                        return self.end_branch(done)
                    continue
                except Unwind as u:
                    done = self.unwind(u.kind, u.value)
                    if done and not self.exit_trap(done):
                        return self.end_branch(done)
                    continue
            if req is not None:
                op = req["op"]
                if op == "done":
                    if self.exit_trap(req):
                        continue
                    return self.end_branch(req)
                if op == "blocked":
                    br["blocked"] = 1
                    return None
                st["step"] += 1
                br["await"] = st["step"]
                owner = self.deadline_owner()
                if owner is not None:
                    req["deadline"] = owner["dl"]
                if req.get("wake"):
                    br["wake"] = st["step"]
                return {"step": st["step"], "br": bid, "req": req}

    def tick(self) -> dict:
        """A `clock` request made between two instructions after TICK instructions without an
        effect: the runner sees Ctrl-C, `fm cancel` and a passed `timeout` deadline there
        (the request carries it), so pure machine work (a loop of builtins) stays bounded.
        Its result is dropped (feed), unless the deadline passed."""
        self.br["tick"] = self.state["step"] + 1
        return {"op": "clock"}

    def cancel(self, reason: str) -> list:
        """Cancel the job where it stands (Ctrl-C, `fm cancel`): every branch's pending effect
        is abandoned; no `catch` or condition handles the cancellation, every `finally` on the
        way out runs (in every branch). Returns the requests made meanwhile (finally blocks'
        effects); the job's done record then has status 130 and "cancelled"."""
        st = self.state
        st["cancelled"] = reason
        for bid in sorted(st["branches"], key=int):
            self._select(bid)
            br = self.br
            br["await"] = None
            br.pop("blocked", None)
            br["cancelled"] = reason
            br.pop("tick", None)
            br["err"] = {"status": 130, "message": reason, "unit": "main"}
            if "final" in br:        # its code has ended; it only waits for its branches
                br["final"] = dict(br["final"], status=130, cancelled=reason)
                continue
            self.has_result = False
            if self.cancel_trap(reason):
                continue                # the INT/TERM trap runs, then the cancellation goes on
            done = self.unwind("cancel", 130)
            if done and not self.exit_trap(done):
                self.end_branch(done)
        return self._settle([])

    def deadline_passed(self):
        """A durable deadline passed during (or before) the last effect: raise status 124 from
        where the branch is, to be caught by the `timeout` (or `retry --timeout`) that set it."""
        self.has_result = False
        owner = self.deadline_owner()
        if owner is None:
            return None
        ctl = owner["t"].get("ctl", {})
        # it points at the command it stopped (a controller's own wait: at the `timeout`)
        err = self.error_record(self.code(self.br["frames"][-1]["c"]), ShellError(
            124, f"`{ctl.get('text', 'timeout')}` timed out"))
        if "span" not in err:
            err.update(unit=ctl.get("unit", "main"), span=ctl.get("span"))
        self.br["err"] = {**err, "deadline_of": owner["id"]}
        return self.unwind("raise", 124)

    def deadline_owner(self):
        """The frame of the running branch with the earliest durable deadline, or None."""
        owner = None                # (a loop: this runs for every request)
        for fr in self.br["frames"]:
            if "dl" in fr and (owner is None or fr["dl"] < owner["dl"]):
                owner = fr
        return owner

    def take_result(self):
        """The result of the request this instruction made (None when it made none)."""
        if self.has_result:
            self.has_result = False
            return True, self.result
        return False, None

    def effect(self, f: dict, req: dict):
        """For code re-run with memoised results: the result of this run's next effect. The
        request is compared with the one that result answered: a mismatch is a machine bug,
        never papered over."""
        inflight = f["i"]
        memo = inflight.setdefault("memo", [])
        n = inflight.get("mi", 0)
        key = _request_key(req)
        if n < len(memo):
            inflight["mi"] = n + 1
            asked, res = memo[n]
            if asked != key:
                raise RuntimeError(f"a re-run instruction asked for {req.get('op')!r} where "
                                   f"its effect {n + 1} was another request (machine bug)")
            return res
        inflight["mq"] = key
        raise NeedEffect(req)

    def memo_run(self, f: dict, fn):
        """Run `fn()` with memoised effects; returns (True, value) or (False, request)."""
        got, res = self.take_result()
        if got:
            f["i"].setdefault("memo", []).append([f["i"].pop("mq", None), res])
        f["i"]["mi"] = 0
        try:
            return True, fn()
        except NeedEffect as e:
            return False, e.req

    def step_key(self) -> str:
        return f"{self.state['job']}-{self.state['step'] + 1}"

    # -- errors and non-local exits -----------------------------------------------------------
    def error_record(self, code, e: ShellError) -> dict:
        if e.where is not None:                 # the failure a `retry` gave up on
            return {**e.where, "status": e.status, "message": e.message}
        span = e.span or self.node_span(code)
        unit = code.unit
        if unit == "sys":       # `retry -- CMD`'s command: its span is in the caller's unit
            unit = self.br["frames"][-1].get("u", "main") if self.br["frames"] else "main"
        rec = {"status": e.status, "message": e.message, "unit": unit}
        chain = self.call_chain()
        if span is not None:
            rec["span"] = [span.start, span.end, span.line, span.col]
            if chain:
                chain[-1][2:] = [self.unit_source(unit)[1], span.line]
        if len(chain) > 1:
            rec["chain"] = chain
        return rec

    def node_span(self, code):
        """The span of the running instruction's node, for an error raised without one."""
        f = self.br["frames"][-1] if self.br["frames"] else None
        if f is None or f["c"] != code.name or f["pc"] >= len(code.instrs):
            return None
        return next((x.span for x in code.instrs[f["pc"]][1:]
                     if isinstance(getattr(x, "span", None), A.Span)), None)

    def raise_error(self, f, code, e: ShellError):
        self.br["err"] = self.error_record(code, e)
        if e.fatal:
            # Nothing handles it from here on, and no branch may start any more (LimitError);
            # not even an ERR trap runs (it could call the runaway function again)
            self.br.setdefault("fatal", 1)
            self.state["fatal"] = 1
        elif self.err_trap(e.status, raising=True):
            return None                 # the ERR trap runs first, then the error goes on
        return self.unwind("raise", e.status)

    def unwind(self, kind: str, value):
        """Pop blocks and frames until something handles `kind`; returns a done record when
        nothing does."""
        st = self.br
        frames = st["frames"]
        # A passed deadline is handled only by the `timeout`/`retry` frame that set it: no
        # condition, `&&`/`||`, `catch` or pipeline stage inside its body takes it.
        deadline = (st.get("err") or {}).get("deadline_of") if kind == "raise" else None
        while frames:
            f = frames[-1]
            f["i"] = None
            blocks = f["b"]
            while blocks:
                b = blocks.pop()
                self.truncate_io(b["io"])
                t = b["t"]
                live = kind == "raise" and not st.get("cancelled") and not st.get("fatal") \
                    and (deadline is None or f.get("id") == deadline)
                if t == "h":
                    if live:
                        st["status"] = value
                        if b.get("catch"):
                            self.set_fm_error()
                        f["pc"] = b["to"]
                        return None
                elif t == "p":
                    if live or kind == "exit" and not st.get("cancelled") \
                            and not st.get("fatal"):
                        st["status"] = value
                        f["t"][b["ps"]].setdefault("errs", {})[str(b["n"])] = \
                            st.get("err") if kind == "raise" else None
                        f["pc"] = b["to"]
                        return None
                    # leaving the pipeline altogether (return, break, cancel): free its
                    # buffers; a stream it reads is closed first, at the stage's end
                    if self.leave_pipeline(f, b, kind, value):
                        return None
                elif t == "f":
                    f.setdefault("pend", []).append({"k": kind, "v": value, "st": st["status"]})
                    f["pc"] = b["to"]
                    return None
                elif t == "l":
                    if kind in ("break", "continue"):
                        if value > 1:
                            value -= 1
                            continue
                        if kind == "break":
                            f["pc"] = b["brk"]
                        else:
                            blocks.append(b)
                            f["pc"] = b["cont"]
                        return None
                elif t == "s":
                    if self.scope_exit_trap(b, kind, value):
                        blocks.append(b)       # left again once its EXIT trap has run
                        return None
                    self.restore(b["save"])
                    if b.get("cap") is not None:
                        buf = self.state["bufs"].pop(b["cap"], {"d": ""})
                        if kind == "exit" and (value == 0 or not st["opts"].get("e")):
                            f["t"][b["slot"]] = buf["d"].replace("\0", "").rstrip("\n")
                            self.substituted(f, b["slot"], value)
                            st["status"] = b.get("st", 0)
                            f["pc"] = b["end"]
                            return None
                        if kind == "exit":
                            # `$(exit 3)`: the substitution failed; that fails its command.
                            kind = "raise"
                            st["err"] = {"status": value, "message":
                                         f"command substitution exited with status {value}",
                                         "unit": b["unit"], "span": b["span"]}
                        if kind == "raise" and self.err_trap(value, raising=True):
                            return None        # out of the `$(...)`: its ERR trap fires here
                    elif kind == "exit":
                        st["status"] = value
                        f["pc"] = b["end"]
                        return None
            # the frame is exhausted
            fk = f["k"]
            if st.get("cancelled") and kind in ("return", "break", "continue"):
                kind = "cancel"       # a finally cannot swallow a cancellation
            frames.pop()
            if f.get("sc"):
                st["scopes"].pop()
            if fk == "trap" and "done" in f:
                return self.trap_unwound(f, kind, value)
            if fk in ("main", "br"):
                if st.get("cancelled"):
                    done = {"op": "done", "status": 130, "cancelled": st["cancelled"]}
                    if kind == "raise" and st.get("err", {}).get("status") != 130:
                        done["error"] = st.get("err")    # a finally failed on the way out
                    return done
                if kind == "raise":
                    return {"op": "done", "status": value, "error": st.get("err")}
                if kind in ("exit", "return"):
                    st["status"] = value
                return {"op": "done", "status": st["status"]}
            if kind == "return" and fk in ("fn", "src"):
                st["status"] = value
                return None
        return {"op": "done", "status": st["status"]}

    def set_fm_error(self):
        err = self.br.get("err") or {}
        text = err.get("message", "")
        span = err.get("span")
        if span:
            _, filename = self.unit_source(err["unit"])
            text = f"{filename}:{span[2]}:{span[3]}: {text}"
        self.set_scalar("FM_ERROR", text)

    # -- io table -----------------------------------------------------------------------------
    def fds(self) -> dict:
        return self.br["io"][-1]["fds"]

    def push_io(self, fds: dict, own=()):
        self.br["io"].append({"fds": fds, "own": list(own)})

    def truncate_io(self, depth: int):
        io = self.br["io"]
        while len(io) > depth:
            layer = io.pop()
            for b in layer["own"]:
                self.free_buf(b)

    def new_id(self) -> int:
        self.state["nid"] += 1
        return self.state["nid"]

    def new_buf(self, data=None) -> str:
        bid = str(self.new_id())
        self.state["bufs"][bid] = {"d": data if data is not None else "", "p": 0}
        return bid

    def free_buf(self, bid):
        self.state["bufs"].pop(str(bid), None)

    # -- scopes (subshells and $(...)) --------------------------------------------------------
    def save(self) -> dict:
        st = self.br
        saved = {"scopes": clone(st["scopes"]), "funcs": dict(st["funcs"]), "cwd": st["cwd"],
                 "opts": dict(st["opts"]), "a": list(self.positional())}
        for key in ("traps", "dirs"):
            if key in st:
                saved[key] = clone(st[key])
        return saved

    def restore(self, saved: dict):
        st = self.br
        depth = len(st["scopes"])
        st["scopes"] = saved["scopes"][:depth] if len(saved["scopes"]) >= depth \
            else saved["scopes"]
        st["funcs"] = saved["funcs"]
        st["cwd"] = saved["cwd"]
        st["opts"] = saved["opts"]
        for key in ("traps", "dirs"):
            if key in saved:
                st[key] = saved[key]
            else:
                st.pop(key, None)
        if "a" in saved:
            self.set_positional(saved["a"])

    # -- arithmetic ---------------------------------------------------------------------------
    def arith(self, text: A.ArithText) -> int:
        expr = text.text
        if text.parts:
            # $(...) / ${...} inside: expand to text first, as bash does
            code, f = self.cur
            expr = "".join(t for t, _ in Expander(self, code, f).segments(text.parts, True))
        try:
            return _arith.evaluate(expr, self, nounset=bool(self.br["opts"].get("u")))
        except _arith.ArithError as e:
            sp = text.span
            off = min(max(e.offset, 0), max(len(text.text) - 1, 0))
            span = A.Span(sp.start + off, sp.start + off + 1, sp.line, sp.col + off) \
                if "\n" not in text.text[:off] else sp
            raise ShellError(1, f"arithmetic: {e.message}", span) from None

    # -- instructions: control ----------------------------------------------------------------
    def op_END(self, f, code, ins):
        frames = self.br["frames"]
        if f["k"] in ("main", "br"):
            frames.pop()
            return {"op": "done", "status": self.br["status"]}
        frames.pop()
        if f.get("sc"):
            self.br["scopes"].pop()
        if f["k"] in ("eval", "src", "trap"):
            self.forget_unit(f["c"].rsplit(":", 1)[0])
        if f["k"] == "trap":
            return self.trap_ended(f)
        return None

    def forget_unit(self, unit: str):
        """Drop an eval'd or sourced text from the state once nothing refers to it, so a loop
        of distinct `eval`s does not grow the state (and every snapshot) without bound."""
        prefix = unit + ":"
        st = self.state
        for br in st["branches"].values():
            if any(fr["c"].startswith(prefix) for fr in br["frames"]) or \
                    any(c.startswith(prefix) for c in br["funcs"].values()):
                return
        st["units"].pop(unit, None)

    def op_RET(self, f, code, ins):
        return self.op_END(f, code, ins)

    def op_JMP(self, f, code, ins):
        f["pc"] = ins[1]

    def op_JF(self, f, code, ins):
        f["pc"] = ins[1] if self.br["status"] != 0 else f["pc"] + 1

    def op_JT(self, f, code, ins):
        f["pc"] = ins[1] if self.br["status"] == 0 else f["pc"] + 1

    def op_STATUS(self, f, code, ins):
        self.br["status"] = ins[1]
        f["pc"] += 1

    def op_NEG(self, f, code, ins):
        self.br["status"] = 0 if self.br["status"] else 1
        f["pc"] += 1

    def op_HANDLER(self, f, code, ins):
        b = {"t": "h", "to": ins[1], "io": len(self.br["io"])}
        if len(ins) > 2 and ins[2] == "catch":
            b["catch"] = 1
        f["b"].append(b)
        f["pc"] += 1

    def op_POPB(self, f, code, ins):
        b = f["b"].pop()
        self.truncate_io(b["io"])
        if b["t"] == "s":
            self.restore(b["save"])
        f["pc"] += 1

    def op_LOOP(self, f, code, ins):
        f["b"].append({"t": "l", "brk": ins[1], "cont": ins[2], "io": len(self.br["io"])})
        f["pc"] += 1

    def op_FORNEXT(self, f, code, ins):
        node, slot, exit_ = ins[1], ins[2], ins[3]
        b = f["b"][-1]
        items = f["t"].get(str(slot)) or []
        i = b.get("n", 0)
        if i >= len(items):
            f["pc"] = exit_
            return
        b["n"] = i + 1
        self.set_scalar(node.var, items[i], span=node.span)
        f["pc"] += 1

    def op_ARGS(self, f, code, ins):
        f["t"][str(ins[1])] = list(self.positional())
        f["pc"] += 1

    def op_FINALLY(self, f, code, ins):
        f["b"].append({"t": "f", "to": ins[1], "io": len(self.br["io"])})
        f["pc"] += 1

    def op_FIN_ENTER(self, f, code, ins):
        b = f["b"].pop()
        self.truncate_io(b["io"])
        f.setdefault("pend", []).append({"k": None, "st": self.br["status"]})
        f["pc"] += 1

    def op_FIN_END(self, f, code, ins):
        p = f["pend"].pop()
        if not f["pend"]:
            del f["pend"]
        self.br["status"] = p["st"]
        f["pc"] += 1
        if p["k"] is not None:
            raise Unwind(p["k"], p["v"])

    def op_SCOPE(self, f, code, ins):
        f["b"].append({"t": "s", "io": len(self.br["io"]), "save": self.save(),
                       "end": ins[1]})
        f["pc"] += 1

    def op_SCOPE_END(self, f, code, ins):
        if self.scope_exit_trap(f["b"][-1]):
            return None                        # runs again once the EXIT trap has run
        b = f["b"].pop()
        self.truncate_io(b["io"])
        self.restore(b["save"])
        f["pc"] += 1

    def op_CHECK(self, f, code, ins):
        st = self.br
        f["pc"] += 1
        if st["status"] != 0 and st["opts"].get("e"):
            node = ins[1]
            raise ShellError(st["status"], f"`{self.snippet(code, node.span)}` exited with "
                             f"status {st['status']}", node.span)
        if st["status"] != 0 and "traps" in st:
            self.err_trap(st["status"])

    def op_CAPBEGIN(self, f, code, ins):
        cs = ins[1]
        bid = self.new_buf()
        st = self.br
        sp = cs.span
        b = {"t": "s", "io": len(st["io"]), "save": self.save(), "cap": bid,
             "slot": str(ins[2]), "end": ins[3], "unit": code.unit,
             "span": [sp.start, sp.end, sp.line, sp.col], "st": st["status"]}
        f["b"].append(b)
        fds = dict(self.fds())
        fds["1"] = {"kind": "buf", "id": bid}
        self.push_io(fds)
        f["pc"] += 1

    def op_CAPEND(self, f, code, ins):
        if self.scope_exit_trap(f["b"][-1]):
            return None                        # runs again once the EXIT trap has run
        b = f["b"].pop()
        self.truncate_io(b["io"])
        self.restore(b["save"])
        buf = self.state["bufs"].pop(b["cap"], {"d": ""})
        # as in bash, NUL bytes are dropped: no argument or variable can hold one
        f["t"][str(ins[1])] = buf["d"].replace("\0", "").rstrip("\n")
        self.substituted(f, ins[1], self.br["status"])
        # `$?` in the command's words is the status from before it (bash: before the
        # substitutions that ran first; the expander sees each one's status after it)
        self.br["status"] = b.get("st", 0)
        f["pc"] += 1

    def substituted(self, f, slot, status: int):
        """Record the status of the `$(...)` whose output is in `slot`: the command's own
        status when it has no words (`x=$(cmd)`), and `$?` after it in the expansion."""
        f["t"]["cst"] = status
        f["t"][f"{slot}?"] = status

    def op_READFILE(self, f, code, ins):
        r, slot = ins[1], ins[2]
        if f["i"] is None:
            f["i"] = {"op": "READFILE"}
        ok, val = self.memo_run(f, lambda: self.read_whole(f, code, r))
        if not ok:
            return val
        f["i"] = None
        text, status = val
        f["t"][str(slot)] = text.replace("\0", "").rstrip("\n")
        self.substituted(f, slot, status)
        f["pc"] += 1

    def read_whole(self, f, code, r):
        """`$(< file)`: (the file's text, 0), or ("", 1) after an error message (raised
        under errexit, like any failing substitution)."""
        path = Expander(self, code, f).string(r.target)
        res = self.effect(f, {"op": "read_file", "path": self.abspath(path),
                              "cwd": self.br["cwd"], "display": path})
        if not res.get("error"):
            return res.get("data", ""), 0
        if self.br["opts"].get("e"):
            raise ShellError(1, res["error"], r.target.span)
        self.effect(f, {"op": "write", "target": {"kind": "term", "fd": 2},
                        "data": f"fm: {res['error']}\n"})
        return "", 1

    def op_FUNC(self, f, code, ins):
        self.br["funcs"][ins[1]] = ins[2]
        self.br["status"] = 0
        f["pc"] += 1

    def op_UNSUPPORTED(self, f, code, ins):
        raise ShellError(2, ins[2], ins[1].span)

    def op_ARITH(self, f, code, ins):
        text, sets = ins[1], ins[2]
        if not text.text.strip():
            v = 1
        else:
            v = self.arith(text)
        if sets:
            self.br["status"] = 0 if v != 0 else 1
        f["pc"] += 1

    def op_CASEWORD(self, f, code, ins):
        f["t"][str(ins[2])] = Expander(self, code, f).string(ins[1])
        f["pc"] += 1

    def op_CASEPAT(self, f, code, ins):
        from flowmetal.machine import pattern
        value = f["t"].get(str(ins[2]), "")
        ex = Expander(self, code, f)
        for w in ins[1]:
            if pattern.match(ex.pattern_segments(w), value):
                f["pc"] = ins[3]
                return
        f["pc"] += 1

    def op_COND(self, f, code, ins):
        from flowmetal.machine.cond import evaluate_cond
        if f["i"] is None:
            f["i"] = {}
        ok, val = self.memo_run(f, lambda: evaluate_cond(self, code, f, ins[1].expr))
        if not ok:
            return val
        f["i"] = None
        self.br["status"] = 0 if val else 1
        f["pc"] += 1
        if not val and self.br["opts"].get("e"):
            node = ins[1]
            raise ShellError(1, f"`{self.snippet(code, node.span)}` is false", node.span)
        if not val and "traps" in self.br:
            self.err_trap(1)

    # -- helpers ------------------------------------------------------------------------------
    def snippet(self, code, span) -> str:
        text, _ = self.unit_source(code.unit)
        s = text[span.start:span.end]
        s = " ".join(s.split())
        return s if len(s) <= 60 else s[:57] + "..."
