"""`fm cancel`, `fm kill` and `fm prune` on real jobs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = """try {
  sh -c 'touch started; exec sleep 30'
} catch {
  echo caught
} finally {
  echo cleanup > finally.txt
}
echo not reached
"""


def env_for(home: Path, **extra) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("FM_") or k == "FM_HAND_OVER"}
    e["FM_HOME"] = str(home)
    e.update(extra)
    return e


def fm(args, cwd, home, **extra):
    return subprocess.run([sys.executable, "-m", "flowmetal", *args], cwd=cwd,
                          env=env_for(home, **extra), capture_output=True, text=True, timeout=60)


def start(work: Path, home: Path) -> subprocess.Popen:
    (work / "c.fm").write_text(SCRIPT)
    p = subprocess.Popen([sys.executable, "-m", "flowmetal", "c.fm"], cwd=work, env=env_for(home),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    deadline = time.time() + 20
    while not (work / "started").exists():
        assert time.time() < deadline
        time.sleep(0.02)
    return p


def last(home: Path) -> dict:
    (job,) = os.listdir(home / "jobs")
    return json.loads((home / "jobs" / job / "journal.jsonl").read_text().splitlines()[-1])


def test_cancel_a_running_job_runs_its_finally(tmp_path):
    work, home = tmp_path, tmp_path / "h"
    p = start(work, home)
    r = fm(["cancel", "c"], work, home)
    assert r.returncode == 0 and "cancelling job c-" in r.stderr
    out, err = p.communicate(timeout=20)
    assert p.returncode == 130, err
    assert out == "" and (work / "finally.txt").read_text() == "cleanup\n"
    rec = last(home)
    assert rec["kind"] == "job.cancelled" and rec["reason"] == "cancelled (fm cancel)"


def test_cancel_an_orphaned_job_runs_its_finally_here(tmp_path):
    work, home = tmp_path, tmp_path / "h"
    p = start(work, home)
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate(timeout=20)
    r = fm(["cancel", "c"], work, home)
    assert r.returncode == 130, r.stderr
    assert (work / "finally.txt").read_text() == "cleanup\n"
    assert last(home)["kind"] == "job.cancelled"
    again = fm(["cancel", "c"], work, home)
    assert again.returncode == 1 and "already finished" in again.stderr


def test_kill_stops_at_once_without_finally(tmp_path):
    work, home = tmp_path, tmp_path / "h"
    p = start(work, home)
    r = fm(["kill", "c"], work, home)
    assert r.returncode == 0, r.stderr
    p.communicate(timeout=20)
    assert p.returncode == -signal.SIGKILL
    assert not (work / "finally.txt").exists()
    rec = last(home)
    assert rec["kind"] == "job.cancelled" and rec["status"] == 137
    ps = fm(["ps", "-a", "--json"], work, home)
    assert json.loads(ps.stdout)["state"] == "cancelled"


def test_prune_deletes_only_old_finished_jobs(tmp_path):
    work, home = tmp_path, tmp_path / "h"
    (work / "ok.fm").write_text("/bin/true\n")
    assert fm(["ok.fm"], work, home).returncode == 0
    assert fm(["ok.fm"], work, home, FM_CRASH_AT="2").returncode == -signal.SIGKILL
    r = fm(["prune", "--older-than", "1h"], work, home)
    assert r.returncode == 0 and "removed 0" in r.stderr
    time.sleep(1.1)
    r = fm(["prune", "--older-than", "1s"], work, home)
    assert r.returncode == 0 and "removed 1" in r.stderr
    assert len(os.listdir(home / "jobs")) == 1          # the unfinished one stays
    bad = fm(["prune", "--older-than", "soon"], work, home)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
