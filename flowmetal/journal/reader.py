"""Read-only access to a journal that a runner may be writing: read it through, or follow it
live."""
from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator

from ..errors import JournalError
from ._fs import pread_all
from .codec import TERMINAL_KINDS, check, damaged, loads


def open_journal(path) -> int:
    """A read-only descriptor of a journal that is a regular file: a FIFO, a device or a
    symlink is refused at once, never read (it could hang a reader, or point anywhere)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise JournalError(f"{path}: no such journal") from None
    except OSError as e:
        raise JournalError(f"{path}: cannot open the journal ({e.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise JournalError(f"{path}: not a regular file; refusing to read it")
    return fd


def read_records(path) -> Iterator[dict]:
    """Every record, validated; a torn final line is ignored (never written back), damage before it
    raises."""
    name = str(path)
    with os.fdopen(open_journal(path), "rb") as f:
        seq = 0
        pending = None  # an invalid line is damage only if another line follows it
        for lineno, raw in enumerate(f, 1):
            if pending is not None:
                raise pending
            if not raw.endswith(b"\n"):
                return  # a line still being written, or torn by a crash: not part of the journal
            raw = raw[:-1]
            rec = loads(raw)
            if rec is None:
                pending = damaged(name, lineno, "invalid JSON")
                continue
            yield check(rec, raw, seq, name, lineno)
            seq += 1


def follow(path, start_seq: int = 0, poll: float = 0.2) -> Iterator[dict]:
    """Yield records with seq >= start_seq as they are appended; stop after a terminal record."""
    name = str(path)
    fd = open_journal(path)
    try:
        consumed = 0  # offset just past the last complete, valid line handled
        seq = 0
        while True:
            size = os.fstat(fd).st_size
            if size < consumed:
                # Recovery only ever cuts lines we have not consumed: anything else is a rewrite.
                raise JournalError(
                    f"{name}: the journal shrank below record {seq - 1} while being read")
            # Re-read from the last consumed line each time rather than keeping a partial line:
            # a torn tail may be cut off and replaced by new records between two polls.
            lines = pread_all(fd, size - consumed, consumed).split(b"\n")
            partial = lines.pop()
            progressed = False
            for i, raw in enumerate(lines):
                rec = loads(raw)
                if rec is None and i == len(lines) - 1 and not partial:
                    break  # perhaps a torn tail that the next runner will cut off: wait and see
                rec = check(rec, raw, seq, name, seq + 1)
                consumed += len(raw) + 1
                seq += 1
                progressed = True
                if rec["seq"] >= start_seq:
                    yield rec
                if rec["kind"] in TERMINAL_KINDS:
                    return
            if not progressed:
                time.sleep(poll)
    finally:
        os.close(fd)
