"""Shared by the runner and CLI tests: a private state directory, and `fm` with the fake machine."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FAKEFM = HERE / "fakefm.py"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty FM_HOME (and no config file) for this test, in-process and for children."""
    h = tmp_path / "home"
    monkeypatch.setenv("FM_HOME", str(h))
    monkeypatch.setenv("FM_CONFIG", os.devnull)
    monkeypatch.delenv("FM_CRASH_AT", raising=False)
    return h


@pytest.fixture
def work(tmp_path, home):
    """A working directory holding a script count.fm (the fake machine ignores its text)."""
    w = tmp_path / "work"
    w.mkdir()
    (w / "count.fm").write_text("echo fake\n")
    return w


def fakefm(*args, cwd, env=None, timeout=30, **kw) -> subprocess.CompletedProcess:
    """Run `fm ARGS` with the fake machine in a child process."""
    return subprocess.run([sys.executable, str(FAKEFM), *map(str, args)], cwd=cwd,
                          env=_env(env), capture_output=True, text=True, timeout=timeout, **kw)


def fakefm_popen(*args, cwd, env=None, **kw) -> subprocess.Popen:
    """Start `fm ARGS` with the fake machine, in its own session (so a test can kill its group)."""
    return subprocess.Popen([sys.executable, str(FAKEFM), *map(str, args)], cwd=cwd,
                            env=_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, **kw)


def _env(extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.update(extra or {})
    return env


def only_job(home: Path) -> tuple[str, Path]:
    """The one job in the store: (id, journal path)."""
    jobs = sorted((home / "jobs").iterdir())
    assert len(jobs) == 1, jobs
    return jobs[0].name, jobs[0] / "journal.jsonl"


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def kinds(path: Path) -> list[str]:
    return [r["kind"] for r in records(path)]


def real_fm(*args, cwd, home, env=None, timeout=120) -> subprocess.CompletedProcess:
    """Run the real `fm ARGS` with FM_HOME=home, no config file and no other FM_ variables."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("FM_") or k == "FM_HAND_OVER"}
    e.update(FM_HOME=str(home), FM_CONFIG=os.devnull, PYTHONPATH=str(ROOT))
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "flowmetal", *map(str, args)], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=timeout)


def journal_of(home: Path) -> tuple[str, list]:
    """The one job in the store at `home`: (id, its records)."""
    (job,) = os.listdir(home / "jobs")
    text = (home / "jobs" / job / "journal.jsonl").read_text()
    return job, [json.loads(line) for line in text.splitlines()]


def watchdogs(home=None) -> list[int]:
    """Pids of the watchdogs (connectors/watchdog.py) of the runners of state dir `home`
    (default $FM_HOME)."""
    out = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if b"fm-watchdog" in argv and f"FM_HOME={home or os.environ['FM_HOME']}".encode() in env:
            out.append(int(name))
    return out
