"""The byte format of one journal line: encoding, decoding and validation, shared by all readers."""
from __future__ import annotations

import json
import re
import time

from ..errors import JournalError

# Version of the record format; job.started carries it so later fm versions know how to read it.
FORMAT = 1

# Kinds after which nothing more is appended: a follower stops there.
TERMINAL_KINDS = frozenset({"job.finished", "job.failed", "job.cancelled"})

RESERVED = ("seq", "ts", "kind")
PREFIX = b'{"seq":'

# The keys seq, ts, kind always come first and in this order, so every line begins with a header
# of fixed shape that bytes-level code can match without a JSON parse. A raw newline never occurs
# inside an encoded JSON value, so the start of a line is always the start of a record.
HEADER_RE = re.compile(rb'\{"seq":(0|[1-9][0-9]*),"ts":"[^"\\]*","kind":"([^"\\]*)"[,}]')
_KIND_RE = re.compile(r"[A-Za-z0-9_.-]+\Z")

# ensure_ascii keeps the file pure ASCII: lone surrogates (from surrogateescape-decoded bytes)
# become \udcXX escapes and come back unchanged, where UTF-8 encoding would refuse them.
_encoder = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def now_ts() -> str:
    """The current time as RFC 3339 UTC with milliseconds, e.g. 2026-11-28T22:10:03.123Z."""
    t = time.time()
    s = int(t)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + ".%03dZ" % int((t - s) * 1000)


def encode(seq: int, kind: str, fields: dict, ts: str | None = None) -> bytes:
    """One complete journal line (with its newline) for a record."""
    if not _KIND_RE.match(kind):
        raise ValueError(f"bad record kind {kind!r}")
    for key in RESERVED:
        if key in fields:
            raise ValueError(f"record field {key!r} is reserved")
    rec = {"seq": seq, "ts": ts or now_ts(), "kind": kind}
    rec.update(fields)
    return _encoder.encode(rec).encode("ascii") + b"\n"


def damaged(name: str, lineno: int, why: str) -> JournalError:
    """The error for a damaged record at a 1-based line number."""
    return JournalError(
        f"{name}:{lineno}: damaged record ({why}); the job cannot be resumed safely")


def loads(raw: bytes):
    """Parse one line (without its newline); None when it is not valid JSON (a torn-write
    candidate)."""
    try:
        return json.loads(raw)
    except ValueError:  # also UnicodeDecodeError, a subclass
        return None


def check(rec, raw: bytes, seq: int, name: str, lineno: int) -> dict:
    """Validate a parsed line as the record with sequence number `seq`; raise JournalError if
    not."""
    if rec is None:
        raise damaged(name, lineno, "invalid JSON")
    m = HEADER_RE.match(raw)
    if not isinstance(rec, dict) or m is None:
        raise damaged(name, lineno, "not a journal record")
    if rec["seq"] != seq:
        raise damaged(name, lineno, f"seq {rec['seq']} where {seq} was expected: "
                                    "a record is missing, repeated or out of order")
    if seq == 0 and rec["kind"] != "job.started":
        raise damaged(name, lineno, f"the first record is {rec['kind']!r}, not 'job.started'")
    return rec


def decode(raw: bytes, seq: int, name: str, lineno: int) -> dict:
    """Parse and validate one line (without its newline)."""
    return check(loads(raw), raw, seq, name, lineno)
