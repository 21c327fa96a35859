#!/usr/bin/env python3
"""Parked-job benchmarks for issue 9: what 10,000 parked jobs cost a real daemon, how fast
1,000 jobs due in the same second get done, and how late timers wake.

Run from the repository root:
    .venv/bin/python bench/parked.py [N] [DUE] [LATE] [IDLE_SECS] [REPEATS]
(defaults 10000 1000 300 30 3). Over a fresh state directory, with a daemon on 127.0.0.1:0:

1. Two template jobs are run detached until a daemon runner parks them: `sleep --until
   2030-01-01T00:00:00Z; echo done` and `await --event go; echo got`. Every other job is a
   clone of one of them, written through the store (bench/_clone.py): no runner per job.
2. N timers parked until 2030, plus one overdue clone (the marker). The daemon is started
   REPEATS times (a new marker each time): start-up = from the spawn until it starts the
   marker's runner (the supervisor's loop begins once `_file_jobs` has filed every job); the
   marker must finish (the check that a clone resumes correctly). Then RSS, threads, open
   files, and CPU seconds and wake-ups (voluntary context switches) over IDLE_SECS idle.
3. The same with N/5 more jobs parked on `await --event` (no timeout).
4. Lateness: LATE timers due at whole seconds spread over a minute, the N others parked;
   lateness = the sleep's result time (its `effect.done` `res.now`, when the job's next step
   ran) - its due time; and the daemon's part: its "resume by runner" log time - due time.
5. DUE timers due in the same second: from that second until the last `job.finished`;
   runners' CPU (the daemon's reaped-children CPU) per job.

Figures are noisy on a loaded machine: run it a few times. Nothing is asserted. Two runs on
2 shared cores, load average 5-15 (docs/daemon.md, "Benchmarks", has them all): 10,000
parked timers: RSS 30.9 MB (25.2 with 2 jobs), idle CPU 0.00-0.01 s in 30 s, start-up 21-48 s
wall for 13.2-14.4 s CPU; 1,000 due in one second: all done in 91-103 s (0.17 s of runner
CPU each); lateness with 12,000 parked: p50 0.49-0.61 s, p99 0.77-0.82 s. Those start-ups were
before the daemon filed jobs by their last record beside its loop; after it, `2000 20 10 5 1`
(load 5.6): start-up 0.83 s, 0.70 s of daemon CPU, 0 idle wake-ups. On the current code,
defaults, quiet machine (2026-12-03): RSS 32.5 MB, idle CPU 0.00 s and 0 wake-ups in 30 s,
start-up 3.27-4.56 s for 10,000 timers, 1,000 due all done in 86.5 s, lateness p50 0.33 s,
p99 0.47 s (the daemon's part p99 41 ms).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _clone import TEMPLATE_UNTIL, clone_many, rfc3339, template  # noqa: E402
from _daemon import Daemon  # noqa: E402

TIMER = f"sleep --until {rfc3339(TEMPLATE_UNTIL)}\necho done\n"
AWAIT = "await --event go\necho got\n"


class Bench:
    def __init__(self, d: Path):
        from flowmetal.journal.jsonl import JsonlStore
        self.dir = d
        self.home = d / "home"
        cfg = d / "c.toml"
        cfg.write_text('[daemon]\nlisten = "127.0.0.1:0"\n')
        self.env = dict(os.environ, FM_HOME=str(self.home), FM_CONFIG=str(cfg),
                        PYTHONPATH=str(ROOT))
        for key in ("FM_CRASH_AT", "FM_HAND_OVER", "FM_PARK_AFTER"):
            self.env.pop(key, None)
        self.daemon: Daemon | None = None
        self.templates: dict[str, tuple[str, list[str]]] = {}
        self.next_n = 1
        self.home.mkdir(mode=0o700)
        self.store = JsonlStore(self.home)

    def start(self) -> Daemon:
        self.daemon = Daemon(self.home, self.env)
        return self.daemon

    def stop(self) -> float:
        d, self.daemon = self.daemon, None
        return d.stop() if d else 0.0

    def clone(self, kind: str, untils: list) -> list[str]:
        tid, texts = self.templates[kind]
        ids = clone_many(self.store, texts, tid, self.next_n, untils)
        self.next_n += len(untils)
        return ids

    def finished(self, job_id: str) -> dict | None:
        last = self.store.last(job_id) or {}
        return last if last.get("kind") in ("job.finished", "job.failed") else None


def make_templates(b: Bench) -> None:
    """Run the two templates detached under a daemon until both are parked; print the RSS of
    that daemon (a baseline: 2 jobs)."""
    d = b.start()
    d.listening()
    for kind, source in (("timer", TIMER), ("await", AWAIT)):
        path = b.dir / f"parked-{kind}.fm"
        path.write_text(source)
        job = subprocess.run([sys.executable, "-m", "flowmetal", "run", "-d", str(path)],
                             env=b.env, capture_output=True, text=True, check=True,
                             timeout=60).stdout.strip()
        wait_for(lambda job=job: parked(b, job), 60, f"{job} to park")
        b.templates[kind] = (job, template(b.store, job))
    st = d.stat()
    print(f"baseline daemon (2 parked jobs): RSS {st['rss']:.1f} MB, {st['threads']} threads, "
          f"{st['fds']} fds", flush=True)
    b.stop()


def parked(b: Bench, job_id: str) -> bool:
    last = b.store.last(job_id) or {}
    return last.get("kind") == "job.parked" and b.store.holder(job_id) is None


def wait_for(pred, timeout: float, what: str, every: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise RuntimeError(f"timed out waiting for {what}")


def started_at(d: Daemon, job_id: str) -> float | None:
    for when, job, what in d.events():
        if job == job_id and what.startswith("resume by runner"):
            return when
    return None


def one_start(b: Bench, idle: float) -> dict:
    """Start the daemon over what is parked (and one overdue marker), time its start-up,
    check the marker finishes, measure it idle, stop it."""
    [marker] = b.clone("timer", [int(time.time()) - 60])
    d = b.start()
    out = {"listen": d.listening(300)}
    t = wait_for(lambda: started_at(d, marker), 600, "the marker's runner", 0.1)
    st = d.stat()
    out |= {"startup": t - d.t0, "startup_cpu": st["cpu"]}
    rec = wait_for(lambda: b.finished(marker), 120, "the marker to finish", 0.1)
    out["marker_ok"] = rec.get("status") == 0 and "done\n" in output_of(b, marker)
    time.sleep(1.0)
    s0 = d.stat()
    time.sleep(idle)
    s1 = d.stat()
    out |= {"rss": s1["rss"], "hwm": s1["hwm"], "threads": s1["threads"], "fds": s1["fds"],
            "idle_cpu": s1["cpu"] - s0["cpu"], "wakeups": s1["wakeups"] - s0["wakeups"],
            "rss_growth": s1["rss"] - s0["rss"]}
    out["stop"] = b.stop()
    return out


def output_of(b: Bench, job_id: str) -> str:
    return "".join(r.get("res", {}).get("out", "") for r in b.store.records(job_id)
                   if r["kind"] == "effect.done" and isinstance(r.get("res"), dict))


def report_starts(title: str, runs: list[dict], idle: float) -> None:
    print(title)
    for r in runs:
        print(f"  start-up {r['startup']:.2f} s (listening after {r['listen']:.2f} s, "
              f"{r['startup_cpu']:.2f} s CPU); RSS {r['rss']:.1f} MB (peak {r['hwm']:.1f}, "
              f"+{r['rss_growth']:.2f} idle); {r['threads']} threads, {r['fds']} fds; idle "
              f"{idle:g} s: {r['idle_cpu']:.2f} s CPU, {r['wakeups']} wake-ups; stop "
              f"{r['stop']:.2f} s; marker clone finished ok: {r['marker_ok']}")
    for key in ("startup", "rss", "idle_cpu"):
        vals = [r[key] for r in runs]
        print(f"  {key}: best {min(vals):.2f}, median {statistics.median(vals):.2f}")
    sys.stdout.flush()


def pct(vals: list[float], p: float) -> float:
    vals = sorted(vals)
    return vals[min(len(vals) - 1, int(len(vals) * p / 100))]


def woke_at(b: Bench, job_id: str) -> float | None:
    """When the resumed job's sleep returned (its effect.done after job.parked)."""
    step = None
    for r in b.store.records(job_id):
        if r["kind"] == "job.parked":
            step = r["step"]
        elif step is not None and r["kind"] == "effect.done" and r["step"] == step:
            return r["res"].get("now")
    return None


def lateness(b: Bench, n: int, margin: float) -> None:
    """n timers due at whole seconds spread over a minute from `margin` s from now."""
    t0 = int(time.time() + margin)
    due = [t0 + i * 60 // n for i in range(n)]
    ids = b.clone("timer", due)
    d = b.start()
    d.listening(300)
    wait_for(lambda: all(b.finished(i) for i in ids), margin + 600,
             "the timers to finish", 1.0)
    starts = {job: when for when, job, what in d.events() if what.startswith("resume by")}
    b.stop()
    late = [woke_at(b, i) - u for i, u in zip(ids, due)]
    disp = [starts[i] - u for i, u in zip(ids, due)]
    print(f"lateness of {n} timers due over a minute, {len(b.store.ids())} jobs in the store:")
    print(f"  next step: p50 {pct(late, 50):.3f} s, p99 {pct(late, 99):.3f} s, "
          f"max {max(late):.3f} s, min {min(late):.3f} s")
    print(f"  daemon starts the runner: p50 {pct(disp, 50):.3f} s, p99 {pct(disp, 99):.3f} s, "
          f"max {max(disp):.3f} s", flush=True)


def burst(b: Bench, n: int, margin: float) -> None:
    """n timers due in the same second: until the last one finished."""
    t = int(time.time() + margin)
    ids = b.clone("timer", [t] * n)
    d = b.start()
    d.listening(300)
    wait_for(lambda: time.time() > t, margin + 300, "the due second", 0.1)
    s0 = d.stat()
    wait_for(lambda: sum(1 for e in d.events() if e[2].startswith("runner")) >= n,
             3600, "the runners", 1.0)
    s1 = d.stat()
    b.stop()
    ends = [ts_epoch(b.finished(i)["ts"]) for i in ids if b.finished(i)]
    starts = sorted(w for w, _, what in d.events() if what.startswith("resume by"))
    print(f"{n} timers due in the same second ({len(b.store.ids())} jobs in the store), finished: "
          f"{len(ends)}:")
    print(f"  all done {max(ends) - t:.1f} s after the due second ({n / (max(ends) - t):.1f} "
          f"jobs/s); first runner started {starts[0] - t:.3f} s, last {starts[-1] - t:.1f} s, "
          f"first job done {min(ends) - t:.2f} s after it")
    print(f"  CPU: runners {(s1['child_cpu'] - s0['child_cpu']) / n:.3f} s per job, daemon "
          f"{s1['cpu'] - s0['cpu']:.1f} s in all; daemon RSS {s1['rss']:.1f} MB (peak "
          f"{s1['hwm']:.1f})", flush=True)


def ts_epoch(ts: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def main() -> None:
    args = [int(a) for a in sys.argv[1:]]
    n, due, late, idle, repeats = args + [10000, 1000, 300, 30, 3][len(args):]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="fm-parked-") as d:
        b = Bench(Path(d))
        try:
            make_templates(b)
            b.clone("timer", [TEMPLATE_UNTIL] * n)
            runs = [one_start(b, idle) for _ in range(repeats)]
            report_starts(f"{n} timers parked until 2030:", runs, idle)
            b.clone("await", [None] * (n // 5))
            runs = [one_start(b, idle) for _ in range(repeats)]
            report_starts(f"{n} timers and {n // 5} awaits (no timeout) parked:", runs, idle)
            margin = 15 + 3 * max(r["startup"] for r in runs)
            if late:
                lateness(b, late, margin)
            if due:
                burst(b, due, margin)
        finally:
            b.stop()
    print(f"load average {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
