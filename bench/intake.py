#!/usr/bin/env python3
"""Callback intake benchmark for issue 9: deliveries per second into a real daemon on
loopback, from a separate load process, and a check that none was lost.

Run from the repository root:  .venv/bin/python bench/intake.py [N] [CLIENTS]
A daemon is started over a fresh state directory; one job (`/bin/sleep`, held by its runner) gets N
callback tokens; a load process sends one POST per token from CLIENTS threads (keep-alive
connections) and reports deliveries/s (overall, and sustained: between the 10th and 90th
percentile of completions), p50/p99 of the 2xx, the acknowledged deliveries missing from the
inbox (lost), the daemon's CPU per delivery, and how many deliveries each intake log sync
carried. A 2xx means the delivery is durable in the daemon's intake log and in the inbox.
Nothing is asserted.

Measured 2026-12-03 on the 2-core machine, quiet (docs/daemon.md has how it got there):

    2000 4: 1175-1308 deliveries/s (sustained 1243-1329), p50 2.8-3.1 ms, p99 6.4-7.8 ms,
            lost 0, 0.84-0.89 ms daemon CPU per delivery
    1000 8: 1403 deliveries/s (sustained 1468), p50 5.3 ms, p99 11.2 ms, lost 0, 0.82 ms
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LOAD = r'''
import socket, sys, threading, time, json
from urllib.parse import urlsplit
url, tokens, clients = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
u = urlsplit(url)
lat, done, acked, bad = [], [], [], []
BODY = b'{"n": 1}'
def response(sock, buf):
    # One HTTP/1.1 response off a keep-alive connection: (status, what is left in buf).
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, _, rest = buf.partition(b"\r\n\r\n")
    n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(rest) < n:
        rest += sock.recv(65536)
    return int(head.split(b" ", 2)[1]), rest[n:]
def work(mine):
    sock = socket.create_connection((u.hostname, u.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    for t in mine:
        req = (b"POST /callbacks/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (t.encode(), u.netloc.encode(), len(BODY), BODY))
        t0 = time.perf_counter()
        sock.sendall(req)
        status, buf = response(sock, buf)
        t1 = time.perf_counter()
        lat.append(t1 - t0); done.append(t1)
        (acked if 200 <= status < 300 else bad).append(t if status < 300 else status)
t0 = time.perf_counter()
ts = [threading.Thread(target=work, args=(tokens[i::clients],)) for i in range(clients)]
[t.start() for t in ts]; [t.join() for t in ts]
done = sorted(x - t0 for x in done)
print(json.dumps({"secs": time.perf_counter() - t0, "lat": sorted(lat), "done": done,
                  "acked": acked, "bad": bad}))
'''


def sustained(done: list[float]) -> float:
    """Deliveries per second between the 10th and the 90th percentile of completions (the
    steady part, without the start and the last stragglers)."""
    lo, hi = int(len(done) * 0.1), int(len(done) * 0.9)
    return (hi - lo) / max(done[hi - 1] - done[lo], 1e-9)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def lost(store, job: str, acked: list[str], wait: float = 10.0) -> int:
    """Acknowledged deliveries not in the job's inbox once the daemon has had `wait` s."""
    end = time.monotonic() + wait
    while True:
        got = store.mail(job)
        missing = sum(1 for t in acked if t not in got)
        if not missing or time.monotonic() > end:
            return missing
        time.sleep(0.1)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    from flowmetal.journal.jobstore import new_token
    from flowmetal.journal.jsonl import JsonlStore
    with tempfile.TemporaryDirectory() as d:
        home = Path(d) / "home"
        cfg = Path(d) / "c.toml"
        cfg.write_text('[daemon]\nlisten = "127.0.0.1:0"\n')
        env = dict(os.environ, FM_HOME=str(home), FM_CONFIG=str(cfg), PYTHONPATH=str(ROOT))
        script = Path(d) / "wait.fm"
        script.write_text("/bin/sleep 600\n")   # a program: held, not parked
        fm = [sys.executable, "-m", "flowmetal"]
        job = subprocess.run([*fm, "run", "-d", str(script)], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
        store = JsonlStore(home)
        while store.holder(job) is None:
            time.sleep(0.05)
        tokens = [new_token(16) for _ in range(n)]
        for t in tokens:
            store.bind(t, job)
        info = json.loads((home / "daemon.json").read_text())
        url, cpu0 = info["url"], cpu_seconds(info["pid"])
        out = subprocess.run([sys.executable, "-c", LOAD, url, ",".join(tokens), str(clients)],
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out)
        cpu = (cpu_seconds(info["pid"]) - cpu0) / n * 1e6
        lat = r["lat"]
        pct = {p: lat[min(len(lat) - 1, int(len(lat) * p / 100))] * 1000 for p in (50, 99)}
        print(f"{n} callbacks from {clients} clients: {n / r['secs']:.0f} deliveries/s "
              f"overall, {sustained(r['done']):.0f}/s sustained, 2xx p50 {pct[50]:.1f} ms, "
              f"p99 {pct[99]:.1f} ms, non-2xx {len(r['bad'])}, "
              f"lost {lost(store, job, r['acked'])}; daemon CPU {cpu:.0f} us per delivery")
        subprocess.run([*fm, "kill", job], env=env, capture_output=True)
        subprocess.run([*fm, "daemon", "stop"], env=env, capture_output=True)
        print(syncs(home / "daemon.log"))


def syncs(log: Path) -> str:
    """`N deliveries in M log syncs`, as the daemon logs it at its stop."""
    text = log.read_text() if log.exists() else ""
    return text.rsplit("intake: ", 1)[-1].splitlines()[0] if "log syncs" in text else \
        "(the daemon logged no intake figures)"


if __name__ == "__main__":
    main()
