"""`timeout` bounds fm's own builtins and pure machine work too (issue 17 item 5): a branch
that runs TICK instructions without an effect makes a `clock` tick carrying the deadline, and
a passed deadline fails the whole body with 124 (no condition or `catch` inside takes it)."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from flowmetal.machine import Machine, initial_state


def drive(text: str, timeout_at: int):
    """Run `text`, answering clocks with a ticking time and the request number `timeout_at`
    with a passed deadline; -> (requests, output, done record)."""
    state = initial_state(job="j-000000", argv=["t.fm"], env={}, cwd="/tmp", filename="t.fm",
                          pid=1)
    m = Machine(state, text)
    reqs, out = [], []
    pending = m.start()
    while pending and len(reqs) < 50:
        p = pending.pop(0)
        req = p["req"]
        reqs.append(req)
        if req["op"] == "write":
            out.append(req["data"])
        res = {"now": 1000.0 + len(reqs)} if req["op"] == "clock" else {}
        if len(reqs) == timeout_at:
            res = {"timeout": True}
        pending += m.feed(p["step"], res)
    return reqs, "".join(out), m.done()


BODIES = [
    "f() { while :; do :; done; }; timeout 1 f",
    "timeout 1 { while :; do x=1; done; }",
    "timeout 1 { while true; do :; done; }",
    "timeout 1 { try { while :; do :; done; } catch { echo caught; }; }",
    "i=0; timeout 1 { until false; do (( i++ )) || :; done || echo no; }",
]


@pytest.mark.parametrize("body", BODIES)
def test_a_passed_deadline_ends_pure_machine_work(body):
    reqs, out, done = drive(f"set +e; {body}\necho \"after $?\"\n", timeout_at=4)
    assert reqs[1] == {"op": "clock", "deadline": 1002.0}     # a tick under the deadline
    assert out == "after 124\n" and done["status"] == 0


def test_ticks_without_a_deadline_are_dropped():
    reqs, out, done = drive("for ((i = 0; i < 30000; i++)); do :; done; echo $i\n", 0)
    assert [r["op"] for r in reqs].count("clock") >= 1
    assert out == "30000\n" and done["status"] == 0


SLOW = {
    "read": "timeout 1 read x < /dev/zero",
    "mapfile": "timeout 1 mapfile a < /dev/zero",
    "function": "f() { while :; do :; done; }; timeout 1 f",
    "block": "x=0; timeout 1 { while :; do x=$((x + 1)); done; }",
}


@pytest.mark.parametrize("kind", sorted(SLOW))
def test_timeout_bounds_builtins_in_a_real_fm(tmp_path, kind):
    env = {"FM_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "FM_HAND_OVER": "0"}
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "flowmetal", "-c", SLOW[kind]], env=env,
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    took = time.monotonic() - t0
    assert r.returncode == 124, r.stderr
    assert "timed out after 1s" in r.stderr
    assert took < 30, took       # about 1 s plus start-up; 10x that and more
