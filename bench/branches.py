#!/usr/bin/env python3
"""Durable branches: 100 branches x 10 /bin/true vs the same 1,000 effects in one branch vs bash.

Run from the repository root:  .venv/bin/python bench/branches.py [BRANCHES] [PER_BRANCH]
Prints its figures; nothing here is asserted (speed is measured, not tested).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FM = [sys.executable, "-m", "flowmetal"]


def _env(home: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_")}
    env["FM_HOME"] = home
    env["FM_CONFIG"] = os.devnull
    return env


def best(argv, d: str, fm: bool, runs: int = 3) -> float:
    """Best wall time of `runs` runs, in seconds; each fm run gets a fresh FM_HOME."""
    times = []
    for _ in range(runs):
        env = _env(tempfile.mkdtemp(dir=d)) if fm else None
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=d, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return min(times)


def main(branches: int = 100, per: int = 10):
    inner = f"for i in $(seq {per}); do /bin/true; done"
    many = f"for b in $(seq {branches}); do {{ {inner}; }} & done; wait\n"
    one = f"for b in $(seq {branches}); do {inner}; done\n"
    with tempfile.TemporaryDirectory() as d:
        Path(d, "many.fm").write_text(many)
        Path(d, "one.fm").write_text(one)
        fm_many = best(FM + ["many.fm"], d, fm=True)
        fm_one = best(FM + ["one.fm"], d, fm=True)
        bash = best(["bash", "many.fm"], d, fm=False)
    n = branches * per
    print(f"/bin/true x{n} ({branches} branches x {per}), best of 3:")
    print(f"  {'fm, ' + str(branches) + ' branches (& / wait)':<34} {fm_many:.3f}s")
    print(f"  {'fm, one branch (plain loop)':<34} {fm_one:.3f}s")
    print(f"  {'bash, ' + str(branches) + ' jobs (& / wait)':<34} {bash:.3f}s")
    print(f"  ratio fm-branches/fm-one-branch {fm_many / fm_one:.2f}")
    print(f"  ratio fm-branches/bash          {fm_many / bash:.2f}")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    main(*args)
