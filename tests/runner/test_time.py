"""The runner and durable time: `once` on resume, sleeping jobs in `fm ps`, `fm log` of the time
effects, fake time, and the config settings handed to the machine. A stand-in machine (below)
asks for the effects, so these tests do not depend on the real builtins."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import types

import pytest

from flowmetal.connectors import Term
from flowmetal.journal import codec, open_store, read_records
from flowmetal.journal.jobstore import new_job_id
from flowmetal.runner import jobs
from flowmetal.runner import run as runner
from flowmetal.runner.config import Config, HttpConfig, RetryConfig
from flowmetal.runner.history import describe_request, describe_result, history_lines

from .helpers import ROOT, records

# A machine with the real one's API whose "program" is picked by $1:
#   once CMD / plain CMD   run `sh -c CMD` (as `once` or not), print "status [N]", exit N
#   sleep SECONDS          read the clock, sleep SECONDS, print "woke" or "timed out"
# Kept as source so that a child process (`fm` in a subprocess) can use it too.
MACHINE_SRC = '''
class Machine:
    def __init__(self, state, source):
        self.state = state
        self.source = source

    def unit_source(self, unit):
        raise KeyError(unit)

    # the machine API (one branch, one request at a time) over run()
    def layout(self):
        return "time"

    def main_waits(self):
        return None

    def wakes(self):
        return []

    def done(self):
        return self.state.get("done")

    def start(self):
        return self._pending(self.run())

    def feed(self, step, res):
        return self._pending(self.run(res))

    def cancel(self, reason):
        self.state["done"] = {"op": "done", "status": 130, "cancelled": reason}
        return []

    def _pending(self, req):
        if req["op"] == "done":
            self.state["done"] = req
            return []
        return [{"step": self.state["step"], "br": "0", "req": req}]

    def run(self, res=None):
        s = self.state
        if s["step"]:
            s["res"].append(res)
        req = self._next(s, s["res"])
        if req["op"] != "done":
            s["step"] += 1
        return req

    def _next(self, s, res):
        mode, arg = s["argv"][1], s["argv"][2]
        if mode in ("once", "plain"):
            if not res:
                req = {"op": "exec", "cwd": s["cwd"],
                       "stages": [{"argv": ["sh", "-c", arg], "env": s["env"]}]}
                if mode == "once":
                    req["once"] = True
                return req
            if len(res) == 1:
                return {"op": "write", "target": {"kind": "term", "fd": 1},
                        "data": "status %s\\n" % res[0]["status"]}
            return {"op": "done", "status": res[0]["status"][0]}
        if mode == "sleep":
            if not res:
                return {"op": "clock"}
            if len(res) == 1:
                return {"op": "sleep", "until": res[0]["now"] + float(arg),
                        "why": "sleep %ss" % arg}
            if len(res) == 2:
                return {"op": "write", "target": {"kind": "term", "fd": 1},
                        "data": "timed out\\n" if res[1].get("timeout") else "woke\\n"}
            return {"op": "done", "status": 0}
        raise ValueError(mode)


def initial_state(*, job, argv, env, cwd, filename, pid=None, settings=None):
    return {"step": 0, "job": job, "argv": list(argv), "env": dict(env), "cwd": cwd,
            "filename": filename, "res": [], "settings": settings}
'''

TIMEFM_SRC = '''
import sys, types
machine = types.ModuleType("flowmetal.machine")
exec(compile(open(sys.argv[1]).read(), "time_machine", "exec"), machine.__dict__)
sys.modules["flowmetal.machine"] = machine
from flowmetal.cli import main
main(sys.argv[2:])
'''

fake = types.ModuleType("time_machine")
exec(compile(MACHINE_SRC, "time_machine", "exec"), fake.__dict__)


@pytest.fixture
def machine(monkeypatch):
    """The stand-in machine in place of flowmetal.machine for in-process runs."""
    monkeypatch.setattr(runner, "_machine_api", lambda: (fake.Machine, fake.initial_state))


@pytest.fixture
def timefm(tmp_path):
    """Run `fm ARGS` with the stand-in machine in a child process."""
    src = tmp_path / "time_machine.py"
    src.write_text(MACHINE_SRC)
    launcher = tmp_path / "timefm.py"
    launcher.write_text(TIMEFM_SRC)

    def go(*args, cwd, env=None, timeout=30):
        full = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
        return subprocess.run([sys.executable, str(launcher), str(src), *map(str, args)],
                              cwd=cwd, env=full, capture_output=True, text=True,
                              timeout=timeout)
    return go


class QuietTerm(Term):
    """A Term that collects what the job echoes instead of writing it to the real fds."""

    def __init__(self):
        super().__init__(stdin_fd=None, echo=True)
        self.written = {1: b"", 2: b""}

    def write(self, stream, data):
        self.written[stream] += data


def script(*args) -> runner.Script:
    return runner.Script(source="true\n", filename="t.fm", name="t", argv=["t.fm", *args])


def crashed_job(home, work, *args, started=1) -> tuple[str, os.PathLike]:
    """A job whose runner died after journaling its first request as started (`started`
    times: 2 means a resumed runner died again during the re-run), before any result."""
    job_id = new_job_id("t")
    job_dir = home / "jobs" / job_id
    env = dict(os.environ)
    s = script(*args)
    journal = open_store(home).create(job_id, {
        "version": "0", "id": job_id, "name": "t", "filename": s.filename, "source": s.source,
        "argv": s.argv, "cwd": str(work), "env": env, "pid": 1}, fsync=False)
    m = fake.Machine(fake.initial_state(job=job_id, argv=s.argv, env=env, cwd=str(work),
                                        filename=s.filename), source=s.source)
    req = m.run()
    journal.append("snapshot", {"step": 1, "state": m.state, "layout": m.layout(),
                                "pending": [{"step": 1, "br": "0", "started": False,
                                             "req": runner.compact(req, env)}]}, sync=False)
    for i in range(started):
        fields = {"step": 1, "req": runner.compact(req, env)}
        if i:
            fields["rerun"] = True
        journal.append("effect.started", fields, sync=False)
    journal.release()
    return job_id, job_dir


def resume(job_id, job_dir):
    term = QuietTerm()
    status = runner.resume_job(job_id, term=term, config=Config())
    return status, term


# ---- once ------------------------------------------------------------------------------------

def test_once_interrupted_is_not_run_again(machine, home, tmp_path):
    job_id, job_dir = crashed_job(home, tmp_path, "once", "echo ran >> ran")
    status, term = resume(job_id, job_dir)
    assert status == 125
    assert not (tmp_path / "ran").exists()
    assert term.written[1] == b"status [125]\n"
    recs = records(job_dir / "journal.jsonl")
    assert [r["kind"] for r in recs] == ["job.started", "snapshot", "effect.started",
                                         "effect.started", "effect.done", "effect.started",
                                         "effect.done", "job.finished"]
    assert recs[3]["rerun"] is True and recs[3]["req"]["once"] is True
    assert recs[4]["res"] == {"status": [125], "unknown": True,
                              "errors": {"0": "interrupted by a crash: outcome unknown"}}
    lines = list(history_lines(read_records(job_dir / "journal.jsonl")))
    assert any(line.endswith("-> (interrupted)") and "[once]" in line for line in lines)
    assert any(line.endswith("exec  sh -c 'echo ran >> ran' [once]  -> outcome unknown (125)")
               for line in lines)


def test_once_interrupted_twice_is_still_not_run(machine, home, tmp_path):
    job_id, job_dir = crashed_job(home, tmp_path, "once", "echo ran >> ran", started=2)
    status, _ = resume(job_id, job_dir)
    assert status == 125 and not (tmp_path / "ran").exists()


def test_without_once_an_interrupted_command_runs_again(machine, home, tmp_path):
    job_id, job_dir = crashed_job(home, tmp_path, "plain", "echo ran >> ran")
    status, term = resume(job_id, job_dir)
    assert status == 0 and (tmp_path / "ran").read_text() == "ran\n"
    assert term.written[1] == b"status [0]\n"


def test_once_that_completed_is_replayed_not_rerun(machine, home, tmp_path, monkeypatch):
    # A `once` with a recorded result is like any effect: its result is reused (G1).
    monkeypatch.chdir(tmp_path)
    status = runner.start_job(script("once", "echo ran >> ran"), term=QuietTerm(), config=Config())
    assert status == 0 and (tmp_path / "ran").read_text() == "ran\n"


def test_once_across_a_real_crash(timefm, home, tmp_path):
    # records: 0 job.started, 1 snapshot, 2 effect.started of the once exec -> killed there
    r = timefm("-c", "true", "once", "echo ran >> ran", cwd=tmp_path, env={"FM_CRASH_AT": "2"})
    assert r.returncode == -9
    job_id = os.listdir(home / "jobs")[0]
    r = timefm("resume", job_id, cwd=tmp_path)
    assert r.returncode == 125 and r.stdout == "status [125]\n", r.stderr
    assert not (tmp_path / "ran").exists()


# ---- sleep, fake time, fm log ----------------------------------------------------------------

def test_sleep_with_fake_time(machine, home, tmp_path, monkeypatch):
    clock = tmp_path / "clock"
    monkeypatch.setenv("FM_FAKE_CLOCK", str(clock))
    t0 = time.monotonic()
    term = QuietTerm()
    assert runner.start_job(script("sleep", "259200"), term=term, config=Config()) == 0
    assert time.monotonic() - t0 < 5
    assert term.written == {1: b"woke\n", 2: b""}
    recs = records(next((home / "jobs").iterdir()) / "journal.jsonl")
    now = recs[3]["res"]["now"]
    sleep = recs[4]["req"]
    assert sleep == {"op": "sleep", "until": now + 259200, "why": "sleep 259200s"}
    assert recs[5]["res"] == {"now": now + 259200}
    assert float(clock.read_text()) == now + 259200
    lines = list(history_lines(recs))
    assert re.search(r"  clock  -> \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", lines[2])
    assert re.search(r"  sleep  sleep 259200s until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(3d\)"
                     r"  -> woke$", lines[3]), lines[3]


def test_fm_log_of_a_kind_it_does_not_know_shows_its_fields_not_the_checksum():
    rec = json.loads(codec.encode(7, "future.thing", {"step": 3, "what": "x"}, ts="T"))
    assert "crc" in rec
    (line,) = history_lines([rec])
    assert line.endswith("future.thing  {'step': 3, 'what': 'x'}"), line


def test_interrupted_sleep_resumes_for_the_time_left(machine, home, tmp_path):
    # The runner died during a 4 s sleep that began 3 s ago: the re-run waits ~1 s, not 4
    # (times scaled so a busy 2-core machine cannot flake the bound).
    job_id = new_job_id("t")
    job_dir = home / "jobs" / job_id
    env = dict(os.environ)
    s = script("sleep", "4")
    journal = open_store(home).create(job_id, {
        "version": "0", "id": job_id, "name": "t", "filename": s.filename, "source": s.source,
        "argv": s.argv, "cwd": str(tmp_path), "env": env, "pid": 1}, fsync=False)
    m = fake.Machine(fake.initial_state(job=job_id, argv=s.argv, env=env, cwd=str(tmp_path),
                                        filename=s.filename), source=s.source)
    req = m.run()
    journal.append("snapshot", {"step": 1, "state": m.state, "layout": m.layout(),
                                "pending": [{"step": 1, "br": "0", "started": False,
                                             "req": req}]}, sync=False)
    began = time.time() - 3
    journal.append("effect.started", {"step": 1, "req": req}, sync=False)
    journal.append("effect.done", {"step": 1, "res": {"now": began}}, sync=False)
    journal.append("effect.started", {"step": 2, "req": m.run({"now": began})}, sync=False)
    journal.release()
    t0 = time.monotonic()
    status, term = resume(job_id, job_dir)
    assert status == 0 and term.written[1] == b"woke\n"
    assert time.monotonic() - t0 < 3


def test_log_renders_time_effects():
    ts = "2026-11-28T14:04:33.000Z"
    until = 1795874703.0  # 2026-11-28T14:05:03Z
    sleep = {"op": "sleep", "until": until, "why": "sleep 30s"}
    assert describe_request(sleep, ts) == "sleep  sleep 30s until 14:05:03Z (30s)"
    assert describe_result(sleep, {"now": until}) == "-> woke"
    assert describe_result(sleep, {"now": until - 10, "timeout": True}) == "-> timed out"
    assert describe_request(dict(sleep, until=until + 86400), ts) == \
        "sleep  sleep 30s until 2026-11-29T14:05:03Z (1d30s)"
    assert describe_request({"op": "clock"}) == "clock"
    assert describe_request({"op": "clock", "format": "%Y"}) == "clock  +%Y"
    assert describe_result({"op": "clock"}, {"now": until}) == "-> 2026-11-28T14:05:03.000Z"
    assert describe_result({"op": "clock", "format": "%Y"}, {"now": until, "text": "2026"}) \
        == "-> 2026"
    assert describe_request({"op": "clock", "format": "", "tz": "UTC"}) == "clock [TZ=UTC]"
    printf = {"op": "clock", "times": [["%Y", 0], ["%s", None]], "tz": "Asia/Tokyo"}
    assert describe_request(printf) == "clock  %(%Y)T@0 %(%s)T [TZ=Asia/Tokyo]"
    assert describe_result(printf, {"now": until, "texts": ["1970", "1795874703"]}) == \
        "-> 1970 | 1795874703"
    home = {"op": "home", "user": "root"}
    assert describe_request(home) == "home  ~root"
    assert describe_result(home, {"home": "/root"}) == "-> /root"
    assert describe_result(home, {"home": None}) == "-> no such user"
    assert describe_request({"op": "random"}) == "random"
    assert describe_result({"op": "random"}, {"int": 1234, "float": 0.5}) == "-> 1234"
    ex = {"op": "exec", "cwd": "/", "deadline": until,
          "stages": [{"argv": ["sleep", "60"]}]}
    assert describe_request(ex, ts) == "exec  sleep 60 [deadline 14:05:03Z]"
    assert describe_result(ex, {"status": [143], "stopped": True, "timeout": True}) == \
        "-> 143 (timed out)"
    assert describe_result(ex, {"timeout": True}) == "-> timed out (not run: deadline passed)"
    assert describe_request(dict(sleep, deadline=until - 5), ts) == \
        "sleep  sleep 30s until 14:05:03Z (30s) [deadline 14:04:58Z]"
    once = {"op": "exec", "cwd": "/", "once": True, "stages": [{"argv": ["deploy"]}]}
    assert describe_request(once) == "exec  deploy [once]"
    assert describe_result(once, runner.unknown_outcome(once)) == "-> outcome unknown (125)"


# ---- fm ps -----------------------------------------------------------------------------------

def _fm(*args, home):
    env = dict(os.environ, PYTHONPATH=str(ROOT), FM_HOME=str(home), FM_CONFIG=os.devnull)
    return subprocess.run([sys.executable, "-m", "flowmetal", *args], env=env,
                          capture_output=True, text=True, timeout=30)


def test_ps_shows_a_sleeping_job(machine, home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = {}
    t = threading.Thread(target=lambda: result.update(
        status=runner.start_job(script("sleep", "1.5"), term=QuietTerm(), config=Config())))
    t.start()
    try:
        deadline = time.monotonic() + 5
        while True:
            ids = open_store(home).ids()
            if ids:
                last = open_store(home).last(ids[0])
                if last and last["kind"] == "effect.started" and last["req"]["op"] == "sleep":
                    break
            assert time.monotonic() < deadline
            time.sleep(0.01)
        until = last["req"]["until"]
        info = jobs.job_info(open_store(home), ids[0])
        assert info.state == "sleeping" and info.pid == os.getpid()
        assert info.waiting_on == "timer until " + time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                 time.gmtime(until))
        assert info.since == last["ts"]
        r = _fm("ps", "--json", home=home)
        row = json.loads(r.stdout)
        assert row["state"] == "sleeping" and row["waiting_on"] == info.waiting_on
        assert row["pid"] == os.getpid()
        r = _fm("ps", home=home)
        assert f"sleeping (pid {os.getpid()})" in r.stdout and info.waiting_on in r.stdout
        lines = list(history_lines(read_records(home / "jobs" / ids[0] / "journal.jsonl"),
                                   live=True))
        assert re.search(r"  sleep  sleep 1.5s until \S+ \(1.5s\)  -> \(sleeping\)$", lines[-1])
    finally:
        t.join()
    assert result["status"] == 0
    assert jobs.job_info(open_store(home), ids[0]).state == "done"


def test_ps_shows_an_orphaned_sleeping_job(machine, home, tmp_path):
    job_id, job_dir = crashed_job(home, tmp_path, "sleep", "60")
    # make the pending request a sleep: rewrite the journal's last record by hand
    recs = records(job_dir / "journal.jsonl")
    until = 1795874703.25
    recs[-1]["req"] = {"op": "sleep", "until": until, "why": "sleep 1m",
                       "deadline": until + 60}
    (job_dir / "journal.jsonl").write_bytes(b"".join(codec.reseal(r) for r in recs))
    info = jobs.job_info(open_store(home), job_id)
    assert info.state == "orphaned" and info.pid is None
    assert info.waiting_on == "timer until 2026-11-28T14:05:03Z"
    recs[-1]["req"]["deadline"] = until - 3600  # the deadline comes first: it wakes then
    (job_dir / "journal.jsonl").write_bytes(b"".join(codec.reseal(r) for r in recs))
    assert jobs.job_info(open_store(home), job_id).waiting_on == "timer until 2026-11-28T13:05:03Z"
    row = json.loads(_fm("ps", "--json", home=home).stdout)
    assert row["state"] == "orphaned" and row["waiting_on"] == "timer until 2026-11-28T13:05:03Z"


def test_ps_not_sleeping_during_other_effects(machine, home, tmp_path):
    job_id, job_dir = crashed_job(home, tmp_path, "plain", "true")
    info = jobs.job_info(open_store(home), job_id)
    assert info.state == "orphaned" and info.waiting_on is None


# ---- settings --------------------------------------------------------------------------------

def test_config_settings_reach_the_machine(machine, home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = Config(retry=RetryConfig(attempts=9, delay=0.5, backoff=3.0, max_delay=60.0),
                    http=HttpConfig(timeout=12.0))
    assert runner.start_job(script("plain", "true"), term=QuietTerm(), config=config) == 0
    recs = records(next((home / "jobs").iterdir()) / "journal.jsonl")
    want = {"retry": {"attempts": 9, "delay": 0.5, "backoff": 3.0, "max_delay": 60.0},
            "http": {"timeout": 12.0}}
    assert recs[0]["settings"] == want
    assert recs[1]["kind"] == "snapshot" and recs[1]["state"]["settings"] == want


def test_settings_are_fixed_at_start(machine, home, tmp_path):
    # Replaying without a snapshot rebuilds the state with job.started's settings, not the
    # config of the resuming process.
    job_id = new_job_id("t")
    job_dir = home / "jobs" / job_id
    s = script("plain", "true")
    settings = {"retry": {"attempts": 2, "delay": 1.0, "backoff": 2.0, "max_delay": 5.0},
                "http": {"timeout": 3.0}}
    open_store(home).create(job_id, {
        "version": "0", "id": job_id, "name": "t", "filename": s.filename, "source": s.source,
        "argv": s.argv, "cwd": str(tmp_path), "env": dict(os.environ), "pid": 1,
        "settings": settings}, fsync=False).release()
    runner.resume_job(job_id, term=QuietTerm(), config=Config())
    recs = records(job_dir / "journal.jsonl")
    assert recs[1]["kind"] == "snapshot" and recs[1]["state"]["settings"] == settings


def test_real_machine_takes_the_settings():
    from flowmetal.machine import initial_state
    state = initial_state(job="t-aaaaaa", argv=["t.fm"], env={}, cwd="/", filename="t.fm",
                          settings=runner.settings_of(Config(retry=RetryConfig(attempts=7))))
    assert state["settings"]["retry"]["attempts"] == 7
