"""The embedded job store: one directory per job in the state directory (docs/store.md).

    <home>/jobs/<id>/journal.jsonl    the records, one JSON line each (docs/journal.md)
    <home>/jobs/<id>/lock             the lease: an flock the kernel drops when its holder dies
    <home>/jobs/<id>/content/<sha256> long strings moved out of records (journal/content.py)
    <home>/jobs/<id>/inbox.jsonl      deliveries and what the job took of them (inbox.py)
    <home>/wake/<id>                  the job's wake-up time (epoch seconds, as text)
    <home>/callbacks/<token>          the id of the job a callback token belongs to
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

from ..errors import JobNotFoundError
from ..statedir import check_private, private_dir, state_dir
from . import content
from ._fs import fsync_dir, fsync_fd
from .inbox import TAKEN, Inboxes
from .jobstore import EVENT_RE, JOB_ID_RE, TOKEN_RE, JobStore, Lease, event_key
from .lock import JobLock
from .reader import follow, open_journal, read_first, read_last, read_records
from .store import Journal

JOURNAL = "journal.jsonl"
LAST_REMEMBERED = 4096
"""Jobs whose last record a store remembers (see `last`); all are forgotten past that."""
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class JsonlStore(JobStore):
    """Jobs as directories of JSON-lines journals under a private state directory."""

    def __init__(self, home: Path | None = None):
        self.home = private_dir(Path(home)) if home is not None else state_dir()
        self.jobs = private_dir(self.home / "jobs", follow=False)
        self.location = str(self.home)
        self.inboxes = Inboxes()
        self._last: dict[str, tuple] = {}      # job id -> (journal's stat, its last record)
        self._bound: dict[str, tuple] = {}     # callback token -> binding (they never change)

    def dir(self, job_id: str) -> Path:
        """The job's directory, checked to be a private directory; JobNotFoundError if none."""
        if not JOB_ID_RE.match(job_id):
            raise JobNotFoundError(f"no job `{job_id}`")
        path = self.jobs / job_id
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise JobNotFoundError(f"no job `{job_id}`") from None
        check_private(path, st)
        return path

    # ---- jobs and leases ----

    def create(self, job_id: str, fields: dict, *, fsync: bool = True) -> Lease:
        if not JOB_ID_RE.match(job_id):
            raise ValueError(f"bad job id {job_id!r}")
        job_dir, lock = self._make_dir(job_id)
        try:
            journal = Journal.create(job_dir / JOURNAL, {"id": job_id, **fields}, fsync=fsync,
                                     content_dir=job_dir / "content")
        except BaseException:
            lock.release()
            _rmtree(job_dir, ignore_errors=True)
            raise
        return JsonlLease(self, job_id, lock, journal)

    def _make_dir(self, job_id: str) -> tuple[Path, JobLock]:
        """Make jobs/<job_id>/ (0700) locked by this process; FileExistsError if it exists.
        It is made and locked under a hidden name and renamed into place, so no one ever sees
        the job without a live holder (it would look orphaned to `fm ps` and to a daemon)."""
        path = self.jobs / job_id
        if os.path.lexists(path):
            raise FileExistsError(path)
        tmp = self.jobs / f".new-{job_id}-{os.getpid()}"
        tmp.mkdir(mode=0o700)
        os.chmod(tmp, 0o700)
        try:
            lock = JobLock.acquire(tmp)  # the flock stays with the file through the rename
        except BaseException:
            _rmtree(tmp, ignore_errors=True)
            raise
        try:
            os.rename(tmp, path)  # fails on an existing non-empty directory (each has a lock)
        except OSError:
            lock.release()
            _rmtree(tmp, ignore_errors=True)
            if os.path.lexists(path):
                raise FileExistsError(path) from None
            raise
        lock.job_dir = path
        return path, lock

    def lease(self, job_id: str, *, fsync: bool = True) -> Lease:
        job_dir = self.dir(job_id)
        lock = JobLock.acquire(job_dir)
        try:
            journal = Journal.open(job_dir / JOURNAL, fsync=fsync,
                                   content_dir=job_dir / "content")
        except BaseException:
            lock.release()
            raise
        lease = JsonlLease(self, job_id, lock, journal)
        lease.discarded = journal.discarded
        return lease

    def delete(self, job_id: str) -> None:
        job_dir = self.dir(job_id)
        lock = JobLock.acquire(job_dir)     # held while deleting: nobody can resume it
        try:
            try:
                os.unlink(self.home / "wake" / job_id)
            except FileNotFoundError:
                pass
            # Renamed first: no reader sees a job half deleted, and a crash leaves only a hidden
            # directory (`.del-…`) that no listing shows and the next delete sweeps away.
            gone = self.jobs / f".del-{job_id}-{os.getpid()}"
            os.rename(job_dir, gone)
        finally:
            lock.release()
        _rmtree(gone, ignore_errors=True)

    def holder(self, job_id: str) -> int | None:
        return JobLock.holder(self.dir(job_id))

    def wait_free(self, job_id: str) -> None:
        JobLock.wait_free(self.dir(job_id))

    # ---- reading ----

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.jobs)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if JOB_ID_RE.match(n))

    def exists(self, job_id: str) -> bool:
        return bool(JOB_ID_RE.match(job_id)) and os.path.isdir(self.jobs / job_id)

    def path(self, job_id: str) -> Path:
        """The job's journal file."""
        return self.dir(job_id) / JOURNAL

    def where(self, job_id: str) -> str:
        return str(self.jobs / job_id / JOURNAL)

    def head(self, job_id: str) -> dict:
        return self._restore(job_id, read_first(self.path(job_id)))

    def last(self, job_id: str) -> dict | None:
        # Remembered per journal (inode, size, mtime): the daemon asks at every delivery.
        path = self.path(job_id)
        try:
            st = os.stat(path, follow_symlinks=False)
            seen = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            seen = None
        hit = self._last.get(job_id)
        if hit is None or seen is None or hit[0] != seen:
            rec = read_last(path)
            hit = (seen, None if rec is None else self._restore(job_id, rec))
            if seen is not None:
                if len(self._last) >= LAST_REMEMBERED:
                    self._last.clear()
                self._last[job_id] = hit
        return None if hit[1] is None else dict(hit[1])

    def tail(self, job_id: str) -> tuple[dict | None, list[dict]]:
        from .recovery import recover
        path = self.path(job_id)
        fd = open_journal(path)
        try:
            sc = recover(fd, os.fstat(fd).st_size, str(path))
        finally:
            os.close(fd)
        snap = None if sc.snapshot is None else self._restore(job_id, sc.snapshot)
        return snap, [self._restore(job_id, r) for r in sc.after]

    def records(self, job_id: str) -> Iterator[dict]:
        for rec in read_records(self.path(job_id)):
            yield self._restore(job_id, rec)

    def follow(self, job_id: str, start_seq: int = 0) -> Iterator[dict]:
        for rec in follow(self.path(job_id), start_seq):
            yield self._restore(job_id, rec)

    def _restore(self, job_id: str, rec: dict) -> dict:
        if content.FIELD not in rec:
            return rec
        where = f"{self.where(job_id)}:{rec.get('seq', 0) + 1}"
        return content.restore(rec, self.jobs / job_id / "content", where)

    # ---- deliveries and timers ----

    def deliver(self, job_id: str, key: str, data: dict, *, sync: bool = True) -> bool:
        return self.inboxes.deliver(self.dir(job_id), key, data, sync=sync)

    def sync_deliveries(self) -> None:
        paths = self.inboxes.sync()
        if not paths or _syncfs(self.jobs):     # one call for the file system, not per file
            return
        for path in paths:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | _NOFOLLOW)
            try:
                fsync_fd(fd)
            finally:
                os.close(fd)
            fsync_dir(path.parent)              # a job's first delivery made the file

    def crash_hook_deliveries(self) -> None:
        self.inboxes.power_cut()

    def keys(self, job_id: str) -> list[str]:
        return sorted(self.inboxes.items(self.dir(job_id)))

    def mail(self, job_id: str) -> dict[str, dict]:
        return {k: d for k, d in self.inboxes.items(self.dir(job_id)).items() if d is not TAKEN}

    def send(self, job_id: str, name: str, data: dict) -> int:
        if not EVENT_RE.match(name):
            raise ValueError(f"bad event name {name!r}")
        return self.inboxes.send(self.dir(job_id), name, data, event_key)

    def bind(self, token: str, job_id: str, method: str | None = None) -> None:
        if not TOKEN_RE.match(token):
            raise ValueError("bad callback token")
        if method not in (None, "GET", "POST"):
            raise ValueError(f"bad callback method {method!r}")
        self.dir(job_id)
        index = private_dir(self.home / "callbacks", follow=False)
        # `<job id>` or `<job id> <METHOD>`: one short line
        _write_file(index / token, f"{job_id} {method}".encode() if method else job_id.encode())
        fsync_dir(index)

    def binding(self, token: str) -> tuple[str, str | None] | None:
        if token in self._bound:
            return self._bound[token]
        if not TOKEN_RE.match(token):
            return None
        try:
            fd = os.open(self.home / "callbacks" / token, os.O_RDONLY | os.O_CLOEXEC | _NOFOLLOW)
        except OSError:
            return None
        try:
            job_id, _, method = os.read(fd, 100).decode("ascii", "replace").partition(" ")
        finally:
            os.close(fd)
        if not JOB_ID_RE.match(job_id) or method not in ("", "GET", "POST"):
            return None
        if len(self._bound) >= LAST_REMEMBERED:
            self._bound.clear()
        self._bound[token] = (job_id, method or None)
        return self._bound[token]

    def due(self, now: float) -> list[tuple[str, float]]:
        return [(i, t) for i, t in self.wakes() if t <= now]

    def wakes(self) -> list[tuple[str, float]]:
        wake = self.home / "wake"
        try:
            names = os.listdir(wake)
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            if not JOB_ID_RE.match(name):
                continue
            try:
                out.append((name, float((wake / name).read_text())))
            except (OSError, ValueError):
                continue    # being replaced, or damaged: the journal is the truth
        out.sort(key=lambda e: (e[1], e[0]))
        return out


class JsonlLease(Lease):
    """A job of a JsonlStore held by this process (its flock) with its journal open."""

    def __init__(self, store: JsonlStore, job_id: str, lock: JobLock, journal: Journal):
        self.store = store
        self.job_id = job_id
        self.lock = lock
        self.journal = journal
        self.dir = store.jobs / job_id

    def append(self, kind: str, fields: dict, *, sync: bool = True) -> int:
        return self.journal.append(kind, fields, sync=sync)

    def sync(self) -> None:
        self.journal.sync()

    def size(self) -> int:
        return self.journal.size

    def first(self) -> dict:
        return self.store._restore(self.job_id, self.journal.first())

    def tail(self) -> tuple[dict | None, list[dict]]:
        snap, after = self.journal.tail()
        restore = self.store._restore
        return (None if snap is None else restore(self.job_id, snap),
                [restore(self.job_id, r) for r in after])

    def records(self) -> Iterator[dict]:
        return self.store.records(self.job_id)

    def where(self, seq: int) -> str:
        return f"{self.journal.path}:{seq + 1}"

    def inbox(self) -> dict[str, dict]:
        return self.store.mail(self.job_id)

    def take(self, key: str) -> None:
        # A line saying so, not a deletion: the key stays used, so a second delivery is refused.
        # Synced with the journal's setting: a later snapshot must never outlive it.
        self.store.inboxes.take(self.dir, key, sync=self.journal.fsync)

    def set_wake(self, when: float | None) -> None:
        wake = private_dir(self.store.home / "wake", follow=False)
        target = wake / self.job_id
        if when is None:
            try:
                os.unlink(target)
            except FileNotFoundError:
                pass
            return
        tmp = wake / f".tmp-{self.job_id}-{os.getpid()}"
        _write_file(tmp, repr(float(when)).encode(), sync=self.journal.fsync)
        os.replace(tmp, target)

    def release(self) -> None:
        self.journal.close()
        self.lock.release()

    def crash_hook(self) -> None:
        os.truncate(self.journal.path, self.journal.synced)

    def __repr__(self) -> str:
        return f"<JsonlLease {self.job_id}>"


def _write_file(path: Path, data: bytes, *, sync: bool = True) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | _NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
        if sync:
            fsync_fd(fd)
    finally:
        os.close(fd)


_SYNCFS = None
"""libc's syncfs once looked up; False where there is none."""


def _syncfs(path: Path) -> bool:
    """syncfs(2) on the file system holding `path` (Linux); False where there is none."""
    global _SYNCFS
    if _SYNCFS is None:
        _SYNCFS = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes
                _SYNCFS = ctypes.CDLL(None, use_errno=True).syncfs
            except (OSError, AttributeError):
                pass
    if not _SYNCFS:
        return False
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _SYNCFS(fd) != 0:
            import ctypes
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)
    return True


def _rmtree(path: Path, **kw) -> None:
    import shutil  # lazy: a few ms of start-up that only deleting needs
    shutil.rmtree(path, **kw)
