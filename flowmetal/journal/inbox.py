"""A job's inbox in the JSON-lines store: one append-only file, `<job dir>/inbox.jsonl`.

    {"key": "<key>", "data": {...}}     a delivery (a callback token, `event:<name>:<n>`)
    {"taken": "<key>"}                  the job took it: a synced record holds it now

Writers (the daemon's intake, `fm send` / `fm complete` without a daemon, the job taking a
delivery) append one line under an exclusive flock of the file; readers hold a shared one. A
key is used once a line names it: a second delivery of it is refused (the first wins), and
events are numbered from the keys. A torn last line (a crash in the middle of an append, which
was never acknowledged) is ignored by readers and cut off by the next writer. A damaged line
is an error for readers (the job cannot trust its inbox), but writers go past it: one job's
damaged inbox must not stop the daemon from moving other deliveries (its intake refuses to
start while a delivery cannot be moved).

One file per job rather than one per delivery: on some file systems each new inode costs the
kernel a millisecond, which capped the daemon's intake at a few hundred deliveries a second.
Each process keeps what it has read of a file (`Inboxes`) and reads only what was appended
since, so the runner's poll of its inbox costs a stat and a lock, not a parse of everything.
"""
from __future__ import annotations

import fcntl
import json
import os
import stat
import threading
from pathlib import Path

from ..errors import JournalError
from ._fs import fsync_dir, fsync_fd, pread_all

NAME = "inbox.jsonl"
LEGACY = "inbox"
"""The directory that held a job's inbox before this file (migrated at first use)."""
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
TAKEN = object()
"""The data of a delivery the job has taken (its key stays used)."""


class _Read:
    """What this process has read of one inbox file: up to `offset`, the keys in delivery
    order with their data (TAKEN once taken)."""

    def __init__(self, ino: int = -1):
        self.ino = ino
        self.offset = 0
        self.lines = 0
        self.items: dict[str, object] = {}
        self.last = b""         # the last line read (its newline included)
        self.damaged: str | None = None     # the first damaged line a writer went past


class Inboxes:
    """The inbox files of one store, and what this process has read of each."""

    def __init__(self):
        self._read: dict[Path, _Read] = {}
        self._looked: set[Path] = set()        # job dirs checked for a LEGACY directory
        self._lock = threading.Lock()          # the daemon's threads share one store
        self.unsynced: dict[Path, int] = {}     # appended with sync=False: path -> synced size

    # ---- writing ----

    def deliver(self, job_dir: Path, key: str, data: dict, *, sync: bool) -> bool:
        line = json.dumps({"key": key, "data": data}).encode() + b"\n"
        with self._open(job_dir, exclusive=True, create=True) as f:
            if key in f.state.items:
                return False
            f.append(line, sync)
        return True

    def send(self, job_dir: Path, name: str, data: dict, key_of) -> int:
        """Append event `name` under the next number (`key_of(name, n)` is its key)."""
        prefix = key_of(name, 0)[:-12]
        with self._open(job_dir, exclusive=True, create=True) as f:
            n = 1 + max((int(k[len(prefix):]) for k in f.state.items if k.startswith(prefix)),
                        default=0)
            f.append(json.dumps({"key": key_of(name, n), "data": data}).encode() + b"\n", True)
        return n

    def take(self, job_dir: Path, key: str, *, sync: bool) -> None:
        with self._open(job_dir, exclusive=True, create=False) as f:
            if f.state is not None and f.state.items.get(key, TAKEN) is not TAKEN:
                f.append(json.dumps({"taken": key}).encode() + b"\n", sync)

    # ---- reading ----

    def items(self, job_dir: Path) -> dict[str, object]:
        """Every key delivered, in delivery order, with its data or TAKEN."""
        with self._open(job_dir, exclusive=False, create=False) as f, self._lock:
            return {} if f.state is None else dict(f.state.items)

    # ---- durability ----

    def sync(self) -> list[Path]:
        """The files appended with sync=False since the last call (the caller syncs them)."""
        with self._lock:
            paths, self.unsynced = list(self.unsynced), {}
        return paths

    def power_cut(self) -> None:
        """Tests only: cut each file back to what was synced, as a power cut could."""
        with self._lock:
            cuts, self.unsynced = self.unsynced, {}
            for path in cuts:
                self._read.pop(path, None)
        for path, size in cuts.items():
            os.truncate(path, size)

    def _open(self, job_dir: Path, *, exclusive: bool, create: bool) -> _Open:
        if job_dir not in self._looked:
            self._looked.add(job_dir)
            if os.path.isdir(job_dir / LEGACY):
                self._migrate(job_dir)
        return _Open(self, job_dir / NAME, exclusive, create)

    def _migrate(self, job_dir: Path) -> None:
        """Move an inbox of fm before this file (`inbox/<hex of key>.json`, one file per
        delivery, `{"key", "taken": true}` once taken) into it, durably, then delete it. A
        crash midway is harmless: keys already in the file are skipped next time."""
        legacy = job_dir / LEGACY
        with _Open(self, job_dir / NAME, True, True) as f:
            for name in sorted(os.listdir(legacy)):
                if name.startswith(".") or not name.endswith(".json"):
                    continue
                try:
                    key = bytes.fromhex(name[:-5]).decode("utf-8", "surrogatepass")
                    item = json.loads((legacy / name).read_bytes())
                    data = {} if item.get("taken") else item["data"]
                except (OSError, ValueError, KeyError, TypeError, AttributeError):
                    raise JournalError(f"{legacy / name}: damaged delivery") from None
                if key not in f.state.items:
                    f.append(json.dumps({"key": key, "data": data}).encode() + b"\n", False)
                if item.get("taken") and f.state.items[key] is not TAKEN:
                    f.append(json.dumps({"taken": key}).encode() + b"\n", False)
            fsync_fd(f.fd)
            fsync_dir(job_dir)
        import shutil
        shutil.rmtree(legacy)


class _Open:
    """One locked use of an inbox file, its state brought up to date (None: no file)."""

    def __init__(self, inboxes: Inboxes, path: Path, exclusive: bool, create: bool):
        self.inboxes, self.path = inboxes, path
        self.exclusive, self.create = exclusive, create
        self.fd = -1
        self.state: _Read | None = None
        self.created = False

    def __enter__(self) -> _Open:
        flags = os.O_RDWR | os.O_APPEND if self.exclusive else os.O_RDONLY
        flags |= os.O_CLOEXEC | _NOFOLLOW
        try:
            self.fd = os.open(self.path, flags)
        except FileNotFoundError:
            if not self.create:
                return self
            try:
                self.fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o600)
                self.created = True
            except FileExistsError:         # another writer made it first
                self.fd = os.open(self.path, flags)
        except OSError as e:
            raise JournalError(f"{self.path}: {e.strerror}") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH)
            with self.inboxes._lock:    # two readers of one file in two threads: one at a time
                self._catch_up()
            if not self.exclusive and self.state is not None and self.state.damaged:
                raise JournalError(self.state.damaged)
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.fd >= 0:
            os.close(self.fd)           # drops the flock too

    def _catch_up(self) -> None:
        """Read what was appended since this process last looked (all of it after a change
        of file); a torn last line stays unread."""
        st = os.fstat(self.fd)
        if not stat.S_ISREG(st.st_mode):
            raise JournalError(f"{self.path}: not a regular file")
        state = self.inboxes._read.get(self.path)
        if state is None or state.ino != st.st_ino or st.st_size < state.offset:
            state = self.inboxes._read[self.path] = _Read(st.st_ino)
        self.state = state
        self.size = st.st_size
        if st.st_size == state.offset:
            return
        start = state.offset - len(state.last)
        data = pread_all(self.fd, st.st_size - start, start)
        if not data.startswith(state.last):     # cut back and written again since (a test's
            state = self.inboxes._read[self.path] = _Read(st.st_ino)    # power cut): reread
            self.state = state
            data = pread_all(self.fd, st.st_size, 0)
        else:
            data = data[len(state.last):]
        for raw in data[:data.rfind(b"\n") + 1].split(b"\n")[:-1]:
            try:
                _apply(state, raw, f"{self.path}:{state.lines + 1}")
            except JournalError as e:
                if not self.exclusive:
                    raise
                state.damaged = state.damaged or e.message
            state.lines += 1
            state.offset += len(raw) + 1
            state.last = raw + b"\n"

    def append(self, line: bytes, sync: bool) -> None:
        """Append one line (a torn tail is cut off first); durable now if `sync`."""
        state = self.state
        if self.size > state.offset:
            os.ftruncate(self.fd, state.offset)
        if not sync:
            with self.inboxes._lock:
                self.inboxes.unsynced.setdefault(self.path, state.offset)
        view = memoryview(line)
        while view:
            view = view[os.write(self.fd, view):]
        if sync:
            fsync_fd(self.fd)
            if self.created:
                fsync_dir(self.path.parent)
        state.offset += len(line)
        self.size = state.offset
        state.lines += 1
        state.last = line
        _apply(state, line[:-1], "")


def _apply(state: _Read, raw: bytes, where: str) -> None:
    try:
        item = json.loads(raw)
        if "taken" in item:
            if state.items.get(item["taken"], TAKEN) is not TAKEN:
                state.items[item["taken"]] = TAKEN
            return
        key, data = item["key"], item["data"]
        if not isinstance(key, str) or not isinstance(data, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise JournalError(f"{where}: damaged delivery") from None
    state.items.setdefault(key, data)
