"""The byte format of one journal line: encoding, checksums, decoding and validation, shared by
all readers."""
from __future__ import annotations

import json
import re
import time
import zlib

from ..errors import JournalDamagedError, JournalError
from . import schema

# Version of the record format; job.started carries it so later fm versions know how to read it.
# 1: no checksums. 2: every record ends in a `crc` member (see seal()).
FORMAT = 2
CHECKSUMS_SINCE = 2

# Kinds after which nothing more is appended: a follower stops there.
TERMINAL_KINDS = frozenset({"job.finished", "job.failed", "job.cancelled"})

RESERVED = ("seq", "ts", "kind", "crc")
PREFIX = b'{"seq":'

# The keys seq, ts, kind always come first and in this order, so every line begins with a header
# of fixed shape that bytes-level code can match without a JSON parse. A raw newline never occurs
# inside an encoded JSON value, so the start of a line is always the start of a record.
HEADER_RE = re.compile(rb'\{"seq":(0|[1-9][0-9]*),"ts":"[^"\\]*","kind":"([^"\\]*)"[,}]')
_KIND_RE = re.compile(r"[A-Za-z0-9_.-]+\Z")
_GOOD_KINDS: set = set()   # kinds already matched against _KIND_RE

# The checksum is the record's last member, of fixed length, so it is found and checked on the
# bytes: `,"crc":"` 8 lowercase hex digits `"}`. Inside any value a `"` is escaped or followed by
# more text, so only a top-level last member named crc can end a line this way.
_CRC_OPEN = b',"crc":"'
_CRC_LEN = len(_CRC_OPEN) + 8 + 2

# ensure_ascii keeps the file pure ASCII: lone surrogates (from surrogateescape-decoded bytes)
# become \udcXX escapes and come back unchanged, where UTF-8 encoding would refuse them.
_encoder = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def _refuse(value):
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _fast_encoder():
    """The same encoding as _encoder.encode for the hot path, without building the C encoder
    anew for every record (as JSONEncoder.encode does): a few µs a record. No check for
    circular references (a record is built from JSON values, never refers to itself)."""
    from json.encoder import c_make_encoder, encode_basestring_ascii
    if c_make_encoder is None:
        return _encoder.encode
    chunks = c_make_encoder(None, _refuse, encode_basestring_ascii, None, ":", ",", False,
                            False, False)
    return lambda value: "".join(chunks(value, 0))


_encode_json = _fast_encoder()


_second: tuple = (None, "")   # (a whole second, its formatted text): strftime once a second


def now_ts() -> str:
    """The current time as RFC 3339 UTC with milliseconds, e.g. 2026-11-28T22:10:03.123Z."""
    global _second
    t = time.time()
    s = int(t)
    known = _second
    if known[0] != s:
        known = _second = (s, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)))
    return known[1] + ".%03dZ" % int((t - s) * 1000)


def encode(seq: int, kind: str, fields: dict, ts: str | None = None) -> bytes:
    """One complete journal line (with its newline) for a record, checksum included."""
    if kind not in _GOOD_KINDS:
        if not _KIND_RE.match(kind):
            raise ValueError(f"bad record kind {kind!r}")
        _GOOD_KINDS.add(kind)
    for key in RESERVED:
        if key in fields:
            raise ValueError(f"record field {key!r} is reserved")
    # The header is formatted, not encoded: seq is an int, and ts and kind need no escaping
    # (digits and punctuation; _KIND_RE), so this is the encoding of the whole record as one
    # object, byte for byte, without building it.
    body = _encode_json(fields)
    head = '{"seq":%d,"ts":"%s","kind":"%s"' % (seq, ts or now_ts(), kind)
    line = (head + "," + body[1:] if len(body) > 2 else head + "}").encode("ascii")
    return b'%s,"crc":"%08x"}\n' % (line[:-1], zlib.crc32(line))   # seal(line) + b"\n"


def seal(body: bytes) -> bytes:
    """A record's compact JSON object `body` with its checksum added as the last member: the
    CRC-32 (zlib's, as in gzip and PNG) of `body`, as 8 lowercase hex digits."""
    return body[:-1] + b',"crc":"%08x"}' % zlib.crc32(body)


def reseal(rec: dict) -> bytes:
    """The line (with its newline) for a record as parsed, its checksum computed afresh: for
    tests and tools that edit a journal on purpose."""
    body = {k: v for k, v in rec.items() if k != "crc"}
    return seal(_encoder.encode(body).encode("ascii")) + b"\n"


def unseal(raw: bytes) -> bytes:
    """The bytes a sealed line's checksum covers: the line without its crc member (the inverse of
    seal()). `raw` must carry one (has_checksum)."""
    return raw[:-_CRC_LEN] + b"}"


def has_checksum(raw: bytes) -> bool:
    """Whether a line (without its newline) ends in a crc member, right or wrong."""
    return raw[-_CRC_LEN:-10] == _CRC_OPEN and raw[-2:] == b'"}'


def checksum_ok(raw: bytes) -> bool:
    """Whether a line that has_checksum() carries the right one."""
    # Compared as text, not as a number: "ABCDEF12" would be a flipped "abcdef12".
    return raw[-10:-2] == b"%08x" % zlib.crc32(raw[:-_CRC_LEN] + b"}")


def strict(first: dict) -> bool:
    """Whether every record of the journal whose job.started is `first` must carry a checksum."""
    fmt = first.get("format")
    return type(fmt) is int and fmt >= CHECKSUMS_SINCE


def damaged(name: str, lineno: int | None, why: str) -> JournalDamagedError:
    """The error for a damaged record at a 1-based line number (None: unknown)."""
    return JournalDamagedError(name, lineno, why)


def unborn(name: str, why: str) -> JournalError:
    """The error for a journal that a crash cut short while the job was being created (no file
    yet, or no complete job.started): it holds nothing worth keeping. `unborn` tells it from
    damage (`fm ps` lists such a job as orphaned, `fm rm` removes it)."""
    e = JournalError(f"{name}: {why}")
    e.unborn = True
    return e


def loads(raw: bytes):
    """Parse one line (without its newline); None when it is not valid JSON (a torn-write
    candidate)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # also UnicodeDecodeError; a nesting bomb
        return None


def check(rec, raw: bytes, seq: int, name: str, lineno: int, strict: bool = True) -> dict:
    """Validate a line and its parse `rec` (None when it is not JSON) as the record with sequence
    number `seq`; raise JournalDamagedError if not. A checksum, where there is one, is always
    checked; `strict` (format 2 on) requires one."""
    sealed = has_checksum(raw)
    if sealed and not checksum_ok(raw):
        raise damaged(name, lineno, "checksum mismatch")
    if rec is None:
        raise damaged(name, lineno, "invalid JSON")
    if not isinstance(rec, dict) or HEADER_RE.match(raw) is None:
        raise damaged(name, lineno, "not a journal record")
    if strict and not sealed:
        raise damaged(name, lineno, "no checksum")
    if rec["seq"] != seq:
        raise damaged(name, lineno, f"seq {rec['seq']} where {seq} was expected: "
                                    "a record is missing, repeated or out of order")
    if seq == 0 and rec["kind"] != "job.started":
        raise damaged(name, lineno, f"the first record is {rec['kind']!r}, not 'job.started'")
    why = schema.problem(rec)
    if why is not None:
        raise damaged(name, lineno, f"{rec['kind']}: {why}")
    return rec


def shape_problem(rec, raw: bytes) -> str | None:
    """What check() would find wrong with a parsed line besides its checksum and its place:
    not a record, or a record of the wrong shape (journal/schema.py). None when it is fine."""
    if not isinstance(rec, dict) or HEADER_RE.match(raw) is None:
        return "not a journal record"
    why = schema.problem(rec)
    return None if why is None else f"{rec['kind']}: {why}"


def decode(raw: bytes, seq: int, name: str, lineno: int, strict: bool = True) -> dict:
    """Parse and validate one line (without its newline)."""
    return check(loads(raw), raw, seq, name, lineno, strict)


def decode_first(raw: bytes, name: str) -> tuple[dict, bool]:
    """Parse and validate line 1 (job.started, without its newline): (the record, whether the
    journal's records must carry checksums)."""
    # Its own checksum, if it has one, is checked before its format is believed: a flipped
    # format number must not turn checking off.
    rec = decode(raw, 0, name, 1, strict=False)
    must = strict(rec)
    if must and not has_checksum(raw):
        raise damaged(name, 1, "no checksum")
    return rec, must


def torn_candidate(raw: bytes, strict: bool) -> bool:
    """Whether a complete final line (without its newline) that is not a good record may be a
    torn write, to be dropped: only in journals of format 1, when it is not JSON and carries no
    checksum. From format 2 on, a line that has its newline was written whole: if it is bad,
    it was damaged afterwards."""
    return not strict and not has_checksum(raw) and loads(raw) is None


def lost_newline(piece: bytes) -> bool:
    """Whether a final line without its newline is a whole record followed by one more byte: the
    record's newline was damaged. A torn write leaves a prefix of `record\\n`, never that."""
    body = piece[:-1]
    if not body.endswith(b"}"):
        return False  # the usual torn tail, decided without parsing it
    # A JSON object is never a proper prefix of another one, so if all but the last byte parses
    # as an object, that object is the whole record that was written.
    return has_checksum(body) or isinstance(loads(body), dict)


def lost_newline_error(name: str, lineno: int) -> JournalError:
    """The error for a final line that lost_newline()."""
    return damaged(name, lineno, "a whole record whose newline is damaged")
