"""The machine's plain-JSON state: the job-wide part, its branches, and frames.

Every key is documented in docs/state.md. In short: the job-wide keys (`job`, `step`, `units`,
`bufs`, `nid`, `settings`, `exits`, ...) sit at the top level; everything that one branch of
the job owns (its frames, variables, functions, fd table, cwd, status, options, the effect it
awaits) sits in `branches[id]`. Branch "0" is the script's main code.
"""
from __future__ import annotations

import os

FORMAT = 2
"""The state's layout version: 1 had one branch's keys at the top level (before branches)."""

MAIN = "0"
"""The id of the branch that runs the script's main code."""

# A variable cell is a dict: {"s": str} scalar, {"a": {index: str}} indexed array (sparse),
# {"A": {key: str}} associative array, {} declared but unset; flags "x" (exported), "r"
# (readonly).


def clone(v):
    """Deep copy of a JSON value (faster than copy.deepcopy)."""
    if isinstance(v, dict):
        return {k: clone(x) for k, x in v.items()}
    if isinstance(v, list):
        return [clone(x) for x in v]
    return v


DEFAULT_SETTINGS = {
    "retry": {"attempts": 5, "delay": 1.0, "backoff": 2.0, "max_delay": 300.0},
    "http": {"timeout": 30.0},
}


def frame(code: str, kind: str, **extra) -> dict:
    """A new frame running code `code` from its start. `kind` is main, br (a branch's bottom
    frame), fn, block, ctl, eval or src; `extra` adds optional keys (docs/state.md)."""
    f = {"c": code, "pc": 0, "b": [], "t": {}, "i": None, "k": kind}
    if extra:
        f.update(extra)
    return f


def branch(*, frames: list, scopes: list, funcs: dict, fds: dict, cwd: str, opts: dict,
           parent: str | None, status: int = 0) -> dict:
    """A branch's own state: one stack of frames and the shell state it runs with."""
    return {
        "frames": frames,
        "scopes": scopes,
        "funcs": funcs,
        "io": [{"fds": fds, "own": []}],
        "cwd": cwd,
        "status": status,
        "pipestatus": [status],
        "opts": opts,
        "await": None,
        "parent": parent,
        "kids": [],
    }


def initial_state(*, job: str, argv: list, env: dict, cwd: str, filename: str,
                  pid: int | None = None, settings: dict | None = None) -> dict:
    """The state of a job that has not run yet: `argv[0]` is $0, the rest the positional
    parameters; every variable of `env` is an exported global. `settings` carries the config
    defaults the builtins use (retry, http), fixed for the job's life."""
    merged = clone(DEFAULT_SETTINGS)
    for section, values in (settings or {}).items():
        merged.setdefault(section, {}).update(values)
    glob = {k: {"s": v, "x": 1} for k, v in env.items()}
    glob["PWD"] = {"s": cwd, "x": 1}
    fds = {"0": {"kind": "term", "fd": 0}, "1": {"kind": "term", "fd": 1},
           "2": {"kind": "term", "fd": 2}}
    main = branch(frames=[frame("main:0", "main", a=list(argv[1:]))], scopes=[glob], funcs={},
                  fds=fds, cwd=cwd, opts={"e": 1, "u": 1, "pipefail": 1, "x": 0}, parent=None)
    return {
        "format": FORMAT,
        "job": job,
        "step": 0,
        "pid": os.getpid() if pid is None else pid,
        "argv0": argv[0] if argv else filename,
        "branches": {MAIN: main},
        "nbr": 0,
        "exits": {},
        "nend": 0,
        "bufs": {},
        "nid": 0,
        "units": {"main": {"file": filename}},
        "settings": merged,
    }
