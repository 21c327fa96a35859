"""The append-only JSON-lines journal of one job: create, recover and open, append, read back."""
from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

from ..errors import JournalError
from ._fs import fsync_dir, fsync_fd, pread_all
from .codec import FORMAT, decode, encode
from .reader import read_records
from .recovery import recover

_OPEN_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


class Journal:
    """A job's journal opened for appending; only the holder of the job's lock may have one (G7)."""

    path: Path
    next_seq: int
    fsync: bool
    discarded: int  # bytes of torn tail that open() cut off (0 when there was none)

    def __init__(self, path: Path, fd: int, *, fsync: bool, next_seq: int, size: int,
                 first_raw: bytes, snap_off: int | None, snap_seq: int | None,
                 content_dir: Path | None = None, strict: bool = True):
        """Internal: use Journal.create or Journal.open."""
        self.path = path
        self.fsync = fsync
        self.content_dir = content_dir  # where long strings go (journal/content.py), or nowhere
        self.synced = size              # the size at the last fsync (what a power cut keeps)
        self.next_seq = next_seq
        self.discarded = 0
        self._fd = fd
        self._size = size            # we are the only writer, so this is the file's size
        self._first_raw = first_raw
        self._snap_off = snap_off
        self._snap_seq = snap_seq
        self._strict = strict        # every record must carry a checksum (format 2 on)
        self._tail_cache = None      # open() already parsed the tail; the first tail() reuses it
        self._broken: str | None = None
        # Durable branches may append from several threads: seq order must equal file order.
        self._mutex = threading.Lock()

    @classmethod
    def create(cls, path, fields: dict, *, fsync: bool = True,
               content_dir: Path | None = None) -> "Journal":
        """Create a new journal whose record 0 is job.started with `fields`; durable when it
        returns. With `content_dir`, long strings go there (journal/content.py)."""
        path = Path(path)
        # Encode before creating the file, so that bad fields leave no half-made journal behind.
        line = _encode(0, "job.started", {"format": FORMAT, **fields}, content_dir, fsync)
        fd = os.open(path, _OPEN_FLAGS | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)  # exactly 0600 whatever the umask
            if os.write(fd, line) != len(line):
                raise JournalError(f"{path}: short write while creating the journal (disk full?)")
            if fsync:
                fsync_fd(fd)
                # The file's name must be durable too: in its directory, and that directory in
                # its parent, as the job directory is normally made just before.
                fsync_dir(path.parent)
                fsync_dir(path.parent.parent)
        except BaseException:
            os.close(fd)
            try:
                os.unlink(path)
            except OSError:
                pass
            raise
        return cls(path, fd, fsync=fsync, next_seq=1, size=len(line), first_raw=line[:-1],
                   snap_off=None, snap_seq=None, content_dir=content_dir)

    @classmethod
    def open(cls, path, *, fsync: bool = True, content_dir: Path | None = None) -> "Journal":
        """Open an existing journal for appending, after cutting off a torn final line (G6)."""
        path = Path(path)
        try:
            fd = os.open(path, _OPEN_FLAGS | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            raise JournalError(f"{path}: no such journal") from None
        except OSError as e:
            raise JournalError(f"{path}: cannot open the journal ({e.strerror})") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise JournalError(f"{path}: not a regular file; refusing to read it")
            size = st.st_size
            sc = recover(fd, size, str(path))  # reads from the end back to the last snapshot
            if sc.good_end < size:
                os.ftruncate(fd, sc.good_end)
                if fsync:
                    fsync_fd(fd)
        except BaseException:
            os.close(fd)
            raise
        j = cls(path, fd, fsync=fsync, next_seq=sc.count, size=sc.good_end, first_raw=sc.first_raw,
                snap_off=sc.snap_off, snap_seq=sc.snap_seq, content_dir=content_dir,
                strict=sc.strict)
        j.discarded = size - sc.good_end
        j._tail_cache = (sc.good_end, sc.snapshot, sc.after)
        return j

    def append(self, kind: str, fields: dict, *, sync: bool = True) -> int:
        """Append one record in a single write; fsync it when `sync` and this journal syncs.
        Returns its seq."""
        with self._mutex:
            self._usable()
            seq = self.next_seq
            line = _encode(seq, kind, fields, self.content_dir, self.fsync)
            try:
                n = os.write(self._fd, line)
            except OSError:
                self._undo()
                raise
            if n != len(line):
                self._undo()
                raise JournalError(
                    f"{self.path}: short write ({n} of {len(line)} bytes); disk full?")
            if kind == "snapshot":
                self._snap_off, self._snap_seq = self._size, seq
            self._size += n
            self.next_seq = seq + 1
            if sync and self.fsync:
                self._sync()
            return seq

    def sync(self) -> None:
        """Make every record appended so far durable (after appends made with sync=False)."""
        with self._mutex:
            self._usable()
            if self.fsync:
                self._sync()

    @property
    def size(self) -> int:
        """The journal's size in bytes (every complete record appended)."""
        return self._size

    def first(self) -> dict:
        """The job.started record (a fresh copy each call)."""
        return json.loads(self._first_raw)

    def tail(self) -> tuple[dict | None, list[dict]]:
        """(the last snapshot or None, every record after it); reads only from that snapshot on
        (G5)."""
        with self._mutex:
            self._usable()
            cache, self._tail_cache = self._tail_cache, None
            if cache is not None and cache[0] == self._size:
                return cache[1], cache[2]
            off = self._snap_off or 0
            seq0 = self._snap_seq or 0
            lines = pread_all(self._fd, self._size - off, off).split(b"\n")
            lines.pop()  # the empty piece after the final newline
            name = str(self.path)
            recs = [decode(raw, seq0 + i, name, seq0 + i + 1, self._strict)
                    for i, raw in enumerate(lines)]
            if self._snap_off is None:
                return None, recs
            return recs[0], recs[1:]

    def records(self) -> Iterator[dict]:
        """Every record from the start, parsed and validated (for fm log)."""
        return read_records(self.path)

    def close(self) -> None:
        """Close the file; appending afterwards is an error. Closing twice is harmless."""
        with self._mutex:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Journal {self.path} next_seq={self.next_seq}>"

    def _usable(self) -> None:
        """Raise unless appending and reading are still allowed."""
        if self._fd < 0:
            raise ValueError(f"{self.path}: journal is closed")
        if self._broken:
            raise JournalError(self._broken)

    def _sync(self) -> None:
        """fsync the file; after a failure, poison the journal."""
        try:
            fsync_fd(self._fd)
            self.synced = self._size
        except OSError as e:
            # After a failed fsync the kernel may have dropped the dirty pages and will not report
            # it again, so a retry could falsely succeed: refuse further appends; open() re-checks.
            self._broken = f"{self.path}: fsync failed ({e.strerror}); reopen the job to continue"
            raise

    def _undo(self) -> None:
        """Cut the file back to the last complete record after a failed write."""
        # A failed or short write must not leave half a line for the next record to follow.
        try:
            os.ftruncate(self._fd, self._size)
        except OSError as e:
            self._broken = f"{self.path}: could not undo a failed write ({e.strerror})"


def _encode(seq: int, kind: str, fields: dict, content_dir: Path | None, fsync: bool) -> bytes:
    """The record's line; with `content_dir`, long strings are first moved there."""
    line = encode(seq, kind, fields)
    if content_dir is not None:
        from . import content
        fields, moved = content.split(fields, len(line))
        if moved:
            fields[content.FIELD] = content.store(content_dir, moved, fsync=fsync)
            line = encode(seq, kind, fields)
    return line
