"""`getopts`: a script's own options, one per call, as bash parses them."""
from __future__ import annotations

from flowmetal.machine.builtins import Call, builtin


@builtin("getopts")
def b_getopts(c):
    args = c.argv[1:]
    if len(args) < 2:
        return c.fail("getopts: usage: getopts optstring name [arg ...]", 2)
    spec, name, words = args[0], args[1], args[2:] or list(c.vm.positional())
    silent = spec.startswith(":")
    if silent:
        spec = spec[1:]
    ind, ch = _position(c)
    if ch == 0:
        word = words[ind - 1] if ind <= len(words) else None
        if word is None or len(word) < 2 or word[0] != "-":
            return _finish(c, name, ind, 0, "?", 1)
        if word == "--":
            return _finish(c, name, ind + 1, 0, "?", 1)
        ch = 1
    word = words[ind - 1]
    opt = word[ch]
    ch += 1
    if ch >= len(word):
        ind, ch = ind + 1, 0
    k = spec.find(opt)
    if opt == ":" or k < 0:
        return _bad(c, name, ind, ch, opt, silent, "illegal option")
    if spec[k + 1:k + 2] != ":":
        c.vm.unset("OPTARG")
        return _finish(c, name, ind, ch, opt, 0)
    if ch:                                    # the rest of this word is the argument
        value, ind, ch = word[ch:], ind + 1, 0
    elif ind <= len(words):
        value, ind = words[ind - 1], ind + 1
    else:
        return _bad(c, name, ind, ch, opt, silent, "option requires an argument",
                    missing=True)
    c.vm.set_scalar("OPTARG", value, span=c.span)
    return _finish(c, name, ind, ch, opt, 0)


def _position(c: Call) -> tuple:
    """(OPTIND, the index in that word of its next option letter, 0 at its start): the
    letter index is kept in the branch's state (`gopt`) while OPTIND is the value getopts
    left there; a script that sets OPTIND starts over, as in bash."""
    text = c.vm.get("OPTIND")
    ind = int(text) if text and text.isdigit() and int(text) > 0 else 1
    kept = c.vm.br.get("gopt")
    ch = kept[1] if kept and kept[0] == ind and text == str(ind) else 0
    return ind, ch


def _finish(c: Call, name: str, ind: int, ch: int, value: str, status: int) -> int:
    vm = c.vm
    vm.set_scalar("OPTIND", str(ind), span=c.span)
    if ch:
        vm.br["gopt"] = [ind, ch]
    else:
        vm.br.pop("gopt", None)
    vm.assign_named(name, value, span=c.span)
    return status


def _bad(c: Call, name, ind, ch, opt, silent, what, missing=False) -> int:
    """An unknown option or a missing argument: `?` (and a message), or with a leading `:`
    in the optstring, `?` / `:` and the letter in OPTARG without a message."""
    vm = c.vm
    if silent:
        vm.set_scalar("OPTARG", opt, span=c.span)
        return _finish(c, name, ind, ch, ":" if missing else "?", 0)
    vm.unset("OPTARG")
    if vm.get("OPTERR") != "0":
        c.err(f"{vm.state['argv0']}: {what} -- {opt}\n")
    return _finish(c, name, ind, ch, "?", 0)
