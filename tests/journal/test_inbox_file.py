"""The JSON-lines store's inbox file (journal/inbox.py): one append-only file per job, read
incrementally, a torn tail ignored and cut off, damage reported with its line."""
from __future__ import annotations

import json
import os

import pytest

from flowmetal.errors import JournalError
from flowmetal.journal.jsonl import JsonlStore

JOB = "job-abcdef"
STARTED = {"version": "0", "name": "t", "filename": "t.fm", "source": "echo hi\n",
           "argv": ["t.fm"], "cwd": "/", "env": {}}


@pytest.fixture
def store(tmp_path):
    s = JsonlStore(tmp_path / "home")
    s.create(JOB, STARTED).release()
    return s


def _file(store):
    return store.jobs / JOB / "inbox.jsonl"


def test_one_file_a_line_per_delivery_and_per_take(store):
    assert store.mail(JOB) == {} and store.keys(JOB) == []
    assert not _file(store).exists()                # made by the first delivery
    store.deliver(JOB, "cb", {"body": "x"})
    store.send(JOB, "go", {"data": "1"})
    with store.lease(JOB) as lease:
        lease.take("cb")
    lines = [json.loads(x) for x in _file(store).read_text().splitlines()]
    assert lines == [{"key": "cb", "data": {"body": "x"}},
                     {"key": "event:go:000000000001", "data": {"data": "1"}},
                     {"taken": "cb"}]
    assert os.stat(_file(store)).st_mode & 0o777 == 0o600
    assert store.keys(JOB) == ["cb", "event:go:000000000001"]


def test_another_process_s_appends_are_seen_by_a_store_that_read_before(store, tmp_path):
    other = JsonlStore(tmp_path / "home")           # the daemon, the runner: each its own
    store.deliver(JOB, "a", {"n": 1})
    assert other.mail(JOB) == {"a": {"n": 1}}
    store.deliver(JOB, "b", {"n": 2})
    assert other.mail(JOB) == {"a": {"n": 1}, "b": {"n": 2}}
    assert not other.deliver(JOB, "b", {"n": 3})     # first wins across processes too
    with other.lease(JOB) as lease:
        lease.take("a")
    assert store.mail(JOB) == {"b": {"n": 2}}


def test_a_torn_last_line_is_ignored_then_cut_off_by_the_next_writer(store):
    store.deliver(JOB, "a", {"n": 1})
    with open(_file(store), "ab") as f:
        f.write(b'{"key": "b", "da')                # a crash in the middle of an append
    fresh = JsonlStore(store.home)
    assert fresh.mail(JOB) == {"a": {"n": 1}}
    assert fresh.deliver(JOB, "b", {"n": 2})
    assert _file(store).read_bytes().count(b"\n") == 2
    assert JsonlStore(store.home).mail(JOB) == {"a": {"n": 1}, "b": {"n": 2}}


@pytest.mark.parametrize("garbage", [b"\x00\xffnot json", b"[1,2]", b'{"key": 1, "data": {}}',
                                     b'{"key": "k"}', b'"taken"'])
def test_a_damaged_line_is_an_error_naming_it(store, garbage):
    store.deliver(JOB, "a", {"n": 1})
    with open(_file(store), "ab") as f:
        f.write(garbage + b"\n")
    with pytest.raises(JournalError, match=r"inbox.jsonl:2: damaged delivery"):
        JsonlStore(store.home).mail(JOB)
    assert store.deliver(JOB, "b", {})              # writers go past it (the daemon must)
    with pytest.raises(JournalError, match=r"inbox.jsonl:2: damaged delivery"):
        store.mail(JOB)                             # the same process reads it as damaged
    with pytest.raises(JournalError, match=r"inbox.jsonl:2: damaged delivery"):
        JsonlStore(store.home).keys(JOB)

def test_a_power_cut_loses_only_what_was_not_synced(store):
    store.deliver(JOB, "a", {"n": 1})
    store.deliver(JOB, "b", {"n": 2}, sync=False)
    store.crash_hook_deliveries()
    assert JsonlStore(store.home).mail(JOB) == {"a": {"n": 1}}
    store.deliver(JOB, "c", {"n": 3}, sync=False)
    store.sync_deliveries()
    store.crash_hook_deliveries()                   # nothing unsynced is left to lose
    assert JsonlStore(store.home).keys(JOB) == ["a", "c"]


def test_a_replaced_file_is_read_again_from_its_start(store):
    store.deliver(JOB, "a", {"n": 1})
    assert store.mail(JOB) == {"a": {"n": 1}}
    tmp = _file(store).with_suffix(".new")
    tmp.write_bytes(json.dumps({"key": "z", "data": {}}).encode() + b"\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, _file(store))
    assert store.mail(JOB) == {"z": {}}


def test_a_link_in_its_place_is_refused(store, tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("")
    os.symlink(target, _file(store))
    with pytest.raises(JournalError):
        store.deliver(JOB, "a", {})
    assert target.read_text() == ""


def test_a_file_cut_back_and_written_again_is_read_again(store, tmp_path):
    """What a power cut does (the tests' FM_CRASH_POWER): lines a reader saw are gone, and
    others take their place at the same offsets."""
    reader = JsonlStore(tmp_path / "home")
    store.deliver(JOB, "a", {"n": 1})
    store.deliver(JOB, "b", {"n": 2})
    assert reader.keys(JOB) == ["a", "b"]
    size = _file(store).stat().st_size
    os.truncate(_file(store), len(_file(store).read_bytes().split(b"\n")[0]) + 1)
    JsonlStore(store.home).deliver(JOB, "c", {"n": 3})
    JsonlStore(store.home).deliver(JOB, "d", {"n": 4})
    assert _file(store).stat().st_size >= size
    assert reader.keys(JOB) == ["a", "c", "d"]


def test_an_inbox_directory_of_an_earlier_fm_is_moved_into_the_file(store, tmp_path):
    legacy = store.jobs / JOB / "inbox"
    legacy.mkdir(mode=0o700)
    for key, item in (("cb", {"key": "cb", "data": {"body": "x"}}),
                      ("event:go:000000000001", {"key": "event:go:000000000001", "taken": True}),
                      ("event:go:000000000002", {"key": "event:go:000000000002",
                                                 "data": {"data": "2"}})):
        (legacy / (key.encode().hex() + ".json")).write_text(json.dumps(item))
    fresh = JsonlStore(store.home)
    assert fresh.mail(JOB) == {"cb": {"body": "x"}, "event:go:000000000002": {"data": "2"}}
    assert fresh.keys(JOB) == ["cb", "event:go:000000000001", "event:go:000000000002"]
    assert not legacy.exists()
    assert not fresh.deliver(JOB, "event:go:000000000001", {})     # taken stays used
    assert JsonlStore(store.home).send(JOB, "go", {}) == 3
