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

RESTART_DELAY = 1.0
RESTART_MAX = 300.0


class Supervisor:
    def __init__(self, store, log, *, max_runners: int, env: dict | None = None):
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
            return          # a foreground fm or `fm resume` has it; it reports back itself
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
        """Look at a job no runner of ours has (any more) and file it: finished, parked on a
        wake-up time, or orphaned (run again, after a delay when its runner crashed)."""
        from ..runner.jobs import job_info
        try:
            info = job_info(self.store, job_id)
        except Exception as e:     # a deleted or damaged job: nothing to run
            self.log.warning("job %s: %s", job_id, e)
            return
        if info.finished or info.state == "damaged" or info.pid is not None:
            self.failures.pop(job_id, None)
            return
        wake = dict(self.store.wakes()).get(job_id)
        if wake is not None:
            self.failures.pop(job_id, None)
            self.wake_at(job_id, wake)
        elif crashed:
            n = self.failures[job_id] = self.failures.get(job_id, 0) + 1
            delay = min(RESTART_DELAY * 2 ** (n - 1), RESTART_MAX)
            self.log.warning("job %s: its runner died; running it again in %gs", job_id, delay)
            self.wake_at(job_id, time.time() + delay)
        else:
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
    return env
