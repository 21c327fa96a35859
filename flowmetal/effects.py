"""The effect registry: one record per effect op the machine can request (docs/effects.md).

Everything the rest of the code needs to know about an op lives here: which connector
function performs it, whether it changes the world (a program, a write, a `cd`: its result
must be durable before anything that depends on it), whether it waits (a timer the runner can
park instead of blocking a thread on it), which request fields hold paths (a NUL byte there
fails the effect before any system call), and what its failure looks like in that case.
Adding an op means adding one record here and one connector function.
"""
from __future__ import annotations

from .records import record


@record
class Effect:
    """What one effect op is."""

    op: str
    """The request's "op"."""

    perform: str
    """The connector that performs it, as `module:function` under flowmetal.connectors;
    imported on first use, so an op nobody requests costs no start-up time."""

    world: bool
    """It changes the world outside the job (a program, a write, a truncating open): not
    safely repeatable."""

    waits: bool
    """It waits for time to pass (`until`, epoch seconds): the runner parks it on a timer."""

    paths: tuple
    """Request fields that hold file names; a NUL byte in one fails the effect."""

    nul_result: dict | None
    """The result when a path holds a NUL byte (None: `{"error": "...: the name holds a NUL
    byte"}`)."""


_ALL = (
    Effect("exec", "process:perform_exec", True, False, (), None),
    Effect("open", "files:do_open", True, False, ("path", "cwd"), None),
    Effect("write", "files:do_write", True, False, (), None),
    Effect("read_file", "files:do_read_file", False, False, ("path", "cwd"), None),
    Effect("read_line", "files:do_read_line", False, False, ("path", "cwd"),
           {"line": None, "error": "read error: a path holds a NUL byte"}),
    Effect("glob", "files:do_glob", False, False, ("pattern", "cwd"), {"matches": []}),
    Effect("test", "files:do_test", False, False, ("path", "path2", "cwd"), {"result": False}),
    Effect("cd", "files:do_cd", False, False, ("path", "cwd"), None),
    Effect("realpath", "files:do_realpath", False, False, ("path", "cwd"), None),
    Effect("home", "files:do_home", False, False, (), None),
    Effect("clock", "clock:perform_clock", False, False, (), None),
    Effect("sleep", "clock:perform_sleep", False, True, (), None),
    Effect("random", "clock:perform_random", False, False, (), None),
)

EFFECTS: dict[str, Effect] = {e.op: e for e in _ALL}
