"""declare, typeset, local, export, readonly and unset: variables' attributes and printing."""
from __future__ import annotations

from flowmetal.machine.builtins import Call, builtin, with_options
from flowmetal.machine.variables import indexed

_ATTRS = "aAinrxlu"
"""Attribute letters in the order `declare -p` prints them (bash's order)."""


def valid_name(name: str) -> bool:
    return bool(name) and (name[0].isalpha() or name[0] == "_") and \
        name.replace("_", "a").isalnum()


def _in_function(c: Call) -> bool:
    return any(fr["k"] == "fn" for fr in c.vm.br["frames"])


@builtin("declare", "typeset")
@with_options
def b_declare(c, flags, names):
    return _declare(c, flags, names, local=_in_function(c) and "g" not in flags)


@builtin("local")
@with_options
def b_local(c, flags, names):
    if not _in_function(c):
        return c.fail("local: can only be used in a function")
    return _declare(c, flags, names, local=True)


@builtin("export")
@with_options
def b_export(c, flags, names):
    if "n" in flags:
        for n in names:
            cell = c.vm.cell(n)
            if cell is not None:
                cell.pop("x", None)
        return 0
    return _declare(c, {**flags, "x": None}, names, local=False)


@builtin("readonly")
@with_options
def b_readonly(c, flags, names):
    return _declare(c, {**flags, "r": None}, names, local=False)


def _declare(c: Call, flags: dict, names: list, *, local: bool) -> int:
    if "p" in flags or not names and "f" not in flags and "F" not in flags:
        return _print(c, flags, names)
    if "f" in flags or "F" in flags:
        status = 0
        for n in names:
            if n in c.vm.br["funcs"]:
                c.out(n + "\n")
            else:
                status = 1
        return status
    for item in names:
        status = _declare_one(c, flags, item, local)
        if status:
            return status
    return 0


def _declare_one(c: Call, flags: dict, item, local: bool) -> int:
    vm = c.vm
    if isinstance(item, dict):                       # name=(...)
        name, eq, value = item["arr"], "=", None
        append = item["op"] == "+="
    else:
        name, eq, value = item.partition("=")
        append = name.endswith("+") and bool(eq)
        if append:
            name = name[:-1]
    base = name.split("[", 1)[0]
    if not valid_name(base) or ("[" in name and not name.endswith("]")):
        return c.fail(f"{c.argv[0]}: `{item}`: not a valid identifier")
    if "[" in name:
        if eq:
            key = name[:-1].split("[", 1)[1]
            if not vm.is_assoc(base):
                from flowmetal.lang import ast as A
                key = str(vm.arith(A.ArithText(key, c.span)))
            vm.set_item(base, key, value, append=append, span=c.span)
        return 0
    cell = _target_cell(c, name, local, ref="n" in flags or "+n" in flags)
    if eq and cell.get("r"):
        return c.fail(f"`{name}` is readonly")
    problem = _set_attributes(c, name, cell, flags, value if eq else None)
    if problem:
        return c.fail(f"{c.argv[0]}: {name}: {problem}")
    if eq and "n" not in cell:
        if value is None:
            items = [tuple(v) if isinstance(v, list) else v for v in item["items"]]
            vm.set_array(name, items, append=append, span=c.span, local=local,
                         assoc=True if "A" in flags else None)
        else:
            vm.set_scalar(name, value, append=append, span=c.span, local=local)
    if "x" in flags:
        cell["x"] = 1
    if "r" in flags:
        cell["r"] = 1
    return 0


def _target_cell(c: Call, name: str, local: bool, ref: bool) -> dict:
    """The cell `declare` changes: the innermost scope's (local) or the visible one (else the
    globals'); a nameref is followed unless `ref` (declare -n changes the reference)."""
    vm = c.vm
    scopes = vm.br["scopes"]
    if local:
        cell = scopes[-1].get(name)
        if cell is None:
            cell = scopes[-1][name] = {}
    else:
        cell = vm.raw_cell(name)
        if cell is None:
            cell = scopes[0][name] = {}
    if not ref and "n" in cell and cell["n"]:
        target, found = vm.lookup(name, c.span)
        cell = found if found is not None else scopes[0].setdefault(target, {})
    return cell


def _set_attributes(c: Call, name: str, cell: dict, flags: dict, value):
    """Apply the attribute flags to a cell (before its value is assigned); returns what is
    wrong, or None."""
    if "n" in flags:
        if value is not None and not valid_name(value):
            return f"`{value}`: a nameref must name a variable (fm: not an array element)"
        if value is not None and value == name:
            return "a nameref cannot name itself"
        for k in ("s", "a", "A", "i", "c"):
            cell.pop(k, None)
        cell["n"] = value or cell.get("n", "")
    if "+n" in flags and "n" in cell:
        target = cell.pop("n")
        cell["s"] = target
    if "a" in flags and "A" in cell:
        return "cannot convert an associative array to an indexed array"
    if "A" in flags and "A" not in cell:
        if "a" in cell:
            return "cannot convert an indexed array to an associative array"
        cell.pop("s", None)
        cell["A"] = {}
    elif "a" in flags and "a" not in cell and "A" not in cell:
        cell["a"] = {"0": cell.pop("s")} if "s" in cell else {}
    if "+a" in flags and "a" in cell or "+A" in flags and "A" in cell:
        return "cannot destroy an array variable this way (use unset)"
    if "i" in flags:
        cell["i"] = 1
    if "+i" in flags:
        cell.pop("i", None)
    for case in ("l", "u"):
        if case in flags:
            cell["c"] = case
        if "+" + case in flags and cell.get("c") == case:
            del cell["c"]
    if "+x" in flags:
        cell.pop("x", None)
    if "+r" in flags and cell.get("r"):
        return "readonly variables stay readonly"
    return None


# -- printing ---------------------------------------------------------------------------------
def _print(c: Call, flags: dict, names: list) -> int:
    """`declare -p [NAME...]` (also `export -p`, `readonly -p`): as bash prints them."""
    vm = c.vm
    if names:
        status = 0
        for n in names:
            cell = vm.raw_cell(n) if isinstance(n, str) else None
            if cell is None:
                c.err(f"fm: {c.argv[0]}: {n}: not found\n")
                status = 1
            else:
                c.out(declaration(n, cell) + "\n")
        return status
    seen = {}
    for scope in vm.br["scopes"]:
        seen.update(scope)
    want = set(flags) & set(_ATTRS)
    for name in sorted(seen):
        cell = seen[name]
        if all(cell.get(f) or f in "aA" and f in cell for f in want):
            c.out(declaration(name, cell) + "\n")
    return 0


def declaration(name: str, cell: dict) -> str:
    """`declare -FLAGS name="value"` for one variable."""
    flags = "".join(f for f in _ATTRS if f in ("a", "A") and f in cell
                    or f in "inrx" and cell.get(f) or f in "lu" and cell.get("c") == f)
    head = f"declare -{flags or '-'} {name}"
    if "n" in cell:
        return f'{head}="{cell["n"]}"' if cell["n"] else head
    if "s" in cell:
        return f"{head}={_quote(cell['s'])}"
    if "a" in cell:
        items = " ".join(f"[{k}]={_quote(v)}" for k, v in indexed(cell).items())
        return f"{head}=({items})"
    if "A" in cell:
        items = "".join(f"[{_key(k)}]={_quote(v)} " for k, v in cell["A"].items())
        return f"{head}=({items})"
    return head


def _quote(value: str) -> str:
    """bash's quoting in `declare -p`: double quotes, or $'...' for control characters."""
    from flowmetal.machine.printf import shell_quote
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return shell_quote(value)
    return '"' + "".join("\\" + ch if ch in '"\\$`' else ch for ch in value) + '"'


def _key(key: str) -> str:
    from flowmetal.machine.printf import shell_quote
    return key if key and all(ch.isalnum() or ch in "_-./:@" for ch in key) \
        else shell_quote(key)


# -- unset ------------------------------------------------------------------------------------
@builtin("unset")
@with_options
def b_unset(c, flags, names):
    vm = c.vm
    for name in names:
        if "f" in flags:
            vm.br["funcs"].pop(name, None)
        elif name.endswith("]") and "[" in name:
            base, key = name[:-1].split("[", 1)
            if not vm.is_assoc(base):
                from flowmetal.lang import ast as A
                key = str(vm.arith(A.ArithText(key, c.span)))
            vm.unset_item(base, key)
        elif "v" not in flags and "n" not in flags and vm.raw_cell(name) is None \
                and name in vm.br["funcs"]:
            vm.br["funcs"].pop(name)
        else:
            vm.unset(name, c.span, ref="n" in flags)
    return 0
