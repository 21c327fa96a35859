#!/usr/bin/env python3
"""`fm ps` over many jobs: wall time of `fm ps` (unfinished only) and `fm ps -a` (all) with N
finished jobs in the store (default 10,000), plus a handful of unfinished ones.

Run from the repository root:  .venv/bin/python bench/ps.py [N]
The jobs are made through the job store (no fsync), each a real two-record journal:
job.started and job.finished. Nothing is asserted.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flowmetal.journal import open_store
from flowmetal.journal.jobstore import new_job_id


def make_jobs(home: Path, n: int) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    store = open_store(home)
    for _ in range(n):
        with store.create(new_job_id("bench"), {
                "version": "bench", "name": "bench", "filename": "bench.fm",
                "source": "true\n", "argv": ["bench.fm"], "cwd": "/", "env": env, "pid": 1},
                fsync=False) as lease:
            lease.append("job.finished", {"status": 0, "step": 0}, sync=False)


def timed(argv, env) -> float:
    best = None
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        took = time.perf_counter() - t0
        best = took if best is None else min(best, took)
    return best


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as d:
        home = Path(d) / "home"
        t0 = time.perf_counter()
        make_jobs(home, n)
        made = time.perf_counter() - t0
        env = {k: v for k, v in os.environ.items() if not k.startswith("FM_")}
        env.update(FM_HOME=str(home), FM_CONFIG=os.devnull)
        fm = [sys.executable, "-m", "flowmetal"]
        print(f"{n} finished jobs made in {made:.1f}s")
        print(f"  fm ps      (unfinished only)  {timed(fm + ['ps'], env):.3f}s  (target <= 0.5)")
        print(f"  fm ps -a   (all {n})          {timed(fm + ['ps', '-a'], env):.3f}s")


if __name__ == "__main__":
    main()
