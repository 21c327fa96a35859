"""The daemon as a user meets it: `fm daemon start|stop|status|run`, `fm run -d`, and the files
it keeps in the state directory."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from .conftest import Daemon, fm, wait_for


def test_start_status_stop(env, tmp_path):
    home = Path(env["FM_HOME"])
    r = fm("daemon", "status", env=env)
    assert r.returncode == 3 and "no daemon runs" in r.stdout
    r = fm("daemon", "start", env=env)
    assert r.returncode == 0 and "daemon started (pid" in r.stderr
    try:
        r = fm("daemon", "status", env=env)
        assert r.returncode == 0 and "daemon running: pid" in r.stdout
        r = fm("daemon", "start", env=env)
        assert r.returncode == 0 and "already running" in r.stderr
        for name in ("daemon.token", "daemon.log", "daemon.json"):
            mode = stat.S_IMODE(os.stat(home / name).st_mode)
            assert mode == 0o600, (name, oct(mode))
        assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    finally:
        r = fm("daemon", "stop", env=env)
    assert r.returncode == 0 and "daemon stopped" in r.stderr
    assert fm("daemon", "status", env=env).returncode == 3
    assert fm("daemon", "stop", env=env).stderr.strip() == "fm: no daemon was running"


def test_a_second_daemon_refuses(daemon, env):
    r = fm("daemon", "run", env=env, timeout=30)
    assert r.returncode == 1
    assert r.stderr.startswith("fm: a daemon already runs for ")
    assert f"pid {daemon.proc.pid}" in r.stderr and len(r.stderr.splitlines()) == 1
    assert daemon.proc.poll() is None


def test_detached_run_prints_the_id_and_the_daemon_runs_it(env, tmp_path):
    script = tmp_path / "hello.fm"
    script.write_text('echo "hi $WHO from $PWD"\nsleep 1\necho bye\n')
    work = tmp_path / "work"
    work.mkdir()
    r = fm("run", "-d", script, env={**env, "WHO": "ann"}, cwd=work)
    try:
        assert r.returncode == 0, r.stderr
        job = r.stdout.strip()
        assert job.startswith("hello-")
        wait_for(lambda: '"state":"done"' in fm("ps", "-a", "--json", env=env).stdout,
                 what="the job to finish")
        out = fm("log", job, "--output", env=env).stdout
        assert out == f"hi ann from {work}\nbye\n"
    finally:
        fm("daemon", "stop", env=env)


def test_detached_run_with_a_syntax_error_creates_nothing(env, tmp_path):
    script = tmp_path / "bad.fm"
    script.write_text("if true; then\n")
    r = fm("run", "-d", script, env=env)
    assert r.returncode == 2 and "bad.fm:" in r.stderr
    assert not (Path(env["FM_HOME"]) / "jobs").exists() or \
        not list((Path(env["FM_HOME"]) / "jobs").iterdir())
    assert fm("daemon", "status", env=env).returncode == 3


def test_orphans_are_resumed_at_start(env, tmp_path):
    env["FM_PARK_AFTER"] = "3600"       # the runner waits in the job instead of parking it
    daemon = Daemon(Path(env["FM_HOME"]), env).start()
    script = tmp_path / "long.fm"
    script.write_text("echo one\nsleep 2\necho two\n")
    r = fm("run", "-d", script, env=env)
    job = r.stdout.strip()
    wait_for(lambda: "one" in fm("log", job, "--output", env=env).stdout, what="first echo")
    daemon.kill()
    # The runner survives its daemon (its own session); kill it too: the job is orphaned.
    pid = wait_for(lambda: _holder(env, job), what="the runner")
    os.kill(pid, 9)
    wait_for(lambda: '"state":"orphaned"' in fm("ps", "--json", env=env).stdout,
             what="orphaned")
    daemon.start()
    wait_for(lambda: '"state":"done"' in fm("ps", "-a", "--json", env=env).stdout,
             what="the job to finish after the restart")
    assert fm("log", job, "--output", env=env).stdout == "one\ntwo\n"
    daemon.stop()


def _holder(env, job):
    import json
    for line in fm("ps", "--json", env=env).stdout.splitlines():
        j = json.loads(line)
        if j["id"] == job and j.get("pid"):
            return j["pid"]
    return None


def test_jobs_beyond_max_runners_are_queued(env, tmp_path):
    cfg = Path(env["FM_CONFIG"])
    cfg.write_text(cfg.read_text() + "max_runners = 1\n")
    daemon = Daemon(Path(env["FM_HOME"]), env).start()
    try:
        script = tmp_path / "busy.fm"
        script.write_text("/bin/sleep 3\n")
        first, second = (fm("run", "-d", script, env=env).stdout.strip() for _ in "12")
        ps = wait_for(lambda: (p := fm("ps", env=env).stdout) and "queued" in p and p,
                      what="a queued job")
        assert any(line.startswith(second) and "queued" in line for line in ps.splitlines()), ps
        status, body = daemon.request("GET", "/jobs")
        assert {j["id"]: j["state"] for j in body["jobs"]}[second] == "queued"
        wait_for(lambda: fm("ps", env=env).stdout.count("\n") <= 1, timeout=60,
                 what="both jobs to end")
    finally:
        daemon.stop()


def test_a_new_daemon_watches_the_runners_of_the_one_before(env, tmp_path):
    """A runner outlives its daemon (its own session); the next daemon watches it, and runs
    the job again when that runner dies with the job unfinished."""
    first = Daemon(Path(env["FM_HOME"]), env).start()
    script = tmp_path / "slow.fm"
    script.write_text("echo one >> out.txt\n/bin/sleep 30.5\necho two >> out.txt\n")
    job = fm("run", "-d", script, env=env, cwd=tmp_path).stdout.strip()
    pid = wait_for(lambda: _holder(env, job), what="the runner")
    first.kill()
    second = Daemon(Path(env["FM_HOME"]), env).start()
    try:
        wait_for(lambda: f"job {job}: watching" in (Path(env["FM_HOME"]) / "daemon.log")
                 .read_text(), what="the new daemon watching the runner")
        os.kill(pid, 9)
        wait_for(lambda: (p := _holder(env, job)) and p != pid, what="a runner of the new one")
    finally:
        fm("kill", job, env=env)
        second.stop()
