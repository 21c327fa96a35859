"""Read-only access to a journal that a runner may be writing: read it through, follow it live,
or read just its first or last record."""
from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator

from ..errors import JournalError
from ._fs import pread_all
from .codec import (
    TERMINAL_KINDS,
    check,
    checksum_ok,
    damaged,
    decode_first,
    has_checksum,
    loads,
    lost_newline,
    lost_newline_error,
    shape_problem,
    torn_candidate,
    unborn,
)


def open_journal(path) -> int:
    """A read-only descriptor of a journal that is a regular file: a FIFO, a device or a
    symlink is refused at once, never read (it could hang a reader, or point anywhere)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise unborn(str(path), "no such journal") from None
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
        strict = False  # whether every record must carry a checksum: line 1's format says
        pending = None  # a format 1 line that is not JSON is damage only if another line follows
        for lineno, raw in enumerate(f, 1):
            if pending is not None:
                raise pending
            if not raw.endswith(b"\n"):
                # A line still being written, or torn by a crash: not part of the journal.
                if lost_newline(raw):
                    raise lost_newline_error(name, lineno)
                break
            raw = raw[:-1]
            if seq == 0:
                rec, strict = decode_first(raw, name)
            elif torn_candidate(raw, strict):
                pending = damaged(name, lineno, "invalid JSON")
                continue
            else:
                rec = check(loads(raw), raw, seq, name, lineno, strict)
            yield rec
            seq += 1
    if seq == 0:
        raise unborn(name, "no complete job.started record "
                           "(the job was interrupted while it was being created)")


def follow(path, start_seq: int = 0, poll: float = 0.2) -> Iterator[dict]:
    """Yield records with seq >= start_seq as they are appended; stop after a terminal record."""
    name = str(path)
    fd = open_journal(path)
    try:
        consumed = 0  # offset just past the last complete, valid line handled
        seq = 0
        strict = False
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
                if seq == 0:
                    rec, strict = decode_first(raw, name)
                elif i == len(lines) - 1 and not partial and torn_candidate(raw, strict):
                    break  # perhaps a torn tail that the next runner will cut off: wait and see
                else:
                    rec = check(loads(raw), raw, seq, name, seq + 1, strict)
                consumed += len(raw) + 1
                seq += 1
                progressed = True
                if rec["seq"] >= start_seq:
                    yield rec
                if rec["kind"] in TERMINAL_KINDS:
                    return
            if not progressed:
                if partial and lost_newline(partial):
                    raise lost_newline_error(name, seq + 1)
                time.sleep(poll)
    finally:
        os.close(fd)


def read_first(path) -> dict:
    """Record 0 (job.started), reading only the first line, validated."""
    name = str(path)
    with os.fdopen(open_journal(path), "rb") as f:
        raw = f.readline()
    if not raw.endswith(b"\n"):
        if lost_newline(raw):
            raise lost_newline_error(name, 1)
        raise unborn(name, "no complete job.started record")
    return decode_first(raw[:-1], name)[0]


def read_last(path, block: int = 8192) -> dict | None:
    """The last complete record, found by reading backwards from the end of the file, its
    checksum checked (damage raises, naming the line). None when there is no complete record.

    A final line without its newline (being written, or torn by a crash) is skipped as
    read_records skips it, and so is a final line that is not JSON in a format 1 journal.
    """
    name = str(path)
    with os.fdopen(open_journal(path), "rb") as f:
        pos = f.seek(0, os.SEEK_END)
        buf = b""
        # Enough for the last two complete lines: three newlines, or the start of the file.
        while pos > 0 and buf.count(b"\n") < 3:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
            block *= 2  # snapshots can be long lines: widen the reads
        lines = buf.split(b"\n")
        partial = lines.pop()  # "" after the final newline, or a final line still being written
        if pos > 0:
            lines.pop(0)  # may be the cut-off end of an earlier line
        why = None
        if partial and lost_newline(partial):
            why = "a whole record whose newline is damaged"
        strict = None  # learnt from line 1, only when a line without a checksum needs it
        for raw in reversed(lines[-2:]):
            if why is not None:
                break
            if has_checksum(raw):
                if not checksum_ok(raw):
                    why = "checksum mismatch"
                    break
            else:
                if strict is None:
                    strict = _strict(f, name)
                if strict:
                    why = "no checksum"
                    break
                if torn_candidate(raw, strict):
                    continue  # only the final line may be torn; the one before is the last
            rec = loads(raw)
            why = shape_problem(rec, raw)
            if why is None:
                return rec
            break
    if why is None:
        return None
    # Rare (a damaged journal): count the lines from the start to name the damaged one.
    for _ in read_records(path):
        pass
    raise damaged(name, None, why)  # not found again: the file changed meanwhile


def _strict(f, name: str) -> bool:
    """Whether the journal open as `f` requires checksums, from its line 1 (checked)."""
    f.seek(0)
    raw = f.readline()
    if not raw.endswith(b"\n"):
        return False  # its only line, still being written: nothing else to check
    return decode_first(raw[:-1], name)[1]
