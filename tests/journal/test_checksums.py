"""Record checksums (format 2): how they are written, that every reader checks them, how a torn
write is told from a flipped byte, and that format 1 journals (no checksums) still load."""
from __future__ import annotations

import json
import zlib

import pytest

from flowmetal.errors import JournalDamagedError, JournalError
from flowmetal.journal import FORMAT, Journal, codec, follow, read_first, read_last, read_records

from .helpers import STARTED, lines, make


@pytest.fixture
def jpath(tmp_path):
    d = tmp_path / "jobs" / "t-abc123"
    d.mkdir(parents=True)
    return d / "journal.jsonl"


def flip(path, at: int, mask: int = 1) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= mask
    path.write_bytes(bytes(data))


def every_reader_reports(path, line: int, why: str = "") -> None:
    """open, read_records and follow all raise JournalDamagedError naming `line`."""
    for read in (lambda: Journal.open(path), lambda: list(read_records(path)),
                 lambda: list(follow(path, poll=0.01))):
        with pytest.raises(JournalDamagedError, match=why or None) as e:
            read()
        assert e.value.line == line and e.value.path == str(path)
        assert str(e.value).startswith(f"{path}:{line}: damaged record (")


def format1(path, n: int, **kw) -> None:
    """A journal of n records as fm wrote them before checksums (format 1)."""
    make(path, n, **kw).close()
    out = []
    for raw in lines(path):
        rec = json.loads(raw)
        if rec["seq"] == 0:
            rec["format"] = 1
        rec.pop("crc")
        out.append(json.dumps(rec, separators=(",", ":")).encode() + b"\n")
    path.write_bytes(b"".join(out))


# --- the field --------------------------------------------------------------------------------

def test_the_checksum_is_the_last_member_over_the_rest_of_the_record():
    line = codec.encode(3, "effect.done", {"step": 2, "res": {"out": "é\n"}}, ts="T")
    assert line.endswith(b'"}\n') and line.count(b"\n") == 1
    rec = json.loads(line)
    assert list(rec) == ["seq", "ts", "kind", "step", "res", "crc"]
    body = json.dumps({k: v for k, v in rec.items() if k != "crc"}, separators=(",", ":"))
    assert rec["crc"] == "%08x" % zlib.crc32(body.encode()) and rec["crc"].islower()
    assert codec.unseal(line[:-1]) == body.encode()
    assert codec.seal(body.encode()) + b"\n" == line == codec.reseal(rec)


def test_crc_is_a_reserved_field():
    with pytest.raises(ValueError, match="'crc' is reserved"):
        codec.encode(1, "output", {"crc": "0"})


@pytest.mark.parametrize("edit", [
    lambda r: r.replace(b'"crc":"', b'"crc":"0'),      # nine digits
    lambda r: r[:-3] + r[-3:-2].upper() + r[-2:],       # a hex digit in upper case
    lambda r: r.replace(b'"crc"', b'"crC"'),            # not a checksum member any more
    lambda r: r + b" ",                                 # not the last thing on the line
], ids=["nine-digits", "upper-case", "renamed", "trailing-space"])
def test_a_checksum_is_exactly_as_written_or_the_line_is_damaged(jpath, edit):
    make(jpath, 3).close()
    # a record whose checksum ends in a letter, so that upper-casing it changes a byte
    line = next(x for p in range(99) if not (x := codec.encode(3, "output", {"pad": p},
                                                               ts="T"))[-4:-3].isdigit())
    with open(jpath, "ab") as f:
        f.write(edit(line[:-1]) + b"\n" + codec.encode(4, "output", {}))
    every_reader_reports(jpath, 4)


# --- torn writes and flips at the end (G6) ----------------------------------------------------

def test_a_complete_final_line_that_fails_its_check_is_damage_not_a_torn_write(jpath):
    make(jpath, 5).close()
    flip(jpath, len(jpath.read_bytes()) - 20)  # in the last line, which keeps its newline
    every_reader_reports(jpath, 5, "checksum mismatch")
    with pytest.raises(JournalDamagedError, match=":5: "):
        read_last(jpath)


def test_a_final_record_whose_newline_was_flipped_is_damage(jpath):
    make(jpath, 5).close()
    for mask in (1, 0x20, 0xFF):
        data = jpath.read_bytes()
        flip(jpath, len(data) - 1, mask)
        every_reader_reports(jpath, 5, "a whole record whose newline is damaged")
        with pytest.raises(JournalDamagedError, match=":5: "):
            read_last(jpath)
        jpath.write_bytes(data)


def test_a_lone_first_line_whose_newline_was_flipped_is_damage(jpath):
    Journal.create(jpath, STARTED).close()
    flip(jpath, len(jpath.read_bytes()) - 1)
    with pytest.raises(JournalDamagedError, match=":1: damaged record"):
        Journal.open(jpath)
    with pytest.raises(JournalDamagedError, match=":1: damaged record"):
        read_first(jpath)


def test_a_torn_final_line_is_still_cut_off(jpath):
    make(jpath, 5).close()
    good = jpath.read_bytes()
    last = lines(jpath)[-1]
    for cut in range(1, len(last)):  # the last record without its last `cut` bytes
        jpath.write_bytes(good[:-cut])
        assert len(list(read_records(jpath))) == 4
        assert read_last(jpath)["seq"] == 3
        j = Journal.open(jpath, fsync=False)
        assert (j.next_seq, j.discarded) == (4, len(last) - cut)
        j.close()


def test_a_flipped_newline_inside_the_journal_is_reported_at_its_line(jpath):
    make(jpath, 6).close()
    at = sum(len(x) for x in lines(jpath)[:3]) - 1  # the newline ending line 3
    flip(jpath, at)
    every_reader_reports(jpath, 3, "checksum mismatch")


# --- line 1 and the format ----------------------------------------------------------------------

def test_a_flipped_format_number_is_damage_not_a_newer_or_older_format(jpath):
    make(jpath, 3).close()
    at = jpath.read_bytes().index(b'"format":2') + 9
    for mask in (1, 2, 3):  # 2 -> 3, 0, 1
        flip(jpath, at, mask)
        every_reader_reports(jpath, 1, "checksum mismatch")
        with pytest.raises(JournalDamagedError, match=":1: "):
            read_first(jpath)
        flip(jpath, at, mask)


# job.started (whose format says checksums are due), a record in the middle, the last one
@pytest.mark.parametrize("line", [1, 4, 6])
def test_a_record_without_its_checksum_is_damage_from_format_2_on(jpath, line):
    make(jpath, 6).close()
    ls = lines(jpath)
    ls[line - 1] = codec.unseal(ls[line - 1][:-1]) + b"\n"
    jpath.write_bytes(b"".join(ls))
    every_reader_reports(jpath, line, "no checksum")


# --- snapshots ------------------------------------------------------------------------------------

def test_every_flip_in_the_last_snapshots_header_names_its_line(jpath):
    make(jpath, 25, snapshot_every=10).close()  # the last snapshot is record 20, on line 21
    start = sum(len(x) for x in lines(jpath)[:20])
    for at in range(start, start + 60):
        data = jpath.read_bytes()
        flip(jpath, at)
        with pytest.raises(JournalDamagedError) as e:
            Journal.open(jpath)
        assert e.value.line == 21, at
        jpath.write_bytes(data)


def test_a_flip_before_the_last_snapshot_is_not_read_by_open(jpath):
    # open() reads from the last snapshot on (G5): what lies before it is neither checked nor
    # used; the full readers (fm log) report it.
    make(jpath, 25, snapshot_every=10).close()
    j = Journal.open(jpath)
    clean = (j.first(), j.tail(), j.next_seq)
    j.close()
    flip(jpath, sum(len(x) for x in lines(jpath)[:14]) + 30)  # in line 15
    j = Journal.open(jpath)
    assert (j.first(), j.tail(), j.next_seq) == clean
    j.close()
    with pytest.raises(JournalDamagedError, match=":15: damaged record \\(checksum mismatch"):
        list(read_records(jpath))


# --- format 1 --------------------------------------------------------------------------------------

def test_a_format_1_journal_loads_and_keeps_its_torn_tail_rule(jpath):
    format1(jpath, 12, snapshot_every=5)
    recs = list(read_records(jpath))
    assert [r["seq"] for r in recs] == list(range(12)) and "crc" not in recs[5]
    assert read_first(jpath)["format"] == 1 and read_last(jpath)["seq"] == 11
    good = jpath.read_bytes()
    jpath.write_bytes(good + b"not json\n")  # before checksums this could be a torn write
    assert len(list(read_records(jpath))) == 12 and read_last(jpath)["seq"] == 11
    j = Journal.open(jpath)
    assert (j.next_seq, j.discarded, j.tail()[0]["seq"]) == (12, 9, 10)
    # What this fm appends carries checksums, and they are checked
    j.append("output", {"data": "new"})
    j.close()
    r = list(read_records(jpath))[-1]
    assert r["data"] == "new" and "crc" in r
    assert read_last(jpath)["data"] == "new"
    flip(jpath, len(jpath.read_bytes()) - 20)
    every_reader_reports(jpath, 13, "checksum mismatch")


def test_a_format_1_journal_with_damage_in_the_middle_is_still_reported(jpath):
    format1(jpath, 12)
    ls = lines(jpath)
    ls[6] = b"garbage\n"
    jpath.write_bytes(b"".join(ls))
    every_reader_reports(jpath, 7, "invalid JSON")


def test_a_newer_format_is_refused_before_its_records_are_read(jpath):
    make(jpath, 3).close()
    ls = lines(jpath)
    ls[0] = codec.reseal({**json.loads(ls[0]), "format": FORMAT + 1})
    ls[1] = b"a line this fm cannot read\n"
    jpath.write_bytes(b"".join(ls))
    with pytest.raises(JournalError, match="newer fm"):
        Journal.open(jpath)
