"""The machine's plain-JSON state: variables and scopes, frames, the fd table, buffers."""
from __future__ import annotations

import os

FORMAT = 1

# A variable cell is a dict: {"s": str} scalar, {"a": [str|None, ...]} indexed array,
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
    return {
        "format": FORMAT,
        "job": job,
        "step": 0,
        "pid": os.getpid() if pid is None else pid,
        "argv0": argv[0] if argv else filename,
        "scopes": [glob],
        "funcs": {},
        "frames": [{"c": "main:0", "pc": 0, "b": [], "t": {}, "i": None, "k": "main",
                    "a": list(argv[1:])}],
        "io": [{"fds": {"0": {"kind": "term", "fd": 0}, "1": {"kind": "term", "fd": 1},
                        "2": {"kind": "term", "fd": 2}},
                "own": []}],
        "bufs": {},
        "nid": 0,
        "cwd": cwd,
        "status": 0,
        "pipestatus": [0],
        "opts": {"e": 1, "u": 1, "pipefail": 1, "x": 0},
        "units": {"main": {"file": filename}},
        "await": None,
        "settings": merged,
    }
