"""Perform a job's effects concurrently: a completion queue, parked timers and a cancel token.

The runner hands the scheduler every request the machine makes (`submit`) and takes
completions back one at a time (`next`), in the order they finish; it journals each and feeds
it to the machine, so replay can feed them in the same order. A lone effect runs inline in
the runner's thread (no thread hop for the common, sequential script); when several are
outstanding each runs in a worker thread. Waiting effects (`sleep`, `await`) cost no thread:
they are parked in a heap of due times, and the runner's thread sleeps until the first one is
due; while an `await` is parked it also looks at the job's inbox every inbox.POLL seconds and
completes the await with the first delivery it matches.
"""
from __future__ import annotations

import heapq
import threading
import time

from ..connectors import EFFECTS, LineTerm, perform
from ..connectors import inbox as deliveries
from ..connectors.clock import get_clock

POLL = 0.2
"""Seconds between two looks at the cancel token while waiting for completions."""

ABANDON_GRACE = 5.0
"""Seconds to wait for abandoned effects to stop (a program gets SIGTERM, then SIGKILL)."""


class CancelToken:
    """Set once to cancel everything a job is doing; connectors poll `is_set()`."""

    def __init__(self):
        self._event = threading.Event()
        self.reason = ""

    def set(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


LINGERED = object()
"""What `next(within=…)` returns when nothing completed in time."""


class Scheduler:
    """The effects of one job in flight; one instance per runner."""

    def __init__(self, term, token: CancelToken, inbox=None):
        self.term = term
        self.token = token
        self.inbox = inbox               # () -> {key: data}: the job's deliveries (awaits)
        self.ready: list = []            # (step, req) submitted, not started yet
        self.timers: list = []           # heap of (due, step, req, cut) for parked waits
        self.awaiting: dict = {}         # step -> req of the parked awaits (also in timers)
        self.claimed: set = set()        # inbox keys given to an await of this runner
        self.running: dict = {}          # step -> req, performed in a worker thread
        self.done = None                 # the completion queue, made with the first thread
        self.lock = threading.Lock()     # serialises whole lines written to the terminal
        self.inline = False              # the runner's thread is performing an effect
        self._pool = None
        self._status = None

    def submit(self, step: int, req: dict) -> None:
        self.ready.append((step, req))

    def unpark(self, step: int) -> None:
        """Forget a submitted timer (the machine cut it short: its result is given instead)."""
        self.ready = [r for r in self.ready if r[0] != step]
        self.awaiting.pop(step, None)
        kept = [t for t in self.timers if t[1] != step]
        if len(kept) != len(self.timers):
            self.timers = kept
            heapq.heapify(self.timers)

    def outstanding(self) -> int:
        return len(self.ready) + len(self.timers) + len(self.running)

    def next(self, within: float | None = None):
        """The next completed effect as (step, result), or None once the token is set;
        LINGERED when `within` seconds pass first."""
        if len(self.ready) == 1 and not self.timers and not self.running:
            step, req = self.ready.pop()
            if not EFFECTS[req["op"]].waits:
                return step, self._inline(req)
            self.ready.append((step, req))
        while self.ready:
            self._start(*self.ready.pop(0))
        return self._wait(None if within is None else time.monotonic() + within)

    def _inline(self, req: dict) -> dict:
        self.inline = True
        try:
            return perform(req, self.term, self.token)
        finally:
            self.inline = False

    def _start(self, step: int, req: dict) -> None:
        effect = EFFECTS[req["op"]]
        if effect.waits:
            deadline = req.get("deadline")
            until = deliveries.due({"until": req.get("until")})
            cut = deadline is not None and deadline <= until
            heapq.heappush(self.timers, (deadline if cut else until, step, req, cut))
            if effect.delivery:
                self.awaiting[step] = req
            return
        if self._pool is None:
            import queue
            from concurrent.futures import ThreadPoolExecutor
            self.done = queue.Queue()
            self._pool = ThreadPoolExecutor(max_workers=1024, thread_name_prefix="fm-effect")
        self.running[step] = req
        term = LineTerm(self.term, self.lock)
        fut = self._pool.submit(perform, req, term, self.token)
        fut.add_done_callback(lambda f, s=step, t=term: self.done.put((s, f, t)))

    def _wait(self, end: float | None):
        clock = get_clock()
        while True:
            if self.token.is_set():
                self._clear_status()
                return None
            got = self._delivered()
            if got is None and self.timers and (not self.running or not clock.fake):
                got, timeout = self._timer(clock)
            else:
                timeout = POLL
            if got is None and end is not None:
                left = end - time.monotonic()
                if left <= 0:
                    return LINGERED
                timeout = min(timeout, left)
            if got is None:
                if self.awaiting:
                    timeout = min(timeout, deliveries.POLL)
                got = self._get(timeout)
            if got is not None:
                self._clear_status()
                return got

    def _timer(self, clock):
        """(the first parked wait as a completion if it is due, else None; how long to wait
        for it). With the fake clock, time jumps to the first `sleep` when nothing else runs;
        an await's time passes only as the clock's file is moved on (tests deliver meanwhile)."""
        due, step, req, cut = self.timers[0]
        now = clock.now()
        if clock.fake and not self.running and now < due:
            sleeps = [t for t in self.timers if t[1] not in self.awaiting]
            if sleeps:
                due, step, req, cut = min(sleeps)
                clock.sleep_until(due)
                now = due
        if now < due:
            self._show_status(req, now, due)
            return None, min(POLL, max(due - now, 0.001))
        self.timers.remove((due, step, req, cut))
        heapq.heapify(self.timers)
        if self.awaiting.pop(step, None) is not None:
            return (step, {"timeout": True} if cut else {"expired": True}), 0.0
        res = {"now": clock.now()}
        if cut:
            res["timeout"] = True
        return (step, res), 0.0

    def parked(self) -> tuple[float, list] | None:
        """When every outstanding effect is a wait (sleeps and awaits only, and no delivery
        an await would take is in the inbox): (when the first ends by itself, infinity for
        none; the await requests). None otherwise: the job has work to do or see."""
        if self.running or any(not EFFECTS[r["op"]].waits for _, r in self.ready):
            return None
        while self.ready:
            self._start(*self.ready.pop(0))
        if not self.timers:
            return None
        if self.awaiting and self.inbox is not None:
            mail = self.inbox()
            if any(deliveries.match(r, mail, self.claimed) for r in self.awaiting.values()):
                return None
        return self.timers[0][0], [self.awaiting[s] for s in sorted(self.awaiting)]

    def _delivered(self):
        """A parked await completed by a delivery in the inbox, or None."""
        if not self.awaiting or self.inbox is None:
            return None
        mail = self.inbox()
        for step in sorted(self.awaiting):
            got = deliveries.match(self.awaiting[step], mail, self.claimed)
            if got is not None:
                self.unpark(step)
                self.claimed.add(got[0])
                return step, {"key": got[0], "delivery": got[1]}
        return None

    def _get(self, timeout: float):
        """A completion from a worker thread, within `timeout` seconds, or None."""
        if self.done is None:
            time.sleep(timeout)
            return None
        import queue
        try:
            step, fut, term = self.done.get(timeout=timeout)
        except queue.Empty:
            return None
        del self.running[step]
        term.flush()
        return step, fut.result()

    def ready_completions(self) -> list:
        """The completions already waiting, without blocking (journaled with one fsync)."""
        out = []
        while self.done is not None and not self.done.empty():
            got = self._get(0)
            if got is None:
                break
            out.append(got)
        return out

    def _show_status(self, req: dict, now: float, due: float) -> None:
        """On a TTY, while only timers are outstanding: what the job waits for, and until."""
        if self.running or get_clock().fake or not self.term.isatty(2):
            return
        if self._status is None:
            from ..connectors import StatusLine
            self._status = StatusLine(self.term, str(req.get("why") or "sleep"))
        self._status.why = str(req.get("why") or "sleep")
        self._status.maybe(now, due)

    def _clear_status(self) -> None:
        if self._status is not None:
            self._status.clear()

    def abandon(self) -> None:
        """After the token is set: forget timers and ready effects, and wait (bounded) for the
        running ones to stop; their results are dropped."""
        self.ready.clear()
        self.timers.clear()
        self.awaiting.clear()
        end = time.monotonic() + ABANDON_GRACE
        while self.running and time.monotonic() < end:
            self._get(max(end - time.monotonic(), 0.01))
        self.running.clear()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
