"""The damage sweep's quick mode (issue 17 item 5), the judge's own tests, the findings of the
full mode as regression tests, and the check that docs/reliability.md quotes the last full run
(bench/damage.py; tests/journal/damage.py plays and judges)."""
from __future__ import annotations

import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from flowmetal.errors import JournalDamagedError, JournalError
from flowmetal.journal import Journal, codec, open_store, read_last, read_records
from flowmetal.runner import jobs

from . import damage as d
from .helpers import STARTED

SEED = int(os.environ.get("DAMAGE_SEED", "20261203"))


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("bases")
    return (*d.make_bases(root), root / "cwd")


def test_quick_sweep_one_case_of_every_kind(bases, tmp_path):
    base_jobs, ref, cwd = bases
    cases = d.sample(d.cases(base_jobs), SEED)
    assert len({c.kind for c in cases}) == len(cases) >= 15
    t0 = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(
            lambda ic: d.play(ic[1], base_jobs[ic[1].base], ref, tmp_path / f"c{ic[0]}", cwd),
            enumerate(cases)))
    fig = d.figures(outcomes, base_jobs, len(cases), time.monotonic() - t0)
    print(f"\ndamage quick (DAMAGE_SEED={SEED}): {fig['cases']} cases, {fig['clean_errors']} "
          f"clean errors, {fig['correct']} correct, {fig['failures']} failures, "
          f"{fig['wall_seconds']} s")
    assert fig["failed"] == []
    assert fig["clean_errors"] and fig["correct"]  # both outcomes are exercised


# ---- the judge ---------------------------------------------------------------------------

def _case(expect: str, base: str = "killed", line=None, keep=None) -> d.Case:
    return d.Case("t", base, "k", expect, None, line=line, keep=keep)


def _base(name: str = "killed") -> d.Base:
    lines = [json.dumps({"seq": i, "kind": "effect.done", "res": {"out": f"{i}\n"}})
             for i in range(4)]
    return d.Base(name, "s-abcdef", b"", {}, lines, "orphaned" if name == "killed" else "done")


REF = {"status": 0, "out": "0\n1\n2\n3\nend\n"}
MSG = "fm: /h/jobs/s-abcdef/journal.jsonl:3: damaged record (checksum mismatch); the job ...\n"


@pytest.mark.parametrize("cmd, result, case, verdict", [
    ("log", (0, "history\n", ""), _case("damage", line=3), "failure: damage accepted"),
    ("log", (1, MSG, MSG), _case("damage", line=3), "error"),
    ("log", (1, "", MSG), _case("damage", line=4), "failure: line 3 named"),
    ("log", (1, "", MSG + MSG), _case("damage", line=3), "failure: not a one-line"),
    ("log", (70, "", "fm: internal error: x\n"), _case("damage"), "failure: internal error"),
    ("log", ("hang", "", ""), _case("damage"), "failure: hang"),
    ("log", (1, "", "fm: no job\n"), _case("damage"), "failure: the message names neither"),
    ("log", (1, "", "Traceback (most recent call last):\n"), _case("same"), "failure: internal"),
    ("log --json", (0, "\n".join(_base().json_lines[:2]), ""), _case("torn", keep=2), "ok"),
    ("log --json", (0, "\n".join(_base().json_lines[:3]), ""), _case("torn", keep=2),
     "failure: not the history up to the cut"),
    ("log --json", (0, "\n".join(_base().json_lines[:3]), ""), _case("same"),
     "failure: a different history"),
    ("ps -a", (0, "ID NAME STATE\ns-abcdef s damaged\n", ""), _case("damage"), "ok"),
    ("ps -a", (0, "ID NAME STATE\ns-abcdef s running\n", ""), _case("damage"),
     "failure: listed as running"),
    ("ps -a", (1, "", "fm: boom\n"), _case("same"), "failure: fm ps -a failed"),
    ("resume", (0, "end\n", ""), _case("torn", keep=4), "ok"),
    ("resume", (0, "3\nend\n", ""), _case("torn", keep=4), "failure: a wrong result"),
    ("resume", (0, "end\n", ""), _case("damage", line=2), "ok"),  # unread: right result
    ("resume", (0, "end\n", ""), _case("damage", base="finished"),
     "failure: resumed a finished job"),
    ("resume", (1, "", "fm: job s-abcdef already finished (status 0)\n"),
     _case("damage", base="finished"), "error"),
    ("resume", (1, "", "fm: job s-abcdef is being run by another process\n"),
     _case("damage", base="running"), "error"),
    ("resume", (0, "", ""), _case("damage", base="running"),
     "failure: resumed a job another process holds"),
    ("rm", (0, "", ""), _case("damage", base="running"), "failure: removed a running job"),
])
def test_the_judge(cmd, result, case, verdict):
    name = "finished" if case.base == "finished" else "killed"
    got = d._judge(cmd, result, case, _base(name), REF, Path("/nonexistent"), {})
    assert got.startswith(verdict), got


# ---- findings of the sweep, one each -------------------------------------------------------

def _journal(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    lease = open_store(home).create("t-abc123", STARTED, fsync=False)
    for step in (1, 2):
        lease.append("effect.started", {"step": step, "req": {"op": "exec", "stages": []}})
        lease.append("effect.done", {"step": step, "res": {"status": [0], "out": "x\n"}})
    lease.release()
    return home / "jobs" / "t-abc123" / "journal.jsonl"


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def _reseal(path: Path, line: int, edit) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    rec = json.loads(lines[line - 1])
    edit(rec)
    lines[line - 1] = d.reseal_with(rec)
    path.write_bytes(b"".join(lines))


@pytest.mark.parametrize("line, edit, why", [
    (3, lambda r: r.update(res=[]), "`res` is a list, not an object"),
    (3, lambda r: r["res"].update(status="0"), "`res.status` is a string"),
    (2, lambda r: r.update(step={}), "`step` is an object, not an integer"),
    (2, lambda r: r.update(step=10 ** 40), "`step` is an integer out of range"),
    (1, lambda r: r.pop("argv"), "job.started: no `argv` field"),
    (1, lambda r: r["env"].update(TZ=True), "`env.TZ` is true or false, not a string"),
    (2, lambda r: r["req"].update(x=d.BOMB), "invalid JSON"),
    (2, lambda r: r["req"].update(x=_nested(70)),
     "nests deeper than 64 levels"),
])
def test_a_resealed_record_of_the_wrong_shape_is_damage(tmp_path, line, edit, why):
    path = _journal(tmp_path)
    _reseal(path, line, edit)
    with pytest.raises(JournalDamagedError) as e:
        list(read_records(path))
    assert e.value.line == line and why.split(":")[-1].strip() in str(e.value), str(e.value)
    if line > 1:
        with pytest.raises(JournalDamagedError):
            Journal.open(path, fsync=False)


def test_a_wrong_header_in_the_last_record_is_damage_for_fm_ps(tmp_path):
    path = _journal(tmp_path)
    _reseal(path, 5, lambda r: r.update(ts=5))
    with pytest.raises(JournalDamagedError, match=r"journal.jsonl:5: .*not a journal record"):
        read_last(path)
    info = jobs.job_info(open_store(tmp_path / "home"), "t-abc123")
    assert info.state == "damaged"


def test_a_snapshot_moved_to_the_end_is_damage_not_a_restart(tmp_path):
    path = tmp_path / "j"
    j = Journal.create(path, STARTED, fsync=False)
    j.append("snapshot", {"step": 0, "state": {}})
    for s in range(1, 6):
        j.append("effect.done", {"step": s, "res": {}})
    j.close()
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:1] + lines[2:] + lines[1:2]))
    with pytest.raises(JournalDamagedError) as e:
        Journal.open(path, fsync=False)
    # Counted, not derived from the moved snapshot's seq (which would say line 2).
    assert e.value.line == 7, str(e.value)


def test_a_record_lost_before_the_last_snapshot_is_named_at_its_true_line(tmp_path):
    path = tmp_path / "j"
    j = Journal.create(path, STARTED, fsync=False)
    for s in range(1, 4):
        j.append("effect.done", {"step": s, "res": {}})
    j.append("snapshot", {"step": 4, "state": {}})
    j.append("effect.done", {"step": 5, "res": {}})
    j.close()
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:3] + lines[4:]))  # record 3, just before it, lost
    with pytest.raises(JournalDamagedError) as e:
        Journal.open(path, fsync=False)
    assert e.value.line == 4 and "record before this snapshot" in str(e.value)


def test_a_content_file_that_is_a_directory_is_a_clean_error(tmp_path):
    home = tmp_path / "home"
    lease = open_store(home).create("t-abc123", STARTED, fsync=False)
    lease.append("effect.done", {"step": 1, "res": {"out": "x" * 70_000}})
    lease.release()
    (content,) = (home / "jobs" / "t-abc123" / "content").iterdir()
    content.unlink()
    content.mkdir()
    with pytest.raises(JournalError, match="is not a regular file"):
        list(open_store(home).records("t-abc123"))


@pytest.mark.parametrize("what", ["fifo", "dir", "empty", "missing"])
def test_fm_ps_lists_an_unreadable_job_as_damaged(tmp_path, what):
    path = _journal(tmp_path)
    job_dir = path.parent
    if what == "fifo":
        (job_dir / "lock").unlink()
        os.mkfifo(job_dir / "lock")
    elif what == "dir":
        path.unlink()
        path.mkdir()
    elif what == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()
    open_store(tmp_path / "home").create("u-abc123", STARTED, fsync=False).release()
    info, other = jobs.list_jobs(open_store(tmp_path / "home"), all_jobs=True)
    # An empty or missing journal is what a crash during the job's creation leaves.
    assert info.state == ("orphaned" if what in ("empty", "missing") else "damaged")
    assert (other.id, other.state) == ("u-abc123", "orphaned")  # the listing goes on
    if what == "empty":
        with pytest.raises(JournalError, match="no complete job.started"):
            list(read_records(path))


def test_the_fixture_journals_pass_the_schema(bases):
    for base in bases[0].values():
        for i, raw in enumerate(base.journal.splitlines()):
            codec.decode(raw, i, base.name, i + 1)


# ---- docs/reliability.md quotes the last full run -------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
NUMBERS = ROOT / "docs" / "reliability-damage.json"
FIGURES = {"damage cases": "cases", "commands run": "commands", "clean errors": "clean_errors",
           "correct results": "correct", "failures": "failures",
           "damage sweep wall time": "wall_seconds", "damage sweep commit": "commit"}


def _section_rows() -> dict:
    text = DOC.read_text()
    section = text[text.index("## The damage sweep"):]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and not set(cells[-1]) <= set("-: "):
            rows[cells[0]] = cells[1:]
    return rows


def _value(text: str):
    m = re.fullmatch(r"(\d+) min (\d+) s", text)
    if m:
        return int(m[1]) * 60 + int(m[2])
    return int(text.replace(",", "")) if re.fullmatch(r"[\d,]+", text) else text


def test_the_reliability_doc_quotes_the_last_full_damage_run():
    numbers = json.loads(NUMBERS.read_text())
    assert numbers["mode"] == "full" and numbers["cases"] == numbers["cases_defined"]
    assert numbers["clean_errors"] + numbers["correct"] + numbers["failures"] == numbers["cases"]
    rows = _section_rows()
    for figure, key in FIGURES.items():
        assert figure in rows, f"docs/reliability.md has no row `{figure}`"
        assert _value(rows[figure][0]) == numbers[key], (figure, rows[figure], numbers[key])
    for kind, counts in numbers["by_kind"].items():
        assert kind in rows, f"docs/reliability.md has no row for `{kind}`"
        shown = [_value(c) for c in rows[kind]]
        assert shown == [sum(counts.values()), counts.get("error", 0), counts.get("correct", 0),
                         counts.get("failure", 0)], (kind, rows[kind], counts)
