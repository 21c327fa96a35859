#!/usr/bin/env python3
"""Callback intake benchmark for issue 9: deliveries per second into a real daemon on
loopback, from a separate load process, and a check that none was lost.

Run from the repository root:  .venv/bin/python bench/intake.py [N] [CLIENTS]
A daemon is started over a fresh state directory; one job (`sleep`, held by its runner) gets N
callback tokens; a load process sends one POST per token from CLIENTS threads (keep-alive
connections) and reports throughput and latency percentiles; then every delivery is checked
in the job's inbox. Each 2xx means the delivery was fsync'd first. Nothing is asserted.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LOAD = r'''
import http.client, sys, threading, time, json
from urllib.parse import urlsplit
url, tokens, clients = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
u = urlsplit(url)
lat, bad = [], []
def work(mine):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    for t in mine:
        t0 = time.perf_counter()
        c.request("POST", "/callbacks/" + t, body=b'{"n": 1}')
        r = c.getresponse(); r.read()
        lat.append(time.perf_counter() - t0)
        if r.status != 200: bad.append(r.status)
t0 = time.perf_counter()
ts = [threading.Thread(target=work, args=(tokens[i::clients],)) for i in range(clients)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps({"secs": time.perf_counter() - t0, "lat": sorted(lat), "bad": bad}))
'''


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    from flowmetal.journal.jsonl import JsonlStore
    with tempfile.TemporaryDirectory() as d:
        home = Path(d) / "home"
        cfg = Path(d) / "c.toml"
        cfg.write_text('[daemon]\nlisten = "127.0.0.1:0"\n')
        env = dict(os.environ, FM_HOME=str(home), FM_CONFIG=str(cfg), PYTHONPATH=str(ROOT))
        script = Path(d) / "wait.fm"
        script.write_text("sleep 600\n")
        fm = [sys.executable, "-m", "flowmetal"]
        job = subprocess.run([*fm, "run", "-d", str(script)], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
        store = JsonlStore(home)
        while store.holder(job) is None:
            time.sleep(0.05)
        tokens = [secrets.token_urlsafe(16) for _ in range(n)]
        for t in tokens:
            store.bind(t, job)
        url = json.loads((home / "daemon.json").read_text())["url"]
        out = subprocess.run([sys.executable, "-c", LOAD, url, ",".join(tokens), str(clients)],
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out)
        got = store.mail(job)
        lost = sum(1 for t in tokens if t not in got)
        lat = r["lat"]
        pct = {p: lat[min(len(lat) - 1, int(len(lat) * p / 100))] * 1000 for p in (50, 99)}
        print(f"{n} callbacks from {clients} clients: {n / r['secs']:.0f} deliveries/s, "
              f"p50 {pct[50]:.1f} ms, p99 {pct[99]:.1f} ms, non-2xx {len(r['bad'])}, "
              f"lost {lost}")
        subprocess.run([*fm, "kill", job], env=env, capture_output=True)
        subprocess.run([*fm, "daemon", "stop"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
