"""File effects: redirect opens, builtin output, reads (`read_file`, `read_chunk`, `read_line`),
globbing, file tests, `cd`, homes."""
from __future__ import annotations

import errno
import glob as _glob
import os
import select
import stat

from .term import Term

ENCODING = "utf-8"
ERRORS = "surrogateescape"  # bytes that are not UTF-8 survive a round trip through str

# Open flags for a redirect mode, as bash opens them: `<>` creates but never truncates.
OPEN_FLAGS = {
    "r": os.O_RDONLY,
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    "rw": os.O_RDWR | os.O_CREAT,
}


def resolve(cwd: str | None, path: str) -> str:
    """An absolute path for `path` as seen from the job's logical cwd.

    The empty path stays empty so that the syscall fails with ENOENT, as in bash, instead of
    silently naming the cwd itself.
    """
    if not path or os.path.isabs(path) or not cwd:
        return path
    return os.path.join(cwd, path)


def decode(data: bytes) -> str:
    return data.decode(ENCODING, ERRORS)


def encode(text: str) -> bytes:
    return text.encode(ENCODING, ERRORS)


def strerror(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


def open_error(display: str, exc: OSError) -> str:
    return f"cannot open {display}: {strerror(exc)}"


def _display(req: dict, path: str) -> str:
    return req.get("display") or path


def do_open(req: dict, term: Term, token=None) -> dict:
    """Truncate/create a redirect target, or check it can be opened."""
    mode = req.get("mode", "w")
    path = resolve(req.get("cwd"), req["path"])
    # O_NONBLOCK: only checking, so a FIFO must not block the runner until a peer shows up.
    flags = OPEN_FLAGS[mode] | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        os.close(os.open(path, flags, 0o666))
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return {}  # a FIFO without a reader yet: the real write will wait for one
        return {"error": open_error(_display(req, req["path"]), exc)}
    return {}


def do_write(req: dict, term: Term, token=None) -> dict:
    """Output of a builtin: to the job's stdout/stderr (echoed and journaled) or into a file."""
    target = req["target"]
    data = req.get("data", "")
    if target["kind"] == "term":
        stream = int(target.get("fd", 1))
        stream = 2 if stream == 2 else 1
        term.write(stream, encode(data))
        if not data:
            return {}
        return {"out": data} if stream == 1 else {"err": data}
    if target["kind"] != "file":
        raise ValueError(f"write: bad target kind {target['kind']!r}")
    path = _write_path(req)
    mode = target.get("mode", "a")
    try:
        fd = os.open(path, OPEN_FLAGS[mode] | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        return {"error": open_error(_display(target, target["path"]), exc)}
    payload = encode(data)
    already = 0
    try:
        at = req.get("at")
        if isinstance(at, dict) and mode == "a":
            already = _already_written(fd, path, at, payload)
        _write_all(fd, payload[already:])
    except OSError as exc:
        return {"error": f"write error: {_display(target, target['path'])}: {strerror(exc)}"}
    finally:
        os.close(fd)
    return {"already": already} if already else {}


def _write_path(req: dict) -> str:
    target = req["target"]
    return resolve(target.get("cwd") or req.get("cwd"), target["path"])


def write_mark(req: dict) -> dict | None:
    """Before a builtin's append to a file is first performed: the file's size and identity
    (`{"size", "dev", "ino"}`; `{"size": 0}` while it does not exist), so that a run of it
    again after a crash can tell whether its bytes are already there. None for what a
    repeat cannot double (the term, a truncating write) or cannot check (a FIFO, a device:
    written again, at-least-once)."""
    target = req.get("target") or {}
    if target.get("kind") != "file" or target.get("mode", "a") != "a":
        return None
    try:
        st = os.stat(_write_path(req))
    except FileNotFoundError:
        return {"size": 0}
    except (OSError, ValueError):
        return None       # the write will fail the same way: nothing to double
    if not stat.S_ISREG(st.st_mode):
        return None
    return {"size": st.st_size, "dev": st.st_dev, "ino": st.st_ino}


def _already_written(fd: int, path: str, at: dict, payload: bytes) -> int:
    """How many leading bytes of `payload` an interrupted first run of this append already
    wrote: the file is the one it was (same dev/ino; any file if it did not exist then) and
    holds them at the offset noted before (`at["size"]`): all of them, or a prefix that ends
    the file (a write cut short). 0 otherwise: the write happens in full (at-least-once when
    someone else appended meanwhile, so the bytes are not where fm expects them)."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        return 0
    if "ino" in at and (st.st_dev, st.st_ino) != (at.get("dev"), at.get("ino")):
        return 0          # replaced (rotated, recreated) since: this file never had them
    size = at.get("size")
    if not isinstance(size, int) or size < 0 or st.st_size <= size:
        return 0
    try:
        rfd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return 0          # write-only for us: cannot check, so write (at-least-once)
    try:
        rst = os.fstat(rfd)
        if (rst.st_dev, rst.st_ino) != (st.st_dev, st.st_ino):
            return 0      # renamed over between the two opens
        there = _pread_full(rfd, len(payload), size)[0]
    finally:
        os.close(rfd)
    if there == payload:
        return len(payload)
    if payload.startswith(there) and size + len(there) == st.st_size:
        return len(there)  # cut short at the end of the file: complete it
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def do_read_file(req: dict, term: Term, token=None) -> dict:
    """The whole content of a file, for `< file` into fm code, `source` and mapfile."""
    path = resolve(req.get("cwd"), req["path"])
    display = _display(req, req["path"])
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        return {"error": open_error(display, exc)}
    chunks = []
    try:
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError as exc:  # EISDIR: open(2) accepts a directory, read(2) refuses it
        return {"error": f"cannot read {display}: {strerror(exc)}"}
    finally:
        os.close(fd)
    return {"data": decode(b"".join(chunks))}


CHUNK = 1 << 16
"""Bytes a `read_chunk` request reads when it does not say (`size`)."""


def do_read_chunk(req: dict, term: Term, token=None) -> dict:
    """Up to `size` bytes of a file from byte offset `off`: how `read`, `mapfile` and other
    builtins read a `< file` redirect of fm code (the machine splits the lines and keeps the
    offset). Nothing is consumed: the file is opened, read with pread and closed.

    `eof` is set when the end of the file was reached. Unless it was, a chunk never ends inside
    a UTF-8 sequence (the bytes of an incomplete one are left for the next chunk), so chunks
    decode and join like the whole file. `end` is the byte offset just after the data. A file
    that cannot seek (a FIFO, a terminal) gets one read(2), without `end`: what is there (a
    terminal gives a line), `eof` when that is nothing.
    """
    path = resolve(req.get("cwd"), req["path"])
    display = _display(req, req["path"])
    size = max(int(req.get("size") or CHUNK), 4)
    off = max(int(req.get("off") or 0), 0)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        return {"error": open_error(display, exc), "data": "", "eof": True}
    try:
        try:
            data, eof = _pread_full(fd, size, off)
        except OSError as exc:
            if exc.errno != errno.ESPIPE:
                raise
            data = _read_some(fd, size)     # what is there: a terminal gives one line
            return {"data": decode(data), "eof": True} if not data else {"data": decode(data)}
    except OSError as exc:  # EISDIR: open(2) accepts a directory, read(2) refuses it
        return {"error": f"read error: {display}: {strerror(exc)}", "data": "", "eof": True}
    finally:
        os.close(fd)
    if not eof:
        data = data[:_utf8_complete(data)]
    res = {"data": decode(data), "end": off + len(data)}
    if eof:
        res["eof"] = True
    return res


def _pread_full(fd: int, size: int, off: int) -> tuple[bytes, bool]:
    """`size` bytes from `off` (fewer only at the end of the file: then True)."""
    parts = []
    got = 0
    while got < size:
        chunk = os.pread(fd, size - got, off + got)
        if not chunk:
            return b"".join(parts), True
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts), False


def _utf8_complete(data: bytes) -> int:
    """The length of `data` without a UTF-8 sequence cut off at its end."""
    n = len(data)
    for k in range(1, min(4, n) + 1):
        c = data[n - k]
        if c < 0x80:
            return n
        if c >= 0xC0:                       # the lead byte of the last sequence
            need = 2 if c < 0xE0 else 3 if c < 0xF0 else 4
            return n - k if need > k else n
    return n


def do_read_line(req: dict, term: Term, token=None) -> dict:
    """One line of the job's stdin, consuming nothing past the delimiter (like bash `read`).

    A later external command inherits the same stdin, so bytes read past the delimiter would
    be lost to it: a seekable fd is read in blocks and rewound, anything else byte by byte.
    """
    delim = req.get("delim", "\n")
    delim_b = encode(delim) if delim else b"\0"  # bash: `read -d ''` stops at NUL
    if "path" in req:
        # A `< file` redirect of fm code: read at the offset the machine keeps, report the new
        # one (the machine's state holds the offset, not an open fd).
        try:
            fd = os.open(resolve(req.get("cwd"), req["path"]), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            return {"line": None, "error": open_error(_display(req, req["path"]), exc)}
        try:
            os.lseek(fd, int(req.get("off", 0)), os.SEEK_SET)
            line, found = _read_until(fd, delim_b)
            off = os.lseek(fd, 0, os.SEEK_CUR)
        except OSError as exc:
            return {"line": None, "error": f"read error: {strerror(exc)}"}
        finally:
            os.close(fd)
        res = {"line": decode(line) if (found or line) else None, "off": off}
        if line and not found:
            res["eof"] = True
        return res
    fd = term.fd_for(int(req.get("fd", 0)))
    if fd is None:
        return {"line": None}
    if "timeout" in req or "max" in req or req.get("silent"):
        return _read_line_with(fd, delim_b, req)
    try:
        line, found = _read_until(fd, delim_b)
    except OSError as exc:
        return {"line": None, "error": f"read error: {strerror(exc)}"}
    if found:
        return {"line": decode(line)}
    if line:
        return {"line": decode(line), "eof": True}
    return {"line": None}


def _read_until(fd: int, delim: bytes) -> tuple[bytes, bool]:
    try:
        os.lseek(fd, 0, os.SEEK_CUR)
        seekable = True
    except OSError:
        seekable = False
    buf = bytearray()
    while True:
        chunk = _read_some(fd, 4096 if seekable else 1)
        if not chunk:
            return bytes(buf), False
        start = max(0, len(buf) - len(delim) + 1)
        buf += chunk
        at = buf.find(delim, start)
        if at >= 0:
            excess = len(buf) - (at + len(delim))
            if excess:
                os.lseek(fd, -excess, os.SEEK_CUR)
            return bytes(buf[:at]), True


def _read_line_with(fd: int, delim: bytes, req: dict) -> dict:
    """`read -n N` / `-N N` (`max` characters; `exact`: the delimiter does not end it),
    `-t SECONDS` (`timeout`: what was read so far comes back with `"expired": true`; 0 only
    asks whether input is waiting) and `-s` (`silent`: a terminal does not echo). One byte
    at a time, so nothing past what is taken is consumed."""
    import time
    timeout = req.get("timeout")
    if timeout is not None and timeout <= 0:
        ready = select.select([fd], [], [], 0)[0]
        return {"line": "", "ready": bool(ready)}
    deadline = None if timeout is None else time.monotonic() + timeout
    limit, exact = req.get("max"), req.get("exact", False)
    buf, nchars = bytearray(), 0
    with _no_echo(fd if req.get("silent") else None):
        while limit is None or nchars < limit or _partial_char(buf):
            if deadline is not None and not select.select(
                    [fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                return {"line": decode(bytes(buf)), "expired": True}
            try:
                b = _read_some(fd, 1)
            except OSError as exc:
                return {"line": None, "error": f"read error: {strerror(exc)}"}
            if not b:
                return {"line": decode(bytes(buf)), "eof": True} if buf else {"line": None}
            buf += b
            if not exact and buf.endswith(delim):
                return {"line": decode(bytes(buf[:-len(delim)]))}
            nchars += (b[0] & 0xC0) != 0x80
    return {"line": decode(bytes(buf)), "short": True}


def _partial_char(buf: bytearray) -> bool:
    """The buffer ends inside a UTF-8 character."""
    for back in range(1, min(4, len(buf)) + 1):
        lead = buf[-back]
        if lead & 0xC0 != 0x80:
            need = 4 if lead >= 0xF0 else 3 if lead >= 0xE0 else 2 if lead >= 0xC0 else 1
            return need > back
    return False


class _no_echo:
    """Turn a terminal's echo off for the duration (`read -s`); a no-op for anything else."""

    def __init__(self, fd):
        self.fd, self.saved = fd, None

    def __enter__(self):
        if self.fd is not None and os.isatty(self.fd):
            import termios
            self.saved = termios.tcgetattr(self.fd)
            quiet = list(self.saved)
            quiet[3] &= ~termios.ECHO
            termios.tcsetattr(self.fd, termios.TCSANOW, quiet)
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            import termios
            termios.tcsetattr(self.fd, termios.TCSANOW, self.saved)


def _read_some(fd: int, n: int) -> bytes:
    while True:
        try:
            return os.read(fd, n)
        except BlockingIOError:
            select.select([fd], [], [])  # a tty left in O_NONBLOCK: wait for input


def do_glob(req: dict, term: Term, token=None) -> dict:
    """Pathname expansion as bash does it by default: `**` is not recursive, dotfiles only
    match a segment that starts with a dot, `.` and `..` never (bash 5.2 globskipdots)."""
    pattern = req["pattern"]
    root = req.get("cwd") if not os.path.isabs(pattern) else None
    try:
        matches = _glob.glob(pattern, root_dir=root, recursive=False)
    except OSError:
        matches = []
    return {"matches": sorted(matches)}


def do_cd(req: dict, term: Term, token=None) -> dict:
    """The new logical cwd, normalised like bash's default `cd -L`."""
    cwd = req.get("cwd") or "/"
    path = req["path"]
    if path == "":
        return {"cwd": cwd}  # bash: `cd ""` changes nothing
    logical = os.path.normpath(os.path.join(cwd, path))
    error = _dir_error(logical)
    if error is None:
        return {"cwd": logical}
    # bash retries physically when `..` over a symlink leads nowhere logically.
    physical = os.path.realpath(os.path.join(os.path.realpath(cwd), path))
    if physical != logical and _dir_error(physical) is None:
        return {"cwd": physical}
    return {"error": f"cd: {_display(req, path)}: {error}"}


def do_realpath(req: dict, term: Term, token=None) -> dict:
    """The physical path of a directory (for `pwd -P`, `cd -P`)."""
    return {"path": os.path.realpath(resolve(req.get("cwd"), req["path"]))}


def do_home(req: dict, term: Term, token=None) -> dict:
    """`~user`: the home directory of `user` in the user database, or None (no such user)."""
    import pwd  # only ~user needs it
    try:
        return {"home": pwd.getpwnam(req["user"]).pw_dir}
    except (KeyError, ValueError):   # no such user; a NUL byte or lone surrogate in the name
        return {"home": None}


def _dir_error(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError as exc:
        return strerror(exc)
    if not stat.S_ISDIR(st.st_mode):
        return os.strerror(errno.ENOTDIR)
    if not _access(path, os.X_OK):
        return os.strerror(errno.EACCES)  # chdir(2) needs search permission
    return None


def _access(path: str, mode: int) -> bool:
    # bash tests with the effective ids (eaccess), which matters for setuid callers.
    if os.access in os.supports_effective_ids:
        return os.access(path, mode, effective_ids=True)
    return os.access(path, mode)


def _stat(path: str, follow: bool = True) -> os.stat_result | None:
    try:
        return os.stat(path) if follow else os.lstat(path)
    except (OSError, ValueError):
        return None


def _mode_test(check):
    def test(path: str) -> bool:
        st = _stat(path)
        return st is not None and check(st)
    return test


UNARY_TESTS = {
    "-e": _mode_test(lambda st: True),
    "-f": _mode_test(lambda st: stat.S_ISREG(st.st_mode)),
    "-d": _mode_test(lambda st: stat.S_ISDIR(st.st_mode)),
    "-s": _mode_test(lambda st: st.st_size > 0),
    "-p": _mode_test(lambda st: stat.S_ISFIFO(st.st_mode)),
    "-S": _mode_test(lambda st: stat.S_ISSOCK(st.st_mode)),
    "-b": _mode_test(lambda st: stat.S_ISBLK(st.st_mode)),
    "-c": _mode_test(lambda st: stat.S_ISCHR(st.st_mode)),
    "-g": _mode_test(lambda st: bool(st.st_mode & stat.S_ISGID)),
    "-u": _mode_test(lambda st: bool(st.st_mode & stat.S_ISUID)),
    "-k": _mode_test(lambda st: bool(st.st_mode & stat.S_ISVTX)),
    "-O": _mode_test(lambda st: st.st_uid == os.geteuid()),
    "-G": _mode_test(lambda st: st.st_gid == os.getegid()),
    "-N": _mode_test(lambda st: st.st_atime_ns <= st.st_mtime_ns),
    "-r": lambda p: _stat(p) is not None and _access(p, os.R_OK),
    "-w": lambda p: _stat(p) is not None and _access(p, os.W_OK),
    "-x": lambda p: _stat(p) is not None and _access(p, os.X_OK),
    "-L": lambda p: (st := _stat(p, follow=False)) is not None and stat.S_ISLNK(st.st_mode),
}
UNARY_TESTS["-h"] = UNARY_TESTS["-L"]


def _newer(a: str, b: str) -> bool:
    # bash: true also when only the first file exists.
    sa, sb = _stat(a), _stat(b)
    if sa is None:
        return False
    return sb is None or sa.st_mtime_ns > sb.st_mtime_ns


def _same_file(a: str, b: str) -> bool:
    sa, sb = _stat(a), _stat(b)
    return sa is not None and sb is not None and (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


BINARY_TESTS = {
    "-nt": _newer,
    "-ot": lambda a, b: _newer(b, a),
    "-ef": _same_file,
}


def do_test(req: dict, term: Term, token=None) -> dict:
    """A file test of `[ ]` / `[[ ]]` / `test`."""
    op = req["test"]
    cwd = req.get("cwd")
    if op == "-t":
        try:
            stream = int(req["path"])
        except (TypeError, ValueError):
            return {"result": False}
        return {"result": term.isatty(stream)}
    if op in BINARY_TESTS:
        return {"result": BINARY_TESTS[op](resolve(cwd, req["path"]), resolve(cwd, req["path2"]))}
    if op in UNARY_TESTS:
        return {"result": UNARY_TESTS[op](resolve(cwd, req["path"]))}
    raise ValueError(f"test: unknown file test {op!r}")
