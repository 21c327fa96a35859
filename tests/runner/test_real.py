"""The runner end to end with the real machine: `python -m flowmetal` on real scripts, killed
and resumed. (tests/runner/test_crash_sweep.py kills a bigger script after every journal write.)"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from flowmetal.journal import codec, open_store

from .helpers import ROOT, kinds, only_job, records

# Each `sh` appends its number and its FM_STEP_KEY; the sleep gives a test time to kill it.
SCRIPT = r"""
for i in 1 2 3; do
  sh -c 'echo "$1" >> counter; echo "$FM_STEP_KEY" >> keys; sleep "$2"' sh "$i" "${1:-0}"
  echo "step $i"
done
echo bye
"""


def fm(*args, cwd, env=None, **kw):
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "flowmetal", *map(str, args)], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=60, **kw)


def fm_popen(*args, cwd, env=None):
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    e.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "flowmetal", *map(str, args)], cwd=cwd, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


@pytest.fixture
def script(work):
    (work / "s.fm").write_text(SCRIPT)
    return work


def lines(path):
    return path.read_text().split() if path.exists() else []


def wait_for(cond, timeout=20):
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, "timed out"
        time.sleep(0.01)


def test_a_real_job_and_its_journal(script, home):
    p = fm("s.fm", cwd=script)
    assert (p.returncode, p.stdout, p.stderr) == (0, "step 1\nstep 2\nstep 3\nbye\n", "")
    job_id, path = only_job(home)
    recs = records(path)
    assert recs[0]["kind"] == "job.started" and recs[0]["argv"] == ["s.fm"]
    assert recs[1]["kind"] == "snapshot" and recs[1]["pending"][0]["req"] == recs[2]["req"]
    assert recs[-1]["kind"] == "job.finished" and recs[-1]["status"] == 0
    assert lines(script / "counter") == ["1", "2", "3"]
    # FM_STEP_KEY is the job id and the step of the request.
    steps = [r["step"] for r in recs if r["kind"] == "effect.started"
             and r["req"]["op"] == "exec"]
    assert lines(script / "keys") == [f"{job_id}-{s}" for s in steps]
    out = fm("log", job_id[:6], "--output", cwd=script)
    assert out.stdout == p.stdout


def test_an_effect_cut_off_runs_again_with_the_same_key(script, home):
    proc = fm_popen("s.fm", 1, cwd=script)
    wait_for(lambda: lines(script / "counter") == ["1"])
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    job_id, path = only_job(home)
    assert kinds(path)[-1] == "effect.started"
    p = fm("resume", job_id, cwd=script)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "step 1\nstep 2\nstep 3\nbye\n"
    assert lines(script / "counter") == ["1", "1", "2", "3"]  # at least once (G2)
    keys = lines(script / "keys")
    assert keys[0] == keys[1] and len(set(keys)) == 3  # ... with the same FM_STEP_KEY


def test_the_program_is_pinned(script, home):
    p = fm("s.fm", cwd=script, env={"FM_CRASH_AT": "4"})
    assert p.returncode == -signal.SIGKILL
    (script / "s.fm").write_text("echo edited\n")  # G4: the job keeps its own copy
    job_id, _ = only_job(home)
    p = fm("resume", job_id, cwd=script)
    assert p.returncode == 0 and "edited" not in p.stdout and p.stdout.endswith("bye\n")
    assert lines(script / "counter") == ["1", "2", "3"]


def test_a_resumed_job_keeps_its_cwd_env_and_args(script, home, tmp_path):
    (script / "e.fm").write_text('sh -c \'echo "$GREETING $1 $(pwd)" > seen\' sh "$1"\n'
                                 'echo "$GREETING $1 $PWD"\n')
    p = fm("e.fm", "arg", cwd=script, env={"GREETING": "hello", "FM_CRASH_AT": "1"})
    assert p.returncode == -signal.SIGKILL
    job_id, _ = only_job(home)
    other = tmp_path / "other"
    other.mkdir()
    p = fm("resume", job_id, cwd=other, env={"GREETING": "changed"})
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"hello arg {script}\n"
    assert (script / "seen").read_text() == f"hello arg {script}\n"


def test_two_resumes_at_once_exactly_one_runs(script, home):
    p = fm("s.fm", "0.5", cwd=script, env={"FM_CRASH_AT": "1"})
    assert p.returncode == -signal.SIGKILL
    job_id, _ = only_job(home)
    a = fm_popen("resume", job_id, cwd=script)
    wait_for(lambda: open_store(home).holder(job_id) == a.pid)
    b = fm("resume", job_id[:-2], cwd=script)
    assert (b.returncode, b.stderr) == (1, f"fm: job {job_id} is being run by process {a.pid}\n")
    out, err = a.communicate(timeout=30)
    assert a.returncode == 0, err
    assert lines(script / "counter") == ["1", "2", "3"]


def test_a_torn_tail_is_survived(script, home):
    p = fm("s.fm", cwd=script, env={"FM_CRASH_AT": "5"})
    job_id, path = only_job(home)
    with open(path, "ab") as f:
        f.write(b'{"seq":6,"ts":"2026-01-01T00:00:00.000Z","kind":"eff')
    r = fm("resume", job_id, cwd=script)
    assert r.returncode == 0, r.stderr
    assert p.stdout + r.stdout == "step 1\nstep 2\nstep 3\nbye\n"


def test_divergence_is_reported(script, home):
    fm("s.fm", cwd=script, env={"FM_CRASH_AT": "6"})
    job_id, path = only_job(home)
    recs = records(path)
    started = [r for r in recs if r["kind"] == "effect.started"]
    started[-1]["req"]["cwd"] = "/somewhere/else"
    path.write_bytes(b"".join(codec.reseal(r) for r in recs))
    before = path.read_text()
    r = fm("resume", job_id, cwd=script)
    assert r.returncode == 1
    assert r.stderr.startswith(f"fm: journal diverges from the program at step {started[-1]['step']} ")
    assert r.stderr.count("\n") == 1
    assert path.read_text() == before


def test_ctrl_c(script, home):
    proc = fm_popen("s.fm", 30, cwd=script)
    wait_for(lambda: lines(script / "counter") == ["1"])
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130 and "Traceback" not in err
    job_id, path = only_job(home)
    assert records(path)[-1]["kind"] == "job.cancelled"


def test_ctrl_c_runs_finally_but_no_catch(work, home):
    """SPEC 1.3/1.6: Ctrl-C cancels; `finally` runs (journaled), `catch` does not; 130."""
    (work / "c.fm").write_text(
        "f() {\n  try {\n    sh -c 'echo started > mark; sleep 30'\n  } catch {\n"
        "    echo caught\n  } finally {\n    echo cleanup; echo cleaned > done\n  }\n}\n"
        "try { f; } finally { echo outer; }\necho not reached\n")
    proc = fm_popen("c.fm", cwd=work)
    wait_for(lambda: (work / "mark").exists())
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert out == "cleanup\nouter\n" and "Traceback" not in err
    assert (work / "done").read_text() == "cleaned\n"
    job_id, path = only_job(home)
    recs = records(path)
    assert [r["kind"] for r in recs].count("cancel") == 1
    assert recs[-1]["kind"] == "job.cancelled" and recs[-1]["status"] == 130


def test_a_cancelled_job_killed_in_its_finally_resumes_the_finally(work, home):
    (work / "c.fm").write_text(
        "try {\n  sh -c 'touch mark; sleep 30'\n} finally {\n  echo one >> log\n"
        "  sh -c 'sleep 1'\n  echo two >> log\n}\n")
    proc = fm_popen("c.fm", cwd=work)
    wait_for(lambda: (work / "mark").exists())
    os.killpg(proc.pid, signal.SIGINT)
    wait_for(lambda: (work / "log").exists())
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=20)
    job_id, path = only_job(home)
    r = fm("resume", job_id, cwd=work, env={"FM_CRASH_AT": ""})
    # the replay re-enters the finally after the recorded cancel; the cut-off sleep runs again
    assert r.returncode == 130, r.stderr
    assert (work / "log").read_text() == "one\ntwo\n"


def test_an_unhandled_error_is_rendered_and_journaled(work, home):
    (work / "f.fm").write_text("echo start\nsh -c 'exit 22'\necho not reached\n")
    p = fm("f.fm", cwd=work)
    assert p.returncode == 22 and p.stdout == "start\n"
    assert p.stderr.startswith("fm: f.fm:2:1: error: ") and "    2 | sh -c 'exit 22'" in p.stderr
    job_id, path = only_job(home)
    last = records(path)[-1]
    assert last["kind"] == "job.failed" and last["status"] == 22
    log = fm("log", job_id, "--output", cwd=work)
    assert log.stdout == "start\n" and log.stderr == p.stderr
    ps = fm("ps", "-a", "--json", cwd=work)
    assert json.loads(ps.stdout)["state"] == "failed"


def test_fm_c_and_stdin(work, home):
    p = fm("-c", 'echo "$0 $# $1"', "a", "b", cwd=work)
    assert (p.returncode, p.stdout) == (0, "fm 2 a\n")
    p = fm(cwd=work, input='echo "from stdin $0"\n')
    assert (p.returncode, p.stdout) == (0, "from stdin fm\n")
    p = fm("-c", "exit 3", cwd=work)
    assert (p.returncode, p.stderr) == (3, "")


def test_every_cut_of_the_last_line_resumes(script, home, tmp_path):
    """G6: a final record cut at any byte (a crash mid-write) is dropped and the job resumes;
    the effect whose completion was cut off runs again (G2), no other."""
    p = fm("s.fm", cwd=script, env={"FM_CRASH_AT": "7"})
    job_id, path = only_job(home)
    data = path.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    assert json.loads(data[last_start:])["kind"] == "effect.done"
    counter = (script / "counter").read_text()
    for cut in range(last_start, len(data)):
        path.write_bytes(data[:cut])
        (script / "counter").write_text(counter)
        r = fm("resume", job_id, cwd=script)
        assert r.returncode == 0, (cut, r.stderr)
        assert p.stdout + r.stdout == "step 1\nstep 2\nstep 3\nbye\n", cut
        got = lines(script / "counter")
        # the step whose completion was cut off ran again (at-least-once); the others once
        assert got == ["1", "2", "2", "3"], (cut, got)
    for garbage in (b"\x00\x00\x00", b'{"seq":9,"ts":"2026-'):
        path.write_bytes(data + garbage)
        (script / "counter").write_text(counter)
        r = fm("resume", job_id, cwd=script)
        assert r.returncode == 0, (garbage, r.stderr)
        assert lines(script / "counter") == ["1", "2", "3"], garbage
    # A final line with its newline was written whole: if it is not the next record, checksum
    # and all, it is damage, not a torn write. So is a whole record that lost its newline.
    for bad in (b'{"seq":99}\n', b"not json\n", data[last_start:-1] + b"x"):
        path.write_bytes(data + bad if bad[-1:] == b"\n" else data[:last_start] + bad)
        r = fm("resume", job_id, cwd=script)
        assert r.returncode == 1 and "damaged record" in r.stderr, bad


def test_damage_in_the_middle_is_reported_with_its_line(script, home):
    fm("s.fm", cwd=script, env={"FM_CRASH_AT": "7"})
    job_id, path = only_job(home)
    text = path.read_text().split("\n")
    text[2] = text[2][:10] + "#" + text[2][11:]
    path.write_text("\n".join(text))
    before = path.read_text()
    r = fm("resume", job_id, cwd=script)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "journal.jsonl:3:" in r.stderr, r.stderr
    assert path.read_text() == before
