"""Large values beside the journal: a record's long strings stored once, in files named by hash.

On append, every string longer than LARGE characters anywhere in a record's fields is written to
`content/<sha256>` (before the record: a reader never meets a reference without its file) and
replaced by "" in the record, which lists what it moved in a `large` field:
`[{"at": [key or index, ...], "sha256": hex, "len": characters}]`. On read the strings are put
back and `large` removed, so no reader above the store ever sees the difference. The same text
(a variable kept across many snapshots) is stored once.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import JournalError
from ._fs import fsync_dir, fsync_fd
from .jobstore import LARGE

FIELD = "large"


def split(fields: dict, line_len: int) -> tuple[dict, list[tuple[list, str]]]:
    """(fields with long strings replaced by "", [(path, text)]) — the fields unchanged and no
    moves when the encoded record (`line_len` bytes) is too short to hold one."""
    if line_len <= LARGE:   # JSON never encodes a string in fewer bytes than it has characters
        return fields, []
    moved: list = []
    out = _split(fields, [], moved)
    return out, moved


def _split(value, path: list, moved: list):
    if isinstance(value, str):
        if len(value) > LARGE:
            moved.append((list(path), value))
            return ""
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            path.append(k)
            out[k] = _split(v, path, moved)
            path.pop()
        return out
    if isinstance(value, list):
        out = []
        for i, v in enumerate(value):
            path.append(i)
            out.append(_split(v, path, moved))
            path.pop()
        return out
    return value


def store(directory: Path, moved: list, *, fsync: bool) -> list[dict]:
    """Write each moved text to `directory/<sha256>` (unless there already); the `large`
    entries describing them."""
    import hashlib  # lazy: most jobs never print 64 KiB at once
    entries = []
    made = False
    for path, text in moved:
        data = text.encode("utf-8", "surrogatepass")
        digest = hashlib.sha256(data).hexdigest()
        target = directory / digest
        if not target.exists():
            if not made:
                directory.mkdir(mode=0o700, exist_ok=True)
                made = True
            _write_new(target, data, fsync=fsync)
        entries.append({"at": path, "sha256": digest, "len": len(text)})
    if made and fsync:
        fsync_dir(directory)
    return entries


def _write_new(target: Path, data: bytes, *, fsync: bool) -> None:
    """Write a file under a temporary name and rename it into place (readers see all or
    nothing of it)."""
    tmp = target.with_name(f".tmp-{target.name}-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
                 | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if fsync:
            fsync_fd(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)


def restore(rec: dict, directory: Path, where: str) -> dict:
    """Put a record's moved strings back (in place) and drop its `large` field."""
    entries = rec.pop(FIELD, None)
    if entries is None:
        return rec
    if not isinstance(entries, list):
        raise JournalError(f"{where}: damaged record (bad `{FIELD}` field)")
    for e in entries:
        try:
            text = load(directory, e["sha256"], where)
            _put(rec, e["at"], text)
        except (KeyError, TypeError, IndexError) as exc:
            raise JournalError(f"{where}: damaged record (bad `{FIELD}` entry: {exc})") from None
    return rec


def load(directory: Path, digest: str, where: str) -> str:
    """The text stored under `digest`, checked against its hash."""
    import hashlib
    if not isinstance(digest, str) or len(digest) != 64 or not digest.isalnum():
        raise JournalError(f"{where}: damaged record (bad content name {digest!r})")
    path = directory / digest
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise JournalError(f"{where}: its content file {path} is missing or unreadable "
                           f"({e.strerror})") from None
    if not _is_regular(fd):
        os.close(fd)
        raise JournalError(f"{where}: its content file {path} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != digest:
        raise JournalError(f"{where}: its content file {path} is damaged (hash mismatch)")
    return data.decode("utf-8", "surrogatepass")


def _is_regular(fd: int) -> bool:
    import stat
    return stat.S_ISREG(os.fstat(fd).st_mode)


def _put(rec: dict, path: list, text: str) -> None:
    target = rec
    for key in path[:-1]:
        target = target[key]
    if target[path[-1]] != "":
        raise KeyError("moved value is not empty")
    target[path[-1]] = text
