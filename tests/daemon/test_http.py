"""The daemon's HTTP server, over real HTTP on 127.0.0.1: statuses, limits, auth, ordering."""
from __future__ import annotations

import http.client
import json
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from flowmetal.journal.jsonl import JsonlStore

from .conftest import fm, wait_for

TOKEN = "T" * 43


@pytest.fixture
def sleeper(daemon, env, tmp_path):
    """A job the daemon runs that sleeps long enough for the test (its runner holds it: a
    program runs, so it is not parked)."""
    script = tmp_path / "wait.fm"
    script.write_text("/bin/sleep 60\n")
    job = fm("run", "-d", script, env=env).stdout.strip()
    wait_for(lambda: JsonlStore(daemon.home).holder(job), what="the runner")
    yield job
    fm("kill", job, env=env)


def _store(daemon):
    return JsonlStore(daemon.home)


def test_control_api_needs_the_token(daemon, sleeper):
    for method, path in [("GET", "/jobs"), ("GET", f"/jobs/{sleeper}"),
                         ("GET", f"/jobs/{sleeper}/log"), ("POST", "/jobs"),
                         ("POST", f"/jobs/{sleeper}/cancel"),
                         ("POST", f"/jobs/{sleeper}/events/go")]:
        status, body = daemon.request(method, path, b"", auth=False)
        assert status == 401, (method, path)
        assert "Bearer" in body["error"]
        status, _ = daemon.request(method, path, b"", auth=False,
                                   headers={"Authorization": "Bearer wrong"})
        assert status == 401
    status, body = daemon.request("GET", "/jobs")
    assert status == 200 and [j["id"] for j in body["jobs"]] == [sleeper]
    status, body = daemon.request("GET", f"/jobs/{sleeper}")
    assert status == 200 and body["state"] in ("running", "sleeping") and body["pid"]


@pytest.mark.parametrize("method, path, want", [
    ("GET", "/nope", 404), ("GET", "/jobs/nope-abcdef", 404), ("GET", "/jobs/../../etc", 404),
    ("DELETE", "/jobs", 405), ("GET", "/jobs/x/events/go", 405),
    ("POST", "/callbacks/short", 404), ("GET", f"/callbacks/{TOKEN}", 404),
    ("POST", "/jobs/%00/cancel", 404),
])
def test_bad_paths_and_methods(daemon, method, path, want):
    status, body = daemon.request(method, path, b"" if method == "POST" else None)
    assert status == want
    assert isinstance(body, dict) and body["error"] and "\n" not in body["error"]


def test_callbacks_first_delivery_wins(daemon, sleeper):
    _store(daemon).bind(TOKEN, sleeper)
    status, body = daemon.request("POST", f"/callbacks/{TOKEN}?a=1", b'{"ok": true}',
                                  auth=False, headers={"Content-Type": "application/json"})
    assert (status, body) == (200, {"delivered": True, "job": sleeper})
    status, body = daemon.request("POST", f"/callbacks/{TOKEN}", b"second", auth=False)
    assert status == 409 and "first delivery wins" in body["error"]
    (item,) = _store(daemon).mail(sleeper).values()
    assert item["body"] == '{"ok": true}' and item["method"] == "POST"
    assert item["query"] == {"a": "1"} and item["headers"]["content-type"] == "application/json"


def test_oversized_and_bogus_bodies(daemon, sleeper):
    _store(daemon).bind(TOKEN, sleeper)
    u = urlsplit(daemon.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.putrequest("POST", f"/callbacks/{TOKEN}")
    conn.putheader("Content-Length", str(2 * 1024 * 1024))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and b"over the limit" in resp.read()
    conn.close()
    for headers, want in [({"Content-Length": "-5"}, 400), ({"Content-Length": "x"}, 400),
                          ({"Transfer-Encoding": "chunked"}, 411)]:
        status, _ = daemon.request("POST", f"/callbacks/{TOKEN}", None, auth=False,
                                   headers=headers)
        assert status == want, headers
    status, body = daemon.request("POST", "/jobs", b"[1, 2]")
    assert status == 400 and "JSON object" in body["error"]
    status, body = daemon.request("POST", "/jobs", b"{not json")
    assert status == 400
    status, body = daemon.request("POST", "/jobs", json.dumps({"source": "echo"}).encode())
    assert status == 400 and "`env`" in body["error"]
    assert _store(daemon).mail(sleeper) == {}       # nothing bogus was delivered
    assert daemon.request("GET", "/jobs")[0] == 200  # and the daemon still serves


def test_a_slow_client_does_not_block_others(daemon, sleeper):
    u = urlsplit(daemon.url)
    slow = socket.create_connection((u.hostname, u.port))
    slow.sendall(b"POST /jobs HTTP/1.1\r\nHost: x\r\n")     # and then nothing
    t = time.monotonic()
    assert daemon.request("GET", "/jobs")[0] == 200
    assert time.monotonic() - t < 5
    slow.close()


def test_events_burst_from_four_clients_in_order(daemon, sleeper):
    def client(w):
        for i in range(25):
            status, body = daemon.request("POST", f"/jobs/{sleeper}/events/go",
                                          json.dumps({"w": w, "i": i}).encode())
            assert status == 202, body
    threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    mail = _store(daemon).mail(sleeper)
    keys = sorted(mail)
    assert keys == [f"event:go:{n:012d}" for n in range(1, 101)]
    items = [json.loads(mail[k]["data"]) for k in keys]
    for w in range(4):
        assert [x["i"] for x in items if x["w"] == w] == list(range(25))


def test_fm_send_burst_in_order(daemon, env, sleeper):
    for i in range(12):
        r = fm("send", sleeper[:8], "go", str(i), env=env)
        assert r.returncode == 0, r.stderr
    mail = _store(daemon).mail(sleeper)
    assert [mail[k]["data"] for k in sorted(mail)] == [str(i) for i in range(12)]


def test_deliveries_to_ended_jobs_are_refused(daemon, env, tmp_path):
    r = fm("-c", "echo done", env=env)
    job = r.stdout and fm("ps", "-a", "--json", env=env).stdout
    job = json.loads(job.splitlines()[0])["id"]
    _store(daemon).bind(TOKEN, job)
    assert daemon.request("POST", f"/callbacks/{TOKEN}", b"x", auth=False)[0] == 410
    assert daemon.request("POST", f"/jobs/{job}/events/go", b"x")[0] == 410
    assert daemon.request("POST", f"/jobs/{job}/events/a%2Fb", b"x")[0] == 400


def test_start_a_job_through_the_api(daemon, env, tmp_path):
    spec = {"source": 'echo "$GREETING from $PWD: $1"\n', "filename": "greet.fm",
            "argv": ["world"], "env": {"GREETING": "hello"}, "cwd": str(tmp_path)}
    status, body = daemon.request("POST", "/jobs", json.dumps(spec).encode())
    assert status == 201, body
    job = body["id"]
    assert job.startswith("greet-")
    wait_for(lambda: daemon.request("GET", f"/jobs/{job}")[1]["state"] == "done",
             what="the job")
    assert fm("log", job, "--output", env=env).stdout == f"hello from {tmp_path}: world\n"
    status, text = daemon.request("GET", f"/jobs/{job}/log")
    kinds = [json.loads(line)["kind"] for line in text.splitlines()]
    assert kinds[0] == "job.started" and kinds[-1] == "job.finished"
    bad = dict(spec, source="if true; then\n")
    status, body = daemon.request("POST", "/jobs", json.dumps(bad).encode())
    assert status == 400 and "greet.fm:" in body["error"]


def test_fm_complete_without_a_daemon(env, tmp_path):
    home = Path(env["FM_HOME"])
    r = fm("-c", "true", env=env)      # makes the state dir
    script = tmp_path / "w.fm"
    script.write_text("sleep 60\n")
    # A foreground job holds the lease; deliveries go to its inbox without any daemon.
    import subprocess
    p = subprocess.Popen([sys.executable, "-m", "flowmetal", str(script)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        store = JsonlStore(home)
        job = wait_for(lambda: [j for j in store.ids() if j.startswith("w-")], what="job")[0]
        store.bind(TOKEN, job)
        r = fm("complete", f"http://127.0.0.1:7468/callbacks/{TOKEN}", "body!", env=env)
        assert r.returncode == 0, r.stderr
        r = fm("complete", TOKEN, "again", env=env)
        assert r.returncode == 2 and "first delivery wins" in r.stderr
        assert [v["body"] for v in store.mail(job).values()] == ["body!"]
        r = fm("complete", "nonsense", env=env)
        assert r.returncode == 2 and "not a callback URL or token" in r.stderr
        assert fm("daemon", "status", env=env).returncode == 3   # the job was held: no start
    finally:
        p.kill()
        p.wait()
