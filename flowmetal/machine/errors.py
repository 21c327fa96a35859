"""Control signals inside the machine: shell errors, non-local exits, effect requests."""
from __future__ import annotations


class ShellError(Exception):
    """A failure in the script (a command's status, an unset variable, a bad pattern): it
    raises through the script to the nearest handler (SPEC 1.2 rule 2)."""

    fatal = False
    """Whether nothing in the script may handle it (LimitError)."""

    where = None
    """The location ({"unit", "span", "chain"}) of an earlier error this one reports on
    (`retry` giving up points at the failure of its last attempt), or None: here."""

    def __init__(self, status: int, message: str, span=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.span = span


class LimitError(ShellError):
    """A runaway script hit a limit (FUNCNEST nested calls): no `catch`, condition or
    pipeline stage handles it, since each would let the runaway go on (`f() { f | f; }`
    would take 2**depth calls to fail); it ends the branch, running its `finally` blocks."""

    fatal = True


class Unwind(Exception):
    """break / continue / return / exit."""

    def __init__(self, kind: str, value: int):
        super().__init__(kind)
        self.kind = kind
        self.value = value


class NeedEffect(Exception):
    """Raised by code re-run with memoised results when it needs one more effect."""

    def __init__(self, req: dict):
        super().__init__(req.get("op"))
        self.req = req


BLOCKED = {"op": "blocked"}
"""What an instruction returns when its branch must wait for other branches (no effect)."""


class NeedBranches(NeedEffect):
    """Raised by `wait` when the branches it waits for have not all ended: the branch blocks
    and the instruction runs again when another branch ends."""

    def __init__(self):
        super().__init__(BLOCKED)
