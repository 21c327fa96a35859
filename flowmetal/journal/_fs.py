"""Low-level file helpers: durable sync and whole-file reads."""
from __future__ import annotations

import os
import sys

if sys.platform == "darwin":
    import fcntl

    def fsync_fd(fd: int) -> None:
        """Flush a file's data to stable storage."""
        # On macOS plain fsync stops at the drive's cache; F_FULLFSYNC reaches the platter.
        fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
else:
    def fsync_fd(fd: int) -> None:
        """Flush a file's data to stable storage."""
        # fdatasync also flushes the size change of an append, which is all the journal needs.
        if hasattr(os, "fdatasync"):
            os.fdatasync(fd)
        else:
            os.fsync(fd)


def fsync_dir(path) -> None:
    """Make a directory's entries (a newly created file in it) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pread_all(fd: int, size: int, offset: int) -> bytes:
    """Read exactly `size` bytes at `offset`, or fewer only at end of file."""
    # One pread returns at most ~2 GiB on Linux, and may in principle return short anywhere.
    chunks = []
    while size > 0:
        chunk = os.pread(fd, size, offset)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)
