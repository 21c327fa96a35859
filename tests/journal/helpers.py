"""Shared helpers for the journal tests: build journals and run Python in a child process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flowmetal.journal import Journal

ROOT = Path(__file__).resolve().parents[2]

STARTED = {"version": "0.1.0", "name": "t", "filename": "t.fm", "source": "echo hi\n",
           "argv": ["t.fm"], "cwd": "/", "env": {"HOME": "/root"}}


def make(path: Path, n: int, *, snapshot_every: int = 0) -> Journal:
    """A journal of n records (job.started first); every snapshot_every-th is a snapshot."""
    j = Journal.create(path, STARTED, fsync=False)
    while j.next_seq < n:
        s = j.next_seq
        if snapshot_every and s % snapshot_every == 0:
            j.append("snapshot", {"step": s, "state": {"pc": s, "vars": {"i": s}}}, sync=False)
        else:
            j.append("effect.done", {"step": s, "res": {"status": 0, "out": f"line {s}\n"}},
                     sync=False)
    return j


def lines(path: Path) -> list[bytes]:
    """The file's lines, each with its newline if it has one."""
    return path.read_bytes().splitlines(keepends=True)


def python(code: str, *args, **kw) -> subprocess.Popen:
    """Start `python -c code` with this project importable."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
