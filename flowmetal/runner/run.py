"""Drive one job: start it, or resume it by replaying its journal, then run it live to the end.

The loop (SPEC §2, G1/G2/G5): the machine stops at an effect request; the runner journals it
(`effect.started`, a plain write), performs it, journals the result (`effect.done`, fsync'd) and
hands the result back (with fsync "always", to the machine in a helper thread while the fsync
runs: the machine is pure, and its next requests are acted on only once the fsync returned).
Every SNAPSHOT_EVERY requests, and at the first one, it first journals the machine's whole
state stopped at that request (`snapshot`). Resuming loads the last
snapshot, re-runs the pure steps after it with the recorded results (never echoing their output
again), checks that every re-made request equals the recorded one, and continues live; an
effect that was started but has no result runs again, with the same request (so the same
FM_STEP_KEY), unless it is marked `once` (at-most-once): that one is not run again, and the
machine gets status 125, "outcome unknown" (docs/effects.md, "once"). The record kinds are
documented in docs/journal.md.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal

# The C function signal.pthread_sigmask wraps: the wrapper turns each signal of the returned
# mask into an enum member, 5-10 µs a call; the runner calls it twice a record.
from _signal import pthread_sigmask as _sigmask

from .. import __version__
from ..connectors import mark
from ..connectors.watchdog import release as release_watchdog
from ..effects import EFFECTS
from ..errors import FlowmetalError, JournalError, Terminated, UsageError
from ..journal import TERMINAL_KINDS, JobStore, Lease, open_store
from ..journal.jobstore import new_job_id
from ..records import record
from .config import Config

SNAPSHOT_EVERY = 64
"""Results between two snapshots, at least: resuming re-runs at least this many pure stretches.
A snapshot is also not written before the journal has grown by the size of the last one, so
the bytes of snapshots stay at most those of the records between them (a big state is not
copied every 64 effects: journal bytes stay proportional to effects plus state)."""

BATCH_DELAY = 0.05
"""With `[journal] fsync = "batch"`: the longest a world-changing effect's result waits for
its fsync (docs/journal.md)."""

CANCELLED_STATUS = 130
PARKED_STATUS = 75
"""A runner's exit status when it parked its job (EX_TEMPFAIL: run it again later)."""
HAND_OVER_ENV = "FM_HAND_OVER"
"""`0`: a foreground job is never handed to the daemon (docs/cli.md; the test suite sets it)."""
HAND_OVER_AFTER = 60.0
"""Seconds of nothing but timers after which a foreground job is handed to the daemon."""
PARK_ENV = "FM_PARK_AFTER"
"""Set by the daemon for its runners: a job whose every effect is a wait that ends more than
this many seconds from now (or never: an await without --timeout) is parked."""

LINGER_ENV = "FM_LINGER"
"""Set by the daemon for its runners: seconds a job that would park on an await goes on
waiting first, so that a stream of deliveries does not start a runner for each one."""

ONCE_UNKNOWN_STATUS = 125
"""Each stage's status of a `once` command that a crash interrupted (outcome unknown)."""


class DivergenceError(JournalError):
    """Replaying a journal, the program asked for something other than what was recorded."""


class JobFinishedError(FlowmetalError):
    """The job has already ended; there is nothing to resume."""


@record
class Script:
    """A program about to become a job."""

    source: str
    """The script's text (decoded with surrogateescape, so any bytes survive)."""

    filename: str
    """The name diagnostics use for it: the path as given, `-c` or `stdin`."""

    name: str
    """The job name (before sanitising): the file's stem, --name, `c` or `stdin`."""

    argv: list
    """$0 followed by the arguments."""


def _machine_api():
    """(Machine, initial_state); imported late so that a missing machine fails only here."""
    from ..machine import Machine, initial_state
    return Machine, initial_state


def _crash_at(name: str = "FM_CRASH_AT") -> int | None:
    """FM_CRASH_AT=N (FM_CRASH_BEFORE=N): the test hooks that make the runner SIGKILL itself
    right after (before) record N."""
    raw = os.environ.get(name)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def compact(req: dict, base: dict) -> dict:
    """The request as journaled: an exec stage's environment becomes its difference from the
    job's environment at start (job.started holds that once), which keeps journals small."""
    if req.get("op") != "exec":
        return req
    stages = []
    for st in req["stages"]:
        env = st.get("env")
        if env is None:
            stages.append(st)
            continue
        st = {k: v for k, v in st.items() if k != "env"}
        st["env+"] = plus = {k: v for k, v in env.items() if base.get(k) != v}
        # The keys env shares with base (same values) are all of base's: none removed.
        kept_all = len(env) - len(plus) == len(base)
        st["env-"] = [] if kept_all else sorted(k for k in base if k not in env)
        stages.append(st)
    return dict(req, stages=stages)


def expand(req: dict, base: dict) -> dict:
    """The inverse of compact(): a journaled request as the connectors take it."""
    if req.get("op") != "exec":
        return req
    stages = []
    for st in req["stages"]:
        if "env+" not in st:
            stages.append(st)
            continue
        env = {k: v for k, v in base.items() if k not in set(st["env-"])}
        env.update(st["env+"])
        st = {k: v for k, v in st.items() if k not in ("env+", "env-")}
        st["env"] = env
        stages.append(st)
    return dict(req, stages=stages)


def _canon(value):
    """A value as it reads back from the journal (tuples become lists, keys strings)."""
    return json.loads(json.dumps(value))


class JobJournal:
    """The job's lease as the runner writes it: SIGINT held off during a write, and the crash
    hooks.

    FM_CRASH_AT=N makes the runner SIGKILL itself right after record N, FM_CRASH_BEFORE=N
    right before it (after the work done since record N-1: an effect performed, its result
    not yet journaled); with FM_CRASH_POWER=1 the store first loses what was not synced, as a
    power cut would (tests of which records must be synced when: docs/journal.md)."""

    def __init__(self, lease: Lease, *, created: bool, last_seq: int | None = None):
        """Wrap a lease just made by JobStore.create (`created`) or taken by JobStore.lease
        (whose last record is `last_seq`)."""
        self.lease = lease
        self.crash_at = _crash_at()
        self.crash_before = _crash_at("FM_CRASH_BEFORE")
        self.power = os.environ.get("FM_CRASH_POWER") == "1"
        self.last_seq = 0 if created else last_seq
        self._meanwhile = None          # the thread of append_during, made on first use
        if created:
            self._check(0)

    def append(self, kind: str, fields: dict, *, sync: bool = True) -> int:
        """Append a record; Ctrl-C arriving meanwhile is delivered only after it is written."""
        if self.last_seq is not None and self.last_seq + 1 == self.crash_before:
            self._die()
        # A KeyboardInterrupt between the write and the store's bookkeeping would make the next
        # record reuse a seq: damage. Blocking SIGINT for the write (two cheap syscalls) avoids it.
        old = _sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
        try:
            seq = self.lease.append(kind, fields, sync=sync)
        finally:
            _sigmask(signal.SIG_SETMASK, old)
        self._check(seq)
        return seq

    def append_during(self, kind: str, fields: dict, work):
        """Append a record and fsync it as append() does, running `work` (pure machine steps:
        nothing they do is observable) in another thread meanwhile. The fsync releases the
        GIL, so the machine's next steps take none of the runner's time. Returns work()'s
        result; the record is durable when this returns, and the crash hooks fire after both."""
        if self.last_seq is not None and self.last_seq + 1 == self.crash_before:
            self._die()
        if self._meanwhile is None:
            self._meanwhile = Meanwhile()
        old = _sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
        try:
            seq = self.lease.append(kind, fields, sync=False)
            result = self._meanwhile.run(work, self.lease.sync)
        finally:
            _sigmask(signal.SIG_SETMASK, old)
        self._check(seq)
        return result

    def done(self) -> None:
        """The runner is done with the journal: stop the helper thread, if any."""
        if self._meanwhile is not None:
            self._meanwhile.stop()
            self._meanwhile = None

    def sync(self) -> None:
        """Make every record so far durable."""
        self.lease.sync()

    def size(self) -> int:
        """The journal's size in bytes."""
        return self.lease.size()

    def _check(self, seq: int) -> None:
        self.last_seq = seq
        if seq == self.crash_at:
            self._die()

    def _die(self) -> None:
        if self.power:
            self.lease.crash_hook()
        os.kill(os.getpid(), signal.SIGKILL)


class Meanwhile:
    """A thread that runs pure work while the runner's thread waits in a call that releases
    the GIL (an fsync). The work starts as soon as the wait does; run() returns once both
    have ended, so the work never overlaps anything else the runner does."""

    def __init__(self):
        import threading
        self._go = threading.Lock()
        self._go.acquire()
        self._done = threading.Lock()
        self._done.acquire()
        self._work = None
        self._out: tuple = (True, None)
        threading.Thread(target=self._serve, name="fm-meanwhile", daemon=True).start()

    def _serve(self) -> None:
        _sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)    # they are for the runner's thread
        while True:
            self._go.acquire()
            work = self._work
            if work is None:
                return
            try:
                self._out = (True, work())
            except BaseException as e:  # handed to the runner's thread, which raises it
                self._out = (False, e)
            self._done.release()

    def run(self, work, wait):
        """wait() here and work() in the thread, at once; returns work()'s result."""
        self._work = work
        self._go.release()
        try:
            wait()
        finally:
            self._join()
        ok, value = self._out
        self._work, self._out = None, (True, None)
        if not ok:
            raise value
        return value

    def _join(self) -> None:
        """Wait for the work to end, even if a signal handler raises meanwhile (the machine
        must not change under the code that handles the exception)."""
        raised = None
        while True:
            try:
                self._done.acquire()
                break
            except BaseException as e:
                raised = e
        if raised is not None:
            raise raised

    def stop(self) -> None:
        self._work = None
        self._go.release()


class Runner:
    """One job being driven by this process: it holds the job's lock and journal.

    `pending` maps each step the machine awaits to {"br", "req", "started"}: the request and
    whether its effect.started is journaled (then, at resume, it runs again: G2)."""

    def __init__(self, job_id: str, journal: JobJournal, machine, term,
                 since_snapshot: int | None, base_env: dict, layout: str):
        self.base_env = base_env
        self.job_id = job_id
        self.journal = journal
        self.machine = machine
        self.term = term
        self.layout = layout
        self.pending: dict = {}
        self.main_ended = False
        self.sync_mode = "always"        # [journal] fsync
        self.unsynced = False            # records appended since the last fsync
        self.volatile = False            # among them a result that may differ if run again
        self._flusher = None             # the timer of a delayed fsync ("batch")
        self.snapshot_bytes = 0          # the size of the last snapshot record
        self.snapshot_end = 0            # the journal's size right after it
        # Requests completed since the last snapshot; None when the journal has no snapshot yet.
        self.since_snapshot = since_snapshot
        park = os.environ.get(PARK_ENV)
        self.park_after = float(park) if park else None   # None: never park (foreground)
        self.linger = float(os.environ.get(LINGER_ENV) or 0)
        self.lingered = False           # it lingered since the last completion: park now
        self.handed = os.environ.get(HAND_OVER_ENV) == "0"  # the daemon watches it, or never
        self.handed_over = False        # the daemon watches this process, to go on with it

    def add(self, entries: list) -> None:
        """Note new requests of the machine (pending entries from start/feed/cancel)."""
        for e in entries:
            self.pending[e["step"]] = {"br": e["br"], "req": e["req"], "started": False}

    def run(self) -> int:
        """Run live from the pending requests to the end; returns the job's exit status."""
        from .scheduler import LINGERED, CancelToken, Scheduler
        m = self.machine
        token = CancelToken()
        if _EARLY[0] is not None:   # `fm cancel` came while the job was being taken or replayed
            token.set(_EARLY[0])
            _EARLY[0] = None
        sched = Scheduler(self.term, token, self.journal.lease.inbox)
        _FOREGROUND[0] = (token, sched)
        old = _install(_on_cancel_signal)
        try:
            self.wake(sched)        # cut short before a crash, the wake not yet journaled
            while m.done() is None:
                self._launch(sched)
                if m.done() is not None:
                    break
                if not sched.outstanding():
                    raise RuntimeError("the machine awaits nothing but has not ended")
                within = None
                if self.park_after is not None and not token.is_set():
                    within = self._park(sched)
                    if within == 0:
                        return PARKED_STATUS
                if self.park_after is None and not self.handed:
                    self._hand_over(sched)
                try:
                    got = sched.next(within)
                except KeyboardInterrupt:
                    if getattr(token, "second", False):
                        raise
                    got = None      # the first one, inside an effect that does not poll
                if got is LINGERED:
                    self.lingered = True
                    continue
                self.lingered = False
                if got is None or token.is_set():
                    token, sched = self._cancel(token, sched)
                    continue
                self._complete_all([got, *sched.ready_completions()], sched)
        except Terminated as e:
            token.set("terminated")     # stop the effects in flight; journal nothing
            e.handed_over = self.handed_over
            raise
        except KeyboardInterrupt:
            # A second Ctrl-C (or `fm cancel`) while the first one's `finally` blocks run:
            # stop at once.
            self.journal.append("job.cancelled", {"status": CANCELLED_STATUS,
                                                  "step": m.state.get("step", 0),
                                                  "reason": _reason(token)})
            return CANCELLED_STATUS
        finally:
            if token.is_set():
                sched.abandon()
            sched.close()
            if self._flusher is not None:
                self._flusher.cancel()      # the final record syncs everything before it
            self.journal.done()
            _FOREGROUND[0] = None
            _install(old)
        return self._finish(m.done())

    def _launch(self, sched) -> None:
        """Journal each new request as started (snapshotting first when due) and submit it.

        A builtin's write to a file waits while another one to the same file is in flight (two
        branches logging to one file): the size noted before each (`at`) must be where its
        bytes land, or a re-run after a crash could not find them there."""
        busy = {key for p in self.pending.values()
                if p.get("submitted") and (key := _write_key(p["req"])) is not None}
        progressed = True
        while progressed:
            progressed = False
            for step in sorted(self.pending):
                p = self.pending.get(step)
                if p is None or p.get("submitted"):
                    continue
                key = _write_key(p["req"])
                if key is not None:
                    if key in busy:
                        continue
                    busy.add(key)
                progressed = True
                rerun = self._start(step, p)
                if rerun and p["req"].get("once") is True:
                    # `once` (at-most-once): an interrupted run may have done its work, so it
                    # is not run again; the machine gets status 125, "outcome unknown".
                    self._complete(step, unknown_outcome(p["req"]), sched)
                    continue
                if rerun:
                    _stop_survivors(p["req"])     # what its first run left running (G2)
                req = p["req"]
                if rerun and p.get("at") is not None:
                    # Tell the connector what its first run found, so it completes the write
                    # instead of repeating it; the journaled request stays as the machine made it.
                    req = dict(req, at=p["at"])
                sched.submit(step, req)

    def _start(self, step: int, p: dict) -> bool:
        """Journal `effect.started` for a pending request; True if it is a re-run.

        A first run notes what the effect is about to change (`at`, see `mark` in
        flowmetal/effects.py) in the record; a re-run journals the note of the first again. With
        a note the record is synced before the effect runs (`[journal] fsync = "always"`): were
        it lost to a power cut after the file took the bytes, the write would look new."""
        if self._snapshot_due():
            self._snapshot()
        req = p["req"]
        rerun = p["started"]
        if not rerun:
            p["at"] = mark(req)
        at = p.get("at")
        # A note, or a `once` (at-most-once rests on this record surviving a power cut),
        # makes the record durable before the effect runs.
        durable = (at is not None or req.get("once") is True) and self.sync_mode == "always"
        if self.volatile and not durable and (EFFECTS[req["op"]].world or EFFECTS[req["op"]].waits):
            if self.sync_mode == "batch":
                self._durable_soon()      # it does not wait: durable within BATCH_DELAY
            else:
                self._sync()              # what it may depend on is durable before it starts
        started = {"step": step, "req": compact(req, self.base_env)}
        if p["br"] != MAIN_BRANCH:
            started["br"] = p["br"]
        if rerun:
            started["rerun"] = True
        if at is not None:
            started["at"] = at
        if durable and self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        self.journal.append("effect.started", started, sync=durable)
        if durable:
            self.unsynced = self.volatile = False
        p["marked"] = durable
        p["started"] = p["submitted"] = True
        return rerun

    def _result_must_sync(self, p: dict) -> bool:
        """Whether an effect's result must be durable before anything the machine does with
        it is acted on (G1): it changed the world, and running it again after a power cut
        would do so again."""
        return EFFECTS[p["req"]["op"]].world and not self._result_stable(p)

    def _result_stable(self, p: dict) -> bool:
        """Whether running the effect again after its result was lost (a power cut) would
        leave the world and the result as they are: an idempotent op (`open`), or a write
        whose mark was synced before it ran (the re-run finds its bytes instead of repeating
        them). Such a result needs no fsync of its own, and effects that start after it need
        not wait for one."""
        return EFFECTS[p["req"]["op"]].idempotent or bool(p.get("marked"))

    def _snapshot_due(self) -> bool:
        if self.since_snapshot is None:
            return True
        if self.since_snapshot < SNAPSHOT_EVERY:
            return False
        return self.journal.size() - self.snapshot_end >= self.snapshot_bytes

    def _snapshot(self) -> None:
        """Journal the machine's whole state and the requests it awaits (not synced: the
        next effect.done syncs it)."""
        pend = []
        for step in sorted(self.pending):
            p = self.pending[step]
            entry = {"step": step, "br": p["br"], "req": compact(p["req"], self.base_env),
                     "started": p["started"]}
            if p["started"] and p.get("at") is not None:
                entry["at"] = p["at"]
            pend.append(entry)
        before = self.journal.size()
        self.journal.append("snapshot", {"step": self.machine.state["step"],
                                         "state": self.machine.state, "pending": pend,
                                         "layout": self.layout, "version": __version__},
                            sync=False)
        self.snapshot_end = self.journal.size()
        self.snapshot_bytes = self.snapshot_end - before
        self.unsynced = True
        self.since_snapshot = 0

    def _sync(self) -> None:
        """Make every record so far durable now."""
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        self.journal.sync()
        self.unsynced = self.volatile = False

    def _durable_soon(self) -> None:
        """A world-changing effect's result: fsync now, or with "batch" within BATCH_DELAY."""
        if self.sync_mode != "batch":
            self._sync()
        elif self._flusher is None:
            import threading
            self.unsynced = True
            self._flusher = threading.Timer(BATCH_DELAY, self._flush_later)
            self._flusher.daemon = True
            self._flusher.start()

    def _flush_later(self) -> None:
        try:
            self.journal.sync()
        except (OSError, ValueError, JournalError):
            pass          # closed meanwhile: its last record was synced by whoever closed it
        self._flusher = None

    def _complete(self, step: int, res: dict, sched) -> None:
        """Journal a result (fsync'd) and feed it to the machine."""
        self._complete_all([(step, res)], sched)

    def _complete_all(self, done: list, sched) -> None:
        """Journal results that finished together with one fsync (group commit: every one is
        durable before the machine's next requests are acted on, G1) and feed them in journal
        order (while that fsync runs, with fsync "always"); then the timers the machine cut
        short (a `wait` under a deadline whose branch ended)."""
        world = any(self._result_must_sync(self.pending[step]) for step, _ in done)
        taken = [res["key"] for step, res in done if _delivered(self.pending[step]["req"], res)]
        # A delivery leaves the inbox only once a synced record holds it (G3), whatever the
        # fsync setting: deliveries are few, and one lost would be lost for good.
        now = (world and self.sync_mode != "batch") or bool(taken)
        if not now and not all(self._result_stable(self.pending[step]) and not
                               (isinstance(res, dict) and res.get("error")) for step, res in done):
            self.volatile = True        # a failure may come out otherwise when run again
        def feed() -> list:
            return [self.machine.feed(step, res) for step, res in done]

        fed = None
        for k, (step, res) in enumerate(done):
            p = self.pending.pop(step)
            rec = {"step": step, "res": res}
            if p["br"] != MAIN_BRANCH:
                rec["br"] = p["br"]
            if k < len(done) - 1 or not now:
                self.journal.append("effect.done", rec, sync=False)
            elif self.sync_mode == "always":
                # The machine (pure) takes the results while the fsync runs; what it asks
                # for next starts only after (G1: docs/journal.md, "When records are synced").
                fed = self.journal.append_during("effect.done", rec, feed)
            else:
                self.journal.append("effect.done", rec, sync=True)
            self.since_snapshot += 1
        self.unsynced = not now
        if now:           # synced with the last record: a second fsync would find nothing
            self.volatile = False
            if self._flusher is not None:
                self._flusher.cancel()
                self._flusher = None
        elif world:
            self._durable_soon()
        for key in taken:
            self.journal.lease.take(key)
        for entries in fed if fed is not None else _machine_step(feed):
            self.add(entries)
        self._note_main_end()
        self.wake(sched)

    def wake(self, sched) -> None:
        """Complete every timer the machine has cut short with {"woken": true}."""
        for step in self.machine.wakes():
            p = self.pending.get(step)
            if p is None:
                continue
            if not p.get("submitted"):
                self._start(step, p)
            sched.unpark(step)
            self._complete(step, {"woken": True}, sched)

    def _park(self, sched) -> float | None:
        """Park the job when it only waits, and for longer than `park_after`: its wake-up time
        goes into the store's index and a synced `job.parked` record says what it waits for
        (docs/daemon.md); 0 then, and the caller lets the job go. The daemon runs it again
        when the time comes or a delivery it waits for arrives; the waits run again then (a
        sleep's `until` is fixed, so it only waits for what is left). A job that awaits a
        delivery waits `linger` seconds here first (that many are returned). None: no park."""
        waits = sched.parked()
        if waits is None:
            return None
        due, awaits = waits
        from ..connectors.clock import get_clock
        clock = get_clock()
        if due - clock.now() <= self.park_after:
            return None
        if awaits and self.linger > 0 and not self.lingered and not clock.fake:
            return self.linger
        until = None if due == float("inf") else due
        self.journal.lease.set_wake(until)
        self.journal.append("job.parked", {
            "step": self.machine.state["step"], "until": until,
            "waits": awaits})
        self.unsynced = self.volatile = False
        return 0

    def _hand_over(self, sched) -> None:
        """A foreground job that waits for a delivery, or only waits and for longer than
        HAND_OVER_AFTER, is handed to the daemon (started if none runs), which watches this
        process: if it goes (SIGHUP, kill -9) before the job ends, the daemon goes on with the
        job. Once per runner; a failure is said once, and the job goes on here."""
        waits = sched.parked()
        if waits is None:
            return
        from ..connectors.clock import get_clock
        clock = get_clock()
        if clock.fake or (not waits[1] and waits[0] - clock.now() <= HAND_OVER_AFTER):
            return
        self.handed = True
        from ..daemon.client import watch
        from ..errors import FlowmetalError
        try:
            watch(self.job_id)
            self.handed_over = True
        except (FlowmetalError, OSError) as e:
            self.term.write(2, f"fm: the daemon cannot watch job {self.job_id} ({e}); it goes "
                               "on only while this fm runs\n".encode("utf-8", "replace"))

    def _note_main_end(self) -> None:
        """Once, when the main code has ended but branches still run: a `main.ended` record
        (so `fm ps` can say what the job waits for)."""
        if self.main_ended:
            return
        waits = self.machine.main_waits()
        if waits:
            self.main_ended = True
            self.journal.append("main.ended", {"step": self.machine.state["step"],
                                               "waiting": waits}, sync=False)

    def _cancel(self, token, sched):
        """The first Ctrl-C or `fm cancel`: abandon every effect in flight, journal the
        cancellation, and let every branch run its `finally` blocks under a new token."""
        from .scheduler import CancelToken, Scheduler
        reason = _reason(token)
        sched.abandon()
        sched.close()
        self.journal.append("cancel", {"step": self.machine.state.get("step", 0),
                                       "reason": reason})
        self.pending.clear()
        self.add(_machine_step(lambda: self.machine.cancel(reason)))
        token = CancelToken()
        token.second = True
        sched = Scheduler(self.term, token, self.journal.lease.inbox)
        self.wake(sched)
        _FOREGROUND[0] = (token, sched)
        return token, sched

    def _finish(self, req: dict) -> int:
        """Journal the end of the job and print its error, if any; returns the status."""
        status = req.get("status", 0)
        if not isinstance(status, int):
            status = 1
        step = self.machine.state.get("step", 0)
        error = req.get("error")
        if req.get("cancelled"):
            self.journal.append("job.cancelled", {"status": status, "step": step,
                                                  "reason": req["cancelled"]})
            if error:
                self.term.write(2, (self.render_error(error) + "\n").encode("utf-8",
                                                                            "surrogateescape"))
            return status
        if error:
            self.journal.append("job.failed", {"status": status, "step": step, "error": error})
            self.term.write(2, (self.render_error(error) + "\n").encode("utf-8", "surrogateescape"))
        else:
            self.journal.append("job.finished", {"status": status, "step": step})
        return status

    def render_error(self, error: dict) -> str:
        """An unhandled error as a diagnostic with file:line:col and a caret, or `fm: message`."""
        from ..lang.errmsg import call_chain_text
        message = str(error.get("message", "error"))
        span = error.get("span")
        unit = error.get("unit")
        shown = f"fm: {message}"
        if unit is not None and isinstance(span, list) and len(span) == 4:
            try:
                text, filename = self.machine.unit_source(unit)
            except (KeyError, LookupError, AttributeError, TypeError):
                text = None
            if text is not None:
                from ..diagnostics import render
                shown = render(filename, text, *span, message)
        chain = call_chain_text(error.get("chain"))
        return shown if chain is None else f"{shown}\n{chain}"


# Ctrl-C's SIGINT, and SIGUSR1 from `fm cancel` (a job run in the background of a shell ignores
# SIGINT): both cancel the job. Held off while a record is written or the machine steps.
_CANCEL_SIGNALS = {signal.SIGINT, signal.SIGUSR1}

MAIN_BRANCH = "0"

_FOREGROUND: list = [None]
"""(cancel token, scheduler) of the job this process runs in the foreground: the one thing a
signal handler may touch."""

_ARMED: list = [False]
_EARLY: list = [None]
"""From before the job's lease is taken until it runs live (replay can take a while), a cancel
signal is kept in _EARLY and acted on when run() starts: `fm cancel` sends it as soon as it sees
the lease taken, and neither the default action of SIGUSR1 (death, skipping `finally` blocks)
nor a KeyboardInterrupt in the middle of replay may meet it."""


class _CancelSignals:
    """`with _CancelSignals():` around taking and running a job (see _EARLY); SIGTERM and
    SIGHUP stop it resumably (_on_stop_signal)."""

    def __enter__(self):
        _EARLY[0] = None
        _ARMED[0] = True
        self.old = _install(_on_cancel_signal)
        self.old_stop = _install(_on_stop_signal, _STOP_SIGNALS)

    def __exit__(self, *exc):
        _ARMED[0] = False
        _EARLY[0] = None
        _install(self.old)
        _install(self.old_stop, _STOP_SIGNALS)


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Stop the job where it stands, resumably (`fm resume`, the daemon): neither is a cancel."""

_HELD_SIGNALS = _CANCEL_SIGNALS | set(_STOP_SIGNALS)
"""Held off while a record is written or the machine steps."""


def _on_stop_signal(signum, frame):
    """SIGTERM or SIGHUP: raise Terminated in the runner's thread. Run() then stops the effects
    in flight (as a cancel does, but journals nothing); the ones started run again on resume.
    Further ones are ignored while it cleans up."""
    for sig in _STOP_SIGNALS:
        try:
            signal.signal(sig, signal.SIG_IGN)
        except ValueError:
            pass
    raise Terminated(signum)


def _on_cancel_signal(signum, frame):
    """Ctrl-C or `fm cancel`: set the job's cancel token (the effects in flight see it and
    stop). A second one while the first one's `finally` blocks run stops at once; so does the
    first one while the runner's own thread is inside a blocking effect that does not poll."""
    fg = _FOREGROUND[0]
    reason = "interrupted (SIGINT)" if signum == signal.SIGINT else "cancelled (fm cancel)"
    if fg is None:
        if _ARMED[0]:
            _EARLY[0] = reason      # before the job runs live: run() starts by cancelling
            return
        raise KeyboardInterrupt
    token, sched = fg
    if getattr(token, "second", False):
        token.reason = reason
        raise KeyboardInterrupt
    token.set(reason)
    if sched.inline:
        raise KeyboardInterrupt


def _install(handlers, signals=None):
    """Set the handler of `signals` (SIGINT and SIGUSR1 unless told) (one for all, or a dict
    as returned); returns the old ones. Outside the main thread (a test driving a runner)
    nothing changes; a signal ignored (nohup, a script's background) stays ignored."""
    old = {}
    for sig in signals or _CANCEL_SIGNALS:
        new = handlers.get(sig) if isinstance(handlers, dict) else handlers
        if new is None or signal.getsignal(sig) is signal.SIG_IGN:
            continue    # fm in a script's background ignores SIGINT, as bash's jobs do
        try:
            old[sig] = signal.signal(sig, new)
        except ValueError:
            pass
    return old


def _reason(token) -> str:
    return token.reason or "interrupted (SIGINT)"


def _machine_step(fn):
    """Run a pure machine step with SIGINT and SIGUSR1 held off: a cancel in the middle of an
    instruction would leave the state half changed for the `finally` blocks. Ctrl-C lands in
    the next effect. SIGTERM and SIGHUP are not held: a step that computes for long (a loop
    of builtins, a slow pattern) ends at once with Terminated, which journals nothing, so the
    half-changed state is dropped and `fm resume` replays the job from its journal."""
    old = _sigmask(signal.SIG_BLOCK, _CANCEL_SIGNALS)
    try:
        return fn()
    finally:
        _sigmask(signal.SIG_SETMASK, old)


def _stop_survivors(req: dict) -> None:
    """Before a step runs again after a crash: stop what its first run left running, so the
    two never run at once (connectors/survivors.py)."""
    stages = req.get("stages") if req.get("op") == "exec" else None
    keys = {s["env"].get("FM_STEP_KEY") for s in stages or ()
            if isinstance(s, dict) and isinstance(s.get("env"), dict)}
    keys.discard(None)
    if keys:
        from ..connectors.survivors import stop_survivors
        for key in sorted(keys):
            stop_survivors(key)


def _delivered(req: dict, res) -> bool:
    """Whether an effect's result consumed a delivery from the job's inbox (an await's)."""
    return EFFECTS[req["op"]].delivery and isinstance(res, dict) and \
        isinstance(res.get("key"), str)


def _write_key(req: dict) -> str | None:
    """The file a builtin's write goes to (its path as given, made absolute), else None."""
    if req.get("op") != "write":
        return None
    target = req.get("target") or {}
    if target.get("kind") != "file":
        return None
    return os.path.join(target.get("cwd") or req.get("cwd") or "", str(target.get("path")))


def unknown_outcome(req: dict) -> dict:
    """The result given for a `once` request that a crash interrupted: it is not run again."""
    stages = req.get("stages") or [None]
    return {"status": [ONCE_UNKNOWN_STATUS] * len(stages), "unknown": True,
            "errors": {"0": "interrupted by a crash: outcome unknown"}}


def settings_of(config: Config) -> dict:
    """The config defaults the machine's builtins use (`retry`, `http`), as plain JSON."""
    r = config.retry
    return {"retry": {"attempts": r.attempts, "delay": r.delay, "backoff": r.backoff,
                      "max_delay": r.max_delay},
            "http": {"timeout": config.http.timeout}}


def logical_cwd() -> str:
    """The working directory as the user sees it: $PWD when it names the real cwd (symlinks
    kept)."""
    cwd = os.getcwd()
    pwd = os.environ.get("PWD")
    if pwd and os.path.isabs(pwd):
        try:
            if os.path.samefile(pwd, cwd):
                return pwd
        except OSError:
            pass
    return cwd


def start_job(script: Script, *, term, config: Config, store: JobStore | None = None) -> int:
    """Create a job for the script and run it in this process; returns its exit status.

    A syntax error raises ParseError before any job exists: building the machine parses and
    compiles the whole script, and that happens before the job is created.
    """
    with _CancelSignals():
        return _start_job(script, term=term, config=config, store=store or open_store())


def _start_job(script: Script, *, term, config: Config, store: JobStore) -> int:
    env = dict(os.environ)
    job_id, machine, lease = _new_job(script, env=env, cwd=logical_cwd(), config=config,
                                      store=store)
    try:
        runner = Runner(job_id, JobJournal(lease, created=True), machine, term,
                        since_snapshot=None, base_env=env, layout=machine.layout())
        runner.sync_mode = config.journal.fsync
        runner.add(_machine_step(machine.start))
        runner._note_main_end()
        return _ran(runner)
    except BaseException as e:
        _tag(e, lease)
        raise
    finally:
        lease.release()


def _ran(runner: "Runner") -> int:
    """Run the job to its end; then its watchdog may go, leaving alone what it left running on
    purpose. (Any other way out, SIGTERM or a crash, leaves the watchdog to stop the job's
    programs: they run again, alone, when the job resumes.)"""
    status = runner.run()
    release_watchdog(runner.job_id)
    return status


def _new_job(script: Script, *, env: dict, cwd: str, config: Config, store: JobStore):
    """(job id, machine, lease) of a new job, born leased (so no daemon ever sees it as an
    orphan to resume). The script is parsed first: a syntax error raises ParseError before
    any job exists."""
    Machine, initial_state = _machine_api()
    pid = os.getpid()
    settings = settings_of(config)
    while True:
        job_id = new_job_id(script.name)
        state = initial_state(settings=settings, job=job_id, argv=list(script.argv),
                              env=env, cwd=cwd, filename=script.filename, pid=pid)
        machine = Machine(state, source=script.source)  # raises ParseError
        try:
            lease = store.create(job_id, {
                "version": __version__, "name": script.name, "filename": script.filename,
                "source": script.source, "argv": list(script.argv), "cwd": cwd, "env": env,
                "pid": pid, "settings": settings}, fsync=config.journal.syncs)
            return job_id, machine, lease
        except FileExistsError:
            continue  # 36**6 ids per name: a clash is rare, just draw again


def create_job(script: Script, *, env: dict, cwd: str, config: Config,
               store: JobStore) -> str:
    """Create a job for the script without running it (the daemon's runners will); its id."""
    job_id, _machine, lease = _new_job(script, env=env, cwd=cwd, config=config, store=store)
    lease.release()
    return job_id


def script_from_request(spec: dict) -> tuple[Script, dict, str]:
    """(script, env, cwd) from a `POST /jobs` body (docs/api.yaml); UsageError when a field
    is missing or has the wrong type. The job never gets the daemon's own env or cwd."""
    def field(key, kind, default=None):
        v = spec.get(key, default)
        if not isinstance(v, kind):
            raise UsageError(f"`{key}` must be {_KIND_NAMES[kind]}")
        return v
    source = field("source", str)
    filename = field("filename", str, "api")
    argv = field("argv", list, [])
    env = field("env", dict)
    cwd = field("cwd", str)
    if not all(isinstance(a, str) for a in argv) or \
            not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise UsageError("`argv` must be a list of strings and `env` map strings to strings")
    if not cwd.startswith("/"):
        raise UsageError("`cwd` must be an absolute path")
    name = field("name", str, os.path.basename(filename).removesuffix(".fm") or "api")
    return Script(source=source, filename=filename, name=name, argv=[filename, *argv]), env, cwd


_KIND_NAMES = {str: "a string", list: "a list", dict: "an object"}


def resume_job(job_id: str, *, term, config: Config, store: JobStore | None = None,
               cancel: str | None = None) -> int:
    """Take the job's lease, replay its journal and run it live to the end; returns its status.

    With `cancel` (a reason), the job is cancelled where it stands instead: the cancellation
    is journaled and only its `finally` blocks run (`fm cancel` of a job no process runs).

    Raises JobLockedError (another process runs it), JournalError (damage, or the program
    diverges from its journal: DivergenceError) and JobFinishedError.
    """
    with _CancelSignals():
        lease = (store or open_store()).lease(job_id, fsync=config.journal.syncs)
        return _resume_leased(lease, term=term, config=config, cancel=cancel)


def _resume_leased(lease: Lease, *, term, config: Config, cancel: str | None) -> int:
    job_id = lease.job_id
    try:
        first = lease.first()
        snap, after = lease.tail()
        last = after[-1] if after else snap or first
        if last["kind"] in TERMINAL_KINDS:
            status = last.get("status", "?")
            raise JobFinishedError(f"job {job_id} already finished (status {status})")
        if last["kind"] == "job.parked":
            lease.set_wake(None)    # it runs now; if it parks again, it says until when
        journal = JobJournal(lease, created=False, last_seq=last["seq"])
        runner = replay(job_id, journal, first, snap, after, term, config=config)
        runner.sync_mode = config.journal.fsync
        if cancel is not None and not runner.machine.state.get("cancelled"):
            runner.journal.append("cancel", {"step": runner.machine.state.get("step", 0),
                                             "reason": cancel})
            runner.pending.clear()
            runner.add(_machine_step(lambda: runner.machine.cancel(cancel)))
        return _ran(runner)
    except BaseException as e:
        _tag(e, lease)
        raise
    finally:
        lease.release()


def replay(job_id: str, journal: JobJournal, first: dict, snap: dict | None, after: list[dict],
           term, *, config: Config | None = None) -> Runner:
    """Rebuild the machine from the last snapshot and the records after it, and return a
    runner holding it with the requests it awaits (those journaled as started run again).

    A snapshot written by a machine whose compiled layout differs from this one's (another fm
    version, or one from before layouts were recorded) is not loaded: the job is replayed from
    its start record through every recorded result (all the lease's records).
    Without a usable snapshot the initial state is rebuilt with the settings job.started
    recorded (a journal from before they were recorded: those of `config`, else the defaults).
    """
    Machine, initial_state = _machine_api()
    source = first["source"]
    settings = first.get("settings")
    if not isinstance(settings, dict):
        settings = settings_of(config or Config())
    state = initial_state(settings=settings, job=job_id, argv=list(first["argv"]),
                          env=dict(first["env"]), cwd=first["cwd"], filename=first["filename"],
                          pid=first.get("pid"))
    machine = Machine(state, source=source)
    layout = machine.layout()
    runner = Runner(job_id, journal, machine, term, since_snapshot=None,
                    base_env=first["env"], layout=layout)
    if snap is not None and snap.get("layout") == layout:
        with _loading(journal.lease, snap):
            runner.machine = machine = Machine(snap["state"], source=source)
            for p in snap["pending"]:
                runner.pending[p["step"]] = {"br": p.get("br", "0"), "started": p["started"],
                                             "req": expand(p["req"], first["env"]),
                                             "at": p.get("at")}
        runner.since_snapshot = 0
        note = ""
    else:
        if snap is not None:
            after = [r for r in journal.lease.records() if r["seq"] > 0]
        runner.add(machine.start())
        note = "" if snap is None else (
            f" (the job was started by fm {first.get('version', '?')}; its snapshot's "
            f"compiled layout differs from this fm {__version__}'s, so it was replayed from "
            "its start)")
    for rec in after:
        with _loading(journal.lease, rec):
            _replay_record(runner, rec, first["env"], note)
    return runner


@contextlib.contextmanager
def _loading(lease: Lease, rec: dict):
    """Report a record whose content the machine cannot take (its checksum and shape were
    right: edited by hand, or written by a broken fm) as damage at its line, not as a bug."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as e:
        raise JournalError(f"{lease.where(rec['seq'])}: damaged record (its {rec['kind']} does "
                           f"not load: {type(e).__name__}: {e}); the job cannot be resumed "
                           "safely") from None


def _replay_record(runner: Runner, rec: dict, env: dict, note: str) -> None:
    """Apply one journal record to a runner being rebuilt."""
    kind = rec["kind"]
    pending = runner.pending
    if kind == "effect.started":
        p = pending.get(rec.get("step"))
        if p is None or rec.get("req") != _canon(compact(p["req"], env)):
            raise _diverged(runner.journal.lease, rec, p, note)
        p["started"] = True
        p["at"] = rec.get("at")
    elif kind == "effect.done":
        step = rec.get("step")
        p = pending.get(step)
        if p is None or not p["started"]:
            raise _diverged(runner.journal.lease, rec, p, note)
        del pending[step]
        if _delivered(p["req"], rec.get("res")):
            # Its record is durable: if a crash came before the delivery left the inbox, it
            # leaves now (taking twice is harmless), so no later await sees it again.
            runner.journal.lease.take(rec["res"]["key"])
        runner.add(runner.machine.feed(step, rec.get("res")))
        if runner.since_snapshot is not None:
            runner.since_snapshot += 1
    elif kind == "main.ended":
        runner.main_ended = True
    elif kind == "cancel":
        # Ctrl-C reached the job here: the effects in flight were abandoned
        pending.clear()
        runner.add(runner.machine.cancel(rec.get("reason", "cancelled")))
    # Other kinds (snapshots, later versions' kinds) carry nothing the machine needs.


def _describe(req: dict) -> str:
    """A short rendering of a request for divergence messages."""
    text = json.dumps(req, sort_keys=True)
    return text if len(text) <= 200 else text[:197] + "..."


def _diverged(lease: Lease, rec: dict, pending: dict | None, note: str) -> DivergenceError:
    """The error for a record that the re-run program does not match."""
    where = lease.where(rec["seq"])
    step = rec.get("step")
    if rec["kind"] == "effect.started":
        now = _describe(pending["req"]) if pending else "nothing at that step"
        what = f"recorded {_describe(rec.get('req'))}, but the program now asks for {now}"
    else:
        what = f"a result for step {step} without its request"
    return DivergenceError(
        f"journal diverges from the program at step {step} ({where}): {what}{note}; "
        "the job cannot be resumed safely (please report)")


def _tag(exc: BaseException, lease: Lease) -> None:
    """Remember which job an unexpected exception came from, so its traceback lands in its
    directory (when its store has one)."""
    if isinstance(exc, Terminated) and exc.job_id is None:
        exc.job_id = getattr(lease, "job_id", None)
    try:
        if not hasattr(exc, "fm_job_dir") and getattr(lease, "dir", None) is not None:
            exc.fm_job_dir = lease.dir
    except AttributeError:
        pass
