"""The runner loop with the fake machine: journaling, snapshots, replay after kill -9 at every
journal write, torn tails, damage, two runners at once, divergence, Ctrl-C."""
from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from flowmetal.connectors import Term
from flowmetal.errors import JobLockedError, JournalError
from flowmetal.journal import FORMAT, codec, open_store
from flowmetal.runner import run as runner
from flowmetal.runner.config import Config

from . import fake_machine
from .helpers import fakefm, fakefm_popen, kinds, only_job, records


@pytest.fixture
def fake(monkeypatch):
    """The fake machine in place of flowmetal.machine for in-process runs."""
    monkeypatch.setitem(sys.modules, "flowmetal.machine", fake_machine)


class QuietTerm(Term):
    """A Term that collects what the job echoes instead of writing it to the real fds."""

    def __init__(self):
        super().__init__(stdin_fd=None, echo=True)
        self.written = {1: b"", 2: b""}

    def write(self, stream, data):
        self.written[stream] += data


def start(work, *args):
    """Start the fake job in this process (the test has chdir'd to `work`)."""
    term = QuietTerm()
    script = runner.Script(source="echo fake\n", filename="count.fm", name="count",
                           argv=["count.fm", *map(str, args)])
    status = runner.start_job(script, term=term, config=Config())
    return status, term


def counter(work) -> list[int]:
    p = work / "counter"
    return [int(x) for x in p.read_text().split()] if p.exists() else []


# ---- one run, no crash ----

def test_a_job_runs_and_is_journaled(fake, work, home, monkeypatch):
    monkeypatch.chdir(work)
    status, term = start(work, 3)
    assert status == 0
    assert counter(work) == [1, 2, 3]
    assert term.written[1] == b"step 1\nstep 2\nstep 3\nbye\n"
    job_id, path = only_job(home)
    assert kinds(path) == ["job.started", "snapshot"] + ["effect.started", "effect.done"] * 4 + ["job.finished"]
    recs = records(path)
    first = recs[0]
    assert first["format"] == FORMAT and first["name"] == "count" and first["filename"] == "count.fm"
    assert first["argv"] == ["count.fm", "3"] and first["source"] == "echo fake\n"
    assert first["cwd"] == str(work) and first["env"]["FM_HOME"] == str(home)
    snap = recs[1]
    [pend] = snap["pending"]
    assert snap["step"] == 1 and pend["req"]["op"] == "exec" and snap["state"]["step"] == 1
    assert pend["req"] == recs[2]["req"] and pend["step"] == 1 and pend["started"] is False
    assert [r["step"] for r in recs[2:10]] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert recs[-1] == {**recs[-1], "kind": "job.finished", "status": 0, "step": 4}
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert not (home / "jobs" / job_id / "lock").read_text()  # released


def test_snapshots_every_64_requests(fake, work, home, monkeypatch):
    monkeypatch.chdir(work)
    status, _ = start(work, 140)
    assert status == 0
    _, path = only_job(home)
    snaps = [r["step"] for r in records(path) if r["kind"] == "snapshot"]
    assert snaps == [1, 65, 129]


def test_an_unhandled_error_fails_the_job_with_a_diagnostic(fake, work, home, monkeypatch):
    monkeypatch.chdir(work)
    status, term = start(work, 1, 0, "fail")
    assert status == 3
    assert term.written[2].decode() == (
        "fm: count.fm:1:1: error: `thing` exited with status 3\n"
        "    1 | echo fake\n"
        "      | ^~~~\n")
    _, path = only_job(home)
    last = records(path)[-1]
    assert last["kind"] == "job.failed" and last["status"] == 3
    assert last["error"]["message"] == "`thing` exited with status 3"


def test_a_syntax_error_creates_no_job(fake, work, home, monkeypatch):
    from flowmetal.errors import ParseError
    monkeypatch.chdir(work)
    script = runner.Script(source="echo )\n", filename="bad.fm", name="bad", argv=["bad.fm"])
    with pytest.raises(ParseError):
        runner.start_job(script, term=QuietTerm(), config=Config())
    assert not (home / "jobs").exists() or not list((home / "jobs").iterdir())


def test_the_logical_cwd_is_kept(fake, work, home, monkeypatch, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(work)
    monkeypatch.chdir(link)
    monkeypatch.setenv("PWD", str(link))
    start(link, 1)
    _, path = only_job(home)
    assert records(path)[0]["cwd"] == str(link)


# ---- resume, in-process ----

def crashed_job(work, n, crash_at, *extra):
    """Run the fake job in a child that kills itself after journal record `crash_at`."""
    p = fakefm("count.fm", n, *extra, cwd=work, env={"FM_CRASH_AT": str(crash_at)})
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr)
    return p


def resume(home, term=None):
    job_id = open_store().find("count")
    return runner.resume_job(job_id, term=term or QuietTerm(), config=Config())


def test_resume_finished_job_refuses(fake, work, home, monkeypatch):
    monkeypatch.chdir(work)
    start(work, 1)
    with pytest.raises(runner.JobFinishedError, match=r"job count-\w+ already finished \(status 0\)"):
        resume(home)


def test_resume_replays_without_echo_and_continues(fake, work, home):
    p = crashed_job(work, 5, 7)  # 7 = effect.done of the third command
    assert p.stdout == "step 1\nstep 2\nstep 3\n"
    term = QuietTerm()
    assert resume(home, term) == 0
    assert term.written[1] == b"step 4\nstep 5\nbye\n"  # no echo of the replayed steps
    assert counter(work) == [1, 2, 3, 4, 5]


def test_rerun_after_kill_during_effect(fake, work, home):
    proc = fakefm_popen("count.fm", 2, 0.5, cwd=work)
    deadline = time.time() + 20
    while counter(work) != [1] and time.time() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    job_id, path = only_job(home)
    assert kinds(path)[-1] == "effect.started"
    p = fakefm("resume", job_id, cwd=work)
    assert p.returncode == 0, p.stderr
    assert counter(work) == [1, 1, 2]  # at-least-once: the cut-off command ran again
    keys = (work / "keys").read_text().split()
    assert keys == [f"{job_id}-1", f"{job_id}-1", f"{job_id}-2"]  # ... with the same key
    started = [r for r in records(path) if r["kind"] == "effect.started"]
    assert [r["step"] for r in started] == [1, 1, 2, 3]
    assert started[1].get("rerun") is True and started[1]["req"] == started[0]["req"]
    assert p.stdout == "step 1\nstep 2\nbye\n"


def expected_records(n):
    # job.started, snapshot, n + 1 effect pairs (n commands and the final write), job.finished
    return 2 + 2 * (n + 1) + 1


def test_crash_at_every_journal_write(fake, work, home):
    """kill -9 after each record in turn; resuming (in a child, possibly crashing again) always
    completes every command exactly once and prints every line of output exactly once."""
    n = 3
    total = expected_records(n)
    for crash_at in range(total - 1):  # after the last record there is nothing left to do
        for f in ("counter", "keys"):
            (work / f).unlink(missing_ok=True)
        for d in (home / "jobs").glob("*"):
            import shutil
            shutil.rmtree(d)
        first = crashed_job(work, n, crash_at)
        job_id, path = only_job(home)
        assert len(records(path)) == crash_at + 1
        p = fakefm("resume", job_id, cwd=work)
        assert p.returncode == 0, (crash_at, p.stderr)
        assert counter(work) == [1, 2, 3], crash_at  # G1: no completed effect ran twice
        assert first.stdout + p.stdout == "step 1\nstep 2\nstep 3\nbye\n", crash_at
        ks = kinds(path)
        assert ks[-1] == "job.finished" and ks.count("job.finished") == 1
        assert ks.count("effect.done") == n + 1


def test_crash_during_resume_then_resume_again(fake, work, home):
    crashed_job(work, 4, 5)
    job_id, path = only_job(home)
    p = fakefm("resume", job_id, cwd=work, env={"FM_CRASH_AT": "9"})
    assert p.returncode == -signal.SIGKILL
    p = fakefm("resume", job_id, cwd=work)
    assert p.returncode == 0, p.stderr
    assert counter(work) == [1, 2, 3, 4]


def test_resume_from_a_later_snapshot(fake, work, home):
    """With more than 64 steps the resume starts from the second snapshot (G5)."""
    crashed_job(work, 100, 2 + 2 * 70)  # after effect.started... of step ~70
    job_id, path = only_job(home)
    snaps = [r for r in records(path) if r["kind"] == "snapshot"]
    assert [s["step"] for s in snaps] == [1, 65]
    assert resume(home) == 0
    assert counter(work) == list(range(1, 101))


def test_torn_tail_is_cut_and_the_job_resumes(fake, work, home):
    crashed_job(work, 3, 5)
    job_id, path = only_job(home)
    with open(path, "ab") as f:
        f.write(b'{"seq":6,"ts":"2026-01-01T00:00:00.000Z","kind":"effect.do')
    assert resume(home) == 0
    assert counter(work) == [1, 2, 3]
    assert kinds(path)[-1] == "job.finished"


def test_damage_is_reported_not_skipped(fake, work, home):
    crashed_job(work, 3, 5)
    job_id, path = only_job(home)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[3] = b"garbage\n"
    path.write_bytes(b"".join(lines))
    with pytest.raises(JournalError, match=r"journal.jsonl:4: damaged record"):
        resume(home)
    p = fakefm("resume", job_id, cwd=work)
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("fm: ") and "Traceback" not in p.stderr


def test_two_resumes_at_once_exactly_one_runs(fake, work, home):
    crashed_job(work, 3, 3, 0.6)  # DELAY 0.6s per command
    job_id, path = only_job(home)
    a = fakefm_popen("resume", job_id, cwd=work)
    deadline = time.time() + 20
    # (The lock file still names the killed runner: ask who holds the lock, as ps does.)
    while open_store(home).holder(job_id) != a.pid and time.time() < deadline:
        time.sleep(0.01)
    b = fakefm("resume", job_id[:9], cwd=work)
    assert b.returncode == 1
    assert b.stderr == f"fm: job {job_id} is being run by process {a.pid}\n"
    out, err = a.communicate(timeout=30)
    assert a.returncode == 0, err
    assert counter(work) == [1, 2, 3]


def test_divergence_is_loud(fake, work, home):
    crashed_job(work, 4, 6)  # last record: effect.started of step 3
    job_id, path = only_job(home)
    recs = records(path)
    assert recs[-1]["kind"] == "effect.started" and recs[-1]["step"] == 3
    # Pretend the program asked for something else when it ran: the replay must notice.
    recs[4]["req"]["stages"][0]["argv"][2] = "echo something else"
    path.write_bytes(b"".join(codec.reseal(r) for r in recs))
    with pytest.raises(runner.DivergenceError, match="journal diverges from the program at step 2"):
        resume(home)
    p = fakefm("resume", job_id, cwd=work)
    assert p.returncode == 1 and "journal diverges from the program at step 2" in p.stderr
    assert p.stderr.count("\n") == 1
    assert kinds(path)[-1] == "effect.started"  # nothing appended


def test_divergence_of_a_result_without_start(fake, work, home):
    crashed_job(work, 4, 6)
    job_id, path = only_job(home)
    recs = records(path)
    recs[3]["step"] = 9  # an effect.done for a step that was never started
    path.write_bytes(b"".join(codec.reseal(r) for r in recs))
    with pytest.raises(runner.DivergenceError, match="at step 9"):
        resume(home)


def test_resume_while_locked_in_process(fake, work, home):
    crashed_job(work, 2, 3)
    store = open_store()
    job_id = store.find("count")
    with store.lease(job_id):
        with pytest.raises(JobLockedError, match=f"job {job_id} is being run by process {os.getpid()}"):
            resume(home)


def test_ctrl_c_cancels_the_job(fake, work, home):
    proc = fakefm_popen("count.fm", 3, 30, cwd=work)
    deadline = time.time() + 20
    while counter(work) != [1] and time.time() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)  # as the terminal does: the whole foreground group
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    job_id, path = only_job(home)
    last = records(path)[-1]
    assert last["kind"] == "job.cancelled" and last["status"] == 130
    assert "Traceback" not in err
    p = fakefm("resume", job_id, cwd=work)
    assert p.returncode == 1 and "already finished (status 130)" in p.stderr


def test_sigterm_leaves_the_job_resumable(fake, work, home):
    proc = fakefm_popen("count.fm", 2, 0.3, cwd=work)
    deadline = time.time() + 20
    while counter(work) != [1] and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 128 + signal.SIGTERM, err
    job_id, path = only_job(home)
    assert f"can be resumed with fm resume {job_id}" in err
    assert kinds(path)[-1] in ("effect.started", "effect.done")
    p = fakefm("resume", job_id, cwd=work)
    assert p.returncode == 0, p.stderr
    assert counter(work)[-1] == 2


def test_a_resumed_job_keeps_its_environment(fake, work, home, tmp_path):
    crashed_job(work, 2, 3)
    job_id, path = only_job(home)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    p = fakefm("resume", job_id, cwd=elsewhere, env={"n": "999"})
    assert p.returncode == 0, p.stderr
    assert counter(work) == [1, 2] and not (elsewhere / "counter").exists()
