"""Effect executors: perform(request, term) runs one effect request and returns its result."""
from __future__ import annotations

from . import files
from .clock import format_time, get_clock, read_clock
from .term import Term

__all__ = ["perform", "Term", "OPS"]


def _exec(req: dict, term: Term) -> dict:
    # Imported on first use: subprocess costs ~3 ms of start-up that `fm -c true` never needs.
    from .process import run_pipeline
    deadline = req.get("deadline")
    if deadline is None:
        return run_pipeline(req, term)
    clock = get_clock()
    res = run_pipeline(req, term, should_stop=lambda: clock.now() >= deadline)
    if res.get("stopped"):
        res["timeout"] = True
    return res


def _clock(req: dict, term: Term) -> dict:
    """The time now; with `format` or `times`, also as text (in the zone of `tz`, if given)."""
    return read_clock(req)


def _sleep(req: dict, term: Term) -> dict:
    """Wait until `until` (or the request's deadline, if earlier); a status line on a TTY."""
    clock = get_clock()
    until = float(req["until"])
    deadline = req.get("deadline")
    on_tick = None
    if not clock.fake and term.isatty(2):
        on_tick = _StatusLine(term, str(req.get("why") or "sleep"))
    try:
        cut = clock.sleep_until(until, deadline=deadline, on_tick=on_tick)
    finally:
        if on_tick is not None:
            on_tick.clear()
    res: dict = {"now": clock.now()}
    if cut:
        res["timeout"] = True
    return res


def _format_duration(seconds: int) -> str:
    """Whole seconds as `1d2h3m4s` (the machine's format_duration, when it can be imported)."""
    try:
        from ..machine.duration import format_duration
    except ImportError:  # a stand-in machine (tests): the same format, whole seconds only
        out = [f"{n}{u}" for u, n in zip("dhm", (seconds // 86400, seconds % 86400 // 3600,
                                                 seconds % 3600 // 60)) if n]
        return "".join(out) + (f"{seconds % 60}s" if seconds % 60 or not out else "")
    return format_duration(seconds)


class _StatusLine:
    """`fm: sleep 30s: waiting until 14:05:03 (29s left)` on stderr, rewritten in place."""

    def __init__(self, term: Term, why: str):
        self.term = term
        self.why = why
        self.shown = False

    def __call__(self, now: float, end: float) -> None:
        import math
        left = max(math.ceil(end - now - 0.001), 0)
        same_day = format_time(end, "%Y-%m-%d") == format_time(now, "%Y-%m-%d")
        when = format_time(end, "%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S")
        text = f"\rfm: {self.why}: waiting until {when} ({_format_duration(left)} left)\033[K"
        self.term.write(2, text.encode("utf-8", "surrogateescape"))
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.term.write(2, b"\r\033[K")
            self.shown = False


def _random(req: dict, term: Term) -> dict:
    """$RANDOM (0..32767) and a float in [0, 1) (retry's jitter), from the OS CSPRNG."""
    import random
    rng = random.SystemRandom()
    return {"int": rng.randrange(32768), "float": rng.random()}


OPS = {
    "exec": _exec,
    "open": files.do_open,
    "write": files.do_write,
    "read_file": files.do_read_file,
    "read_line": files.do_read_line,
    "glob": files.do_glob,
    "test": files.do_test,
    "cd": files.do_cd,
    "realpath": files.do_realpath,
    "home": files.do_home,
    "clock": _clock,
    "sleep": _sleep,
    "random": _random,
}


def perform(req: dict, term: Term) -> dict:
    """Run one effect request; expected failures come back in the result, never raised.

    A request carrying `deadline` (epoch seconds, from a durable `timeout`) whose deadline has
    passed is not performed at all: the result is {"timeout": true}. `exec` and `sleep` are
    also cut short when it passes while they run.

    Raises ValueError only for a malformed request (a bug in whoever built it).
    """
    handler = OPS.get(req.get("op"))
    if handler is None:
        raise ValueError(f"unknown effect op: {req.get('op')!r}")
    deadline = req.get("deadline")
    if deadline is not None and get_clock().now() >= deadline:
        return {"timeout": True}
    bad = _nul_path(req)
    if bad is not None:
        return bad
    return handler(req, term)


# The result of each file op when a path holds a NUL byte (which no system call accepts).
_NUL_RESULTS = {"test": {"result": False}, "glob": {"matches": []},
                "read_line": {"line": None, "error": "read error: a path holds a NUL byte"}}


def _nul_path(req: dict):
    """A failure result when a path of a file op holds a NUL byte; None otherwise."""
    if req["op"] in ("exec", "write", "clock", "sleep", "random"):
        if req["op"] == "write" and "\0" in req.get("target", {}).get("path", ""):
            return {"error": f"cannot open {req['target'].get('display', '')!r}: "
                             "the name holds a NUL byte"}
        return None
    for key in ("path", "path2", "pattern", "cwd"):
        value = req.get(key)
        if isinstance(value, str) and "\0" in value:
            shown = (req.get("display") or value).replace("\0", "\\0")
            return _NUL_RESULTS.get(req["op"], {"error": f"{shown}: the name holds a NUL byte"})
    return None
