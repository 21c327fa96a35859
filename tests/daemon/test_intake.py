"""The daemon's intake log (flowmetal/daemon/intake.py), through a real daemon on 127.0.0.1:
group-committed deliveries keep their order and first-wins answers, `fm send` and
`fm complete` go through the daemon, and no acknowledged delivery is lost when the daemon is
SIGKILLed at any of its intake crash points (FM_DAEMON_CRASH_AT), losing what it had not
synced (FM_CRASH_POWER)."""
from __future__ import annotations

import http.client
import json
import os
import signal
import stat
import threading
from pathlib import Path
from urllib.parse import urlsplit

from flowmetal.journal.jobstore import new_token
from flowmetal.journal.jsonl import JsonlStore

from .conftest import Daemon, fm, post, wait_for


def _events(store, job, name) -> list[tuple[int, str]]:
    """(n, data) of the job's inbox entries for event `name`, by n."""
    prefix = f"event:{name}:"
    return sorted((int(k[len(prefix):]), v["data"]) for k, v in store.mail(job).items()
                  if k.startswith(prefix))


def _together(client, n: int) -> None:
    """client(0) … client(n - 1) in threads at once; back when all have returned."""
    threads = [threading.Thread(target=client, args=(w,)) for w in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _in_inbox(store, job, want: int, name="go"):
    return wait_for(lambda: len(_events(store, job, name)) >= want and store,
                    what=f"{want} events in the inbox")


def test_fm_send_burst_through_the_daemon(daemon, env, held_job):
    def sender(w, out):
        for i in range(25):
            r = fm("send", held_job, "go", f"{w}.{i}", env=env)
            assert r.returncode == 0, r.stderr
            out.append((int(r.stderr.split("#")[1].split()[0]), f"{w}.{i}"))
    outs = [[] for _ in range(4)]
    _together(lambda w: sender(w, outs[w]), 4)
    store = _in_inbox(JsonlStore(daemon.home), held_job, 100)
    events = _events(store, held_job, "go")
    assert [n for n, _ in events] == list(range(1, 101))         # none lost, none twice
    assert sorted(sum(outs, [])) == events                      # each printed n is its data's
    for w, out in enumerate(outs):                              # each sender's in send order
        assert [d for _, d in sorted(out)] == [f"{w}.{i}" for i in range(25)]


def test_events_from_four_http_clients(daemon, held_job):
    def client(w, out):
        u = urlsplit(daemon.url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        for i in range(50):
            status, body = post(daemon.url, f"/jobs/{held_job}/events/go", f"{w}.{i}".encode(),
                                daemon.token, conn)
            assert status == 202, body
            out.append((body["n"], f"{w}.{i}"))
    outs = [[] for _ in range(4)]
    _together(lambda w: client(w, outs[w]), 4)
    for out in outs:
        assert [n for n, _ in out] == sorted(n for n, _ in out)  # increasing per client
    store = _in_inbox(JsonlStore(daemon.home), held_job, 200)
    assert sorted(sum(outs, [])) == _events(store, held_job, "go")
    assert [n for n, _ in _events(store, held_job, "go")] == list(range(1, 201))


def test_a_callback_delivered_from_eight_threads_at_once(daemon, held_job):
    token = new_token(16)
    JsonlStore(daemon.home).bind(token, held_job)
    start = threading.Barrier(8)
    answers = {}

    def client(w):
        start.wait()
        answers[w] = post(daemon.url, f"/callbacks/{token}", f"from {w}".encode())[0]
    _together(client, 8)
    assert sorted(answers.values()) == [200] + [409] * 7
    (winner,) = [w for w, s in answers.items() if s == 200]
    store = JsonlStore(daemon.home)
    item = wait_for(lambda: store.mail(held_job).get(token), what="the callback")
    assert item["body"] == f"from {winner}"


def test_fm_complete_and_send_through_the_daemon(daemon, env, held_job, tmp_path):
    store = JsonlStore(daemon.home)
    token = new_token(16)
    store.bind(token, held_job)
    r = fm("complete", f"{daemon.url}/callbacks/{token}", "body!", env=env)
    assert r.returncode == 0, r.stderr
    assert daemon.request("POST", f"/callbacks/{token}", b"late", auth=False)[0] == 409
    r = fm("complete", token, "again", env=env)
    assert r.returncode == 2 and r.stderr.strip() == (
        "fm: complete: this callback was delivered before; the first delivery wins")
    item = wait_for(lambda: store.mail(held_job).get(token), what="the callback")
    assert item["body"] == "body!" and item["headers"]["x-fm-via"] == "fm complete"
    # Numbers are decided by the daemon whichever route an event takes.
    assert daemon.request("POST", f"/jobs/{held_job}/events/go", b"http")[1]["n"] == 1
    assert "#2 queued" in fm("send", held_job, "go", "cli", env=env).stderr
    # An ended job: one line, no traceback.
    fm("-c", "true", env=env)
    ended = next(j for j in store.ids() if j != held_job)
    r = fm("send", ended, "go", env=env)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "has ended" in r.stderr


def test_recovery_moves_what_a_crashed_daemon_logged(env, held_job):
    home = Path(env["FM_HOME"])
    token = new_token(16)
    JsonlStore(home).bind(token, held_job)
    lines = [{"job": held_job, "key": "event:go:000000000001", "data": {"data": "a"}},
             {"job": held_job, "key": token, "data": {"body": "cb"}},
             {"job": "gone-abcdef", "key": "event:go:000000000001", "data": {"data": "x"}}]
    log = b"".join(json.dumps(e).encode() + b"\n" for e in lines)
    (home / "intake.jsonl.old").write_bytes(json.dumps(lines[0]).encode() + b"\n")  # twice
    (home / "intake.jsonl").write_bytes(log + b'{"job": "torn')   # never acknowledged
    d = Daemon(home, env).start()
    try:
        mail = JsonlStore(home).mail(held_job)     # moved before the daemon answered
        assert mail == {"event:go:000000000001": {"data": "a"}, token: {"body": "cb"}}
        assert not (home / "intake.jsonl.old").exists()
        assert stat.S_IMODE(os.stat(home / "intake.jsonl").st_mode) == 0o600
        assert os.path.getsize(home / "intake.jsonl") == 0
        status, body = d.request("POST", f"/jobs/{held_job}/events/go", b"b")
        assert (status, body["n"]) == (202, 2)
    finally:
        d.kill()


def test_a_link_in_place_of_the_log_is_refused(env, held_job, tmp_path):
    home = Path(env["FM_HOME"])
    (tmp_path / "elsewhere").write_text("")
    os.symlink(tmp_path / "elsewhere", home / "intake.jsonl")
    r = fm("daemon", "run", env=env, timeout=30)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "intake.jsonl" in r.stderr


# ---- the crash sweep ----

FULL = os.environ.get("FM_TEST_FULL") == "1"
CLIENTS, EACH = (4, 5) if FULL else (4, 2)
"""Each client sends EACH deliveries, alternately an event and a callback."""


class _Frozen:
    """A daemon's address and token, read before it can die (daemon.json goes with it)."""

    def __init__(self, d: Daemon):
        self.url, self.token = d.url, d.token


def _scenario(d: _Frozen, job: str, tokens: list[str], name: str) -> list[tuple]:
    """Deliveries from CLIENTS threads until the daemon dies; the acknowledged ones:
    ("event", n, data) and ("callback", token, body)."""
    acked = []

    def client(w):
        u = urlsplit(d.url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        try:
            for i in range(EACH):
                data = f"{name}.{w}.{i}"
                if i % 2:
                    token = tokens[w * EACH + i]
                    status, _ = post(d.url, f"/callbacks/{token}", data.encode(), None, conn)
                    if status == 200:
                        acked.append(("callback", token, data))
                else:
                    status, body = post(d.url, f"/jobs/{job}/events/{name}", data.encode(),
                                        d.token, conn)
                    if status == 202:
                        acked.append(("event", body["n"], data))
                assert status < 300, status
        except (OSError, http.client.HTTPException):
            pass            # the daemon died: what was acknowledged so far counts
    _together(client, CLIENTS)
    return acked


def _check(store, job, name, acked) -> None:
    events = _events(store, job, name)
    datas = [x for _, x in events]
    assert len(datas) == len(set(datas)), f"an event twice: {events}"
    for kind, what, data in acked:
        if kind == "event":
            assert (what, data) in events, f"acknowledged event #{what} lost: {events}"
        else:
            item = store.mail(job).get(what)
            assert item and item["body"] == data, f"acknowledged callback lost ({data})"


def test_no_acknowledged_delivery_is_lost_at_any_crash_point(env, held_job):
    home = Path(env["FM_HOME"])
    store = JsonlStore(home)
    # Rotations and checkpoints too; and at the kill the daemon loses what it had not synced
    # (the log's tail, inbox files written without fsync), as a power cut could.
    crash_env = {**env, "FM_DAEMON_INTAKE_SEGMENT": "300", "FM_CRASH_POWER": "1"}
    swept = acked_total = 0
    for at in range(1, 500):
        name = f"go{at}"
        tokens = [new_token(16) for _ in range(CLIENTS * EACH)]
        for t in tokens:
            store.bind(t, held_job)
        d = Daemon(home, {**crash_env, "FM_DAEMON_CRASH_AT": str(at)}).start()
        acked = _scenario(_Frozen(d), held_job, tokens, name)
        d.proc.send_signal(signal.SIGTERM)
        crashed = d.proc.wait(60) == -signal.SIGKILL
        if not crashed:
            passed = int((home / "daemon.log").read_text().rsplit(
                "intake: ", 1)[1].split(" crash points")[0])
            assert passed < at, "the daemon passed its crash point without dying"
        check = Daemon(home, env).start()       # recovery happens before it answers
        try:
            _check(store, held_job, name, acked)
        finally:
            check.kill()
        if not crashed:
            break
        swept += 1
        acked_total += len(acked)
    assert swept >= 10, f"only {swept} crash points: the hook is not where deliveries go"
    assert acked_total >= swept, "hardly anything was acknowledged before the crashes"


def test_no_fsync_deliver_is_synced_by_sync_deliveries(tmp_path):
    store = JsonlStore(tmp_path / "home")
    store.create("job-abcdef", {"argv": []}).release()
    assert store.deliver("job-abcdef", "k1", {"a": 1}, sync=False)
    assert not store.deliver("job-abcdef", "k1", {"a": 2}, sync=False)
    assert store.mail("job-abcdef") == {"k1": {"a": 1}}
    assert store.inboxes.unsynced
    store.sync_deliveries()
    assert not store.inboxes.unsynced
    assert store.keys("job-abcdef") == ["k1"]


def test_a_direct_write_racing_the_daemon(daemon, held_job):
    """What a `fm send`/`fm complete` that found no daemon writes while one starts: the daemon
    has already read the job's keys, so it only finds out when it moves its own line."""
    store = JsonlStore(daemon.home)
    assert daemon.request("POST", f"/jobs/{held_job}/events/go", b"one")[1]["n"] == 1
    store.deliver(held_job, "event:go:000000000002", {"data": "direct"})
    token = new_token(16)
    store.bind(token, held_job)
    store.deliver(held_job, token, {"body": "direct"})
    status, body = daemon.request("POST", f"/jobs/{held_job}/events/go", b"two")
    assert (status, body["n"]) == (202, 3)                      # renumbered, and said so
    assert _events(store, held_job, "go") == [(1, "one"), (2, "direct"), (3, "two")]
    assert daemon.request("POST", f"/callbacks/{token}", b"late", auth=False)[0] == 409
    assert store.mail(held_job)[token] == {"body": "direct"}
