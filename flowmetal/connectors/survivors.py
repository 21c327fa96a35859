"""Programs that outlived the runner that started them (kill -9 of `fm`, a crash).

A step that is run again after a crash (G2) must never run alongside its first copy. Every
program a step starts has `FM_STEP_KEY=<job>-<step>` in its environment, and so, usually, have
the programs it starts in turn; before the runner re-runs a step, it stops every process that
still carries that step's key: SIGTERM, then SIGKILL after a grace period. Steps that completed
are never touched: what they left running on purpose (a daemon they started) stays.

Linux reads /proc/<pid>/environ (the user's own processes only). Elsewhere there is no cheap
way to read another process's environment, and nothing is stopped (docs/effects.md).
"""
from __future__ import annotations

import os
import signal
import time

GRACE = 5.0
"""Seconds a survivor has to exit after SIGTERM before it gets SIGKILL."""


def survivors(key: str, *, job: bool = False) -> list[int]:
    """Pids of live processes (not this one) whose environment has FM_STEP_KEY=`key`; with
    `job`, FM_STEP_KEY=`key`-N for any step N of job `key`."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    want = b"FM_STEP_KEY=" + key.encode()
    me = os.getpid()
    found = []
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue            # gone, or another user's
        if any(_matches(v, want, job) for v in env.split(b"\0")):
            found.append(int(name))
    return found


def _matches(var: bytes, want: bytes, job: bool) -> bool:
    if not job:
        return var == want
    return var.startswith(want + b"-") and var[len(want) + 1:].isdigit()


def stop_survivors(key: str, grace: float = GRACE, *, job: bool = False) -> list[int]:
    """Stop the survivors of step `key` (of every step of job `key` with `job`), waiting until
    they are gone; returns their pids."""
    pids = survivors(key, job=job)
    if not pids:
        return pids
    _signal(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return pids
        time.sleep(0.02)
    _signal(pids, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return pids


def _signal(pids: list[int], signum: int) -> None:
    for p in pids:
        try:
            os.kill(p, signum)
        except (ProcessLookupError, PermissionError):
            pass


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its parent counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not os.path.isdir("/proc")  # no /proc: trust kill(0)


if __name__ == "__main__":      # the watchdog of a runner that died (connectors/watchdog.py)
    import sys
    if len(sys.argv) == 2:
        stop_survivors(sys.argv[1], job=True)
