"""The daemon's files in the state directory: its lease, where it listens, its token, its log.

    <home>/daemon.lock   the lease: an flock the kernel drops when the daemon dies (one per home)
    <home>/daemon.json   {"pid", "listen", "url", "started", "version"} of the daemon holding it
    <home>/daemon.token  the bearer token of the control API (0600, made at the first start)
    <home>/daemon.log    the daemon's log, rotated at LOG_BYTES (daemon.log.1 … .3)
    <home>/daemon.queue  the jobs waiting for a runner slot (JSON list of ids), for `fm ps`

All are opened with O_NOFOLLOW and must be regular files: a planted symlink or FIFO is refused.
"""
from __future__ import annotations

import json
import os
import secrets
import stat
import time
from pathlib import Path

from ..errors import FlowmetalError, JobLockedError
from ..journal._fs import fsync_dir, fsync_fd
from ..journal.lock import JobLock

LOCK, INFO, TOKEN, LOG = "daemon.lock", "daemon.json", "daemon.token", "daemon.log"
QUEUE = "daemon.queue"
LOG_BYTES = 10 * 1024 * 1024
LOG_KEEP = 3
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class DaemonError(FlowmetalError):
    """The daemon cannot start, or cannot be reached."""


def take_lease(home: Path) -> JobLock:
    """The daemon's lease on `home`, or DaemonError naming the daemon that has it."""
    try:
        return JobLock.acquire(home, LOCK)
    except JobLockedError:
        info = read_info(home) or {}
        where = f", listening on {info['listen']}" if info.get("listen") else ""
        raise DaemonError(f"a daemon already runs for {home} (pid {info.get('pid', '?')}"
                          f"{where}); `fm daemon stop` stops it") from None


def running(home: Path) -> dict | None:
    """daemon.json of the live daemon of `home`, or None when none holds the lease."""
    if JobLock.holder(home, LOCK) is None:
        return None
    return read_info(home)


def read_info(home: Path) -> dict | None:
    try:
        data = json.loads(_read(home / INFO, 4096))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_info(home: Path, listen: str, url: str) -> dict:
    info = {"pid": os.getpid(), "listen": listen, "url": url,
            "started": time.time(), "version": _version()}
    _replace(home / INFO, json.dumps(info).encode())
    return info


def clear_info(home: Path) -> None:
    try:
        os.unlink(home / INFO)
    except FileNotFoundError:
        pass


def token(home: Path, *, create: bool = False) -> str | None:
    """The control API's bearer token; made (256 bits from `secrets`) when `create` and none
    exists yet; None when there is none."""
    path = home / TOKEN
    try:
        text = _read(path, 256).strip()
    except FileNotFoundError:
        if not create:
            return None
        text = secrets.token_urlsafe(32)
        try:
            _write_new(path, text.encode() + b"\n")
        except FileExistsError:     # another process made it meanwhile: theirs wins
            return token(home)
    return text or None


def open_log(home: Path):
    """A logger writing to daemon.log (0600, rotated)."""
    import logging
    import logging.handlers
    path = home / LOG
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | _NOFOLLOW,
                     0o600))
    _check_regular(path, os.lstat(path))
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=LOG_BYTES,
                                                   backupCount=LOG_KEEP)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log = logging.getLogger("flowmetal.daemon")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    return log


# ---- small file helpers ----

def _read(path: Path, limit: int) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | _NOFOLLOW | os.O_NONBLOCK)
    try:
        _check_regular(path, os.fstat(fd))
        return os.read(fd, limit).decode("utf-8", "replace")
    finally:
        os.close(fd)


def _check_regular(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise DaemonError(f"{path}: not a regular file; refusing to use it")
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        raise DaemonError(f"{path}: belongs to another user; refusing to use it")


def _write_new(path: Path, data: bytes, sync: bool = True) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | _NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
        if sync:
            fsync_fd(fd)
    finally:
        os.close(fd)
    if sync:
        fsync_dir(path.parent)


def _replace(path: Path, data: bytes, sync: bool = True) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    _write_new(tmp, data, sync)
    os.replace(tmp, path)


def write_queue(home: Path, job_ids: list) -> None:
    """daemon.queue: the jobs waiting for a runner slot, for `fm ps` (not synced: it is only
    what the daemon is doing now)."""
    _replace(home / QUEUE, json.dumps(job_ids).encode(), sync=False)


def queued(home: Path) -> set:
    """The jobs the running daemon has queued; empty when no daemon runs."""
    if running(home) is None:
        return set()
    try:
        ids = json.loads(_read(home / QUEUE, 1 << 22))
    except (OSError, ValueError):
        return set()
    return set(ids) if isinstance(ids, list) else set()


def _version() -> str:
    from .. import __version__
    return __version__
