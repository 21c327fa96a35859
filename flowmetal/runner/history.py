"""A job's journal as people read it (`fm log`): one line per event, and the job's output."""
from __future__ import annotations

import shlex
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone

from ..effects import EFFECTS
from ..journal.codec import RESERVED

_STREAMS = {1: "stdout", 2: "stderr"}
_MAX_WIDTH = 100


def local_time(ts: str | None, with_date: bool = False) -> str:
    """An RFC 3339 UTC journal timestamp in local time: HH:MM:SS.mmm (with the date if asked)."""
    if not ts:
        return "-"
    try:
        dt = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return ts
    dt = dt.astimezone()
    text = dt.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")
    return text if with_date else text + ".%03d" % (dt.microsecond // 1000)


def _clip(text: str, width: int = _MAX_WIDTH) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[:width - 3] + "..."


def _target(t: dict) -> str:
    kind = t.get("kind")
    if kind == "file":
        op = {"r": "<", "w": ">", "a": ">>", "rw": "<>"}.get(t.get("mode"), ">")
        return f"{op}{t.get('display') or t.get('path')}"
    if kind == "term":
        return _STREAMS.get(t.get("fd", 1), "stdout")
    return str(kind)


def _epoch(ts: str | None) -> float | None:
    """A journal timestamp as epoch seconds (None if absent or unreadable)."""
    if not ts:
        return None
    try:
        dt = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return dt.timestamp()


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def utc_time(t, since: float | None = None) -> str:
    """Epoch seconds as UTC `14:05:03Z`, with the date (`2026-11-30T14:05:03Z`) unless it is
    on the same UTC day as `since`."""
    if not _number(t):
        return str(t)
    try:
        dt = datetime.fromtimestamp(t, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return str(t)
    if since is not None:
        try:
            if datetime.fromtimestamp(since, tz=timezone.utc).date() == dt.date():
                return dt.strftime("%H:%M:%SZ")
        except (OverflowError, OSError, ValueError):
            pass
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(seconds: float) -> str:
    try:
        from ..machine.duration import format_duration
    except ImportError:  # pragma: no cover - the machine always has it
        return f"{seconds:g}s"
    return format_duration(seconds)


def describe_request(req: dict, ts: str | None = None) -> str:
    """What an effect request does, in a few words: `exec  ls -l | wc -l`.

    `ts` is when it was journaled as started (sleeps then show how long they wait)."""
    text = _describe_request(req, _epoch(ts))
    if req.get("once") is True:
        text += " [once]"
    if "deadline" in req:
        text += f" [deadline {utc_time(req['deadline'], _epoch(ts))}]"
    return text


def _describe_request(req: dict, started: float | None) -> str:
    op = req.get("op", "?")
    effect = EFFECTS.get(op)
    show = _SHOW_REQUEST.get(effect.log) if effect is not None else None
    if show is None:
        rest = {k: v for k, v in req.items() if k != "op"}
        return f"{op}  {_clip(str(rest))}"
    return show(req, started)


def _show_sleep(req: dict, started: float | None) -> str:
    until = req.get("until")
    why = _clip(str(req.get("why") or "sleep"), 60)
    text = f"sleep  {why} until {utc_time(until, started)}"
    if started is not None and _number(until):
        # `ts` is to the millisecond and a little after the clock was read: round.
        wait = max(until - started, 0)
        text += f" ({_duration(round(wait) if wait >= 10 else round(wait, 1))})"
    return text


def _show_exec(req: dict, started) -> str:
    stages = []
    for st in req.get("stages", []):
        words = shlex.join(str(a) for a in st.get("argv", []))
        for fd, t in sorted((st.get("fds") or {}).items()):
            if isinstance(t, dict) and t.get("kind") == "file":
                words += f" {'' if fd in ('0', '1') else fd}{_target(t)}"
        stages.append(words)
    text = "exec  " + _clip(" | ".join(stages))
    if req.get("stream") is not None:
        text += f" [stream {req['stream']}" + (f", skip {req['skip']} bytes]" if "skip" in req
                                               else "]")
    return text


def _show_write(req: dict, started) -> str:
    t = req.get("target") or {}
    n = len(str(req.get("data", "")).encode("utf-8", "surrogateescape"))
    return f"write  {_target(t)} {n} bytes"


def _show_path(req: dict, started) -> str:
    op = req["op"]
    arg = req.get("display") or req.get("path") or req.get("pattern") or ""
    extra = f"{req['test']} " if op == "test" else (f"{req['mode']} " if op == "open" else "")
    return f"{op}  {extra}{_clip(str(arg))}"


def _describe_clock(req: dict) -> str:
    """`clock  +%Y [TZ=Europe/Paris]`; printf's times as `%(%Y)T@0 %(%s)T` (now, if no @)."""
    text = "clock"
    if req.get("format"):
        text += f"  +{_clip(str(req['format']), 40)}"
    times = req.get("times")
    if isinstance(times, list):
        shown = [f"%({t[0]})T" + ("" if t[1] is None else f"@{t[1]}")
                 for t in times if isinstance(t, list) and len(t) == 2]
        text += "  " + _clip(" ".join(shown), 60)
    if req.get("tz") is not None:
        text += f" [TZ={_clip(str(req['tz']), 40)}]"
    return text


def describe_result(req: dict | None, res) -> str:
    """The gist of an effect's result: `-> 0`, `-> 127 (command not found)`, `-> error: ...`."""
    if not isinstance(res, dict):
        return f"-> {_clip(str(res), 60)}"
    if res.get("error"):
        return f"-> error: {_clip(str(res['error']), 80)}"
    op = (req or {}).get("op")
    parts = []
    if res.get("unknown") and "status" in res:
        st = res["status"]
        code = st[0] if isinstance(st, list) and st else st
        return f"-> outcome unknown ({code})"
    if res.get("timeout") and "status" not in res:
        return "-> timed out" if op == "sleep" else "-> timed out (not run: deadline passed)"
    if "status" in res:
        st = res["status"]
        parts.append("|".join(map(str, st)) if isinstance(st, list) else str(st))
        errs = res.get("errors") or {}
        if errs:
            parts.append("(" + "; ".join(str(v) for _, v in sorted(errs.items())) + ")")
        if res.get("timeout"):
            parts.append("(timed out)")
        elif res.get("stopped"):
            parts.append("(stopped)")
    else:
        effect = EFFECTS.get(op)
        show = _SHOW_RESULT.get(effect.log) if effect is not None else None
        text = show(res) if show is not None else _clip(str(res), 60)
        if text:
            parts.append(text)
    if op != "write":
        for key in ("out", "err"):
            if res.get(key):
                parts.append(f"{'stdout' if key == 'out' else 'stderr'} {len(res[key])} chars")
    if not parts:
        return "" if op == "write" else "-> ok"
    return "-> " + " ".join(parts)


def _line(rec: dict, step, what: str) -> str:
    step_text = "" if step is None else str(step)
    br = rec.get("br")
    if br is not None:
        what = f"[{br}] {what}"
    return f"{local_time(rec.get('ts'))}  {step_text:>5}  {what}"


def _request_of(started: dict) -> str:
    req = started.get("req")
    return describe_request(req if isinstance(req, dict) else {}, started.get("ts"))


def history_lines(records: Iterable[dict], *, live: bool = False,
                  output: int | None = 0, hide=None) -> Iterator[str]:
    """One line per event. An effect.started and its effect.done make one line together, shown
    when the result comes (effects of branches overlap); a start without a result (the runner
    died, or it is still running) gets a line of its own. `[N]` marks branch N's effects.
    Under an effect's line, the text it printed or captured (step_output_lines): at most
    `output` lines of each stream (0: none; None: all of it), passed through `hide` (a
    Redactor's `text`) when given."""
    pending: dict = {}  # step -> effect.started waiting for its effect.done
    parked: set = set()  # steps in flight when the job was parked (their wait runs again)
    for rec in records:
        kind = rec.get("kind")
        step = rec.get("step")
        if kind == "effect.done" and step in pending:
            started = pending.pop(step)
            result = describe_result(started.get("req"), rec.get("res"))
            yield _line(started, step, _request_of(started) + ("  " + result if result else ""))
            if output != 0:
                for line in step_output_lines(rec.get("res"), output):
                    yield hide(line) if hide else line
            continue
        if kind == "effect.started":
            if step in pending:      # started again on resume: the first run was cut off
                how = "(parked)" if step in parked else "(interrupted)"
                yield _line(pending[step], step, _request_of(pending[step]) + f"  -> {how}")
            pending[step] = rec
            continue
        if kind == "job.parked":
            parked = set(pending)
        if kind in ("cancel", "job.started") or kind in _ENDS:
            for s in sorted(pending):
                yield _line(pending[s], s, _request_of(pending[s]) + "  -> (interrupted)")
            pending.clear()
        yield from _event_line(rec, kind)
    for s in sorted(pending):
        state = "(parked)" if s in parked else "(interrupted)"
        if live or s in parked:
            req = pending[s].get("req")
            op = req.get("op") if isinstance(req, dict) else None
            state = {"sleep": "(sleeping)", "await": "(waiting)"}.get(op, "(running)")
        yield _line(pending[s], s, _request_of(pending[s]) + f"  -> {state}")


_ENDS = ("job.finished", "job.cancelled", "job.failed")

OUTPUT_LINES = 10
"""How many lines of each stream `fm log` shows under a step (`--full`: all of them)."""

_OUTPUT_TAGS = (("out", "out|"), ("err", "err|"), ("capture", "cap|"))
_OUTPUT_INDENT = " " * 23     # under the event text of a history line


def step_output_lines(res, limit: int | None = OUTPUT_LINES) -> Iterator[str]:
    """A step's output under its history line, indented, each line tagged with its stream:
    `out|` stdout, `err|` stderr, `cap|` what a `$(...)` captured. At most `limit` lines of
    each (None: all), then `... N more lines`; a clipped line ends in `...`."""
    if not isinstance(res, dict):
        return
    for key, tag in _OUTPUT_TAGS:
        text = res.get(key)
        if not isinstance(text, str) or not text:
            continue
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        shown = lines if limit is None else lines[:limit]
        for line in shown:
            line = line.replace("\r", "\\r").replace("\t", "    ")
            if limit is not None and len(line) > _MAX_WIDTH * 2:
                line = line[:_MAX_WIDTH * 2 - 3] + "..."
            yield f"{_OUTPUT_INDENT}{tag} {line}".rstrip()
        if len(lines) > len(shown):
            more = len(lines) - len(shown)
            yield f"{_OUTPUT_INDENT}{tag} ... {more} more line{'s' * (more > 1)} (--full shows all)"


def _event_line(rec: dict, kind) -> Iterator[str]:
    """The line of a record that is not part of an effect."""
    if kind == "effect.done":
        yield _line(rec, rec.get("step"), "(result)  " + describe_result(None, rec.get("res")))
    elif kind == "job.started":
        argv = rec.get("argv") or []
        yield _line(rec, None, f"job.started  {_clip(shlex.join(map(str, argv)))}"
                               f"  (in {rec.get('cwd', '?')})")
    elif kind == "snapshot":
        yield _line({"ts": rec.get("ts")}, rec.get("step"), "snapshot")
    elif kind == "job.parked":
        until = rec.get("until")
        when = f"until {utc_time(until)}" if _number(until) else "until a delivery comes"
        yield _line(rec, rec.get("step"), f"job.parked  {when}")
    elif kind == "main.ended":
        ids = ", ".join(map(str, rec.get("waiting") or []))
        yield _line(rec, rec.get("step"), f"main.ended  waiting for branches {ids}")
    elif kind in ("job.finished", "job.cancelled"):
        reason = f"  ({rec['reason']})" if rec.get("reason") else ""
        yield _line(rec, rec.get("step"), f"{kind}  status {rec.get('status', '?')}{reason}")
    elif kind == "job.failed":
        msg = (rec.get("error") or {}).get("message", "")
        yield _line(rec, rec.get("step"), f"job.failed  status {rec.get('status', '?')}: "
                                          f"{_clip(str(msg), 80)}")
    else:
        fields = {k: v for k, v in rec.items() if k not in RESERVED}  # the header, the crc
        yield _line(rec, rec.get("step"), f"{kind}  {_clip(str(fields), 80)}")


REDACTED = "***"

NOT_SECRET = frozenset({"FM_STEP_KEY"})
"""fm's own variables that patterns like `*KEY*` would hide: the step key is an id, not a
secret, and `fm log` is where one looks it up."""


class Redactor:
    """Hides the values of variables with secret-looking names in records `fm log` prints
    (`[journal] redact`: fnmatch patterns, matched in any case): job.started's `env`, an exec
    stage's `env` / `env+`, and the variables in a snapshot's state. The journal keeps them."""

    def __init__(self, patterns: Iterable[str]):
        self.patterns = tuple(p.upper() for p in patterns)
        self._seen: dict = {}
        self.values: set[str] = set()   # secret values seen in environments, for text()

    def text(self, line: str) -> str:
        """A line of output with every secret value seen so far (of 4 characters or more)
        replaced: `fm log`'s history shows output under its steps, and a script that echoes
        a token must not put it there."""
        for v in sorted(self.values, key=len, reverse=True):
            line = line.replace(v, REDACTED)
        return line

    def secret(self, name: str) -> bool:
        """Whether the value of variable `name` is hidden."""
        hit = self._seen.get(name)
        if hit is None:
            from fnmatch import fnmatchcase
            key = str(name).upper()
            hit = self._seen[name] = key not in NOT_SECRET and \
                any(fnmatchcase(key, p) for p in self.patterns)
        return hit

    def record(self, rec: dict) -> dict:
        """The record as `fm log` shows it: a copy with secret values replaced, or `rec`
        itself when it holds none."""
        if not self.patterns:
            return rec
        kind = rec.get("kind")
        if kind == "job.started" and isinstance(rec.get("env"), dict):
            return dict(rec, env=self._env(rec["env"]))
        if kind == "effect.started" and isinstance(rec.get("req"), dict):
            req = self._request(rec["req"])
            return rec if req is rec["req"] else dict(rec, req=req)
        if kind == "snapshot":
            out = dict(rec)
            if isinstance(rec.get("state"), dict):
                out["state"] = self._state(rec["state"])
            if isinstance(rec.get("pending"), list):
                out["pending"] = [dict(p, req=self._request(p["req"]))
                                  if isinstance(p, dict) and isinstance(p.get("req"), dict)
                                  else p for p in rec["pending"]]
            return out
        return rec

    def _env(self, env: dict) -> dict:
        out = {}
        for k, v in env.items():
            if self.secret(k):
                if isinstance(v, str) and len(v) >= 4:
                    self.values.add(v)
                v = REDACTED
            out[k] = v
        return out

    def _request(self, req: dict) -> dict:
        if req.get("op") != "exec" or not isinstance(req.get("stages"), list):
            return req
        stages = []
        for st in req["stages"]:
            if isinstance(st, dict):
                st = dict(st)
                for key in ("env", "env+"):
                    if isinstance(st.get(key), dict):
                        st[key] = self._env(st[key])
            stages.append(st)
        return dict(req, stages=stages)

    def _state(self, state: dict) -> dict:
        """A machine state (docs/state.md) with secret variables' values hidden, in every
        branch (the whole state is one in the first state format): its scopes, the prefix
        assignments (`as`) of a command in flight, and the environment of a stream's start
        request."""
        out = self._branch(state)
        if isinstance(state.get("bufs"), dict):       # a stream's start request (`q`)
            out["bufs"] = {k: dict(b, q=self._request(b["q"]))
                           if isinstance(b, dict) and isinstance(b.get("q"), dict) else b
                           for k, b in state["bufs"].items()}
        if isinstance(state.get("branches"), dict):
            out["branches"] = {bid: self._branch(br) if isinstance(br, dict) else br
                               for bid, br in state["branches"].items()}
        return out

    def _branch(self, br: dict) -> dict:
        out = dict(br)
        if isinstance(br.get("scopes"), list):
            out["scopes"] = [{name: _hide_cell(cell) if self.secret(name) else cell
                              for name, cell in scope.items()}
                             if isinstance(scope, dict) else scope for scope in br["scopes"]]
        if isinstance(br.get("frames"), list):
            out["frames"] = [self._frame(f) for f in br["frames"]]
        return out

    def _frame(self, f):
        i = f.get("i") if isinstance(f, dict) else None
        if not isinstance(i, dict) or not isinstance(i.get("as"), list):
            return f
        hidden = [[*a[:3], REDACTED, *a[4:]]
                  if isinstance(a, list) and len(a) >= 4 and self.secret(a[0]) else a
                  for a in i["as"]]
        return dict(f, i=dict(i, **{"as": hidden}))


def _hide_cell(cell):
    """A variable's cell (docs/state.md: {"s"}, {"a"}, {"A"}, flags) with its values hidden."""
    if not isinstance(cell, dict):
        return REDACTED
    out = dict(cell)
    if "s" in cell:
        out["s"] = REDACTED
    if isinstance(cell.get("a"), list):
        out["a"] = [None if v is None else REDACTED for v in cell["a"]]
    elif isinstance(cell.get("a"), dict):      # sparse arrays: index -> value
        out["a"] = {k: REDACTED for k in cell["a"]}
    if isinstance(cell.get("A"), dict):
        out["A"] = {k: REDACTED for k in cell["A"]}
    return out


def render_failure(first: dict | None, error: dict) -> str:
    """A job.failed error as the foreground showed it: a diagnostic when its unit is the main
    script (whose source job.started pins), else `fm: message`."""
    from ..lang.errmsg import call_chain_text
    message = str(error.get("message", "error"))
    span = error.get("span")
    shown = f"fm: {message}"
    if (first is not None and error.get("unit") == "main" and isinstance(span, list)
            and len(span) == 4):
        from ..diagnostics import render
        shown = render(str(first.get("filename", "?")), str(first.get("source", "")), *span,
                       message)
    chain = call_chain_text(error.get("chain"))
    return shown if chain is None else f"{shown}\n{chain}"


def output_chunks(records: Iterable[dict]) -> Iterator[tuple[int, str]]:
    """The job's output in order: (1, text) for stdout, (2, text) for stderr; an unhandled error
    ends it with its diagnostic on stderr, as the foreground run printed it."""
    first = None
    for rec in records:
        kind = rec.get("kind")
        if kind == "effect.done":
            res = rec.get("res")
            if isinstance(res, dict):
                if res.get("out"):
                    yield 1, res["out"]
                if res.get("err"):
                    yield 2, res["err"]
        elif kind == "job.started":
            first = rec
        elif kind == "job.failed" and isinstance(rec.get("error"), dict):
            yield 2, render_failure(first, rec["error"]) + "\n"


def _result_clock(res: dict) -> str:
    if "text" in res:
        return _clip(str(res["text"]), 60)
    if isinstance(res.get("texts"), list):
        return _clip(" | ".join(map(str, res["texts"])), 60)
    if _number(res.get("now")):
        when = datetime.fromtimestamp(res["now"], tz=timezone.utc)
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (when.microsecond // 1000)
    return _clip(str(res), 60)


def _result_path(res: dict) -> str:
    if "matches" in res:
        return f"{len(res['matches'])} matches"
    if "result" in res:
        return str(res["result"]).lower()
    if "cwd" in res:
        return str(res["cwd"])
    if "data" in res:
        return f"{len(str(res['data']))} chars"
    if "path" in res:
        return _clip(str(res["path"]))
    return ""


def _show_stream(req: dict) -> str:
    """`stream_read  s-abc123-4` / `stream_close  s-abc123-4 (drain)`."""
    text = f"{req.get('op')}  {_clip(str(req.get('sid', '')), 40)}"
    return text + " (drain)" if req.get("drain") else text


def _result_stream(res: dict) -> str:
    if res.get("gone"):
        return "gone (started before a crash)"
    if "data" in res:
        return f"{len(str(res['data']))} chars" + (", EOF" if res.get("eof") else "")
    return ""


def _show_read_chunk(req: dict) -> str:
    """`read_chunk  data.txt @65536` (the byte offset it reads from)."""
    name = req.get("display") or req.get("path") or ""
    return f"read_chunk  {_clip(str(name))} @{req.get('off', 0)}"


def _show_await(req: dict, started) -> str:
    """`await  event go until 17:20:59Z` / `await  await callback approve`."""
    what = f"event {req['event']}" if "event" in req else _clip(str(req.get("why") or "callback"))
    until = req.get("until")
    return f"await  {what}" + (f" until {utc_time(until, started)}" if _number(until) else "")


def _result_await(res: dict) -> str:
    """`event go #2 (3 chars)`, `callback POST (11 chars)`, `expired`."""
    if res.get("expired"):
        return "expired"
    key, got = str(res.get("key", "")), res.get("delivery") or {}
    if key.startswith("event:"):
        _, name, n = key.split(":", 2)
        return f"event {name} #{n.lstrip('0')} ({len(str(got.get('data', '')))} chars)"
    return f"callback {got.get('method', '')} ({len(str(got.get('body', '')))} chars)"


# How `fm log` shows each kind of effect (flowmetal/effects.py names an op's kind: `log`).
_SHOW_REQUEST = {
    "sleep": _show_sleep,
    "exec": _show_exec,
    "write": _show_write,
    "path": _show_path,
    "clock": lambda req, started: _describe_clock(req),
    "home": lambda req, started: f"home  ~{_clip(str(req.get('user', '')), 40)}",
    "random": lambda req, started: "random",
    "read_line": lambda req, started: f"read_line  fd {req.get('fd', 0)}",
    "read_chunk": lambda req, started: _show_read_chunk(req),
    "stream": lambda req, started: _show_stream(req),
    "callback": lambda req, started: "callback  " + " ".join(
        _clip(str(req[k]), 40) for k in ("name", "method") if k in req),
    "await": _show_await,
}
_SHOW_RESULT = {
    "sleep": lambda res: "woken" if res.get("woken") else "woke",
    "exec": lambda res: "started" if res.get("started") else "",
    "write": lambda res: (f"{res['already']} bytes were already there (not written again)"
                          if res.get("already") else ""),
    "path": _result_path,
    "clock": _result_clock,
    "home": lambda res: "no such user" if res.get("home") is None else _clip(str(res["home"])),
    "random": lambda res: str(res.get("int")),
    "read_line": lambda res: "EOF" if res.get("line") is None else f"{len(res['line'])} chars",
    "read_chunk": lambda res: (f"{len(str(res.get('data', '')))} chars"
                               + (", EOF" if res.get("eof") else "")),
    "stream": _result_stream,
    "callback": lambda res: _clip(str(res.get("url", "")), 100),
    "await": _result_await,
}
