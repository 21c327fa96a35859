"""The JobStore contract (docs/store.md), run against every implementation in STORES.

A second store (PostgreSQL) joins by adding a factory to STORES; everything here must then pass
for it unchanged. Implementation details (files, modes) are tested in test_jsonl.py.
"""
from __future__ import annotations

import os
import re
import threading

import pytest

from flowmetal.errors import JobLockedError, JobNotFoundError
from flowmetal.journal import TERMINAL_KINDS
from flowmetal.journal.jobstore import LARGE, new_job_id, random_suffix, sanitize_name
from flowmetal.journal.jsonl import JsonlStore

from .helpers import python

STORES = {
    "jsonl": lambda tmp_path: JsonlStore(tmp_path / "home"),
}

STARTED = {"version": "0", "name": "t", "filename": "t.fm", "source": "echo hi\n",
           "argv": ["t.fm"], "cwd": "/", "env": {"HOME": "/root"}}


@pytest.fixture(params=sorted(STORES))
def store(request, tmp_path):
    return STORES[request.param](tmp_path)


def make(store, name="t", records=(), release=True):
    """A job with `records` after job.started; (id, lease or None when released)."""
    job_id = new_job_id(name)
    lease = store.create(job_id, STARTED, fsync=False)
    for kind, fields in records:
        lease.append(kind, fields, sync=False)
    lease.sync()
    if release:
        lease.release()
        return job_id, None
    return job_id, lease


# ---- ids ----

@pytest.mark.parametrize("raw, clean", [
    ("hello", "hello"), ("Hello World", "hello-world"), ("a.b.c", "a-b-c"),
    ("ok_name-1", "ok_name-1"), ("---", "job"), ("", "job"), ("x" * 50, "x" * 32),
    ("ünïcode", "n-code"),
])
def test_sanitize_name(raw, clean):
    assert sanitize_name(raw) == clean


def test_random_suffix_uses_the_whole_alphabet():
    seen = set("".join(random_suffix() for _ in range(500)))
    assert seen == set("abcdefghijklmnopqrstuvwxyz0123456789")


# ---- create, lease, holder ----

def test_create_makes_a_leased_job_with_record_0(store):
    job_id = new_job_id("Deploy Prod!")
    assert re.fullmatch(r"deploy-prod-[a-z0-9]{6}", job_id)
    lease = store.create(job_id, STARTED)
    try:
        assert store.holder(job_id) == os.getpid()      # born leased: never an orphan
        first = lease.first()
        assert first["kind"] == "job.started" and first["seq"] == 0
        assert first["id"] == job_id and first["source"] == "echo hi\n"
        assert isinstance(first["format"], int)
        assert store.head(job_id) == first
        with pytest.raises(JobLockedError, match=f"job {job_id} is being run by process"):
            store.lease(job_id)
    finally:
        lease.release()
    assert store.holder(job_id) is None
    assert store.ids() == [job_id] and store.exists(job_id)


def test_create_refuses_a_taken_id(store):
    job_id, _ = make(store)
    with pytest.raises(FileExistsError):
        store.create(job_id, STARTED)
    assert store.ids() == [job_id]


def test_append_numbers_records_and_tail_starts_at_the_last_snapshot(store):
    job_id, lease = make(store, release=False)
    with lease:
        assert lease.append("effect.done", {"step": 1, "res": {}}) == 1
        assert lease.append("snapshot", {"step": 1, "state": {"x": 1}}, sync=False) == 2
        assert lease.append("effect.started", {"step": 2, "req": {"op": "exec"}}) == 3
        snap, after = lease.tail()
        assert snap["seq"] == 2 and snap["state"] == {"x": 1}
        assert [r["seq"] for r in after] == [3]
        assert store.tail(job_id) == (snap, after)
        assert [r["seq"] for r in lease.records()] == [0, 1, 2, 3]
        assert lease.size() > 0
        assert job_id in lease.where(3)
    with store.lease(job_id) as again:      # the lease passes on, the records stay
        assert again.tail()[1][0]["seq"] == 3
        assert again.append("job.finished", {"status": 0}) == 4
    assert store.last(job_id)["kind"] == "job.finished"


def test_tail_without_a_snapshot_is_every_record(store):
    job_id, _ = make(store, records=[("effect.done", {"step": 1, "res": {}})])
    snap, after = store.tail(job_id)
    assert snap is None and [r["kind"] for r in after] == ["job.started", "effect.done"]


def test_unsynced_records_are_read_back_by_the_holder(store):
    job_id, lease = make(store, release=False)
    with lease:
        lease.append("effect.done", {"step": 1, "res": {"out": "x"}}, sync=False)
        assert lease.tail()[1][-1]["res"] == {"out": "x"}


def test_reading_needs_no_lease_and_reports_unknown_jobs(store):
    job_id, lease = make(store, release=False)
    with lease:
        assert store.last(job_id)["kind"] == "job.started"
        assert [r["seq"] for r in store.records(job_id)] == [0]
    for bad in ("nope-abcdef", "../etc", ""):
        with pytest.raises(JobNotFoundError):
            store.head(bad)


# ---- find ----

def test_find_exact_prefix_ambiguous_unknown(store):
    a, _ = make(store, "alpha")
    b, _ = make(store, "beta")
    c, _ = make(store, "beta")
    assert store.find(a) == a and store.find("al") == a and store.find(b) == b
    with pytest.raises(JobNotFoundError) as e:
        store.find("be")
    assert b in e.value.message and c in e.value.message and "2 jobs" in e.value.message
    for prefix in ("xyz", "", "../etc", "nope-abcdef"):
        with pytest.raises(JobNotFoundError, match="no job matches"):
            store.find(prefix)


# ---- follow ----

def test_follow_sees_appends_and_stops_at_the_end(store):
    job_id, lease = make(store, release=False)
    seen = []
    t = threading.Thread(target=lambda: seen.extend(store.follow(job_id, start_seq=1)))
    t.start()
    with lease:
        lease.append("effect.done", {"step": 1, "res": {"out": "a"}})
        lease.append("job.finished", {"status": 0})
    t.join(timeout=30)
    assert not t.is_alive()
    assert [r["kind"] for r in seen] == ["effect.done", "job.finished"]
    assert seen[-1]["kind"] in TERMINAL_KINDS


# ---- large values ----

def test_large_strings_round_trip_everywhere(store):
    big = "".join(f"line {i}\n" for i in range(20000))
    assert len(big) > LARGE
    odd = "\udcff" + "é" * (LARGE + 1)        # surrogate-escaped bytes and non-ASCII survive
    job_id = new_job_id("big")
    lease = store.create(job_id, {**STARTED, "source": big})
    with lease:
        lease.append("effect.done", {"step": 1, "res": {"out": big, "list": [1, odd]}})
        lease.append("snapshot", {"step": 1, "state": {"vars": {"a": big, "b": big}}})
        lease.append("effect.done", {"step": 2, "res": {"out": "small"}})
        lease.append("job.finished", {"status": 0})
        assert lease.first()["source"] == big
        snap, after = lease.tail()
        assert snap["state"]["vars"] == {"a": big, "b": big}
        assert "large" not in snap
        size = lease.size()
    assert size < LARGE, "long strings must not be stored in the records"
    recs = list(store.records(job_id))
    assert recs[0]["source"] == big and recs[1]["res"] == {"out": big, "list": [1, odd]}
    assert store.head(job_id)["source"] == big
    assert [r["res"] for r in store.follow(job_id, start_seq=1) if r["kind"] == "effect.done"][0] \
        == {"out": big, "list": [1, odd]}
    assert store.tail(job_id)[0]["state"]["vars"]["a"] == big


# ---- delete ----

def test_delete_removes_everything_and_refuses_a_held_job(store):
    job_id, lease = make(store, release=False)
    lease.append("effect.done", {"step": 1, "res": {"out": "x" * (LARGE + 5)}})
    lease.set_wake(123.0)
    with pytest.raises(JobLockedError):
        store.delete(job_id)
    lease.release()
    assert store.deliver(job_id, "tok", {"body": "b"})
    store.delete(job_id)
    assert store.ids() == [] and not store.exists(job_id)
    assert store.wakes() == []
    with pytest.raises(JobNotFoundError):
        store.last(job_id)
    with pytest.raises(JobNotFoundError):
        store.delete(job_id)


# ---- inbox ----

def test_deliveries_first_wins_and_are_taken_once_journaled(store):
    job_id, lease = make(store, release=False)
    with lease:
        assert store.deliver(job_id, "cb-1", {"body": "first"}) is True
        assert store.deliver(job_id, "cb-1", {"body": "second"}) is False
        assert store.deliver(job_id, "event:go:1", {"data": "x"}) is True
        assert lease.inbox() == {"cb-1": {"body": "first"}, "event:go:1": {"data": "x"}}
        lease.append("delivered", {"key": "cb-1"})
        lease.take("cb-1")
        lease.take("cb-1")                      # taking twice is harmless
        assert lease.inbox() == {"event:go:1": {"data": "x"}}
        assert store.deliver(job_id, "cb-1", {"body": "late"}) is False   # answered once
        assert lease.inbox() == {"event:go:1": {"data": "x"}}
    with pytest.raises(JobNotFoundError):
        store.deliver("nope-abcdef", "k", {})


def test_a_delivery_is_durable_when_deliver_returns(store, tmp_path):
    # Another process delivers, then dies by SIGKILL: the delivery is there.
    job_id, _ = make(store)
    home = store.location
    p = python("import os, signal, sys\n"
               "from flowmetal.journal.jsonl import JsonlStore\n"
               "ok = JsonlStore(sys.argv[1]).deliver(sys.argv[2], 'k/../x', {'n': 1})\n"
               "print(ok, flush=True)\n"
               "os.kill(os.getpid(), signal.SIGKILL)\n", home, job_id)
    out, _ = p.communicate(timeout=60)
    assert out.strip() == "True"
    with store.lease(job_id) as lease:
        assert lease.inbox() == {"k/../x": {"n": 1}}


# ---- events and callback tokens ----

def test_events_are_numbered_per_name_in_order(store):
    job_id, lease = make(store, release=False)
    with lease:
        assert [store.send(job_id, "go", {"n": i}) for i in range(3)] == [1, 2, 3]
        assert store.send(job_id, "stop", {}) == 1
        lease.take("event:go:000000000001")
        assert store.send(job_id, "go", {"n": 3}) == 4      # a taken number is never reused
        keys = sorted(k for k in lease.inbox() if k.startswith("event:go:"))
        assert [lease.inbox()[k]["n"] for k in keys] == [1, 2, 3]
    with pytest.raises(JobNotFoundError):
        store.send("nope-abcdef", "go", {})
    with pytest.raises(ValueError):
        store.send(job_id, "../x", {})


def test_concurrent_senders_lose_nothing(store):
    job_id, _ = make(store)
    home = store.location
    code = ("import sys\n"
            "from flowmetal.journal.jsonl import JsonlStore\n"
            "s = JsonlStore(sys.argv[1])\n"
            "for i in range(25):\n"
            "    s.send(sys.argv[2], 'go', {'who': sys.argv[3], 'i': i})\n")
    procs = [python(code, home, job_id, str(w)) for w in range(4)]
    for p in procs:
        p.communicate(timeout=60)
        assert p.returncode == 0
    with store.lease(job_id) as lease:
        inbox = lease.inbox()
    keys = sorted(inbox)
    assert keys == [f"event:go:{n:012d}" for n in range(1, 101)]
    for w in range(4):      # each sender's events in the order it sent them
        assert [inbox[k]["i"] for k in keys if inbox[k]["who"] == str(w)] == list(range(25))


def test_callback_tokens(store):
    job_id, _ = make(store)
    token = "A" * 22
    assert store.bound(token) is None
    store.bind(token, job_id)
    assert store.bound(token) == job_id and store.binding(token) == (job_id, None)
    store.bind("G" * 22, job_id, "GET")
    assert store.binding("G" * 22) == (job_id, "GET") and store.bound("G" * 22) == job_id
    with pytest.raises(ValueError):
        store.bind("H" * 22, job_id, "DELETE")
    for bad in ("", "short", "../../etc/passwd", "x" * 200, "a b" * 10):
        assert store.bound(bad) is None
    with pytest.raises(ValueError):
        store.bind("../" * 10, job_id)
    with pytest.raises(JobNotFoundError):
        store.bind("B" * 22, "nope-abcdef")


# ---- wake-up index ----

def test_wake_index(store):
    a, la = make(store, "a", release=False)
    b, lb = make(store, "b", release=False)
    with la, lb:
        la.set_wake(200.0)
        lb.set_wake(100.5)
        assert store.wakes() == [(b, 100.5), (a, 200.0)]
        assert store.due(150) == [(b, 100.5)]
        lb.set_wake(300.0)                      # moved
        assert store.due(250) == [(a, 200.0)]
        la.set_wake(None)
        la.set_wake(None)
        assert store.wakes() == [(b, 300.0)]
