"""Drive one job: start it, or resume it by replaying its journal, then run it live to the end.

The loop (SPEC §2, G1/G2/G5): the machine stops at an effect request; the runner journals it
(`effect.started`, a plain write), performs it, journals the result (`effect.done`, fsync'd) and
hands the result back. Every SNAPSHOT_EVERY requests, and at the first one, it first journals
the machine's whole state stopped at that request (`snapshot`). Resuming loads the last
snapshot, re-runs the pure steps after it with the recorded results (never echoing their output
again), checks that every re-made request equals the recorded one, and continues live; an
effect that was started but has no result runs again, with the same request (so the same
FM_STEP_KEY), unless it is marked `once` (at-most-once): that one is not run again, and the
machine gets status 125, "outcome unknown" (docs/effects.md, "once"). The record kinds are
documented in docs/journal.md.
"""
from __future__ import annotations

import json
import os
import signal
from ..records import record
from pathlib import Path

from .. import __version__
from ..errors import FlowmetalError, JournalError
from ..journal import TERMINAL_KINDS, JobLock, Journal
from .config import Config
from .jobs import JOURNAL, create_job_dir, new_job_id

SNAPSHOT_EVERY = 64
"""Requests between two snapshots: resuming re-runs at most this many pure stretches (G5)."""

CANCELLED_STATUS = 130

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


def _crash_at() -> int | None:
    """FM_CRASH_AT=N: the test hook that makes the runner SIGKILL itself after record N."""
    raw = os.environ.get("FM_CRASH_AT")
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
        st["env+"] = {k: v for k, v in env.items() if base.get(k) != v}
        st["env-"] = sorted(k for k in base if k not in env)
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
    """The journal as the runner writes it: SIGINT held off during a write, and the crash hook."""

    def __init__(self, journal: Journal, *, created: bool):
        """Wrap a journal just made by Journal.create (`created`) or reopened by Journal.open."""
        self.journal = journal
        self.crash_at = _crash_at()
        if created:
            self._check(0)

    def append(self, kind: str, fields: dict, *, sync: bool = True) -> int:
        """Append a record; Ctrl-C arriving meanwhile is delivered only after it is written."""
        # A KeyboardInterrupt between the write and the journal's bookkeeping would make the next
        # record reuse a seq: damage. Blocking SIGINT for the write (two cheap syscalls) avoids it.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _CANCEL_SIGNALS)
        try:
            seq = self.journal.append(kind, fields, sync=sync)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        self._check(seq)
        return seq

    def _check(self, seq: int) -> None:
        if seq == self.crash_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def close(self) -> None:
        self.journal.close()


class Runner:
    """One job being driven by this process: it holds the job's lock and journal."""

    def __init__(self, job_id: str, job_dir: Path, lock: JobLock, journal: JobJournal, machine,
                 term, since_snapshot: int | None, base_env: dict):
        self.base_env = base_env
        self.job_id = job_id
        self.job_dir = job_dir
        self.lock = lock
        self.journal = journal
        self.machine = machine
        self.term = term
        # Requests completed since the last snapshot; None when the journal has no snapshot yet.
        self.since_snapshot = since_snapshot

    def run(self, req: dict, *, rerun: bool = False) -> int:
        """Run live from the pending request `req` to the end; returns the job's exit status.

        `rerun`: `req` was journaled as started by an earlier run that died before its result:
        it runs again (G2), and its effect.started says so.
        """
        m = self.machine
        cancelled = bool(m.state.get("cancelled"))
        try:
            signal.signal(signal.SIGUSR1, _raise_interrupt)
        except ValueError:
            pass     # not the main thread (a test driving a runner): no `fm cancel` by signal
        while True:
            try:
                req = self._drive(req, rerun)
                break
            except KeyboardInterrupt:
                # Ctrl-C: the foreground child died of the same SIGINT. The first one cancels
                # the job, and its `finally` blocks still run (journaled like any step); a
                # second one stops at once.
                rerun = False
                if cancelled:
                    self.journal.append("job.cancelled", {"status": CANCELLED_STATUS,
                                                          "step": m.state.get("step", 0),
                                                          "reason": "interrupted (SIGINT)"})
                    return CANCELLED_STATUS
                cancelled = True
                reason = _CANCELLED_BY[0]
                self.journal.append("cancel", {"step": m.state.get("step", 0),
                                               "reason": reason})
                req = _machine_step(lambda: m.cancel(reason))
        # Outside the try: a Ctrl-C after the final record must not append a second one.
        return self._finish(req)

    def _drive(self, req: dict, rerun: bool) -> dict:
        """Perform requests until the machine is done; returns its done record."""
        from ..connectors import perform

        m = self.machine
        while req.get("op") != "done":
            step = m.state["step"]
            if self.since_snapshot is None or self.since_snapshot >= SNAPSHOT_EVERY:
                # Not synced: the effect.done below syncs it along with effect.started.
                self.journal.append("snapshot", {"step": step, "state": m.state,
                                                 "req": compact(req, self.base_env)},
                                    sync=False)
                self.since_snapshot = 0
            started = {"step": step, "req": compact(req, self.base_env)}
            unknown = rerun and req.get("once") is True
            if rerun:
                started["rerun"] = True
                rerun = False
            self.journal.append("effect.started", started, sync=False)
            # `once` (at-most-once): an interrupted run may have done its work, so it is not
            # run again; the machine gets status 125, "outcome unknown", instead.
            res = unknown_outcome(req) if unknown else perform(req, self.term)
            self.journal.append("effect.done", {"step": step, "res": res})
            self.since_snapshot += 1
            req = _machine_step(lambda: m.run(res))
        return req

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
        message = str(error.get("message", "error"))
        span = error.get("span")
        unit = error.get("unit")
        if unit is not None and isinstance(span, list) and len(span) == 4:
            try:
                text, filename = self.machine.unit_source(unit)
            except (KeyError, LookupError, AttributeError, TypeError):
                text = None
            if text is not None:
                from ..diagnostics import render
                return render(filename, text, *span, message)
        return f"fm: {message}"


# Ctrl-C's SIGINT, and SIGUSR1 from `fm cancel` (a job run in the background of a shell ignores
# SIGINT): both cancel the job. Held off while a record is written or the machine steps.
_CANCEL_SIGNALS = {signal.SIGINT, signal.SIGUSR1}


_CANCELLED_BY = ["interrupted (SIGINT)"]


def _raise_interrupt(signum, frame):
    _CANCELLED_BY[0] = "cancelled (fm cancel)"
    raise KeyboardInterrupt


def _machine_step(fn):
    """Run a pure machine step with SIGINT held off: a KeyboardInterrupt in the middle of an
    instruction would leave the state half changed. Ctrl-C lands in the next effect."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _CANCEL_SIGNALS)
    try:
        return fn()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


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


def _logical_cwd() -> str:
    """The working directory as the user sees it: $PWD when it names the real cwd (symlinks kept)."""
    cwd = os.getcwd()
    pwd = os.environ.get("PWD")
    if pwd and os.path.isabs(pwd):
        try:
            if os.path.samefile(pwd, cwd):
                return pwd
        except OSError:
            pass
    return cwd


def start_job(script: Script, *, term, config: Config, home: Path | None = None) -> int:
    """Create a job for the script and run it in this process; returns its exit status.

    A syntax error raises ParseError before any job exists: building the machine parses and
    compiles the whole script, and that happens before the job's directory is made.
    """
    Machine, initial_state = _machine_api()
    env = dict(os.environ)
    cwd = _logical_cwd()
    pid = os.getpid()
    settings = settings_of(config)
    while True:
        job_id = new_job_id(script.name)
        state = initial_state(settings=settings, job=job_id, argv=list(script.argv),
                               env=env, cwd=cwd, filename=script.filename, pid=pid)
        machine = Machine(state, source=script.source)  # raises ParseError
        try:
            # The job appears already locked, so no daemon ever sees it as an orphan to resume.
            job_dir, lock = create_job_dir(job_id, home)
            break
        except FileExistsError:
            continue  # 36**6 ids per name: a clash is rare, just draw again
    try:
        journal = JobJournal(Journal.create(job_dir / JOURNAL, {
            "version": __version__, "id": job_id, "name": script.name,
            "filename": script.filename, "source": script.source, "argv": list(script.argv),
            "cwd": cwd, "env": env, "pid": pid, "settings": settings,
        }, fsync=config.journal.fsync), created=True)
    except BaseException as e:
        lock.release()
        _tag(e, job_dir)
        raise
    try:
        runner = Runner(job_id, job_dir, lock, journal, machine, term, since_snapshot=None,
                        base_env=env)
        return runner.run(machine.run())
    except BaseException as e:
        _tag(e, job_dir)
        raise
    finally:
        journal.close()
        lock.release()


def resume_job(job_id: str, job_dir: Path, *, term, config: Config,
               cancel: str | None = None) -> int:
    """Take the job's lock, replay its journal and run it live to the end; returns its status.

    With `cancel` (a reason), the job is cancelled where it stands instead: the cancellation
    is journaled and only its `finally` blocks run (`fm cancel` of a job no process runs).

    Raises JobLockedError (another process runs it), JournalError (damage, or the program
    diverges from its journal: DivergenceError) and JobFinishedError.
    """
    lock = JobLock.acquire(job_dir)
    journal = None
    try:
        journal = Journal.open(job_dir / JOURNAL, fsync=config.journal.fsync)
        first = journal.first()
        snap, after = journal.tail()
        last = after[-1] if after else snap or first
        if last["kind"] in TERMINAL_KINDS:
            status = last.get("status", "?")
            raise JobFinishedError(f"job {job_id} already finished (status {status})")
        runner, pending, rerun = replay(job_id, job_dir, lock, JobJournal(journal, created=False),
                                        first, snap, after, term, config=config)
        if cancel is not None and not runner.machine.state.get("cancelled"):
            runner.journal.append("cancel", {"step": runner.machine.state.get("step", 0),
                                             "reason": cancel})
            pending = _machine_step(lambda: runner.machine.cancel(cancel))
            rerun = False
        return runner.run(pending, rerun=rerun)
    except BaseException as e:
        _tag(e, job_dir)
        raise
    finally:
        if journal is not None:
            journal.close()
        lock.release()


def replay(job_id: str, job_dir: Path, lock: JobLock, journal: JobJournal, first: dict,
           snap: dict | None, after: list[dict], term, *, config: Config | None = None):
    """Rebuild the machine from the last snapshot and the records after it.

    Without a snapshot the initial state is rebuilt with the settings job.started recorded
    (a journal from before they were recorded: those of `config`, else the defaults).

    Returns (runner, pending request, whether that request was started but has no result).
    """
    Machine, initial_state = _machine_api()
    source = first["source"]
    if snap is not None:
        machine = Machine(snap["state"], source=source)
        pending, step = expand(snap["req"], first["env"]), snap["step"]
        since = 0
    else:
        settings = first.get("settings")
        if not isinstance(settings, dict):
            settings = settings_of(config or Config())
        state = initial_state(settings=settings, job=job_id, argv=list(first["argv"]),
                               env=dict(first["env"]), cwd=first["cwd"],
                               filename=first["filename"], pid=first.get("pid"))
        machine = Machine(state, source=source)
        pending = machine.run()
        step = machine.state["step"]
        since = None
    started = False
    for rec in after:
        kind = rec["kind"]
        if kind == "effect.started":
            if (pending.get("op") == "done" or rec.get("step") != step
                    or rec.get("req") != _canon(compact(pending, first["env"]))):
                raise _diverged(job_dir, rec, pending, step)
            started = True
        elif kind == "cancel":
            # Ctrl-C reached the job here: the pending effect was abandoned
            pending = machine.cancel(rec.get("reason", "cancelled"))
            step = machine.state["step"]
            started = False
        elif kind == "effect.done":
            if not started or rec.get("step") != step:
                raise _diverged(job_dir, rec, pending, step)
            pending = machine.run(rec.get("res"))
            step = machine.state["step"]
            started = False
            if since is not None:
                since += 1
        # Other kinds (snapshots cannot follow the last one; later versions add kinds) carry
        # nothing the machine needs.
    runner = Runner(job_id, job_dir, lock, journal, machine, term, since_snapshot=since,
                    base_env=first["env"])
    return runner, pending, started


def _describe(req: dict) -> str:
    """A short rendering of a request for divergence messages."""
    text = json.dumps(req, sort_keys=True)
    return text if len(text) <= 200 else text[:197] + "..."


def _diverged(job_dir: Path, rec: dict, pending: dict, step) -> DivergenceError:
    """The error for a record that the re-run program does not match."""
    where = f"{job_dir / JOURNAL}:{rec['seq'] + 1}"
    if rec["kind"] == "effect.started":
        what = (f"recorded {_describe(rec.get('req'))}, "
                f"but the program now asks for {_describe(pending)}")
    else:
        what = f"a result for step {rec.get('step')} without its request (expected step {step})"
    return DivergenceError(
        f"journal diverges from the program at step {rec.get('step', step)} ({where}): {what}; "
        "the job cannot be resumed safely (please report)")


def _tag(exc: BaseException, job_dir: Path) -> None:
    """Remember which job an unexpected exception came from, so its traceback lands there."""
    try:
        if not hasattr(exc, "fm_job_dir"):
            exc.fm_job_dir = job_dir
    except AttributeError:
        pass
