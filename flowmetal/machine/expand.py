"""Word expansion: parts -> fields of (text, quoted) segments; pure (globs are left marked)."""
from __future__ import annotations

from flowmetal.lang import ast as A
from flowmetal.machine import pattern
from flowmetal.machine.errors import ShellError

MAX_BRACE_WORDS = 100_000
"""The most words one brace expansion may make (`{1..10000000}` is an error, not a hang; a
long range belongs in `for ((i = 1; i <= n; i++))`, whose state stays small)."""


def brace_expand(parts: tuple) -> list:
    """Expand BraceAlt/BraceSeq parts into a list of part tuples (bash does this first).

    Raises ShellError when the word would expand to more than MAX_BRACE_WORDS words (counted
    before anything is made)."""
    n = _brace_count(parts)
    if n > MAX_BRACE_WORDS:
        span = next(p.span for p in parts if isinstance(p, (A.BraceAlt, A.BraceSeq)))
        raise ShellError(1, f"brace expansion: {n:,} words, more than {MAX_BRACE_WORDS:,} "
                         "(use `for ((i = a; i <= b; i++))` for a long range)", span)
    return _brace_expand(parts)


def _brace_expand(parts: tuple) -> list:
    for i, p in enumerate(parts):
        if isinstance(p, A.BraceAlt):
            out = []
            head, tail = parts[:i], parts[i + 1:]
            for alt in p.alts:
                for a in _brace_expand(tuple(alt)):
                    out.extend(_brace_expand(head + a + tail))
            return out
        if isinstance(p, A.BraceSeq):
            out = []
            head, tail = parts[:i], parts[i + 1:]
            for text in _seq(p):
                out.extend(_brace_expand(head + (A.Lit(text, p.span),) + tail))
            return out
    return [parts]


def _brace_count(parts) -> int:
    """How many words brace expansion makes of `parts`."""
    n = 1
    for p in parts:
        if isinstance(p, A.BraceAlt):
            n *= sum(_brace_count(alt) for alt in p.alts)
        elif isinstance(p, A.BraceSeq):
            r = _seq_range(p)
            n *= (abs(r.stop - r.start) - 1) // abs(r.step) + 1   # len() overflows past 2**63
    return n


def _seq_range(p: A.BraceSeq) -> range:
    step = abs(p.step) if p.step else 1
    try:
        a, b = int(p.start), int(p.end)
    except ValueError:
        a, b = ord(p.start), ord(p.end)
    return range(a, b + 1, step) if a <= b else range(a, b - 1, -step)


def _seq(p: A.BraceSeq) -> list:
    r = _seq_range(p)
    try:
        int(p.start), int(p.end)
    except ValueError:
        return [chr(c) for c in r]
    width = 0
    for s in (p.start, p.end):
        digits = s.lstrip("-")
        if len(digits) > 1 and digits.startswith("0"):
            width = max(width, len(s))
    if width:
        return [(f"-{str(-n).zfill(width - 1)}" if n < 0 else str(n).zfill(width)) for n in r]
    return [str(n) for n in r]


class Expander:
    """Expands words for one frame: `vm` gives variables, `slots` captured $(...) outputs."""

    live = False      # expanding a pattern: unquoted expansions keep their pattern characters
    status = None     # `$?` after the last `$(...)` expanded here (None: the branch's status)

    def __init__(self, vm, code, frame):
        self.vm = vm
        self.code = code
        self.frame = frame

    # -- entry points -------------------------------------------------------------------------
    def fields(self, word: A.Word) -> list:
        """A word -> list of fields, each a list of (text, quoted) segments."""
        out = []
        for parts in brace_expand(word.parts):
            out.extend(self._parts(parts, quoted=False))
        return out

    def string(self, word, quoted=True) -> str:
        """A word -> one string (assignment values, redirect targets, case words)."""
        if word is None:
            return ""
        parts = word.parts if isinstance(word, A.Word) else word
        if len(parts) == 1 and type(parts[0]) is A.ArithSub:    # `n=$((n+1))`
            return str(self.vm.arith(parts[0].expr))
        segs = self.segments(parts, quoted)
        return "".join(t for t, _ in segs)

    def segments(self, parts, quoted=False) -> list:
        """Parts -> one field's segments (multi-valued expansions joined by spaces)."""
        fields = self._parts(tuple(parts), quoted)
        out = []
        for i, f in enumerate(fields):
            if i:
                out.append((" ", True))
            out.extend(f)
        return out

    def pattern_segments(self, word) -> list:
        """Segments of a pattern word: as in bash, an unquoted $var or $(...) in a pattern
        is itself a pattern (only a quoted one matches literally)."""
        if word is None:
            return []
        self.live = True
        try:
            return self.segments(word.parts if isinstance(word, A.Word) else word)
        finally:
            self.live = False

    # -- parts --------------------------------------------------------------------------------
    def _parts(self, parts: tuple, quoted: bool) -> list:
        fields = [[]]
        alive = False
        for p in parts:
            kind, val = self._part(p, quoted)
            if kind == "one":
                fields[-1].extend(val)
                alive = True
            elif kind == "many":
                if not val:
                    continue
                alive = True
                fields[-1].append((val[0], True))
                for v in val[1:]:
                    fields.append([(v, True)])
            else:  # "fields": list of segment lists (from a DQ holding "$@")
                if not val:
                    continue
                alive = True
                fields[-1].extend(val[0])
                for v in val[1:]:
                    fields.append(list(v))
        return fields if alive else []

    def _part(self, p, quoted):
        t = type(p)
        if t is A.Lit:
            return "one", [(p.text, quoted)]
        if t is A.SQ:
            return "one", [(p.text, True)]
        if t is A.DQ:
            inner = self._parts(p.parts, True)
            if not p.parts:
                return "one", [("", True)]
            if len(inner) == 1:
                return "one", inner[0]
            return "fields", inner
        if t is A.Param:
            return self.param(p, quoted)
        if t is A.CmdSub:
            slot = self.code.slots[id(p)]
            t = self.frame["t"]
            out = t.get(str(slot), "")
            self.status = t.get(f"{slot}?")
            if quoted or self.live:
                return "one", [(out, quoted)]
            return "many", out.split("\n") if out else []
        if t is A.ArithSub:
            return "one", [(str(self.vm.arith(p.expr)), True)]
        if t is A.Tilde:
            return "one", [(self._tilde(p), True)]
        if t is A.ArrayLit:
            return "one", [("", True)]
        raise ShellError(2, f"cannot expand {t.__name__} here", p.span)

    def _tilde(self, p: A.Tilde) -> str:
        if p.user == "":
            home = self.vm.get("HOME")
            return home if home is not None else "~"
        if p.user in ("+", "-"):
            v = self.vm.get("PWD" if p.user == "+" else "OLDPWD")
            return v if v is not None else "~" + p.user
        # The user database is the world: DYNVARS looked the user up (an effect) just before
        # this command, as the compiler hoists every ~user it finds in the command's words.
        homes = self.frame["t"].get("home") or {}
        if p.user not in homes:
            raise ShellError(1, f"`~{p.user}` was not looked up (a bug in fm)", p.span)
        home = homes[p.user]
        return home if home is not None else "~" + p.user

    # -- parameters ---------------------------------------------------------------------------
    def _values(self, p: A.Param):
        """-> (is_list, value): value is a list for $@ a[@] a[*] $*, else str or None."""
        vm = self.vm
        name = p.name
        if name in ("@", "*"):
            return True, list(vm.positional())
        if p.index_all:
            return True, vm.array_values(name)
        if p.index is not None:
            return False, vm.get_item(name, self._subscript(name, p.index))
        if name == "?" and self.status is not None:
            return False, str(self.status)
        return False, vm.get_special(name)

    def _subscript(self, name, word) -> str:
        text = self.string(word)
        if self.vm.is_assoc(name):
            return text
        return str(self.vm.arith(A.ArithText(text, word.span)))

    def param(self, p: A.Param, quoted: bool):
        vm = self.vm
        op = p.op
        if op == "len":
            is_list, val = self._values(p)
            if is_list:
                return "one", [(str(len(val)), True)]
            if val is None:
                self._unset(p)
                val = ""
            return "one", [(str(len(val)), True)]
        if op == "keys":
            return "many", vm.array_keys(p.name)
        is_list, val = self._values(p)
        star = p.name == "*" or p.index_all == "*"
        if op in (":-", "-", ":=", "=", ":?", "?", ":+", "+"):
            if is_list:
                unset = len(val) == 0
                null = unset or (len(val) == 1 and val[0] == "") or \
                    (star and "".join(val) == "")
            else:
                unset = val is None
                null = unset or val == ""
            missing = null if op.startswith(":") else unset
            base = op.lstrip(":")
            if base == "+":
                if missing:
                    return "one", [("", True)]
                return "one", self.segments(p.arg.parts if p.arg else (), True) \
                    if quoted else self._arg_one(p.arg)
            if not missing:
                return self._finish(is_list, val, star, quoted)
            if base == "-":
                return "one", self.segments(p.arg.parts, True) if p.arg and quoted \
                    else self._arg_one(p.arg)
            if base == "=":
                text = self.string(p.arg) if p.arg else ""
                key = self._subscript(p.name, p.index) if p.index is not None else None
                vm.assign_param(p, text, key)
                return "one", [(text, True)]
            # ?
            msg = self.string(p.arg) if p.arg else ("is unset" if unset else "is null or unset")
            raise ShellError(1, f"`{p.name}`: {msg}", p.span)
        if not is_list and val is None:
            self._unset(p)
            val = ""
        if op is None:
            return self._finish(is_list, val, star, quoted)
        vals = val if is_list else [val]
        if op in ("#", "##", "%", "%%"):
            segs = self.pattern_segments(p.arg)
            longest = len(op) == 2
            f = pattern.strip_prefix if op[0] == "#" else pattern.strip_suffix
            vals = [f(segs, v, longest) for v in vals]
        elif op in ("/", "//", "/#", "/%"):
            segs = self.pattern_segments(p.arg)
            repl = self.string(p.arg2) if p.arg2 is not None else ""
            mode = {"/": "first", "//": "all", "/#": "prefix", "/%": "suffix"}[op]
            vals = [pattern.replace(segs, v, repl, mode) for v in vals]
        elif op == ":":
            off = vm.arith(p.arg)
            length = vm.arith(p.arg2) if p.arg2 is not None else None
            if is_list:
                seq = vals
                if p.name in ("@", "*"):
                    seq = [vm.state["argv0"]] + vals
                if length is not None and length < 0:    # bash: only strings count back
                    raise ShellError(1, f"{length}: substring expression < 0", p.span)
                got = None if p.name in ("@", "*") else vm.array_slice(p.name, off, length)
                vals = _slice(seq, off, length, p) if got is None else got
            else:
                vals = ["".join(_slice(list(vals[0]), off, length, p))]
        elif op in ("^", "^^", ",", ",,", "~", "~~"):
            segs = self.pattern_segments(p.arg) if p.arg is not None else None
            vals = [pattern.case_modify(v, op, segs) for v in vals]
        else:
            raise ShellError(2, f"unsupported expansion `{op}`", p.span)
        return self._finish(is_list, vals if is_list else vals[0], star, quoted)

    def _finish(self, is_list, val, star, quoted):
        if not is_list:
            return "one", [(val, quoted or not self.live)]
        if star and quoted:
            return "one", [(" ".join(val), True)]
        return "many", list(val)

    def _arg_one(self, arg):
        if arg is None:
            return [("", True)]
        segs = self.segments(arg.parts, False)
        # An unquoted default is still never globbed or split (SPEC 1.2 rule 1).
        return [(t, True) for t, _ in segs] or [("", True)]

    def _unset(self, p: A.Param):
        if self.vm.br["opts"].get("u"):
            name = p.name
            if p.index is not None:
                name = f"{name}[{self.string(p.index)}]"
            raise ShellError(1, f"`{name}` is unset", p.span)


def _slice(seq: list, off: int, length, p) -> list:
    n = len(seq)
    if off < 0:
        off = max(0, n + off)
    if length is None:
        return seq[off:]
    if length < 0:
        end = n + length
        if end < off:
            raise ShellError(1, "substring expression < 0", p.span)
        return seq[off:end]
    return seq[off:off + length]
