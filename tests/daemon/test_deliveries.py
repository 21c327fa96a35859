"""`callback` and `await` end to end (SPEC 1.4, G3): real jobs, a real daemon on 127.0.0.1 and
real HTTP. Every delivery acknowledged is consumed exactly once, whenever it comes: before the
await, during it, while the job is parked, while no daemon runs, across crashes."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from flowmetal.journal.jsonl import JsonlStore

from .conftest import Daemon, fm, wait_for


def _http(url: str, data: bytes | None = b"", method: str = "POST") -> tuple[int, dict]:
    req = urllib.request.Request(url, data=data if method != "GET" else None, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _ps(env) -> dict:
    return {j["id"]: j for j in map(json.loads, fm("ps", "-a", "--json", env=env)
                                    .stdout.splitlines())}


@pytest.fixture
def stop_daemon(env):
    """For tests whose job starts the daemon itself (a callback needs one)."""
    yield
    fm("daemon", "stop", env=env)


def _foreground(script: Path, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flowmetal", str(script)], env=env,
                            cwd=script.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _start_with_url(tmp_path: Path, env, source: str) -> tuple[subprocess.Popen, str]:
    """A foreground job of `source`, and the callback URL it writes to url.txt."""
    script = tmp_path / "cb.fm"
    script.write_text(source)
    proc = _foreground(script, env)
    url = wait_for(lambda: (tmp_path / "url.txt").exists() and
                   (tmp_path / "url.txt").read_text().strip(), what="the URL")
    return proc, url


def test_a_foreground_job_awaits_its_callback(env, tmp_path, stop_daemon):
    proc, url = _start_with_url(tmp_path, env, 'url=$(callback --name approve)\n'
                                'echo "$url" > url.txt\nawait "$url" > body.txt\n'
                                'echo "method=$CALLBACK_METHOD"\ncat body.txt\n')
    assert url.startswith("http://127.0.0.1:") and "/callbacks/" in url
    job = wait_for(lambda: [j for j in _ps(env).values() if j["state"] == "waiting"],
                   what="the job waiting")[0]
    assert job["waiting_on"] == "callback approve" and job["pid"] == proc.pid
    assert _http(url, b"yes") == (200, {"delivered": True, "job": job["id"]})
    status, body = _http(url, b"no")
    assert status == 409 and "first delivery wins" in body["error"]
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (0, "method=POST\nyes"), err


def test_a_delivery_before_the_await_is_kept(env, tmp_path, stop_daemon):
    proc, url = _start_with_url(tmp_path, env, 'url=$(callback)\necho "$url" > url.txt\n'
                                'until [ -e go ]; do sleep 0.1; done\n'
                                'await "$url" --timeout 1m\n')
    assert _http(url + "?a=1&b=two", method="GET")[0] == 200
    (tmp_path / "go").touch()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out) == {"a": "1", "b": "two"}     # GET: the query as a JSON object


def test_await_times_out_with_124(env, tmp_path, stop_daemon):
    p = fm("-c", "await --event never --timeout 300ms", env=env)
    assert p.returncode == 124 and "await: nothing came after 300ms" in p.stderr
    p = fm("-c", "timeout 300ms { await --event never; }", env=env)
    assert p.returncode == 124 and "timed out" in p.stderr
    p = fm("-c", "await --event 'bad name'", env=env)
    assert p.returncode == 2 and "bad event name" in p.stderr


def test_events_from_four_clients_are_consumed_in_order_once(daemon, env, tmp_path):
    script = tmp_path / "consume.fm"
    script.write_text('for i in $(seq 100); do x=$(await --event e); echo "$x" >> out.txt; done\n')
    job = fm("run", "-d", script, env=env, cwd=tmp_path).stdout.strip()
    got: dict = {}

    def client(c: int) -> None:
        for k in range(25):
            status, body = daemon.request("POST", f"/jobs/{job}/events/e", f"{c}-{k}".encode())
            assert status == 202
            got[body["n"]] = f"{c}-{k}"
    threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 101))
    wait_for(lambda: _ps(env)[job]["state"] == "done", timeout=120, what="the job to end")
    lines = (tmp_path / "out.txt").read_text().splitlines()
    assert lines == [got[n] for n in range(1, 101)]      # in the order they were numbered
    assert JsonlStore(daemon.home).mail(job) == {}       # every one taken


def test_a_callback_completed_while_no_daemon_runs(daemon, env, tmp_path):
    script = tmp_path / "later.fm"
    script.write_text('url=$(callback --name later)\necho "$url" > url.txt\n'
                      'await "$url" > body.txt\n')
    job = fm("run", "-d", script, env=env, cwd=tmp_path).stdout.strip()
    wait_for(lambda: _ps(env)[job]["state"] == "waiting" and not _ps(env)[job]["pid"],
             what="the job parked")
    daemon.stop()
    url = (tmp_path / "url.txt").read_text().strip()
    p = fm("complete", url, "done by hand", env=env)
    assert p.returncode == 0, p.stderr               # writes the inbox, starts a daemon
    try:
        wait_for(lambda: _ps(env)[job]["state"] == "done", what="the job to end")
        assert (tmp_path / "body.txt").read_text() == "done by hand"
        p = fm("complete", url, "again", env=env)
        assert p.returncode != 0 and ("has ended" in p.stderr or "delivered before" in p.stderr)
    finally:
        fm("daemon", "stop", env=env)


def test_a_parked_sleep_survives_a_daemon_kill(daemon, env, tmp_path):
    script = tmp_path / "nap.fm"
    # 5 s: a loaded machine may take a while to start the runner, which parks the job only
    # when more than a second of the sleep is left
    script.write_text("echo a >> out.txt\nsleep 5\necho b >> out.txt\n")
    job = fm("run", "-d", script, env=env, cwd=tmp_path).stdout.strip()
    wait_for(lambda: _ps(env)[job]["state"] == "sleeping" and not _ps(env)[job]["pid"],
             what="the job parked")
    daemon.kill()
    due = dict(JsonlStore(daemon.home).wakes())[job]
    time.sleep(max(0.0, due - time.time()) + 0.5)    # past its due time, no daemon
    assert _ps(env)[job]["state"] == "sleeping"
    restarted = time.monotonic()
    daemon.start()
    wait_for(lambda: _ps(env)[job]["state"] == "done", what="the job to end")
    assert time.monotonic() - restarted < 30          # at once, not at some later poll
    assert (tmp_path / "out.txt").read_text() == "a\nb\n"


def test_awaits_survive_a_crash_at_every_journal_write(env, tmp_path):
    """G3 on the consumer's side: the runner SIGKILLed after each record (and before each),
    then resumed until the job ends: each event is consumed exactly once, in order."""
    script = tmp_path / "g3.fm"
    script.write_text('for i in 1 2; do x=$(await --event e); echo "$i $x" >> out.txt; done\n')
    want = "1 a\n2 b\n"
    crashed = []

    def run(crash_env: dict) -> tuple[str, int]:
        home = tmp_path / f"home-{len(list(tmp_path.iterdir()))}"
        e = dict(env, FM_HOME=str(home), FM_HAND_OVER="0", **crash_env)
        (tmp_path / "out.txt").unlink(missing_ok=True)
        store = JsonlStore(home)
        first = subprocess.Popen([sys.executable, "-m", "flowmetal", str(script)], env=e,
                                 cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        job = wait_for(lambda: store.ids() if home.exists() else None, what="the job")[0]
        for data in "ab":
            store.send(job, "e", {"data": data})
        first.communicate(timeout=60)
        crashed.append(first.returncode == -9)
        e = {k: v for k, v in e.items() if not k.startswith("FM_CRASH")}
        for _ in range(10):
            if _ps(e)[job]["state"] == "done":
                break
            fm("resume", job, env=e, cwd=tmp_path)
        assert _ps(e)[job]["state"] == "done", crash_env
        assert store.mail(job) == {}, crash_env
        return (tmp_path / "out.txt").read_text(), len(list(store.records(job)))

    out, records = run({})
    assert out == want
    for n in range(1, records):
        for hook in ("FM_CRASH_AT", "FM_CRASH_BEFORE"):
            assert run({hook: str(n)})[0] == want, (hook, n)
    assert sum(crashed) >= 2 * (records - 2)         # the hooks did kill it


@pytest.mark.parametrize("how", ["SIGKILL", "SIGHUP"])
def test_a_foreground_runner_that_dies_leaves_its_job_to_the_daemon(env, tmp_path, how,
                                                                    stop_daemon):
    import signal
    script = tmp_path / "fg.fm"
    script.write_text('echo a >> out.txt\nx=$(await --event go)\necho "$x" >> out.txt\n')
    proc = _foreground(script, env)
    home = Path(env["FM_HOME"])
    store = JsonlStore(home)
    job = wait_for(lambda: store.ids() if home.exists() else None, what="the job")[0]
    log = home / "daemon.log"
    wait_for(lambda: log.exists() and f"job {job}: watching" in log.read_text(),
             what="the daemon watching")
    assert store.holder(job) == proc.pid
    time.sleep(1)           # the daemon logs before it answers: let fm read the answer
    proc.send_signal(getattr(signal, how))
    _, err = proc.communicate(timeout=60)
    if how == "SIGHUP":
        assert f"fm: hung up; the daemon goes on with job {job}" in err
    wait_for(lambda: store.holder(job) is None and _ps(env)[job]["state"] == "waiting",
             what="the daemon to take the job over and park it")
    assert fm("send", job, "go", "hi", env=env).returncode == 0
    wait_for(lambda: _ps(env)[job]["state"] == "done", what="the job to end")
    assert (tmp_path / "out.txt").read_text() == "a\nhi\n"


def test_parked_jobs_can_be_attached_to_cancelled_and_killed(daemon, env, tmp_path):
    script = tmp_path / "pk.fm"
    script.write_text("try { echo start; await --event go; } finally { echo cleanup; }\n")
    one, two = (fm("run", "-d", script, env=env, cwd=tmp_path).stdout.strip() for _ in "12")
    for job in (one, two):
        wait_for(lambda j=job: _ps(env)[j]["state"] == "waiting" and not _ps(env)[j]["pid"],
                 what="the job parked")
    attach = subprocess.Popen([sys.executable, "-m", "flowmetal", "attach", one], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert attach.stdout.readline() == "start\n"          # the output so far: it follows
    cancel = fm("cancel", one, env=env)
    assert cancel.returncode == 130, cancel.stderr          # its finally block ran
    out, err = attach.communicate(timeout=60)
    assert (attach.returncode, out) == (130, "cleanup\n")
    assert "is parked, waiting for event go" in err
    assert fm("kill", two, env=env).returncode == 0
    states = _ps(env)
    assert (states[one]["state"], states[one]["status"]) == ("cancelled", 130)
    assert (states[two]["state"], states[two]["status"]) == ("cancelled", 137)


def test_a_callback_with_a_method_refuses_the_others(daemon, env, tmp_path):
    script = tmp_path / "get.fm"
    script.write_text('url=$(callback --method GET)\necho "$url" > url.txt\n'
                      'await "$url" > got.txt\n')
    job = fm("run", "-d", script, env=env, cwd=tmp_path).stdout.strip()
    url = wait_for(lambda: (tmp_path / "url.txt").exists() and
                   (tmp_path / "url.txt").read_text().strip(), what="the URL")
    status, body = _http(url, b"posted")
    assert status == 405 and "answers GET only" in body["error"]
    assert _http(url + "?ok=yes", method="GET")[0] == 200
    wait_for(lambda: _ps(env)[job]["state"] == "done", what="the job to end")
    assert json.loads((tmp_path / "got.txt").read_text()) == {"ok": "yes"}
    p = fm("-c", "callback --method PUT", env=env)
    assert p.returncode == 2 and "--method must be GET or POST" in p.stderr


def test_fm_log_shows_where_a_job_was_parked(daemon, env, tmp_path):
    script = tmp_path / "lg.fm"
    script.write_text('x=$(await --event go)\necho "got $x"\n')
    job = fm("run", "-d", script, env=env, cwd=tmp_path).stdout.strip()
    wait_for(lambda: _ps(env)[job]["state"] == "waiting" and not _ps(env)[job]["pid"],
             what="the job parked")
    log = fm("log", job, env=env).stdout
    assert "job.parked  until a delivery comes" in log and "await  event go  -> (waiting)" in log
    fm("send", job, "go", "hi", env=env)
    wait_for(lambda: _ps(env)[job]["state"] == "done", what="the job to end")
    log = fm("log", job, env=env).stdout
    assert "await  event go  -> (parked)" in log and "-> event go #1 (2 chars)" in log


def test_a_job_lingers_before_it_parks_so_a_stream_of_events_keeps_its_runner(env, tmp_path):
    """FM_LINGER (the daemon sets 2 s): a job that would park on an await waits that long in
    its runner first; events that keep coming are taken there, without a runner start each."""
    d = Daemon(Path(env["FM_HOME"]), dict(env, FM_LINGER="3")).start()
    try:
        script = tmp_path / "stream.fm"
        script.write_text('for i in 1 2 3 4; do x=$(await --event e); echo "$x" >> out.txt; '
                          'done\n')
        job = fm("run", "-d", script, env=env, cwd=tmp_path).stdout.strip()
        out = tmp_path / "out.txt"
        for n in range(1, 4):
            time.sleep(0.5)
            assert d.request("POST", f"/jobs/{job}/events/e", f"m{n}".encode())[0] == 202
            wait_for(lambda n=n: out.exists() and len(out.read_text().split()) == n,
                     what=f"event {n} taken")
        kinds = [r["kind"] for r in JsonlStore(d.home).records(job)]
        assert "job.parked" not in kinds                # one runner took all three
        wait_for(lambda: _ps(env)[job]["state"] == "waiting" and not _ps(env)[job]["pid"],
                 what="the job parked once the events stopped")
        d.request("POST", f"/jobs/{job}/events/e", b"m4")
        wait_for(lambda: _ps(env)[job]["state"] == "done", what="the job to end")
        assert out.read_text().split() == ["m1", "m2", "m3", "m4"]
    finally:
        d.stop()
