"""`@record`: frozen, slotted value classes like @dataclass(frozen=True, slots=True), built fast.

`dataclasses` generates each class's methods with exec() and imports `inspect`; for the ~40
AST node and record classes that costs ~20 ms of every `fm` start, which `#!/usr/bin/env fm`
scripts and shell completions pay constantly. This builds the same shape of class (fields from
the annotations, defaults from class attributes, __slots__, keyword or positional __init__,
__repr__, __eq__, __hash__, __match_args__, immutability) with plain closures.
"""
from __future__ import annotations

_MISSING = object()


def fields(obj_or_cls) -> tuple:
    """The field names of a record class or instance, in order."""
    return obj_or_cls.__record_fields__


def is_record(obj) -> bool:
    return hasattr(type(obj), "__record_fields__")


def replace(obj, **changes):
    """A copy of `obj` with some fields changed (like dataclasses.replace)."""
    values = {f: getattr(obj, f) for f in obj.__record_fields__}
    values.update(changes)
    return type(obj)(**values)


def record(cls):
    names = tuple(cls.__dict__.get("__annotations__", {}))
    defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
    ns = {k: v for k, v in cls.__dict__.items()
          if k not in names and k not in ("__dict__", "__weakref__")}
    ns["__slots__"] = names
    ns["__match_args__"] = names
    ns["__record_fields__"] = names
    ns["__record_defaults__"] = defaults
    setter = object.__setattr__
    n_names = len(names)

    def __init__(self, *args, **kw):
        if len(args) > n_names:
            raise TypeError(f"{cls.__name__}() takes {n_names} arguments, got {len(args)}")
        for i, name in enumerate(names):
            if i < len(args):
                v = args[i]
            else:
                v = kw.pop(name, _MISSING)
                if v is _MISSING:
                    v = defaults.get(name, _MISSING)
                    if v is _MISSING:
                        raise TypeError(f"{cls.__name__}() missing argument `{name}`")
            setter(self, name, v)
        if kw:
            raise TypeError(f"{cls.__name__}() got unexpected arguments {sorted(kw)}")

    def __repr__(self):
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        return f"{cls.__name__}({inner})"

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in names)

    def __hash__(self):
        return hash(tuple(getattr(self, n) for n in names))

    def __setattr__(self, name, value):
        raise AttributeError(f"cannot assign to field `{name}`: {cls.__name__} is frozen")

    def __reduce__(self):
        return (self.__class__, tuple(getattr(self, n) for n in names))

    ns.update(__init__=__init__, __repr__=__repr__, __eq__=__eq__, __hash__=__hash__,
              __setattr__=__setattr__, __delattr__=__setattr__, __reduce__=__reduce__)
    new = type(cls.__name__, cls.__bases__, ns)
    new.__qualname__ = cls.__qualname__
    return new
