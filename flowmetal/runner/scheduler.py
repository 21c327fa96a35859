"""Perform a job's effects concurrently: a completion queue, parked timers and a cancel token.

The runner hands the scheduler every request the machine makes (`submit`) and takes
completions back one at a time (`next`), in the order they finish; it journals each and feeds
it to the machine, so replay can feed them in the same order. A lone effect runs inline in
the runner's thread (no thread hop for the common, sequential script); when several are
outstanding each runs in a worker thread. Waiting effects (`sleep`) cost no thread: they are
parked in a heap of due times, and the runner's thread sleeps until the first one is due.
"""
from __future__ import annotations

import heapq
import threading
import time

from ..connectors import EFFECTS, LineTerm, perform
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


class Scheduler:
    """The effects of one job in flight; one instance per runner."""

    def __init__(self, term, token: CancelToken):
        self.term = term
        self.token = token
        self.ready: list = []            # (step, req) submitted, not started yet
        self.timers: list = []           # heap of (due, step, req, cut) for parked sleeps
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
        kept = [t for t in self.timers if t[1] != step]
        if len(kept) != len(self.timers):
            self.timers = kept
            heapq.heapify(self.timers)

    def outstanding(self) -> int:
        return len(self.ready) + len(self.timers) + len(self.running)

    def next(self):
        """The next completed effect as (step, result), or None once the token is set."""
        if len(self.ready) == 1 and not self.timers and not self.running:
            step, req = self.ready.pop()
            if not EFFECTS[req["op"]].waits:
                return step, self._inline(req)
            self.ready.append((step, req))
        while self.ready:
            self._start(*self.ready.pop(0))
        return self._wait()

    def _inline(self, req: dict) -> dict:
        self.inline = True
        try:
            return perform(req, self.term, self.token)
        finally:
            self.inline = False

    def _start(self, step: int, req: dict) -> None:
        if EFFECTS[req["op"]].waits:
            until = float(req["until"])
            deadline = req.get("deadline")
            cut = deadline is not None and deadline <= until
            heapq.heappush(self.timers, (deadline if cut else until, step, req, cut))
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

    def _wait(self):
        clock = get_clock()
        while True:
            if self.token.is_set():
                self._clear_status()
                return None
            if self.timers and (not self.running or not clock.fake):
                due, step, req, cut = self.timers[0]
                now = clock.now()
                if now >= due or (clock.fake and not self.running):
                    heapq.heappop(self.timers)
                    self._clear_status()
                    if clock.fake and now < due:
                        clock.sleep_until(due)
                    res = {"now": clock.now()}
                    if cut:
                        res["timeout"] = True
                    return step, res
                self._show_status(req, now, due)
                timeout = min(POLL, max(due - now, 0.001))
            else:
                timeout = POLL
            got = self._get(timeout)
            if got is None:
                continue
            self._clear_status()
            return got

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
        end = time.monotonic() + ABANDON_GRACE
        while self.running and time.monotonic() < end:
            self._get(max(end - time.monotonic(), 0.01))
        self.running.clear()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
