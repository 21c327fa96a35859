#!/usr/bin/env python3
"""Core benchmarks for issue 2: loop vs bash, start-up, resume cost, journal bytes per effect.

Run from the repository root:  .venv/bin/python bench/core.py [loop|startup|resume|bytes]...
Each prints its figures; nothing here is asserted (speed is measured, not tested).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable
FM = [PY, "-m", "flowmetal"]


def _env(home: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_")}
    env["FM_HOME"] = home
    env.update(extra)
    return env


def _time(argv, env=None, cwd=None, runs=5) -> float:
    """Best wall time of `runs` runs, in seconds."""
    best = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        best.append(time.perf_counter() - t0)
    return min(best)


def loop(n: int = 1000):
    """fm vs bash running /bin/true n times in a loop (journal fsync on, the default)."""
    body = f"for ((i=0; i<{n}; i++)); do /bin/true; done\n"
    with tempfile.TemporaryDirectory() as d:
        Path(d, "loop.fm").write_text(body)
        bash = _time(["bash", "loop.fm"], cwd=d, runs=3)
        fm = _time(FM + ["loop.fm"], env=_env(os.path.join(d, "home")), cwd=d, runs=3)
    print(f"loop   /bin/true x{n}: bash {bash:.3f}s  fm {fm:.3f}s  ratio fm/bash {fm / bash:.2f}"
          f"  (target <= 2.5)")


def startup(runs: int = 20):
    """`fm -c true` vs `python3 -c pass` from the same interpreter."""
    with tempfile.TemporaryDirectory() as d:
        env = _env(os.path.join(d, "home"))
        py = [_time([PY, "-c", "pass"], env=env, runs=1) for _ in range(runs)]
        fm = [_time(FM + ["-c", "true"], env=env, runs=1) for _ in range(runs)]
    p, f = statistics.median(py), statistics.median(fm)
    print(f"startup median of {runs}: python -c pass {p * 1000:.1f}ms  fm -c true "
          f"{f * 1000:.1f}ms  ratio {f / p:.2f}  (target <= 3)")


def _resume_time(d: str, n: int) -> float:
    """Kill a job of n effects near its end, then time `fm resume`."""
    home = tempfile.mkdtemp(dir=d)
    Path(d, f"r{n}.fm").write_text(f"for ((i=0; i<{n}; i++)); do /bin/true; done\n"
                                   "/bin/true\n")
    # 2 records per effect + job.started + snapshots: find the length with a clean run first
    subprocess.run(FM + [f"r{n}.fm"], env=_env(home + "x"), cwd=d, check=True)
    jobs = Path(home + "x", "jobs")
    (job,) = os.listdir(jobs)
    total = len((jobs / job / "journal.jsonl").read_text().splitlines())
    subprocess.run(FM + [f"r{n}.fm"], env=_env(home, FM_CRASH_AT=str(total - 3)), cwd=d)
    (job,) = os.listdir(Path(home, "jobs"))
    t0 = time.perf_counter()
    subprocess.run(FM + ["resume", job], env=_env(home), cwd=d, check=True)
    return time.perf_counter() - t0


def resume(small: int = 10, big: int = 10000):
    """Resume after `small` vs after `big` effects (G5: should not grow with history)."""
    with tempfile.TemporaryDirectory() as d:
        a = min(_resume_time(d, small) for _ in range(3))
        b = _resume_time(d, big)
        b = min(b, _resume_time(d, big))
    print(f"resume after {small} effects {a * 1000:.0f}ms, after {big} effects {b * 1000:.0f}ms"
          f"  ratio {b / a:.2f}  (target <= 1.5)")


def journal_bytes(n: int = 1000):
    """Journal bytes per /bin/true effect."""
    with tempfile.TemporaryDirectory() as d:
        home = os.path.join(d, "home")
        Path(d, "b.fm").write_text(f"for ((i=0; i<{n}; i++)); do /bin/true; done\n")
        subprocess.run(FM + ["b.fm"], env=_env(home), cwd=d, check=True)
        (job,) = os.listdir(Path(home, "jobs"))
        size = Path(home, "jobs", job, "journal.jsonl").stat().st_size
        Path(d, "e.fm").write_text("true\n")
        subprocess.run(FM + ["e.fm"], env=_env(home + "e"), cwd=d, check=True)
        (job,) = os.listdir(Path(home + "e", "jobs"))
        base = Path(home + "e", "jobs", job, "journal.jsonl").stat().st_size
    print(f"journal {(size - base) / n:.0f} bytes per /bin/true effect "
          f"({size} bytes for {n}; {base} bytes of fixed cost: job.started with env and source)")


BENCHES = {"loop": loop, "startup": startup, "resume": resume, "bytes": journal_bytes}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(BENCHES):
        BENCHES[name]()
