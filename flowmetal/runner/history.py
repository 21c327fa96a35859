"""A job's journal as people read it (`fm log`): one line per event, and the job's output."""
from __future__ import annotations

import shlex
from datetime import datetime, timezone

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


def describe_request(req: dict) -> str:
    """What an effect request does, in a few words: `exec  ls -l | wc -l`."""
    op = req.get("op", "?")
    if op == "exec":
        stages = []
        for st in req.get("stages", []):
            words = shlex.join(str(a) for a in st.get("argv", []))
            for fd, t in sorted((st.get("fds") or {}).items()):
                if isinstance(t, dict) and t.get("kind") == "file":
                    words += f" {'' if fd in ('0', '1') else fd}{_target(t)}"
            stages.append(words)
        return "exec  " + _clip(" | ".join(stages))
    if op == "write":
        t = req.get("target") or {}
        n = len(str(req.get("data", "")).encode("utf-8", "surrogateescape"))
        return f"write  {_target(t)} {n} bytes"
    if op in ("open", "read_file", "cd", "glob", "test"):
        arg = req.get("display") or req.get("path") or req.get("pattern") or ""
        extra = f"{req['test']} " if op == "test" else (f"{req['mode']} " if op == "open" else "")
        return f"{op}  {extra}{_clip(str(arg))}"
    if op == "read_line":
        return f"read_line  fd {req.get('fd', 0)}"
    rest = {k: v for k, v in req.items() if k != "op"}
    return f"{op}  {_clip(str(rest))}"


def describe_result(req: dict | None, res) -> str:
    """The gist of an effect's result: `-> 0`, `-> 127 (command not found)`, `-> error: ...`."""
    if not isinstance(res, dict):
        return f"-> {_clip(str(res), 60)}"
    if res.get("error"):
        return f"-> error: {_clip(str(res['error']), 80)}"
    op = (req or {}).get("op")
    parts = []
    if "status" in res:
        st = res["status"]
        parts.append("|".join(map(str, st)) if isinstance(st, list) else str(st))
        errs = res.get("errors") or {}
        if errs:
            parts.append("(" + "; ".join(str(v) for _, v in sorted(errs.items())) + ")")
        if res.get("stopped"):
            parts.append("(stopped)")
    elif op == "glob":
        parts.append(f"{len(res.get('matches', []))} matches")
    elif op == "test":
        parts.append(str(res.get("result")).lower())
    elif op == "cd":
        parts.append(str(res.get("cwd", "")))
    elif op == "read_file":
        parts.append(f"{len(str(res.get('data', '')))} chars")
    elif op == "read_line":
        parts.append("EOF" if res.get("line") is None else f"{len(res['line'])} chars")
    elif op not in ("write", "open"):
        parts.append(_clip(str(res), 60))
    if op != "write":
        for key in ("out", "err"):
            if res.get(key):
                parts.append(f"{'stdout' if key == 'out' else 'stderr'} {len(res[key])} chars")
    if not parts:
        return "" if op == "write" else "-> ok"
    return "-> " + " ".join(parts)


def _line(rec: dict, step, what: str) -> str:
    step_text = "" if step is None else str(step)
    return f"{local_time(rec.get('ts'))}  {step_text:>5}  {what}"


def history_lines(records: Iterable[dict], *, live: bool = False) -> Iterator[str]:
    """One line per event. An effect.started and its effect.done make one line together; a start
    without a result (the runner died, or it is still running) gets a line of its own."""
    pending = None  # an effect.started waiting for its effect.done
    for rec in records:
        kind = rec.get("kind")
        if pending is not None:
            if kind == "effect.done" and rec.get("step") == pending.get("step"):
                result = describe_result(pending.get("req"), rec.get("res"))
                yield _line(rec, rec.get("step"), describe_request(pending.get("req") or {})
                            + ("  " + result if result else ""))
                pending = None
                continue
            yield _line(pending, pending.get("step"),
                        describe_request(pending.get("req") or {}) + "  -> (interrupted)")
            pending = None
        if kind == "effect.started":
            pending = rec
        elif kind == "effect.done":
            yield _line(rec, rec.get("step"), "(result)  " + describe_result(None, rec.get("res")))
        elif kind == "job.started":
            argv = rec.get("argv") or []
            yield _line(rec, None, f"job.started  {_clip(shlex.join(map(str, argv)))}"
                                   f"  (in {rec.get('cwd', '?')})")
        elif kind == "snapshot":
            yield _line(rec, rec.get("step"), "snapshot")
        elif kind in ("job.finished", "job.cancelled"):
            reason = f"  ({rec['reason']})" if rec.get("reason") else ""
            yield _line(rec, rec.get("step"), f"{kind}  status {rec.get('status', '?')}{reason}")
        elif kind == "job.failed":
            msg = (rec.get("error") or {}).get("message", "")
            yield _line(rec, rec.get("step"), f"job.failed  status {rec.get('status', '?')}: "
                                              f"{_clip(str(msg), 80)}")
        else:
            fields = {k: v for k, v in rec.items() if k not in ("seq", "ts", "kind")}
            yield _line(rec, rec.get("step"), f"{kind}  {_clip(str(fields), 80)}")
    if pending is not None:
        state = "(running)" if live else "(interrupted)"
        yield _line(pending, pending.get("step"),
                    describe_request(pending.get("req") or {}) + f"  -> {state}")


def render_failure(first: dict | None, error: dict) -> str:
    """A job.failed error as the foreground showed it: a diagnostic when its unit is the main
    script (whose source job.started pins), else `fm: message`."""
    message = str(error.get("message", "error"))
    span = error.get("span")
    if (first is not None and error.get("unit") == "main" and isinstance(span, list)
            and len(span) == 4):
        from ..diagnostics import render
        return render(str(first.get("filename", "?")), str(first.get("source", "")), *span, message)
    return f"fm: {message}"


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
