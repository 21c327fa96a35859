"""The job lock (G7): an flock on jobs/<id>/lock that the kernel releases when its holder dies."""
from __future__ import annotations

import fcntl
import os
import stat
import time
from pathlib import Path

from ..errors import JobLockedError, JournalError

# holder() probes with a short-lived shared lock, which an acquire() racing with it sees as "held":
# acquire retries for this long before believing it. A real runner holds its lock far longer.
_RETRIES = 5
_RETRY_DELAY = 0.01
_SAFE = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def _flock(fd: int, op: int) -> bool:
    """Try a non-blocking flock a few times; True when it was granted."""
    for attempt in range(_RETRIES):
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt < _RETRIES - 1:
                time.sleep(_RETRY_DELAY)
    return False


def _check_regular(fd: int, path) -> None:
    """Refuse a lock that is a FIFO, a device or a directory (planted, or damage)."""
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise JournalError(f"{path}: not a regular file; refusing to use it as the job's lock")


def _read_pid(fd: int) -> int:
    """The pid written in the lock file, or -1 if there is none yet."""
    try:
        return int(os.pread(fd, 64, 0).split(b"\n", 1)[0])
    except ValueError:
        return -1


class JobLock:
    """An exclusive lock on one job directory, held by this process until release() or its death."""

    def __init__(self, job_dir: Path, fd: int):
        """Internal: use JobLock.acquire."""
        self.job_dir = job_dir
        self._fd = fd

    @classmethod
    def acquire(cls, job_dir, name: str = "lock") -> "JobLock":
        """Take the job's lock or raise JobLockedError naming the process that holds it.
        (`name`: another lock file in the directory, e.g. the daemon's `daemon.lock`.)"""
        job_dir = Path(job_dir)
        path = job_dir / name
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | _SAFE, 0o600)
        except OSError as e:
            raise JournalError(f"{path}: cannot open the job's lock ({e.strerror})") from None
        # O_CLOEXEC: a child program must not inherit the lock and keep it alive after the runner
        # dies. (A fork without exec still would; the runner must not do that while holding it.)
        try:
            _check_regular(fd, path)
            if not _flock(fd, fcntl.LOCK_EX):
                pid = _read_pid(fd)
                who = f"process {pid}" if pid > 0 else "another process"
                raise JobLockedError(f"job {job_dir.name} is being run by {who}")
            os.fchmod(fd, 0o600)
            # Write the new pid over the old one, then cut: the first line is always some pid,
            # never empty, for a reader that looks in between.
            pid = b"%d\n" % os.getpid()
            os.pwrite(fd, pid, 0)
            os.ftruncate(fd, len(pid))
        except BaseException:
            os.close(fd)
            raise
        return cls(job_dir, fd)

    def release(self) -> None:
        """Give the lock up. Releasing twice is harmless."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                os.ftruncate(fd, 0)  # while still held, so we never erase a successor's pid
            finally:
                os.close(fd)  # closing the only descriptor releases the flock

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._fd >= 0

    @staticmethod
    def holder(job_dir, name: str = "lock") -> int | None:
        """The pid of the live process holding the job's lock, None if nobody holds it."""
        try:
            fd = os.open(Path(job_dir) / name, os.O_RDONLY | os.O_CLOEXEC | _SAFE)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise JournalError(f"{job_dir}/lock: cannot open the job's lock ({e.strerror})") \
                from None
        try:
            _check_regular(fd, Path(job_dir) / name)
            # Probe the lock itself: the pid in the file may be a dead runner's, left by SIGKILL.
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return None
            except BlockingIOError:
                pass
            # Held. The holder writes its pid just after locking; give it a moment if not there yet.
            for _ in range(_RETRIES):
                pid = _read_pid(fd)
                if pid > 0:
                    return pid
                time.sleep(_RETRY_DELAY)
            return -1
        finally:
            os.close(fd)  # also drops our probe lock

    @staticmethod
    def wait_free(job_dir, name: str = "lock") -> None:
        """Block until no live process holds the lock (at once when none does): a shared
        flock waits for the holder's exclusive one to go, however its holder went."""
        try:
            fd = os.open(Path(job_dir) / name, os.O_RDONLY | os.O_CLOEXEC | _SAFE)
        except FileNotFoundError:
            return
        except OSError as e:
            raise JournalError(f"{job_dir}/lock: cannot open the job's lock ({e.strerror})") \
                from None
        try:
            _check_regular(fd, Path(job_dir) / name)
            fcntl.flock(fd, fcntl.LOCK_SH)
        finally:
            os.close(fd)  # drops the shared lock at once: the job is free for anyone

    def __enter__(self) -> "JobLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<JobLock {self.job_dir} {'held' if self.held else 'released'}>"
