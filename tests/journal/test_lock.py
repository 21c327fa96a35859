"""The job lock (G7): exclusive across processes, released by death, not inherited by children."""
from __future__ import annotations

import os
import signal
import stat
import time

import pytest

from flowmetal.errors import JobLockedError
from flowmetal.journal import JobLock

from .helpers import python

HOLDER = """
import subprocess, sys, time
from flowmetal.journal import JobLock
lock = JobLock.acquire(sys.argv[1])
if len(sys.argv) > 2:  # leave a long-lived child behind, as a runner's effect would be
    child = subprocess.Popen(["sleep", "30"])
    print("child", child.pid, flush=True)
print("locked", flush=True)
time.sleep(30)
"""

TRY = """
import sys
from flowmetal.errors import JobLockedError
from flowmetal.journal import JobLock
try:
    JobLock.acquire(sys.argv[1]).release()
    print("acquired")
except JobLockedError as e:
    print(e)
"""


@pytest.fixture
def job_dir(tmp_path):
    d = tmp_path / "t-abc123"
    d.mkdir()
    return d


def _start_holder(job_dir, *extra):
    proc = python(HOLDER, job_dir, *extra)
    out = []
    while True:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        out.append(line.split())
        if line.startswith("locked"):
            return proc, out


def test_acquire_release_and_holder(job_dir):
    assert JobLock.holder(job_dir) is None  # no lock file yet
    lock = JobLock.acquire(job_dir)
    path = job_dir / "lock"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == f"{os.getpid()}\n"
    assert JobLock.holder(job_dir) == os.getpid()
    # flock belongs to the open file, so a second acquire conflicts even within one process.
    with pytest.raises(JobLockedError, match=rf"job t-abc123 is being run by process {os.getpid()}"):
        JobLock.acquire(job_dir)
    lock.release()
    lock.release()
    assert not lock.held
    assert JobLock.holder(job_dir) is None
    with JobLock.acquire(job_dir) as again:
        assert again.held
    assert JobLock.holder(job_dir) is None


def test_a_stale_pid_in_the_file_is_not_trusted(job_dir):
    (job_dir / "lock").write_text("1\n")  # what a SIGKILLed runner leaves behind
    assert JobLock.holder(job_dir) is None
    with JobLock.acquire(job_dir):
        assert JobLock.holder(job_dir) == os.getpid()


def test_another_process_cannot_acquire_while_we_hold_it(job_dir):
    with JobLock.acquire(job_dir):
        proc = python(TRY, job_dir)
        out, err = proc.communicate(timeout=10)
        assert out.strip() == f"job t-abc123 is being run by process {os.getpid()}", err
    proc = python(TRY, job_dir)
    assert proc.communicate(timeout=10)[0].strip() == "acquired"


def test_the_lock_dies_with_a_sigkilled_holder(job_dir):
    proc, _ = _start_holder(job_dir)
    try:
        with pytest.raises(JobLockedError, match=rf"being run by process {proc.pid}\Z"):
            JobLock.acquire(job_dir)
        assert JobLock.holder(job_dir) == proc.pid
    finally:
        proc.kill()  # SIGKILL: no cleanup runs in the holder
        proc.wait(10)
    assert JobLock.holder(job_dir) is None
    with JobLock.acquire(job_dir):
        assert JobLock.holder(job_dir) == os.getpid()


def test_children_of_the_holder_do_not_keep_the_lock(job_dir):
    proc, out = _start_holder(job_dir, "with-child")
    child = int(next(words[1] for words in out if words[0] == "child"))
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        os.kill(child, 0)  # the child still runs...
        deadline = time.monotonic() + 5
        while JobLock.holder(job_dir) is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        JobLock.acquire(job_dir).release()  # ...yet the lock is free
    finally:
        os.kill(child, signal.SIGKILL)
