"""Wall-clock time for the durable builtins: reading it, and waiting until a moment.

`get_clock()` is the clock the effects use: the real one, or, when `$FM_FAKE_CLOCK` names a
file, a virtual one kept in that file (for tests: a `sleep 3d` returns at once and only
moves the file's time on). Both have the same two methods:

* `now()` -> float epoch seconds;
* `sleep_until(until, *, deadline=None, on_tick=None)` -> True when the deadline cut the wait
  short (the wait ends at min(until, deadline)); False when `until` came.

Only `os` and `time` are imported: this module is on the start-up path of every job.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable

TICK = 1.0
"""Seconds between two on_tick calls, and the longest single sleep: a clock change, or a
Ctrl-C, is noticed within this."""

POLL = 0.2
"""Seconds between two looks at a cancel token while sleeping."""

FAKE_ENV = "FM_FAKE_CLOCK"


class Clock:
    """The real wall clock. A wait loops on time.time() in slices of at most TICK seconds, so
    it is robust to long waits, suspend/resume and the clock being set (a jump forward ends the
    wait early, a jump back makes it longer: the target is a wall-clock moment)."""

    fake = False

    def now(self) -> float:
        """Seconds since the epoch, as time.time()."""
        return time.time()

    def sleep_until(self, until: float, *, deadline: float | None = None,
                    on_tick: Callable[[float, float], None] | None = None,
                    token=None) -> bool:
        """Wait until wall-clock `until`, or `deadline` if that comes first; True if it did.

        `on_tick(now, end)` is called at once and then about every TICK seconds while waiting
        (`end` is when the wait will end), for a status line. A set `token` (CancelToken) ends
        the wait within POLL seconds. KeyboardInterrupt propagates.
        """
        end, cut = _end(until, deadline)
        next_tick = None
        while True:
            now = time.time()
            if now >= end or (token is not None and token.is_set()):
                return cut
            mono = time.monotonic()
            if on_tick is not None and (next_tick is None or mono >= next_tick):
                on_tick(now, end)
                next_tick = mono + TICK
            nap = min(end - now, TICK if token is None else POLL)
            if next_tick is not None:
                nap = min(nap, max(next_tick - time.monotonic(), 0.0))
            time.sleep(max(nap, 0.001))


class FakeClock(Clock):
    """Virtual time kept in a file, for tests: `now()` reads a float from it (a missing or empty
    file starts at the real time, which is written to it), and `sleep_until` moves the file's
    time on to the end of the wait and returns at once."""

    fake = True

    def __init__(self, path: str):
        self.path = path

    def now(self) -> float:
        try:
            with open(self.path) as f:
                text = f.read().strip()
        except FileNotFoundError:
            text = ""
        if text:
            return float(text)
        now = time.time()
        self._set(now)
        return now

    def sleep_until(self, until: float, *, deadline: float | None = None,
                    on_tick: Callable[[float, float], None] | None = None,
                    token=None) -> bool:
        end, cut = _end(until, deadline)
        now = self.now()
        if now < end:
            self._set(end)
        return cut

    def _set(self, t: float) -> None:
        """Write the time atomically, so a concurrent reader never sees half a number."""
        import threading  # branches read the clock from several threads at once
        tmp = f"{self.path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "w") as f:
            f.write(repr(float(t)))
        os.replace(tmp, self.path)


def _end(until: float, deadline: float | None) -> tuple[float, bool]:
    """(when the wait ends, whether that is the deadline cutting it short)."""
    if deadline is not None and deadline < until:
        return deadline, True
    return until, False


_REAL = Clock()


def get_clock() -> Clock:
    """The clock effects use now: fake when $FM_FAKE_CLOCK names a file, else the real one."""
    path = os.environ.get(FAKE_ENV)
    return FakeClock(path) if path else _REAL


def read_clock(req: dict) -> dict:
    """The `clock` op: the time now, and texts of it (`format`) or of given moments (`times`),
    in the zone of the request's `tz` (the job's TZ), else in the process's local time."""
    now = get_clock().now()
    res: dict = {"now": now}
    tz = req.get("tz")
    fmt = req.get("format")
    if fmt is not None:
        try:
            res["text"] = format_time(now, fmt, tz)
        except ValueError as exc:  # a NUL byte, a lone surrogate
            res["error"] = f"bad time format: {exc}"
    if "times" in req:
        res["texts"] = [_strftime(now if at is None else at, f, tz) for f, at in req["times"]]
    return res


def _strftime(at: float, fmt: str, tz: str | None) -> str:
    """One of printf's `%(...)T`: bash prints nothing for a time it cannot format."""
    try:
        return format_time(at, fmt, tz)
    except (ValueError, OverflowError, OSError):
        return ""


def format_time(now: float, fmt: str, tz: str | None = None) -> str:
    """`now` in the zone of the TZ value `tz` (see zones.py), or in the process's local time
    when `tz` is None: strftime `fmt`, or RFC 3339 with the offset
    (`2026-11-28T23:10:00+00:00`) when `fmt` is empty. Raises ValueError for a bad format."""
    import math
    import re
    from datetime import datetime, timezone
    dt = datetime.fromtimestamp(now, tz=timezone.utc)
    if tz is None:
        dt = dt.astimezone()
    else:
        from .zones import zone
        dt = dt.astimezone(zone(tz))
    if not fmt:
        return dt.isoformat(timespec="seconds")
    # glibc's %s converts the broken-down time back with mktime(), in the *process's* zone:
    # wrong for any other zone, so the seconds are put in here.
    fmt = re.sub(r"%[%s]", lambda m: m[0] if m[0] == "%%" else str(math.floor(now)), fmt)
    if not fmt.isascii():
        # Bytes that were not UTF-8 (lone surrogates) pass through, as with date(1).
        parts = re.split(r"([\ud800-\udfff]+)", fmt)
        return "".join(p if i % 2 else dt.strftime(p) if p else "" for i, p in enumerate(parts))
    return dt.strftime(fmt)


# -- the clock effects -------------------------------------------------------------------------

def perform_clock(req: dict, term, token=None) -> dict:
    """The `clock` effect (read_clock)."""
    return read_clock(req)


def perform_sleep(req: dict, term, token=None) -> dict:
    """Wait until `until` (or the request's deadline, if earlier), or until `token` is set; a
    status line on a TTY. (A runner parks sleeps on its own timers instead: see
    runner/scheduler.py; this serves callers that perform one effect at a time.)"""
    clock = get_clock()
    until = float(req["until"])
    deadline = req.get("deadline")
    status = None
    if not clock.fake and term.isatty(2):
        status = StatusLine(term, str(req.get("why") or "sleep"))
    try:
        cut = clock.sleep_until(until, deadline=deadline, on_tick=status, token=token)
    finally:
        if status is not None:
            status.clear()
    res: dict = {"now": clock.now()}
    if cut:
        res["timeout"] = True
    return res


def perform_random(req: dict, term, token=None) -> dict:
    """$RANDOM (0..32767) and a float in [0, 1) (retry's jitter), from the OS CSPRNG."""
    import random
    rng = random.SystemRandom()
    return {"int": rng.randrange(32768), "float": rng.random()}


def _format_duration(seconds: int) -> str:
    """Whole seconds as `1d2h3m4s` (the machine's format_duration, when it can be imported)."""
    try:
        from ..machine.duration import format_duration
    except ImportError:  # a stand-in machine (tests): the same format, whole seconds only
        out = [f"{n}{u}" for u, n in zip("dhm", (seconds // 86400, seconds % 86400 // 3600,
                                                 seconds % 3600 // 60)) if n]
        return "".join(out) + (f"{seconds % 60}s" if seconds % 60 or not out else "")
    return format_duration(seconds)


class StatusLine:
    """`fm: sleep 30s: waiting until 14:05:03 (29s left)` on stderr, rewritten in place; a wait
    with no end (an await without --timeout) spins instead: `fm: await URL: waiting / (12s)`."""

    SPIN = "|/-\\"

    def __init__(self, term, why: str):
        self.term = term
        self.why = why
        self.shown = False
        self.next_at = 0.0
        self.began = time.monotonic()
        self.turn = 0

    def __call__(self, now: float, end: float) -> None:
        import math
        if math.isinf(end):
            self.turn += 1
            waited = _format_duration(int(time.monotonic() - self.began))
            text = f"\rfm: {self.why}: waiting {self.SPIN[self.turn % 4]} ({waited})\033[K"
        else:
            left = max(math.ceil(end - now - 0.001), 0)
            same_day = format_time(end, "%Y-%m-%d") == format_time(now, "%Y-%m-%d")
            when = format_time(end, "%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S")
            text = f"\rfm: {self.why}: waiting until {when} ({_format_duration(left)} left)\033[K"
        self.term.write(2, text.encode("utf-8", "surrogateescape"))
        self.shown = True

    def maybe(self, now: float, end: float) -> None:
        """Redraw at most once per TICK (a spinner four times as often)."""
        mono = time.monotonic()
        if mono >= self.next_at:
            self(now, end)
            self.next_at = mono + (TICK / 4 if end == float("inf") else TICK)

    def clear(self) -> None:
        if self.shown:
            self.term.write(2, b"\r\033[K")
            self.shown = False
            self.next_at = 0.0
