"""Journal format, append/reopen, torn-tail recovery, damage reports, tail(), readers and follow()."""
from __future__ import annotations

import json
import os
import re
import stat
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowmetal.errors import JournalError
from flowmetal.journal import FORMAT, Journal, codec, follow, read_records

from .helpers import STARTED, lines, make, python

TS_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")


@pytest.fixture
def jpath(tmp_path):
    d = tmp_path / "jobs" / "t-abc123"
    d.mkdir(parents=True)
    return d / "journal.jsonl"


def contents(j: Journal) -> list[dict]:
    return list(j.records())


# --- creating and appending -----------------------------------------------------------------------

def test_create_writes_job_started_with_mode_0600(jpath):
    j = Journal.create(jpath, STARTED)
    assert stat.S_IMODE(jpath.stat().st_mode) == 0o600
    assert j.next_seq == 1 and j.path == jpath
    raw = jpath.read_bytes()
    assert raw.startswith(b'{"seq":0,"ts":"') and raw.endswith(b"}\n") and raw.count(b"\n") == 1
    rec = json.loads(raw)
    assert list(rec)[:4] == ["seq", "ts", "kind", "format"]
    assert rec["kind"] == "job.started" and rec["format"] == FORMAT
    assert TS_RE.match(rec["ts"])
    assert j.first() == rec
    assert {k: rec[k] for k in STARTED} == STARTED


def test_create_refuses_an_existing_file(jpath):
    Journal.create(jpath, STARTED).close()
    with pytest.raises(FileExistsError):
        Journal.create(jpath, STARTED)


def test_create_with_unencodable_fields_leaves_no_file(jpath):
    with pytest.raises(TypeError):
        Journal.create(jpath, {"x": object()})
    assert not jpath.exists()


def test_append_and_reopen_round_trip(jpath):
    j = Journal.create(jpath, STARTED)
    assert j.append("effect.started", {"step": 1, "req": {"argv": ["true"]}}) == 1
    assert j.append("output", {"fd": 1, "data": "hi\n"}, sync=False) == 2
    j.sync()
    assert j.append("effect.done", {"step": 1, "res": {"status": 0}}) == 3
    before = contents(j)
    j.close()
    j2 = Journal.open(jpath)
    assert j2.next_seq == 4 and j2.discarded == 0
    assert contents(j2) == before
    assert [r["seq"] for r in before] == [0, 1, 2, 3]
    assert [r["kind"] for r in before] == ["job.started", "effect.started", "output", "effect.done"]
    assert all(TS_RE.match(r["ts"]) for r in before)
    assert j2.append("job.finished", {"status": 0}) == 4
    j2.close()
    assert [r["seq"] for r in read_records(jpath)] == [0, 1, 2, 3, 4]


def test_lines_are_ascii_and_lone_surrogates_round_trip(jpath):
    weird = os.fsdecode(b"caf\xc3\xa9 \xff\xfe") + "\u2603\n\x00"
    j = Journal.create(jpath, {**STARTED, "argv": [weird]})
    j.append("output", {"fd": 1, "data": weird})
    j.close()
    jpath.read_bytes().decode("ascii")  # ensure_ascii: never raises
    recs = list(read_records(jpath))
    assert recs[0]["argv"] == [weird] and recs[1]["data"] == weird
    assert os.fsencode(recs[1]["data"]) == b"caf\xc3\xa9 \xff\xfe" + "\u2603\n\x00".encode()


def test_reserved_fields_and_bad_kinds_are_refused_without_writing(jpath):
    j = Journal.create(jpath, STARTED)
    size = jpath.stat().st_size
    for bad in ({"seq": 3}, {"ts": "x"}, {"kind": "y"}):
        with pytest.raises(ValueError):
            j.append("output", bad)
    for kind in ("", 'a"b', "a\nb"):
        with pytest.raises(ValueError):
            j.append(kind, {})
    with pytest.raises(ValueError):
        j.append("output", {"x": float("nan")})
    assert jpath.stat().st_size == size and j.next_seq == 1


def test_closed_journal_refuses_appends(jpath):
    j = Journal.create(jpath, STARTED)
    j.close()
    j.close()
    with pytest.raises(ValueError):
        j.append("output", {})


def test_appends_from_threads_stay_contiguous(jpath):
    j = Journal.create(jpath, STARTED, fsync=False)

    def work(t):
        for i in range(200):
            j.append("output", {"fd": 1, "data": f"{t}:{i}"})

    ts = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    j.close()
    assert [r["seq"] for r in Journal.open(jpath).records()] == list(range(801))


# Any code point, with lone surrogates (what surrogateescape makes of undecodable bytes) made common.
_TEXT = st.text(st.characters(codec=None) | st.sampled_from(["\udcff", "\udc80", "\ud800", "\n"]))


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(_TEXT.filter(lambda k: k not in codec.RESERVED),
                       st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                    allow_infinity=False) | _TEXT,
                                    lambda c: st.lists(c, max_size=3) | st.dictionaries(_TEXT, c, max_size=3),
                                    max_leaves=8), max_size=4))
def test_any_json_fields_round_trip(tmp_path_factory, fields):
    path = tmp_path_factory.mktemp("j") / "journal.jsonl"
    j = Journal.create(path, STARTED, fsync=False)
    j.append("output", fields)
    j.close()
    rec = list(Journal.open(path).records())[1]
    assert {k: v for k, v in rec.items() if k not in codec.RESERVED} == fields


# --- torn tails (G6) ------------------------------------------------------------------------------

@pytest.mark.parametrize("last_kind", ["effect.done", "snapshot"])
def test_every_byte_truncation_of_the_last_line_recovers(jpath, last_kind):
    j = make(jpath, 12, snapshot_every=5)  # snapshots at 5 and 10
    good = contents(j)
    snap, after = j.tail()
    j.append(last_kind, {"step": 12, "state": {"pc": 12}} if last_kind == "snapshot"
             else {"step": 12, "res": {"status": 0, "out": "done\n"}})
    j.close()
    full = jpath.read_bytes()
    good_len = len(full) - len(lines(jpath)[-1])
    for cut in range(good_len, len(full)):  # every prefix of the last line, down to none of it
        jpath.write_bytes(full[:cut])
        assert list(read_records(jpath)) == good  # the read-only reader ignores the torn line...
        assert len(jpath.read_bytes()) == cut     # ...and leaves the file alone
        r = Journal.open(jpath)
        assert r.discarded == cut - good_len
        assert jpath.stat().st_size == good_len
        assert r.next_seq == 12
        assert r.tail() == (snap, after)
        assert contents(r) == good
        assert r.append("job.finished", {"status": 0}) == 12
        r.close()
    jpath.write_bytes(full)
    assert Journal.open(jpath).next_seq == 13  # the whole line is a good record


def test_a_journal_with_only_a_torn_first_line_cannot_be_opened(jpath):
    Journal.create(jpath, STARTED).close()
    full = jpath.read_bytes()
    for cut in (0, 1, 20, len(full) - 1):
        jpath.write_bytes(full[:cut])
        with pytest.raises(JournalError, match="no complete job.started"):
            Journal.open(jpath)
        with pytest.raises(JournalError, match="no complete job.started"):
            list(read_records(jpath))  # fm log says so too, rather than show an empty history


@pytest.mark.parametrize("garbage", [b"garbage", b"\x00" * 300, b'{"seq":5,"ts',
                                     b'{"seq":5,"ts":"x","kind":"output"}'])
def test_garbage_as_the_last_line_is_a_torn_tail(jpath, garbage):
    make(jpath, 5).close()
    good = jpath.read_bytes()
    with open(jpath, "ab") as f:
        f.write(garbage)
    assert len(list(read_records(jpath))) == 5
    j = Journal.open(jpath)
    assert jpath.read_bytes() == good and j.next_seq == 5
    assert j.discarded == len(garbage)


@pytest.mark.parametrize("after", [b'{"seq":5,"ts":"x","kind":"output"}\n', b"partial", b"more\n"])
def test_garbage_followed_by_more_lines_is_damage(jpath, after):
    make(jpath, 5).close()
    with open(jpath, "ab") as f:
        f.write(b"garbage\n" + after)
    before = jpath.read_bytes()
    with pytest.raises(JournalError, match=r"journal\.jsonl:6: damaged record \(invalid JSON\); "
                                           r"the job cannot be resumed safely"):
        Journal.open(jpath)
    assert jpath.read_bytes() == before  # never "repaired"
    with pytest.raises(JournalError, match=r":6: damaged record \(invalid JSON\)"):
        list(read_records(jpath))


# --- damage before the tail -----------------------------------------------------------------------

def _rewrite(path, lineno, new: bytes | None):
    ls = lines(path)
    if new is None:
        del ls[lineno - 1]
    else:
        ls[lineno - 1] = new
    path.write_bytes(b"".join(ls))


# Without a snapshot open() checks every line; with snapshots (at 10, 20, 30) the lines from the
# last one on, the rest being left to the full readers (see the test after this one).
@pytest.mark.parametrize("snapshot_every,lineno", [(0, 17), (10, 37)])
@pytest.mark.parametrize("new,why", [
    (b"garbage\n", "invalid JSON"),
    (b'{"seq":N,"ts":"2026-01-01T00:00:00.000Z","kind":"output","da\n', "invalid JSON"),
    (b"\n", "invalid JSON"),
    (b'{"ts":"x","seq":N,"kind":"output"}\n', "not a journal record"),
    (b"[N]\n", "not a journal record"),
])
def test_damage_in_the_middle_is_reported_with_its_line_number(jpath, snapshot_every, lineno,
                                                               new, why):
    make(jpath, 40, snapshot_every=snapshot_every).close()
    _rewrite(jpath, lineno, new.replace(b"N", b"%d" % (lineno - 1)))
    msg = (rf"journal\.jsonl:{lineno}: damaged record \({re.escape(why)}\); "
           "the job cannot be resumed safely")
    with pytest.raises(JournalError, match=msg):
        Journal.open(jpath)
    with pytest.raises(JournalError, match=msg):
        list(read_records(jpath))


def test_invalid_json_after_the_last_snapshot_is_found_by_open(jpath):
    make(jpath, 40, snapshot_every=10).close()
    _rewrite(jpath, 35, b'{"seq":34,"ts":"x","kind":"output",}\n')  # structurally plausible
    with pytest.raises(JournalError, match=r":35: damaged record \(invalid JSON\)"):
        Journal.open(jpath)


@pytest.mark.parametrize("new", [b"garbage\n", None])  # a bad line, a missing one
def test_damage_before_the_last_snapshot_is_left_to_the_full_readers(jpath, new):
    # open() reads from the end back to the last snapshot only (G5): resuming needs nothing
    # before it. records(), read_records and fm log read every line and report the damage.
    make(jpath, 40, snapshot_every=10).close()
    _rewrite(jpath, 17, new)
    j = Journal.open(jpath)
    snap, after = j.tail()
    assert (snap["seq"], [r["seq"] for r in after], j.next_seq) == (30, list(range(31, 40)), 40)
    with pytest.raises(JournalError, match=r"journal\.jsonl:17: damaged record"):
        list(j.records())


def test_records_and_read_records_parse_everything(jpath):
    # open() json-parses only from the last snapshot on (G5); a bad line before it that still
    # looks like a record at the bytes level is left for the full readers to report.
    make(jpath, 40, snapshot_every=10).close()
    _rewrite(jpath, 12, b'{"seq":11,"ts":"x","kind":"output",}\n')
    j = Journal.open(jpath)
    with pytest.raises(JournalError, match=r":12: damaged record \(invalid JSON\)"):
        list(j.records())


# The record with seq `at` is edited: in a journal without snapshots, and after the last of the
# snapshots at 7, 14, 21, 28.
@pytest.mark.parametrize("snapshot_every,at", [(0, 9), (7, 30)])
@pytest.mark.parametrize("edit,line,why", [
    ("delete", 1, "seq {1} where {0} was expected"),
    ("duplicate", 2, "seq {0} where {1} was expected"),
    ("renumber", 1, "seq 99 where {0} was expected"),
])
def test_seq_gaps_and_repeats_are_damage(jpath, snapshot_every, at, edit, line, why):
    make(jpath, 35, snapshot_every=snapshot_every).close()
    lineno, why = at + line, why.format(at, at + 1)
    ls = lines(jpath)
    if edit == "delete":
        del ls[at]
    elif edit == "duplicate":
        ls.insert(at + 1, ls[at])
    else:
        ls[at] = codec.reseal(json.loads(ls[at].replace(b'{"seq":%d,' % at, b'{"seq":99,')))
    jpath.write_bytes(b"".join(ls))
    with pytest.raises(JournalError, match=rf"journal\.jsonl:{lineno}: damaged record \({why}"):
        Journal.open(jpath)
    with pytest.raises(JournalError, match=rf":{lineno}: damaged record \({why}"):
        list(read_records(jpath))


def test_a_valid_last_line_with_the_wrong_seq_is_damage_not_a_torn_tail(jpath):
    make(jpath, 5).close()
    with open(jpath, "ab") as f:
        f.write(codec.encode(7, "output", {}))
    with pytest.raises(JournalError, match=r":6: damaged record \(seq 7 where 5 was expected"):
        Journal.open(jpath)


def test_first_record_must_be_job_started(jpath):
    make(jpath, 3).close()
    first = json.loads(lines(jpath)[0])
    _rewrite(jpath, 1, codec.reseal({**first, "kind": "output"}))
    with pytest.raises(JournalError, match=r":1: damaged record \(the first record is 'output'"):
        Journal.open(jpath)


def test_a_newer_format_is_refused(jpath):
    Journal.create(jpath, {**STARTED, "format": FORMAT + 1}).close()
    with pytest.raises(JournalError, match="newer fm"):
        Journal.open(jpath)


def test_missing_journal(tmp_path):
    with pytest.raises(JournalError, match="no such journal"):
        Journal.open(tmp_path / "journal.jsonl")
    with pytest.raises(JournalError, match="no such journal"):
        list(read_records(tmp_path / "journal.jsonl"))


# --- tail() (G5) ----------------------------------------------------------------------------------

def test_tail_without_snapshot_is_everything(jpath):
    j = make(jpath, 4)
    assert j.tail() == (None, contents(j))


def test_tail_after_snapshots(jpath):
    j = make(jpath, 23, snapshot_every=10)
    all_ = contents(j)
    assert j.tail() == (all_[20], all_[21:])
    j.append("snapshot", {"step": 23, "state": {"pc": 23}})
    j.append("output", {"fd": 1, "data": "x"})
    all_ = contents(j)
    assert j.tail() == (all_[23], all_[24:])
    j.close()
    r = Journal.open(jpath)
    assert r.tail() == (all_[23], all_[24:])
    assert r.tail() == (all_[23], all_[24:])  # a second call reads the file again
    r.append("output", {"fd": 1, "data": "y"})
    assert r.tail() == (all_[23], all_[24:] + [contents(r)[-1]])


def test_tail_is_not_fooled_by_snapshot_text_inside_other_records(jpath):
    j = make(jpath, 12, snapshot_every=5)
    j.append("effect.done", {"step": 12, "res": {"kind": "snapshot", "x": '"kind":"snapshot"'}})
    j.append("output", {"fd": 1, "data": '\n{"seq":1,"ts":"x","kind":"snapshot"}'})
    all_ = contents(j)
    j.close()
    r = Journal.open(jpath)
    assert r.tail() == (all_[10], all_[11:])


def test_open_parses_only_from_the_last_snapshot(jpath, monkeypatch):
    make(jpath, 2000, snapshot_every=100).close()
    calls = []
    real = codec.loads
    monkeypatch.setattr(codec, "loads", lambda raw: calls.append(raw) or real(raw))
    j = Journal.open(jpath)
    snap, after = j.tail()
    assert snap["seq"] == 1900 and len(after) == 99
    assert len(calls) <= 100 + 2  # the tail, job.started, and the torn-tail check of the last line


# --- readers ----------------------------------------------------------------------------------------

def test_read_records_does_not_write(jpath):
    make(jpath, 5).close()
    with open(jpath, "ab") as f:
        f.write(b'{"seq":5,"ts":"2026')
    before = jpath.read_bytes()
    assert [r["seq"] for r in read_records(jpath)] == [0, 1, 2, 3, 4]
    assert jpath.read_bytes() == before


WRITER = """
import sys, time
from flowmetal.journal import Journal
j = Journal.open(sys.argv[1])
for i in range(5):
    time.sleep(0.05)
    j.append("output", {"fd": 1, "data": f"line {i}"})
j.append("job.finished", {"status": 0})
j.append("output", {"fd": 1, "data": "after the end"})
"""


def test_follow_sees_records_appended_by_another_process(jpath):
    make(jpath, 3).close()
    seen = []
    proc = python(WRITER, jpath)
    try:
        for rec in follow(jpath, poll=0.01):
            seen.append(rec)
    finally:
        assert proc.wait(10) == 0, proc.stderr.read()
    assert [r["seq"] for r in seen] == list(range(9))
    assert [r.get("data") for r in seen[3:8]] == [f"line {i}" for i in range(5)]
    assert seen[-1]["kind"] == "job.finished"  # and it stopped there


def test_follow_from_a_seq_and_on_a_finished_job(jpath):
    j = make(jpath, 6)
    j.append("job.failed", {"status": 3, "error": {"message": "boom"}})
    j.close()
    assert [r["seq"] for r in follow(jpath, start_seq=4, poll=0.01)] == [4, 5, 6]
    assert list(follow(jpath, start_seq=50, poll=0.01)) == []  # stops at the end all the same


def test_follow_survives_a_torn_tail_being_cut_and_replaced(jpath):
    make(jpath, 3).close()
    with open(jpath, "ab") as f:
        f.write(b'{"seq":3,"ts":"2026-01-01T00:00:00.000Z","kind":"output","data":"torn')
    gen = follow(jpath, poll=0.01)
    assert [next(gen)["seq"] for _ in range(3)] == [0, 1, 2]
    result = []
    t = threading.Thread(target=lambda: result.extend(gen))
    t.start()
    j = Journal.open(jpath)  # cuts the torn line
    j.append("output", {"fd": 1, "data": "fresh"})
    j.append("job.cancelled", {"status": 130})
    t.join(5)
    assert not t.is_alive()
    assert [(r["seq"], r["kind"], r.get("data")) for r in result] == [
        (3, "output", "fresh"), (4, "job.cancelled", None)]


def test_follow_reports_damage(jpath):
    make(jpath, 5).close()
    with open(jpath, "ab") as f:
        f.write(b"garbage\n" + lines(jpath)[1])
    with pytest.raises(JournalError, match=r":6: damaged record \(invalid JSON\)"):
        list(follow(jpath, poll=0.01))
