"""The job's own terminal: where its stdin is read and its stdout/stderr are echoed."""
from __future__ import annotations

import os
import select


class Term:
    """The three fds a job talks to, and whether its output is echoed (False when detached).

    Writing never raises: once a stream's fd fails (EPIPE after the reader left, EIO after
    SIGHUP took the terminal away, EBADF), that stream just stops echoing, because the job
    must survive losing its terminal; its output is still returned in results and journaled.
    """

    __slots__ = ("stdin_fd", "stdout_fd", "stderr_fd", "echo", "_dead")

    def __init__(self, stdout_fd: int = 1, stderr_fd: int = 2, stdin_fd: int | None = 0,
                 echo: bool = True):
        self.stdout_fd = stdout_fd
        self.stderr_fd = stderr_fd
        self.stdin_fd = stdin_fd  # None: the job has no stdin (reads see EOF, children /dev/null)
        self.echo = echo
        self._dead: set[int] = set()  # logical streams (1, 2) whose fd has failed

    def __repr__(self) -> str:
        return (f"Term(stdout_fd={self.stdout_fd}, stderr_fd={self.stderr_fd}, "
                f"stdin_fd={self.stdin_fd}, echo={self.echo})")

    def fd_for(self, stream: int) -> int | None:
        """The real fd behind logical stream 0, 1 or 2 (None for other numbers)."""
        return {0: self.stdin_fd, 1: self.stdout_fd, 2: self.stderr_fd}.get(stream)

    def write(self, stream: int, data: bytes) -> None:
        """Echo bytes to logical stream 1 or 2, if echoing and the stream is still alive."""
        if not self.echo or not data or stream in self._dead:
            return
        fd = self.stdout_fd if stream == 1 else self.stderr_fd
        view = memoryview(data)
        try:
            while view:
                try:
                    n = os.write(fd, view)
                except BlockingIOError:
                    # Someone left the tty in O_NONBLOCK mode; wait rather than drop output.
                    select.select([], [fd], [])
                    continue
                view = view[n:]
        except OSError:
            self._dead.add(stream)

    def isatty(self, stream: int) -> bool:
        """bash's `[ -t N ]` from the job's point of view: only its own 0/1/2 can be a tty."""
        if stream in (1, 2) and (not self.echo or stream in self._dead):
            return False  # detached output goes to the journal, not to a terminal
        fd = self.fd_for(stream)
        if fd is None:
            return False
        try:
            return os.isatty(fd)
        except OSError:
            return False


class LineTerm:
    """A Term for one of several effects running at once: it writes whole lines only, under a
    lock shared by all of them, so concurrent branches never interleave inside a line. The
    part after the last newline waits for the rest of its line, or for `flush()` when the
    effect ends."""

    def __init__(self, term: Term, lock):
        self._term = term
        self._lock = lock
        self._held = {1: b"", 2: b""}

    def __getattr__(self, name):
        return getattr(self._term, name)

    def write(self, stream: int, data: bytes) -> None:
        held = self._held.get(stream, b"") + data
        cut = held.rfind(b"\n") + 1
        self._held[stream] = held[cut:]
        if cut:
            with self._lock:
                self._term.write(stream, held[:cut])

    def flush(self) -> None:
        for stream, held in self._held.items():
            if held:
                self._held[stream] = b""
                with self._lock:
                    self._term.write(stream, held)
