"""Variables with bash's dynamic scoping: scalars, indexed and associative arrays, attributes."""
from __future__ import annotations

from flowmetal.machine.errors import ShellError


def indexed(c: dict) -> dict:
    """The indexed array of cell `c` (which has "a"): a dict of index (decimal str) -> value
    holding only the elements that are set, in ascending index order (docs/state.md). A list
    (the shape before sparse arrays, in old snapshots) is converted in place."""
    a = c["a"]
    if isinstance(a, list):
        a = c["a"] = {str(i): v for i, v in enumerate(a) if v is not None}
    return a


def top(a: dict) -> int:
    """The highest index set in an indexed array, -1 when it is empty."""
    return int(next(reversed(a))) if a else -1


def put(a: dict, i: int, value: str):
    """Set element i (>= 0), keeping the keys in ascending order."""
    k = str(i)
    if k in a or i > top(a):
        a[k] = value
        return
    a[k] = value
    items = sorted(a.items(), key=lambda kv: int(kv[0]))
    a.clear()
    a.update(items)


def resolve(a: dict, i: int):
    """A subscript as bash reads it: a negative one counts back from the highest index + 1;
    None when it still falls before index 0."""
    if i < 0:
        i += top(a) + 1
    return i if i >= 0 else None


def array_slice(a: dict, off: int, length):
    """`${a[@]:off:length}`: the values of the elements whose index is off or more (a negative
    off counts back from the highest index + 1), at most `length` of them; a negative length
    is an error in bash for arrays (None here)."""
    if off < 0:
        off += top(a) + 1
        if off < 0:
            return []
    vals = [v for k, v in a.items() if int(k) >= off]
    return vals if length is None else vals[:max(length, 0)]


MAX_REFS = 8
"""How many namerefs a lookup follows before it gives up (bash: a circular reference)."""

CALL_STACK = frozenset(("LINENO", "FUNCNAME", "BASH_SOURCE", "BASH_LINENO"))
"""Variables computed from the call stack while no script variable of that name is set."""


class Variables:
    """Mixin for the Machine: every variable read and write goes through here. Also serves as
    the arithmetic evaluator's ArithEnv.

    Cell attributes beside the value (docs/state.md): "x" exported, "r" readonly, "i" integer
    (an assigned value is evaluated as arithmetic), "c" case ("l" lower, "u" upper), "n" a
    nameref (the cell holds the name of the variable it stands for)."""

    # -- lookup -------------------------------------------------------------------------------
    def cell(self, name: str):
        for scope in reversed(self.br["scopes"]):
            c = scope.get(name)
            if c is not None:
                return self.lookup(c["n"])[1] if "n" in c and c["n"] else c
        return None

    def raw_cell(self, name: str):
        """The cell of `name` itself, a nameref not followed."""
        for scope in reversed(self.br["scopes"]):
            c = scope.get(name)
            if c is not None:
                return c
        return None

    def lookup(self, name: str, span=None) -> tuple:
        """(the name a nameref chain ends at, its cell or None)."""
        for _ in range(MAX_REFS):
            c = self.raw_cell(name)
            if c is None or "n" not in c or not c["n"]:
                return name, c
            name = c["n"]
        raise ShellError(1, f"`{name}`: circular name reference", span)

    def get(self, name: str):
        """A scalar value (element 0 of an array), or None when unset. Special parameters too."""
        if not name[:1].isalpha() and name[:1] != "_":
            return self.get_special(name)
        if name == "PIPESTATUS":
            return str(self.br["pipestatus"][0])
        if name in ("RANDOM", "EPOCHSECONDS", "EPOCHREALTIME") and self.cell(name) is None:
            return self.dynamic(name)
        c = self.cell(name)
        if c is None:
            if name in CALL_STACK:
                got = self.call_stack_values(name)
                return got[0] if got else None
            return None
        if "s" in c:
            return c["s"]
        if "a" in c:
            return indexed(c).get("0")
        if "A" in c:
            return c["A"].get("0")
        return None

    def get_special(self, name: str):
        st = self.br
        if name.isdigit():
            n = int(name)
            if n == 0:
                return self.state["argv0"]
            args = self.positional()
            return args[n - 1] if n <= len(args) else None
        if name == "?":
            return str(st["status"])
        if name == "#":
            return str(len(self.positional()))
        if name == "$":
            return str(self.state["pid"])
        if name == "-":
            o = st["opts"]
            return ("e" if o.get("e") else "") + ("f" if o.get("f") else "") + "h" + \
                ("u" if o.get("u") else "") + ("x" if o.get("x") else "") + "B"
        if name == "!":
            return st.get("bg")
        if name in ("@", "*"):
            return " ".join(self.positional())
        return self.get(name)

    def positional(self) -> list:
        for f in reversed(self.br["frames"]):
            if "a" in f:
                return f["a"]
        return []

    def set_positional(self, args: list):
        for f in reversed(self.br["frames"]):
            if "a" in f:
                f["a"] = list(args)
                return

    def is_assoc(self, name: str) -> bool:
        c = self.cell(name)
        return c is not None and "A" in c

    def array_values(self, name: str) -> list:
        if name == "PIPESTATUS":
            return [str(s) for s in self.br["pipestatus"]]
        c = self.cell(name)
        if c is None:
            return self.call_stack_values(name) if name in CALL_STACK else []
        if "a" in c:
            return list(indexed(c).values())
        if "A" in c:
            return list(c["A"].values())
        if "s" in c:
            return [c["s"]]
        return []

    def array_keys(self, name: str) -> list:
        c = self.cell(name)
        if c is None:
            return [str(i) for i in range(len(self.call_stack_values(name)))] \
                if name in CALL_STACK else []
        if "a" in c:
            return list(indexed(c))
        if "A" in c:
            return list(c["A"].keys())
        if "s" in c:
            return ["0"]
        return []

    def array_slice(self, name: str, off: int, length) -> list | None:
        """`${a[@]:off:length}` of an indexed array by index, as bash does (holes are skipped,
        not counted); None when `name` is not an indexed array."""
        c = self.cell(name)
        if c is None or "a" not in c:
            return None
        return array_slice(indexed(c), off, length)

    def get_item(self, name: str, key: str):
        if name == "PIPESTATUS":
            ps = self.br["pipestatus"]
            i = int(key)
            return str(ps[i]) if -len(ps) <= i < len(ps) else None
        c = self.cell(name)
        if c is None:
            vals = self.call_stack_values(name) if name in CALL_STACK else ()
            i = int(key)
            return vals[i] if -len(vals) <= i < len(vals) else None
        if "A" in c:
            return c["A"].get(key)
        i = int(key)
        if "a" in c:
            a = indexed(c)
            i = resolve(a, i)
            return None if i is None else a.get(str(i))
        if "s" in c and i in (0, -1):
            return c["s"]
        return None

    # -- writes -------------------------------------------------------------------------------
    def _writable(self, name: str, span=None, local=False):
        scopes = self.br["scopes"]
        if local:
            c = scopes[-1].get(name)
            if c is None:
                c = scopes[-1][name] = {}
            elif "n" in c and c["n"]:
                return self._writable(c["n"], span)
            return c
        c = self.cell(name)
        if c is None:
            name = self.lookup(name, span)[0]      # a nameref to an unset variable
            if not (name[:1].isalpha() or name[:1] == "_") or not name.replace("_", "a").isalnum():
                raise ShellError(1, f"`{name}` is not a valid variable name", span)
            c = scopes[0][name] = {}
        elif c.get("r"):
            raise ShellError(1, f"`{name}` is readonly", span)
        return c

    def converted(self, c: dict, value: str, old, span) -> str:
        """The value to store in a cell with the integer or a case attribute: an integer's
        value is evaluated as arithmetic (and added to `old` for `+=`)."""
        if "i" in c:
            from flowmetal.lang import ast as A
            n = self.arith(A.ArithText(value, span or A.Span(0, 0, 1, 1)))
            if old is not None:
                n += self.arith(A.ArithText(old or "0", span or A.Span(0, 0, 1, 1)))
            return str(n)
        if old is not None:
            value = old + value
        return value.lower() if c.get("c") == "l" else value.upper()

    def set_scalar(self, name: str, value: str, *, append=False, span=None, local=False):
        c = self._writable(name, span, local)
        if c.get("r"):
            raise ShellError(1, f"`{name}` is readonly", span)
        if "i" in c or "c" in c:
            old = self.scalar_of(c) if append else None
            value, append = self.converted(c, value, old, span), False
        if "n" in c:                  # a nameref naming nothing yet: now it names `value`
            c["n"] = value
            self.lookup(name, span)
            return
        if "a" in c:
            a = indexed(c)
            put(a, 0, (a.get("0") or "") + value if append else value)
        elif "A" in c:
            c["A"]["0"] = (c["A"].get("0", "") + value) if append else value
        else:
            c["s"] = (c.get("s", "") + value) if append else value

    @staticmethod
    def scalar_of(c: dict):
        """A cell's scalar value (element 0 of an array), or None."""
        if "s" in c:
            return c["s"]
        if "a" in c:
            return indexed(c).get("0")
        if "A" in c:
            return c["A"].get("0")
        return None

    def assign_named(self, name: str, value: str, *, span=None):
        """Assign to a variable named at run time (`read`, `printf -v`, `getopts`), which
        may be an element: `a[3]`, `m[key]`."""
        if name.endswith("]") and "[" in name:
            base, key = name[:-1].split("[", 1)
            if not self.is_assoc(base):
                from flowmetal.lang import ast as A
                key = str(self.arith(A.ArithText(key, span or A.Span(0, 0, 1, 1))))
            self.set_item(base, key, value, span=span)
        else:
            self.set_scalar(name, value, span=span)

    def set_array(self, name: str, items: list, *, append=False, span=None, local=False,
                  assoc=None):
        """items: list of str, or (key, value) pairs for [k]=v entries."""
        c = self._writable(name, span, local)
        if "i" in c or "c" in c:
            items = [(it[0], self.converted(c, it[1], None, span)) if isinstance(it, tuple)
                     else self.converted(c, it, None, span) for it in items]
        is_assoc = "A" in c if assoc is None else assoc
        if is_assoc:
            m = c["A"] if append and "A" in c else {}
            for it in items:
                if isinstance(it, tuple):
                    m[it[0]] = it[1]
                else:
                    raise ShellError(1, f"`{name}`: an associative array needs [key]=value "
                                     "items", span)
            c.pop("s", None)
            c.pop("a", None)
            c["A"] = m
            return
        if append and "a" in c:
            a = indexed(c)
        elif append and "s" in c:
            a = {"0": c["s"]}
        else:
            a = {}
        nxt = top(a) + 1
        for it in items:
            if isinstance(it, tuple):
                try:
                    k = int(it[0])
                except ValueError:      # [i+1]=v: an arithmetic subscript
                    from flowmetal.lang import ast as A
                    k = self.arith(A.ArithText(it[0], span or A.Span(0, 0, 1, 1)))
                if k < 0:
                    raise ShellError(1, f"`{name}[{it[0]}]`: bad array subscript", span)
                put(a, k, it[1])
                nxt = k + 1
            else:
                put(a, nxt, it)
                nxt += 1
        c.pop("s", None)
        c["a"] = a

    def set_item(self, name: str, key: str, value: str, *, append=False, span=None):
        c = self._writable(name, span)
        if "i" in c or "c" in c:
            old = self.get_item(name, key) if append else None
            value, append = self.converted(c, value, old or ("" if append else None),
                                           span), False
        if "A" in c:
            m = c["A"]
            m[key] = (m.get(key, "") + value) if append else value
            return
        if "a" not in c:
            c["a"] = {"0": c.pop("s")} if "s" in c else {}
        a = indexed(c)
        i = resolve(a, int(key))
        if i is None:
            raise ShellError(1, f"`{name}[{key}]`: bad array subscript", span)
        put(a, i, ((a.get(str(i)) or "") + value) if append else value)

    def set(self, name: str, value: str):          # ArithEnv
        self.set_scalar(name, value)

    def unset(self, name: str, span=None, ref=False):
        """Unset a variable (the one a nameref stands for, unless `ref`)."""
        if not ref:
            name = self.lookup(name, span)[0]
        for scope in reversed(self.br["scopes"]):
            c = scope.get(name)
            if c is not None:
                if c.get("r"):
                    raise ShellError(1, f"`{name}` is readonly", span)
                del scope[name]
                return

    def unset_item(self, name: str, key: str):
        c = self.cell(name)
        if c is None:
            return
        if "A" in c:
            c["A"].pop(key, None)
        elif "a" in c:
            a = indexed(c)
            i = resolve(a, int(key))
            if i is not None:
                a.pop(str(i), None)

    def assign_param(self, p, text: str, key=None):
        """${x:=default}, ${a[key]:=default}"""
        if not (p.name[:1].isalpha() or p.name[:1] == "_"):
            raise ShellError(1, f"`${p.name}`: cannot assign in this way", p.span)
        if key is not None:
            self.set_item(p.name, key, text, span=p.span)
        else:
            self.set_scalar(p.name, text, span=p.span)

    def exported_env(self) -> dict:
        env = {}
        for scope in self.br["scopes"]:
            for k, c in scope.items():
                if c.get("x"):
                    s = c.get("s")
                    if s is not None:
                        env[k] = s
                    elif "a" in c and indexed(c).get("0") is not None:
                        env[k] = indexed(c)["0"]
                    else:
                        env.pop(k, None)
                else:
                    # a non-exported local shadows an exported global
                    env.pop(k, None)
        return env

    # -- the call stack -----------------------------------------------------------------------
    def call_stack_values(self, name: str) -> list:
        """$LINENO (one value), ${FUNCNAME[@]}, ${BASH_SOURCE[@]}, ${BASH_LINENO[@]}: from the
        branch's frames, innermost first. FUNCNAME is empty outside functions, as in bash."""
        if name == "LINENO":
            return [str(self.lineno())]
        stack = self.call_stack()
        if name == "FUNCNAME":
            return [e[0] for e in stack] if any(e[3] for e in stack) else []
        if name == "BASH_SOURCE":
            return [e[1] for e in stack]
        return [str(e[2]) for e in stack]

    def call_stack(self) -> list:
        """[(function name, its source file, the line it was called from, is a function)]
        innermost first; the script itself is `main` (called from line 0) and a sourced file
        `source`."""
        out = []
        frames = self.br["frames"]
        for k, f in enumerate(frames):
            kind = f["k"]
            if kind not in ("main", "br", "fn", "src") or kind == "fn" and "fn" not in f:
                continue
            code = self.code(f["c"])
            called = self.line_of(self.code(frames[k - 1]["c"]), frames[k - 1]) if k else 0
            name = f["fn"] if kind == "fn" else "source" if kind == "src" else "main"
            out.append((name, self.unit_source(code.unit)[1], called, kind == "fn"))
        out.reverse()
        return out

    def call_chain(self) -> list:
        """[[kind, name, file, line]] outermost first, one per activation on the branch's
        frames (kind "main" for the script or a branch, "fn" a function, "src" a sourced
        file): the file and line where each one stands now (its call of the next one). For
        an error's call chain (lang/errmsg.py renders it)."""
        out = []
        for f in self.br["frames"]:
            kind = f["k"]
            if kind in ("main", "br", "src") or kind == "fn" and "fn" in f:
                out.append(["main" if kind == "br" else kind, f.get("fn", ""), "", 0])
            if not out:
                continue
            code = self.code(f["c"])
            if code.unit == "sys":          # a retry/timeout controller; `sys:run` its command
                span = f["t"].get("span")
                unit, line = f.get("u"), span[2] if span else 0
            else:
                unit, line = code.unit, self.line_of(code, f)
            if line and unit is not None:
                out[-1][2:] = [self.unit_source(unit)[1], line]
        return out

    def lineno(self) -> int:
        """$LINENO: the line of the running command; in `eval`'d text (and a trap's), counted
        from the line of the command that runs it, as bash does."""
        frames = self.br["frames"]
        line = self.line_of(*self.cur)
        k = len(frames) - 1
        while k > 0 and frames[k]["k"] in ("eval", "trap"):
            if "ln" in frames[k]:
                return line + frames[k]["ln"] - 1
            k -= 1
            line += self.line_of(self.code(frames[k]["c"]), frames[k]) - 1
        return line

    @staticmethod
    def line_of(code, f) -> int:
        """The source line of the instruction frame `f` runs (0 when it has no node)."""
        pc = f["pc"]
        if pc >= len(code.instrs):
            return 0
        for x in code.instrs[pc][1:]:
            span = getattr(x, "span", None)
            if span is not None:
                return span.line
        return 0
