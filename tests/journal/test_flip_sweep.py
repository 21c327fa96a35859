"""The byte-flip sweep (issue 13): in a journal of a real job that finished and of one that was
SIGKILLed mid-run, every 7th byte is flipped (one flip per copy). Every flip must be reported
with its line number by the full readers (read_records: fm log; follow: fm log -f), by
Journal.open (fm resume) wherever it reads, and fm ps must show the job as damaged or as it
was; nothing damaged is ever accepted and nothing raises a traceback. The bulk runs in
process; a sample goes through the CLI."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from flowmetal.errors import JournalDamagedError, JournalError
from flowmetal.journal import Journal, follow, open_store, read_records
from flowmetal.runner import jobs

STEP = 7
SCRIPT = """\
greet() { echo "hello $1"; }
x=$(printf '%s\\n' b a | sort)
for i in 1 2 3; do /bin/echo "row $i" >> out.txt; done
greet "$x"
n=$(wc -l < out.txt)
echo "rows: $n"
"""
KILL_AT = 9  # FM_CRASH_AT: the runner SIGKILLs itself after writing record 9, mid-loop


def _env(home: Path, **extra) -> dict:
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LC_ALL": "C.UTF-8",
            "FM_HOME": str(home), **extra}


def _fm(*args, home: Path, cwd: Path, **extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowmetal", *args], cwd=cwd,
                          env=_env(home, **extra), capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def journals(tmp_path_factory) -> dict[str, bytes]:
    """{"finished": bytes, "killed": bytes}: the journals of two real runs of SCRIPT."""
    out = {}
    for kind, extra in (("finished", {}), ("killed", {"FM_CRASH_AT": str(KILL_AT)})):
        d = tmp_path_factory.mktemp(kind)
        (d / "s.fm").write_text(SCRIPT)
        r = _fm("s.fm", home=d / "home", cwd=d, **extra)
        assert r.returncode == (-9 if extra else 0), r.stderr
        (job,) = os.listdir(d / "home" / "jobs")
        out[kind] = (d / "home" / "jobs" / job / "journal.jsonl").read_bytes()
    return out


def _flips(data: bytes):
    """(offset, flipped copy, line of the flipped byte): every STEP-th byte, one bit each, the
    bit turning with the offset. A newline belongs to the line it ends."""
    for n, at in enumerate(range(0, len(data), STEP)):
        copy = bytearray(data)
        copy[at] ^= 1 << (n % 8)
        yield at, bytes(copy), data.count(b"\n", 0, at) + 1


def _install(home: Path, job_id: str, data: bytes) -> Path:
    job_dir = home / "jobs" / job_id
    job_dir.mkdir(parents=True)
    (job_dir / "journal.jsonl").write_bytes(data)
    return job_dir


def _reported(read, line: int) -> str:
    """"reported" (damage named at `line`), "accepted" (no error) or "other: ..."."""
    try:
        read()
    except JournalDamagedError as e:
        return "reported" if e.line == line else f"other: line {e.line} for {line}"
    except JournalError as e:
        return f"other: {e}"
    except Exception as e:  # noqa: BLE001 - a traceback is exactly what the sweep counts
        return f"traceback: {type(e).__name__}: {e}"
    return "accepted"


@pytest.mark.parametrize("kind", ["finished", "killed"])
def test_every_flip_is_reported_and_none_accepted(journals, kind, tmp_path):
    data = journals[kind]
    home = tmp_path / "home"
    job_dir = _install(home, f"sweep-{kind[:6]}", data)
    path = job_dir / "journal.jsonl"
    j = Journal.open(path, fsync=False)
    clean_open = (j.first(), j.tail(), j.next_seq)
    snap_line = (clean_open[1][0] or {"seq": 0})["seq"] + 1  # open reads line 1 and from here on
    j.close()
    clean_ps = jobs.job_info(open_store(job_dir.parent.parent), job_dir.name).as_json()
    tally: dict[str, int] = {}
    bad = []
    t0 = time.perf_counter()

    def count(what: str, outcome: str, at: int) -> None:
        key = f"{what} {outcome.split(':')[0]}"
        tally[key] = tally.get(key, 0) + 1
        if outcome not in ("reported", "unread", "unchanged"):
            bad.append((what, at, outcome))

    for at, copy, line in _flips(data):
        path.write_bytes(copy)
        count("read_records", _reported(lambda: list(read_records(path)), line), at)
        if kind == "finished":  # follow() waits for more of an unfinished job
            count("follow", _reported(lambda: list(follow(path, poll=0)), line), at)

        def opened():
            j = Journal.open(path, fsync=False)
            got = (j.first(), j.tail(), j.next_seq)
            j.close()
            if got != clean_open:
                raise AssertionError("open() returned damaged records")
        outcome = _reported(opened, line)
        if outcome == "accepted" and 1 < line < snap_line:
            outcome = "unread"  # before the last snapshot: open() neither reads nor returns it
        count("open", outcome, at)
        if path.read_bytes() != copy:
            bad.append(("open", at, "changed the file"))
        try:
            ps = jobs.job_info(open_store(job_dir.parent.parent), job_dir.name).as_json()
            outcome = "reported" if ps["state"] == "damaged" else \
                "unchanged" if ps == clean_ps else f"accepted: {ps}"
        except Exception as e:  # noqa: BLE001
            outcome = f"traceback: {type(e).__name__}: {e}"
        count("ps", outcome, at)
    flips, nlines = len(range(0, len(data), STEP)), data.count(b"\n")
    print(f"\n{kind}: {len(data)} bytes, {nlines} lines, {flips} flips in "
          f"{time.perf_counter() - t0:.2f}s: {dict(sorted(tally.items()))}")
    assert not bad, bad[:10]
    assert tally["read_records reported"] == flips
    assert tally.get("open reported", 0) + tally.get("open unread", 0) == flips


def _sample(data: bytes, n: int):
    """n flips spread over the journal, the first and last lines included."""
    every = list(_flips(data))
    return [every[round(i * (len(every) - 1) / (n - 1))] for i in range(n)]


def test_the_cli_reports_a_sample_in_one_line(journals, tmp_path):
    home = tmp_path / "home"
    cases = []
    for kind, data in journals.items():
        for k, (_, copy, line) in enumerate(_sample(data, 4)):
            job_id = f"f{k}-{kind[:6]}"  # JobStore.find wants <name>-<6 chars>
            job_dir = _install(home, job_id, copy)
            cases.append((job_id, job_dir / "journal.jsonl", line))
    commands = [(cmd, job_id, path, line) for job_id, path, line in cases
                for cmd in ("log", "resume")]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda c: _fm(c[0], c[1], home=home, cwd=tmp_path), commands))
    for (cmd, job_id, path, line), r in zip(commands, results):
        assert r.returncode == 1, (cmd, job_id, r.stdout, r.stderr)
        assert r.stderr == f"fm: {path}:{line}: damaged record ({r.stderr.split('(')[1]}", \
            (cmd, r.stderr)
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    ps = _fm("ps", "-a", home=home, cwd=tmp_path)
    assert ps.returncode == 0 and "Traceback" not in ps.stderr, ps.stderr
    rows = {row.split()[0]: row.split()[2] for row in ps.stdout.splitlines()[1:]}
    # fm ps reads a finished job's first and last lines only: damage between them leaves its
    # state as it was ("done"); an unfinished job's records are all read.
    for job_id, path, line in cases:
        last = path.read_bytes().count(b"\n")
        expect = {"damaged"} if "killed" in job_id or line in (1, last) else {"damaged", "done"}
        assert rows[job_id] in expect, (job_id, line, rows[job_id])
    shutil.rmtree(home)
