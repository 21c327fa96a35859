"""A watchdog per job: the programs a runner started die with it (issue 17 item 4).

Before a runner spawns the first program of a job, it starts a tiny `sh` in a process group of
its own (so Ctrl-C on the terminal does not reach it) that ignores the usual signals and reads
a pipe whose write end only the runner holds. When the runner finishes the job in any orderly
way (done, failed, cancelled, SIGTERM, an error) it writes `ok` and the watchdog exits. When
the runner dies without a word (kill -9, the OOM killer), the pipe
hits end of file and the watchdog runs `python -m flowmetal.connectors.survivors JOB`, which
stops every process whose environment carries one of the job's step keys (FM_STEP_KEY):
SIGTERM, then SIGKILL after a grace period. So a step's program never outlives a dead runner
to run alongside its second copy, and what a finished job left running on purpose stays.

It costs one `sh` per job that runs programs (started with posix_spawn, about a millisecond,
idle until the end) and nothing per command.
"""
from __future__ import annotations

import os
import sys

SCRIPT = ('trap "" INT TERM HUP QUIT TSTP TTIN TTOU; IFS= read -r said; '
          '[ "$said" = ok ] || exec "$1" -m flowmetal.connectors.survivors "$2"')

_WATCHED: dict[str, tuple[int, int]] = {}
"""job id -> (the watchdog's pid, the write end of its pipe)."""


def ensure(env: dict) -> None:
    """Start the watchdog of the job a program is about to run for (from its FM_STEP_KEY),
    unless it runs already. Failing to start one is not an error: survivors are still stopped
    when the step runs again (runner/run.py)."""
    key = env.get("FM_STEP_KEY")
    if not key or "-" not in key:
        return
    job = key.rsplit("-", 1)[0]
    if job in _WATCHED:
        return
    r, w = os.pipe()
    try:
        pid = os.posix_spawn("/bin/sh", ["sh", "-c", SCRIPT, "fm-watchdog", sys.executable, job],
                       dict(os.environ), setpgroup=0,
                       file_actions=[(os.POSIX_SPAWN_DUP2, r, 0)])
    except OSError:
        os.close(w)
        return
    finally:
        os.close(r)
    _WATCHED[job] = (pid, w)


def release(job: str) -> None:
    """The runner is done with the job in an orderly way: its watchdog exits, killing none."""
    pid, w = _WATCHED.pop(job, (None, None))
    if w is None:
        return
    try:
        os.write(w, b"ok\n")
    except OSError:
        pass
    os.close(w)
    try:
        os.waitpid(pid, 0)      # it exits at once; no zombie left in a long-lived process
    except ChildProcessError:
        pass
