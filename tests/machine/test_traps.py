"""Traps in a durable job: EXIT, ERR, INT and TERM through cancellation, snapshots and crashes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from flowmetal.connectors import Term, perform
from flowmetal.machine import Machine, initial_state


def start(text: str, cwd) -> tuple:
    state = initial_state(job="j-000000", argv=["t.fm"], env={"PATH": os.environ["PATH"]},
                          cwd=str(cwd), filename="t.fm", pid=1)
    m = Machine(state, text)
    return m, m.start()


def drive(m: Machine, pending: list, text: str, *, stop_at=None, roundtrip=False):
    """Perform requests until none is left (or one with op `stop_at` comes): (machine, what
    the job wrote, the requests left). With `roundtrip`, the machine is rebuilt from its
    state as JSON at every effect, as a resume from a snapshot taken there would be."""
    term = Term(stdin_fd=None, echo=False)
    out = []
    while pending:
        if stop_at and pending[0]["req"]["op"] == stop_at:
            break
        p = pending.pop(0)
        if p["req"]["op"] == "write":
            out.append(p["req"]["data"])
        res = json.loads(json.dumps(perform(p["req"], term)))
        if roundtrip:
            m = Machine(json.loads(json.dumps(m.state)), text)
        pending += m.feed(p["step"], res)
    return m, "".join(out), pending


CANCELLED = """trap 'echo "int $?"' INT
trap 'echo "term $?"' TERM
trap 'echo "exit $?"' EXIT
try {
  sleep 10
} finally {
  echo finally
}
echo not reached
"""


@pytest.mark.parametrize("reason,first", [("interrupted (SIGINT)", "int"),
                                          ("cancelled (fm cancel)", "term")])
def test_a_cancellation_runs_its_trap_then_finally_then_exit(tmp_path, reason, first):
    m, pending = start(CANCELLED, tmp_path)
    m, out, pending = drive(m, pending, CANCELLED, stop_at="sleep")
    assert pending and out == ""
    m, out, pending = drive(m, m.cancel(reason), CANCELLED)
    assert out == f"{first} 0\nfinally\nexit 130\n"
    assert m.done()["status"] == 130 and m.done()["cancelled"] == reason


def test_a_trap_cannot_stop_a_cancellation(tmp_path):
    text = "trap 'echo int; exit 0' INT\nsleep 10\necho not reached\n"
    m, pending = start(text, tmp_path)
    m, _, _ = drive(m, pending, text, stop_at="sleep")
    m, out, _ = drive(m, m.cancel("interrupted (SIGINT)"), text)
    assert out == "int\n" and m.done()["status"] == 130


TRAPS = """trap 'echo "exit $?"' EXIT
set -E
trap 'echo "err $? at $LINENO"' ERR
f() {
  /bin/false
}
try { f; } catch { echo caught; }
set +e
f
echo "after $?"
set -e
f
"""


@pytest.mark.parametrize("roundtrip", [False, True])
def test_traps_survive_a_snapshot_at_every_effect(tmp_path, roundtrip):
    m, pending = start(TRAPS, tmp_path)
    m, out, _ = drive(m, pending, TRAPS, roundtrip=roundtrip)
    assert out == "caught\nerr 1 at 5\nerr 1 at 9\nafter 1\nerr 1 at 5\nexit 1\n"
    assert m.done()["status"] == 1


def test_the_exit_trap_runs_once_across_crashes(tmp_path):
    """Crash the runner at every journal write; each resumed job runs its EXIT trap to the
    end exactly once (a write cut off by the crash may run again: at least once, G2)."""
    work = tmp_path / "w"
    work.mkdir()
    (work / "t.fm").write_text("trap 'echo trap >> log; echo done' EXIT\n/bin/true\n"
                               "echo body >> log\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_") or k == "FM_HAND_OVER"}

    def fm(home, *args, **extra):
        return subprocess.run([sys.executable, "-m", "flowmetal", *args], cwd=work,
                              env=dict(env, FM_HOME=str(home), **extra),
                              capture_output=True, text=True, timeout=60)

    ref = fm(tmp_path / "ref", "t.fm")
    assert ref.returncode == 0 and ref.stdout == "done\n", ref.stderr
    (jid,) = os.listdir(tmp_path / "ref" / "jobs")
    n = len((tmp_path / "ref" / "jobs" / jid / "journal.jsonl").read_text().splitlines())
    for crash in range(1, n - 1):
        (work / "log").unlink(missing_ok=True)
        home = tmp_path / f"h{crash}"
        first = fm(home, "t.fm", FM_CRASH_AT=str(crash))
        (jid,) = os.listdir(home / "jobs")
        journal = home / "jobs" / jid / "journal.jsonl"
        if first.returncode != 0:
            second = fm(home, "resume", jid)
            assert second.returncode == 0, (crash, second.stderr)
        recs = [json.loads(line) for line in journal.read_text().splitlines()]
        done = [r for r in recs if r["kind"] == "effect.done"]
        writes = [r for r in recs if r["kind"] == "effect.started"
                  and r["req"]["op"] == "write" and r["req"]["data"] == "trap\n"]
        assert len({r["step"] for r in writes}) == 1, crash     # the trap ran once
        assert (work / "log").read_text().count("trap\n") in (1, 2), crash
        assert len(done) == len({r["step"] for r in done}), crash
