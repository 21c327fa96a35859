#!/usr/bin/env python3
"""Spawn benchmark for issue 8: N x `/bin/true` in a loop, fm (fsync "always" and "batch") vs
bash, with a plain Python loop as the reference for what a durable runner must at least pay.

Run from the repository root:  .venv/bin/python bench/spawn.py [N] [RUNS]
The reference spawns /bin/true with subprocess and appends two JSON lines per command (the
request before, the result after, then one fsync), as fm's journal does for a world-changing
effect. Rows for fsync = "never" and `fm -c true` show what fm costs besides its fsyncs, and
its start-up. Each figure is the best of RUNS runs, taken in turns (the machine is noisy);
nothing here is asserted (speed is measured, not tested).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FM = [sys.executable, "-m", "flowmetal"]
TRUE = "/bin/true"


def _fm_env(d: str, mode: str, k: int) -> dict:
    env = {key: v for key, v in os.environ.items() if not key.startswith("FM_")}
    env["FM_HOME"] = os.path.join(d, f"home-{mode}-{k}")
    env["FM_CONFIG"] = os.path.join(d, f"{mode}.toml")
    return env


def _timed(argv, cwd, env=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def python_reference(n: int, d: str, journal: bool = True) -> float:
    """Spawn /bin/true n times; with `journal`, a JSON line before and after each spawn and
    an fsync after the second (on the same file system as fm's journals)."""
    fd = os.open(os.path.join(d, "ref.jsonl"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        t0 = time.perf_counter()
        for step in range(1, n + 1):
            if journal:
                os.write(fd, json.dumps({"kind": "effect.started", "step": step,
                                         "req": {"op": "exec", "argv": [TRUE]}}).encode() + b"\n")
            status = subprocess.run([TRUE]).returncode
            if journal:
                os.write(fd, json.dumps({"kind": "effect.done", "step": step,
                                         "res": {"status": [status]}}).encode() + b"\n")
                os.fsync(fd)
        return time.perf_counter() - t0
    finally:
        os.close(fd)


def main(n: int = 1000, runs: int = 5):
    with tempfile.TemporaryDirectory(dir=os.environ.get("FM_BENCH_DIR")) as d:
        Path(d, "t.fm").write_text(f"for ((i=0; i<{n}; i++)); do {TRUE}; done\n")
        for mode in ("always", "batch", "never"):
            Path(d, f"{mode}.toml").write_text(f'[journal]\nfsync = "{mode}"\n')
        times: dict = {"bash": [], "always": [], "batch": [], "never": [], "ref": [],
                       "spawn": [], "empty": []}
        for k in range(runs):
            times["bash"].append(_timed(["bash", "t.fm"], d))
            for mode in ("always", "batch", "never"):
                times[mode].append(_timed(FM + ["t.fm"], d, _fm_env(d, mode, k)))
            times["empty"].append(_timed(FM + ["-c", "true"], d, _fm_env(d, "never", k)))
            times["ref"].append(python_reference(n, d))
            times["spawn"].append(python_reference(n, d, journal=False))
    best = {key: min(v) for key, v in times.items()}
    bash = best["bash"]
    print(f"{TRUE} x{n} (best of {runs}): bash {bash:.3f}s")
    print(f"  python: spawn + 2 journal lines + fsync  {best['ref']:.3f}s  ratio "
          f"{best['ref'] / bash:.2f}   (spawn alone {best['spawn']:.3f}s, "
          f"{best['spawn'] / bash:.2f})")
    for mode, target in (("always", 1.4), ("batch", 1.15), ("never", None)):
        t = best[mode]
        aim = f"(target <= {target})" if target else "(no fsync: what fm costs besides)"
        print(f"  fm, fsync = \"{mode}\"{'':<18} {t:.3f}s  ratio {t / bash:.2f}  {aim}  "
              f"{(t - bash) / n * 1e6:.0f} us/command over bash")
    print(f"  (fm -c true, start-up and end: {best['empty']:.3f}s, "
          f"{best['empty'] / bash:.2f} of bash's whole loop)")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
