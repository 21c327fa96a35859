"""Durable builtins (SPEC 1.4): sleep, now, callback, await, retry, timeout, once, json, and
journaled variables.

`retry` and `timeout` run their body in a frame of its own under a *controller* frame whose
code is built here (the `sys` unit). The controller is ordinary machine code: its handler
catches the body's errors, and its waits and deadlines are effects like any other, so a crash
in the middle of a backoff resumes exactly there.
"""
from __future__ import annotations

from flowmetal.lang import ast as A
from flowmetal.lang.support import OptionError, parse_retry_options
from flowmetal.machine.builtins import builtin
from flowmetal.machine.errors import ShellError
from flowmetal.machine.state import frame

# Code of the controller frames. Each instruction list is indexed by pc.
SYS_CODES = {
    # run an already expanded argv as a command (`retry -- cmd`, `timeout 5 -- cmd`)
    "sys:run": [("RUNARGV",), ("RET",)],
    # 0 start; 1 guard the body; 2 run it; 3 it returned; 4 judge its status; 5 it raised
    "sys:retry": [("RETRY_START",), ("HANDLER", 5), ("BODY",), ("POPB",), ("RETRY_DONE",),
                  ("RETRY_FAILED",)],
    "sys:timeout": [("TIMEOUT_START",), ("HANDLER", 5), ("BODY",), ("POPB",), ("CTL_RET",),
                    ("TIMEOUT_FAILED",)],
}

DURABLE = {"sleep", "retry", "timeout", "once", "now", "json", "callback", "await"}


class _SysCode:
    __slots__ = ("name", "unit", "instrs", "slots", "kind", "fname")

    def __init__(self, name, instrs):
        self.name, self.unit, self.instrs, self.slots = name, "sys", instrs, {}
        self.kind, self.fname = "fn", name


SYS = {name: _SysCode(name, instrs) for name, instrs in SYS_CODES.items()}


def _duration(c, text: str, what: str) -> float:
    from flowmetal.machine.duration import DurationError, parse_duration
    try:
        return parse_duration(text)
    except DurationError as e:
        raise ShellError(2, f"{what}: {e.message}", c.span) from None


def _fmt(seconds: float) -> str:
    from flowmetal.machine.duration import format_duration
    return format_duration(seconds)


def clock_request(c, **fields) -> dict:
    """A `clock` request from builtin call `c`. Times are told in the job's zone: its exported
    TZ (as its programs see it) goes in the request when it has one; a job without TZ gets
    the runner's local time, and its requests stay as they always were."""
    req = {"op": "clock", **fields}
    tz = c.vm.exported_env().get("TZ")
    if tz is not None:
        req["tz"] = tz
    return req


@builtin("sleep")
def b_sleep(c):
    args = c.argv[1:]
    if not args:
        return c.fail("sleep: usage: sleep DURATION... | sleep --until TIME", 2)
    now = c.effect(clock_request(c, format="%z"))
    if args[0] == "--until" or args[0].startswith("--until="):
        text = args[0][8:] if args[0].startswith("--until=") else " ".join(args[1:])
        from flowmetal.machine.duration import DurationError, parse_time
        tz = now.get("text") or "+0000"
        try:
            offset = (1 if tz[0] == "+" else -1) * (int(tz[1:3]) * 3600 + int(tz[3:5]) * 60)
            due = parse_time(text, now["now"], offset)
        except (DurationError, ValueError, IndexError) as e:
            raise ShellError(2, f"sleep --until: {getattr(e, 'message', e)}", c.span) from None
        why = f"sleep --until {text}"
    else:
        total = sum(_duration(c, a, "sleep") for a in args)
        due = now["now"] + total
        why = f"sleep {' '.join(args)}"
    c.effect({"op": "sleep", "until": due, "why": why})
    return 0


@builtin("now")
def b_now(c):
    args = c.argv[1:]
    fmt = ""
    if args:
        if not args[0].startswith("+") or len(args) > 1:
            return c.fail("now: usage: now [+FORMAT]", 2)
        fmt = args[0][1:]
    res = c.effect(clock_request(c, format=fmt))
    c.out(res.get("text", str(res["now"])) + "\n")
    return 0


@builtin("json")
def b_json(c):
    from flowmetal.machine.jsontool import run as json_run
    from flowmetal.machine.reads import read_all_stdin
    args = c.argv[1:]
    needs_input = bool(args) and args[0] in ("get", "len", "keys", "valid", "pretty")
    data = read_all_stdin(c) if needs_input else ""
    status, out, err = json_run(args, data)
    c.out(out)
    if err:
        c.err(err if err.endswith("\n") else err + "\n")
        c.msg = err.strip().splitlines()[0]
    return status


# -- callback and await (connectors/inbox.py) ---------------------------------------------------

def _flags(c, args: list, names: dict) -> tuple[dict, list]:
    """`--name VALUE` / `--name=VALUE` options of `names` ({flag: key}) and the operands."""
    opts, rest = {}, []
    while args:
        a = args.pop(0)
        flag, eq, value = a.partition("=")
        if flag in names:
            if not eq:
                if not args:
                    raise ShellError(2, f"{c.argv[0]}: {flag} needs a value", c.span)
                value = args.pop(0)
            opts[names[flag]] = value
        elif a.startswith("--") and a != "--":
            raise ShellError(2, f"{c.argv[0]}: unknown option `{a}`", c.span)
        else:
            rest.append(a)
    return opts, rest


@builtin("callback")
def b_callback(c):
    opts, rest = _flags(c, c.argv[1:], {"--name": "name", "--method": "method"})
    if rest:
        raise ShellError(2, "callback: usage: callback [--name NAME] [--method GET|POST]", c.span)
    method = opts.get("method", "").upper()
    if method not in ("", "GET", "POST"):
        raise ShellError(2, f"callback: --method must be GET or POST, not `{opts['method']}`",
                         c.span)
    req = {"op": "callback", "job": c.vm.state["job"]}
    if opts.get("name"):
        req["name"] = opts["name"]
    if method:
        req["method"] = method
    res = c.effect(req)
    if res.get("error"):
        c.err(f"fm: {res['error']}\n")
        return c.fail(res["error"])
    if opts.get("name"):      # for `fm ps` and the status line: what an await waits for
        c.vm.state.setdefault("cbs", {})[res["token"]] = opts["name"]
    c.out(res["url"] + "\n")
    return 0


@builtin("await")
def b_await(c):
    opts, rest = _flags(c, c.argv[1:], {"--event": "event", "--timeout": "timeout"})
    if len(rest) != (0 if "event" in opts else 1):
        raise ShellError(2, "await: usage: await CALLBACK [--timeout D] | "
                            "await --event NAME [--timeout D]", c.span)
    req = {"op": "await", "job": c.vm.state["job"]}
    if "event" in opts:
        from flowmetal.journal.jobstore import EVENT_RE
        if not EVENT_RE.match(opts["event"]):
            raise ShellError(2, f"await: bad event name `{opts['event']}` "
                                "(1-64 of A-Z a-z 0-9 _ . -)", c.span)
        req["event"] = opts["event"]
        req["why"] = f"await --event {opts['event']}"
    else:
        req["key"] = _token_of(c, rest[0])
        name = c.vm.state.get("cbs", {}).get(req["key"])
        if name:
            req["name"] = name
        req["why"] = f"await {rest[0]}"     # the URL, on the status line of a terminal
    if "timeout" in opts:
        seconds = _duration(c, opts["timeout"], "await --timeout")
        req["until"] = c.effect(clock_request(c))["now"] + seconds
    res = c.effect(req)
    if res.get("expired"):
        label = f" after {opts['timeout']}" if "timeout" in opts else ""
        return c.fail(f"await: nothing came{label}", 124)
    data = res["delivery"]
    if "event" in opts:
        c.out(str(data.get("data", "")))
        return 0
    import json
    method = str(data.get("method", ""))
    c.vm.assign_named("CALLBACK_METHOD", method, span=c.span)
    c.vm.assign_named("CALLBACK_HEADERS", json.dumps(data.get("headers") or {}), span=c.span)
    c.out(json.dumps(data.get("query") or {}) if method == "GET"
          else str(data.get("body", "")))
    return 0


def _token_of(c, target: str) -> str:
    """The token of a callback given as its URL (what `callback` printed) or as the token."""
    from flowmetal.journal.jobstore import callback_token
    token = callback_token(target)
    if token is None:
        raise ShellError(2, f"await: `{target[:80]}` is not a callback URL or token", c.span)
    return token


# -- retry and timeout -------------------------------------------------------------------------

def _split_body(c, args):
    """After the options: (block code or None, argv or None)."""
    if c.block is not None:
        if args:
            raise ShellError(2, f"{c.argv[0]}: unexpected `{args[0]}` before the block", c.span)
        return c.block, None
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        raise ShellError(2, f"{c.argv[0]}: a command or a {{ block }} is required", c.span)
    return None, list(args)


def _controller(c, code: str, ctl: dict) -> dict:
    vm = c.vm
    span = c.span
    ctl["span"] = [span.start, span.end, span.line, span.col]
    ctl["unit"] = c.code.unit
    ctl["text"] = vm.snippet(c.code, span)
    f = frame(code, "ctl", id=vm.new_id())
    f["t"]["ctl"] = ctl
    return f


@builtin("retry")
def b_retry(c):
    defaults = c.vm.state.get("settings", {}).get("retry", {})
    ctl = {"attempts": int(defaults.get("attempts", 5)), "delay": float(defaults.get("delay", 1)),
           "backoff": float(defaults.get("backoff", 2)),
           "max_delay": float(defaults.get("max_delay", 300)), "jitter": False,
           "timeout": None, "on": None, "n": 0}
    try:
        opts, args = parse_retry_options(c.argv[1:])
    except OptionError as e:
        raise ShellError(2, e.message, c.span) from None
    ctl["jitter"] = opts.pop("jitter", False)
    for key, (flag, value) in opts.items():
        ctl[key] = _retry_value(c, key, flag, value)
    ctl["code"], ctl["argv"] = _split_body(c, args)
    c.push = _controller(c, "sys:retry", ctl)
    return 0


def _retry_value(c, key: str, flag: str, value: str):
    """The value of one retry option (lang/support.py: RETRY_OPTIONS) for the controller."""
    try:
        if key == "attempts":
            n = int(value)
        elif key == "backoff":
            n = float(value)
        elif key == "on":
            return [int(s) for s in value.split(",") if s]
        else:
            return _duration(c, value, f"retry {flag}")
        if n < 1:
            raise ValueError
        return n
    except ValueError:
        raise ShellError(2, f"retry: bad value `{value}` for {flag}", c.span) from None


@builtin("timeout")
def b_timeout(c):
    args = c.argv[1:]
    if not args:
        raise ShellError(2, "timeout: usage: timeout DURATION { BODY } | timeout DURATION -- CMD",
                         c.span)
    seconds = _duration(c, args[0], "timeout")
    ctl = {"seconds": seconds, "label": args[0]}
    ctl["code"], ctl["argv"] = _split_body(c, args[1:])
    c.push = _controller(c, "sys:timeout", ctl)
    return 0


def _where(err: dict) -> dict | None:
    """The location of a body's error, for the error of the `retry` that gives up on it."""
    if not isinstance(err.get("span"), list):
        return None
    return {k: err[k] for k in ("unit", "span", "chain") if k in err}


def _dyn_request(name: str) -> dict:
    """The effect that draws a DYNVARS name: `RANDOM`, `EPOCH...` or `~user`."""
    if name == "RANDOM":
        return {"op": "random"}
    if name[0] == "~":
        return {"op": "home", "user": name[1:]}
    return {"op": "clock"}


class DurableOps:
    """Mixin for the Machine: journaled variables and the controller instructions."""

    def op_DYNVARS(self, f, code, ins):
        """Draw $RANDOM / $EPOCHSECONDS / $EPOCHREALTIME values and look up `~user` homes for
        the next command: effects, so a resumed job sees the values it saw before."""
        i = f["i"]
        if i is None:
            i = f["i"] = {"op": "DYNVARS", "v": []}
        got, res = self.take_result()
        if got:
            i["v"].append(res)
        names = ins[1]
        if len(i["v"]) < len(names):
            return _dyn_request(names[len(i["v"])])
        dyn = {}
        for name, res in zip(names, i["v"]):
            if name[0] == "~":
                # merged, not replaced: PIPE expands every stage's redirects after all of them
                f["t"].setdefault("home", {})[name[1:]] = res.get("home")
                continue
            if name == "RANDOM":
                v = str(res["int"])
            elif name == "EPOCHSECONDS":
                v = str(int(res["now"]))
            else:
                v = f"{res['now']:.6f}"
            dyn.setdefault(name, []).append(v)
        f["t"]["dyn"] = dyn
        f["i"] = None
        f["pc"] += 1
        return None

    def dynamic(self, name: str):
        f = self.cur[1]
        vals = f["t"].get("dyn", {}).get(name)
        if vals:
            return vals.pop(0)
        raise ShellError(1, f"`${name}` cannot be read here (it is journaled, and only "
                         "plain uses in a command are)", None)

    # -- the body -----------------------------------------------------------------------------
    def op_BODY(self, f, code, ins):
        ctl = f["t"]["ctl"]
        f["pc"] += 1
        if ctl.get("code"):
            body = frame(ctl["code"], "block")
        else:
            body = frame("sys:run", "block", u=ctl["unit"])
            body["t"].update(argv=list(ctl["argv"]), span=ctl["span"])
        self.br["frames"].append(body)

    def op_RUNARGV(self, f, code, ins):
        sp = f["t"]["span"]
        node = A.SimpleCommand((), (), (), A.Span(*sp))
        if f["i"] is None:
            f["t"]["0"] = f["t"].pop("argv", [])
        return self.op_CMD(f, self.code(f"{f['u']}:0") if "u" in f else code,
                           ("CMD", node, 0, None))

    def ctl_return(self, f, status: int, msg: str | None = None, where: dict | None = None):
        """Leave controller frame `f` with `status`; a failure's `msg` (and the `where` of the
        error it reports on) become the error of the `retry`/`timeout` command."""
        st = self.br
        st["status"] = status
        if msg:
            st["ctlmsg"] = msg
        if where:
            st["ctlwhere"] = where
        st["frames"].pop()

    def op_CTL_RET(self, f, code, ins):
        self.ctl_return(f, self.br["status"])

    def _clock(self):
        """(True, now) from this instruction's clock effect, or (False, request)."""
        got, res = self.take_result()
        if got:
            return True, res["now"]
        return False, {"op": "clock"}

    # -- timeout ------------------------------------------------------------------------------
    def op_TIMEOUT_START(self, f, code, ins):
        ok, val = self._clock()
        if not ok:
            return val
        ctl = f["t"]["ctl"]
        f["dl"] = val + ctl["seconds"]
        f["pc"] += 1
        return None

    def op_TIMEOUT_FAILED(self, f, code, ins):
        err = self.br.get("err") or {}
        ctl = f["t"]["ctl"]
        if err.get("deadline_of") == f["id"]:
            self.ctl_return(f, 124, f"`{ctl['text']}` timed out after {_fmt(ctl['seconds'])}",
                            _where(err))
            return None
        # the body failed on its own: that failure goes on up
        self.br["frames"].pop()
        from flowmetal.machine.errors import Unwind
        raise Unwind("raise", err.get("status", self.br["status"]))

    # -- retry --------------------------------------------------------------------------------
    def op_RETRY_START(self, f, code, ins):
        ctl = f["t"]["ctl"]
        if ctl.get("timeout") is not None and "dl" not in f:
            ok, val = self._clock()
            if not ok:
                return val
            f["dl"] = val + ctl["timeout"]
        ctl["n"] = 1
        f["pc"] += 1
        return None

    def op_RETRY_DONE(self, f, code, ins):
        if self.br["status"] == 0:
            self.ctl_return(f, 0)
            return None
        self.br["err"] = None
        f["pc"] = 5          # a non-zero status without an error: judge it as a failure
        return None

    def op_RETRY_FAILED(self, f, code, ins):
        st = self.br
        ctl = f["t"]["ctl"]
        if f["i"] is None:
            err = st.get("err") or {}
            f["i"] = {"op": "RETRY", "st": err.get("status", st["status"]) or 1,
                      "err": err.get("message"), "where": _where(err)}
            if err.get("deadline_of") == f["id"]:
                self.ctl_return(f, 124, f"`{ctl['text']}` timed out after "
                                f"{_fmt(ctl['timeout'])} ({ctl['n']} attempts)", _where(err))
                return None
        i = f["i"]
        status = i["st"]
        n = ctl["n"]
        if n >= ctl["attempts"] or (ctl["on"] is not None and status not in ctl["on"]):
            why = "" if n < ctl["attempts"] else f" after {n} attempt{'s' * (n > 1)}"
            msg = f"`{ctl['text']}` failed{why}"
            if i.get("err"):
                msg += f": {i['err']}"
            f["i"] = None
            self.ctl_return(f, status, msg, i.get("where"))
            return None
        ok, val = self.memo_run(f, lambda: self._retry_wait(f, ctl, status, n))
        if not ok:
            return val
        f["i"] = None
        ctl["n"] = n + 1
        f["pc"] = 1
        return None

    def _retry_wait(self, f, ctl, status, n):
        """The wait before attempt n+1: a durable timer (jitter drawn and journaled)."""
        delay = min(ctl["delay"] * ctl["backoff"] ** (n - 1), ctl["max_delay"])
        if ctl["jitter"]:
            delay *= self.effect(f, {"op": "random"})["float"]
        now = self.effect(f, {"op": "clock"})["now"]
        note = (f"fm: retry: attempt {n} of {ctl['attempts']} failed (status {status}); "
                f"next in {_fmt(delay)}\n")
        t = self.fds().get("2", {"kind": "closed"})
        if t["kind"] in ("term", "file"):
            target = {"kind": "term", "fd": t.get("fd", 2) or 2} if t["kind"] == "term" else \
                {"kind": "file", "path": t["path"], "mode": "a",
                 "display": t.get("display", t["path"])}
            self.effect(f, {"op": "write", "target": target, "data": note,
                            "cwd": self.br["cwd"]})
        elif t["kind"] == "buf":
            pass      # appended below, once: buffers are state, not effects
        self.effect(f, {"op": "sleep", "until": now + delay,
                        "why": f"retry: attempt {n + 1} of {ctl['attempts']} in {_fmt(delay)}"})
        if t["kind"] == "buf":
            b = self.state["bufs"].get(t["id"])
            if b is not None:
                b["d"] += note
        return True
