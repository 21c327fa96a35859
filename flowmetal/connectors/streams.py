"""Streams: external producers feeding fm code (`tail -f log | while read l; do ...; done`).

An `exec` request with `"stream": SID` starts its stages and returns at once; the last stage's
stdout (a `{"kind": "stream"}` target) goes into a pipe that this module holds, read by
`stream_read` effects one chunk at a time, so a producer that never ends is held back by the
pipe (backpressure) instead of being buffered. `stream_close` ends it. The live producers
belong to this process: after a crash or a resume they are gone, and `stream_read` /
`stream_close` answer `{"gone": true}`; the machine then starts the producer again with
`"skip": N` (the bytes it had already received) and reads on (docs/effects.md, "Streams").
"""
from __future__ import annotations

import array
import atexit
import fcntl
import os
import select
import signal
import termios
import threading
import time

from .files import _utf8_complete, decode, encode
from .process import KILL_GRACE, POLL_INTERVAL, _Pipeline
from .term import Term

SIGPIPE_GRACE = 0.05
"""Seconds a producer has, once its reader is gone, to end by itself (a write fails with
SIGPIPE) before it is sent SIGPIPE: one that waits for input (`tail -f`) would never notice."""

_STREAMS: dict = {}            # stream id -> _Stream
_LOCK = threading.Lock()


class _Stream:
    """One producer pipeline: its children run and are reaped in a thread (their stderr and
    any stdout to the term are pumped there); the stream's pipe is read by the caller."""

    def __init__(self, req: dict, term: Term):
        self.pipeline = _Pipeline(req, term)
        self.term = term
        self.skip = int(req.get("skip") or 0)
        self.pending = b""           # the start of a UTF-8 sequence cut by a read
        self.at_eof = False
        self.fd = None
        self.stop = False
        self.result = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fm-stream", daemon=True)

    def start(self) -> dict:
        self._thread.start()
        self._started.wait()
        self.fd = self.pipeline.stream_fd
        self.pipeline.stream_fd = None
        res = {"started": True, "status": list(self.pipeline.status)}
        if self.pipeline.errors:
            res["errors"] = dict(self.pipeline.errors)
        return res

    def _run(self) -> None:
        try:
            self.result = self.pipeline.run(lambda pids: self._started.set(),
                                            lambda: self.stop)
        except BaseException as exc:  # noqa: BLE001 - the reader must learn of it
            self.result = {"status": [s if s is not None else 1
                                      for s in self.pipeline.status],
                           "errors": {"0": f"stream failed: {exc}"}}
        finally:
            self._started.set()

    def read(self, size: int, should_stop) -> dict:
        """The next text from the producer (blocking until there is some, or its end)."""
        while True:
            data = self.read_raw(size, should_stop)
            if data is None:
                return {"stopped": True}
            if self.at_eof:
                return self._end(decode(data), should_stop)
            keep = _utf8_complete(data)
            self.pending = data[keep:]
            if keep:
                return {"data": decode(data[:keep])}

    def _end(self, text: str, should_stop) -> dict:
        """The last read: the producer's output has ended; once its stages have exited,
        their statuses come with it (journaled with the end, so a crash before the close
        need not run the producer again to learn them)."""
        while self._thread.is_alive():
            self._thread.join(POLL_INTERVAL)
            if should_stop():
                return {"data": text, "eof": True}
        res = {"data": text, "eof": True}
        if self.result is not None and "status" in self.result:
            res["status"] = list(self.result["status"])
        return res

    def read_raw(self, size: int, should_stop, interval: float = POLL_INTERVAL):
        """The next bytes after the skipped ones, led by a sequence the last read cut; b""
        at the end, None when should_stop() said so."""
        while not self.at_eof:
            chunk = self._read_bytes(size, should_stop, interval)
            if chunk is None:
                return None
            if not chunk:
                self.at_eof = True
                break
            if self.skip:
                cut = min(self.skip, len(chunk))
                self.skip -= cut
                chunk = chunk[cut:]
            if chunk:
                data, self.pending = self.pending + chunk, b""
                return data
        data, self.pending = self.pending, b""
        return data

    def _read_bytes(self, size: int, should_stop, interval: float = POLL_INTERVAL):
        """Bytes from the pipe (b"" at its end), or None when should_stop() (asked every
        `interval` seconds) said so."""
        if self.fd is None:
            return b""
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        while not poller.poll(interval * 1000):
            if should_stop():
                return None
        try:
            return os.read(self.fd, size)
        except OSError:
            return b""

    def close(self, drain: bool, should_stop=lambda: False) -> dict:
        """End the producer: with `drain` (its reader saw the end) read on to EOF (unless
        should_stop() says so: a cancel) and wait; otherwise close the pipe and give what
        still runs SIGPIPE, then SIGTERM, SIGKILL."""
        if drain and self.fd is not None:
            while self._read_bytes(1 << 16, should_stop):
                pass
            drain = not should_stop()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if not drain:
            self._thread.join(SIGPIPE_GRACE)
            if self._thread.is_alive():
                self._signal(signal.SIGPIPE)
                self._thread.join(KILL_GRACE)
            if self._thread.is_alive():
                self.stop = True          # the pipeline sends SIGTERM, then SIGKILL
        self._thread.join()
        if hasattr(self.term, "flush"):
            self.term.flush()         # a LineTerm (branches): the end of a last line
        res = dict(self.result or {})
        res.pop("stopped", None)
        return res

    def _signal(self, signum: int) -> None:
        self.pipeline.signal_all(signum)


RELAY_CHUNK = 1 << 12
"""Bytes a relay passes on at a time, and only into an empty pipe: what the child did not read
comes back, so this bounds what a program that does not read its stdin holds up."""


class Relay:
    """The stdin of a program started inside an fm stage that reads a stream: the text read
    ahead, then the stream itself, passed on as the program reads it. When the program's
    pipeline has ended, `finish()` takes back what it left in the pipe: the stream's reader
    goes on from there, so a program consumes only what it reads, as it would from the
    stream's pipe in bash. A stream that is gone (a resumed job) gives the text alone."""

    def __init__(self, sid: str, text: str):
        with _LOCK:
            self.stream = _STREAMS.get(sid)
        self.child_r, self.w = os.pipe()
        os.set_blocking(self.w, False)
        self.extra = encode(text)     # to be written into the pipe
        self.got = 0                  # bytes taken from the stream
        self.eof = False
        self.stop = False
        self.result = None
        self._thread = threading.Thread(target=self._run, name="fm-relay", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._flush()
            while self.stream is not None and not self.stop:
                if self.extra or _unread(self.child_r):
                    time.sleep(0.002)
                    self._flush()
                    continue
                data = self.stream.read_raw(RELAY_CHUNK, lambda: self.stop, 0.005)
                if data is None:
                    break
                if not data:
                    self.eof = True
                    break
                self.got += len(data)
                self.extra += data
                self._flush()
            while (self.eof or self.stream is None) and self.extra and not self.stop:
                time.sleep(0.002)
                self._flush()
            if (self.eof or self.stream is None) and not self.extra:
                self._close_w()       # all of it is in the pipe: the program sees its end
        except OSError:
            pass                      # EPIPE: the program closed its stdin

    def _close_w(self) -> None:
        if self.w is not None:
            os.close(self.w)
            self.w = None

    def _flush(self) -> None:
        while self.extra and not self.stop and self.w is not None:
            try:
                self.extra = self.extra[os.write(self.w, self.extra[:1 << 16]):]
            except BlockingIOError:
                return

    def finish(self) -> dict:
        """Stop passing on; the text left unread, the bytes taken from the stream."""
        if self.result is None:
            self.stop = True
            self._thread.join()
            self._close_w()
            left = b""
            while n := _unread(self.child_r):
                left += os.read(self.child_r, n)
            os.close(self.child_r)
            self.result = {"got": self.got, "unread": decode(left + self.extra)}
            if self.eof:
                self.result["eof"] = True
            if self.stream is None:
                self.result["gone"] = True
        return self.result


def _unread(fd: int) -> int:
    """Bytes waiting in a pipe."""
    buf = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return buf[0]


def open_stream(req: dict, term: Term, token=None) -> dict:
    """`exec` with `stream`: start the producer, result `{"started": true}` (and `errors` for
    stages that could not start). A re-start (`skip`) first stops what a crashed runner's
    producer left running (its FM_STEP_KEY), as a step run again does."""
    sid = str(req["stream"])
    with _LOCK:
        old = _STREAMS.pop(sid, None)
    if old is not None:
        old.close(False)
    if "skip" in req:
        _stop_survivors(req)
    stream = _Stream(req, term)
    res = stream.start()
    with _LOCK:
        _STREAMS[sid] = stream
    return res


def do_stream_read(req: dict, term: Term, token=None) -> dict:
    """The next chunk of a stream: `{"data": text}`, `{"data": ..., "eof": true}` at its end,
    `{"gone": true}` when this process holds no such stream (it was started before a crash)."""
    with _LOCK:
        stream = _STREAMS.get(str(req["sid"]))
    if stream is None:
        return {"gone": True}
    from .clock import get_clock
    deadline = req.get("deadline")

    def should_stop() -> bool:
        return (token is not None and token.is_set()) or \
            (deadline is not None and get_clock().now() >= deadline)

    res = stream.read(max(int(req.get("size") or 4096), 4), should_stop)
    if res.get("stopped") and deadline is not None and get_clock().now() >= deadline:
        return {"timeout": True}
    return res


def do_stream_close(req: dict, term: Term, token=None) -> dict:
    """End a stream: `{"status": [...]}` per stage (141 for one stopped by SIGPIPE), with the
    `out`/`err` its stages wrote to the job's terminal; `{"gone": true}` as for a read."""
    with _LOCK:
        stream = _STREAMS.pop(str(req["sid"]), None)
    if stream is None:
        return {"gone": True}
    return stream.close(bool(req.get("drain")), lambda: token is not None and token.is_set())


def _stop_survivors(req: dict) -> None:
    from .survivors import stop_survivors
    keys = {s.get("env", {}).get("FM_STEP_KEY") for s in req.get("stages", ())}
    for key in sorted(k for k in keys if k):
        stop_survivors(key)


@atexit.register
def _close_all() -> None:
    """Leave no producer behind when fm exits (an idle `tail -f` would never see SIGPIPE)."""
    with _LOCK:
        streams = list(_STREAMS.values())
        _STREAMS.clear()
    end = time.monotonic() + KILL_GRACE
    for stream in streams:
        stream.stop = True
        stream._signal(signal.SIGTERM)
    for stream in streams:
        stream._thread.join(max(end - time.monotonic(), 0))
