"""The JSON-lines store's own side (journal/jsonl.py, statedir.py): files, modes, a private state
directory, reading journal ends cheaply, and what it refuses to read."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from flowmetal.errors import JournalDamagedError, JournalError
from flowmetal.journal import FORMAT, codec
from flowmetal.journal.jobstore import LARGE, new_job_id
from flowmetal.journal.jsonl import JOURNAL, JsonlStore
from flowmetal.journal.reader import read_first as first_record
from flowmetal.journal.reader import read_last as last_record
from flowmetal.statedir import StateDirError, state_dir

from .helpers import ROOT, STARTED

STARTED = {"version": "0", "name": "t", "filename": "t.fm", "source": "echo hi\n",
           "argv": ["t.fm"], "cwd": "/", "env": {}}


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def make(store, records=()):
    job_id = new_job_id("t")
    with store.create(job_id, STARTED, fsync=False) as lease:
        for kind, fields in records:
            lease.append(kind, fields, sync=False)
    return job_id


# ---- files and modes ----

def test_layout_and_modes(tmp_path):
    os.umask(0o022)
    store = JsonlStore(tmp_path / "a" / "b" / "home")
    job_id = make(store, [("effect.done", {"step": 1, "res": {"out": "x" * (LARGE + 1)}})])
    job_dir = store.jobs / job_id
    for d in (tmp_path / "a", tmp_path / "a" / "b", store.home, store.jobs, job_dir,
              job_dir / "content"):
        assert mode(d) == 0o700, d
    assert mode(job_dir / JOURNAL) == 0o600
    [blob] = os.listdir(job_dir / "content")
    assert mode(job_dir / "content" / blob) == 0o600 and len(blob) == 64


def test_stray_files_in_jobs_dir_are_not_jobs(tmp_path):
    store = JsonlStore(tmp_path / "home")
    a = make(store)
    (store.jobs / "README").write_text("x")
    (store.jobs / "Not-A-Job").mkdir()
    (store.jobs / f".del-{a}-1").mkdir()         # a delete cut short by a crash
    assert store.ids() == [a]


def test_damage_is_reported_with_file_and_line(tmp_path):
    store = JsonlStore(tmp_path / "home")
    job_id = make(store, [("effect.done", {"step": 1, "res": {}})])
    path = store.path(job_id)
    data = path.read_bytes().replace(b'"seq":1', b'"seq":7')
    path.write_bytes(data + b'{"seq":2,"ts":"x","kind":"job.finished"}\n')
    with pytest.raises(JournalError, match=r"journal.jsonl:2: damaged record"):
        list(store.records(job_id))
    with pytest.raises(JournalError, match=r"journal.jsonl:2: damaged record"):
        store.lease(job_id)
    assert store.holder(job_id) is None         # a failed lease is not kept


def test_a_damaged_or_missing_content_file_is_reported(tmp_path):
    store = JsonlStore(tmp_path / "home")
    job_id = make(store, [("effect.done", {"step": 1, "res": {"out": "y" * (LARGE + 1)}})])
    content = store.jobs / job_id / "content"
    [blob] = os.listdir(content)
    (content / blob).write_text("y" * (LARGE + 1) + "!")
    with pytest.raises(JournalError, match=r"journal.jsonl:2: its content file .* damaged"):
        list(store.records(job_id))
    (content / blob).unlink()
    with pytest.raises(JournalError, match=r"journal.jsonl:2: its content file .* missing"):
        list(store.records(job_id))


@pytest.mark.parametrize("kind", ["fifo", "symlink", "dir"])
def test_a_journal_that_is_not_a_regular_file_is_refused_at_once(tmp_path, kind):
    store = JsonlStore(tmp_path / "home")
    job_id = make(store)
    path = store.path(job_id)
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    for read in (store.head, store.last, store.tail, lambda i: list(store.records(i)),
                 store.lease):
        with pytest.raises(JournalError):
            read(job_id)
    # and the CLI says so in one line, without hanging
    env = dict(os.environ, FM_HOME=str(store.home), PYTHONPATH=str(ROOT))
    for argv in (["ps", "-a"], ["log", job_id], ["resume", job_id]):
        p = subprocess.run([sys.executable, "-m", "flowmetal", *argv], env=env, timeout=30,
                           capture_output=True, text=True)
        assert "Traceback" not in p.stderr, p.stderr
        if argv[0] != "ps":
            assert p.returncode != 0 and p.stderr.count("\n") == 1, p.stderr


def test_a_fifo_lock_is_refused(tmp_path):
    store = JsonlStore(tmp_path / "home")
    job_id = make(store)
    lock = store.jobs / job_id / "lock"
    lock.unlink()
    os.mkfifo(lock)
    with pytest.raises(JournalError, match="not a regular file"):
        store.holder(job_id)
    with pytest.raises(JournalError, match="not a regular file"):
        store.lease(job_id)


# ---- the state directory ----

def test_state_dir_defaults_to_platformdirs(monkeypatch, tmp_path):
    monkeypatch.delenv("FM_HOME", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path))
    d = state_dir()
    assert d.name == "flowmetal" and d.is_dir() and mode(d) == 0o700


def test_state_dirs_made_0700_under_umask_000(tmp_path, monkeypatch):
    old = os.umask(0)
    try:
        monkeypatch.setenv("FM_HOME", str(tmp_path / "x" / "y"))
        d = state_dir()
    finally:
        os.umask(old)
    assert mode(tmp_path / "x") == 0o700 and mode(d) == 0o700


@pytest.mark.parametrize("where", ["home", "jobs", "job"])
def test_a_directory_writable_by_others_is_refused(tmp_path, where):
    store = JsonlStore(tmp_path / "home")
    job_id = make(store)
    target = {"home": store.home, "jobs": store.jobs, "job": store.jobs / job_id}[where]
    os.chmod(target, 0o777)
    with pytest.raises(StateDirError, match=r"writable by group or others .*chmod 700"):
        s = JsonlStore(tmp_path / "home")
        s.head(job_id)


def test_a_symlinked_jobs_dir_or_job_dir_is_refused(tmp_path):
    store = JsonlStore(tmp_path / "home")
    job_id = make(store)
    elsewhere = tmp_path / "elsewhere"
    os.rename(store.jobs / job_id, elsewhere)
    (store.jobs / job_id).symlink_to(elsewhere)
    with pytest.raises(StateDirError, match="symbolic link"):
        store.head(job_id)


def test_fm_home_that_is_a_file_is_a_clear_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    env = dict(os.environ, FM_HOME=str(f), PYTHONPATH=str(ROOT))
    for argv in (["-c", "echo hi"], ["ps"]):
        p = subprocess.run([sys.executable, "-m", "flowmetal", *argv], env=env, timeout=30,
                           capture_output=True, text=True)
        assert p.returncode != 0 and "not a directory" in p.stderr, p.stderr
        assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_fm_home_under_a_file_is_a_clear_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StateDirError, match="(cannot create|cannot use it as) .*state directory"):
        JsonlStore(f / "home")


# ---- reading the ends of a journal ----

def write_lines(path, *kinds, tail=b"", fmt=FORMAT, x=""):
    """A journal of records of these kinds (job.started first, of format `fmt`: checksummed
    from format 2 on), the last one padded with `x`, then `tail`."""
    out = []
    for seq, kind in enumerate(kinds):
        fields = {"format": fmt, **STARTED} if seq == 0 else {}
        if x and seq == len(kinds) - 1:
            fields["x"] = x
        line = codec.encode(seq, kind, fields)
        out.append(line if fmt >= 2 else codec.unseal(line[:-1]) + b"\n")
    path.write_bytes(b"".join(out) + tail)


@pytest.mark.parametrize("fmt", [1, FORMAT])
def test_last_record(tmp_path, fmt):
    p = tmp_path / "j"
    write_lines(p, "job.started", "b", fmt=fmt)
    assert last_record(p)["kind"] == "b"


@pytest.mark.parametrize("fmt", [1, FORMAT])
def test_last_record_skips_a_torn_tail(tmp_path, fmt):
    p = tmp_path / "j"
    write_lines(p, "job.started", "b", tail=b'{"kind": "c", "x', fmt=fmt)
    assert last_record(p)["kind"] == "b"


def test_a_complete_bad_last_line_is_torn_only_in_format_1(tmp_path):
    p = tmp_path / "j"
    write_lines(p, "job.started", "b", tail=b"\0\0\0\n", fmt=1)  # zeroes after power loss
    assert last_record(p)["kind"] == "b"
    # From format 2 on a line with its newline was written whole: a bad one is damage.
    write_lines(p, "job.started", "b", tail=b"\0\0\0\n")
    with pytest.raises(JournalDamagedError, match=r"j:3: damaged record \(invalid JSON\)"):
        last_record(p)


@pytest.mark.parametrize("at", [-2, -5, 20, 40])
def test_last_record_checks_the_checksum(tmp_path, at):
    p = tmp_path / "j"
    write_lines(p, "job.started", "b", "c")
    data = bytearray(p.read_bytes())
    data[at] ^= 1
    p.write_bytes(bytes(data))
    line = 1 if at >= 0 else 3
    with pytest.raises(JournalDamagedError, match=rf"j:{line}: damaged record"):
        last_record(p) if at < 0 else first_record(p)


def test_a_last_record_without_its_newline_is_damage(tmp_path):
    # A torn write leaves a prefix of `record\n`; a whole record and a stray byte is a flip.
    p = tmp_path / "j"
    write_lines(p, "job.started", "b")
    p.write_bytes(p.read_bytes()[:-1] + b"\x0b")
    with pytest.raises(JournalDamagedError, match=r"j:2: damaged record \(a whole record whose"):
        last_record(p)
    p.write_bytes(p.read_bytes()[:-1])  # the newline torn off: the record was not written whole
    assert last_record(p)["kind"] == "job.started"


def test_last_record_with_lines_longer_than_a_block(tmp_path):
    p = tmp_path / "j"
    write_lines(p, "job.started", "b", x="z" * 30000)
    assert last_record(p, block=100)["kind"] == "b"
    write_lines(p, "job.started", x="y" * 50000, tail=b'{"partial"')
    assert last_record(p, block=100)["kind"] == "job.started"


def test_last_record_of_a_single_line_and_of_nothing(tmp_path):
    p = tmp_path / "j"
    write_lines(p, "job.started")
    assert last_record(p)["kind"] == "job.started"
    p.write_bytes(b"")
    assert last_record(p) is None
    p.write_bytes(b'{"kind": "half')
    assert last_record(p) is None


def test_first_record(tmp_path):
    store = JsonlStore(tmp_path / "home")
    job_id = make(store, [("effect.done", {"step": 1, "res": {}})])
    assert first_record(store.path(job_id))["kind"] == "job.started"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="giving a directory to another user needs root")
@pytest.mark.parametrize("where", ["home", "jobs", "job"])
def test_a_directory_of_another_user_is_refused(tmp_path, where):
    store = JsonlStore(tmp_path / "home")
    job_id = make(store)
    target = {"home": store.home, "jobs": store.jobs, "job": store.jobs / job_id}[where]
    os.chown(target, 12345, 12345)
    with pytest.raises(StateDirError, match=r"belongs to another user \(uid 12345\)"):
        JsonlStore(tmp_path / "home").head(job_id)
