"""The shell builtins that run inside the machine (SPEC 1.1): pure code plus memoised effects."""
from __future__ import annotations

from flowmetal.machine import testexpr
from flowmetal.machine.errors import ShellError, Unwind
from flowmetal.machine.state import frame

KEYWORDS = {"if", "then", "elif", "else", "fi", "while", "until", "do", "done", "for", "in",
            "case", "esac", "function", "try", "catch", "finally", "{", "}", "!", "[[", "]]"}


class Call:
    """One builtin invocation: its arguments and what it writes. Builtins run again from the
    top after each effect (with earlier results memoised), so they do effects first and change
    state last."""

    def __init__(self, vm, f, code, node, argv, block):
        self.vm = vm
        self.f = f
        self.code = code
        self.node = node
        self.argv = argv
        self.block = block
        self.reset()

    def reset(self):
        self.writes = []
        self.msg = None
        self.push = None

    def out(self, text: str, fd: str = "1"):
        if not text:
            return
        if self.writes and self.writes[-1][0] == fd:
            self.writes[-1][1] += text
        else:
            self.writes.append([fd, text])

    def err(self, text: str):
        self.out(text, "2")

    def fail(self, msg: str, status: int = 1) -> int:
        """A builtin's failure: `msg` becomes the error's message if it stops the script."""
        self.msg = msg
        return status

    def effect(self, req: dict) -> dict:
        return self.vm.effect(self.f, req)

    @property
    def span(self):
        return self.node.span


BUILTINS: dict = {}


def builtin(*names):
    def deco(fn):
        for n in names:
            BUILTINS[n] = fn
        return fn
    return deco


def _status_arg(c: Call, args, default):
    if not args:
        return default
    try:
        return int(args[0]) & 255
    except ValueError:
        raise ShellError(2, f"{c.argv[0]}: `{args[0]}`: numeric argument required",
                         c.span) from None


@builtin("true", ":")
def b_true(c):
    return 0


@builtin("false")
def b_false(c):
    return 1


@builtin("echo")
def b_echo(c):
    args = c.argv[1:]
    newline, escapes = True, False
    while args and len(args[0]) > 1 and args[0][0] == "-" and set(args[0][1:]) <= set("neE"):
        for ch in args[0][1:]:
            if ch == "n":
                newline = False
            elif ch == "e":
                escapes = True
            else:
                escapes = False
        args = args[1:]
    text = " ".join(args)
    if escapes:
        from flowmetal.machine.printf import echo_escapes
        text, stopped = echo_escapes(text)
        if stopped:
            newline = False
    c.out(text + ("\n" if newline else ""))
    return 0


@builtin("printf")
def b_printf(c):
    args = c.argv[1:]
    var = None
    if args and args[0] == "-v":
        if len(args) < 2:
            return c.fail("printf: -v: option requires an argument", 2)
        var, args = args[1], args[2:]
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        return c.fail("printf: usage: printf [-v var] format [arguments]", 2)
    from flowmetal.machine import printf as _printf
    out, msgs = _printf.format(args[0], args[1:], strftime=_printf_times(c, args[0], args[1:]))
    status = 0
    for m in msgs:
        if not _printf.is_warning(m):
            status = 1
            c.msg = m
        c.err(f"fm: {m}\n")
    if var is not None:
        c.vm.set_scalar(var, out, span=c.span)
    else:
        c.out(out)
    return status


def _printf_times(c: Call, fmt: str, args: list):
    """The texts of printf's `%(...)T` conversions, all from one clock effect (in the job's
    zone, with the time now for those that want it); None when there are none."""
    from flowmetal.machine import printf as _printf
    from flowmetal.machine.durable import clock_request
    wanted: list = []
    _printf.format(fmt, args, strftime=lambda f, at: wanted.append([f, at]) or "")
    if not wanted:
        return None
    texts = iter(c.effect(clock_request(c, times=wanted)).get("texts") or [])
    return lambda f, at: next(texts, "")


@builtin("pwd")
def b_pwd(c):
    cwd = c.vm.br["cwd"]
    if "-P" in c.argv[1:]:
        cwd = c.effect({"op": "realpath", "path": cwd, "cwd": cwd})["path"]
    c.out(cwd + "\n")
    return 0


@builtin("cd")
def b_cd(c):
    vm = c.vm
    args = [a for a in c.argv[1:] if a not in ("-L", "-P", "--")]
    if not args:
        target = vm.get("HOME")
        if target is None:
            return c.fail("cd: HOME not set")
    else:
        target = args[0]
    show = False
    if target == "-":
        target = vm.get("OLDPWD")
        if target is None:
            return c.fail("cd: OLDPWD not set")
        show = True
    res = c.effect({"op": "cd", "path": target, "cwd": vm.br["cwd"]})
    if res.get("error"):
        c.err(f"fm: {res['error']}\n")
        return c.fail(res["error"])
    old = vm.br["cwd"]
    vm.br["cwd"] = res["cwd"]
    vm.set_scalar("OLDPWD", old)
    vm.set_scalar("PWD", res["cwd"])
    if show:
        c.out(res["cwd"] + "\n")
    return 0


def _print_vars(c: Call):
    """`set` with no arguments: every variable, as `declare -p` prints it."""
    from flowmetal.machine.declare import declaration
    seen = {}
    for scope in c.vm.br["scopes"]:
        seen.update(scope)
    for name in sorted(seen):
        c.out(declaration(name, seen[name]) + "\n")
    return 0


@builtin("shift")
def b_shift(c):
    n = _status_arg(c, c.argv[1:], 1)
    args = c.vm.positional()
    if n > len(args):
        return c.fail(f"shift: {n}: shift count out of range")
    c.vm.set_positional(args[n:])
    return 0


_SET_OPTS = {"errexit": "e", "nounset": "u", "pipefail": "pipefail", "xtrace": "x"}


@builtin("set")
def b_set(c):
    vm = c.vm
    opts = vm.br["opts"]
    args = c.argv[1:]
    if not args:
        return _print_vars(c)
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            vm.set_positional(args[i + 1:])
            return 0
        if a in ("-o", "+o"):
            if i + 1 >= len(args):
                for k, v in _SET_OPTS.items():
                    c.out(f"{k:<15}\t{'on' if opts.get(v) else 'off'}\n")
                return 0
            name = args[i + 1]
            if name not in _SET_OPTS:
                return c.fail(f"set: {name}: invalid option name", 2)
            opts[_SET_OPTS[name]] = 1 if a == "-o" else 0
            i += 2
            continue
        if a[:1] in "-+" and len(a) > 1:
            on = a[0] == "-"
            j = 1
            while j < len(a):
                ch = a[j]
                if ch == "o":
                    if i + 1 >= len(args):
                        return c.fail("set: -o: option requires an argument", 2)
                    name = args[i + 1]
                    if name not in _SET_OPTS:
                        return c.fail(f"set: {name}: invalid option name", 2)
                    opts[_SET_OPTS[name]] = 1 if on else 0
                    i += 1
                elif ch in "eux":
                    opts[ch] = 1 if on else 0
                elif ch in "fhBHCbmnv":
                    pass   # accepted for bash scripts; no effect in fm
                else:
                    return c.fail(f"set: -{ch}: invalid option", 2)
                j += 1
            i += 1
            continue
        vm.set_positional(args[i:])
        return 0
    return 0


@builtin("exit")
def b_exit(c):
    raise Unwind("exit", _status_arg(c, c.argv[1:], c.vm.br["status"]))


@builtin("return")
def b_return(c):
    if not any(fr["k"] in ("fn", "src") or fr.get("fnr") for fr in c.vm.br["frames"]):
        return c.fail("return: can only be used in a function or a sourced script")
    raise Unwind("return", _status_arg(c, c.argv[1:], c.vm.br["status"]))


@builtin("break", "continue")
def b_break(c):
    n = _status_arg(c, c.argv[1:], 1)
    if n < 1:
        return c.fail(f"{c.argv[0]}: {n}: loop count out of range")
    raise Unwind(c.argv[0], n)


@builtin("test", "[")
def b_test(c):
    from flowmetal.machine.cond import file_test
    args = c.argv[1:]
    name = c.argv[0]
    try:
        if name == "[":
            args = testexpr.strip_bracket(args)
        return testexpr.evaluate(args, lambda op, p, p2=None: file_test(c.vm, c.f, op, p, p2),
                                 name=name)
    except testexpr.TestError as e:
        c.err(f"fm: {e.message}\n")
        return c.fail(e.message, 2)


CHUNK = 1 << 16
"""Bytes per `read_chunk` effect when `read` needs more of a `< file` (a line is split off in
the machine; the rest stays in the fd's target for the next `read`)."""

BIG_CHUNK = 1 << 20
"""Bytes per `read_chunk` effect when a builtin takes all of its input (mapfile, json)."""


def _nbytes(text: str) -> int:
    """The length in bytes of text read from a file (UTF-8, surrogateescape)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogateescape"))


class Input:
    """A builtin's input fd (`0`, or `-u N`) as a source of lines.

    In-memory input (here-documents, fm-code pipeline stages) is read where it lies; the
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
        self.buf, self.bp = "", 0
        if k == "data":
            self.holder = t
        elif k == "bufin":
            self.holder = vm.state["bufs"].get(t["id"]) or {"d": "", "p": 0}
        if k in ("data", "bufin"):
            self.buf, self.bp = self.holder["d"], self.holder["p"]
            self.eof = True
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

    def line(self, delim: str):
        """The next line as (text, complete), without its delimiter ("" is NUL), or None at
        the end of the input."""
        if self.kind == "term":
            return self._term_line(delim)
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

    def _term_line(self, delim: str):
        if self.eof:
            return None
        res = self.c.effect({"op": "read_line", "fd": 0, "delim": delim})
        line = res.get("line")
        if res.get("error"):
            self.error = res["error"]
        if line is None or res.get("eof"):
            self.eof = True
        if line is None:
            return None
        return line, not res.get("eof")

    def rest(self) -> str:
        """All of the input that is left."""
        if self.kind == "term":
            parts = []
            while (got := self._term_line("")) is not None:
                parts.append(got[0] + ("\0" if got[1] else ""))
            return "".join(parts)
        parts = [self.buf[self.bp:]]
        if self.kind == "file":
            while not self.eof:
                parts.append(self._chunk(BIG_CHUNK))
            if self.end is not None:
                self.off = self.end
        self.buf, self.bp = "", 0
        return "".join(parts)

    def commit(self):
        """Write the reading position back into the state (after the builtin's effects)."""
        k = self.kind
        if k == "file":
            _set_file_pos(self.c.vm, self.t, self.off, self.buf, self.bp)
        elif k in ("data", "bufin"):
            self.holder["p"] = self.bp


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
def b_read(c):
    vm = c.vm
    args = c.argv[1:]
    raw, delim, array, prompt, nchars, fd = False, "\n", None, None, None, "0"
    names = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-r":
            raw = True
        elif a in ("-d", "-a", "-p", "-n", "-N", "-t", "-u") and i + 1 < len(args):
            v = args[i + 1]
            if a == "-d":
                delim = v[:1]
            elif a == "-a":
                array = v
            elif a == "-p":
                prompt = v
            elif a in ("-n", "-N"):
                nchars = int(v)
            elif a == "-u":
                fd = _fd_arg(c, v)
                if fd is None:
                    return c.fail(f"read: {v}: invalid file descriptor specification")
            i += 1
        elif a.startswith("-") and len(a) > 1 and set(a[1:]) <= set("rs"):
            raw = raw or "r" in a
        elif a == "--":
            names.extend(args[i + 1:])
            break
        else:
            names.append(a)
        i += 1
    if prompt:
        c.err(prompt)
    got = None
    complete = False
    inp = Input(c, fd)
    while (item := inp.line(delim)) is not None:
        line, complete = item
        if got is None:
            got = line
        else:
            got = got[:-1] + line     # a continued line: drop the backslash
        if raw or not complete or delim != "\n" or not got.endswith("\\"):
            break
        n_bs = len(got) - len(got.rstrip("\\"))
        if n_bs % 2 == 0:
            break
    inp.commit()
    if inp.error:
        c.err(f"fm: read: {inp.error}\n")
    if got is None:
        for n in names or ["REPLY"]:
            vm.set_scalar(n, "", span=c.span)
        if array:
            vm.set_array(array, [], span=c.span)
        return 1
    line = got
    if not raw:
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
        line = "".join(out)
    if nchars is not None:
        line = line[:nchars]
    ifs = vm.get("IFS")
    ifs = " \t\n" if ifs is None else ifs
    if array:
        vm.set_array(array, [w for w in _split_ifs(line, ifs, None)], span=c.span)
    elif not names:
        vm.set_scalar("REPLY", line, span=c.span)
    else:
        parts = _split_ifs(line, ifs, len(names))
        for k, n in enumerate(names):
            vm.set_scalar(n, parts[k] if k < len(parts) else "", span=c.span)
    return 0 if complete else 1


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
def b_mapfile(c):
    args = c.argv[1:]
    strip, delim, name, count, skip, origin, fd = False, "\n", "MAPFILE", 0, 0, None, "0"
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-t":
            strip = True
        elif a in ("-d", "-n", "-s", "-O", "-u", "-C", "-c") and i + 1 < len(args):
            v = args[i + 1]
            i += 1
            if a == "-d":
                delim = v[:1]
            elif a == "-u":
                fd = _fd_arg(c, v)
                if fd is None:
                    return c.fail(f"{c.argv[0]}: {v}: invalid file descriptor specification")
            elif a in ("-n", "-s", "-O"):
                if not v.isdigit():
                    return c.fail(f"{c.argv[0]}: {v}: invalid "
                                  f"{'line count' if a != '-O' else 'array origin'}")
                if a == "-n":
                    count = int(v)
                elif a == "-s":
                    skip = int(v)
                else:
                    origin = int(v)
        elif a == "--":
            name = args[i + 1] if i + 1 < len(args) else name
            break
        elif a.startswith("-") and len(a) > 1:
            pass
        else:
            name = a
        i += 1
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


@builtin("eval")
def b_eval(c):
    text = " ".join(c.argv[1:])
    if not text.strip():
        return 0
    code = _add_unit(c, text, "eval", "e:")
    c.push = frame(code, "eval")
    return 0


def _add_unit(c: Call, text: str, filename: str, prefix: str) -> str:
    from flowmetal.errors import ParseError
    try:
        return c.vm.add_unit(text, filename, prefix)
    except ParseError as e:
        raise ShellError(2, f"{filename}:{e.line}:{e.col}: syntax error: {e.message}",
                         c.span) from None


@builtin("source", ".")
def b_source(c):
    args = c.argv[1:]
    if not args:
        return c.fail(f"{c.argv[0]}: filename argument required", 2)
    path = args[0]
    res = c.effect({"op": "read_file", "path": c.vm.abspath(path), "cwd": c.vm.br["cwd"],
                    "display": path})
    if res.get("error"):
        return c.fail(f"{c.argv[0]}: {res['error']}")
    code = _add_unit(c, res.get("data", ""), path, "s:")
    c.push = frame(code, "src")
    if len(args) > 1:
        c.push["a"] = args[1:]
    return 0


def _which(c: Call, name: str):
    if "/" in name:
        res = c.effect({"op": "test", "test": "-x", "path": name, "cwd": c.vm.br["cwd"]})
        return name if res.get("result") else None
    path = c.vm.get("PATH") or "/usr/bin:/bin"
    for d in path.split(":"):
        p = f"{d or '.'}/{name}"
        res = c.effect({"op": "test", "test": "-x", "path": p, "cwd": c.vm.br["cwd"]})
        if res.get("result"):
            res2 = c.effect({"op": "test", "test": "-d", "path": p, "cwd": c.vm.br["cwd"]})
            if not res2.get("result"):
                return p
    return None


def _describe(c: Call, name: str, verbose: bool, only_path=False):
    vm = c.vm
    if not only_path:
        if name in KEYWORDS:
            c.out(f"{name} is a shell keyword\n" if verbose else f"{name}\n")
            return True
        if name in vm.br["funcs"]:
            c.out(f"{name} is a function\n" if verbose else f"{name}\n")
            return True
        if name in BUILTINS:
            c.out(f"{name} is a shell builtin\n" if verbose else f"{name}\n")
            return True
    p = _which(c, name)
    if p is not None:
        c.out(f"{name} is {p}\n" if verbose else f"{p}\n")
        return True
    return False


@builtin("type")
def b_type(c):
    args = c.argv[1:]
    terse = False
    path_only = False
    while args and args[0].startswith("-") and len(args[0]) > 1:
        terse = terse or "t" in args[0]
        path_only = path_only or "p" in args[0] or "P" in args[0]
        args = args[1:]
    status = 0
    for name in args:
        if terse:
            vm = c.vm
            kind = ("keyword" if name in KEYWORDS else "function" if name in vm.br["funcs"]
                    else "builtin" if name in BUILTINS else "file" if _which(c, name) else None)
            if kind is None:
                status = 1
            else:
                c.out(kind + "\n")
            continue
        if not _describe(c, name, not path_only, only_path=path_only):
            c.err(f"fm: type: {name}: not found\n")
            status = 1
    return status


@builtin("command")
def b_command(c):
    args = c.argv[1:]
    if args and args[0] in ("-v", "-V"):
        status = 0
        for name in args[1:]:
            if not _describe(c, name, args[0] == "-V"):
                status = 1
        return status
    if not args:
        return 0
    return c.fail("command: unsupported use", 2)


@builtin("builtin")
def b_builtin(c):
    args = c.argv[1:]
    if not args:
        return 0
    return c.fail(f"builtin: {args[0]}: not a shell builtin")


@builtin("exec")
def b_exec(c):
    """`exec` with only redirections (the machine applies them to the current fd table);
    `exec CMD` is handled where commands are dispatched."""
    return 0


@builtin("let")
def b_let(c):
    from flowmetal.lang import ast as A
    v = 0
    for a in c.argv[1:]:
        v = c.vm.arith(A.ArithText(a, c.span))
    return 0 if v != 0 else 1


# the builtins of these modules register themselves in BUILTINS
from flowmetal.machine import declare  # noqa: E402,F401
