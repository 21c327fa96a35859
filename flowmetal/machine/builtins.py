"""The shell builtins that run inside the machine (SPEC 1.1): pure code plus memoised effects."""
from __future__ import annotations

from flowmetal.lang.support import OptionError, parse_options
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


def with_options(fn):
    """A builtin `fn(c, opts, operands)` whose options (lang/support.py: OPTIONS) are parsed
    first: `opts` maps each letter given (`+x` for an attribute turned off) to its argument
    (None for a flag)."""
    def run(c: Call):
        try:
            opts, rest = parse_options(c.argv[0], c.argv[1:])
        except OptionError as e:
            return c.fail(e.message, 2)
        return fn(c, dict(opts), rest)
    return run


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
        c.vm.assign_named(var, out, span=c.span)
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
    status = change_dir(c, target)
    if show and not status:
        c.out(vm.br["cwd"] + "\n")
    return status


def change_dir(c: Call, target: str) -> int:
    """Change the branch's cwd (a `cd` effect), with PWD and OLDPWD; 1 after a message."""
    vm = c.vm
    res = c.effect({"op": "cd", "path": target, "cwd": vm.br["cwd"]})
    if res.get("error"):
        c.err(f"fm: {res['error']}\n")
        return c.fail(res["error"])
    old = vm.br["cwd"]
    vm.br["cwd"] = res["cwd"]
    vm.set_scalar("OLDPWD", old)
    vm.set_scalar("PWD", res["cwd"])
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


@builtin("set")
def b_set(c):
    vm = c.vm
    args = c.argv[1:]
    if not args:
        return _print_vars(c)
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--", "-"):
            vm.set_positional(args[i + 1:])
            return 0
        if a[:1] not in "-+" or len(a) < 2:
            vm.set_positional(args[i:])
            return 0
        on = a[0] == "-"
        for ch in a[1:]:
            if ch == "o":
                if i + 1 >= len(args):
                    _show_options(c, on)
                    return 0
                i += 1
                problem = _set_long(vm, on, args[i])
            else:
                problem = _set_flag(vm, on, ch)
            if problem:
                return c.fail(problem, 2)
        i += 1
    return 0


def _set_flag(vm, on: bool, ch: str):
    from flowmetal.lang.support import SET_FLAGS, set_problem
    problem = set_problem(("-" if on else "+") + ch)
    if problem is None and ch in SET_FLAGS:
        vm.br["opts"][ch] = 1 if on else 0
    return problem


def _set_long(vm, on: bool, name: str):
    from flowmetal.lang.support import SET_LONG, set_long_problem
    problem = set_long_problem(on, name)
    if problem is None and name == "pipefail":
        vm.br["opts"]["pipefail"] = 1 if on else 0
    elif problem is None and SET_LONG[name]:
        return _set_flag(vm, on, SET_LONG[name])
    return problem


def _show_options(c: Call, listing: bool):
    """`set -o` (a table) and `set +o` (commands that set the options again)."""
    opts = c.vm.br["opts"]
    for name, key in (("errexit", "e"), ("noglob", "f"), ("nounset", "u"),
                      ("pipefail", "pipefail"), ("xtrace", "x")):
        on = bool(opts.get(key))
        c.out(f"{name:<15}\t{'on' if on else 'off'}\n" if listing
              else f"set {'-' if on else '+'}o {name}\n")


@builtin("shopt")
@with_options
def b_shopt(c, opts, names):
    """fm's shell options are fixed (lang/support.py: SHOPT): setting one to the value it
    has is accepted; asking prints or returns it as bash does."""
    from flowmetal.lang.support import SHOPT, shopt_problem
    if "o" in opts:
        return _shopt_o(c, opts, names)
    flag = "s" if "s" in opts else "u" if "u" in opts else None
    if flag and names:
        for n in names:
            problem = shopt_problem(flag, n)
            if problem:
                return c.fail(problem, 2)
        return 0
    for n in names:
        if n not in SHOPT:
            return c.fail(f"shopt: {n}: invalid shell option name", 2)
    shown = names or [n for n in sorted(SHOPT) if flag is None or SHOPT[n] == (flag == "s")]
    if "q" not in opts:
        for n in shown:
            c.out(f"shopt -{'s' if SHOPT[n] else 'u'} {n}\n" if "p" in opts
                  else f"{n:<15}\t{'on' if SHOPT[n] else 'off'}\n")
    return 0 if all(SHOPT[n] for n in names) else 1


def _shopt_o(c: Call, opts: dict, names: list) -> int:
    """`shopt -o`: the options of `set -o`."""
    from flowmetal.lang.support import SET_LONG
    on = {"errexit": "e", "noglob": "f", "nounset": "u", "pipefail": "pipefail", "xtrace": "x"}
    if "s" in opts or "u" in opts:
        for n in names:
            problem = _set_long(c.vm, "s" in opts, n)
            if problem:
                return c.fail(problem, 2)
        return 0
    status = 0
    for n in names or sorted(on):
        if n not in SET_LONG:
            return c.fail(f"shopt: {n}: invalid option name", 2)
        value = bool(c.vm.br["opts"].get(on.get(n, ""))) or SET_LONG[n] in ("B", "h", "E")
        status = status or (0 if value else 1)
        if "q" not in opts:
            c.out(f"set {'-' if value else '+'}o {n}\n" if "p" in opts
                  else f"{n:<15}\t{'on' if value else 'off'}\n")
    return status


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
    if not args or args[0] in ("-p", "--") and len(args) == 1:
        return 0
    return c.fail(f"command: {args[0]}: invalid option (fm's command takes -p -v -V)", 2)


@builtin("caller")
def b_caller(c):
    """`caller [N]`: where the running function (or the Nth above it) was called from."""
    args = c.argv[1:]
    stack = c.vm.call_stack()
    if not args:
        c.out(f"{stack[0][2] if stack else 0} {stack[1][1] if len(stack) > 1 else 'NULL'}\n")
        return 0
    if not args[0].isdigit():
        return c.fail(f"caller: {args[0]}: invalid number", 2)
    n = int(args[0])
    if n + 1 >= len(stack):
        return 1
    c.out(f"{stack[n][2]} {stack[n + 1][0]} {stack[n + 1][1]}\n")
    return 0


@builtin("hash")
@with_options
def b_hash(c, opts, names):
    """fm keeps no table of where programs are: `hash -r` has nothing to forget, and
    `hash NAME` only checks that NAME is found."""
    if not names:
        if "r" not in opts:
            c.out("hash: hash table empty\n")
        return 0
    status = 0
    for name in names:
        if name not in BUILTINS and _which(c, name) is None:
            c.err(f"fm: hash: {name}: not found\n")
            status = 1
    return status


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
from flowmetal.machine import declare, dirstack, getopts, reads, traps  # noqa: E402,F401
