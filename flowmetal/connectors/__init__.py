"""Effect executors: perform(request, term, token) runs one effect request and returns its result.

Which function performs an op is written once, in flowmetal.effects; this module only looks it
up (importing its module on first use) and applies what every op shares: a passed deadline, a
NUL byte in a path.
"""
from __future__ import annotations

from importlib import import_module

from ..effects import EFFECTS
from .clock import StatusLine, get_clock
from .term import LineTerm, Term

__all__ = ["perform", "mark", "Term", "LineTerm", "StatusLine", "EFFECTS"]

_HANDLERS: dict = {}


def _load(spec: str):
    module, name = spec.split(":")
    return getattr(import_module(f"{__name__}.{module}"), name)


def _handler(op: str):
    fn = _HANDLERS.get(op)
    if fn is None:
        effect = EFFECTS.get(op)
        if effect is None:
            raise ValueError(f"unknown effect op: {op!r}")
        fn = _HANDLERS[op] = _load(effect.perform)
    return fn


def mark(req: dict) -> dict | None:
    """What an effect is about to change, noted before its first run (the op's `mark` in
    flowmetal/effects.py); None when the op has no mark or there is nothing to note. The
    runner journals it and hands it back as the request's `at` if the effect runs again."""
    effect = EFFECTS.get(req.get("op"))
    if effect is None or effect.mark is None or _nul_path(req) is not None:
        return None
    return _load(effect.mark)(req)


def perform(req: dict, term: Term, token=None) -> dict:
    """Run one effect request; expected failures come back in the result, never raised.

    A request carrying `deadline` (epoch seconds, from a durable `timeout`) whose deadline has
    passed is not performed at all: the result is {"timeout": true}. `exec` and `sleep` are
    also cut short when it passes while they run, and when `token` (a CancelToken) is set.

    Raises ValueError only for a malformed request (a bug in whoever built it).
    """
    handler = _handler(req.get("op"))
    deadline = req.get("deadline")
    if deadline is not None and get_clock().now() >= deadline and \
            not EFFECTS[req["op"]].always:
        return {"timeout": True}
    bad = _nul_path(req)
    if bad is not None:
        return bad
    return handler(req, term, token)


def _nul_path(req: dict):
    """A failure result when a path of a file op holds a NUL byte; None otherwise."""
    op = req["op"]
    if op == "write" and "\0" in req.get("target", {}).get("path", ""):
        return {"error": f"cannot open {req['target'].get('display', '')!r}: "
                         "the name holds a NUL byte"}
    effect = EFFECTS[op]
    for key in effect.paths:
        value = req.get(key)
        if isinstance(value, str) and "\0" in value:
            if effect.nul_result is not None:
                return dict(effect.nul_result)
            shown = (req.get("display") or value).replace("\0", "\\0")
            return {"error": f"{shown}: the name holds a NUL byte"}
    return None
