"""Jobs as `fm ps`, `fm kill`, `fm rm` and `fm prune` see them, read through the job store
(journal/jobstore.py): a job's state from the ends of its journal and its lease."""
from __future__ import annotations

from ..effects import EFFECTS
from ..errors import FlowmetalError, JobLockedError, JournalError
from ..journal import TERMINAL_KINDS, JobStore
from ..records import fields, record


@record
class JobInfo:
    """One row of `fm ps`: what a job is and where it stands."""

    id: str
    """The job id, `<name>-<6 chars>`."""

    name: str
    """The name part of the id (script stem or --name)."""

    state: str
    """running, sleeping (it only waits for timers), waiting (for a callback or an event),
    queued (the daemon runs it as soon as a runner slot is free), done, failed, cancelled,
    orphaned (unfinished, and no process runs it or parked it) or damaged (a record it read
    fails its check: `fm log` names the line). A sleeping or waiting job has a pid while a
    runner waits in it, none while it is parked (docs/daemon.md)."""

    since: str | None
    """RFC 3339 time of the job's last record: when it entered its current state."""

    steps: int
    """The machine's step count at the last record (how many effects it has asked for)."""

    started: str | None
    """RFC 3339 time the job was started."""

    filename: str | None
    """The script as it was named when the job started."""

    status: int | None
    """The exit status of a finished job, else None."""

    pid: int | None
    """The pid of the process running it, when running or sleeping."""

    waiting_on: str | None = None
    """What a waiting or sleeping job waits for; None otherwise."""

    @property
    def finished(self) -> bool:
        """Whether the job has ended (done, failed or cancelled)."""
        return self.state in ("done", "failed", "cancelled")

    def as_json(self) -> dict:
        """The `fm ps --json` object."""
        return {"id": self.id, "name": self.name, "state": self.state, "since": self.since,
                "waiting_on": self.waiting_on, "steps": self.steps, "started": self.started,
                "filename": self.filename, "status": self.status, "pid": self.pid}


_STATE_OF_KIND = {"job.finished": "done", "job.failed": "failed", "job.cancelled": "cancelled"}


def job_info(store: JobStore, job_id: str) -> JobInfo:
    """A job's state from the first and last records of its journal and its lease."""
    name = job_id.rsplit("-", 1)[0]
    damaged = False
    try:
        first = store.head(job_id)
        last = store.last(job_id) or first
    except (JournalError, OSError) as e:
        # Damaged, or not a regular file: listed as damaged, never failing the listing of the
        # other jobs. A creation cut short by a crash leaves nothing to damage: orphaned.
        first, last, damaged = None, None, not getattr(e, "unborn", False)
    try:
        pid = store.holder(job_id)
    except (JournalError, OSError):
        pid, damaged = None, True  # a lock that is not a regular file
    status = None
    if damaged:
        state = "damaged"
    elif last is not None and last.get("kind") in TERMINAL_KINDS:
        state = _STATE_OF_KIND[last["kind"]]
        status = last.get("status")
    elif pid is not None:
        state = "running"
    else:
        state = "orphaned"
    waiting_on = None
    if state in ("running", "orphaned"):
        try:
            waiting_on, waits = _waiting_on(store, job_id)
        except (JournalError, OSError) as e:
            waiting_on, waits = None, None
            state = state if getattr(e, "unborn", False) else "damaged"
        if waits is not None and (state == "running" or last.get("kind") == "job.parked"):
            state = waits
    step = last.get("step") if last else None
    return JobInfo(
        id=job_id, name=(first or {}).get("name", name), state=state,
        since=(last or {}).get("ts"), steps=step if isinstance(step, int) else 0,
        started=(first or {}).get("ts"), filename=(first or {}).get("filename"),
        status=status if isinstance(status, int) else None,
        pid=pid if state in ("running", "sleeping", "waiting") and pid and pid > 0 else None,
        waiting_on=waiting_on)


def _waiting_on(store: JobStore, job_id: str) -> tuple[str | None, str | None]:
    """What an unfinished job waits for, from its effects in flight: (text or None; "sleeping"
    or "waiting" when it does nothing but wait, else None). A job whose main code has ended
    waits for its branches."""
    flight, waiting = in_flight(store, job_id)
    told = describe_waits(list(flight.values()))
    if told is not None:
        return told
    if waiting is not None:
        return f"branches {', '.join(map(str, waiting))}", None
    return None, None


def describe_waits(reqs: list) -> tuple[str, str] | None:
    """(`callback approve, event go, timer until …`, "waiting" or "sleeping") when every
    request is a wait (`sleep`, `await`); None otherwise."""
    awaits, wakes = [], []
    for req in reqs:
        effect = EFFECTS.get(req.get("op")) if isinstance(req, dict) else None
        if effect is None or not effect.waits:
            return None
        if effect.delivery:
            awaits.append(f"event {req['event']}" if "event" in req else
                          f"callback {req['name']}" if req.get("name") else "callback")
        wake = _timer_of(req)
        if wake is not None:
            wakes.append(wake)
    if not awaits and not wakes:
        return None
    texts = awaits + ([f"timer until {rfc3339_utc(min(wakes))}"] if wakes else [])
    return ", ".join(texts), "waiting" if awaits else "sleeping"


def in_flight(store: JobStore, job_id: str) -> tuple[dict, list | None]:
    """({step: request} of the effects started and not done: pending in the last snapshot or
    started after it; the branches the ended main code waits for, or None (`main.ended`, or the
    snapshot's state))."""
    snap, after = store.tail(job_id)
    flight: dict = {}
    waiting = None
    if snap is not None:
        flight = {p.get("step"): p.get("req") for p in snap.get("pending") or []
                  if isinstance(p, dict) and p.get("started")}
        waiting = _main_waits(snap.get("state"))
    for rec in after:
        kind = rec.get("kind")
        if kind == "effect.started":
            flight[rec.get("step")] = rec.get("req")
        elif kind == "effect.done":
            flight.pop(rec.get("step"), None)
        elif kind == "cancel":
            flight.clear()
        elif kind == "main.ended":
            waiting = rec.get("waiting") or []
    return flight, waiting


def _main_waits(state) -> list | None:
    """The branches a snapshot's main code, ended, waits for (docs/state.md: `final`, `kids`)."""
    try:
        branches = state["branches"]
        main = branches["0"]
        if "final" not in main:
            return None
        return [k for k in main["kids"] if k in branches]
    except (KeyError, TypeError):
        return None


def _timer_of(req) -> float | None:
    """When a wait ends by itself: its `until`, or its `deadline` when that comes first; None
    for any other request, and for an await without either."""
    effect = EFFECTS.get(req.get("op")) if isinstance(req, dict) else None
    if effect is None or not effect.waits:
        return None
    times = [t for t in (req.get("until"), req.get("deadline"))
             if isinstance(t, (int, float)) and not isinstance(t, bool)]
    return min(times) if times else None


def rfc3339_utc(t: float) -> str:
    """Epoch seconds as RFC 3339 UTC to the second: `2026-11-28T23:10:00Z`."""
    import time
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    except (OverflowError, OSError, ValueError):
        return str(t)


def list_jobs(store: JobStore, all_jobs: bool = False) -> list[JobInfo]:
    """Every job (all_jobs) or the unfinished ones, oldest first."""
    ids = store.ids()
    if not all_jobs:
        # Most jobs have ended: their last record says so, and that is all that is read of them.
        ids = [i for i in ids if not _ended(store, i)]
    infos = [job_info(store, i) for i in ids]
    if not all_jobs:
        infos = [i for i in infos if not i.finished]
    infos.sort(key=lambda i: (i.started or "", i.id))
    return infos


def mark_queued(infos: list[JobInfo], queued: set) -> list[JobInfo]:
    """The jobs, those of `queued` (the daemon's queue: waiting for a runner slot) that no
    process holds shown as `queued`."""
    out = []
    for info in infos:
        if info.id in queued and info.pid is None and not info.finished \
                and info.state != "damaged":
            info = JobInfo(**{**{k: getattr(info, k) for k in fields(info)}, "state": "queued"})
        out.append(info)
    return out


def _ended(store: JobStore, job_id: str) -> bool:
    """Whether the job's last record is a terminal one (False when unreadable)."""
    try:
        last = store.last(job_id)
    except (JournalError, OSError):
        return False
    return last is not None and last.get("kind") in TERMINAL_KINDS


def kill_job(store: JobStore, job_id: str) -> None:
    """`fm kill`: SIGKILL the job's runner and the programs it started, then record the job
    as cancelled (status 137) without running anything of it."""
    import os
    import signal

    last = store.last(job_id)
    if last is not None and last.get("kind") in TERMINAL_KINDS:
        raise FlowmetalError(f"job {job_id} already finished (status {last.get('status', '?')})")
    pid = store.holder(job_id)
    if pid is not None and pid > 0:
        from ..connectors.process import descendants
        for p in [pid, *descendants(pid)]:      # the runner, its programs, and theirs
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    with _lease_soon(store, job_id) as lease:
        _kill_survivors(store, job_id)      # what a runner that died before left running
        lease.append("job.cancelled", {"status": 137, "reason": "killed (fm kill)"})
        lease.set_wake(None)


def _kill_survivors(store: JobStore, job_id: str) -> None:
    """SIGKILL the programs of the job's steps in flight that outlived their runner."""
    from ..connectors.survivors import stop_survivors
    try:
        flight, _ = in_flight(store, job_id)
    except (JournalError, OSError):
        return
    for step in flight:
        if isinstance(step, int):
            stop_survivors(f"{job_id}-{step}", grace=0)


def _lease_soon(store: JobStore, job_id: str, patience: float = 5.0):
    """The job's lease, waiting up to `patience` seconds for a dying holder to let it go."""
    import time
    deadline = time.monotonic() + patience
    while True:
        try:
            return store.lease(job_id)
        except JobLockedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def remove_jobs(store: JobStore, job_ids: list[str]) -> None:
    """`fm rm`: delete finished jobs; all or nothing (one unfinished or running job refuses
    the lot). A job whose creation was cut short (no job.started) counts as finished."""
    for job_id in job_ids:
        if store.holder(job_id) is not None:
            raise FlowmetalError(f"job {job_id} is running; it can be removed once it ends")
        try:
            last = store.last(job_id)
        except JournalError:
            last = None     # no journal, or not even a job.started: nothing worth keeping
        if last is not None and last.get("kind") not in TERMINAL_KINDS:
            raise FlowmetalError(f"job {job_id} has not finished (orphaned); "
                             f"`fm resume {job_id}` continues it")
    for job_id in dict.fromkeys(job_ids):
        store.delete(job_id)


def prune_jobs(store: JobStore, older_than: float) -> int:
    """`fm prune`: delete finished jobs whose last record is older than `older_than` seconds;
    returns how many were deleted. Unfinished and running jobs are kept."""
    import time
    from datetime import datetime

    cutoff = time.time() - older_than
    removed = 0
    for job_id in store.ids():
        try:
            last = store.last(job_id)
            if last is None or last.get("kind") not in TERMINAL_KINDS:
                continue
            ts = datetime.fromisoformat(last["ts"].replace("Z", "+00:00")).timestamp()
            if ts >= cutoff:
                continue
            store.delete(job_id)
            removed += 1
        except (FlowmetalError, OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return removed
