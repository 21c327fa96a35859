"""A real daemon under measurement, for bench/parked.py: started over a state directory as
`fm daemon run` (its own session), its /proc figures (RSS, CPU, threads, files, wake-ups)
and what its daemon.log says (when each job's runner started, how many have exited)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
_LINE = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO job (\S+): (.*)")


class Daemon:
    """`fm daemon run` over `home`; stop() SIGTERMs it (SIGKILL after 90 s)."""

    def __init__(self, home: Path, env: dict):
        self.home = home
        self.env = env
        self.t0 = time.time()
        self.log_from = _size(home / "daemon.log")
        self.proc = subprocess.Popen([sys.executable, "-m", "flowmetal", "daemon", "run"],
                                     env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self.pid = self.proc.pid

    def listening(self, timeout: float = 120.0) -> float:
        """Seconds from the spawn until daemon.json names this daemon."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if f'"pid": {self.pid},' in _read(self.home / "daemon.json"):
                return time.time() - self.t0
            if self.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited with {self.proc.returncode}")
            time.sleep(0.02)
        raise RuntimeError("the daemon did not start")

    def events(self) -> list[tuple[float, str, str]]:
        """(epoch time, job id, what) of each `job …` line this daemon logged so far."""
        text = _read(self.home / "daemon.log", self.log_from)
        out = []
        for m in _LINE.finditer(text):
            when = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            out.append((when, m[2], m[3]))
        return out

    def stat(self) -> dict:
        """RSS and peak RSS (MB), CPU seconds (own; children reaped), threads, open files,
        context switches (voluntary: how often it woke from a wait)."""
        status = _read(Path(f"/proc/{self.pid}/status"))
        field = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        st = _read(Path(f"/proc/{self.pid}/stat")).rsplit(")", 1)[1].split()
        return {"rss": int(field["VmRSS"].split()[0]) / 1024,
                "hwm": int(field["VmHWM"].split()[0]) / 1024,
                "cpu": (int(st[11]) + int(st[12])) / TICK,
                "child_cpu": (int(st[13]) + int(st[14])) / TICK,
                "threads": int(field["Threads"]),
                "fds": len(os.listdir(f"/proc/{self.pid}/fd")),
                "wakeups": _wakeups(self.pid)}

    def stop(self) -> float:
        """SIGTERM and wait; the seconds it took."""
        t0 = time.perf_counter()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return time.perf_counter() - t0


def _wakeups(pid: int) -> int:
    """Voluntary context switches of all the process's threads (each a wait that ended)."""
    n = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        for line in _read(Path(f"/proc/{pid}/task/{tid}/status")).splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                n += int(line.split()[1])
    return n


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read(path: Path, offset: int = 0) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
