"""Compile an AST into flat instruction lists (Code) with jump targets, for the step machine.

Every script, function body, `eval` string and `source`d file becomes a *unit*; a unit compiles
to several Code objects (the top level plus one per function definition), each named
`<unit>:<n>` in a deterministic order, so recompiling the pinned source on resume yields the same
names and the machine's state (code name + pc) stays meaningful.

Command substitutions are hoisted: the body of each `$(...)` in a command's words runs (captured)
just before that command, and the expander reads its output from a slot. This keeps expansion
pure. The price: in `${x:-$(cmd)}` the `cmd` runs even when x is set (docs/language.md).
"""
from __future__ import annotations

import re

from flowmetal.lang import ast as A
from flowmetal.lang.limits import allow_deep_recursion
from flowmetal.records import fields, is_record


class Code:
    """One instruction list. `instrs` are tuples (OP, args...); `slots` maps id(CmdSub) to the
    slot holding its captured output."""
    __slots__ = ("name", "unit", "instrs", "slots", "kind", "fname")

    def __init__(self, name: str, unit: str, kind: str, fname: str = ""):
        self.name = name
        self.unit = unit
        self.kind = kind        # 'main' or 'fn'
        self.fname = fname
        self.instrs: list = []
        self.slots: dict = {}


class Unit:
    """The result of compiling one source text: every Code object by name."""

    def __init__(self, name: str):
        self.name = name
        self.codes: dict[str, Code] = {}


def compile_unit(program: A.Program, unit: str) -> Unit:
    allow_deep_recursion()
    u = Unit(unit)
    c = _Compiler(u)
    top = c.new_code("main")
    c.program(top, program)
    top.instrs.append(("END",))
    return u


DYNAMIC = ("RANDOM", "EPOCHSECONDS", "EPOCHREALTIME")
_DYN_IN_ARITH = re.compile(r"(?<![\w$])(RANDOM|EPOCHSECONDS|EPOCHREALTIME)(?!\w)")


def _iter_cmdsubs(obj):
    """Yield the CmdSub nodes directly inside words/parts (not inside their bodies), the
    names of the journaled variables ($RANDOM, $EPOCHSECONDS, ...) read there, in order, and
    `~user` for each `~user` prefix (a lookup in the user database: an effect too)."""
    if isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _iter_cmdsubs(o)
    elif isinstance(obj, A.CmdSub):
        yield obj
    elif isinstance(obj, A.Tilde):
        if obj.user not in ("", "+", "-"):      # ~, ~+ and ~- only read variables
            yield "~" + obj.user
    elif is_record(obj) and not isinstance(obj, A.Span):
        if isinstance(obj, A.HereDoc) and not obj.expand:
            return
        if isinstance(obj, A.Param) and obj.name in DYNAMIC:
            yield obj.name
        for name in fields(obj):
            yield from _iter_cmdsubs(getattr(obj, name))
        if isinstance(obj, A.ArithText):
            for m in _DYN_IN_ARITH.finditer(obj.text):
                yield m.group(1)


def _file_read(cs: A.CmdSub):
    """The redirect of a `$(< file)` (a body of one `< file` and nothing else), else None."""
    cmds = cs.body.commands
    if len(cmds) != 1 or type(cmds[0]) is not A.SimpleCommand:
        return None
    cmd = cmds[0]
    if cmd.words or cmd.assigns or cmd.block is not None or len(cmd.redirects) != 1:
        return None
    r = cmd.redirects[0]
    return r if r.op == "<" and r.fd in (None, 0) else None


_LIVE = frozenset("*?[{")


def _literal_argv(words) -> tuple | None:
    """The argv of words that expand to themselves (plain and quoted text, no glob or brace
    character), so EXPAND can skip the expander; None otherwise."""
    out = []
    for w in words:
        text = []
        for part in w.parts:
            if type(part) is A.SQ:
                text.append(part.text)
            elif type(part) is A.Lit and not _LIVE.intersection(part.text):
                text.append(part.text)
            else:
                return None
        out.append("".join(text))
    return tuple(out)


class _Compiler:
    def __init__(self, unit: Unit):
        self.unit = unit
        self.n = 0
        self.slot_n = 0

    def new_code(self, kind: str, fname: str = "") -> Code:
        name = f"{self.unit.name}:{self.n}"
        self.n += 1
        code = Code(name, self.unit.name, kind, fname)
        self.unit.codes[name] = code
        return code

    def slot(self) -> int:
        self.slot_n += 1
        return self.slot_n

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def emit(code: Code, *ins) -> int:
        code.instrs.append(ins)
        return len(code.instrs) - 1

    @staticmethod
    def patch(code: Code, at: int, *ins):
        code.instrs[at] = ins

    @staticmethod
    def here(code: Code) -> int:
        return len(code.instrs)

    def hoist(self, code: Code, *things):
        """Run the bodies of the command substitutions in `things` into slots, draw the
        values of the journaled variables they read, and look up the `~user` homes."""
        found = list(_iter_cmdsubs(things))
        names = [x for x in found if isinstance(x, str) and x[0] != "~"]
        # each $RANDOM use draws its own value; one lookup per user is enough
        names += dict.fromkeys(x for x in found if isinstance(x, str) and x[0] == "~")
        for cs in found:
            if isinstance(cs, str) or id(cs) in code.slots:
                continue
            s = self.slot()
            code.slots[id(cs)] = s
            redirect = _file_read(cs)
            if redirect is not None:
                # `$(< file)`: the file's text, without running anything (as bash does)
                self.hoist(code, redirect)
                self.emit(code, "READFILE", redirect, s)
                continue
            at = self.emit(code, "CAPBEGIN", cs, s, None)
            self.program(code, cs.body)
            self.emit(code, "CAPEND", s, cs)
            self.patch(code, at, "CAPBEGIN", cs, s, self.here(code))
        if names:
            # after the substitutions' bodies, which run in this frame and draw their own
            self.emit(code, "DYNVARS", tuple(names))

    # -- commands -----------------------------------------------------------------------------
    def program(self, code: Code, prog: A.Program):
        for cmd in prog.commands:
            self.command(code, cmd)

    def condition(self, code: Code, prog: A.Program):
        """An if/while condition list: as in bash, only its last command decides; the
        failures of earlier ones are ignored."""
        cmds = prog.commands
        for cmd in cmds[:-1]:
            h = self.emit(code, "HANDLER", None)
            self.command(code, cmd)
            self.emit(code, "POPB")
            self.patch(code, h, "HANDLER", self.here(code))
        if cmds:
            self.command(code, cmds[-1])

    def with_redirects(self, code: Code, node, body_fn):
        redirs = getattr(node, "redirects", ())
        if not redirs:
            body_fn()
            return
        self.hoist(code, redirs)
        at = self.emit(code, "REDIR", node)   # pushes a redirect block
        body_fn()
        self.emit(code, "POPB")
        del at

    def command(self, code: Code, node):
        m = getattr(self, "c_" + type(node).__name__)
        m(code, node)

    def c_SimpleCommand(self, code, node: A.SimpleCommand):
        self.hoist(code, node.assigns, node.words, node.redirects)
        s = self.slot()
        self.emit(code, "EXPAND", node.words, s, node, _literal_argv(node.words))
        block = None
        if node.block is not None:
            block = self.new_code("fn", "<block>")
            self.program(block, node.block.body)
            block.instrs.append(("RET",))
        self.emit(code, "CMD", node, s, block.name if block else None)

    def c_Pipeline(self, code, node: A.Pipeline):
        if len(node.commands) == 1:
            inner = node.commands[0]
            if node.negated:
                h = self.emit(code, "HANDLER", None)
                self.command(code, inner)
                self.emit(code, "POPB")
                self.patch(code, h, "HANDLER", self.here(code))
                self.emit(code, "NEG")
            else:
                self.command(code, inner)
            return
        if node.negated:
            h = self.emit(code, "HANDLER", None)
        slots = []
        for st in node.commands:
            if isinstance(st, A.SimpleCommand):
                self.hoist(code, st.assigns, st.words, st.redirects)
                s = self.slot()
                self.emit(code, "EXPAND", st.words, s, st, _literal_argv(st.words))
                slots.append(s)
            else:
                slots.append(None)
        ps = self.slot()
        at = self.emit(code, "PIPE", node, tuple(slots), ps, None)
        n = len(node.commands)
        for i, st in enumerate(node.commands):
            err = node.stderr[i] if i < len(node.stderr) else False
            h2 = self.emit(code, "PSTAGE", ps, i, n, err, None)
            if isinstance(st, A.SimpleCommand):
                self.emit(code, "CMD", st, slots[i], None)
            else:
                self.command(code, st)
            self.emit(code, "POPB")
            self.patch(code, h2, "PSTAGE", ps, i, n, err, self.here(code))
            self.emit(code, "PSTAGE_END", ps, i)
        self.emit(code, "PIPE_END", node, ps)
        self.patch(code, at, "PIPE", node, tuple(slots), ps, self.here(code))
        if node.negated:
            self.emit(code, "POPB")
            self.patch(code, h, "HANDLER", self.here(code))
            self.emit(code, "NEG")

    def c_AndOr(self, code, node: A.AndOr):
        h = self.emit(code, "HANDLER", None)
        self.command(code, node.left)
        self.emit(code, "POPB")
        if node.op == "&&":
            j = self.emit(code, "JF", None)
            self.command(code, node.right)
            end = self.here(code)
            self.patch(code, h, "HANDLER", end)
            self.patch(code, j, "JF", end)
        else:
            j = self.emit(code, "JT", None)
            self.patch(code, h, "HANDLER", self.here(code))
            self.command(code, node.right)
            self.patch(code, j, "JT", self.here(code))

    def c_Background(self, code, node: A.Background):
        body = self.new_code("br", "<branch>")
        self.command(body, node.command)
        body.instrs.append(("END",))
        self.emit(code, "SPAWN", body.name, node)

    def c_BraceGroup(self, code, node: A.BraceGroup):
        self.with_redirects(code, node, lambda: self.program(code, node.body))

    def c_Subshell(self, code, node: A.Subshell):
        def body():
            at = self.emit(code, "SCOPE", None)
            self.program(code, node.body)
            self.emit(code, "SCOPE_END")
            self.patch(code, at, "SCOPE", self.here(code))
            self.emit(code, "CHECK", node)
        self.with_redirects(code, node, body)

    def c_If(self, code, node: A.If):
        def body():
            ends = []
            for cond, then in node.clauses:
                h = self.emit(code, "HANDLER", None)
                self.condition(code, cond)
                self.emit(code, "POPB")
                j = self.emit(code, "JF", None)
                self.program(code, then)
                ends.append(self.emit(code, "JMP", None))
                nxt = self.here(code)
                self.patch(code, h, "HANDLER", nxt)
                self.patch(code, j, "JF", nxt)
            if node.else_body is not None:
                self.program(code, node.else_body)
            else:
                self.emit(code, "STATUS", 0)
            end = self.here(code)
            for e in ends:
                self.patch(code, e, "JMP", end)
        self.with_redirects(code, node, body)

    def c_While(self, code, node: A.While):
        def body():
            loop = self.emit(code, "LOOP", None, None)
            top = self.here(code)
            h = self.emit(code, "HANDLER", None)
            self.condition(code, node.cond)
            self.emit(code, "POPB")
            j = self.emit(code, "JT" if node.until else "JF", None)
            body_start = self.here(code)
            self.program(code, node.body)
            self.emit(code, "JMP", top)
            exit_ = self.emit(code, "POPB")
            end = self.emit(code, "STATUS", 0)
            # An error in the condition counts as false: it ends a `while`, runs an `until` body.
            self.patch(code, h, "HANDLER", body_start if node.until else exit_)
            self.patch(code, j, "JT" if node.until else "JF", exit_)
            self.patch(code, loop, "LOOP", end, top)
        self.with_redirects(code, node, body)

    def c_For(self, code, node: A.For):
        def body():
            s = self.slot()
            if node.words is None:
                self.emit(code, "ARGS", s)
            else:
                self.hoist(code, node.words)
                self.emit(code, "EXPAND", node.words, s, node, _literal_argv(node.words))
            loop = self.emit(code, "LOOP", None, None)
            top = self.emit(code, "FORNEXT", node, s, None)
            self.program(code, node.body)
            self.emit(code, "JMP", top)
            exit_ = self.emit(code, "POPB")
            end = self.emit(code, "STATUS", 0)
            self.patch(code, top, "FORNEXT", node, s, exit_)
            self.patch(code, loop, "LOOP", end, top)
        self.with_redirects(code, node, body)

    def c_ArithFor(self, code, node: A.ArithFor):
        def body():
            if node.init is not None:
                self.hoist(code, node.init)
                self.emit(code, "ARITH", node.init, False)
            loop = self.emit(code, "LOOP", None, None)
            top = self.here(code)
            j = None
            if node.cond is not None:
                self.hoist(code, node.cond)
                self.emit(code, "ARITH", node.cond, True)
                j = self.emit(code, "JF", None)
            self.program(code, node.body)
            cont = self.here(code)
            if node.step is not None:
                self.hoist(code, node.step)
                self.emit(code, "ARITH", node.step, False)
            self.emit(code, "JMP", top)
            exit_ = self.emit(code, "POPB")
            end = self.emit(code, "STATUS", 0)
            if j is not None:
                self.patch(code, j, "JF", exit_)
            self.patch(code, loop, "LOOP", end, cont)
        self.with_redirects(code, node, body)

    def c_Case(self, code, node: A.Case):
        def body():
            self.hoist(code, node.word, [arm.patterns for arm in node.arms])
            s = self.slot()
            self.emit(code, "CASEWORD", node.word, s)
            tests = []
            for arm in node.arms:
                tests.append(self.emit(code, "CASEPAT", arm.patterns, s, None))
            nomatch = self.emit(code, "STATUS", 0)
            ends = [self.emit(code, "JMP", None)]
            starts = []
            for i, arm in enumerate(node.arms):
                starts.append(self.here(code))
                self.emit(code, "STATUS", 0)
                self.program(code, arm.body)
                if arm.terminator == ";;":
                    ends.append(self.emit(code, "JMP", None))
                elif arm.terminator == ";;&":
                    # go on testing the patterns after this arm
                    ends.append(self.emit(code, "JMP", ("test", i + 1)))
                # ';&' falls through into the next body
            end = self.here(code)
            for i, t in enumerate(tests):
                self.patch(code, t, "CASEPAT", node.arms[i].patterns, s, starts[i])
            for e in ends:
                target = code.instrs[e][1]
                if isinstance(target, tuple):
                    nxt = target[1]
                    self.patch(code, e, "JMP", tests[nxt] if nxt < len(tests) else end)
                else:
                    self.patch(code, e, "JMP", end)
            del nomatch
        self.with_redirects(code, node, body)

    def c_CondCommand(self, code, node: A.CondCommand):
        def body():
            self.hoist(code, node.expr)
            self.emit(code, "COND", node)
        self.with_redirects(code, node, body)

    def c_ArithCommand(self, code, node: A.ArithCommand):
        def body():
            self.hoist(code, node.expr)
            self.emit(code, "ARITH", node.expr, True)
            self.emit(code, "CHECK", node)
        self.with_redirects(code, node, body)

    def c_FunctionDef(self, code, node: A.FunctionDef):
        fn = self.new_code("fn", node.name)
        self.command(fn, node.body)
        fn.instrs.append(("RET",))
        self.emit(code, "FUNC", node.name, fn.name)

    def c_Try(self, code, node: A.Try):
        def body():
            fin = None
            if node.finally_ is not None:
                fin = self.emit(code, "FINALLY", None)
            h = None
            if node.catch is not None:
                h = self.emit(code, "HANDLER", None, "catch")
            self.command(code, node.body)
            if h is not None:
                self.emit(code, "POPB")
                j = self.emit(code, "JMP", None)
                self.patch(code, h, "HANDLER", self.here(code), "catch")
                self.command(code, node.catch)
                self.patch(code, j, "JMP", self.here(code))
            if fin is not None:
                self.emit(code, "FIN_ENTER")
                self.patch(code, fin, "FINALLY", self.here(code))
                self.command(code, node.finally_)
                self.emit(code, "FIN_END")
        self.with_redirects(code, node, body)
