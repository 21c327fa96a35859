"""Simple commands, pipelines and redirections: expansion, dispatch and the exec effect."""
from __future__ import annotations

import posixpath

from flowmetal.lang import ast as A
from flowmetal.lang.support import UNSUPPORTED, unsupported
from flowmetal.machine import pattern
from flowmetal.machine.builtins import BUILTINS, Call
from flowmetal.machine.errors import LimitError, ShellError, Unwind
from flowmetal.machine.expand import Expander
from flowmetal.machine.pipes import PipeOps
from flowmetal.machine.reads import consumed_chars, set_data_pos
from flowmetal.machine.state import frame

FUNCNEST = 1000
"""The most nested function calls (bash's FUNCNEST, unlimited by default there: a runaway
recursion ends in a crash). Reaching it is a LimitError; while a branch unwinds from one, its
`finally` blocks may make FUNCNEST more calls in all, so they cannot start the runaway again."""

_SPECIAL_NAMES = frozenset(("exec", "once", "command", "builtin"))
"""Command names op_CMD looks at before dispatching them (no fast path for these)."""

_FD_NAMES = {0: "0", 1: "1", 2: "2"}

_OUT_MODE = {">": "w", ">|": "w", ">>": "a", "<>": "rw", "&>": "w", "&>>": "a"}


def _declaration_word(word: A.Word):
    """`name=(...)` as an argument of declare/local/export/readonly -> (name, op, ArrayLit)."""
    parts = word.parts
    if len(parts) == 2 and isinstance(parts[0], A.Lit) and isinstance(parts[1], A.ArrayLit):
        head = parts[0].text
        if head.endswith("+="):
            return head[:-2], "+=", parts[1]
        if head.endswith("="):
            return head[:-1], "=", parts[1]
    return None


class CommandOps(PipeOps):
    """Mixin for the Machine: the EXPAND, CMD and REDIR instructions (PIPE*: machine/pipes.py)."""

    # -- EXPAND: words -> argv (globs resolved by effects) ------------------------------------
    def op_EXPAND(self, f, code, ins):
        words, slot = ins[1], ins[2]
        i = f["i"]
        if i is None and ins[4] is not None:       # all literal: nothing to expand
            f["t"][str(slot)] = list(ins[4])
            f["pc"] += 1
            return None
        if i is None:
            ex = Expander(self, code, f)
            out = []
            globs = False
            noglob = self.br["opts"].get("f")
            for wi, w in enumerate(words):
                decl = _declaration_word(w)
                if decl is not None:
                    name, op, arr = decl
                    out.append({"arr": name, "op": op, "items": self.array_items(ex, arr)})
                    continue
                for field in ex.fields(w):
                    if noglob:
                        out.append("".join(t for t, _ in field))
                        continue
                    if len(field) == 1:
                        if field[0][1] or not pattern.has_glob(field):
                            out.append(field[0][0])
                            continue
                    elif not pattern.has_glob(field):
                        out.append("".join(t for t, _ in field))
                        continue
                    out.append({"g": pattern.to_glob(field), "w": wi})
                    globs = True
            if not globs:
                f["t"][str(slot)] = out
                f["pc"] += 1
                return None
            i = f["i"] = {"op": "EXPAND", "f": out}
        fields = i["f"]
        got, res = self.take_result()
        if got:
            for k, v in enumerate(fields):
                if isinstance(v, dict) and "g" in v:
                    matches = res.get("matches") or []
                    if not matches:
                        w = words[v["w"]]
                        text = self.snippet(code, w.span)
                        raise ShellError(1, f"no match for pattern `{text}` (quote it to pass "
                                         f"it as it is: '{text}')", w.span)
                    fields[k:k + 1] = matches
                    break
        for v in fields:
            if isinstance(v, dict) and "g" in v:
                return {"op": "glob", "pattern": v["g"], "cwd": self.br["cwd"]}
        f["t"][str(slot)] = fields
        f["i"] = None
        f["pc"] += 1
        return None

    def array_items(self, ex: Expander, arr: A.ArrayLit, f=None) -> list:
        items = []
        for it in arr.items:
            if isinstance(it, tuple):
                items.append([ex.string(it[0]), ex.string(it[1])])
                continue
            for field in ex.fields(it):
                if f is not None and pattern.has_glob(field):
                    res = self.effect(f, {"op": "glob", "pattern": pattern.to_glob(field),
                                          "cwd": self.br["cwd"]})
                    if not res.get("matches"):
                        raise ShellError(1, "no match for pattern "
                                         f"`{self.snippet(ex.code, it.span)}`", it.span)
                    items.extend(res["matches"])
                else:
                    items.append("".join(t for t, _ in field))
        return items

    # -- assignments --------------------------------------------------------------------------
    def eval_assign(self, ex: Expander, a, f) -> list:
        key = None
        if a.index is not None:
            key = ex.string(a.index)
            if not self.is_assoc(a.name):
                key = str(self.arith(A.ArithText(key, a.index.span)))
        if isinstance(a.value, A.ArrayLit):
            return [a.name, key, a.op, self.array_items(ex, a.value, f)]
        return [a.name, key, a.op, ex.string(a.value) if a.value else ""]

    def eval_assigns(self, ex: Expander, assigns) -> list:
        """Assignments of a pipeline's stages (no globbing there)."""
        return [self.eval_assign(ex, a, None) for a in assigns]

    def apply_assign(self, a, span=None, local=False):
        name, key, op, value = a
        append = op == "+="
        if isinstance(value, list):
            items = [tuple(v) if isinstance(v, list) else v for v in value]
            self.set_array(name, items, append=append, span=span, local=local)
        elif key is not None:
            self.set_item(name, key, value, append=append, span=span)
        else:
            self.set_scalar(name, value, append=append, span=span, local=local)

    # -- CMD ----------------------------------------------------------------------------------
    def classify(self, argv: list):
        """-> (kind, argv): 'fn', 'bi' or 'ext'; `command NAME` skips functions."""
        name = argv[0]
        if name in ("command", "builtin") and len(argv) > 1:
            rest = argv[2:] if name == "command" and argv[1] in ("-p", "--") else argv[1:]
            if not rest or rest[0].startswith("-"):
                return "bi", argv               # `command -v`: the builtin answers
            from flowmetal.machine.durable import DURABLE
            if rest[0] in BUILTINS and not (name == "command" and rest[0] in DURABLE):
                return "bi", rest
            if name == "builtin":
                return "bi", argv               # not a builtin: `builtin` says so
            return "ext", rest
        if name in self.br["funcs"]:
            return "fn", argv
        if name in BUILTINS:
            return "bi", argv
        return "ext", argv

    def op_CMD(self, f, code, ins):
        node, slot, block = ins[1], ins[2], ins[3]
        st = self.br
        i = f["i"]
        if i is None:
            t = f["t"]
            argv, cst = t.pop(str(slot), []), t.pop("cst", None)
            plain = not node.redirects and not st["opts"].get("x")
            if plain and not argv and all(type(a.value) is not A.ArrayLit
                                          for a in node.assigns):
                # `n=$((n+1))`: pure expansion (no globbing), no effect, nothing in flight
                ex = Expander(self, code, f)
                for a in node.assigns:
                    self.apply_assign(self.eval_assign(ex, a, None), node.span)
                return self.bare_done(f, code, node, cst)
            if plain and not node.assigns and argv[0] in BUILTINS and \
                    argv[0] not in _SPECIAL_NAMES and argv[0] not in st["funcs"]:
                # a builtin as it is (`read -r l`): straight to its run phase
                i = f["i"] = {"op": "CMD", "ph": "run", "as": [], "argv": argv, "cst": cst,
                              "k": "bi"}
            else:
                i = f["i"] = {"op": "CMD", "ph": "assign", "as": [], "argv": argv, "cst": cst}
        if i["ph"] == "assign":
            # Assignments expand left to right (a=1 b=$a); array literals may glob (effects).
            ex = Expander(self, code, f)
            bare = not i["argv"]
            while len(i["as"]) < len(node.assigns):
                a = node.assigns[len(i["as"])]
                ok, val = self.memo_run(f, lambda a=a: self.eval_assign(ex, a, f))
                if not ok:
                    return val
                i.pop("memo", None)
                if bare:
                    self.apply_assign(val, node.span)
                i["as"].append(val)
            argv = i["argv"]
            if not argv:
                if not node.redirects:
                    f["i"] = None
                    return self.bare_done(f, code, node, i["cst"])
                i["k"] = "none"
                i["ph"] = "run"
            else:
                if argv[0] == "exec" and len(argv) > 1:
                    argv = argv[1:]          # `exec prog`: run it, then end the script
                    i["exit"] = True
                once = argv[0] == "once"
                if once:
                    if len(argv) < 2:
                        raise ShellError(2, "once: usage: once CMD [ARG...]", node.span)
                    argv = argv[1:]
                    if argv[0] == "command" and len(argv) > 1:
                        argv = argv[1:]
                    kind = "ext" if argv[0] not in st["funcs"] else "fn"
                    if kind != "ext" or argv[0] in ("once",):
                        raise ShellError(2, f"once: `{argv[0]}` is not an external program "
                                         "(once runs one program at most once)", node.span)
                else:
                    kind, argv = self.classify(argv)
                if kind == "ext" and argv[0] in UNSUPPORTED:
                    raise ShellError(2, unsupported(argv[0]), node.words[0].span)
                i["k"], i["argv"] = kind, argv
                if st["opts"].get("x"):
                    self.trace(f, argv, i["as"])
                i["ph"] = "run"
                if kind == "ext":
                    i["ph"] = "exec"
                    stage = self.exec_stage(ex, argv, i["as"], node.redirects, i)
                    if once:
                        i["once"] = True
                    if f.get("x"):
                        i["ph"] = "xtrace"
                        i["stage"] = stage
                        return {"op": "write", "target": {"kind": "term", "fd": 2},
                                "data": "".join(f.pop("x"))}
                    return self.exec_request(i, [stage])
        if i["ph"] == "xtrace":
            self.take_result()
            i["ph"] = "exec"
            return self.exec_request(i, [i.pop("stage")])
        ph = i["ph"]
        if ph == "exec":
            got, res = self.take_result()
            self.finish_exec(i, res)
            status = res["status"][0]
            st["pipestatus"] = [status]
            err = (res.get("errors") or {}).get("0")
            if res.get("unknown"):
                i["msg"] = (f"`{self.snippet(code, node.span)}` was interrupted by a crash: its "
                            "outcome is unknown (once: not run again)")
            elif err:
                i["msg"] = f"`{i['argv'][0]}`: {err}" if status in (126, 127) else err
            i["st"] = status
            i["ph"] = ph = "after"
            if err and status in (126, 127):
                req = self.not_found_notice(f, code, node, node.redirects, i["msg"])
                if req is not None:
                    i["ph"] = "noted"
                    return req
        if ph == "noted":
            self.take_result()
            i["ph"] = ph = "after"
        if ph == "run":
            nframes = len(st["frames"])
            r = self.run_fm_command(f, code, node, i, block)
            if r is not None or len(st["frames"]) > nframes:
                return r      # an effect, or a function/eval/source frame to run first
            ph = i["ph"]
        if ph == "flush":
            r = self.flush_writes(f, i)
            if r is not None:
                return r
            i["ph"] = ph = "after"
        # after
        if i.get("r"):
            b = f["b"].pop()
            self.truncate_io(b["io"])
        status = i["st"] if i.get("st") is not None else st["status"]
        st["status"] = status
        if i.get("exit"):
            f["i"] = None
            raise Unwind("exit", status)
        ctlmsg = st.pop("ctlmsg", None)
        if ctlmsg:
            i["msg"] = ctlmsg
        where = st.pop("ctlwhere", None)      # a retry's error points at its last failure
        f["i"] = None
        f["pc"] += 1
        if status != 0 and st["opts"].get("e") and i["k"] != "none":
            text = self.snippet(code, node.span) if node.words else " ".join(i["argv"])
            msg = i.get("msg") or f"`{text}` exited with status {status}"
            span = node.words[0].span if node.words else node.span
            e = ShellError(status, msg, span)
            e.where = where
            raise e
        if status != 0 and i["k"] == "none" and st["opts"].get("e"):
            raise ShellError(status, i.get("msg") or "redirection failed", node.span)
        if status != 0 and "traps" in st:
            self.err_trap(status)
        return None

    def bare_done(self, f, code, node, cst):
        """The end of a command of assignments only: its status is that of the last command
        substitution in it (`x=$(false)` fails), else 0."""
        st = self.br
        st["status"] = status = cst if cst is not None else 0
        f["pc"] += 1
        if status != 0 and st["opts"].get("e"):
            raise ShellError(status, f"`{self.snippet(code, node.span)}`: command substitution "
                             f"exited with status {status}", node.span)
        if status != 0 and "traps" in st:
            self.err_trap(status)
        return None

    def exec_request(self, i, stages) -> dict:
        req = {"op": "exec", "cwd": self.br["cwd"], "stages": stages}
        if i.get("once"):
            req["once"] = True
        return req

    def trace(self, f, argv, assigns):
        from flowmetal.machine.printf import shell_quote
        words = [f"{a[0]}={a[3]}" for a in assigns if isinstance(a[3], str)]
        words += [shell_quote(a) if a == "" or any(c in a for c in " \t\n'\"$`\\*?[]|&;<>()")
                  else a for a in argv]
        f.setdefault("x", []).append("+ " + " ".join(words) + "\n")

    def run_fm_command(self, f, code, node, i, block):
        """Builtins, functions and redirect-only commands, re-run with memoised effects."""
        st = self.br
        depth = len(st["io"])
        call = Call(self, f, code, node, i["argv"], block)
        run = BUILTINS[i["argv"][0]] if i["k"] == "bi" else None
        # a builtin's own assignments (`IFS=: read a b`) are its temporary environment
        temp = {a[0]: {"s": a[3], "x": 1} for a in i["as"]
                if a[1] is None and isinstance(a[3], str)} if run is not None else None

        def attempt():
            call.reset()
            if node.redirects:
                fds = self.redirect_fds(f, code, node.redirects, Expander(self, code, f))
                if i["argv"] == ["exec"]:
                    # `exec >log 2>&1`: the redirections stay for the rest of the enclosing
                    # block (for the script, when it is at the top level)
                    self.br["io"][-1]["fds"] = fds
                else:
                    self.push_io(fds)
            if temp:
                st["scopes"].append({k: dict(c) for k, c in temp.items()})
            try:
                return run(call) if run is not None else 0
            except BaseException:
                self.truncate_io(depth)
                raise
            finally:
                if temp:
                    st["scopes"].pop()

        ok, val = self.memo_run(f, attempt)
        if not ok:
            return val
        i.pop("memo", None)
        i.pop("mi", None)
        if len(st["io"]) > depth:
            f["b"].append({"t": "r", "io": depth})
            i["r"] = 1
        if i["k"] == "fn":
            name = i["argv"][0]
            if len(st["frames"]) >= FUNCNEST or st.get("fatal", 0) > FUNCNEST:
                raise LimitError(1, f"`{name}`: more than {FUNCNEST} nested calls (endless "
                                 "recursion?)", node.words[0].span if node.words else node.span)
            if "fatal" in st:
                st["fatal"] += 1
            scope = {}
            for a in i["as"]:
                if isinstance(a[3], str) and a[1] is None:
                    scope[a[0]] = {"s": a[3], "x": 1}
            st["scopes"].append(scope)
            st["frames"].append(frame(st["funcs"][name], "fn", a=i["argv"][1:], sc=True,
                                      fn=name))
            i["ph"] = "after"
            i["st"] = None
            return None
        i["st"] = val if isinstance(val, int) else 0
        if call.msg:
            i["msg"] = call.msg
        writes = call.writes
        if f.get("x"):
            writes = [["2", "".join(f.pop("x"))]] + writes
        if writes:
            i["w"] = writes
            i["ph"] = "flush"
        else:
            i["ph"] = "after"
        if call.push is not None:
            # eval / source / a retry block: run that code in a new frame, then come back
            i["ph"] = "flush" if writes else "after"
            i["st"] = None
            st["frames"].append(call.push)
        return None

    def not_found_notice(self, f, code, node, redirects, msg: str, base=None):
        """Where a failed start (command not found, permission denied) is not going to end
        the script (a condition, `||`, `try`, or errexit off), it is reported on the
        command's stderr as bash does: the write request for that, or None."""
        if self.br["opts"].get("e") and not any(b["t"] == "h" for fr in self.br["frames"]
                                                for b in fr["b"]):
            return None          # it ends the script: its diagnostic says it
        fds = self.apply_redirects(dict(self.fds() if base is None else base), redirects,
                                   Expander(self, code, f), self._file_for_exec)
        span = node.words[0].span if node.words else node.span
        where = f"{self.unit_source(code.unit)[1]}:{span.line}:{span.col}"
        return self.write_to(fds.get("2"), f"fm: {where}: {msg}\n")

    def write_to(self, t, data: str):
        """The write request for `data` to fd target `t`; None when there is none to make (a
        buffer is appended to here; a closed or input target takes nothing)."""
        k = t["kind"] if t else "closed"
        if k == "buf":
            b = self.state["bufs"].get(t["id"])
            if b is not None:
                b["d"] += data
            return None
        if k == "term":
            real = t.get("fd", 2)
            return {"op": "write", "target": {"kind": "term", "fd": real or 2}, "data": data}
        if k == "file":
            target = {"kind": "file", "path": t["path"], "mode": "a",
                      "display": t.get("display", t["path"])}
            return {"op": "write", "target": target, "data": data, "cwd": self.br["cwd"]}
        return None

    def flush_writes(self, f, i):
        """Send a builtin's output where its fds point: buffers directly, the terminal and
        files through write effects (one at a time)."""
        got, res = self.take_result()
        writes = i["w"]
        if got:
            writes.pop(0)
            if res.get("error"):
                i["st"] = 1
                i["msg"] = res["error"]
        fds = self.fds()
        while writes:
            fd, data = writes[0]
            t = fds.get(fd)
            if t is None or t["kind"] == "closed":
                writes.pop(0)
                i["st"] = 1
                i["msg"] = f"write to fd {fd}: bad file descriptor"
                continue
            k = t["kind"]
            if k == "buf":
                b = self.state["bufs"].get(t["id"])
                if b is not None:
                    b["d"] += data
                writes.pop(0)
                continue
            if k == "term":
                real = t.get("fd", 1)
                if real == 0:
                    real = 1 if fd != "2" else 2
                return {"op": "write", "target": {"kind": "term", "fd": real}, "data": data}
            if k == "file":
                target = {"kind": "file", "path": t["path"], "mode": "a",
                          "display": t.get("display", t["path"])}
                return {"op": "write", "target": target, "data": data, "cwd": self.br["cwd"]}
            writes.pop(0)   # an input target: writing to it is a no-op, as to a closed pipe
        return None

    # -- redirections -------------------------------------------------------------------------
    def heredoc_text(self, ex: Expander, r: A.Redirect) -> str:
        hd = r.target
        if r.op == "<<<":
            return ex.string(hd) + "\n"
        if not hd.expand:
            return "".join(p.text for p in hd.parts)
        return "".join(t for t, _ in ex.segments(hd.parts, True))

    def abspath(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.br["cwd"], path)) if path else path

    def redirect_fds(self, f, code, redirs, ex: Expander):
        """The fd table after `redirs`, for fm code (builtins, functions, compound commands):
        files are opened (truncated) now through effects and then appended to."""
        if not redirs:
            return None
        return self.apply_redirects(dict(self.fds()), redirs, ex,
                                    lambda target, mode, r: self._open_for_fm(f, target, mode, r),
                                    ids=True)

    def apply_redirects(self, fds: dict, redirs, ex: Expander, open_file, ids=False) -> dict:
        """Apply redirections in order to an fd table; `open_file(path, mode, redirect)` makes
        the target of a file. With `ids` (fm code's redirections, which outlive a command) a
        here-document gets an id: the programs run inside consume it by that id (exec_fds)."""
        for r in redirs:
            op = r.op
            default = 0 if op[0] == "<" else 1
            fd = str(r.fd if r.fd is not None else default)
            if op in ("<<", "<<-", "<<<"):
                fds[fd] = {"kind": "data", "d": self.heredoc_text(ex, r), "p": 0}
                if ids:
                    fds[fd]["id"] = self.new_id()
                continue
            target = ex.string(r.target)
            if op in (">&", "<&"):
                if target == "-":
                    fds[fd] = {"kind": "closed"}
                elif target.isdigit():
                    if target not in fds or fds[target]["kind"] == "closed":
                        raise ShellError(1, f"{target}: bad file descriptor", r.span)
                    fds[fd] = fds[target]
                elif op == ">&" and r.fd is None:      # `>&file` is `&>file`
                    fds["1"] = fds["2"] = open_file(target, "w", r)
                else:
                    raise ShellError(1, f"`{target}`: bad file descriptor", r.span)
                continue
            t = open_file(target, "r" if op == "<" else _OUT_MODE[op], r)
            if op in ("&>", "&>>"):
                fds["1"] = fds["2"] = t
            else:
                fds[fd] = t
        return fds

    def _open_for_fm(self, f, target, mode, r):
        res = self.effect(f, {"op": "open", "path": self.abspath(target), "mode": mode,
                              "cwd": self.br["cwd"], "display": target})
        if res.get("error"):
            raise ShellError(1, res["error"], r.target.span)
        t = {"kind": "file", "path": self.abspath(target), "mode": "rw" if mode == "rw" else "a",
             "id": self.new_id(), "display": target}
        if mode == "r":
            # Read through an offset kept in the state: `read` and the programs run inside
            # share it, as they share the file description in bash.
            t["mode"], t["off"] = "r", 0
        return t

    def _file_for_exec(self, target, mode, r):
        return {"kind": "file", "path": self.abspath(target), "mode": mode, "id": self.new_id(),
                "display": target}

    def exec_fds(self, base: dict, ex: Expander, redirs, i: dict) -> dict:
        """Map the fd table (plus a command's own redirects) onto exec targets."""
        table = self.apply_redirects(dict(base), redirs, ex, self._file_for_exec)
        out = {}
        for fd, t in table.items():
            k = t["kind"]
            if k == "term":
                real = t.get("fd")
                if real is None:
                    real = int(fd) if fd in ("0", "1", "2") else 1
                out[fd] = {"kind": "term"} if _FD_NAMES.get(real) == fd else \
                    {"kind": "term", "fd": real}
            elif k == "file":
                out[fd] = {key: t[key] for key in ("kind", "path", "mode", "id", "off")
                           if key in t}
                out[fd]["display"] = t.get("display", t["path"])
            elif k == "buf":
                out[fd] = {"kind": "capture"}
                i["cap"] = t["id"]
            elif k in ("bufin", "data", "stream"):
                out[fd] = self._input_for_exec(t)
            elif k == "streamout":
                out[fd] = {"kind": "stream"}
            else:                                   # closed, pipe
                out[fd] = {"kind": k}
        return out

    def _input_for_exec(self, t: dict) -> dict:
        """In-memory input (a here-document, an fm-code stage's output, the text read ahead of
        a stream) for a program: the unread rest, tracked by the target's id when its reading
        position outlives the command, so the program consumes only what it reads (the exec
        result's `offsets`, applied by finish_exec)."""
        holder = t if t["kind"] == "data" else self.state["bufs"].get(t["id"], {"d": "", "p": 0})
        rest = holder["d"][holder["p"]:]
        if "s" in holder and not holder.get("eof"):
            # a live stream: what was read ahead, then the stream (a relay); finish_exec
            # takes back what the program left
            return {"kind": "relay", "sid": holder["s"], "data": rest, "track": str(t["id"])}
        if rest and t.get("id") is not None:
            return {"kind": "data", "data": rest, "track": str(t["id"])}
        holder["p"] = len(holder["d"])
        return {"kind": "data", "data": rest}

    def exec_stage(self, ex, argv, assigns, redirs, i, base=None) -> dict:
        env = self.exported_env()
        for a in assigns:
            if isinstance(a[3], str) and a[1] is None:
                env[a[0]] = a[3]
        env["FM_STEP_KEY"] = self.step_key()
        fds = self.exec_fds(base if base is not None else self.fds(), ex, redirs, i)
        return {"argv": argv, "env": env, "fds": fds}

    def finish_exec(self, i, res):
        """Apply an exec result to the state: where programs left shared offsets (`offsets`,
        `relayed`) and what they wrote into a buffer (`capture`)."""
        if res.get("offsets"):
            self._moved_offsets(res["offsets"])
        bufs = self.state["bufs"]
        for key, r in (res.get("relayed") or {}).items():
            b = bufs.get(key)
            if b is not None:         # a stream's text read ahead: what the program left
                b["d"], b["p"], b["n"] = r.get("unread", ""), 0, b.get("n", 0) + r.get("got", 0)
                if r.get("eof"):
                    b["eof"] = 1
        cap = i.get("cap")
        if cap is not None and res.get("capture"):
            b = bufs.get(cap)
            if b is not None:
                b["d"] += res["capture"]

    def _moved_offsets(self, offsets: dict):
        """A file's new offset (every copy of its target), or how many bytes of a tracked
        here-document or buffer were consumed."""
        moved = {}                      # here-document id -> its new position
        for layer in self.br["io"]:
            for t in layer["fds"].values():
                key = str(t.get("id"))
                if key not in offsets:
                    continue
                if t["kind"] == "file" and "off" in t:
                    t["off"] = offsets[key]
                elif t["kind"] == "data" and key not in moved:
                    moved[key] = t["p"] + consumed_chars(t["d"][t["p"]:], offsets[key])
                    set_data_pos(self, t, moved[key])
        bufs = self.state["bufs"]
        for key, n in offsets.items():
            if key in bufs:
                b = bufs[key]
                b["p"] += consumed_chars(b["d"][b["p"]:], n)

    # -- REDIR: redirections of a compound command --------------------------------------------
    def op_REDIR(self, f, code, ins):
        node = ins[1]
        if f["i"] is None:
            f["i"] = {"op": "REDIR"}
        depth = len(self.br["io"])
        ok, val = self.memo_run(f, lambda: self.redirect_fds(f, code, node.redirects,
                                                             Expander(self, code, f)))
        if not ok:
            return val
        f["i"] = None
        f["b"].append({"t": "r", "io": depth})
        self.push_io(val)
        f["pc"] += 1
        return None
