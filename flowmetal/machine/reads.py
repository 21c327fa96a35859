"""The builtins that read: `read`, `mapfile`/`readarray`, and the input they share."""
from __future__ import annotations

from flowmetal.machine.builtins import Call, builtin, with_options

CHUNK = 1 << 16
"""Bytes per `read_chunk` effect when `read` needs more of a `< file` (a line is split off in
the machine; the rest stays in the fd's target for the next `read`)."""

BIG_CHUNK = 1 << 20
"""Bytes per `read_chunk` effect when a builtin takes all of its input (mapfile, json)."""


STREAM_CHUNK = 1 << 12
"""Bytes per `stream_read` effect at most (whatever the producer has written, up to this): the
text read ahead is what a program started inside the loop gets, and its request carries it."""


def _nbytes(text: str) -> int:
    """The length in bytes of text read from a file (UTF-8, surrogateescape)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogateescape"))


def consumed_chars(text: str, nbytes: int) -> int:
    """How many characters of `text` a program consumed by reading `nbytes` of its bytes (a
    cut inside a character rounds down: that character is still unread)."""
    if text.isascii():
        return min(nbytes, len(text))
    head = text.encode("utf-8", "surrogateescape")[:nbytes].decode("utf-8", "surrogateescape")
    while head and not text.startswith(head):
        head = head[:-1]          # a cut sequence decodes as escapes: drop them
    return len(head)


class Input:
    """A builtin's input fd (`0`, or `-u N`) as a source of lines.

    In-memory input (here-documents, fm-code pipeline stages) is read where it lies; a stream
    (an external producer feeding fm code) in `stream_read` chunks kept in its holder; the
    terminal one line per `read_line` effect (a tty delivers lines, and nothing past the
    delimiter may be consumed: a later program reads the same stdin); a `< file` of fm code in
    chunks (`read_chunk`), whose unconsumed rest stays in the file target (`buf` from position
    `bp`, valid while the target's `off` is still `bo`) so the next `read` needs no effect.
    The target's `off` is always the *logical* position (the start of the unconsumed text): a
    program started with that fd gets the file from there, as bash seeks back before running
    it, and if it moves the offset (the exec result's `offsets`) the buffer is stale and read
    again from the new offset.

    A builtin re-runs from the top after each effect, so the reading happens on a private view
    of the target, and `commit()` writes it back once all effects are in."""

    def __init__(self, c: Call, fd: str = "0"):
        self.c = c
        vm = c.vm
        t = vm.fds().get(fd) or {"kind": "closed"}
        self.t = t
        self.kind = k = t["kind"]
        self.eof = False
        self.error = None
        self.extra = {}                 # read_line fields: `read -t` (timeout), `-s` (silent)
        self.timed_out = False
        self.buf, self.bp = "", 0
        if k == "data":
            self.holder = t
        elif k in ("bufin", "stream"):
            self.holder = vm.state["bufs"].get(t["id"]) or {"d": "", "p": 0}
        if k in ("data", "bufin", "stream"):
            self.buf, self.bp = self.holder["d"], self.holder["p"]
            self.eof = k != "stream" or "s" not in self.holder or bool(self.holder.get("eof"))
            self.got = self.holder.get("n", 0)       # a stream's bytes received so far
            self.statuses = None
        elif k == "file":
            self.off = t.get("off", 0)
            self.end = None                 # byte offset just after buf (known after a read)
            if "buf" in t:
                self._resume_buffer(t)
        elif k != "term":
            self.eof = True                 # closed, an output buffer: nothing to read

    def _resume_buffer(self, t: dict):
        """Take up the text read ahead: as it is while the offset is where it was left; when a
        program has read on from there (`head -n1` inside the loop), the part after its new
        offset; else (it moved back, or past the buffer) none of it."""
        buf, bp, bo, off = t["buf"], t.get("bp", 0), t.get("bo"), self.off
        if bo == off:
            self.buf, self.bp = buf, bp
            return
        if bo is None or off < bo:
            return
        skip = off - bo
        if buf.isascii():
            if bp + skip <= len(buf):
                self.buf, self.bp = buf, bp + skip
            return
        data = buf[bp:].encode("utf-8", "surrogateescape")
        if skip <= len(data):
            self.buf = data[skip:].decode("utf-8", "surrogateescape")

    def _chunk(self, size: int) -> str:
        """The next chunk of the file after what is buffered ("" at its end)."""
        if self.kind == "stream":
            return self._stream_chunk()
        t, vm = self.t, self.c.vm
        if self.end is None:
            self.end = self.off + _nbytes(self.buf[self.bp:])
        res = self.c.effect({"op": "read_chunk", "path": t["path"], "off": self.end,
                             "size": size, "cwd": vm.br["cwd"],
                             "display": t.get("display", t["path"])})
        data = res.get("data") or ""
        if res.get("error"):
            self.error = res["error"]
        if not data or res.get("eof") or res.get("error"):
            self.eof = True
        self.end = res.get("end", self.end + _nbytes(data))
        return data

    def _stream_chunk(self) -> str:
        """The next text of a stream. A stream started before a crash is gone with the runner
        that held it: it is started again, skipping the bytes already received."""
        h = self.holder
        read = {"op": "stream_read", "sid": h["s"], "size": STREAM_CHUNK}
        res = self.c.effect(read)
        if res.get("gone"):
            self.c.effect(dict(h["q"], skip=self.got))
            res = self.c.effect(read)
        data = res.get("data") or ""
        if res.get("eof") or res.get("gone") or res.get("error"):
            self.eof = True
        if isinstance(res.get("status"), list):
            self.statuses = res["status"]         # its stages had exited: kept for the close
        self.got += _nbytes(data)
        return data

    def line(self, delim: str):
        """The next line as (text, complete), without its delimiter ("" is NUL), or None at
        the end of the input."""
        if self.kind == "term":
            return self._term_line(delim, self.extra)
        d = delim or "\0"
        while True:
            buf, bp = self.buf, self.bp
            j = buf.find(d, bp)
            if j >= 0:
                self.bp = j + len(d)
                if self.kind == "file":
                    self.off += _nbytes(buf[bp:self.bp])
                return buf[bp:j], True
            if self.eof:
                if bp >= len(buf):
                    return None
                self.bp = len(buf)
                text = buf[bp:]
                if self.kind == "file":
                    self.off += _nbytes(text)
                return text, False
            data = self._chunk(CHUNK)
            self.buf, self.bp = buf[bp:] + data, 0

    def _term_line(self, delim: str, extra=None):
        if self.eof:
            return None
        req = {"op": "read_line", "fd": 0, "delim": delim}
        if extra:
            req.update(extra)
        res = self.c.effect(req)
        line = res.get("line")
        if res.get("error"):
            self.error = res["error"]
        self.timed_out = bool(res.get("expired"))
        if line is None or res.get("eof"):
            self.eof = True
        if line is None:
            return None
        return line, not res.get("eof")

    def chars(self, n: int, delim: str, exact: bool):
        """Up to `n` characters, ending early at the delimiter unless `exact` (`read -n`,
        `read -N`): (text, complete) without the delimiter, or None at the end."""
        if self.kind == "term":
            return self._term_line(delim, {"max": n, "exact": exact, **self.extra})
        d = delim or "\0"
        while True:
            buf, bp = self.buf, self.bp
            window = buf[bp:bp + n]
            j = -1 if exact else window.find(d)
            if j >= 0 or len(window) >= n or self.eof:
                if not window and self.eof:
                    return None
                taken = j + len(d) if j >= 0 else len(window)
                self._consume(taken)
                return (window[:j] if j >= 0 else window), j >= 0 or len(window) >= n
            data = self._chunk(CHUNK)
            self.buf, self.bp = buf[bp:] + data, 0

    def _consume(self, k: int):
        if self.kind == "file":
            self.off += _nbytes(self.buf[self.bp:self.bp + k])
        self.bp += k

    def ready(self) -> bool:
        """`read -t 0`: whether input is waiting (in memory or a file: unless at its end)."""
        if self.kind == "term":
            return bool(self.c.effect({"op": "read_line", "fd": 0, "delim": "\n",
                                       "timeout": 0}).get("ready"))
        if self.bp < len(self.buf):
            return True
        if self.eof:
            return False
        data = self._chunk(CHUNK)
        self.buf, self.bp = self.buf[self.bp:] + data, 0
        return bool(data)

    def rest(self) -> str:
        """All of the input that is left."""
        if self.kind == "term":
            parts = []
            while (got := self._term_line("")) is not None:
                parts.append(got[0] + ("\0" if got[1] else ""))
            return "".join(parts)
        parts = [self.buf[self.bp:]]
        if self.kind in ("file", "stream"):
            while not self.eof:
                parts.append(self._chunk(BIG_CHUNK))
            if self.kind == "file" and self.end is not None:
                self.off = self.end
        self.buf, self.bp = "", 0
        return "".join(parts)

    def commit(self):
        """Write the reading position back into the state (after the builtin's effects)."""
        k = self.kind
        if k == "file":
            _set_file_pos(self.c.vm, self.t, self.off, self.buf, self.bp)
        elif k == "bufin":
            self.holder["p"] = self.bp
        elif k == "data":
            set_data_pos(self.c.vm, self.t, self.bp)
        elif k == "stream" and "s" in self.holder:
            buf, bp = self.buf, self.bp
            if bp > len(buf) >> 1:            # keep what snapshots copy small
                buf, bp = buf[bp:], 0
            h = self.holder
            h["d"], h["p"], h["n"] = buf, bp, self.got
            if self.eof:
                h["eof"] = 1
            if self.statuses is not None:
                h["st"] = self.statuses


def set_data_pos(vm, t: dict, p: int):
    """Set a here-document's reading position on every copy of its target (as _set_file_pos
    does for files: after a resume from a snapshot, the layers hold separate copies)."""
    t["p"] = p
    if t.get("id") is None:
        return
    for layer in vm.br["io"]:
        for u in layer["fds"].values():
            if u["kind"] == "data" and u.get("id") == t["id"]:
                u["p"] = p


def _set_file_pos(vm, t: dict, off: int, buf: str, bp: int):
    """Set a file target's logical offset and read-ahead text (none when bp is at its end), on
    every copy of the target in the fd table: `<&3` shares it, and after a resume from a
    snapshot the copies are separate dicts (finish_exec updates `offsets` the same way)."""
    if bp >= len(buf):
        t["off"] = off
        if "buf" in t:
            del t["buf"], t["bp"], t["bo"]
    else:
        if bp > len(buf) >> 1:              # keep what snapshots copy small; O(1) amortised
            buf, bp = buf[bp:], 0
        t["off"] = t["bo"] = off
        t["buf"] = buf
        t["bp"] = bp
    tid = t["id"]
    for layer in vm.br["io"]:
        for u in layer["fds"].values():
            if u is not t and u["kind"] == "file" and u.get("id") == tid:
                for key in ("buf", "bp", "bo"):
                    u.pop(key, None)
                u.update((key, t[key]) for key in ("off", "buf", "bp", "bo") if key in t)


def read_all_stdin(c: Call) -> str:
    """The rest of the command's stdin, as one string."""
    inp = Input(c)
    text = inp.rest()
    inp.commit()
    return text


def _fd_arg(c: Call, v: str):
    """The fd of `-u N`, or None after reporting a bad one."""
    if not v.isdigit() or c.vm.fds().get(v, {"kind": "closed"})["kind"] == "closed":
        c.err(f"fm: {c.argv[0]}: {v}: invalid file descriptor specification\n")
        return None
    return v


@builtin("read")
@with_options
def b_read(c, opts, names):
    fd = _fd_arg(c, opts["u"]) if "u" in opts else "0"
    if fd is None:
        return c.fail(f"read: {opts['u']}: invalid file descriptor specification")
    n_opt = opts.get("N", opts.get("n"))
    if n_opt is not None and not n_opt.isdigit():
        return c.fail(f"read: {n_opt}: invalid number", 2)
    timeout = _timeout_arg(opts.get("t"))
    if timeout is False:
        return c.fail(f"read: {opts['t']}: invalid timeout specification", 2)
    inp = Input(c, fd)
    if timeout == 0:
        return 0 if inp.ready() else 1
    if inp.kind == "term":
        inp.extra = {k: v for k, v in (("timeout", timeout), ("silent", "s" in opts)) if v}
        if "p" in opts:
            _prompt(c, opts["p"])
    delim = opts["d"][:1] if "d" in opts else "\n"
    if n_opt is not None:
        got = inp.chars(int(n_opt), delim, "N" in opts)
        got, complete = got if got is not None else (None, False)
    else:
        got, complete = _read_line(inp, delim, "r" in opts)
    inp.commit()
    if inp.error:
        c.err(f"fm: read: {inp.error}\n")
    _assign(c, opts, names, got)
    if inp.timed_out:
        return 142                   # bash: 128 + SIGALRM, with what was read assigned
    return 0 if got is not None and complete else 1


def _timeout_arg(v):
    """`read -t`'s seconds (None without it; False when it is not a number)."""
    if v is None:
        return None
    try:
        t = float(v)
    except ValueError:
        return False
    return t if t >= 0 and t == t else False


def _prompt(c: Call, text: str):
    """`read -p`: bash shows the prompt on stderr only when the input is a terminal."""
    from flowmetal.machine.cond import file_test
    if text and file_test(c.vm, c.f, "-t", "0"):
        req = c.vm.write_to(c.vm.fds().get("2"), text)
        if req is not None and req["target"]["kind"] in ("term", "file"):
            c.effect(req)


def _read_line(inp, delim: str, raw: bool):
    """A line, joined with the next while it ends in an unescaped backslash (without -r)."""
    got, complete = None, False
    while (item := inp.line(delim)) is not None:
        line, complete = item
        got = line if got is None else got[:-1] + line    # a continued line: drop the `\`
        if raw or not complete or delim != "\n" or not got.endswith("\\"):
            break
        if (len(got) - len(got.rstrip("\\"))) % 2 == 0:
            break
    return got, complete


def _assign(c: Call, opts: dict, names: list, got):
    """Split what `read` got into its variables (or the array of -a, or REPLY)."""
    vm = c.vm
    line = got or ""
    if "r" not in opts:
        line = _unescape(line)
    if "a" in opts:
        ifs = _ifs(vm)
        vm.set_array(opts["a"], _split_ifs(line, ifs, None) if got is not None else [],
                     span=c.span)
        return
    if not names or "N" in opts and len(names) == 1:
        vm.assign_named(names[0] if names else "REPLY", line, span=c.span)
        return
    parts = _split_ifs(line, _ifs(vm), len(names)) if got is not None else []
    for k, n in enumerate(names):
        vm.assign_named(n, parts[k] if k < len(parts) else "", span=c.span)


def _ifs(vm) -> str:
    ifs = vm.get("IFS")
    return " \t\n" if ifs is None else ifs


def _unescape(line: str) -> str:
    """`read` without -r: a backslash escapes the next character and is dropped."""
    if "\\" not in line:
        return line
    out, k = [], 0
    while k < len(line):
        ch = line[k]
        if ch == "\\" and k + 1 < len(line):
            out.append(line[k + 1])
            k += 2
            continue
        if ch != "\\":
            out.append(ch)
        k += 1
    return "".join(out)


_IFS_SEPS: dict = {}      # IFS -> (its whitespace, its other characters, separator regex)


def _ifs_sep(ifs: str):
    got = _IFS_SEPS.get(ifs)
    if got is None:
        import re
        ws = "".join(ch for ch in ifs if ch in " \t\n")
        nonws = "".join(ch for ch in ifs if ch not in " \t\n")
        w = "[" + re.escape(ws) + "]*" if ws else ""
        if nonws:
            sep = w + "[" + re.escape(nonws) + "]" + w
            if ws:
                sep = "(?:" + sep + "|[" + re.escape(ws) + "]+)"
        else:
            sep = "[" + re.escape(ws) + "]+"
        got = _IFS_SEPS[ifs] = (ws, nonws, re.compile(sep))
    return got


def _split_ifs(line: str, ifs: str, maxsplit):
    """Split a line into at most `maxsplit` fields by IFS, as bash's `read` does: IFS
    whitespace runs are one separator and are trimmed at both ends; the last field keeps the
    rest of the line, less one trailing delimiter when that rest is a single field (`IFS=:
    read a b <<< x:y:` sets b to `y`, as in bash and POSIX)."""
    if not ifs:
        return [line]
    ws, nonws, sep = _ifs_sep(ifs)
    if ws:
        line = line.strip(ws)
    if not line:
        return []
    if maxsplit is None:
        parts = sep.split(line)
        if nonws and parts and parts[-1] == "":
            parts.pop()
        return parts
    parts = [line] if maxsplit <= 1 else sep.split(line, maxsplit=maxsplit - 1)
    if nonws and len(parts) == maxsplit:
        last = parts[-1]
        if last and last[-1] in nonws:
            head = last[:-1].rstrip(ws) if ws else last[:-1]
            if not any(ch in head for ch in ifs):
                parts[-1] = head
    return parts


@builtin("mapfile", "readarray")
@with_options
def b_mapfile(c, opts, names):
    strip, delim = "t" in opts, opts["d"][:1] if "d" in opts else "\n"
    name = names[0] if names else "MAPFILE"
    fd = _fd_arg(c, opts["u"]) if "u" in opts else "0"
    if fd is None:
        return c.fail(f"{c.argv[0]}: {opts['u']}: invalid file descriptor specification")
    numbers = {}
    for k, what in (("n", "line count"), ("s", "line count"), ("O", "array origin")):
        if k in opts:
            if not opts[k].isdigit():
                return c.fail(f"{c.argv[0]}: {opts[k]}: invalid {what}")
            numbers[k] = int(opts[k])
    count, skip, origin = numbers.get("n", 0), numbers.get("s", 0), numbers.get("O")
    d = delim or "\0"
    inp = Input(c, fd)
    if count == 0 and skip == 0:
        # All of the input, split at once (a file in a few big chunks).
        parts = inp.rest().split(d)
        last = parts.pop()
        lines = parts if strip else [p + d for p in parts]
        if last:
            lines.append(last)
    else:
        lines = []
        while count == 0 or len(lines) < count:
            item = inp.line(delim)
            if item is None:
                break
            if skip:
                skip -= 1
                continue
            line, complete = item
            lines.append(line if strip or not complete else line + d)
    inp.commit()
    if inp.error:
        c.err(f"fm: {c.argv[0]}: {inp.error}\n")
    if origin is None:
        c.vm.set_array(name, lines, span=c.span)
    else:
        c.vm.set_array(name, [(str(origin + k), v) for k, v in enumerate(lines)], append=True,
                       span=c.span)
    return 0
