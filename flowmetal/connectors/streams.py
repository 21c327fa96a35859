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

import atexit
import os
import select
import signal
import threading
import time

from .files import _utf8_complete, decode
from .process import KILL_GRACE, POLL_INTERVAL, _Pipeline, descendants
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
        self.skip = int(req.get("skip") or 0)
        self.pending = b""           # the start of a UTF-8 sequence cut by a read
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
        res = {"started": True}
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
            chunk = self._read_bytes(size, should_stop)
            if chunk is None:
                return {"stopped": True}
            if chunk and self.skip:
                cut = min(self.skip, len(chunk))
                self.skip -= cut
                chunk = chunk[cut:]
                if not chunk:
                    continue
            if not chunk:
                data, self.pending = self.pending, b""
                return {"data": decode(data), "eof": True} if data else {"data": "", "eof": True}
            data = self.pending + chunk
            keep = _utf8_complete(data)
            if keep == 0 and len(data) < 4:
                self.pending = data
                continue
            self.pending = data[keep:]
            return {"data": decode(data[:keep])}

    def _read_bytes(self, size: int, should_stop):
        """Bytes from the pipe (b"" at its end), or None when should_stop() said so."""
        if self.fd is None:
            return b""
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        while not poller.poll(POLL_INTERVAL * 1000):
            if should_stop():
                return None
        try:
            return os.read(self.fd, size)
        except OSError:
            return b""

    def close(self, drain: bool) -> dict:
        """End the producer: with `drain` (its reader saw the end) read on to EOF and wait;
        otherwise close the pipe and give what still runs SIGPIPE, then SIGTERM, SIGKILL."""
        if drain and self.fd is not None:
            while self._read_bytes(1 << 16, lambda: False):
                pass
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
        res = dict(self.result or {})
        res.pop("stopped", None)
        return res

    def _signal(self, signum: int) -> None:
        victims = []
        for pid in list(self.pipeline.live):
            victims += [pid, *descendants(pid)]
        for pid in victims:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass


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
    return stream.close(bool(req.get("drain")))


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
