#!/usr/bin/env python3
"""Pipelines with fm stages: a stream read by a `while read` loop, programs inside the loop,
and an endless producer cut short, against bash.

Run from the repository root:  .venv/bin/python bench/pipes.py [LINES]
Prints its figures (best of 3 wall times) and the journal size of each fm run; nothing here is
asserted (speed is measured, not tested).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FM = [sys.executable, "-m", "flowmetal"]

CASES = {
    "stream, builtin loop": "seq {n} | while read -r x; do :; done",
    "stream, /bin/true per line": "seq {m} | while read -r x; do /bin/true; done",
    "buffer, /usr/bin/test per line": "for i in $(seq {m}); do echo $i; done | "
                                      "while read -r x; do /usr/bin/test $x -gt 0; done",
    "yes | while read (break at {n})": "n=0; yes | while read -r y; do n=$((n+1)); "
                                       "[ $n -ge {n} ] && break; done",
}


def run(argv: list, home: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_")}
    if home is not None:
        env.update(FM_HOME=home, FM_CONFIG=os.devnull)
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, timeout=600)
    return time.perf_counter() - t0


def journal_bytes(home: str) -> int:
    return sum(p.stat().st_size for p in Path(home).glob("jobs/*/journal.jsonl"))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    with tempfile.TemporaryDirectory() as d:
        print(f"{'case':40} {'fm s':>8} {'bash s':>8} {'journal KiB':>12}")
        for name, text in CASES.items():
            script = text.format(n=n, m=max(n // 100, 1))
            homes = [tempfile.mkdtemp(dir=d) for _ in range(3)]
            fm = min(run(FM + ["-c", script], h) for h in homes)
            sh = min(run(["bash", "-c", script], None) for _ in range(3))
            size = journal_bytes(homes[0]) / 1024
            print(f"{name.format(n=n):40} {fm:8.3f} {sh:8.3f} {size:12.1f}")


if __name__ == "__main__":
    main()
