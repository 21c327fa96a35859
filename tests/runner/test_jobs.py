"""The job store: state directory, ids, prefixes, reading journal ends, job states."""
from __future__ import annotations

import json
import os
import re
import stat

import pytest

from flowmetal.errors import JobNotFoundError, JournalDamagedError
from flowmetal.journal import FORMAT, JobLock, Journal, codec
from flowmetal.runner import jobs

STARTED = {"version": "0.1.0", "name": "t", "filename": "t.fm", "source": "echo hi\n",
           "argv": ["t.fm"], "cwd": "/", "env": {}}


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def make_job(home, name="deploy", records=(), create=True):
    job_id = jobs.new_job_id(name)
    job_dir, lock = jobs.create_job_dir(job_id, home)
    lock.release()
    if create:
        j = Journal.create(job_dir / jobs.JOURNAL, STARTED, fsync=False)
        for kind, fields in records:
            j.append(kind, fields, sync=False)
        j.close()
    return job_id, job_dir


def test_state_dir_is_created_0700_with_parents(home):
    os.umask(0o022)
    d = jobs.state_dir()
    assert d == home and d.is_dir()
    assert mode(d) == 0o700
    assert mode(jobs.jobs_dir()) == 0o700


def test_state_dir_defaults_to_platformdirs(monkeypatch, tmp_path):
    monkeypatch.delenv("FM_HOME", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path))
    d = jobs.state_dir()
    assert d.name == "flowmetal" and d.is_dir() and mode(d) == 0o700


def test_job_ids_have_name_and_six_random_chars(home):
    job_id = jobs.new_job_id("Deploy Prod!")
    job_dir, lock = jobs.create_job_dir(job_id, home)
    assert re.fullmatch(r"deploy-prod-[a-z0-9]{6}", job_id)
    assert job_dir == home / "jobs" / job_id and mode(job_dir) == 0o700
    assert JobLock.holder(job_dir) == os.getpid()  # born locked: never seen as an orphan
    assert jobs.job_info(job_id, job_dir).state == "running"
    lock.release()
    assert os.listdir(home / "jobs") == [job_id]
    with pytest.raises(FileExistsError):
        jobs.create_job_dir(job_id, home)
    assert os.listdir(home / "jobs") == [job_id]


@pytest.mark.parametrize("raw, clean", [
    ("hello", "hello"), ("Hello World", "hello-world"), ("a.b.c", "a-b-c"), ("ok_name-1", "ok_name-1"),
    ("---", "job"), ("", "job"), ("x" * 50, "x" * 32), ("ünïcode", "n-code"),
])
def test_sanitize_name(raw, clean):
    assert jobs.sanitize_name(raw) == clean


def test_random_suffix_uses_the_whole_alphabet():
    seen = set("".join(jobs.random_suffix() for _ in range(500)))
    assert seen == set("abcdefghijklmnopqrstuvwxyz0123456789")


def test_journal_is_0600(home):
    _, job_dir = make_job(home)
    assert mode(job_dir / jobs.JOURNAL) == 0o600


def test_find_job_exact_and_prefix(home):
    a, _ = make_job(home, "alpha")
    b, _ = make_job(home, "beta")
    assert jobs.find_job(a)[0] == a
    assert jobs.find_job("al")[0] == a
    assert jobs.find_job(b[:-3])[0] == b


def test_find_job_ambiguous_lists_candidates(home):
    a, _ = make_job(home, "same")
    b, _ = make_job(home, "same")
    with pytest.raises(JobNotFoundError) as e:
        jobs.find_job("sa")
    assert a in e.value.message and b in e.value.message and "2 jobs" in e.value.message
    assert e.value.status == 2


@pytest.mark.parametrize("prefix", ["xyz", "", "../etc", "nope-abcdef"])
def test_find_job_unknown(home, prefix):
    make_job(home, "alpha")
    with pytest.raises(JobNotFoundError, match="no job matches"):
        jobs.find_job(prefix)


def test_stray_files_in_jobs_dir_are_not_jobs(home):
    a, _ = make_job(home, "alpha")
    (home / "jobs" / "README").write_text("x")
    (home / "jobs" / "Not-A-Job").mkdir()
    assert jobs.job_ids(home) == [a]


# ---- reading the ends of a journal ----

def write_lines(path, *kinds, tail=b"", fmt=FORMAT, x=""):
    """A journal of records of these kinds (job.started first, of format `fmt`: checksummed
    from format 2 on), the last one padded with `x`, then `tail`."""
    out = []
    for seq, kind in enumerate(kinds):
        fields = {"format": fmt} if seq == 0 else {}
        if x and seq == len(kinds) - 1:
            fields["x"] = x
        line = codec.encode(seq, kind, fields)
        out.append(line if fmt >= 2 else codec.unseal(line[:-1]) + b"\n")
    path.write_bytes(b"".join(out) + tail)


@pytest.mark.parametrize("fmt", [1, FORMAT])
def test_last_record(tmp_path, fmt):
    p = tmp_path / "j"
    write_lines(p, "job.started", "b", fmt=fmt)
    assert jobs.last_record(p)["kind"] == "b"


@pytest.mark.parametrize("fmt", [1, FORMAT])
def test_last_record_skips_a_torn_tail(tmp_path, fmt):
    p = tmp_path / "j"
    write_lines(p, "job.started", "b", tail=b'{"kind": "c", "x', fmt=fmt)
    assert jobs.last_record(p)["kind"] == "b"


def test_a_complete_bad_last_line_is_torn_only_in_format_1(tmp_path):
    p = tmp_path / "j"
    write_lines(p, "job.started", "b", tail=b"\0\0\0\n", fmt=1)  # zeroes after power loss
    assert jobs.last_record(p)["kind"] == "b"
    # From format 2 on a line with its newline was written whole: a bad one is damage.
    write_lines(p, "job.started", "b", tail=b"\0\0\0\n")
    with pytest.raises(JournalDamagedError, match=r"j:3: damaged record \(invalid JSON\)"):
        jobs.last_record(p)


@pytest.mark.parametrize("at", [-2, -5, 20, 40])
def test_last_record_checks_the_checksum(tmp_path, at):
    p = tmp_path / "j"
    write_lines(p, "job.started", "b", "c")
    data = bytearray(p.read_bytes())
    data[at] ^= 1
    p.write_bytes(bytes(data))
    line = 1 if at >= 0 else 3
    with pytest.raises(JournalDamagedError, match=rf"j:{line}: damaged record"):
        jobs.last_record(p) if at < 0 else jobs.first_record(p)


def test_a_last_record_without_its_newline_is_damage(tmp_path):
    # A torn write leaves a prefix of `record\n`; a whole record and a stray byte is a flip.
    p = tmp_path / "j"
    write_lines(p, "job.started", "b")
    p.write_bytes(p.read_bytes()[:-1] + b"\x0b")
    with pytest.raises(JournalDamagedError, match=r"j:2: damaged record \(a whole record whose"):
        jobs.last_record(p)
    p.write_bytes(p.read_bytes()[:-1])  # the newline torn off: the record was not written whole
    assert jobs.last_record(p)["kind"] == "job.started"


def test_last_record_with_lines_longer_than_a_block(tmp_path):
    p = tmp_path / "j"
    write_lines(p, "job.started", "b", x="z" * 30000)
    assert jobs.last_record(p, block=100)["kind"] == "b"
    write_lines(p, "job.started", x="y" * 50000, tail=b'{"partial"')
    assert jobs.last_record(p, block=100)["kind"] == "job.started"


def test_last_record_of_a_single_line_and_of_nothing(tmp_path):
    p = tmp_path / "j"
    write_lines(p, "job.started")
    assert jobs.last_record(p)["kind"] == "job.started"
    p.write_bytes(b"")
    assert jobs.last_record(p) is None
    p.write_bytes(b'{"kind": "half')
    assert jobs.last_record(p) is None


def test_first_record(home):
    _, job_dir = make_job(home, records=[("effect.done", {"step": 1, "res": {}})])
    assert jobs.first_record(job_dir / jobs.JOURNAL)["kind"] == "job.started"


# ---- job states ----

@pytest.mark.parametrize("last, state, status", [
    (("job.finished", {"status": 0, "step": 4}), "done", 0),
    (("job.failed", {"status": 3, "step": 4, "error": {"message": "x"}}), "failed", 3),
    (("job.cancelled", {"status": 130, "step": 4}), "cancelled", 130),
])
def test_finished_states(home, last, state, status):
    job_id, job_dir = make_job(home, records=[("effect.done", {"step": 4, "res": {}}), last])
    info = jobs.job_info(job_id, job_dir)
    assert (info.state, info.status, info.steps, info.finished) == (state, status, 4, True)


def test_unfinished_job_without_runner_is_orphaned(home):
    job_id, job_dir = make_job(home, records=[("effect.started", {"step": 7, "req": {}})])
    info = jobs.job_info(job_id, job_dir)
    assert info.state == "orphaned" and info.steps == 7 and not info.finished
    assert info.since.endswith("Z") and info.pid is None


def test_unfinished_job_with_runner_is_running(home):
    job_id, job_dir = make_job(home, records=[("effect.started", {"step": 2, "req": {}})])
    with JobLock.acquire(job_dir):
        info = jobs.job_info(job_id, job_dir)
    assert info.state == "running" and info.pid == os.getpid()


def test_a_job_whose_creation_was_cut_short_is_orphaned(home):
    job_id, job_dir = make_job(home, create=False)
    assert jobs.job_info(job_id, job_dir).state == "orphaned"


def test_list_jobs_hides_finished_unless_all(home):
    done, _ = make_job(home, "a", records=[("job.finished", {"status": 0})])
    open_, _ = make_job(home, "b")
    assert [j.id for j in jobs.list_jobs(home=home)] == [open_]
    assert {j.id for j in jobs.list_jobs(all_jobs=True, home=home)} == {done, open_}
    row = jobs.list_jobs(home=home)[0].as_json()
    assert {"id", "name", "state", "since", "waiting_on", "steps"} <= set(row)
    assert row["waiting_on"] is None
