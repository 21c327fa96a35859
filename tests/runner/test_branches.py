"""Durable branches end to end (SPEC 1.7): `cmd &`, `wait [-n] [ID...]`, `$!`, with real `fm`
processes (`python -m flowmetal`), each test with its own FM_HOME and no config file.

What is checked: branches' effects run concurrently; `wait`'s statuses and diagnostics; a
branch's unhandled error; Ctrl-C and `fm cancel` running every branch's `finally`; `retry` and
`timeout` inside branches; whole-line output; a crash sweep (SIGKILL after journal record N via
FM_CRASH_AT, then `fm resume`) over a 5-branch script; and resuming a job whose snapshot was
written by a machine of another layout (FM_LAYOUT_SALT fakes another fm version)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from flowmetal.journal import codec

from .helpers import ROOT, records

# -- helpers --------------------------------------------------------------------------------


def _env(home: Path, extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_") or k == "FM_HAND_OVER"}
    env.update(FM_HOME=str(home), FM_CONFIG=os.devnull, PYTHONPATH=str(ROOT))
    env.update({k: str(v) for k, v in (extra or {}).items()})
    return env


def fm(*args, cwd: Path, home: Path, env: dict | None = None, timeout: float = 60):
    return subprocess.run([sys.executable, "-m", "flowmetal", *map(str, args)], cwd=cwd,
                          env=_env(home, env), capture_output=True, text=True, timeout=timeout)


def fm_popen(*args, cwd: Path, home: Path, env: dict | None = None) -> subprocess.Popen:
    """`fm ARGS` in a session of its own (so a test can signal its whole process group)."""
    return subprocess.Popen([sys.executable, "-m", "flowmetal", *map(str, args)], cwd=cwd,
                            env=_env(home, env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def job_of(home: Path) -> tuple[str, Path]:
    (job,) = os.listdir(home / "jobs")
    return job, home / "jobs" / job / "journal.jsonl"


def in_flight(path: Path) -> dict:
    """(br, step) -> req of every effect journaled as started and not (yet) done."""
    started = {}
    for r in records(path):
        key = (r.get("br", "0"), r.get("step"))
        if r["kind"] == "effect.started":
            started[key] = r["req"]
        elif r["kind"] == "effect.done":
            started.pop(key, None)
        elif r["kind"] == "cancel":
            started.clear()
    return started


def wait_for(cond, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def running(pattern: str) -> str:
    return subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout


@pytest.fixture
def w(tmp_path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work


@pytest.fixture
def h(tmp_path) -> Path:
    return tmp_path / "home"


# -- 1. concurrency ---------------------------------------------------------------------------


def test_twenty_branches_of_sleep_one_take_about_one_second(w, h):
    (w / "t.fm").write_text("for i in $(seq 20); do /bin/sleep 1 & done\nwait\necho \"last $!\"\n")
    t0 = time.monotonic()
    r = fm("t.fm", cwd=w, home=h)
    took = time.monotonic() - t0
    assert (r.returncode, r.stdout, r.stderr) == (0, "last 20\n", "")
    assert 0.9 < took < 10, took       # 10x the ~1 s it takes; one after another: 20 s+
    # they overlapped: all 20 were started before the first one was done
    _, path = job_of(h)
    execs = [r for r in records(path) if r["kind"].startswith("effect.") and "br" in r]
    first_done = next(i for i, r in enumerate(execs) if r["kind"] == "effect.done")
    assert first_done == 20, [r["kind"] for r in execs]
    assert sorted(r["br"] for r in execs[:20]) == sorted(str(i) for i in range(1, 21))


def test_thirty_durable_sleeps_in_branches_run_at_once(w, h):
    (w / "t.fm").write_text("for i in $(seq 30); do { sleep 1; echo \"$i\" >> done.txt; } & done\n"
                            "wait\nwc -l < done.txt\n")
    t0 = time.monotonic()
    r = fm("t.fm", cwd=w, home=h)
    took = time.monotonic() - t0
    assert (r.returncode, r.stdout.strip()) == (0, "30"), r.stderr
    assert 0.9 < took < 10, took       # 10x the ~1 s it takes; one after another: 20 s+
    assert sorted((w / "done.txt").read_text().split(), key=int) == [str(i) for i in range(1, 31)]


# -- 3. wait, $! and errors -------------------------------------------------------------------

WAITS = r"""
sh -c 'sleep 0.3; exit 3' & a=$!
sh -c 'sleep 0.8; exit 4' & b=$!
sh -c 'exit 5' & c=$!
echo "ids $a $b $c"
wait -n || echo "wait -n: $?"
wait "$b" || echo "wait b: $?"
wait "$a" || echo "wait a: $?"
wait "$c" || echo "wait c again: $?"
wait 99 || echo "wait 99: $?"
wait -n || echo "wait -n, none left: $?"
sh -c 'sleep 0.6; exit 6' &
sh -c 'sleep 0.2; exit 7' &
true &
wait || echo "wait all: $?"
echo "last $!"
true & d=$!
wait "$d"; echo "wait d: $?"
sh -c 'exit 8' & e=$!
true & f=$!
wait "$e" "$f"; echo "wait e f: $?"
wait; echo "wait nothing: $?"
"""


def test_wait_statuses_and_branch_ids(w, h):
    (w / "t.fm").write_text(WAITS)
    r = fm("t.fm", cwd=w, home=h)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("ids 1 2 3\n"
                        "wait -n: 5\n"          # the first branch to end
                        "wait b: 4\n"
                        "wait a: 3\n"
                        "wait c again: 127\n"   # reaped by wait -n
                        "wait 99: 127\n"        # not a child
                        "wait -n, none left: 127\n"
                        "wait all: 7\n"         # the first failure, in the order they ended
                        "last 6\n"
                        "wait d: 0\n"
                        "wait e f: 0\n"         # the last one's status
                        "wait nothing: 0\n"), r.stdout


def test_an_error_in_a_branch_is_raised_at_wait(w, h):
    (w / "t.fm").write_text("deploy() {\n  echo \"deploying $1\" > \"$1.log\"\n  sleep \"$2\"\n"
                            "  sh -c \"exit $3\"\n}\n"
                            "deploy us 0.6 23 &\ndeploy eu 0.1 22 &\nwait\necho not reached\n")
    t0 = time.monotonic()
    r = fm("t.fm", cwd=w, home=h)
    assert r.returncode == 22        # the first branch that failed, not the last one started
    assert time.monotonic() - t0 > 0.5    # ... after the other one ended too
    assert r.stdout == ""
    first = r.stderr.splitlines()[0]
    assert first.startswith("fm: t.fm:8:1: error: `deploy eu 0.1 22` (branch 2) failed: "), \
        r.stderr
    assert first.endswith(" t.fm:4:3: `sh -c \"exit $3\"` exited with status 22"), r.stderr
    assert "    8 | wait" in r.stderr and "Traceback" not in r.stderr
    assert (w / "us.log").exists() and (w / "eu.log").exists()
    _, path = job_of(h)
    last = records(path)[-1]
    assert last["kind"] == "job.failed" and last["status"] == 22


def test_an_error_in_one_branch_does_not_stop_its_siblings(w, h):
    (w / "t.fm").write_text("sh -c 'exit 3' &\n"
                            "{ sleep 0.3; echo sibling > sibling.txt; } &\n"
                            "wait || echo \"wait: $?\"\ncat sibling.txt\n")
    r = fm("t.fm", cwd=w, home=h)
    assert (r.returncode, r.stdout) == (0, "wait: 3\nsibling\n"), r.stderr


def test_a_failed_branch_never_waited_for_fails_the_job(w, h):
    (w / "t.fm").write_text("echo start\n{ sleep 0.2; sh -c 'exit 9'; } &\necho main done\n")
    r = fm("t.fm", cwd=w, home=h)
    assert r.returncode == 9
    assert r.stdout == "start\nmain done\n"
    assert "(branch 1) failed" in r.stderr and "exited with status 9" in r.stderr
    assert r.stderr.startswith("fm: t.fm:"), r.stderr
    _, path = job_of(h)
    recs = records(path)
    assert recs[-1]["kind"] == "job.failed" and recs[-1]["status"] == 9
    assert "main.ended" in [x["kind"] for x in recs]     # main ended while branch 1 ran


def test_main_that_ends_waits_for_its_branches(w, h):
    (w / "t.fm").write_text("{ sleep 0.5; echo late > late.txt; } &\n"
                            "f() { { sleep 0.3; echo inner > inner.txt; } & }\n"
                            "{ f; echo outer; } &\n"
                            "echo main\n")
    r = fm("t.fm", cwd=w, home=h)
    assert (r.returncode, sorted(r.stdout.splitlines())) == (0, ["main", "outer"]), r.stderr
    assert (w / "late.txt").read_text() == "late\n"
    assert (w / "inner.txt").read_text() == "inner\n"


def test_branch_state_is_a_copy(w, h):
    (w / "t.fm").write_text(
        "mkdir -p sub\nx=1\n"
        "f() { local mine=fromf; { echo \"$mine $x\" > f.txt; mine=changed; } & wait; "
        "echo \"f still $mine\"; }\n"
        "{ x=2; y=3; cd sub; g() { :; }; echo \"in $x $(basename \"$PWD\")\" > ../b.txt; } &\n"
        "wait\necho \"x=$x y=${y:-unset} $(basename \"$PWD\") $(type -t g || echo none)\"\n"
        "f\ncat b.txt f.txt\n")
    r = fm("t.fm", cwd=w, home=h)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "x=1 y=unset work none\nf still fromf\nin 2 sub\nfromf 1\n", r.stdout


def test_return_in_a_branch_started_in_a_function(w, h):
    (w / "t.fm").write_text("f() {\n  local v=4\n  { return \"$v\"; } &\n"
                            "  wait $! || echo \"branch $?\"\n}\nf\n")
    r = fm("t.fm", cwd=w, home=h)
    assert (r.returncode, r.stdout) == (0, "branch 4\n"), r.stderr


# -- 4. Ctrl-C and fm cancel ------------------------------------------------------------------

CANCEL = """for i in 1 2 3; do
  try {
    sh -c "touch started_$i; sleep SECS"
  } catch {
    echo "caught $i" >> caught
  } finally {
    echo "cleanup $i" >> cleanup
  } &
done
wait
echo not reached
"""


@pytest.mark.parametrize("how", ["ctrl-c", "fm cancel"])
def test_cancel_runs_every_branch_finally(w, h, how):
    secs = "30.417" if how == "ctrl-c" else "30.419"     # only this test's sleeps match
    (w / "c.fm").write_text(CANCEL.replace("SECS", secs))
    proc = fm_popen("c.fm", cwd=w, home=h)
    try:
        wait_for(lambda: all((w / f"started_{i}").exists() for i in (1, 2, 3)))
        wait_for(lambda: running(f"^sleep {secs}").count("\n") == 3)
        t0 = time.monotonic()
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            job, _ = job_of(h)
            c = fm("cancel", job, cwd=w, home=h)
            assert c.returncode == 0, c.stderr
        out, err = proc.communicate(timeout=20)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert took < 10, took             # the sleeps are 30 s
    assert out == "" and "Traceback" not in err
    assert sorted((w / "cleanup").read_text().splitlines()) == ["cleanup 1", "cleanup 2",
                                                                "cleanup 3"]
    assert not (w / "caught").exists()
    _, path = job_of(h)
    recs = records(path)
    assert [x["kind"] for x in recs].count("cancel") == 1
    assert recs[-1]["kind"] == "job.cancelled" and recs[-1]["status"] == 130
    time.sleep(0.2)
    assert running(f"sleep {secs}") == ""


def test_cancel_after_the_main_code_ended(w, h):
    (w / "c.fm").write_text("try {\n  sh -c 'touch started; sleep 30.423'\n} finally {\n"
                            "  echo cleanup >> cleanup\n} &\necho main ends\n")
    proc = fm_popen("c.fm", cwd=w, home=h)
    try:
        wait_for(lambda: (w / "started").exists())
        job, path = job_of(h)
        wait_for(lambda: "main.ended" in [x["kind"] for x in records(path)])
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130
    assert (w / "cleanup").read_text() == "cleanup\n"
    assert records(path)[-1]["kind"] == "job.cancelled", records(path)[-1]
    assert "failed" not in err, err


def test_a_cancelled_job_killed_in_its_branches_finally_resumes_them(w, h):
    (w / "k.fm").write_text(
        "for i in 1 2 3; do\n  try {\n    sh -c \"touch mark$i; sleep 30.427\"\n  } finally {\n"
        "    echo \"one $i\" >> log\n    sh -c 'sleep 1'\n    echo \"two $i\" >> log\n  } &\n"
        "done\nwait\n")
    proc = fm_popen("k.fm", cwd=w, home=h)
    try:
        wait_for(lambda: all((w / f"mark{i}").exists() for i in (1, 2, 3)))
        time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        wait_for(lambda: (w / "log").exists() and (w / "log").read_text().count("one") == 3)
        time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)      # in the middle of the finally blocks
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "two" not in (w / "log").read_text()
    job, path = job_of(h)
    r = fm("resume", job, cwd=w, home=h)
    assert r.returncode == 130, r.stderr
    assert sorted((w / "log").read_text().splitlines()) == \
        ["one 1", "one 2", "one 3", "two 1", "two 2", "two 3"]
    recs = records(path)
    assert [x["kind"] for x in recs].count("cancel") == 1
    assert recs[-1]["kind"] == "job.cancelled"
    assert running("sleep 30.427") == ""


# -- 5. retry and timeout inside branches -----------------------------------------------------


def test_timeout_and_retry_in_branches(w, h):
    (w / "t.fm").write_text(
        "timeout 1s -- /bin/sleep 30.4321 & t=$!\n"
        "retry --attempts 3 --delay 0.05 -- sh -c "
        "'echo x >> tries; [ $(wc -l < tries) -ge 3 ]' & r=$!\n"
        "timeout 3s { sleep 0.2; echo quick > quick.txt; } & q=$!\n"
        "wait \"$t\" || echo \"timeout: $?\"\n"
        "wait \"$r\"; echo \"retry: $?\"\n"
        "wait \"$q\"; echo \"quick: $?\"\n")
    t0 = time.monotonic()
    r = fm("t.fm", cwd=w, home=h)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert r.stdout == "timeout: 124\nretry: 0\nquick: 0\n"
    assert 0.9 < took < 10, took       # about 1 s; the program alone would take 30 s
    assert (w / "tries").read_text() == "x\nx\nx\n"
    assert (w / "quick.txt").read_text() == "quick\n"
    assert r.stderr.count("fm: retry: attempt") == 2
    assert running("sleep 5.4321") == ""


def test_timeout_bounds_a_wait_in_its_body(w, h):
    (w / "t.fm").write_text("timeout 1 { { sleep 2; echo late > late.txt; } & wait; } || {\n"
                            "  echo \"status $?\"\n  [ -e late.txt ] && echo late || echo early\n"
                            "}\n")
    r = fm("t.fm", cwd=w, home=h)
    assert (r.returncode, r.stdout) == (0, "status 124\nearly\n"), r.stderr


def test_branches_started_in_a_timeout_end_at_its_deadline(w, h):
    """A branch inherits the deadline of the `timeout` it was started in: it does not outlive
    it, and its timing out is the `timeout`'s to report (it does not fail the job later)."""
    (w / "t.fm").write_text("timeout 1 { /bin/sleep 3 & /bin/sleep 2; } || echo \"st $?\"\n"
                            "echo end\n")
    t0 = time.monotonic()
    r = fm("t.fm", cwd=w, home=h)
    assert (r.returncode, r.stdout) == (0, "st 124\nend\n"), r.stderr
    assert time.monotonic() - t0 < 2.8      # not the branch's 3 s
    assert not running("/bin/sleep 3")


WAKE = """
timeout 20 {
  { /bin/sleep 0.3; echo a >> log; } &
  { /bin/sleep 0.6; echo b >> log; } &
  wait
}
echo "status $?" >> log
"""


def test_a_crash_around_a_woken_wait_resumes_it(w, h):
    """`wait` under a deadline is a timer that a branch's end cuts short (a `woken` result):
    killed after each journal record and resumed, the job ends as an uncrashed run does."""
    (w / "k.fm").write_text(WAKE)
    ref = fm("k.fm", cwd=w, home=h)
    assert ref.returncode == 0, ref.stderr
    assert sorted((w / "log").read_text().split()) == ["0", "a", "b", "status"]
    _, path = job_of(h)
    woken = [r for r in records(path) if r["kind"] == "effect.done"
             and r.get("res") == {"woken": True}]
    assert woken, "the wait was not cut short"
    n = len(records(path))
    for crash in range(1, n - 1):       # not the final record: that job has ended
        home = h.parent / f"h{crash}"
        (w / "log").unlink()
        first = fm("k.fm", cwd=w, home=home, env={"FM_CRASH_AT": crash})
        if first.returncode == 0:
            continue
        assert first.returncode == -signal.SIGKILL, first.stderr
        job, _ = job_of(home)
        again = fm("resume", job, cwd=w, home=home)
        assert again.returncode == 0, (crash, again.stderr)
        lines = (w / "log").read_text().split("\n")
        assert lines[-2] == "status 0", (crash, lines)
        assert sorted(set(lines[:-2])) == ["a", "b"], (crash, lines)


# -- 6. whole lines ---------------------------------------------------------------------------

LINES = r"""
for b in 1 2 3 4; do
  sh -c 'for i in $(seq 200); do echo "branch-$1-line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"; echo "err-$1-$i" >&2; done' sh "$b" &
  { for i in 1 2 3 4 5 6 7 8 9 10; do echo "fm-$b-line-$i-yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"; done; } &
done
sh -c 'printf "partial-"; sleep 0.3; printf "line\n"' &
sh -c 'sleep 0.1; echo whole' &
wait
"""


def test_concurrent_output_never_interleaves_inside_a_line(w, h):
    (w / "t.fm").write_text(LINES)
    r = fm("t.fm", cwd=w, home=h)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines.pop() == ""
    good = re.compile(r"branch-([1-4])-line-(\d+)-x{48}|fm-([1-4])-line-(\d+)-y{36}"
                      r"|partial-line|whole")
    bad = [line for line in lines if not good.fullmatch(line)]
    assert bad == []
    assert len(lines) == 4 * 210 + 2
    for b in "1234":     # each branch's own lines in order
        mine = [int(m.group(2)) for m in map(good.fullmatch, lines) if m.group(1) == b]
        assert mine == list(range(1, 201)), b
    errs = r.stderr.split("\n")
    assert errs.pop() == ""
    assert sorted(errs) == sorted(f"err-{b}-{i}" for b in "1234" for i in range(1, 201))
    # the job's recorded output holds the same lines
    job, _ = job_of(h)
    log = fm("log", job, "--output", cwd=w, home=h)
    assert sorted(log.stdout.splitlines()) == sorted(lines)
    assert sorted(log.stderr.splitlines()) == sorted(errs)


# -- 7. another fm's snapshot -----------------------------------------------------------------

LAYOUT = """for b in 1 2; do
  { for i in $(seq 40); do echo "$b-$i" >> "out_$b"; done; sleep 0.3; echo "$b-end" >> "out_$b"; } &
done
wait
echo "total $(cat out_1 out_2 | wc -l)"
"""


def test_a_snapshot_of_another_layout_is_replayed_from_the_start(w, h, tmp_path):
    (w / "l.fm").write_text(LAYOUT)
    ref_home = tmp_path / "ref"
    ref = fm("l.fm", cwd=w, home=ref_home)
    assert (ref.returncode, ref.stdout) == (0, "total 82\n"), ref.stderr
    _, ref_path = job_of(ref_home)
    snaps = [r for r in records(ref_path) if r["kind"] == "snapshot"]
    # a snapshot taken while both branches were running, well into the job
    late = [s for s in snaps if s["seq"] > 1 and {p["br"] for p in s["pending"]} >= {"1", "2"}]
    assert late, [(s["seq"], s["pending"]) for s in snaps]
    crash = late[0]["seq"] + 3
    for f in ("out_1", "out_2"):
        (w / f).unlink()
    first = fm("l.fm", cwd=w, home=h, env={"FM_CRASH_AT": crash})
    assert first.returncode == -signal.SIGKILL, first.stderr
    job, path = job_of(h)
    layouts = {r["layout"] for r in records(path) if r["kind"] == "snapshot"}
    assert len(layouts) == 1
    flight = in_flight(path)
    r = fm("resume", job, cwd=w, home=h, env={"FM_LAYOUT_SALT": "another fm"})
    assert r.returncode == 0 and "diverge" not in r.stderr, r.stderr
    reruns = 0
    for b in "12":
        got = (w / f"out_{b}").read_text().splitlines()
        want = [f"{b}-{i}" for i in range(1, 41)] + [f"{b}-end"]
        # an append cut off by the crash may have happened before it and runs again (G2)
        dups = [line for line, n in Counter(got).items() if n > 1]
        assert list(dict.fromkeys(got)) == want, b
        assert all(Counter(got)[d] == 2 for d in dups)
        cut = [q["data"] for (br, _), q in flight.items() if br == b and q["op"] == "write"]
        assert all(f"{d}\n" in cut for d in dups), (b, dups, cut)
        reruns += len(dups)
    assert first.stdout + r.stdout == f"total {82 + reruns}\n"
    # the resumed runner snapshots again, with its own layout
    after = [r["layout"] for r in records(path) if r["kind"] == "snapshot"]
    assert len(set(after)) == 2, after


def test_a_divergent_job_of_another_layout_names_the_fm_that_started_it(w, h):
    (w / "d.fm").write_text("sh -c 'echo one >> log' &\nwait\nsh -c 'echo two | tr a-z A-Z'\n"
                            "echo end\n")
    first = fm("d.fm", cwd=w, home=h, env={"FM_CRASH_AT": 5})   # after `sh -c 'echo two...'`
    assert first.returncode == -signal.SIGKILL
    job, path = job_of(h)
    recs = records(path)
    assert recs[1]["kind"] == "snapshot"
    recs[0]["source"] = recs[0]["source"].replace("echo two", "echo TWO")
    path.write_bytes(b"".join(codec.reseal(x) for x in recs))
    before = path.read_text()
    r = fm("resume", job, cwd=w, home=h, env={"FM_LAYOUT_SALT": "x"})
    assert r.returncode == 1
    assert r.stderr.startswith("fm: journal diverges from the program at step "), r.stderr
    assert re.search(r"\(the job was started by fm [^ ;]+; its snapshot's compiled layout "
                     r"differs from this fm [^ ]+'s, so it was replayed from its start\)",
                     r.stderr), r.stderr
    assert path.read_text() == before


# -- 2. the crash sweep -----------------------------------------------------------------------

# Each branch appends to its own counter file; every line written by a program carries that
# program's FM_STEP_KEY, which an interrupted effect keeps when it runs again (G2), so a line
# seen twice is either such a re-run (allowed, if its effect was in flight at a crash) or a
# completed effect run twice (a G1 violation). The retry's first attempt fails, the second
# succeeds, decided by key so that a re-run of an attempt decides the same way.
SWEEP = r"""
work() {
  local b=$1
  sh -c 'echo "a $FM_STEP_KEY" >> "counter_$1"' sh "$b"
  local low=$(printf '%s\n' 3 1 2 | sort | head -n 1)
  printf '%s\n' "$b" z | sort -r | head -n 1 > "pipe_$b"
  retry --attempts 3 --delay 0.05 -- sh -c 'echo "r $FM_STEP_KEY" >> "counter_$1"
    [ -e "mark_$1" ] && [ "$(cat "mark_$1")" != "$FM_STEP_KEY" ] && exit 0
    echo "$FM_STEP_KEY" > "mark_$1"; exit 1' sh "$b"
  sleep 0.2
  echo "b $b low=$low pipe=$(cat "pipe_$b")" >> "counter_$b"
  echo "branch $b done"
}
for b in 1 2 3 4 5; do work "$b" & done
wait
echo "summary $(sort -u counter_* | wc -l)"
"""
BRANCHES = "12345"
SWEEP_WORKERS = 3
SWEEP_STRIDE = 2          # crash points: every other record, and both ends


def _sweep_dir(root: Path) -> tuple[Path, Path]:
    work = root / "work"
    work.mkdir(parents=True)
    (work / "s.fm").write_text(SWEEP)
    return work, root / "home"


def _counter(work: Path, b: str) -> list:
    return (work / f"counter_{b}").read_text().splitlines()


def _shape(line: str) -> str:
    return re.sub(r" \S+-\d+$", " KEY", line) if line[0] in "ar" else line


@pytest.fixture(scope="module")
def sweep_ref(tmp_path_factory):
    work, home = _sweep_dir(tmp_path_factory.mktemp("ref"))
    r = fm("s.fm", cwd=work, home=home)
    assert r.returncode == 0, r.stderr
    job, path = job_of(home)
    return {"stdout": r.stdout, "records": len(records(path)),
            "counters": {b: _counter(work, b) for b in BRANCHES}}


def test_sweep_reference(sweep_ref):
    out = sweep_ref["stdout"].splitlines()
    assert out[-1] == "summary 20"
    assert sorted(out[:-1]) == [f"branch {b} done" for b in BRANCHES]
    for b in BRANCHES:
        lines = sweep_ref["counters"][b]
        assert [_shape(x) for x in lines] == ["a KEY", "r KEY", "r KEY", f"b {b} low=1 pipe=z"]
        assert len(set(lines)) == 4
    assert sweep_ref["records"] > 100


def _crash_and_resume(root: Path, crashes: list) -> dict:
    """Run the sweep script crashing at each of `crashes` in turn (the first run, then
    resumes), then resume to the end. Returns what the checks need."""
    work, home = _sweep_dir(root)
    out, flights, job = "", [], None
    for i, n in enumerate(crashes):
        args = ("s.fm",) if i == 0 else ("resume", job)
        r = fm(*args, cwd=work, home=home, env={"FM_CRASH_AT": n})
        if r.returncode != -signal.SIGKILL:
            return {"error": f"run {i} with FM_CRASH_AT={n}: status {r.returncode}: {r.stderr}"}
        job, path = job_of(home)
        out += r.stdout
        flights.append(in_flight(path))
    r = fm("resume", job, cwd=work, home=home, env={"FM_CRASH_AT": ""})
    _, path = job_of(home)
    return {"status": r.returncode, "stderr": r.stderr, "stdout": out + r.stdout, "job": job,
            "flights": flights, "counters": {b: _counter(work, b) for b in BRANCHES},
            "pipes": {b: (work / f"pipe_{b}").read_text() for b in BRANCHES},
            "last": records(path)[-1],
            "reruns": sum(1 for x in records(path) if x.get("rerun"))}


def _check_sweep(ref: dict, got: dict) -> None:
    assert "error" not in got, got.get("error")
    assert got["status"] == 0 and "Traceback" not in got["stderr"], got["stderr"]
    assert "diverge" not in got["stderr"], got["stderr"]
    assert got["last"]["kind"] == "job.finished"
    assert got["pipes"] == {b: "z\n" for b in BRANCHES}
    job = got["job"]
    # how many times each effect (by its key) was cut off by a crash
    cut = Counter()
    cut_writes = Counter()      # (branch, data) of builtin writes cut off
    for flight in got["flights"]:
        for (br, step), req in flight.items():
            cut[f"{job}-{step}"] += 1
            if req["op"] == "write":
                cut_writes[(br, req["data"])] += 1
    for b in BRANCHES:
        lines = got["counters"][b]
        want = [_shape(x) for x in ref["counters"][b]]
        # runs of equal lines are re-runs of one effect; collapsed, the file is the reference's
        collapsed = [x for i, x in enumerate(lines) if i == 0 or lines[i - 1] != x]
        assert [_shape(x) for x in collapsed] == want, (b, lines)
        assert len(set(collapsed)) == len(collapsed), (b, lines)    # distinct keys
        for line, n in Counter(lines).items():
            if line[0] in "ar":
                key = line.split()[-1]
                assert key.startswith(job + "-")
                allowed = 1 + cut[key]
            else:
                allowed = 1 + cut_writes[(b, line + "\n")]
            assert n <= allowed, (b, line, n, "ran more often than it was cut off", lines)
    # stdout: the reference's lines; a line written twice only if its write was cut off
    out = got["stdout"].splitlines()
    assert out[-1] == "summary 20", got["stdout"]
    extra = Counter(out) - Counter(ref["stdout"].splitlines())
    assert not Counter(ref["stdout"].splitlines()) - Counter(out), got["stdout"]
    cut_out = Counter()
    for flight in got["flights"]:
        for req in flight.values():
            if req["op"] == "write" and req["target"].get("kind") == "term":
                cut_out[req["data"].rstrip("\n")] += 1
    assert not extra - cut_out, (extra, cut_out)


def _sweep(ref: dict, tmp_path: Path, plans: list) -> None:
    with ThreadPoolExecutor(SWEEP_WORKERS) as pool:
        results = list(pool.map(lambda p: _crash_and_resume(tmp_path / "_".join(map(str, p)), p),
                                plans))
    # the sweep does exercise G2: effects cut off by the crashes ran again
    assert sum(got.get("reruns", 0) for got in results) >= len(plans)
    failures = []
    for plan, got in zip(plans, results):
        try:
            _check_sweep(ref, got)
        except AssertionError as e:
            failures.append(f"FM_CRASH_AT={plan}: {e}")
    assert not failures, "\n".join(failures[:5]) + f"\n({len(failures)} of {len(plans)} failed)"


def test_kill_at_journal_writes_and_resume(sweep_ref, tmp_path):
    last = sweep_ref["records"] - 2           # the last record is job.finished
    points = sorted(set(range(0, last + 1, SWEEP_STRIDE)) | {1, last})
    _sweep(sweep_ref, tmp_path, [[n] for n in points])


def test_kill_twice_the_resume_itself_crashing(sweep_ref, tmp_path):
    last = sweep_ref["records"] - 2
    firsts = list(range(3, last - 10, 19))
    _sweep(sweep_ref, tmp_path, [[n, n + 7] for n in firsts])


# Nested branches, `wait -n` and `$!` across crashes: which branch ends first is journaled,
# so a resumed job sees the same order and the same ids. (Branches 1 and 2 sleep 1 s first so
# that branch 3, if its `sh` was cut off by the crash and runs again at resume, still ends first.)
NESTED = r"""
f() {
  sleep 1
  sh -c 'echo "f$1 $FM_STEP_KEY" >> log' sh "$1"
  { sh -c 'echo "g$1 $FM_STEP_KEY" >> log' sh "$1"; echo "g$1 out"; } &
  local inner=$!
  wait -n || echo "inner failed"
  echo "f$1 inner=$inner"
}
f 1 & a=$!
f 2 & b=$!
sh -c 'exit 3' & c=$!
wait -n || echo "n $?"
wait "$a" "$b"
echo "ids $a $b $c $!"
"""


def _nested(root: Path, crash: int) -> dict:
    work = root / "work"
    work.mkdir(parents=True)
    (work / "n.fm").write_text(NESTED)
    home = root / "home"
    first = fm("n.fm", cwd=work, home=home, env={"FM_CRASH_AT": crash})
    job, path = job_of(home)
    flight = in_flight(path)
    second = fm("resume", job, cwd=work, home=home)
    return {"first": first.returncode, "status": second.returncode, "stderr": second.stderr,
            "stdout": first.stdout + second.stdout, "job": job, "flight": flight,
            "log": (work / "log").read_text().splitlines()}


def test_nested_branches_and_wait_n_survive_crashes(w, h, tmp_path):
    (w / "n.fm").write_text(NESTED)
    ref = fm("n.fm", cwd=w, home=h)
    assert ref.returncode == 0, ref.stderr
    out = ref.stdout.splitlines()
    assert out[0] == "n 3" and out[-1] == "ids 1 2 3 3", out
    inner = sorted(x for x in out if "inner=" in x)
    assert [x[:9] for x in inner] == ["f1 inner=", "f2 inner="]
    assert sorted(x[9:] for x in inner) == ["4", "5"]        # spawn order, whichever first
    _, path = job_of(h)
    total = len(records(path))
    points = list(range(1, total - 1, 3))
    with ThreadPoolExecutor(SWEEP_WORKERS) as pool:
        results = list(pool.map(lambda n: _nested(tmp_path / f"n{n}", n), points))
    for n, got in zip(points, results):
        assert (got["first"], got["status"]) == (-signal.SIGKILL, 0), (n, got["stderr"])
        keys = {f"{got['job']}-{step}" for _, step in got["flight"]}
        counts = Counter(got["log"])
        assert sorted(x.split()[0] for x in counts) == ["f1", "f2", "g1", "g2"], (n, got["log"])
        assert all(c == 1 or (c == 2 and x.split()[1] in keys) for x, c in counts.items()), \
            (n, got["log"], keys)
        lines = got["stdout"].splitlines()
        cut = Counter(q["data"].rstrip("\n") for q in got["flight"].values()
                      if q["op"] == "write" and q["target"].get("kind") == "term")
        assert all(c <= 1 + cut[x] for x, c in Counter(lines).items()), (n, lines, cut)
        assert lines[0] == "n 3" and lines[-1] == "ids 1 2 3 3", (n, lines)
        ids = sorted(x for x in set(lines) if "inner=" in x)
        assert [x[:9] for x in ids] == ["f1 inner=", "f2 inner="], (n, lines)
        assert sorted(x[9:] for x in ids) == ["4", "5"], (n, lines)
        assert sorted(set(lines) - set(ids)) == sorted(set(out) - set(inner)), (n, lines)
