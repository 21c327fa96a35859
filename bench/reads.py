#!/usr/bin/env python3
"""Read benchmarks for issue 8: `while read` and `mapfile` over a file vs bash, journal bytes.

Run from the repository root:  .venv/bin/python bench/reads.py [loop|mapfile|inner]...
Each prints its figures; nothing here is asserted (speed is measured, not tested).
"""
from __future__ import annotations

import os
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


def _run(argv, env=None, cwd=None, runs=3) -> tuple[float, str]:
    """Best wall time of `runs` runs, in seconds, and the last run's stdout."""
    best, out = [], ""
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.PIPE, text=True)
        best.append(time.perf_counter() - t0)
        out = p.stdout
    return min(best), out


def _journal_bytes(home: str) -> int:
    """The size of the journal of the one job under FM_HOME `home` (the last one run)."""
    jobs = Path(home, "jobs")
    newest = max(jobs.iterdir(), key=lambda p: p.stat().st_mtime)
    return (newest / "journal.jsonl").stat().st_size


def _numbers(d: str, n: int) -> Path:
    f = Path(d, "nums.txt")
    f.write_text("".join(f"{i}\n" for i in range(1, n + 1)))
    return f


def _fixed_cost(d: str) -> float:
    """`fm -c true`: start-up and the journal's fixed records, subtracted from nothing but
    shown so the per-line cost can be read off."""
    t, _ = _run(FM + ["-c", "true"], env=_env(os.path.join(d, "h0")), cwd=d)
    return t


def loop(n: int = 10000):
    """`while read -r l; do n=$((n+l)); done < f` over n lines: fm vs bash."""
    with tempfile.TemporaryDirectory() as d:
        f = _numbers(d, n)
        Path(d, "loop.fm").write_text(
            "n=0\nwhile read -r l; do n=$((n+l)); done < nums.txt\necho $n\n")
        bash, out_b = _run(["bash", "loop.fm"], cwd=d)
        home = os.path.join(d, "home")
        fm, out_f = _run(FM + ["loop.fm"], env=_env(home), cwd=d)
        size = _journal_bytes(home)
        base = _fixed_cost(d)
        fsize = f.stat().st_size
    ok = "" if out_b == out_f else f"  OUTPUT DIFFERS: bash {out_b!r} fm {out_f!r}"
    print(f"while read x{n}: bash {bash:.3f}s  fm {fm:.3f}s (fm -c true {base:.3f}s)  "
          f"ratio fm/bash {fm / bash:.1f}  (target <= 10)  journal {size} bytes for a "
          f"{fsize}-byte file{ok}")


def mapfile(n: int = 10000):
    """`mapfile -t a < f` of n lines: wall time and journal bytes."""
    with tempfile.TemporaryDirectory() as d:
        f = _numbers(d, n)
        Path(d, "m.fm").write_text('mapfile -t a < nums.txt\necho "${#a[@]} ${a[-1]}"\n')
        home = os.path.join(d, "home")
        fm, out = _run(FM + ["m.fm"], env=_env(home), cwd=d)
        size = _journal_bytes(home)
        Path(d, "e.fm").write_text("a=()\n")
        ehome = os.path.join(d, "ehome")
        base, _ = _run(FM + ["e.fm"], env=_env(ehome), cwd=d)
        ebytes = _journal_bytes(ehome)
        bash, _ = _run(["bash", "m.fm"], cwd=d)
        fsize = f.stat().st_size
    print(f"mapfile -t x{n}: fm {fm:.3f}s (an empty script {base:.3f}s: +{fm - base:.3f}s; "
          f"bash {bash:.3f}s; target <= 0.3s)  journal {size} bytes ({size - ebytes} over an "
          f"empty job's) for a {fsize}-byte file: {(size - ebytes) / fsize:.2f}x  "
          f"(target <= 2)  -> {out.strip()}")


def inner(n: int = 2000):
    """A program started inside the loop each 10th line: `head -n1` takes the next line."""
    with tempfile.TemporaryDirectory() as d:
        _numbers(d, n)
        Path(d, "i.fm").write_text(
            "n=0; k=0\n"
            "while read -r l; do\n"
            "  n=$((n+l)); k=$((k+1))\n"
            "  if (( k % 10 == 0 )); then x=$(head -n1); n=$((n+x)); fi\n"
            "done < nums.txt\necho $n $k\n")
        bash, out_b = _run(["bash", "i.fm"], cwd=d)
        home = os.path.join(d, "home")
        fm, out_f = _run(FM + ["i.fm"], env=_env(home), cwd=d)
        size = _journal_bytes(home)
    ok = "same output" if out_b == out_f else f"OUTPUT DIFFERS: bash {out_b!r} fm {out_f!r}"
    print(f"while read x{n} with head -n1 every 10th line: bash {bash:.3f}s  fm {fm:.3f}s  "
          f"journal {size} bytes  {ok}")


BENCHES = {"loop": loop, "mapfile": mapfile, "inner": inner}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(BENCHES):
        BENCHES[name]()
