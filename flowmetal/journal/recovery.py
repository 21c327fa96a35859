"""Recovery of a journal read backwards from its end (G5, G6): drop a torn final line, find the
last snapshot, check the records from it on. What lies before the last snapshot is not read."""
from __future__ import annotations

from ..errors import JournalDamagedError, JournalError
from ..records import record
from ._fs import pread_all
from .codec import (
    FORMAT,
    HEADER_RE,
    checksum_ok,
    damaged,
    decode,
    decode_first,
    has_checksum,
    lost_newline,
    lost_newline_error,
    torn_candidate,
    unborn,
)

BLOCK = 64 * 1024  # the first read from the end; each further read is twice as long
_SNAPSHOT = b'"kind":"snapshot"'


@record
class Scan:
    """What recovery learned about a journal."""
    good_end: int               # bytes to keep; less than the file's size when a torn tail must go
    count: int                  # number of good records (the next seq)
    first_raw: bytes            # the job.started line, without its newline
    snap_off: int | None        # byte offset of the last snapshot line, None when there is none
    snap_seq: int | None
    snapshot: dict | None       # the last snapshot, parsed
    after: list[dict]           # every record after it (all records when there is no snapshot)
    strict: bool                # whether every record must carry a checksum (format 2 on)


class _Window:
    """The bytes [off, size) at the end of a file, extended towards its start on demand."""

    def __init__(self, fd: int, size: int):
        self.fd = fd
        self.off = size
        self.data = b""
        self._block = BLOCK

    def extend(self) -> bool:
        """Read the block before the window; False when the window already starts the file."""
        if self.off == 0:
            return False
        n = min(self._block, self.off)
        self.off -= n
        self.data = pread_all(self.fd, n, self.off) + self.data
        # Doubling keeps the bytes read and copied within a small multiple of what is needed.
        self._block *= 2
        return True

    def last_newline(self, before: int) -> int:
        """Offset of the last newline before offset `before`; -1 when there is none."""
        while True:
            i = self.data.rfind(b"\n", 0, before - self.off)
            if i >= 0:
                return self.off + i
            if not self.extend():
                return -1

    def slice(self, start: int, end: int) -> bytes:
        return self.data[start - self.off:end - self.off]


def recover(fd: int, size: int, name: str) -> Scan:
    """Find a journal's torn tail and last snapshot reading backwards from its end; check the
    records from that snapshot on (all of them without one). Raise JournalError for damage."""
    w = _Window(fd, size)
    first_raw = _first_line(w)
    if first_raw is None:
        if lost_newline(w.slice(0, size)):
            raise lost_newline_error(name, 1)
        raise unborn(name, "no complete job.started record "
                     "(the job was interrupted while it was being created)")
    # Line 1 first: its format says whether every record must carry a checksum.
    first, strict = decode_first(first_raw, name)
    fmt = first.get("format")
    if isinstance(fmt, int) and fmt > FORMAT:
        raise JournalError(f"{name}: written by a newer fm (journal format {fmt}; this fm reads "
                           f"up to {FORMAT}); resume it with that version")
    end, stray = _good_end(w, size, strict)
    snap = _last_snapshot(w, end, strict)
    if snap is None:
        (snap_off, seq0), recs = (len(first_raw) + 1, 1), [first]
    else:
        (snap_off, seq0), recs = snap, []
    lines = w.slice(snap_off, end).split(b"\n")
    lines.pop()  # the empty piece after the final newline
    # Record seq is on line seq + 1: the snapshot's seq gives the line numbers after it, without
    # reading (and counting the lines of) the history before it. Should the damage be that
    # records before it were lost or repeated, the lines are counted to name the right one.
    try:
        if snap is not None:
            _check_before(w, snap_off, seq0, name, strict)
        recs += [decode(raw, seq0 + i, name, seq0 + i + 1, strict)
                 for i, raw in enumerate(lines)]
    except JournalDamagedError as e:
        if snap is None or e.line is None:
            raise
        i = e.line - seq0 - 1
        off = snap_off + sum(len(raw) + 1 for raw in lines[:i])
        raise damaged(name, _line_at(w.fd, off), e.why) from None
    count = seq0 + len(lines)
    if stray:
        raise lost_newline_error(name, count + 1)
    if snap is None:
        return Scan(end, count, first_raw, None, None, None, recs, strict)
    return Scan(end, count, first_raw, snap_off, seq0, recs[0], recs[1:], strict)


def _check_before(w: _Window, snap_off: int, seq: int, name: str, strict: bool) -> None:
    """Check that the line before the snapshot at `snap_off` (numbered `seq`) is record seq - 1,
    its checksum right: a snapshot moved or repeated out of its place, or a record lost just
    before it, must not number (and restart) the job from there."""
    start = w.last_newline(snap_off - 1) + 1
    raw = w.slice(start, snap_off - 1)
    m = HEADER_RE.match(raw)
    if m is None or int(m.group(1)) != seq - 1 or (
            (strict or has_checksum(raw)) and not (has_checksum(raw) and checksum_ok(raw))):
        raise damaged(name, seq + 1, f"the record before this snapshot (seq {seq}) is not "
                                     f"record {seq - 1}: a record is missing, repeated or out "
                                     "of order, or damaged")


def _line_at(fd: int, offset: int) -> int:
    """The 1-based number of the line that starts at `offset` (counting the lines before)."""
    lines, pos = 1, 0
    while pos < offset:
        n = min(1 << 20, offset - pos)
        lines += pread_all(fd, n, pos).count(b"\n")
        pos += n
    return lines


def _good_end(w: _Window, size: int, strict: bool) -> tuple[int, bool]:
    """Where the good prefix ends, and whether the final line is a whole record whose newline is
    damaged. A final line without its newline is torn; in a format 1 journal, so is a final line
    that is not JSON."""
    nl = w.last_newline(size)
    if nl < size - 1:
        return nl + 1, lost_newline(w.slice(nl + 1, size))
    start = w.last_newline(nl) + 1
    # Only the final line may be torn: damage followed by more lines is reported, never dropped.
    return (start if start > 0 and torn_candidate(w.slice(start, nl), strict) else size), False


def _last_snapshot(w: _Window, end: int, strict: bool) -> tuple[int, int] | None:
    """(byte offset, seq) of the last snapshot line before offset `end`, searching backwards."""
    stop = end
    while True:
        i = w.data.rfind(_SNAPSHOT, 0, stop - w.off)
        if i < 0:
            # Next search only the block read before, and the text that may straddle into this one.
            stop = min(stop, w.off + len(_SNAPSHOT) - 1)
            if not w.extend():
                return None
            continue
        # The text may also occur nested inside some record's value: trust only a line's own header.
        start = w.last_newline(w.off + i) + 1
        m = HEADER_RE.match(w.data, start - w.off)
        if m is not None and m.group(2) == b"snapshot" and _intact(w, start, strict):
            return start, int(m.group(1))
        stop = start  # no snapshot starts on this line


def _intact(w: _Window, start: int, strict: bool) -> bool:
    """Whether the line at `start` may be trusted to number the lines after it: its checksum is
    right (format 2 on). A damaged snapshot line is then found by decoding from an earlier one."""
    if not strict:
        return True
    raw = w.slice(start, w.data.index(b"\n", start - w.off) + w.off)
    return has_checksum(raw) and checksum_ok(raw)


def _first_line(w: _Window) -> bytes | None:
    """The job.started line without its newline, read from the file's start; None when the file
    has no newline at all."""
    n = BLOCK
    while n < w.off:
        head = pread_all(w.fd, n, 0)
        i = head.find(b"\n")
        if i >= 0:
            return head[:i]
        n *= 2
    # The line reaches into the window, or the window is yet to be read: read up to its start.
    head = pread_all(w.fd, w.off, 0) + w.data
    i = head.find(b"\n")
    w.data, w.off = head, 0  # the whole file, read already: the window need not read it again
    return head[:i] if i >= 0 else None
