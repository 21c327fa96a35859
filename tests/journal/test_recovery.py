"""Journal.open reads backwards from the end in blocks: any block boundary, and what it reads."""
from __future__ import annotations

import pytest

from flowmetal.errors import JournalError
from flowmetal.journal import Journal, read_records, recovery

from .helpers import STARTED


@pytest.fixture
def jpath(tmp_path):
    return tmp_path / "journal.jsonl"


def build(path, *, snapshots: bool):
    """A journal whose job.started, last snapshot and last record each span several small blocks,
    with snapshot text inside other records' values; returns its records."""
    j = Journal.create(path, {**STARTED, "source": "echo hi\n" * 40}, fsync=False)
    for s in range(1, 25):
        kind = "snapshot" if snapshots and s % 10 == 0 else "effect.done"
        j.append(kind, {"step": s, "state": {"pc": s, "pad": "p" * 150}} if kind == "snapshot"
                 else {"step": s, "res": {"out": '"kind":"snapshot"\n' * (s % 3)}}, sync=False)
    j.append("effect.done", {"step": 25, "res": {"out": "o" * 300}}, sync=False)
    j.close()
    return list(read_records(path))


@pytest.mark.parametrize("block", [1, 2, 3, 7, 16, 17, 18, 100, 333, 1 << 16])
@pytest.mark.parametrize("snapshots", [True, False])
def test_every_block_size_finds_the_same_tail(jpath, monkeypatch, block, snapshots):
    monkeypatch.setattr(recovery, "BLOCK", block)
    recs = build(jpath, snapshots=snapshots)
    good = jpath.read_bytes()
    expected = (recs[20], recs[21:]) if snapshots else (None, recs)
    for torn in (b"", b'{"seq":26,"ts', b"garbage", b"x" * 500):
        jpath.write_bytes(good + torn)
        j = Journal.open(jpath, fsync=False)
        assert (j.next_seq, j.discarded) == (26, len(torn))
        assert j.first() == recs[0]
        assert j.tail() == expected
        j.close()
    for bad in (b"garbage\n", b"\n"):  # a line with its newline was written whole: damage
        jpath.write_bytes(good + bad)
        with pytest.raises(JournalError, match=r":27: damaged record \(invalid JSON\)"):
            Journal.open(jpath, fsync=False)


@pytest.mark.parametrize("block", [1, 5, 64])
def test_damage_after_the_last_snapshot_in_small_blocks(jpath, monkeypatch, block):
    monkeypatch.setattr(recovery, "BLOCK", block)
    build(jpath, snapshots=True)
    with open(jpath, "ab") as f:
        f.write(b"garbage\n" + b'{"seq":27,"ts":"x","kind":"output"}\n')
    with pytest.raises(JournalError, match=r":27: damaged record \(invalid JSON\)"):
        Journal.open(jpath)


def test_a_lone_torn_first_line_in_small_blocks(jpath, monkeypatch):
    monkeypatch.setattr(recovery, "BLOCK", 3)
    Journal.create(jpath, STARTED).close()
    jpath.write_bytes(jpath.read_bytes()[:-1])
    with pytest.raises(JournalError, match="no complete job.started"):
        Journal.open(jpath)


def test_open_reads_only_the_end_and_the_first_line(jpath, monkeypatch):
    # G5: what open() reads is bounded by the records from the last snapshot on, not the history.
    j = Journal.create(jpath, STARTED, fsync=False)
    while j.next_seq < 5000:
        s = j.next_seq
        j.append("snapshot" if s % 100 == 0 else "effect.done",
                 {"step": s, "state": {}, "res": {"out": "x" * 100}}, sync=False)
    j.close()
    size = jpath.stat().st_size
    tail = size - jpath.read_bytes().rindex(b'\n{"seq":4900,') - 1
    read = []
    real = recovery.pread_all
    monkeypatch.setattr(recovery, "pread_all", lambda fd, n, off: read.append(n) or real(fd, n, off))
    monkeypatch.setattr(recovery, "BLOCK", 1024)
    j = Journal.open(jpath)
    assert j.tail()[0]["seq"] == 4900 and j.next_seq == 5000
    # doubling blocks read at most twice the tail; one block holds job.started
    assert sum(read) <= 2 * tail + 2 * 1024 < size / 10
