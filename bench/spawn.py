#!/usr/bin/env python3
"""Spawn benchmark for issue 8: N x `/bin/true` in a loop, fm (fsync "always" and "batch") vs
bash, with a plain Python loop as the reference for what a durable runner must at least pay.

Run from the repository root:  .venv/bin/python bench/spawn.py [N] [RUNS]
The reference spawns /bin/true with subprocess and appends two JSON lines per command (the
request before, the result after, then one fsync), as fm's journal does for a world-changing
effect. Rows for fsync = "never" and `fm -c true` show what fm costs besides its fsyncs, and
its start-up. Runs are taken in turns (the machine is noisy): each row gives the best time, the
ratio of bests, and the median [min-max] of the ratios to bash's run of the same turn. A last
table compares the exec connector's two spawn paths in this process (docs/effects.md, "How it
runs"): posix_spawn (the stage's cwd is fm's) and Popen (another cwd). Nothing here is
asserted (speed is measured, not tested).

Figures: `bench/spawn.py 1000 5`, two invocations each of the tree before the spawn-path and
hot-path work (557ebd7, run with PYTHONPATH pointing at it) and after, alternated; Python 3.11,
Linux, 2 CPUs shared with other jobs (load 8-14: bash took 4-7 ms per /bin/true, 4-7x an idle
machine's 1 ms, so only same-turn ratios mean anything, and those loosely). Median [min-max]
of the same-turn ratios to bash:
                     always             batch              never              python ref
  before, run 1      2.78 [2.02-3.93]   1.39 [0.93-2.37]   1.13 [0.70-1.89]   1.44 [0.69-1.99]
  before, run 2      2.84 [2.26-3.96]   1.36 [0.88-1.79]   1.25 [0.88-1.98]   2.12 [1.90-2.70]
  after,  run 1      2.01 [1.65-2.78]   1.12 [0.82-1.26]   0.95 [0.47-2.13]   2.19 [1.91-2.34]
  after,  run 2      1.30 [1.25-2.03]   0.77 [0.73-1.16]   0.86 [0.49-1.63]   2.17 [1.80-3.41]
fm's own CPU (user+sys of the fm process, 1000 x /bin/true, one run each, same load): never
1.39 s before, 0.71 s after; always 1.64 s before, 1.08 s after (start-up ~0.11 s of each).
An earlier, quieter measurement of the tree before (issue 8): always 1.76-2.06, batch
1.39-1.61, python ref 1.10-1.16.
"""
from __future__ import annotations

import json
import os
import statistics
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
        paths = spawn_paths(d, max(n // 4, 50), runs)
    best = {key: min(v) for key, v in times.items()}
    bash = best["bash"]
    print(f"{TRUE} x{n} ({runs} runs): bash best {bash:.3f}s"
          f"   [ratios: of bests; median [min-max] of same-turn ratios]")
    print(f"  python: spawn + 2 journal lines + fsync  {best['ref']:.3f}s  ratio "
          f"{best['ref'] / bash:.2f}  {_spread(times['ref'], times['bash'])}   "
          f"(spawn alone {best['spawn']:.3f}s, {best['spawn'] / bash:.2f})")
    for mode, target in (("always", 1.4), ("batch", 1.15), ("never", None)):
        t = best[mode]
        aim = f"(target <= {target})" if target else "(no fsync: what fm costs besides)"
        print(f"  fm, fsync = \"{mode}\"{'':<18} {t:.3f}s  ratio {t / bash:.2f}  "
              f"{_spread(times[mode], times['bash'])}  {aim}  "
              f"{(t - bash) / n * 1e6:.0f} us/command over bash")
    print(f"  (fm -c true, start-up and end: {best['empty']:.3f}s, "
          f"{best['empty'] / bash:.2f} of bash's whole loop)")
    print("exec connector in this process, ms per /bin/true (median [min-max]; fm's CPU):")
    for name, (wall, cpu) in paths.items():
        print(f"  {name:<34} {statistics.median(wall):.3f} [{min(wall):.3f}-{max(wall):.3f}]"
              f"  {statistics.median(cpu):.3f}")


def _spread(times: list, bash: list) -> str:
    ratios = [t / b for t, b in zip(times, bash)]
    return f"{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]"


def spawn_paths(d: str, n: int, runs: int) -> dict:
    """ms per run (wall, and this process's CPU) of perform(exec /bin/true) through each spawn
    path, and of subprocess.run, taken in turns."""
    from flowmetal.connectors import Term, perform
    env = dict(os.environ, FM_STEP_KEY="bench-1")
    other = os.path.join(d, "elsewhere")
    os.symlink(d, other)        # the same directory, but not fm's cwd by name: Popen's path
    here = os.getcwd()
    os.chdir(d)
    term = Term()
    fds = {str(fd): {"kind": "term"} for fd in (0, 1, 2)}
    cases = {f"perform, {label}": {"op": "exec", "cwd": cwd, "stages": [
                 {"argv": [TRUE], "env": env, "fds": fds}]}
             for label, cwd in (("posix_spawn (cwd is fm's)", d), ("Popen (another cwd)", other))}
    out: dict = {name: ([], []) for name in [*cases, "subprocess.run([/bin/true])"]}
    try:
        for _ in range(runs):
            for name, (wall, cpu) in out.items():
                req = cases.get(name)
                c0, t0 = time.process_time(), time.perf_counter()
                for _ in range(n):
                    if req is None:
                        subprocess.run([TRUE])
                    else:
                        perform(req, term)
                wall.append((time.perf_counter() - t0) / n * 1e3)
                cpu.append((time.process_time() - c0) / n * 1e3)
    finally:
        os.chdir(here)
    return out


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
