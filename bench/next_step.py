#!/usr/bin/env python3
"""Delivery to the job's next step, for issue 9: how long from the moment an event is POSTed
to a real daemon on loopback until the job's step after its `await` runs.

Run from the repository root:  .venv/bin/python bench/next_step.py [N]
The job loops `await --event go; echo "$EPOCHREALTIME" >> OUT` N times; the bench POSTs one
event at a time and waits for the job's line, then takes the line's time (drawn when the
step ran) minus the time just before the POST. Two ways the job can wait:

  held       a foreground `fm` runs the job; its runner looks at the inbox every 0.05 s
  lingering  `fm run -d`: the daemon's runner lingers 2 s at each await before it parks
             (FM_LINGER), and each event comes sooner
  parked     the same with FM_LINGER=0: the runner parks the job at each await and exits;
             the delivery makes the daemon start a runner, which resumes the job
Nothing is asserted.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """n=0
while [ $n -lt $1 ]; do
  await --event go > /dev/null
  echo "$EPOCHREALTIME" >> "$2"
  n=$((n + 1))
done
"""


def lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def measure(mode: str, n: int, d: Path) -> list[float]:
    home, cfg, out = d / f"home-{mode}", d / "c.toml", d / f"out-{mode}"
    env = dict(os.environ, FM_HOME=str(home), FM_CONFIG=str(cfg), PYTHONPATH=str(ROOT),
               FM_HAND_OVER="0")
    env.pop("FM_LINGER", None)
    if mode == "parked":
        env["FM_LINGER"] = "0"
    fm = [sys.executable, "-m", "flowmetal"]
    subprocess.run([*fm, "daemon", "start"], env=env, check=True, capture_output=True)
    script = d / "loop.fm"
    fg = None
    if mode == "held":
        fg = subprocess.Popen([*fm, str(script), str(n), str(out)], env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        job = None
        while not job:
            time.sleep(0.05)
            ps = subprocess.run([*fm, "ps", "--json"], env=env, capture_output=True, text=True)
            job = next((json.loads(x)["id"] for x in ps.stdout.splitlines()), None)
    else:
        job = subprocess.run([*fm, "run", "-d", str(script), str(n), str(out)], env=env,
                             check=True, capture_output=True, text=True).stdout.strip()
    info = json.loads((home / "daemon.json").read_text())
    token = (home / "daemon.token").read_text().strip()
    time.sleep(1.0)                              # the job reaches its first await
    got = []
    for i in range(n):
        req = urllib.request.Request(f"{info['url']}/jobs/{job}/events/go", data=b"x",
                                     headers={"Authorization": f"Bearer {token}"})
        t0 = time.time()
        urllib.request.urlopen(req, timeout=30).read()
        while len(seen := lines(out)) <= i:
            time.sleep(0.001)
        got.append(float(seen[i]) - t0)
    if fg is not None:
        fg.wait(30)
    subprocess.run([*fm, "daemon", "stop"], env=env, capture_output=True)
    return got


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "c.toml").write_text('[daemon]\nlisten = "127.0.0.1:0"\n')
        (d / "loop.fm").write_text(SCRIPT)
        for mode in ("held", "lingering", "parked"):
            lat = sorted(measure(mode, n, d))
            pct = {p: lat[min(len(lat) - 1, int(len(lat) * p / 100))] * 1000 for p in (50, 99)}
            print(f"{mode}: {n} events one at a time, delivery to next step p50 "
                  f"{pct[50]:.0f} ms, p99 {pct[99]:.0f} ms, max {lat[-1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
