"""Pipelines of external programs: spawned concurrently, joined by OS pipes, output collected."""
from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import stat
import threading
import time
from _signal import getsignal as _getsignal  # see _spawn
from collections.abc import Callable

from . import watchdog
from .files import OPEN_FLAGS, decode, encode, open_error, resolve
from .term import Term

CLOSED = -1            # fdmap value: the fd is closed in the child
POLL_INTERVAL = 0.1    # seconds between should_stop() polls
KILL_GRACE = 2.0       # seconds between SIGTERM and SIGKILL when stopping
READ_SIZE = 1 << 16    # a Linux pipe holds 64 KiB by default
TARGET_KINDS = frozenset({"term", "pipe", "capture", "data", "file", "closed", "stream",
                          "relay"})
# Signals the children must see at their default disposition even if fm ignores them.
CHILD_DEFAULT_SIGNALS = tuple(getattr(signal, name) for name in
                              ("SIGPIPE", "SIGINT", "SIGQUIT", "SIGXFSZ") if hasattr(signal, name))

_pidfd_ok = hasattr(os, "pidfd_open")  # cleared on ENOSYS/EPERM (old kernel, seccomp)


def perform_exec(req: dict, term: Term, token=None) -> dict:
    """The `exec` effect: the pipeline, stopped when the request's deadline passes (the result
    then carries "timeout": true) or when `token` (a CancelToken) is set ("stopped")."""
    if req.get("stream") is not None:
        from .streams import open_stream  # a producer feeding fm code: starts, returns
        return open_stream(req, term, token)
    deadline = req.get("deadline")
    if deadline is None:
        return run_pipeline(req, term, should_stop=None if token is None else token.is_set)
    from .clock import get_clock
    clock = get_clock()

    def should_stop() -> bool:
        return (token is not None and token.is_set()) or \
            (deadline is not None and clock.now() >= deadline)

    res = run_pipeline(req, term, should_stop=should_stop)
    if res.get("stopped") and deadline is not None and clock.now() >= deadline:
        res["timeout"] = True
    return res


def run_pipeline(req: dict, term: Term, *,
                 on_start: Callable[[list], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> dict:
    """Run the `exec` request's stages concurrently and return their statuses and output.

    on_start(pids) is called once every stage is spawned (None for a stage that did not run);
    should_stop() is polled every 100 ms and, once True, ends the pipeline with SIGTERM and
    after 2 s SIGKILL; the result then carries "stopped": true.
    """
    return _Pipeline(req, term).run(on_start, should_stop)


class _Pipeline:
    """One run of an exec request: the fds it owns, its children and what they wrote."""

    def __init__(self, req: dict, term: Term):
        self.term = term
        self.cwd = req["cwd"]
        self.stages = [_stage_fds(stage, i, len(req["stages"]))
                       for i, stage in enumerate(req["stages"])]
        self.argvs = [list(stage["argv"]) for stage in req["stages"]]
        self.envs = [stage.get("env", {}) for stage in req["stages"]]
        n = len(self.stages)
        self.status: list = [None] * n
        self.errors: dict[str, str] = {}
        self.pids: list = [None] * n
        self.live: dict[int, int] = {}          # pid -> stage index
        self.links: list = [None] * max(n - 1, 0)  # [r, w] pipe between stage i and i+1
        self.sinks: dict[str, int] = {}         # "out"/"err"/"capture" -> write end
        self.readers: dict[int, str] = {}       # read end -> "out"/"err"/"capture"
        self.writers: dict[int, memoryview] = {}  # write end of a data pipe -> bytes left
        self.chunks: dict[str, list] = {"out": [], "err": [], "capture": []}
        self.devnull: int | None = None
        self.stopped = False
        self.tracked: dict[str, int] = {}       # file target id -> dup'd fd, for "offsets"
        self.spooled: dict[str, int] = {}       # tracked data key -> its spool file's fd
        self.stream_fd: int | None = None       # read end of a `stream` target (streams.py)
        self.relays: dict = {}                  # relay key -> streams.Relay feeding a stdin

    # -- setting up ------------------------------------------------------------------------

    def run(self, on_start, should_stop) -> dict:
        try:
            for i, fds in enumerate(self.stages):
                if any(t["kind"] == "pipe" for cfd, t in fds if cfd != 0) or (
                        i + 1 < len(self.stages) and _reads_pipe(self.stages[i + 1])):
                    self.links[i] = list(os.pipe())
            for i in range(len(self.stages)):
                self._start_stage(i)
            for fd in self.sinks.values():
                os.close(fd)  # our copies must go, or the readers never see EOF
            self.sinks.clear()
            if on_start is not None:
                on_start(list(self.pids))
            self._pump(should_stop)
        except BaseException:
            self._abort()
            raise
        finally:
            self._close_all()
        return self._result()

    def _start_stage(self, i: int) -> None:
        fdmap: dict[int, int] = {}
        temp: list[int] = []  # child-side fds we open for this stage only
        files: dict = {}      # redirect id -> fd: one open file description per id
        try:
            error = None
            for cfd, t in self.stages[i]:
                kind = t["kind"]
                if kind == "term":
                    fdmap[cfd] = self._stdin() if cfd == 0 else self._sink(_term_stream(cfd, t))
                elif kind == "pipe":
                    fdmap[cfd] = self.links[i - 1][0] if cfd == 0 else self.links[i][1]
                elif kind == "capture":
                    fdmap[cfd] = self._sink("capture")
                elif kind == "data" and "track" in t:
                    fdmap[cfd] = self._data_file(t)
                elif kind == "data":
                    fdmap[cfd] = self._data_pipe(t.get("data", ""), temp)
                elif kind == "stream":
                    fdmap[cfd] = self._stream_sink()
                elif kind == "relay":
                    fdmap[cfd] = self._relay(t, temp)
                elif kind == "file":
                    key = t.get("id", id(t))
                    if key not in files:
                        try:
                            files[key] = os.open(resolve(self.cwd, t["path"]),
                                                 OPEN_FLAGS[t.get("mode", "r")] | os.O_CLOEXEC,
                                                 0o666)
                        except OSError as exc:
                            error = open_error(t.get("display") or t["path"], exc)
                            break
                        temp.append(files[key])
                        if "off" in t:
                            # A file that fm code reads too: start at its offset, and report
                            # where the child left it (a dup shares the offset).
                            os.lseek(files[key], int(t["off"]), os.SEEK_SET)
                            self.tracked[str(key)] = os.dup(files[key])
                    fdmap[cfd] = files[key]
                else:  # closed
                    fdmap[cfd] = CLOSED
            if error is None:
                path, failure = find_program(self.argvs[i], self.envs[i], self.cwd)
                if failure is None:
                    self._spawn(i, path, fdmap)
                else:
                    self.status[i], error = failure
            else:
                self.status[i] = 1  # bash: a failed redirect skips the command, status 1
            if error is not None:
                self.errors[str(i)] = error
        finally:
            for fd in temp:
                os.close(fd)
            # The child has its copies now; ours would hold the pipes open.
            if i > 0:
                _close_end(self.links[i - 1], 0)
            if i < len(self.links):
                _close_end(self.links[i], 1)

    def _stdin(self) -> int:
        if self.term.stdin_fd is not None:
            return self.term.stdin_fd
        if self.devnull is None:
            self.devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        return self.devnull

    def _sink(self, key: str) -> int:
        # One pipe per stream for the whole pipeline, so stages writing to the job's stdout
        # interleave in arrival order, as they would on a terminal.
        if key not in self.sinks:
            r, w = os.pipe()
            self.readers[r] = key
            self.sinks[key] = w
        return self.sinks[key]

    def _data_pipe(self, text: str, temp: list) -> int:
        r, w = os.pipe()
        temp.append(r)
        os.set_blocking(w, False)
        data = memoryview(encode(text))
        try:
            # Most here-docs fit in the pipe buffer: written now, they never reach the loop.
            data = data[os.write(w, data):] if data else data
        except BlockingIOError:
            pass
        if data:
            self.writers[w] = data
        else:
            os.close(w)
        return r

    def _stream_sink(self) -> int:
        """The write end of a stream's pipe; its read end is not pumped here: the stream's
        reader takes it (streams.py), so a producer that never ends is held by backpressure."""
        if "stream" not in self.sinks:
            r, w = os.pipe()
            self.stream_fd = r
            self.sinks["stream"] = w
        return self.sinks["stream"]

    def _relay(self, t: dict, temp: list) -> int:
        """A stdin fed from a live stream (streams.Relay): the text read ahead, then the
        stream itself; what the child left unread comes back in the result's `relayed`."""
        from .streams import Relay
        key = str(t["track"])
        if key not in self.relays:
            self.relays[key] = Relay(str(t["sid"]), t.get("data", ""))
        fd = os.dup(self.relays[key].child_r)
        temp.append(fd)
        return fd

    def _data_file(self, t: dict) -> int:
        """A tracked `data` target: its text in an unlinked spool file read from offset 0, so
        the child consumes only what it reads; where it left the offset is the result's
        `offsets[track]` (bytes consumed). Stages given the same key share the description."""
        key = str(t["track"])
        fd = self.spooled.get(key)
        if fd is None:
            import tempfile  # lazy: only programs fed in-memory input need it
            fd, path = tempfile.mkstemp(prefix="fm-data-")
            os.unlink(path)
            self.spooled[key] = fd
            data = memoryview(encode(t.get("data", "")))
            while data:
                data = data[os.write(fd, data):]
            os.lseek(fd, 0, os.SEEK_SET)
            self.tracked[key] = fd
        return fd

    def _spawn(self, i: int, path: str, fdmap: dict, argv: list | None = None) -> None:
        argv = argv or self.argvs[i]
        try:
            pid = _spawn(path, argv, self.envs[i], self.cwd, fdmap)
        except OSError as exc:
            if (exc.errno == errno.ENOEXEC and exc.filename != self.cwd
                    and path != "/bin/sh" and _is_text(path)):
                # execvp's rule: an executable text file without #! is a /bin/sh script.
                return self._spawn(i, "/bin/sh", fdmap, ["sh", path] + argv[1:])
            self.status[i], self.errors[str(i)] = _spawn_failure(exc, path, self.cwd)
            return
        except ValueError as exc:  # a NUL byte in an argument or in the environment
            self.status[i], self.errors[str(i)] = 126, f"invalid argument: {exc}"
            return
        self.pids[i] = pid
        self.live[pid] = i

    # -- running ---------------------------------------------------------------------------

    def _pump(self, should_stop) -> None:
        global _pidfd_ok
        poller = select.poll()
        for fd in self.readers:
            poller.register(fd, select.POLLIN)
        for fd in self.writers:
            poller.register(fd, select.POLLOUT)
        pidfds: dict[int, int] = {}
        if _pidfd_ok:
            try:
                for pid in self.live:
                    pidfd = os.pidfd_open(pid)
                    pidfds[pidfd] = pid
                    poller.register(pidfd, select.POLLIN)
            except OSError:
                _pidfd_ok = False
                for pidfd in pidfds:
                    poller.unregister(pidfd)
                    os.close(pidfd)
                pidfds.clear()
        try:
            self._loop(poller, pidfds, should_stop)
        finally:
            for pidfd in pidfds:
                os.close(pidfd)

    def _loop(self, poller, pidfds: dict, should_stop) -> None:
        kill_at = None
        next_check = time.monotonic() + POLL_INTERVAL
        while True:
            if not self.live:
                self._children_gone(poller)
                if not self.readers:
                    return
            elif not pidfds and not self.readers and not self.writers and should_stop is None:
                self._reap(block=True)  # nothing to watch but the children: just wait
                continue
            timeout = -1
            if should_stop is not None or kill_at is not None:
                timeout = POLL_INTERVAL * 1000
            if self.live and not pidfds:
                timeout = 50 if timeout < 0 else min(timeout, 50)  # no pidfds: poll for exits
            events = poller.poll(timeout)
            for fd, _ in events:
                if fd in self.readers:
                    self._read(poller, fd)
                elif fd in self.writers:
                    self._write(poller, fd)
                elif fd in pidfds:
                    poller.unregister(fd)
                    if pidfds[fd] in self.live:
                        self._reap_pid(pidfds[fd])
            if not pidfds:
                self._reap(block=False)
            now = time.monotonic()
            if should_stop is not None and not self.stopped and now >= next_check:
                next_check = now + POLL_INTERVAL
                if should_stop():
                    self.stopped = True
                    self.signal_all(signal.SIGTERM)
                    kill_at = now + KILL_GRACE
            if kill_at is not None and now >= kill_at:
                self.signal_all(signal.SIGKILL)
                kill_at = None

    def _children_gone(self, poller) -> None:
        """Every stage has exited: take what they wrote, and stop waiting for descendants."""
        for fd in list(self.writers):
            self._close_writer(poller, fd)
        self._drain(poller)
        # A background descendant (`server &` inside a script) may hold the job's stdout
        # forever; bash would not wait for it, so neither do we, but its later output still
        # reaches the terminal. A `$(...)` capture is read to EOF, as bash does, unless stopped.
        orphans = []
        for fd, key in list(self.readers.items()):
            if key == "capture" and not self.stopped:
                continue
            poller.unregister(fd)
            del self.readers[fd]
            if self.stopped:
                os.close(fd)
            else:
                orphans.append((fd, 1 if key == "out" else 2))
        if orphans:
            _echo_in_background(orphans, self.term)

    def _drain(self, poller) -> None:
        while self.readers:
            events = [ev for ev in poller.poll(0) if ev[0] in self.readers]
            if not events:
                return
            for fd, _ in events:
                self._read(poller, fd)

    def _read(self, poller, fd: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except OSError:
            data = b""
        key = self.readers[fd]
        if not data:
            poller.unregister(fd)
            del self.readers[fd]
            os.close(fd)
            return
        self.chunks[key].append(data)
        if key == "out":
            self.term.write(1, data)
        elif key == "err":
            self.term.write(2, data)

    def _write(self, poller, fd: int) -> None:
        data = self.writers[fd]
        try:
            data = data[os.write(fd, data):]
        except BlockingIOError:
            return
        except OSError:  # EPIPE: the reader exited early (`head`), which is fine
            data = b""
        if data:
            self.writers[fd] = data
        else:
            self._close_writer(poller, fd)

    def _close_writer(self, poller, fd: int) -> None:
        poller.unregister(fd)
        del self.writers[fd]
        os.close(fd)

    def _reap(self, block: bool) -> None:
        for pid in list(self.live):
            self._reap_pid(pid, block)

    def _reap_pid(self, pid: int, block: bool = True) -> None:
        try:
            got, wstatus = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            got, wstatus = pid, 0  # someone else reaped it (SIGCHLD ignored): as Popen does
        if got == 0:
            return
        code = os.waitstatus_to_exitcode(wstatus)
        self.status[self.live.pop(pid)] = 128 - code if code < 0 else code

    def signal_all(self, signum: int) -> None:
        """Signal the stages and everything they started (`sh -c 'sleep 30'`'s sleep too): the
        tree is read first, as a dead parent's children are handed to init."""
        victims = []
        for pid in list(self.live):     # (a stream's reader calls this from its thread)
            victims += [pid, *descendants(pid)]
        for pid in victims:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    # -- ending ----------------------------------------------------------------------------

    def _abort(self) -> None:
        """An exception (Ctrl-C's KeyboardInterrupt) is leaving: leave no child behind."""
        for relay in self.relays.values():
            relay.finish()
        for fd in self.tracked.values():
            os.close(fd)
        self.tracked.clear()
        if not self.live:
            return
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE
        while self.live and time.monotonic() < deadline:
            self._reap(block=False)
            if self.live:
                time.sleep(0.01)
        self.signal_all(signal.SIGKILL)
        self._reap(block=True)

    def _close_all(self) -> None:
        fds = list(self.readers) + list(self.writers) + list(self.sinks.values())
        fds += [fd for link in self.links if link for fd in link if fd is not None]
        if self.devnull is not None:
            fds.append(self.devnull)
        for fd in fds:
            os.close(fd)
        self.links = []
        self.devnull = None
        self.readers.clear()
        self.writers.clear()
        self.sinks.clear()

    def _result(self) -> dict:
        result: dict = {"status": self.status}
        for key, chunks in self.chunks.items():
            if chunks:
                result[key] = decode(b"".join(chunks))
        if self.errors:
            result["errors"] = self.errors
        if self.stopped:
            result["stopped"] = True
        if self.relays:
            result["relayed"] = {key: r.finish() for key, r in self.relays.items()}
        if self.tracked:
            result["offsets"] = {}
            for key, fd in self.tracked.items():
                result["offsets"][key] = os.lseek(fd, 0, os.SEEK_CUR)
                os.close(fd)
            self.tracked.clear()
        return result


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, children before theirs (Linux /proc; empty elsewhere)."""
    out = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        return out
    for kid in kids:
        out += [kid, *descendants(kid)]
    return out


def _close_end(link: list | None, end: int) -> None:
    if link is not None and link[end] is not None:
        os.close(link[end])
        link[end] = None


def _stage_fds(stage: dict, i: int, n: int) -> list:
    """The stage's fd targets as (child fd, target), validated before any I/O happens."""
    fds = {0: {"kind": "term"}, 1: {"kind": "term"}, 2: {"kind": "term"}}
    fds.update({int(k): t for k, t in stage.get("fds", {}).items()})
    for cfd, t in fds.items():
        kind = t.get("kind")
        if kind not in TARGET_KINDS:
            raise ValueError(f"exec stage {i}: fd {cfd}: unknown target kind {kind!r}")
        if kind == "pipe" and (i == 0 if cfd == 0 else i == n - 1):
            raise ValueError(f"exec stage {i}: fd {cfd}: no neighbouring stage to pipe with")
        if kind == "file" and t.get("mode", "r") not in OPEN_FLAGS:
            raise ValueError(f"exec stage {i}: fd {cfd}: bad file mode {t.get('mode')!r}")
    if not stage.get("argv"):
        raise ValueError(f"exec stage {i}: empty argv")
    return sorted(fds.items())


def _reads_pipe(fds: list) -> bool:
    return any(cfd == 0 and t["kind"] == "pipe" for cfd, t in fds)


def _term_stream(cfd: int, target: dict) -> str:
    stream = target.get("fd", cfd if cfd in (1, 2) else 1)
    return "err" if stream == 2 else "out"


def find_program(argv: list, env: dict, cwd: str):
    """(absolute path, None) or (None, (status, message)), searching the stage's own PATH."""
    name = argv[0]
    if not name:
        return None, (127, "command not found")
    if "/" in name:
        return _check_program(resolve(cwd, name))
    denied = None
    for d in env.get("PATH", os.defpath).split(":"):
        candidate = os.path.join(resolve(cwd, d) if d else cwd, name)
        try:
            st = os.stat(candidate)
        except (OSError, ValueError):
            continue
        if stat.S_ISDIR(st.st_mode):
            continue
        if os.access(candidate, os.X_OK):
            return candidate, None
        denied = denied or candidate  # bash reports the first non-executable match
    if denied:
        return None, (126, "permission denied")
    return None, (127, "command not found")


def _check_program(path: str):
    try:
        st = os.stat(path)
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno not in (errno.ENOENT, None):
            return None, (126, os.strerror(exc.errno).lower())
        return None, (127, "no such file or directory")
    if stat.S_ISDIR(st.st_mode):
        return None, (126, "is a directory")
    if not os.access(path, os.X_OK):
        return None, (126, "permission denied")
    return path, None


def _is_text(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return b"\0" not in f.read(256)
    except OSError:
        return False


def _spawn_failure(exc: OSError, path: str, cwd: str):
    """(status, message) for an exec that failed after our own checks passed."""
    if exc.filename == cwd:
        return 1, f"cannot enter {cwd}: {os.strerror(exc.errno).lower()}"
    if exc.errno == errno.ENOEXEC:
        return 126, "cannot execute binary file"
    if exc.errno == errno.ENOENT:
        if os.path.lexists(path):
            return 126, "bad interpreter: no such file or directory"
        return 127, "no such file or directory"
    if exc.errno == errno.EACCES:
        return 126, "permission denied"
    return 126, (os.strerror(exc.errno) if exc.errno else str(exc)).lower()


def _spawn(path: str, argv: list, env: dict, cwd: str, fdmap: dict) -> int:
    """Start one stage and return its pid; raises OSError if it could not be executed."""
    watchdog.ensure(env)  # the job's programs die with this runner (connectors/watchdog.py)
    if (all(fdmap.get(fd, 0) != CLOSED for fd in (0, 1, 2))
            and all(fd <= 2 or src == CLOSED for fd, src in fdmap.items())
            and _getsignal(signal.SIGINT) != signal.SIG_IGN):
        # (_signal's getsignal is the C function signal.getsignal wraps, without turning
        # SIG_IGN into an enum member: 3% of a /bin/true's cost. It returns a plain 1 then.)
        if _posix_spawn_ok(cwd, fdmap):
            return os.posix_spawn(path, argv, env, setsigdef=_POPEN_DEFAULT_SIGNALS,
                                  file_actions=[(os.POSIX_SPAWN_DUP2, src, fd)
                                                for fd, src in sorted(fdmap.items())
                                                if src != CLOSED])
        # Popen vforks too, and can also change directory and close stray fds.
        import subprocess  # lazy: 3 ms of start-up that posix_spawn's jobs never need
        proc = subprocess.Popen(argv, executable=path, cwd=cwd, env=env,
                                stdin=fdmap.get(0, 0), stdout=fdmap.get(1, 1),
                                stderr=fdmap.get(2, 2), close_fds=True)
        proc.returncode = 0  # we reap it ourselves; keeps Popen.__del__ from tracking it
        return proc.pid
    return _spawn_forked(path, argv, env, cwd, fdmap)


# What Popen's restore_signals puts back to the default in its children.
_POPEN_DEFAULT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ")
                               if hasattr(signal, name))
_FD_DIR = "/proc/self/fd"
_posix_spawn_usable = hasattr(os, "posix_spawn") and os.path.isdir(_FD_DIR)
_strays_closed_on_exec = [False]


def _posix_spawn_ok(cwd: str, fdmap: dict) -> bool:
    """Whether os.posix_spawn (vfork and exec in C, about 0.1 ms cheaper than Popen) can
    start this stage exactly as Popen would: the child runs in fm's own directory (it has
    no chdir) and every source fd sits at its target or above 2 (so no dup2 clobbers a later
    source). It cannot close stray fds as Popen's close_fds does, so before the first such
    spawn every inheritable fd above 2 (those fm inherited) is made close-on-exec: fm hands
    its programs fds 0-2 and their redirections, nothing else, either way. Python opens
    every fd close-on-exec, and fm never makes one inheritable, so one sweep suffices (a
    /proc listing per spawn would cost half of what posix_spawn saves)."""
    if not _posix_spawn_usable or any(0 <= src <= 2 and src != fd
                                      for fd, src in fdmap.items()):
        return False
    try:
        if os.getcwd() != cwd:
            return False
    except OSError:
        return False
    if not _strays_closed_on_exec[0]:
        _close_strays_on_exec()
    return True


def _close_strays_on_exec() -> None:
    """Mark every inheritable fd above 2 close-on-exec (see _posix_spawn_ok)."""
    for name in os.listdir(_FD_DIR):
        fd = int(name)
        try:
            if fd > 2 and os.get_inheritable(fd):
                os.set_inheritable(fd, False)
        except OSError:
            pass            # the fd listdir read the directory with, closed since
    _strays_closed_on_exec[0] = True


def _spawn_forked(path: str, argv: list, env: dict, cwd: str, fdmap: dict) -> int:
    """fork+exec for what Popen cannot express: fds above 2, closed std fds, ignored SIGINT.

    These are rare (`3>file`, `>&-`), so the cost of a full fork is acceptable here.
    """
    top = max(max(fdmap), 2) + 1
    temp: list[int] = []  # parent fds to close once the child exists

    def above(fd: int) -> int:
        # Every source sits above every target, so no dup2 below clobbers a later source.
        if fd >= top:
            return fd
        temp.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, top))
        return temp[-1]

    errr = None
    try:
        plan = [(cfd, src if src == CLOSED else above(src)) for cfd, src in fdmap.items()]
        plan += [(cfd, above(cfd)) for cfd in (0, 1, 2) if cfd not in fdmap]
        errr, errw = os.pipe()
        temp.append(errw)
        errw = above(errw)
        keep = sorted({cfd for cfd, src in plan if src != CLOSED} | {errw})
        limit = max(os.sysconf("SC_OPEN_MAX"), keep[-1] + 1)
        argv_b = [encode(a) for a in argv]
        env_b = {encode(k): encode(v) for k, v in env.items()}
        pid = os.fork()
        if pid == 0:  # the child: set up fds and signals, then exec or _exit
            try:
                os.chdir(cwd)
                for cfd, src in plan:
                    if src != CLOSED:
                        os.dup2(src, cfd)  # dup2 leaves the target inheritable
                    else:
                        try:
                            os.close(cfd)
                        except OSError:
                            pass
                low = 3
                for fd in keep:  # close everything else: fm must not leak fds
                    if fd >= low:
                        os.closerange(low, fd)
                        low = fd + 1
                os.closerange(low, limit)
                for signum in CHILD_DEFAULT_SIGNALS:
                    signal.signal(signum, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, ())
                os.execve(path, argv_b, env_b)
            except OSError as exc:
                os.write(errw, b"%d %d" % (exc.errno or 0, int(exc.filename == cwd)))
            except BaseException:
                os.write(errw, b"0 0")
            finally:
                os._exit(127)
    except BaseException:
        if errr is not None:
            os.close(errr)
        raise
    finally:
        for fd in temp:
            os.close(fd)
    try:
        report = b""
        while chunk := os.read(errr, 64):  # EOF without a report: exec succeeded (CLOEXEC)
            report += chunk
    finally:
        os.close(errr)
    if report:
        os.waitpid(pid, 0)
        code, in_cwd = (int(x) for x in report.split())
        raise OSError(code, os.strerror(code), cwd if in_cwd else path)
    return pid


def _echo_in_background(fds: list, term: Term) -> None:
    """Keep echoing output of descendants that outlive the pipeline, until they close it."""
    def pump() -> None:
        poller = select.poll()
        streams = dict(fds)
        for fd in streams:
            poller.register(fd, select.POLLIN)
        while streams:
            for fd, _ in poller.poll():
                try:
                    data = os.read(fd, READ_SIZE)
                except OSError:
                    data = b""
                if data:
                    term.write(streams[fd], data)
                else:
                    poller.unregister(fd)
                    del streams[fd]
                    os.close(fd)

    threading.Thread(target=pump, name="fm-orphan-output", daemon=True).start()
