"""The damage sweep (issue 17 item 5): damage the state directory of a real job that finished, of
one that was SIGKILLed mid-run and of one that is running (its lease held by another process),
then run what a user would (`fm log`, `fm log --json`, `fm ps`, `fm ps -a`, `fm resume`,
`fm rm`, each under `timeout -s KILL`) and judge every command against the undamaged job.

Verdicts of a case (docs/reliability.md, "The damage sweep"):

* `error`: every command either behaved as on the undamaged job or ended in a clean error
  (status 1 or 2, one line `fm: ...` naming the job's file, and for a damaged record its line);
* `correct`: nothing was reported, and nothing had to be: a torn tail (the journal cut at or
  inside its last record, as a crash leaves it) was handled as recovery describes, so `fm log`
  shows the history up to the cut and `fm resume` completes the job with the reference output;
* `failure`: exit 70, an internal error, a traceback, a hang, a message that is not one line,
  a wrong line number, a job listed in a wrong state, or a damaged history or result accepted
  without a word (compared with the undamaged run).

bench/damage.py runs every case (the full mode); tests/journal/test_damage_sweep.py a sample.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from flowmetal.journal import schema
from flowmetal.journal.codec import seal

ROOT = Path(__file__).resolve().parents[2]
FM = [sys.executable, "-m", "flowmetal"]
TIMEOUT = 30  # seconds one command may take before it counts as hung

SCRIPT = """\
greet() { echo "hello $1"; }
x=$(printf '%s\\n' b a | sort)
for i in 1 2 3; do /bin/echo "row $i"; done
big=$(seq 15000)
echo "big: ${#big}"
n=0
while [ $n -lt 70 ]; do /bin/true; n=$((n + 1)); done
greet "$x"
echo "done $n"
"""
RUNNING_TAIL = "sleep 600\n"  # the running job sleeps here while its journal is damaged

ERROR, CORRECT, FAILURE = "error", "correct", "failure"
BASES = ("finished", "killed", "running")


@dataclass
class Base:
    """An undamaged job: its directory's files and what the CLI says about it."""
    name: str
    job_id: str
    journal: bytes
    content: dict[str, bytes]      # content/<sha256> files
    json_lines: list[str]          # `fm log --json`, one record a line
    state: str                     # its `fm ps -a` state
    out_before: str = ""           # `fm log --output` (what it printed so far)


@dataclass
class Case:
    """One way to damage a base job. `expect`: "damage" (must be reported where read),
    "torn" (a crash's torn tail: handled silently), "same" (history unchanged: a bad lock,
    a garbage inbox). `line`: the journal line the damage must be reported at, if known."""
    name: str
    base: str
    kind: str
    expect: str
    apply: object                   # fn(job_dir: Path) -> None
    line: int | tuple | None = None  # the line (or lines) the damage may be reported at
    keep: int | None = None          # "torn": how many records remain


@dataclass
class Outcome:
    case: str
    base: str
    kind: str
    verdict: str
    detail: str = ""
    commands: dict = field(default_factory=dict)  # command -> "ok" / "error" / "failure: ..."


# ---- the base jobs ------------------------------------------------------------------------

def env(home: Path) -> dict:
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LC_ALL": "C.UTF-8", "TZ": "UTC",
            "FM_HOME": str(home), "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1",
            "FM_HAND_OVER": "0"}


def fm(args: list[str], home: Path, cwd: Path, extra: dict | None = None) -> tuple:
    """(status or "hang", stdout, stderr) of one fm command under timeout -s KILL."""
    t0 = time.monotonic()
    try:
        r = subprocess.run(["timeout", "-s", "KILL", str(TIMEOUT), *FM, *args], cwd=cwd,
                           env={**env(home), **(extra or {})}, capture_output=True,
                           timeout=TIMEOUT + 10, start_new_session=True)
    except subprocess.TimeoutExpired:
        return "hang", "", ""
    out, err = (r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace"))
    hung = time.monotonic() - t0 >= TIMEOUT
    return ("hang" if hung else -9 if r.returncode == 137 else r.returncode), out, err


def _job_files(home: Path) -> tuple[str, Path]:
    (job_id,) = [n for n in os.listdir(home / "jobs") if not n.startswith(".")]
    return job_id, home / "jobs" / job_id


def _base(name: str, home: Path, cwd: Path) -> Base:
    job_id, job_dir = _job_files(home)
    content = {}
    if (job_dir / "content").is_dir():
        content = {n: (job_dir / "content" / n).read_bytes()
                   for n in os.listdir(job_dir / "content")}
    _, js, _ = fm(["log", "--json", job_id], home, cwd)
    _, out, _ = fm(["log", "--output", job_id], home, cwd)
    _, ps, _ = fm(["ps", "-a", "--json"], home, cwd)
    return Base(name, job_id, (job_dir / "journal.jsonl").read_bytes(), content,
                js.splitlines(), json.loads(ps)["state"], out)


def make_bases(root: Path) -> tuple[dict[str, Base], dict]:
    """The three base jobs (finished, killed mid-run, running) and the reference run's
    {"status", "out"}. The script runs in `root/cwd` (a resume goes on there)."""
    cwd = root / "cwd"
    cwd.mkdir(parents=True)
    (cwd / "s.fm").write_text(SCRIPT)
    (cwd / "r.fm").write_text(SCRIPT + RUNNING_TAIL)
    bases = {}
    status, out, err = fm(["s.fm"], root / "finished", cwd)
    assert status == 0 and not err, (status, err)
    ref = {"status": status, "out": out}
    bases["finished"] = _base("finished", root / "finished", cwd)
    n = len(bases["finished"].json_lines)
    kill_at = n * 3 // 4  # after the second snapshot, amid the loop of /bin/true
    status, _, _ = fm(["s.fm"], root / "killed", cwd, {"FM_CRASH_AT": str(kill_at)})
    assert status == -9, status
    bases["killed"] = _base("killed", root / "killed", cwd)
    bases["running"] = _running_base(root / "running", cwd)
    return bases, ref


def _running_base(home: Path, cwd: Path) -> Base:
    """A copy of the files of a job caught sleeping, its runner SIGKILLed afterwards."""
    p = subprocess.Popen([*FM, "r.fm"], cwd=cwd, env=env(home), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "the running job never went to sleep"
            _, ps, _ = fm(["ps", "--json"], home, cwd)
            if '"state":"sleeping"' in ps:
                break
            time.sleep(0.2)
        base = _base("running", home, cwd)
        base.state = "sleeping"
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    return base


# ---- installing and damaging a copy -------------------------------------------------------

def install(base: Base, home: Path) -> Path:
    """A fresh state directory holding a copy of the base job; its job directory."""
    job_dir = home / "jobs" / base.job_id
    job_dir.mkdir(parents=True, mode=0o700)
    for d in (home, home / "jobs"):
        os.chmod(d, 0o700)
    (job_dir / "journal.jsonl").write_bytes(base.journal)
    (job_dir / "lock").write_bytes(b"")
    if base.content:
        (job_dir / "content").mkdir(mode=0o700)
        for name, data in base.content.items():
            (job_dir / "content" / name).write_bytes(data)
    return job_dir


def _lines(job_dir: Path) -> list[bytes]:
    return (job_dir / "journal.jsonl").read_bytes().splitlines(keepends=True)


def _write_lines(job_dir: Path, lines: list[bytes]) -> None:
    (job_dir / "journal.jsonl").write_bytes(b"".join(lines))


def _edit_lines(fn):
    """A damage applying fn(list of lines) -> list of lines to the journal."""
    def apply(job_dir: Path) -> None:
        _write_lines(job_dir, fn(_lines(job_dir)))
    return apply


BOMB = "\x00BOMB\x00"
BOMB_DEPTH = 100_000


def reseal_with(rec: dict) -> bytes:
    """The line of `rec` with a fresh checksum; a BOMB string becomes a nested array that is
    BOMB_DEPTH deep (which no JSON encoder writes)."""
    body = json.dumps(rec, separators=(",", ":"), ensure_ascii=True).encode()
    bomb = json.dumps(BOMB).encode()
    body = body.replace(bomb, b"[" * BOMB_DEPTH + b"]" * BOMB_DEPTH)
    return seal(body) + b"\n"


def _set_path(rec: dict, path: tuple, value) -> dict:
    """A copy of rec with the value at `path` replaced (DELETE: removed)."""
    rec = json.loads(json.dumps(rec))
    target = rec
    for k in path[:-1]:
        target = target[k]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return rec


DELETE = object()
WRONG = {"str": "x", "list": [], "dict": {}, "null": None, "huge": 10 ** 40, "neg": -1,
         "bool": True, "float": 1.5, "deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
         "bomb": BOMB, "missing": DELETE}
"""Wrong values put in every field (resealed: only the semantic check can catch them)."""


def _fields(rec: dict) -> list[tuple]:
    """Paths of the fields worth damaging in a record: its own fields and one level into
    `req`, `res`, `state`, `pending[0]`, `error`."""
    paths = [(k,) for k in rec if k not in ("seq", "ts", "kind", "crc")]
    for k in ("req", "res", "state", "error", "env", "settings"):
        if isinstance(rec.get(k), dict):
            paths += [(k, sub) for sub in rec[k]]
    if isinstance(rec.get("pending"), list) and rec["pending"]:
        paths += [("pending", 0, sub) for sub in rec["pending"][0]]
    if isinstance(rec.get("state"), dict) and isinstance(rec["state"].get("branches"), dict):
        br = rec["state"]["branches"].get("0")
        if isinstance(br, dict):
            paths += [("state", "branches", "0", sub) for sub in br]
    return paths


def _get_path(rec: dict, path: tuple):
    for k in path:
        rec = rec[k]
    return rec


def _same_type(old, new) -> bool:
    """Whether a wrong value is in fact of the field's own JSON type (and in range)."""
    if new is DELETE or new == BOMB:
        return False
    if type(new) is int and abs(new) >= 2 ** 63:
        return False
    return type(old) is type(new)


def _reseal_case(line_no: int, path: tuple, value):
    def fn(lines: list[bytes]) -> list[bytes]:
        rec = json.loads(lines[line_no - 1])
        lines[line_no - 1] = reseal_with(_set_path(rec, path, value))
        return lines
    return fn


def _header_case(line_no: int, key: str, value):
    """Change a header field (seq, ts, kind) and reseal."""
    def fn(lines: list[bytes]) -> list[bytes]:
        rec = json.loads(lines[line_no - 1])
        rec[key] = value
        lines[line_no - 1] = reseal_with(rec)
        return lines
    return fn


def cases(bases: dict[str, Base]) -> list[Case]:
    """Every case of the full sweep."""
    out = []
    for name, base in bases.items():
        out += _journal_cases(name, base)
        out += _file_cases(name, base)
    return out


def _journal_cases(name: str, base: Base) -> list[Case]:
    lines = base.journal.splitlines(keepends=True)
    n = len(lines)
    recs = [json.loads(x) for x in lines]
    out = []
    starts = [0]
    for x in lines:
        starts.append(starts[-1] + len(x))
    # Truncated at every record boundary and inside records (torn tails), and inside line 1.
    for k in _some(range(1, n)):
        out.append(Case(f"{name}: cut after record {k - 1}", name, "truncated at a boundary",
                        "torn", _edit_lines(lambda ls, k=k: ls[:k]), keep=k))
        for frac in (1 + k % 2,):
            cut = starts[k] + max(1, len(lines[k]) * frac // 3)
            out.append(Case(f"{name}: cut inside record {k} at byte {cut}", name,
                            "truncated inside a record", "torn",
                            _truncate(cut), keep=k))
    out.append(Case(f"{name}: cut inside record 0", name, "truncated inside a record", "damage",
                    _truncate(len(lines[0]) // 2)))
    out.append(Case(f"{name}: empty journal", name, "empty journal", "damage", _truncate(0)))
    for k in _some(range(n)):
        if k < n - 1:
            out.append(Case(f"{name}: record {k} deleted", name, "record deleted", "damage",
                            _edit_lines(lambda ls, k=k: ls[:k] + ls[k + 1:]), line=k + 1))
            out.append(Case(f"{name}: records {k} and {k + 1} swapped", name, "records swapped",
                            "damage", _edit_lines(
                                lambda ls, k=k: ls[:k] + [ls[k + 1], ls[k]] + ls[k + 2:]),
                            # a resume that reads from a snapshot right after the pair names
                            # the snapshot's line: the record before it is out of order
                            line=(k + 1, k + 2, k + 3)))
        out.append(Case(f"{name}: record {k} repeated", name, "record duplicated", "damage",
                        _edit_lines(lambda ls, k=k: ls[:k + 1] + [ls[k]] + ls[k + 1:]),
                        line=k + 2))
    # A record moved to the end (reordered, its seq kept), and the last one moved to the start.
    for k in range(1, n - 1, 4 * STRIDE):
        out.append(Case(f"{name}: record {k} moved to the end", name, "records reordered",
                        "damage", _edit_lines(lambda ls, k=k: ls[:k] + ls[k + 1:] + [ls[k]]),
                        line=(k + 1, n)))
    # Wrong JSON types, resealed: in every field of one record of each kind (the first and
    # the last of its kind), headers included.
    chosen = {}
    for i, rec in enumerate(recs):
        chosen.setdefault(rec["kind"], []).append(i)
    for kind, idxs in sorted(chosen.items()):
        for i in sorted({idxs[-1]}):
            for j, path in enumerate(_fields(recs[i])):
                # Four wrong values in each of a record's own fields, one in each field
                # deeper, taking the values in turn.
                values = list(WRONG.items())
                values = [values[(j + d) % len(values)]
                          for d in ((0, 3, 6, 9) if len(path) == 1 else (0,))]
                for wname, value in values:
                    if _same_type(_get_path(recs[i], path), value):
                        continue  # a forgery of the right type, not damage a check can see
                    if value is DELETE and not schema.required(kind, path):
                        continue  # optional: older journals lack it (docs/journal.md)
                    out.append(Case(f"{name}: record {i} ({kind}) {'.'.join(map(str, path))} "
                                    f"= {wname}", name, "wrong JSON type (resealed)", "damage",
                                    _edit_lines(_reseal_case(i + 1, path, value)), line=i + 1))
            for key, value in (("seq", "x"), ("seq", i + 1000), ("seq", 10 ** 40), ("ts", 5),
                               ("kind", []), ("kind", 5)):
                out.append(Case(f"{name}: record {i} ({kind}) header {key} = {value!r}", name,
                                "wrong JSON type (resealed)", "damage",
                                _edit_lines(_header_case(i + 1, key, value)), line=i + 1))
    # Whole-line garbage where a record was: JSON, but not a record.
    for i in sorted({0, 1, n // 2, n - 1}):
        for garbage in ([1, 2], "text", None, 7, {}):
            out.append(Case(f"{name}: record {i} replaced by {garbage!r}", name,
                            "not a record", "damage", _edit_lines(
                                lambda ls, i=i, g=garbage: ls[:i] + [json.dumps(g).encode()
                                                                     + b"\n"] + ls[i + 1:]),
                            line=i + 1))
    return out


STRIDE = 8


def _some(ks: range) -> list[int]:
    """Every STRIDE-th of the record numbers `ks`, and the first and last three."""
    ks = list(ks)
    return sorted(set(ks[::STRIDE]) | set(ks[:3]) | set(ks[-3:]))


def _truncate(size: int):
    def apply(job_dir: Path) -> None:
        os.truncate(job_dir / "journal.jsonl", size)
    return apply


def _file_cases(name: str, base: Base) -> list[Case]:
    out = []
    lock_garbage = {"garbage text": b"not a pid\n", "binary": bytes(range(256)) * 4,
                    "huge pid": b"99999999999999999999999999\n", "negative pid": b"-5\n",
                    "pid 1": b"1\n", "empty": b"", "a long line": b"7" * 100_000}
    for what, data in lock_garbage.items():
        out.append(Case(f"{name}: lock holds {what}", name, "garbage lock file", "same",
                        _write("lock", data)))
    for what, fn in (("a directory", _replace_dir("lock")), ("a FIFO", _replace_fifo("lock")),
                     ("a symlink to /dev/zero", _replace_link("lock", "/dev/zero")),
                     ("missing", _remove("lock"))):
        if what == "missing" and name == "running":
            continue  # its runner's lock is on a file no one else can find: not detectable
        expect = "same" if what == "missing" else "lockbad"
        out.append(Case(f"{name}: lock is {what}", name, "wrong-typed lock file", expect, fn))
    for what, fn in (("a directory", _replace_dir("journal.jsonl")),
                     ("a FIFO", _replace_fifo("journal.jsonl")),
                     ("a symlink to /dev/zero", _replace_link("journal.jsonl", "/dev/zero")),
                     ("missing", _remove("journal.jsonl"))):
        out.append(Case(f"{name}: journal is {what}", name, "journal not a file", "damage", fn))
    for sha in sorted(base.content):
        rel = f"content/{sha}"
        for what, fn in (("missing", _remove(rel)), ("empty", _write(rel, b"")),
                         ("corrupt", _flip(rel)), ("a directory", _replace_dir(rel)),
                         ("a FIFO", _replace_fifo(rel)),
                         ("a symlink", _replace_link(rel, "/etc/hostname"))):
            out.append(Case(f"{name}: content file {sha[:8]} {what}", name,
                            "content file damaged", "content", fn))
    out.append(Case(f"{name}: content directory missing", name, "content file damaged",
                    "content" if base.content else "same", _remove("content")))
    inbox_garbage = {"garbage": b"\x00\xffnot json", "a list": b"[1,2]",
                     "no key": b'{"data":{}}', "an empty line": b""}
    for what, data in inbox_garbage.items():
        out.append(Case(f"{name}: inbox file holds {what}", name, "garbage inbox file",
                        "inbox", _write("inbox.jsonl", data + b"\n")))
    out.append(Case(f"{name}: inbox file ends in a torn line", name, "garbage inbox file",
                    "same", _write("inbox.jsonl", b'{"key": "k", "da')))
    out.append(Case(f"{name}: wake file holds garbage", name, "garbage wake file", "same",
                    _write("../../wake/" + base.job_id, b"soon\x00")))
    return out


def _write(rel: str, data: bytes):
    def apply(job_dir: Path) -> None:
        p = job_dir / rel
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if p.is_symlink() or p.exists():
            p.unlink()
        p.write_bytes(data)
    return apply


def _flip(rel: str):
    def apply(job_dir: Path) -> None:
        data = bytearray((job_dir / rel).read_bytes())
        data[len(data) // 2] ^= 1
        (job_dir / rel).write_bytes(bytes(data))
    return apply


def _remove(rel: str):
    def apply(job_dir: Path) -> None:
        p = job_dir / rel
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    return apply


def _replace_dir(rel: str):
    def apply(job_dir: Path) -> None:
        (job_dir / rel).unlink()
        (job_dir / rel).mkdir(mode=0o700)
    return apply


def _replace_fifo(rel: str):
    def apply(job_dir: Path) -> None:
        (job_dir / rel).unlink()
        os.mkfifo(job_dir / rel, 0o600)
    return apply


def _replace_link(rel: str, target: str):
    def apply(job_dir: Path) -> None:
        (job_dir / rel).unlink()
        os.symlink(target, job_dir / rel)
    return apply


# ---- playing and judging a case -----------------------------------------------------------

COMMANDS = ("log", "log --json", "ps", "ps -a", "resume", "rm")


def play(case: Case, base: Base, ref: dict, work: Path, cwd: Path) -> Outcome:
    """Install a copy of the base, damage it, run every command and judge."""
    home = work / "home"
    job_dir = install(base, home)
    case.apply(job_dir)
    holder = None
    if case.base == "running":
        holder = _hold(job_dir)
    try:
        results = {c: fm(c.split() + ([] if c.startswith("ps") else [base.job_id]), home, cwd)
                   for c in COMMANDS}
    finally:
        if holder is not None:
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait()
    judged = {c: _judge(c, r, case, base, ref, job_dir, results) for c, r in results.items()}
    bad = {c: v for c, v in judged.items() if v.startswith("failure")}
    if bad:
        c, v = next(iter(bad.items()))
        return Outcome(case.name, case.base, case.kind, FAILURE, f"fm {c}: {v}", judged)
    verdict = ERROR if any(v == "error" for v in judged.values()) else CORRECT
    shutil.rmtree(work, ignore_errors=True)
    return Outcome(case.name, case.base, case.kind, verdict, "", judged)


def _hold(job_dir: Path) -> subprocess.Popen:
    """Another process holding the job's lease (its flock), as a live runner would."""
    lock = job_dir / "lock"
    if lock.is_file() and not lock.is_symlink():
        p = subprocess.Popen(["flock", "-x", "-n", str(lock), "sleep", "600"],
                             start_new_session=True)
    else:  # the lock is damaged: still some process runs the job
        p = subprocess.Popen(["sleep", "600"], start_new_session=True)
    time.sleep(0.05)
    return p


def _clean_error(status, err: str) -> str | None:
    """Why a failed command's status and stderr are not a clean error; None when they are."""
    if status == "hang":
        return "hang"
    if status == 70 or "internal error" in err or "Traceback" in err:
        return "internal error: " + err.strip()[:300]
    if status not in (1, 2):
        return f"status {status}: {err.strip()[:200]}"
    if err.count("\n") != 1 or not err.startswith("fm: "):
        return f"not a one-line fm: message: {err[:300]!r}"
    return None


def _judge(cmd: str, result, case: Case, base: Base, ref: dict, job_dir: Path,
           results: dict) -> str:
    status, out, err = result
    if status == "hang":
        return "failure: hang"
    if status == 70 or "internal error" in err or "Traceback" in err:
        return "failure: internal error: " + err.strip()[:300]
    judge = {"log": _judge_log, "log --json": _judge_log, "ps": _judge_ps, "ps -a": _judge_ps,
             "resume": _judge_resume, "rm": _judge_rm}[cmd]
    return judge(cmd, status, out, err, case, base, ref)


def _error_ok(status, err: str, case: Case, base: Base) -> str:
    """"error" when this is a clean error naming the job or its file (and the line, when
    the damage is one of the journal's records); else the failure."""
    why = _clean_error(status, err)
    if why is not None:
        return "failure: " + why
    if base.job_id not in err:
        return f"failure: the message names neither the job nor its file: {err.strip()}"
    m = re.search(r"journal\.jsonl:(\d+):", err)
    lines = case.line if isinstance(case.line, tuple) else (case.line,)
    if case.line is not None and m is not None and int(m.group(1)) not in lines:
        return f"failure: line {m.group(1)} named, the damage is on line {case.line}: " \
               f"{err.strip()}"
    return "error"


def _judge_log(cmd, status, out, err, case, base, ref) -> str:
    if case.expect in ("same", "inbox", "lockbad") and status == 0:
        if cmd == "log --json" and out.splitlines() != base.json_lines:
            return "failure: a different history"
        return "ok"
    if case.expect == "torn":
        if status != 0:
            return f"failure: a torn tail reported: {err.strip()}"
        if cmd == "log --json" and out.splitlines() != base.json_lines[:case.keep]:
            return "failure: not the history up to the cut"
        return "ok"
    if status == 0:
        return "failure: damage accepted"
    if case.line is not None and "journal.jsonl:" not in err and case.kind != "wrong-typed":
        return f"failure: the damaged line is not named: {err.strip()}"
    return _error_ok(status, err, case, base)


def _ps_state(out: str, job_id: str) -> str | None:
    for row in out.splitlines()[1:]:
        cells = row.split()
        if cells and cells[0] == job_id:
            return cells[2]
    return None


def _judge_ps(cmd, status, out, err, case, base, ref) -> str:
    if status != 0:
        return f"failure: fm {cmd} failed: {err.strip()[:300]}"
    state = _ps_state(out, base.job_id)
    finished = base.state in ("done", "failed", "cancelled")
    allowed = {base.state}
    if case.expect in ("damage", "content", "lockbad"):
        allowed.add("damaged")
    if case.kind == "empty journal" or case.name.endswith(("journal is missing",
                                                            "cut inside record 0")):
        # A creation cut short by a crash looks the same (or one still going on).
        allowed = {"running"} if case.base == "running" else {"orphaned"}
    if case.expect == "torn":
        allowed = {"sleeping", "running"} if case.base == "running" else {"orphaned"}
        if case.keep == len(base.json_lines):
            allowed.add(base.state)
    if cmd == "ps" and state is None and finished and base.state in allowed:
        return "ok"  # a finished job is listed by ps -a only
    if state not in allowed:
        return f"failure: listed as {state}, expected one of {sorted(allowed)}"
    return "ok"


def _judge_resume(cmd, status, out, err, case, base, ref) -> str:
    if case.base == "running":
        if status != 0 and "is being run by" in err:
            return "error" if _clean_error(status, err) is None else "failure: " + err
        return _error_ok(status, err, case, base) if status else \
            "failure: resumed a job another process holds"
    if status != 0:
        if "already finished" in err and base.name == "finished" and case.expect != "torn":
            return "error" if _clean_error(status, err) is None else "failure: " + err
        if case.expect in ("torn", "same", "inbox") and base.name == "killed":
            if case.expect == "inbox" and "delivery" in err:
                return _error_ok(status, err, case, base)
            return f"failure: could not resume: {err.strip()[:300]}"
        if case.expect == "torn":
            return f"failure: could not resume a torn journal: {err.strip()[:300]}"
        return _error_ok(status, err, case, base)
    # It ran: the result must be the reference's.
    if base.name == "finished" and case.expect != "torn":
        return "failure: resumed a finished job"
    before = _output_before(case, base)
    if before is None:
        return "failure: resumed, and what it printed before cannot be checked"
    if before + out != ref["out"] or status != ref["status"]:
        return f"failure: a wrong result: status {status}, output {out[-200:]!r}"
    return "ok"


def _output_before(case: Case, base: Base) -> str | None:
    """What the job printed before the resume: the output of the records kept."""
    recs = base.json_lines if case.keep is None else base.json_lines[:case.keep]
    text = []
    for line in recs:
        rec = json.loads(line)
        if rec.get("kind") == "effect.done" and isinstance(rec.get("res"), dict):
            text.append(rec["res"].get("out") or "")
    return "".join(text)


def _judge_rm(cmd, status, out, err, case, base, ref) -> str:
    if case.base == "running":
        if status == 0:
            return "failure: removed a running job"
        return _error_ok(status, err, case, base) if "is running" not in err else "error"
    if status == 0 or "has not finished" in err:
        return "ok" if status == 0 else ("error" if _clean_error(status, err) is None
                                         else "failure: " + err)
    return _error_ok(status, err, case, base)


# ---- the sweep ----------------------------------------------------------------------------

def sweep(root: Path, select=None, workers: int = 2, progress=None) -> dict:
    """Make the bases, play every case `select(cases)` keeps, return the figures."""
    t0 = time.monotonic()
    bases, ref = make_bases(root / "bases")
    all_cases = cases(bases)
    chosen = select(all_cases) if select else all_cases
    cwd = root / "bases" / "cwd"

    def one(item):
        i, case = item
        return play(case, bases[case.base], ref, root / f"case-{i}", cwd)

    outcomes = []
    with ThreadPoolExecutor(workers) as pool:
        for o in pool.map(one, enumerate(chosen)):
            outcomes.append(o)
            if progress:
                progress(o, len(outcomes), len(chosen))
    return figures(outcomes, bases, len(all_cases), time.monotonic() - t0)


def figures(outcomes: list[Outcome], bases: dict, total: int, seconds: float) -> dict:
    verdicts = Counter(o.verdict for o in outcomes)
    by_kind: dict = {}
    for o in outcomes:
        by_kind.setdefault(o.kind, Counter())[o.verdict] += 1
    return {
        "cases": len(outcomes), "cases_defined": total,
        "commands": len(outcomes) * len(COMMANDS),
        "clean_errors": verdicts[ERROR], "correct": verdicts[CORRECT],
        "failures": verdicts[FAILURE],
        "by_kind": {k: dict(sorted(v.items())) for k, v in sorted(by_kind.items())},
        "by_base": {b: sum(1 for o in outcomes if o.base == b) for b in BASES},
        "journal_records": {b: len(bases[b].json_lines) for b in BASES},
        "wall_seconds": round(seconds),
        "failed": [{"case": o.case, "detail": o.detail} for o in outcomes
                   if o.verdict == FAILURE],
    }


def sample(all_cases: list[Case], seed: int) -> list[Case]:
    """One case of each kind of damage, on a base drawn at random (the quick mode)."""
    rng = random.Random(seed)
    kinds: dict = {}
    for c in all_cases:
        kinds.setdefault(c.kind, []).append(c)
    return [rng.choice(g) for _, g in sorted(kinds.items())]


def sample_n(all_cases: list[Case], n: int, seed: int) -> list[Case]:
    """n cases drawn at random, one of each kind first."""
    chosen = sample(all_cases, seed)
    rest = [c for c in all_cases if c not in chosen]
    return chosen + random.Random(seed).sample(rest, max(0, min(len(rest), n - len(chosen))))
