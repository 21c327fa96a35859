"""SIGTERM and SIGHUP to a foreground fm: the job stops where it stands, resumable, and fm says
so (docs/language.md, "Terminated, hung up"); a real runner, real signals, no tight clocks."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import ROOT, journal_of, real_fm

WAIT = 30.0
"""Seconds a step may take before the test gives up (each takes well under a second)."""


def start(script: str, work: Path, home: Path, wrap=()) -> subprocess.Popen:
    (work / "s.fm").write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_") or k == "FM_HAND_OVER"}
    env.update(FM_HOME=str(home), FM_CONFIG=os.devnull, PYTHONPATH=str(ROOT))
    return subprocess.Popen([*wrap, sys.executable, "-m", "flowmetal", "s.fm"], cwd=work,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def signal_when(proc: subprocess.Popen, ready: Path, sig: int, delay: float = 0):
    """Once `ready` holds something (and `delay` later), send `sig`; (stdout, stderr)."""
    try:
        wait_for(ready)
        time.sleep(delay)
        proc.send_signal(sig)
        return proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def wait_for(path: Path) -> None:
    end = time.monotonic() + WAIT
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig, status, says", [(signal.SIGTERM, 143, "terminated"),
                                               (signal.SIGHUP, 129, "hung up")])
def test_a_stop_signal_leaves_the_job_resumable_and_says_so(tmp_path, sig, status, says):
    work, home = tmp_path / "w", tmp_path / "h"
    work.mkdir()
    script = ("echo start >> log.txt\n"
              "/bin/sh -c 'echo $$ > child.pid; [ -e go ] || exec sleep 60'\n"
              "echo end >> log.txt\n")
    proc = start(script, work, home)
    _, err = signal_when(proc, work / "child.pid", sig)
    child = int((work / "child.pid").read_text())
    job, recs = journal_of(home)
    assert proc.returncode == status, err
    assert f"fm: {says}; job {job} can be resumed with fm resume {job}" in err
    assert "Traceback" not in err
    end = time.monotonic() + WAIT
    while alive(child):                 # the program in flight was stopped
        assert time.monotonic() < end, "the child survived"
        time.sleep(0.05)
    assert recs[-1]["kind"] == "effect.started"       # nothing journaled after: no cancel, no end
    (work / "go").write_text("")
    again = real_fm("resume", job, cwd=work, home=home, timeout=WAIT * 2)
    assert again.returncode == 0, again.stderr
    assert (work / "log.txt").read_text() == "start\nend\n"
    _, recs = journal_of(home)
    assert recs[-1]["kind"] == "job.finished"


def test_a_stop_signal_during_a_durable_sleep(tmp_path):
    work, home = tmp_path / "w", tmp_path / "h"
    work.mkdir()
    proc = start("echo start >> log.txt\nsleep 1\necho end >> log.txt\n", work, home)
    _, err = signal_when(proc, work / "log.txt", signal.SIGTERM, delay=0.2)
    assert proc.returncode == 143, err
    assert "can be resumed with fm resume" in err
    job, _ = journal_of(home)
    again = real_fm("resume", job, cwd=work, home=home, timeout=WAIT * 2)
    assert again.returncode == 0, again.stderr
    assert (work / "log.txt").read_text() == "start\nend\n"


def test_a_stop_signal_ignored_by_nohup_stays_ignored(tmp_path):
    work, home = tmp_path / "w", tmp_path / "h"
    work.mkdir()
    proc = start("echo $$ > fm.pid\nsleep 1\necho done\n", work, home, wrap=["nohup"])
    out, err = signal_when(proc, work / "fm.pid", signal.SIGHUP)
    assert proc.returncode == 0, err
    assert out == "done\n"
