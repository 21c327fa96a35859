"""`pushd`, `popd` and `dirs`: bash's directory stack, kept in the branch's state (`dirs`)."""
from __future__ import annotations

from flowmetal.machine.builtins import Call, builtin, change_dir, with_options


def _stack(c: Call) -> list:
    """The stack as `dirs` shows it: the cwd first, then what was pushed, latest first."""
    return [c.vm.br["cwd"]] + list(c.vm.br.get("dirs", []))


def _set_rest(c: Call, rest: list):
    if rest:
        c.vm.br["dirs"] = rest
    else:
        c.vm.br.pop("dirs", None)


def _show(c: Call, entries: list, opts: dict):
    home = c.vm.get("HOME")

    def shown(d: str) -> str:
        if "l" in opts or not home or home == "/":
            return d
        return "~" + d[len(home):] if d == home or d.startswith(home + "/") else d
    if "v" in opts:
        c.out("".join(f"{k:2d}  {shown(d)}\n" for k, d in enumerate(entries)))
    elif "p" in opts:
        c.out("".join(shown(d) + "\n" for d in entries))
    else:
        c.out(" ".join(shown(d) for d in entries) + "\n")


@builtin("dirs")
@with_options
def b_dirs(c, opts, args):
    if "c" in opts:
        _set_rest(c, [])
        return 0
    _show(c, _stack(c), opts)
    return 0


@builtin("pushd")
@with_options
def b_pushd(c, opts, args):
    stack = _stack(c)
    if not args:
        if len(stack) < 2:
            return c.fail("pushd: no other directory")
        target, rest = stack[1], [stack[0]] + stack[2:]
    else:
        target, rest = args[0], stack
    if "n" in opts:
        _set_rest(c, [target] + stack[1:] if args else rest[1:])
        return 0
    status = change_dir(c, target)
    if status:
        return status
    _set_rest(c, rest)
    _show(c, _stack(c), {})
    return 0


@builtin("popd")
@with_options
def b_popd(c, opts, args):
    stack = _stack(c)
    if len(stack) < 2:
        return c.fail("popd: directory stack empty")
    if "n" in opts:
        _set_rest(c, stack[2:])
        return 0
    status = change_dir(c, stack[1])
    if status:
        return status
    _set_rest(c, stack[2:])
    _show(c, _stack(c), {})
    return 0
