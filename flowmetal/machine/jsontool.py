"""The `json` builtin: get, build, len, keys, valid, pretty (pure; numbers keep their text)."""
from __future__ import annotations

import re

USAGE = "json: usage: json get PATH [DEFAULT] | build ITEM... | len | keys | valid | pretty"
_NAME = re.compile(r"[^.\[\]\s\"]+")
_INDEX = re.compile(r"\[(-?\d+)\]")


class Num:
    """A JSON number kept as its original text, so `1e3` and big ints print back unchanged."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __repr__(self):
        return f"Num({self.text!r})"

    def __eq__(self, other):
        return isinstance(other, Num) and other.text == self.text

    def __hash__(self):
        return hash(self.text)


class _Fail(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _no_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def loads(text: str):
    """Parse JSON text, numbers as Num; NaN/Infinity rejected. Raises ValueError."""
    import json
    return json.loads(text, parse_int=Num, parse_float=Num, parse_constant=_no_constant)


def _load(text: str, where: str):
    import json
    try:
        return loads(text)
    except json.JSONDecodeError as e:
        raise _Fail(1, f"{where}: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:
        raise _Fail(1, f"{where}: {e}") from None
    except RecursionError:
        raise _Fail(1, f"{where}: nested too deeply") from None


def dumps(v, indent: int | None = None) -> str:
    """JSON text for a value from loads(): compact (`,` `:`) or indented; non-ASCII kept."""
    from json.encoder import encode_basestring
    out: list[str] = []
    put = out.append

    def dump(v, level):
        t = type(v)
        if t is str:
            put(encode_basestring(v))
        elif t is Num:
            put(v.text)
        elif v is None:
            put("null")
        elif v is True:
            put("true")
        elif v is False:
            put("false")
        elif t is int or t is float:
            import json
            put(json.dumps(v))
        elif t is list or t is dict:
            if not v:
                put("[]" if t is list else "{}")
                return
            put("[" if t is list else "{")
            nl = "\n" + " " * (indent * (level + 1)) if indent is not None else ""
            sep = "," + nl
            first = True
            for item in (v.items() if t is dict else v):
                put(nl if first else sep)
                first = False
                if t is dict:
                    put(encode_basestring(item[0]))
                    put(":" if indent is None else ": ")
                    dump(item[1], level + 1)
                else:
                    dump(item, level + 1)
            if indent is not None:
                put("\n" + " " * (indent * level))
            put("]" if t is list else "}")
        else:
            raise TypeError(f"not JSON: {v!r}")

    dump(v, 0)
    return "".join(out)


def parse_path(path: str) -> list[tuple[str, object]]:
    """`.a.b[0]`, `.["odd key"]`, `[-1]` -> [(segment text, str key or int index)]."""
    import json
    if not path.startswith("."):
        raise _Fail(2, f"json get: bad path `{path}`: a path starts with `.`")
    if path == ".":
        return []
    dec = json.JSONDecoder()
    segs, pos, n = [], 0, len(path)
    while pos < n:
        start = pos
        if path[pos] == ".":
            pos += 1
            m = _NAME.match(path, pos)
            if m:
                segs.append((path[start:m.end()], m.group()))
                pos = m.end()
                continue
            if pos >= n or path[pos] != "[":
                raise _Fail(2, f"json get: bad path `{path}`: expected a name or `[` "
                               f"after `.` at column {pos + 1}")
        # at `[`
        if path[pos] != "[":
            raise _Fail(2, f"json get: bad path `{path}`: unexpected `{path[pos]}` "
                           f"at column {pos + 1}")
        m = _INDEX.match(path, pos)
        if m:
            segs.append((path[start:m.end()], int(m.group(1))))
            pos = m.end()
            continue
        if path.startswith('["', pos):
            try:
                key, end = dec.raw_decode(path, pos + 1)
            except ValueError:
                key, end = None, -1
            if isinstance(key, str) and path.startswith("]", end):
                segs.append((path[start:end + 1], key))
                pos = end + 1
                continue
        raise _Fail(2, f"json get: bad path `{path}`: expected `[N]` or `[\"key\"]` "
                       f"at column {pos + 1}")
    return segs


_TYPE = {dict: "an object", list: "an array", str: "a string", Num: "a number",
         bool: "a boolean", type(None): "null"}


def _get(args, stdin):
    if not 1 <= len(args) <= 2:
        raise _Fail(2, USAGE)
    path = args[0]
    segs = parse_path(path)
    v = _load(stdin, "json: invalid JSON on stdin")
    for text, key in segs:
        if isinstance(key, int) and type(v) is list and -len(v) <= key < len(v):
            v = v[key]
        elif isinstance(key, str) and type(v) is dict and key in v:
            v = v[key]
        else:
            if len(args) == 2:
                return 0, args[1] + "\n", ""
            return 1, "", f"json get: no value at `{path}` (path `{text}` not found)\n"
    return 0, (v if type(v) is str else dumps(v)) + "\n", ""


def _build(args, stdin):
    obj = {}
    for item in args:
        i = item.find("=")
        if i <= 0 or (i == 1 and item[0] == ":"):
            raise _Fail(2, f"json build: bad item `{item}`: expected field=string or "
                           f"field:=json")
        if item.startswith("=", i + 1):
            raise _Fail(2, f"json build: `{item}` is a query parameter (==), not for json")
        if item[i - 1] == ":":
            obj[item[:i - 1]] = _load(item[i + 1:], f"json build: invalid JSON in `{item}`")
        else:
            obj[item[:i]] = item[i + 1:]
    return 0, dumps(obj) + "\n", ""


def _len(args, stdin):
    if args:
        raise _Fail(2, USAGE)
    v = _load(stdin, "json: invalid JSON on stdin")
    if type(v) not in (dict, list, str):
        raise _Fail(1, f"json len: {_TYPE[type(v)]} has no length")
    return 0, f"{len(v)}\n", ""


def _keys(args, stdin):
    if args:
        raise _Fail(2, USAGE)
    v = _load(stdin, "json: invalid JSON on stdin")
    if type(v) is dict:
        keys = list(v)
    elif type(v) is list:
        keys = [str(i) for i in range(len(v))]
    else:
        raise _Fail(1, f"json keys: {_TYPE[type(v)]} has no keys")
    return 0, "".join(k + "\n" for k in keys), ""


def _valid(args, stdin):
    if args:
        raise _Fail(2, USAGE)
    try:
        _load(stdin, "")
    except _Fail:
        return 1, "", ""
    return 0, "", ""


def _pretty(args, stdin):
    if args:
        raise _Fail(2, USAGE)
    return 0, dumps(_load(stdin, "json: invalid JSON on stdin"), indent=2) + "\n", ""


_COMMANDS = {"get": _get, "build": _build, "len": _len, "keys": _keys, "valid": _valid,
             "pretty": _pretty}


def run(args: list[str], stdin: str) -> tuple[int, str, str]:
    """Run `json ARGS...` on stdin text; returns (status, stdout, stderr)."""
    cmd = _COMMANDS.get(args[0]) if args else None
    if cmd is None:
        return 2, "", USAGE + "\n"
    try:
        return cmd(args[1:], stdin)
    except _Fail as e:
        return e.status, "", e.message + "\n"
    except RecursionError:
        return 1, "", "json: nested too deeply\n"
