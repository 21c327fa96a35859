"""The shape of each kind of journal record (docs/journal.md, "Record kinds"): which fields it
must have and the JSON type of every field fm reads back, down into requests, results and the
machine's state (docs/state.md). codec.check() applies it to every record it decodes, so a record
whose checksum is right but whose content is not what fm writes (edited by hand, or resealed
by a tool) is reported as damage with its line, instead of failing deep inside the reader.

A spec is one of: a Python type (`str`, `bool`, `list`, `dict`), INT or NUM, ANY, `Obj` (a
JSON object with typed fields), `List`/`Dict` (of one spec), `Either` (one of several), or a
tuple of allowed constants. Fields a spec does not name are allowed (readers ignore what they
do not know), but every value, known or not, is at most MAX_DEPTH levels deep."""
from __future__ import annotations

MAX_DEPTH = 64
"""How deeply values may nest. fm's own records stay below 20; a deeper one is damage (and
would make readers that walk it recurse without end)."""

INT_LIMIT = 2 ** 63


class _Int:
    name = "an integer"


class _Num:
    name = "a number"


class _Any:
    name = "any value"


INT, NUM, ANY = _Int(), _Num(), _Any()


class Obj:
    """A JSON object; `required` fields must be present, `optional` ones may be."""

    def __init__(self, required: dict | None = None, optional: dict | None = None):
        self.required = required or {}
        self.fields = {**self.required, **(optional or {})}
    name = "an object"


class List:
    def __init__(self, item):
        self.item = item
    name = "a list"


class Dict:
    def __init__(self, item):
        self.item = item
    name = "an object"


class Switch:
    """`then` when test(value) holds, else `other`."""

    def __init__(self, test, then, other):
        self.test, self.then, self.other = test, then, other
    name = "an object"


class Either:
    def __init__(self, *specs):
        self.specs = specs
        self.name = " or ".join(_name(s) for s in specs)


_NAMES = {str: "a string", bool: "true or false", list: "a list", dict: "an object",
          type(None): "null"}
NULL = type(None)


def _name(spec) -> str:
    return _NAMES.get(spec) or getattr(spec, "name", str(spec))


def _kind(value) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "an integer" if abs(value) < INT_LIMIT else "an integer out of range"
    if isinstance(value, float):
        return "a number"
    return _NAMES.get(type(value), type(value).__name__)


# ---- requests, results and the machine's state --------------------------------------------

STAGE = Obj({"argv": List(str)}, {"fds": Dict(dict), "env": Dict(str), "env+": Dict(str),
                                   "env-": List(str)})
REQUEST = Obj({}, {"op": str,
    "cwd": str, "stages": List(STAGE), "until": NUM, "deadline": NUM, "why": str, "once": bool,
    "path": str, "path2": str, "mode": str, "test": str, "display": str, "pattern": str,
    "data": str, "target": dict, "fd": INT, "off": INT, "at": dict, "format": str,
    "times": list, "tz": Either(str, NULL), "user": str,
    "job": str, "name": str, "method": str, "key": str, "event": str})
DELIVERY = Obj({}, {"method": str, "query": Dict(str), "headers": Dict(str), "body": str,
                    "data": str})
RESULT = Obj({}, {
    # a stream's start gives null for the stages still running (connectors/streams.py)
    "status": Either(INT, List(Either(INT, NULL))),
    "out": str, "err": str, "error": str, "errors": dict,
    "timeout": bool, "expired": bool, "stopped": bool, "unknown": bool, "eof": bool, "woken": bool,
    "result": bool, "matches": List(str), "line": Either(str, NULL), "data": str, "now": NUM,
    "text": str, "texts": List(str), "path": str, "int": INT, "home": Either(str, NULL),
    "already": INT, "token": str, "url": str, "key": str, "delivery": DELIVERY})
CELL = Obj({}, {"s": str, "a": Either(List(Either(str, NULL)), Dict(str)),  # list: old jobs
                "A": Dict(str), "n": str, "x": INT, "r": INT, "i": INT, "c": str})
SETTINGS = Obj({}, {"retry": Obj({}, {"attempts": INT, "delay": NUM, "backoff": NUM,
                                         "max_delay": NUM}),
                     "http": Obj({}, {"timeout": NUM})})
BRANCH = Obj({"frames": List(dict), "scopes": List(Dict(CELL)), "funcs": Dict(str),
              "io": List(Obj({"fds": dict}, {"own": list})), "cwd": str, "status": INT,
              "pipestatus": List(INT), "opts": Dict(ANY), "await": Either(INT, NULL),
              "parent": Either(str, NULL), "kids": List(str)}, {
    "cmd": str, "blocked": INT, "final": dict, "err": Either(dict, NULL), "traps": Dict(str),
    "bg": ANY})
STATE = Obj({"format": (2,), "job": str, "step": INT, "argv0": str, "branches": Dict(BRANCH),
             "nbr": INT, "exits": Dict(dict), "nend": INT,
             "bufs": Dict(Obj({"d": str}, {"p": INT})), "nid": INT, "units": Dict(dict),
             "settings": SETTINGS}, {
    "pid": Either(INT, NULL), "done": dict, "cbs": Dict(str)})
PENDING = Obj({"step": INT, "req": REQUEST, "started": bool}, {"br": str, "at": dict})
LARGE = List(Obj({"at": List(Either(str, INT)), "sha256": str, "len": INT}))
ERROR = Obj({"message": str}, {"unit": str, "span": List(INT), "status": INT})

def _current(snapshot) -> bool:
    """Whether a snapshot holds a machine state of the current format (2: `branches`)."""
    state = snapshot.get("state")
    return not isinstance(state, dict) or "branches" in state \
        or state.get("format") not in (None, 1)


# ---- the records --------------------------------------------------------------------------

_COMMON = {"large": LARGE}
KINDS = {
    "job.started": Obj({"source": str, "argv": List(str), "cwd": str, "env": Dict(str),
                        "filename": str}, {
        "format": INT, "version": str, "id": str, "name": str,
        "pid": Either(INT, NULL), "settings": SETTINGS, **_COMMON}),
    "snapshot": Switch(
        _current,
        Obj({"step": INT, "state": STATE, "pending": List(PENDING), "layout": str,
             "version": str}, _COMMON),
        # A snapshot of state format 1 (before branches): read, never resumed from.
        Obj({"step": INT, "state": Obj({}, {"format": (1,), "step": INT})},
            {"req": Either(REQUEST, NULL), "pending": List(PENDING), "layout": str,
             "version": str, **_COMMON})),
    "effect.started": Obj({"step": INT, "req": REQUEST},
                          {"br": str, "rerun": bool, "at": dict, **_COMMON}),
    "effect.done": Obj({"step": INT, "res": RESULT}, {"br": str, **_COMMON}),
    "job.parked": Obj({"step": INT, "until": Either(NUM, NULL), "waits": List(REQUEST)},
                      _COMMON),
    "main.ended": Obj({"step": INT, "waiting": List(Either(str, INT))}, _COMMON),
    "job.finished": Obj({"status": INT}, {"step": INT, **_COMMON}),
    "job.failed": Obj({"status": INT, "error": ERROR}, {"step": INT, **_COMMON}),
    "cancel": Obj({"step": INT}, {"reason": str, **_COMMON}),
    "job.cancelled": Obj({"status": INT}, {"step": INT, "reason": str, **_COMMON}),
}


def required(kind: str, path: tuple) -> bool:
    """Whether the field at `path` in a record of `kind` (of the current format) must be there."""
    spec, parent = KINDS.get(kind), None
    for key in path:
        while isinstance(spec, (Switch, Either)):
            spec = spec.then if isinstance(spec, Switch) else \
                next((s for s in spec.specs if isinstance(s, Obj)), ANY)
        if isinstance(spec, (List, Dict)):
            spec = spec.item
            continue
        if not isinstance(spec, Obj):
            return False
        parent, spec = spec, spec.fields.get(key, ANY)
    return parent is not None and path[-1] in parent.required


def problem(rec: dict) -> str | None:
    """What is wrong with the shape of a record (its header already checked), or None."""
    spec = KINDS.get(rec["kind"])
    why = _check(rec, spec if spec is not None else ANY)  # a later fm's kind: its depth only
    if why is None:
        return None
    keys = why[:0:-1]  # the field's path, gathered from the inside out
    if not keys:
        return why[0].format(where="the record").replace("the record has no", "no") \
            + (" field" if "has no" in why[0] else "")
    return why[0].format(where="`" + ".".join(map(str, keys)) + "`")


def _check(value, spec) -> list | None:
    """None when `value` fits; else [message with a {where} for the field, innermost key, ...,
    outermost key]. The path is built only for an error: checking must stay cheap."""
    if spec is str or spec is bool:
        return None if type(value) is spec else _wrong(value, spec)
    if spec is ANY:
        return _too_deep(value)
    if isinstance(spec, Switch):
        spec = spec.then if isinstance(value, dict) and spec.test(value) else spec.other
    if isinstance(spec, tuple):
        if type(value) in (int, str) and value in spec:
            return None
        shown = repr(value) if type(value) in (int, str) and len(str(value)) < 20 \
            else _kind(value)
        return [f"{{where}} is {shown}, not {' or '.join(map(str, spec))}"]
    if isinstance(spec, Either):
        inner = None
        for s in spec.specs:
            why = _check(value, s)
            if why is None:
                return None
            if len(why) > 1:
                inner = why  # of the right type, wrong inside: say where
        return inner or [f"{{where}} is {_kind(value)}, not {spec.name}"]
    if not _fits(value, spec):
        return _wrong(value, spec)
    if isinstance(spec, Obj):
        for key in spec.required:
            if key not in value:
                return [f"{{where}} has no `{key}`"]
        fields = spec.fields
        for key, item in value.items():
            why = _check(item, fields.get(key, ANY))
            if why:
                why.append(key)
                return why
    elif isinstance(spec, (List, Dict)):
        sub = spec.item
        for key, item in (enumerate(value) if type(value) is list else value.items()):
            why = _check(item, sub)
            if why:
                why.append(key)
                return why
    elif spec is list or spec is dict:
        return _too_deep(value)
    return None


def _wrong(value, spec) -> list:
    return [f"{{where}} is {_kind(value)}, not {_name(spec)}"]


def _fits(value, spec) -> bool:
    if spec is INT:
        return type(value) is int and abs(value) < INT_LIMIT
    if spec is NUM:
        return type(value) in (int, float) and abs(value) < INT_LIMIT
    if isinstance(spec, (Obj, Dict)):
        return type(value) is dict
    if isinstance(spec, List):
        return type(value) is list
    return type(value) is spec


def _too_deep(value) -> list | None:
    """Whether a value nests deeper than MAX_DEPTH (checked without recursion)."""
    level = [value]
    for _ in range(MAX_DEPTH):
        level = [v for c in level if type(c) is list or type(c) is dict
                 for v in (c.values() if type(c) is dict else c)]
        if not level:
            return None
    return [f"{{where}} nests deeper than {MAX_DEPTH} levels"]
