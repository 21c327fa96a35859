"""The step machine: runs compiled instructions over a JSON state until it needs an effect."""
from __future__ import annotations

from flowmetal.lang import ast as A
from flowmetal.machine import arith as _arith
from flowmetal.machine.command import CommandOps
from flowmetal.machine.durable import SYS, DurableOps
from flowmetal.machine.errors import NeedEffect, ShellError, Unwind
from flowmetal.machine.expand import Expander
from flowmetal.machine.state import clone, initial_state
from flowmetal.machine.variables import Variables

__all__ = ["Machine", "initial_state"]

_UNITS: dict = {}      # (unit name, sha1 of text) -> compiled Unit, shared by machines


def _digest(text: str) -> str:
    import hashlib   # only eval and source need it; kept off the start-up path
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()


def _compile(unit: str, text: str, filename: str):
    key = (unit, text)
    u = _UNITS.get(key)
    if u is None:
        from flowmetal.lang import parse
        from flowmetal.lang.compile import compile_unit
        u = compile_unit(parse(text, filename), unit)
        _UNITS[key] = u
    return u


class Machine(Variables, CommandOps, DurableOps):
    """Advance a job's state; `run(result)` returns the next effect request or a done record."""

    def __init__(self, state: dict, source: str):
        self.state = state
        self.source = source
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

    def code(self, name: str):
        c = self.codes.get(name) or SYS.get(name)
        if c is None:
            self._load_unit(name.rsplit(":", 1)[0])
            c = self.codes[name]
        return c

    # -- the loop -----------------------------------------------------------------------------
    def run(self, result=None) -> dict:
        st = self.state
        frames = st["frames"]
        if st.get("await"):
            st["await"] = None
            self.result, self.has_result = result, True
            if isinstance(result, dict) and result.get("timeout"):
                done = self.deadline_passed()
                if done:
                    return done
        else:
            self.result, self.has_result = None, False
        while True:
            if not frames:
                return {"op": "done", "status": st["status"]}
            f = frames[-1]
            code = self.codes.get(f["c"]) or self.code(f["c"])
            self.cur = (code, f)
            ins = code.instrs[f["pc"]]
            try:
                req = getattr(self, "op_" + ins[0])(f, code, ins)
            except ShellError as e:
                done = self.raise_error(f, code, e)
                if done:
                    return done
                continue
            except Unwind as u:
                done = self.unwind(u.kind, u.value)
                if done:
                    return done
                continue
            if req is not None:
                if req["op"] == "done":
                    return req
                st["step"] += 1
                st["await"] = True
                deadline = None
                for fr in frames:
                    if "dl" in fr and (deadline is None or fr["dl"] < deadline):
                        deadline = fr["dl"]
                if deadline is not None:
                    req["deadline"] = deadline
                return req

    def cancel(self, reason: str) -> dict:
        """Cancel the job where it stands (Ctrl-C, `fm cancel`): the pending effect, if any, is
        abandoned; no `catch` or condition handles the cancellation, every `finally` on the way
        out runs. Returns the next request (a finally's effect) or the done record (status
        130, "cancelled": true)."""
        st = self.state
        st["await"] = None
        self.has_result = False
        st["cancelled"] = reason
        st["err"] = {"status": 130, "message": reason, "unit": "main"}
        done = self.unwind("cancel", 130)
        return done if done else self.run()

    def deadline_passed(self):
        """A durable deadline passed during (or before) the last effect: raise status 124 from
        where the job is, to be caught by the `timeout` (or `retry --timeout`) that set it."""
        self.has_result = False
        frames = self.state["frames"]
        owner = min((fr for fr in frames if "dl" in fr), key=lambda fr: fr["dl"], default=None)
        if owner is None:
            return None
        ctl = owner["t"].get("ctl", {})
        self.state["err"] = {"status": 124, "message": f"`{ctl.get('text', 'timeout')}` timed out",
                             "unit": ctl.get("unit", "main"), "span": ctl.get("span"),
                             "deadline_of": owner["id"]}
        return self.unwind("raise", 124)

    def take_result(self):
        """The result of the request this instruction made (None when it made none)."""
        if self.has_result:
            self.has_result = False
            return True, self.result
        return False, None

    def effect(self, f: dict, req: dict):
        """For code re-run with memoised results: the result of this run's next effect."""
        inflight = f["i"]
        memo = inflight.setdefault("memo", [])
        n = inflight.get("mi", 0)
        if n < len(memo):
            inflight["mi"] = n + 1
            return memo[n]
        raise NeedEffect(req)

    def memo_run(self, f: dict, fn):
        """Run `fn()` with memoised effects; returns (True, value) or (False, request)."""
        got, res = self.take_result()
        if got:
            f["i"].setdefault("memo", []).append(res)
        f["i"]["mi"] = 0
        try:
            return True, fn()
        except NeedEffect as e:
            return False, e.req

    def step_key(self) -> str:
        return f"{self.state['job']}-{self.state['step'] + 1}"

    # -- errors and non-local exits -----------------------------------------------------------
    def error_record(self, code, e: ShellError) -> dict:
        span = e.span
        rec = {"status": e.status, "message": e.message, "unit": code.unit}
        if span is not None:
            rec["span"] = [span.start, span.end, span.line, span.col]
        return rec

    def raise_error(self, f, code, e: ShellError):
        self.state["err"] = self.error_record(code, e)
        return self.unwind("raise", e.status)

    def unwind(self, kind: str, value):
        """Pop blocks and frames until something handles `kind`; returns a done record when
        nothing does."""
        st = self.state
        frames = st["frames"]
        while frames:
            f = frames[-1]
            f["i"] = None
            blocks = f["b"]
            while blocks:
                b = blocks.pop()
                self.truncate_io(b["io"])
                t = b["t"]
                if t == "h":
                    if kind == "raise" and not st.get("cancelled"):
                        st["status"] = value
                        if b.get("catch"):
                            self.set_fm_error()
                        f["pc"] = b["to"]
                        return None
                elif t == "p":
                    if kind in ("raise", "exit") and not st.get("cancelled"):
                        st["status"] = value
                        f["t"][b["ps"]].setdefault("errs", {})[str(b["n"])] = \
                            st.get("err") if kind == "raise" else None
                        f["pc"] = b["to"]
                        return None
                    # leaving the pipeline altogether (return, break, cancel): free its buffers
                    p = f["t"].pop(b["ps"], None) or {}
                    for bid in (p.get("in"), p.get("out")):
                        if bid is not None:
                            self.free_buf(bid)
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
                    self.restore(b["save"])
                    if b.get("cap") is not None:
                        buf = st["bufs"].pop(b["cap"], {"d": ""})
                        if kind == "exit" and value == 0:
                            f["t"][b["slot"]] = buf["d"].rstrip("\n")
                            st["status"] = 0
                            f["pc"] = b["end"]
                            return None
                        if kind == "exit":
                            # `$(exit 3)`: the substitution failed; that fails its command.
                            kind = "raise"
                            st["err"] = {"status": value, "message":
                                         f"command substitution exited with status {value}",
                                         "unit": b["unit"], "span": b["span"]}
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
            if fk == "main":
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
        err = self.state.get("err") or {}
        text = err.get("message", "")
        span = err.get("span")
        if span:
            _, filename = self.unit_source(err["unit"])
            text = f"{filename}:{span[2]}:{span[3]}: {text}"
        self.set_scalar("FM_ERROR", text)

    # -- io table -----------------------------------------------------------------------------
    def fds(self) -> dict:
        return self.state["io"][-1]["fds"]

    def push_io(self, fds: dict, own=()):
        self.state["io"].append({"fds": fds, "own": list(own)})

    def truncate_io(self, depth: int):
        io = self.state["io"]
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
        st = self.state
        return {"scopes": clone(st["scopes"]), "funcs": dict(st["funcs"]), "cwd": st["cwd"],
                "opts": dict(st["opts"]), "a": list(self.positional())}

    def restore(self, saved: dict):
        st = self.state
        depth = len(st["scopes"])
        st["scopes"] = saved["scopes"][:depth] if len(saved["scopes"]) >= depth \
            else saved["scopes"]
        st["funcs"] = saved["funcs"]
        st["cwd"] = saved["cwd"]
        st["opts"] = saved["opts"]
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
            return _arith.evaluate(expr, self, nounset=bool(self.state["opts"].get("u")))
        except _arith.ArithError as e:
            sp = text.span
            off = min(max(e.offset, 0), max(len(text.text) - 1, 0))
            span = A.Span(sp.start + off, sp.start + off + 1, sp.line, sp.col + off) \
                if "\n" not in text.text[:off] else sp
            raise ShellError(1, f"arithmetic: {e.message}", span) from None

    # -- instructions: control ----------------------------------------------------------------
    def op_END(self, f, code, ins):
        frames = self.state["frames"]
        if f["k"] == "main":
            frames.pop()
            return {"op": "done", "status": self.state["status"]}
        frames.pop()
        if f.get("sc"):
            self.state["scopes"].pop()
        if f["k"] in ("eval", "src"):
            self.forget_unit(f["c"].rsplit(":", 1)[0])
        return None

    def forget_unit(self, unit: str):
        """Drop an eval'd or sourced text from the state once nothing refers to it, so a loop
        of distinct `eval`s does not grow the state (and every snapshot) without bound."""
        prefix = unit + ":"
        st = self.state
        if any(fr["c"].startswith(prefix) for fr in st["frames"]) or \
                any(c.startswith(prefix) for c in st["funcs"].values()):
            return
        st["units"].pop(unit, None)

    def op_RET(self, f, code, ins):
        return self.op_END(f, code, ins)

    def op_JMP(self, f, code, ins):
        f["pc"] = ins[1]

    def op_JF(self, f, code, ins):
        f["pc"] = ins[1] if self.state["status"] != 0 else f["pc"] + 1

    def op_JT(self, f, code, ins):
        f["pc"] = ins[1] if self.state["status"] == 0 else f["pc"] + 1

    def op_STATUS(self, f, code, ins):
        self.state["status"] = ins[1]
        f["pc"] += 1

    def op_NEG(self, f, code, ins):
        self.state["status"] = 0 if self.state["status"] else 1
        f["pc"] += 1

    def op_HANDLER(self, f, code, ins):
        b = {"t": "h", "to": ins[1], "io": len(self.state["io"])}
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
        f["b"].append({"t": "l", "brk": ins[1], "cont": ins[2], "io": len(self.state["io"])})
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
        f["b"].append({"t": "f", "to": ins[1], "io": len(self.state["io"])})
        f["pc"] += 1

    def op_FIN_ENTER(self, f, code, ins):
        b = f["b"].pop()
        self.truncate_io(b["io"])
        f.setdefault("pend", []).append({"k": None, "st": self.state["status"]})
        f["pc"] += 1

    def op_FIN_END(self, f, code, ins):
        p = f["pend"].pop()
        if not f["pend"]:
            del f["pend"]
        self.state["status"] = p["st"]
        f["pc"] += 1
        if p["k"] is not None:
            raise Unwind(p["k"], p["v"])

    def op_SCOPE(self, f, code, ins):
        f["b"].append({"t": "s", "io": len(self.state["io"]), "save": self.save(),
                       "end": ins[1]})
        f["pc"] += 1

    def op_SCOPE_END(self, f, code, ins):
        b = f["b"].pop()
        self.truncate_io(b["io"])
        self.restore(b["save"])
        f["pc"] += 1

    def op_CHECK(self, f, code, ins):
        st = self.state
        f["pc"] += 1
        if st["status"] != 0 and st["opts"].get("e"):
            node = ins[1]
            raise ShellError(st["status"], f"`{self.snippet(code, node.span)}` exited with "
                             f"status {st['status']}", node.span)

    def op_CAPBEGIN(self, f, code, ins):
        cs = ins[1]
        bid = self.new_buf()
        st = self.state
        b = {"t": "s", "io": len(st["io"]), "save": self.save(), "cap": bid,
             "slot": str(ins[2]), "end": ins[3], "unit": code.unit, "span": [cs.span.start, cs.span.end, cs.span.line,
                                         cs.span.col]}
        f["b"].append(b)
        fds = dict(self.fds())
        fds["1"] = {"kind": "buf", "id": bid}
        self.push_io(fds)
        f["pc"] += 1

    def op_CAPEND(self, f, code, ins):
        b = f["b"].pop()
        self.truncate_io(b["io"])
        self.restore(b["save"])
        buf = self.state["bufs"].pop(b["cap"], {"d": ""})
        # as in bash, NUL bytes are dropped: no argument or variable can hold one
        f["t"][str(ins[1])] = buf["d"].replace("\0", "").rstrip("\n")
        f["t"]["cst"] = self.state["status"]
        f["pc"] += 1

    def op_FUNC(self, f, code, ins):
        self.state["funcs"][ins[1]] = ins[2]
        self.state["status"] = 0
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
            self.state["status"] = 0 if v != 0 else 1
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
        self.state["status"] = 0 if val else 1
        f["pc"] += 1
        if not val and self.state["opts"].get("e"):
            node = ins[1]
            raise ShellError(1, f"`{self.snippet(code, node.span)}` is false", node.span)

    # -- helpers ------------------------------------------------------------------------------
    def snippet(self, code, span) -> str:
        text, _ = self.unit_source(code.unit)
        s = text[span.start:span.end]
        s = " ".join(s.split())
        return s if len(s) <= 60 else s[:57] + "..."
