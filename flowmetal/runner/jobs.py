"""The job store: the state directory, job ids, finding a job by prefix, and each job's state."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ..effects import EFFECTS
from ..errors import JobNotFoundError, JournalDamagedError, JournalError
from ..journal import TERMINAL_KINDS, JobLock, read_first, read_last, read_records
from ..records import record

JOURNAL = "journal.jsonl"
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_ID_SUFFIX_LEN = 6
_NAME_MAX = 32
_JOB_ID_RE = re.compile(r"[a-z0-9_-]{1,%d}-[a-z0-9]{%d}\Z" % (_NAME_MAX, _ID_SUFFIX_LEN))


def _ensure_dir(path: Path) -> Path:
    """Create a private directory (and its parents) unless it exists; 0700 whatever the umask."""
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is masked by the umask
    return path


def state_dir() -> Path:
    """$FM_HOME, else platformdirs' user state dir; created (with parents) mode 0700."""
    home = os.environ.get("FM_HOME")
    if home:
        return _ensure_dir(Path(home))
    import platformdirs  # lazy: costs a few ms of start-up and FM_HOME usually skips it
    return _ensure_dir(Path(platformdirs.user_state_dir("flowmetal")))


def jobs_dir(home: Path | None = None) -> Path:
    """The directory holding one directory per job (created 0700, as is `home`)."""
    return _ensure_dir(_ensure_dir(home or state_dir()) / "jobs")


def sanitize_name(name: str) -> str:
    """A job name from a file stem or --name: lowercase [a-z0-9_-], at most 32 chars, never
    empty."""
    name = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")[:_NAME_MAX].strip("-")
    return name or "job"


def random_suffix(n: int = _ID_SUFFIX_LEN) -> str:
    """n characters of [a-z0-9] from the OS CSPRNG (the source `secrets` uses; importing
    secrets would pull in hashlib and cost start-up time)."""
    out = []
    while len(out) < n:
        for b in os.urandom(n * 2):
            if b < 252:  # 252 = 7 * 36: rejecting the rest keeps every character equally likely
                out.append(_ID_ALPHABET[b % 36])
                if len(out) == n:
                    break
    return "".join(out)


def new_job_id(name: str) -> str:
    """A fresh job id `<sanitised name>-<6 random chars>` (not yet checked against the store)."""
    return f"{sanitize_name(name)}-{random_suffix()}"


def create_job_dir(job_id: str, home: Path | None = None) -> tuple[Path, JobLock]:
    """Make jobs/<job_id>/ (mode 0700), locked by this process; FileExistsError if it exists.

    Returns (its directory, the held lock). The directory is made and locked under a hidden
    name and then renamed into place, so no one ever sees the job without a live holder (which
    would make it look orphaned to `fm ps` and to a daemon).
    """
    parent = jobs_dir(home)
    path = parent / job_id
    if path.exists():
        raise FileExistsError(path)
    tmp = parent / f".new-{job_id}-{os.getpid()}"
    tmp.mkdir(mode=0o700)
    os.chmod(tmp, 0o700)
    try:
        lock = JobLock.acquire(tmp)  # the flock stays with the file through the rename
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.rename(tmp, path)  # fails on an existing non-empty directory (every job's has a lock)
    except OSError:
        lock.release()
        shutil.rmtree(tmp, ignore_errors=True)
        if path.exists():
            raise FileExistsError(path) from None
        raise
    lock.job_dir = path
    return path, lock


def job_ids(home: Path | None = None) -> list[str]:
    """Every job id in the store, sorted."""
    try:
        names = os.listdir(jobs_dir(home))
    except FileNotFoundError:
        return []
    return sorted(n for n in names if _JOB_ID_RE.match(n))


def find_job(prefix: str, home: Path | None = None) -> tuple[str, Path]:
    """The job whose id is `prefix` or uniquely starts with it: (id, dir); else JobNotFoundError."""
    parent = jobs_dir(home)
    if prefix and _JOB_ID_RE.match(prefix) and (parent / prefix).is_dir():
        return prefix, parent / prefix
    matches = [i for i in job_ids(home) if prefix and i.startswith(prefix)]
    if not matches:
        raise JobNotFoundError(f"no job matches `{prefix}`")
    if len(matches) > 1:
        shown = ", ".join(matches[:10]) + (", ..." if len(matches) > 10 else "")
        raise JobNotFoundError(f"`{prefix}` matches {len(matches)} jobs: {shown}; "
                               "give more of the id")
    return matches[0], parent / matches[0]


# ---- reading a journal's ends cheaply (for fm ps) ----

def first_record(path: Path) -> dict:
    """Record 0 (job.started), reading only the first line (checked: JournalError if damaged)."""
    return read_first(path)


def last_record(path: Path, block: int = 8192) -> dict | None:
    """The last complete record, reading backwards from the end (checked: JournalError if
    damaged); a torn final line is skipped. None when there is no complete record."""
    return read_last(path, block)


@record
class JobInfo:
    """One row of `fm ps`: what a job is and where it stands."""

    id: str
    """The job id, `<name>-<6 chars>`."""

    name: str
    """The name part of the id (script stem or --name)."""

    state: str
    """running, sleeping (a live runner waits on a timer), done, failed, cancelled, orphaned
    or damaged (a record it read fails its check: `fm log` names the line); waiting comes with
    the daemon."""

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


def job_info(job_id: str, job_dir: Path) -> JobInfo:
    """A job's state from the first and last lines of its journal and its lock."""
    path = job_dir / JOURNAL
    name = job_id.rsplit("-", 1)[0]
    damaged = False
    try:
        first = first_record(path)
        last = last_record(path) or first
    except (JournalError, OSError) as e:
        first, last, damaged = None, None, isinstance(e, JournalDamagedError)
    pid = JobLock.holder(job_dir)
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
            waiting_on, asleep = _waiting_on(path)
        except JournalDamagedError:
            waiting_on, asleep, state = None, False, "damaged"
        if asleep and state == "running":
            state = "sleeping"
    step = last.get("step") if last else None
    return JobInfo(
        id=job_id, name=(first or {}).get("name", name), state=state,
        since=(last or {}).get("ts"), steps=step if isinstance(step, int) else 0,
        started=(first or {}).get("ts"), filename=(first or {}).get("filename"),
        status=status if isinstance(status, int) else None,
        pid=pid if state in ("running", "sleeping") and pid and pid > 0 else None,
        waiting_on=waiting_on)


def _waiting_on(path: Path) -> tuple[str | None, bool]:
    """What an unfinished job waits for, from its effects in flight (those started and not
    done since the last snapshot, or pending in it): (text or None, whether it only sleeps).
    A job whose main code has ended waits for its branches (a `main.ended` record)."""
    flight: dict = {}
    main_ended = None
    try:
        for rec in read_records(path):
            kind = rec.get("kind")
            if kind == "snapshot":
                flight = {p.get("step"): p.get("req") for p in rec.get("pending") or []
                          if p.get("started")}
            elif kind == "effect.started":
                flight[rec.get("step")] = rec.get("req")
            elif kind == "effect.done":
                flight.pop(rec.get("step"), None)
            elif kind == "cancel":
                flight.clear()
            elif kind == "main.ended":
                main_ended = rec
    except JournalDamagedError:
        raise
    except (JournalError, OSError):
        return None, False
    wakes = [_timer_of(req) for req in flight.values()]
    if wakes and all(w is not None for w in wakes):
        return f"timer until {rfc3339_utc(min(wakes))}", True
    if main_ended is not None:
        ids = ", ".join(map(str, main_ended.get("waiting") or []))
        return f"branches {ids}", False
    return None, False


def _timer_of(req) -> float | None:
    """When a `sleep` request wakes: its `until`, or its `deadline` when that comes first;
    None for any other request."""
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


def list_jobs(all_jobs: bool = False, home: Path | None = None) -> list[JobInfo]:
    """Every job (all_jobs) or the unfinished ones, oldest first."""
    parent = jobs_dir(home)
    ids = job_ids(home)
    if not all_jobs:
        # Most jobs have ended: their last line says so, and that is all that is read of them.
        ids = [i for i in ids if not _ended(os.path.join(parent, i, JOURNAL))]
    infos = [job_info(i, parent / i) for i in ids]
    if not all_jobs:
        infos = [i for i in infos if not i.finished]
    infos.sort(key=lambda i: (i.started or "", i.id))
    return infos


def _ended(path: str) -> bool:
    """Whether the journal's last record is a terminal one (False when unreadable)."""
    try:
        last = last_record(path)
    except (JournalError, OSError):
        return False
    return last is not None and last.get("kind") in TERMINAL_KINDS


def kill_job(job_id: str, job_dir: Path) -> None:
    """`fm kill`: SIGKILL the job's runner and the programs it started, then record the job
    as cancelled (status 137) without running anything of it."""
    import signal
    import time

    from ..errors import FlowmetalError, JobLockedError
    from ..journal import Journal

    last = last_record(job_dir / JOURNAL)
    if last is not None and last.get("kind") in TERMINAL_KINDS:
        raise FlowmetalError(f"job {job_id} already finished (status {last.get('status', '?')})")
    pid = JobLock.holder(job_dir)
    if pid is not None and pid > 0:
        from ..connectors.process import descendants
        for p in [pid, *descendants(pid)]:      # the runner, its programs, and theirs
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 5
    while True:
        try:
            lock = JobLock.acquire(job_dir)
            break
        except JobLockedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    try:
        journal = Journal.open(job_dir / JOURNAL)
        try:
            journal.append("job.cancelled", {"status": 137, "reason": "killed (fm kill)"})
        finally:
            journal.close()
    finally:
        lock.release()


def prune_jobs(older_than: float, home: Path | None = None) -> int:
    """`fm prune`: delete finished jobs whose last record is older than `older_than` seconds;
    returns how many were deleted. Unfinished and running jobs are kept."""
    import time
    from datetime import datetime

    from ..errors import JobLockedError

    cutoff = time.time() - older_than
    removed = 0
    parent = jobs_dir(home)
    for job_id in job_ids(home):
        job_dir = parent / job_id
        try:
            lock = JobLock.acquire(job_dir)
        except (JobLockedError, OSError):
            continue
        try:
            last = last_record(job_dir / JOURNAL)
            if last is None or last.get("kind") not in TERMINAL_KINDS:
                continue
            ts = datetime.fromisoformat(last["ts"].replace("Z", "+00:00")).timestamp()
            if ts < cutoff:
                shutil.rmtree(job_dir)
                removed += 1
        except (OSError, ValueError, KeyError, JournalError):
            continue  # a damaged journal is never pruned
        finally:
            lock.release()
    return removed
