"""The effect registry: one record per effect op the machine can request (docs/effects.md).

Everything the rest of the code needs to know about an op lives here: which connector
function performs it, whether it changes the world (a program, a write: not safely repeated),
whether it waits (a timer the runner can park instead of blocking a thread on it), which
request fields hold paths (a NUL byte there fails the effect before any system call) and what
its failure looks like in that case, and how `fm log` shows it. Adding an op means adding one
record here and one connector function.
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
    """It waits for time to pass (`until`, epoch seconds; none: no end) or, with `delivery`, for
    a delivery: the runner parks it instead of blocking a thread on it."""

    paths: tuple
    """Request fields that hold file names; a NUL byte in one fails the effect."""

    nul_result: dict | None
    """The result when a path holds a NUL byte (None: `{"error": "...: the name holds a NUL
    byte"}`)."""

    log: str
    """How `fm log` shows its request and result (runner/history.py): exec, write, sleep,
    path (a file op: its path and the gist of its result), clock, home, random, read_line,
    read_chunk, stream, callback, await."""

    idempotent: bool = False
    """Performing it again has the effect of performing it once (an `open`, even one that
    truncates: nothing else ran on the file before the next fsync). Its result need not be
    fsync'd before the job goes on: after a power cut it simply runs again."""

    always: bool = False
    """It runs even when its request's deadline has passed: it ends what the job started
    (`stream_close`: a producer must not outlive the `timeout` that cut its reader short)."""

    delivery: bool = False
    """It waits for a delivery in the job's inbox (`await`): the runner's scheduler completes it
    with the first matching one (connectors/inbox.py: `match`), removes that from the inbox
    once the result is durable, and parks nothing else on it."""

    mark: str | None = None
    """A connector (`module:function`) that notes the state of what the effect will change,
    just before it is first performed (`{"size", "dev", "ino"}` of a file a builtin appends
    to), or None. The runner journals the note in `effect.started` as `at` and hands it back
    in the request (`at`) when the effect runs again after a crash, so the connector can tell
    what its first run already did: fm's own writes are exactly-once (docs/effects.md)."""


_ALL = (
    Effect("exec", "process:perform_exec", True, False, (), None, "exec"),
    Effect("stream_read", "streams:do_stream_read", False, False, (), None, "stream"),
    Effect("stream_close", "streams:do_stream_close", False, False, (), None, "stream",
           always=True),
    Effect("open", "files:do_open", True, False, ("path", "cwd"), None, "path", True),
    Effect("write", "files:do_write", True, False, (), None, "write",
           mark="files:write_mark"),
    Effect("read_file", "files:do_read_file", False, False, ("path", "cwd"), None, "path"),
    Effect("read_chunk", "files:do_read_chunk", False, False, ("path", "cwd"),
           {"data": "", "eof": True, "error": "read error: a path holds a NUL byte"},
           "read_chunk"),
    Effect("read_line", "files:do_read_line", False, False, ("path", "cwd"),
           {"line": None, "error": "read error: a path holds a NUL byte"}, "read_line"),
    Effect("glob", "files:do_glob", False, False, ("pattern", "cwd"), {"matches": []}, "path"),
    Effect("test", "files:do_test", False, False, ("path", "path2", "cwd"), {"result": False},
           "path"),
    Effect("cd", "files:do_cd", False, False, ("path", "cwd"), None, "path"),
    Effect("realpath", "files:do_realpath", False, False, ("path", "cwd"), None, "path"),
    Effect("home", "files:do_home", False, False, (), None, "home"),
    Effect("clock", "clock:perform_clock", False, False, (), None, "clock"),
    Effect("sleep", "clock:perform_sleep", False, True, (), None, "sleep"),
    Effect("random", "clock:perform_random", False, False, (), None, "random"),
    Effect("callback", "inbox:perform_callback", True, False, (), None, "callback"),
    Effect("await", "inbox:perform_await", False, True, (), None, "await", delivery=True),
)

EFFECTS: dict[str, Effect] = {e.op: e for e in _ALL}
