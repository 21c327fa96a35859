"""Runners as child processes: which jobs to run, when, and how many at once.

A job is run by a child `fm resume JOB` (or `fm cancel JOB`), so one job's crash never takes
the daemon or another job down. The supervisor keeps, per job, only what it is waiting for: a
wake-up time in a heap (from the store's wake-up index) or a place in the queue of jobs to run
now. One thread waits on a condition until the earliest due time or a change; it never polls.

A runner that dies while its job is unfinished and holds no wake-up entry left the job
orphaned: it is run again after RESTART_DELAY, doubling per consecutive failure up to
RESTART_MAX (a job that crashes its runner every time must not spin the machine).
"""
from __future__ import annotations

import heapq
import os
import subprocess
import sys
import threading
import time

from ..journal import TERMINAL_KINDS
from ..runner.run import LINGER_ENV, PARK_ENV

RESTART_DELAY = 1.0
RESTART_MAX = 300.0
PARK_AFTER = 1.0
"""A runner of the daemon parks its job when the job only waits, for longer than this
(seconds): it then costs the daemon an index entry, and wakes within a second of its time."""
LINGER = 2.0
"""Seconds a runner of the daemon goes on waiting before it parks a job that awaits a
delivery: deliveries that keep coming reach it in a poll (0.05 s), not a runner's start."""


class Supervisor:
    def __init__(self, store, log, *, max_runners: int, env: dict | None = None,
                 on_queue=None):
        self.store = store
        self.log = log
        self.max_runners = max(1, max_runners)
        self.env = env
        self.cond = threading.Condition()
        self.heap: list[tuple[float, str]] = []   # (due, job id); stale entries are skipped
        self.due_at: dict[str, float] = {}        # job id -> its current due time
        self.queue: dict[str, str] = {}           # job id -> "resume" | "cancel", in order
        self.running: dict[str, subprocess.Popen] = {}
        self.failures: dict[str, int] = {}
        self.watched: set[str] = set()            # jobs a foreground fm runs, watched
        self.on_queue = on_queue                  # (job ids) -> None: the queue changed
        self._shown: list = []                    # the queue as on_queue last saw it
        self.stopping = False

    # ---- what to run ----

    def want(self, job_id: str, action: str = "resume") -> None:
        """Run the job as soon as a runner slot is free (unless a runner has it already)."""
        with self.cond:
            if job_id not in self.running and self.queue.get(job_id) != "cancel":
                self.queue[job_id] = action
            self.due_at.pop(job_id, None)
            self.cond.notify_all()

    def wake_at(self, job_id: str, when: float) -> None:
        """Run the job at epoch seconds `when` (replaces an earlier time)."""
        with self.cond:
            self.due_at[job_id] = when
            heapq.heappush(self.heap, (when, job_id))
            self.cond.notify_all()

    def counts(self) -> dict:
        with self.cond:
            return {"running": len(self.running), "queued": len(self.queue),
                    "sleeping": len(self.due_at)}

    # ---- the loop ----

    def loop(self) -> None:
        """Start runners for queued and due jobs until stop(); the daemon's main thread."""
        with self.cond:
            while not self.stopping:
                self._move_due(time.time())
                while self.queue and len(self.running) < self.max_runners:
                    job_id = next(iter(self.queue))
                    self._start(job_id, self.queue.pop(job_id))
                if self.on_queue is not None and list(self.queue) != self._shown:
                    self._shown = list(self.queue)
                    self.on_queue(self._shown)
                timeout = None
                if self.heap and not self.queue:
                    timeout = max(0.0, self.heap[0][0] - time.time())
                self.cond.wait(timeout)

    def _move_due(self, now: float) -> None:
        while self.heap and self.heap[0][0] <= now:
            when, job_id = heapq.heappop(self.heap)
            if self.due_at.get(job_id) == when:
                del self.due_at[job_id]
                if job_id not in self.running:
                    self.queue.setdefault(job_id, "resume")

    def _start(self, job_id: str, action: str) -> None:
        if job_id in self.running:
            return
        if self.store.holder(job_id) is not None:
            self.watch(job_id)  # a foreground fm or `fm resume` has it: file it when it goes
            return
        cmd = [sys.executable, "-m", "flowmetal", action, job_id]
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, env=self.env,
                                    start_new_session=True, close_fds=True)
        except OSError as e:
            self.log.error("cannot start a runner for %s: %s", job_id, e)
            return
        self.running[job_id] = proc
        self.log.info("job %s: %s by runner %d", job_id, action, proc.pid)
        threading.Thread(target=self._reap, args=(job_id, proc), daemon=True,
                         name=f"reap-{job_id}").start()

    def _reap(self, job_id: str, proc: subprocess.Popen) -> None:
        status = proc.wait()
        with self.cond:
            self.running.pop(job_id, None)
            self.cond.notify_all()
        self.log.info("job %s: runner %d exited with %s", job_id, proc.pid, status)
        if not self.stopping:
            self.settle(job_id, crashed=status < 0 or status == 70)

    def settle(self, job_id: str, *, crashed: bool = False) -> None:
        """Look at a job no runner of ours has (any more) and file it: finished; held by
        another process (watched, and filed again when that process lets it go); parked (run
        when a delivery it awaits is in its inbox, else at its wake-up time, else when a
        delivery comes); or orphaned (run again, after a delay when its runner crashed)."""
        try:
            last = self.store.last(job_id) or {}
            held = last.get("kind") not in TERMINAL_KINDS and \
                self.store.holder(job_id) is not None
        except Exception as e:     # a deleted or damaged job: nothing to run
            self.log.warning("job %s: %s", job_id, e)
            return
        if last.get("kind") in TERMINAL_KINDS:
            self.failures.pop(job_id, None)
            return
        if held:        # a foreground fm, or a runner of an earlier daemon: file it when it goes
            if job_id not in self.running:
                self.watch(job_id)
            return
        if last.get("kind") == "job.parked":
            self.failures.pop(job_id, None)
            if awaited(self.store, job_id, last.get("waits") or []):
                self.want(job_id)
            elif last.get("until") is not None:
                self.wake_at(job_id, last["until"])
            return
        if crashed:
            n = self.failures[job_id] = self.failures.get(job_id, 0) + 1
            delay = min(RESTART_DELAY * 2 ** (n - 1), RESTART_MAX)
            self.log.warning("job %s: its runner died; running it again in %gs", job_id, delay)
            self.wake_at(job_id, time.time() + delay)
        else:
            self.want(job_id)

    def watch(self, job_id: str) -> None:
        """Watch a job another process runs (a foreground fm that handed it over): when that
        process lets it go, however it went (done, SIGHUP, kill -9), file the job, so an
        unfinished one goes on here. One thread per watched job, blocked in the store."""
        with self.cond:
            if job_id in self.watched:
                return
            self.watched.add(job_id)
        self.log.info("job %s: watching its foreground runner", job_id)

        def wait() -> None:
            try:
                self.store.wait_free(job_id)
            except Exception as e:       # deleted meanwhile, or damaged
                self.log.warning("job %s: cannot watch it: %s", job_id, e)
                return
            finally:
                with self.cond:
                    self.watched.discard(job_id)
            if not self.stopping:
                self.log.info("job %s: its foreground runner let it go", job_id)
                self.settle(job_id)
        threading.Thread(target=wait, daemon=True, name=f"watch-{job_id}").start()

    def poke(self, job_id: str) -> None:
        """A delivery came for the job: run it if it is parked and waits for it. A job one of
        our runners has is left alone: the runner looks at the inbox, and `settle` does when
        the runner exits (parked or not)."""
        with self.cond:
            if job_id in self.running:
                return
        try:
            last = self.store.last(job_id) or {}
        except Exception:
            return
        if last.get("kind") == "job.parked" and self.store.holder(job_id) is None \
                and awaited(self.store, job_id, last.get("waits") or []):
            self.want(job_id)

    def stop(self, grace: float = 30.0) -> None:
        """Stop starting runners; SIGTERM the running ones (each leaves its job resumable at a
        safe point) and wait up to `grace` seconds for them, then SIGKILL the rest."""
        with self.cond:
            self.stopping = True
            procs = list(self.running.values())
            self.cond.notify_all()
        for p in procs:
            _signal(p, "terminate")
        end = time.monotonic() + grace
        for p in procs:
            try:
                p.wait(max(0.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(p, "kill")


def awaited(store, job_id: str, waits: list) -> bool:
    """Whether the job's inbox holds a delivery one of its parked awaits would take."""
    if not waits:
        return False
    from ..connectors.inbox import match
    mail = store.mail(job_id)
    return any(match(w, mail, set()) for w in waits if isinstance(w, dict))


def _signal(proc: subprocess.Popen, how: str) -> None:
    try:
        getattr(proc, how)()
    except OSError:
        pass


def runner_env() -> dict:
    """The environment of runner processes: the daemon's, with FM_HOME made absolute (a job's
    own environment is restored from its journal by the runner)."""
    env = dict(os.environ)
    if env.get("FM_HOME"):
        env["FM_HOME"] = os.path.abspath(env["FM_HOME"])
    env.setdefault(PARK_ENV, str(PARK_AFTER))
    env.setdefault(LINGER_ENV, str(LINGER))
    return env
