#!/usr/bin/env python3
"""Overhead of the durable wrappers: `retry` and `timeout` around /bin/true x N vs the bare loop.

Run from the repository root:  .venv/bin/python bench/durable.py [N]
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FM = [sys.executable, "-m", "flowmetal"]


def best(script: str, d: str, runs: int = 3) -> float:
    Path(d, "b.fm").write_text(script)
    times = []
    for k in range(runs):
        env = {k2: v for k2, v in os.environ.items() if not k2.startswith("FM_")}
        env["FM_HOME"] = os.path.join(d, f"home{k}{len(script)}")
        t0 = time.perf_counter()
        subprocess.run(FM + ["b.fm"], cwd=d, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return min(times)


def main(n: int = 1000):
    loop = f"for ((i=0; i<{n}; i++)); do {{}}; done\n"
    with tempfile.TemporaryDirectory() as d:
        bare = best(loop.format("/bin/true"), d)
        retry = best(loop.format("retry -- /bin/true"), d)
        block = best(loop.format("retry { /bin/true; }"), d)
        tmo = best(loop.format("timeout 10s -- /bin/true"), d)
    print(f"/bin/true x{n}: bare {bare:.3f}s")
    for name, t in (("retry -- /bin/true", retry), ("retry { /bin/true; }", block),
                    ("timeout 10s -- /bin/true", tmo)):
        print(f"  {name:<26} {t:.3f}s  ratio {t / bare:.2f}  (target <= 1.3)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
