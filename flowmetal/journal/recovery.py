"""Recovery scan of a whole journal (G6): drop a torn final line, check the rest, find the last
snapshot."""
from __future__ import annotations

import re

from ..errors import JournalError
from ..records import record
from .codec import FORMAT, HEADER_RE, damaged, decode, loads

# A line boundary inside the journal: one record's closing brace, the newline, the next record's
# seq. The literal prefix lets the regex engine jump between candidates at C speed.
_BOUNDARY_RE = re.compile(rb'\}\n\{"seq":(0|[1-9][0-9]*),')
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


def good_end(data: bytes) -> int:
    """Where the good prefix ends: a final line without its newline, or not valid JSON, is torn."""
    if not data.endswith(b"\n"):
        return data.rfind(b"\n") + 1
    start = data.rfind(b"\n", 0, len(data) - 1) + 1
    # Only the final line may be torn: damage followed by more lines is reported, never dropped.
    return len(data) if loads(data[start:-1]) is not None else start


def scan(data: bytes, name: str) -> Scan:
    """Check a journal's bytes; raise JournalError for damage before the final line."""
    end = good_end(data)
    good = data if end == len(data) else data[:end]
    n = good.count(b"\n")
    if n == 0:
        raise JournalError(f"{name}: no complete job.started record "
                           "(the job was interrupted while it was being created)")
    _check_structure(good, n, name)
    snap_off, seq0 = last_snapshot(good) or (None, 0)
    start = snap_off or 0
    # seq equals the line index (just checked), so line numbers follow from it without counting.
    lines = good[start:].split(b"\n")
    lines.pop()  # the empty piece after the final newline
    recs = [decode(raw, seq0 + i, name, seq0 + i + 1) for i, raw in enumerate(lines)]
    first_raw = good[:good.index(b"\n")]
    first = recs[0] if snap_off is None else decode(first_raw, 0, name, 1)
    fmt = first.get("format")
    if isinstance(fmt, int) and fmt > FORMAT:
        raise JournalError(f"{name}: written by a newer fm (journal format {fmt}; this fm reads "
                           f"up to {FORMAT}); resume it with that version")
    if snap_off is None:
        return Scan(end, n, first_raw, None, None, None, recs)
    return Scan(end, n, first_raw, snap_off, seq0, recs[0], recs[1:])


def _check_structure(good: bytes, n: int, name: str) -> None:
    """Bytes-level check that every line is a record with the next seq; locate the damage if not."""
    # Each match accounts for one of the n - 1 inner newlines, so n - 1 matches means every line
    # but the first starts with {"seq": and every line but the last ends with }.
    seqs = _BOUNDARY_RE.findall(good)
    if (len(seqs) == n - 1 and good.startswith(b'{"seq":0,') and good.endswith(b"}\n")
            and list(map(int, seqs)) == list(range(1, n))):
        return
    _locate_damage(good, n, name)


def _locate_damage(good: bytes, n: int, name: str) -> None:
    """The slow path, taken only when the fast check failed: find the first bad line and say why."""
    start = 0
    for seq in range(n):
        nl = good.index(b"\n", start)
        raw = good[start:nl]
        m = HEADER_RE.match(raw)
        if m is None or m.group(1) != b"%d" % seq or not raw.endswith(b"}"):
            decode(raw, seq, name, seq + 1)  # raises with the precise reason
            raise damaged(name, seq + 1, "not a journal record")
        start = nl + 1
    raise JournalError(f"{name}: damaged journal")  # unreachable: the fast check is weaker


def last_snapshot(good: bytes) -> tuple[int, int] | None:
    """(byte offset, seq) of the last snapshot line, found by scanning backwards from the end."""
    end = len(good)
    while True:
        i = good.rfind(_SNAPSHOT, 0, end)
        if i < 0:
            return None
        # The text may also occur nested inside some record's value: trust only a line's own header.
        start = good.rfind(b"\n", 0, i) + 1
        m = HEADER_RE.match(good, start)
        if m is not None and m.group(2) == b"snapshot":
            return start, int(m.group(1))
        end = start  # no snapshot starts on this line
