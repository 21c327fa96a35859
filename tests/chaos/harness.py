"""The chaos harness (issue 13 item 4): run a script once uncrashed for reference, then SIGKILL
its runner after a journal write, before one, as a power cut, or at a random moment, resume it
(perhaps killed again), and judge the outcome against the reference.

What is compared (docs/reliability.md explains the verdicts):

* the ledger: every external command of the scripts is `eff TAG CMD...`, which appends
  `$FM_STEP_KEY TAG` to a ledger file before running CMD. A completed effect must appear once; an
  effect a crash cut off may appear again, with the same step key (G2); a `once` never twice.
* stdout: the first run's stdout followed by every resume's equals the reference, except that
  a resume may repeat the end of what an interrupted effect printed (G2), and `fm log --output`;
* the files the script leaves in its working directory, and its final status.
"""
from __future__ import annotations

import difflib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"
FM = [sys.executable, "-m", "flowmetal"]

EFF = """#!/bin/sh
# eff TAG [CMD ARG...]: note "$FM_STEP_KEY TAG" in the chaos ledger, then run CMD.
printf '%s %s\\n' "$FM_STEP_KEY" "$1" >> "$CHAOS_LEDGER"
shift
[ $# -eq 0 ] || exec "$@"
"""

RUN_TIMEOUT = 120.0
"""Seconds one fm process may take before the scenario counts as hung (an error)."""

ONCE_STATUS = "status.once"
"""The file where once.fm notes `TAG STATUS` for every `once` (0, or 125 when interrupted)."""

# Verdicts, worst first (a scenario gets the first that applies).
ERROR = "error"
DUPLICATE = "duplicate"
OWN_WRITE = "own-write duplicate"
LOST = "lost output"
DIVERGENT = "divergent"
OK = "ok"
VERDICTS = (OK, DUPLICATE, OWN_WRITE, DIVERGENT, LOST, ERROR)

KINDS = ("after", "before", "power", "power-before", "random")
"""How a run is crashed: SIGKILL right after journal record N (FM_CRASH_AT), right before it
(FM_CRASH_BEFORE: the effect performed, its result not journaled), either one as a power cut
(FM_CRASH_POWER=1: the journal first loses what was not fsync'd), or after a random delay."""


@dataclass(frozen=True, slots=True)
class Crash:
    """One planned crash of one fm process."""

    kind: str
    """One of KINDS."""

    at: int = 0
    """For the record kinds: the record's seq; in a resume, counted from the first record that
    resume writes (1 = its first)."""

    delay: float = 0.0
    """For `random`: seconds after the process's first journal write."""

    def label(self, resumed: bool) -> str:
        if self.kind == "random":
            return f"random@{self.delay:.3f}s"
        return f"{self.kind}{'+' if resumed else '@'}{self.at}"

    def env(self, first_seq: int) -> dict:
        """The test hooks for a process whose first record will have seq `first_seq`."""
        if self.kind == "random":
            return {}
        seq = self.at + (first_seq - 1 if first_seq else 0)
        hook = "FM_CRASH_BEFORE" if self.kind.endswith("before") else "FM_CRASH_AT"
        env = {hook: str(seq)}
        if self.kind.startswith("power"):
            env["FM_CRASH_POWER"] = "1"
        return env


@dataclass(frozen=True, slots=True)
class Scenario:
    """A script and the crashes of its successive runs (the last run after them is clean)."""

    script: str
    crashes: tuple

    @property
    def label(self) -> str:
        parts = [c.label(i > 0) for i, c in enumerate(self.crashes)]
        return f"{self.script}: {', then '.join(parts)}"

    @property
    def kind(self) -> str:
        return self.crashes[0].kind if len(self.crashes) == 1 else "double"


@dataclass(slots=True)
class Reference:
    """What an uncrashed run of a script did."""

    script: str
    stdout: str
    files: dict
    ledger: list
    """(tag, step key) pairs, each tag once."""
    status: int
    records: int
    seconds: float
    """From the first journal write to the end."""
    once_tags: list = field(default_factory=list)
    journal: list = field(default_factory=list)
    """Per record: (kind, the op of its effect or None, whether that request is a `once`)."""


@dataclass(slots=True)
class Outcome:
    """The verdict on one scenario."""

    scenario: Scenario
    verdict: str
    detail: str
    deaths: int
    """fm processes that died of SIGKILL."""
    reruns: bool
    """Whether an interrupted effect ran again (allowed by G2)."""
    seconds: float


def parse_scenario(label: str) -> Scenario:
    """The scenario a label names (`files: power-before@21, then random@0.120s`)."""
    script, _, rest = label.partition(":")
    crashes = []
    for part in rest.split(", then "):
        part = part.strip()
        if part.startswith("random@"):
            crashes.append(Crash("random", delay=float(part[len("random@"):].rstrip("s"))))
            continue
        kind, _, at = part.replace("+", "@").partition("@")
        if kind not in KINDS:
            raise ValueError(f"unknown crash kind in {label!r}")
        crashes.append(Crash(kind, int(at)))
    return Scenario(script.strip(), tuple(crashes))


def script_names() -> list:
    return sorted(p.stem for p in SCRIPTS.glob("*.fm"))


class Workspace:
    """A scenario's directories: work/ (the job's cwd, holding the script), home/ (FM_HOME),
    bin/eff, the ledger, and the processes' stdout/stderr."""

    def __init__(self, root: Path, script: str):
        self.root = root
        self.script = script
        self.work = root / "work"
        self.home = root / "home"
        self.ledger = root / "ledger"
        self.bin = root / "bin"
        for d in (self.work, self.bin, root / "io"):
            d.mkdir(parents=True)
        shutil.copy(SCRIPTS / f"{script}.fm", self.work / f"{script}.fm")
        eff = self.bin / "eff"
        eff.write_text(EFF)
        eff.chmod(0o755)
        self.ledger.touch()
        self.runs = 0
        self.groups: list = []

    def env(self, extra: dict) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FM_", "CHAOS_"))}
        env.update(FM_HOME=str(self.home), FM_CONFIG=os.devnull, CHAOS_LEDGER=str(self.ledger),
                   PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
                   PYTHONPATH=str(ROOT), LC_ALL="C",
                   FM_HAND_OVER="0")    # the harness, not a daemon, decides who resumes
        env.update(extra)
        return env

    def job(self) -> str | None:
        jobs = self.home / "jobs"
        names = os.listdir(jobs) if jobs.is_dir() else []
        return names[0] if len(names) == 1 else None

    def journal_path(self) -> Path | None:
        job = self.job()
        return self.home / "jobs" / job / "journal.jsonl" if job else None

    def journal_size(self) -> int:
        path = self.journal_path()
        try:
            return path.stat().st_size if path else -1
        except FileNotFoundError:
            return -1

    def records(self) -> list:
        """The journal's complete records (a torn or unfinished last line is left out)."""
        path = self.journal_path()
        if path is None or not path.exists():
            return []
        out = []
        for line in path.read_bytes().split(b"\n")[:-1]:
            try:
                out.append(json.loads(line))
            except ValueError:
                break
        return out

    def fm(self, args: list, env: dict, kill_after: float | None = None,
           watch: bool = False) -> Run:
        """Run fm to its end, or SIGKILL it `kill_after` seconds after its first journal write
        (the wait starts once the journal has grown, so the job exists). With `watch`, also
        time it from that first write."""
        self.runs += 1
        io = self.root / "io" / str(self.runs)
        since = self.journal_size()
        hung = []

        def stop(pid):
            hung.append(pid)
            os.killpg(pid, signal.SIGKILL)

        with open(f"{io}.out", "wb") as out, open(f"{io}.err", "wb") as err:
            t0 = time.monotonic()
            p = subprocess.Popen(FM + args, cwd=self.work, env=self.env(env),
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 start_new_session=True)
            self.groups.append(p.pid)
            timer = threading.Timer(RUN_TIMEOUT, stop, (p.pid,))
            timer.start()
            try:
                if kill_after is not None or watch:
                    while p.poll() is None and self.journal_size() <= since and not hung:
                        time.sleep(0.002)
                    t0 = time.monotonic()
                if kill_after is not None:
                    time.sleep(kill_after)
                    if p.poll() is None:
                        p.send_signal(signal.SIGKILL)
                rc = p.wait()
            finally:
                timer.cancel()
        return Run(f"{io}.out", f"{io}.err", None if hung else rc, time.monotonic() - t0)

    def cleanup(self) -> None:
        """SIGKILL whatever the scenario's processes left running (orphans of killed runners)."""
        for pgid in self.groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def files(self) -> dict:
        """Every file the script left under work/ (but the script), as text."""
        out = {}
        for path in sorted(self.work.rglob("*")):
            rel = path.relative_to(self.work).as_posix()
            if path.is_file() and rel != f"{self.script}.fm":
                out[rel] = path.read_bytes().decode("utf-8", "surrogateescape")
        return out

    def ledger_entries(self) -> list:
        """(tag, step key) for each ledger line."""
        entries = []
        for line in self.ledger.read_text("utf-8", "surrogateescape").splitlines():
            key, _, tag = line.partition(" ")
            entries.append((tag, key))
        return entries


@dataclass(frozen=True, slots=True)
class Run:
    """One fm process: where its output went and its exit status (None: it hung)."""

    out: str
    err: str
    rc: int | None
    seconds: float
    """From its first journal write (or its start, if it wrote none) to its end."""

    @property
    def stdout(self) -> str:
        return Path(self.out).read_bytes().decode("utf-8", "surrogateescape")

    @property
    def stderr(self) -> str:
        return Path(self.err).read_bytes().decode("utf-8", "surrogateescape")

    @property
    def killed(self) -> bool:
        return self.rc == -signal.SIGKILL


def step_of(key: str) -> int:
    return int(key.rsplit("-", 1)[1])


def make_reference(script: str, root: Path) -> Reference:
    """Run `script` uncrashed in a fresh workspace under `root` and note what it did."""
    ws = Workspace(root, script)
    run = ws.fm([f"{script}.fm"], {}, watch=True)
    ws.cleanup()
    if run.rc is None or "Traceback" in run.stderr:
        raise RuntimeError(f"{script}: the reference run failed:\n{run.stderr}")
    recs = ws.records()
    ledger = ws.ledger_entries()
    tags = [t for t, _ in ledger]
    if len(tags) != len(set(tags)):
        raise RuntimeError(f"{script}: ledger tags are not unique: {sorted(tags)}")
    reqs = {r["step"]: r["req"] for r in recs if r["kind"] == "effect.started"}
    journal = []
    for r in recs:
        req = reqs.get(r.get("step")) if r["kind"].startswith("effect.") else None
        journal.append((r["kind"], req and req["op"], bool(req and req.get("once"))))
    return Reference(script=script, stdout=run.stdout, files=ws.files(), ledger=ledger,
                     status=run.rc, records=len(recs), seconds=run.seconds,
                     once_tags=[t for t in tags if t.startswith("once-")], journal=journal)


RANDOMS_PER_RECORD = 3
DOUBLES_PER_RECORD = 3


def plan(ref: Reference, rng: random.Random) -> list:
    """Every scenario of the full sweep for one script: a crash after and before every journal
    record, both also as a power cut, and per record RANDOMS_PER_RECORD random-time kills and
    DOUBLES_PER_RECORD double crashes (the resume killed too)."""
    n = ref.records
    out = [Scenario(ref.script, (Crash(kind, at),))
           for kind in ("after", "power") for at in range(n)]
    out += [Scenario(ref.script, (Crash(kind, at),))
            for kind in ("before", "power-before") for at in range(1, n)]
    out += [Scenario(ref.script, (random_crash(ref, rng),))
            for _ in range(RANDOMS_PER_RECORD * n)]
    out += [double_crash(ref, rng) for _ in range(DOUBLES_PER_RECORD * n)]
    return out


def random_crash(ref: Reference, rng: random.Random) -> Crash:
    return Crash("random", delay=round(rng.uniform(0, ref.seconds), 3))


def double_crash(ref: Reference, rng: random.Random) -> Scenario:
    """A crash at a record (or at random), then the resume killed too."""
    first_kind = rng.choice(KINDS)
    if first_kind == "random":
        first = random_crash(ref, rng)
    else:
        first = Crash(first_kind, rng.randrange(1, ref.records))
    second_kind = rng.choice(KINDS)
    if second_kind == "random":
        second = random_crash(ref, rng)
    else:
        second = Crash(second_kind, rng.randrange(1, max(2, ref.records // 2)))
    return Scenario(ref.script, (first, second))


@dataclass(slots=True)
class CrashView:
    """What one crash left in the journal, as the next runner sees it."""

    kind: str
    done: set
    """Steps whose effect.done is in the journal."""
    started: set
    """Steps whose effect.started is in the journal and that have no effect.done."""
    last_started: int | None
    """The step whose effect.started is the journal's last record (not performed yet, when the
    crash came right after that record)."""
    requests: dict
    """step -> the request of every effect.started in the journal."""

    def maybe_ran(self) -> set | None:
        """Steps that may have run, completely or in part, without their result in the journal;
        None when that cannot be told (a power cut lost records): any step not done."""
        if self.kind.startswith("power"):
            return None
        if self.kind == "after" and self.last_started is not None:
            return self.started - {self.last_started}
        return set(self.started)

    def may_rerun(self, step: int) -> bool:
        ran = self.maybe_ran()
        return step not in self.done if ran is None else step in ran


def view_after_crash(kind: str, records: list) -> CrashView:
    done, started, requests = set(), set(), {}
    for r in records:
        if r["kind"] == "effect.started":
            started.add(r["step"])
            requests[r["step"]] = r["req"]
        elif r["kind"] == "effect.done":
            done.add(r["step"])
    last = records[-1] if records else None
    last_started = last["step"] if last and last["kind"] == "effect.started" else None
    # A stream's producer (an exec with `stream`) runs again after a crash, under its first
    # start's step key, until the job has read its end or closed it (docs/effects.md, "Streams"):
    # while it is open, its start counts as in flight.
    for step in _open_streams(records):
        done.discard(step)
    return CrashView(kind, done, started - done, last_started, requests)


def _open_streams(records: list) -> set:
    """Steps of the stream starts whose stream had not ended when the journal ends."""
    opened, reqs = {}, {}
    for r in records:
        if r["kind"] == "effect.started":
            reqs[r["step"]] = r["req"]
            if r["req"].get("stream") is not None and "skip" not in r["req"]:
                opened[str(r["req"]["stream"])] = r["step"]
        elif r["kind"] == "effect.done":
            req = reqs.get(r["step"]) or {}
            res = r.get("res") or {}
            if req.get("op") == "stream_close" or (req.get("op") == "stream_read"
                                                   and res.get("eof")):
                opened.pop(str(req.get("sid")), None)
    return set(opened.values())


def run_scenario(ref: Reference, scenario: Scenario, root: Path, *, check_log: bool = True,
                 meddle=None) -> Outcome:
    """Play `scenario` in a fresh workspace under `root` and judge it against `ref` (with
    `check_log`, also the output `fm log --output` gives). `meddle(workspace, runs)`, if given,
    may change what the scenario left before it is judged (the harness's own tests)."""
    t0 = time.monotonic()
    ws = Workspace(root, ref.script)
    runs, views = [], []
    try:
        args = [f"{ref.script}.fm"]
        for crash in scenario.crashes:
            first_seq = len(ws.records()) if runs else 0
            run = ws.fm(args, crash.env(first_seq),
                        kill_after=crash.delay if crash.kind == "random" else None)
            runs.append(run)
            if not run.killed:
                break
            views.append(view_after_crash(crash.kind, ws.records()))
            job = ws.job()
            if job is None or not ws.records():
                break                         # killed before the job existed
            args = ["resume", job]
        else:
            runs.append(ws.fm(args, {}))
        log = None
        job = ws.job()
        if check_log and job is not None and ws.records():
            log = ws.fm(["log", job, "--output"], {})
    finally:
        ws.cleanup()
    if meddle is not None:
        meddle(ws, runs)
    judge = Judge(ref, ws, runs, views, log)
    verdict, detail = judge.verdict()
    return Outcome(scenario, verdict, detail, sum(r.killed for r in runs), judge.reruns,
                   time.monotonic() - t0)


class Judge:
    """Compares one played scenario with the reference."""

    def __init__(self, ref: Reference, ws: Workspace, runs: list, views: list, log: Run | None):
        self.ref = ref
        self.ws = ws
        self.runs = runs
        self.views = views
        self.log = log
        self.records = ws.records()
        self.reruns = False
        self.tolerated: Counter = Counter()
        """Lines that re-runs allowed by G2 repeated in files (each as often as repeated)."""

    def verdict(self) -> tuple:
        for check in (self.errors, self.ledger, self.once, self.files, self.stdout,
                      self.status):
            found = check()
            if found:
                return found
        return OK, ""

    # -- each check returns (verdict, detail) or None -----------------------------------------

    def errors(self):
        for i, run in enumerate(self.runs + ([self.log] if self.log else [])):
            err = run.stderr
            if run.rc is None:
                return ERROR, f"run {i + 1} hung"
            if "Traceback" in err or "internal error" in err or run.rc == 70:
                return ERROR, f"run {i + 1} (status {run.rc}): {last_lines(err)}"
        if not self.records:
            return None                       # never started: the other checks say if fine
        if self.records[-1]["kind"] not in ("job.finished", "job.failed"):
            return ERROR, (f"the job did not finish (last record {self.records[-1]['kind']}); "
                           f"last run: {last_lines(self.runs[-1].stderr)}")
        return None

    def ledger(self):
        seen: dict = {}
        for tag, key in self.ws.ledger_entries():
            seen.setdefault(tag, []).append(key)
        want = {tag for tag, _ in self.ref.ledger}
        for tag in sorted(set(seen) - want):
            return DIVERGENT, f"effect `{tag}` ran but not in the reference ({seen[tag]})"
        if not self.records:
            if seen:
                return DIVERGENT, "effects ran but the job was never created"
            return None
        for tag, _ in self.ref.ledger:
            keys = seen.get(tag, [])
            if not keys:
                if tag in self.ref.once_tags:
                    continue                  # judged by once()
                return DIVERGENT, f"effect `{tag}` never ran"
            if len(set(keys)) > 1:
                return DUPLICATE, f"effect `{tag}` ran under several step keys: {keys}"
            if len(keys) == 1:
                continue
            if tag in self.ref.once_tags:
                return DUPLICATE, f"`once` effect `{tag}` ran {len(keys)} times ({keys[0]})"
            step = step_of(keys[0])
            allowed = 1 + sum(v.may_rerun(step) for v in self.views)
            if len(keys) > allowed:
                done_at = [i + 1 for i, v in enumerate(self.views) if step in v.done]
                why = f"its result was journaled before crash {done_at}" if done_at else \
                    "it was not in flight at any crash"
                return DUPLICATE, f"effect `{tag}` ran {len(keys)} times ({keys[0]}): {why}"
            self.reruns = True
        return None

    def once(self):
        """status.once: 0, or 125 only for a `once` a crash interrupted (its start journaled,
        its end not); an interrupted once ran at most once (ledger) and never twice."""
        if not self.ref.once_tags or not self.records:
            return None
        want = self.ref.files.get(ONCE_STATUS, "").splitlines()
        got = self.ws.files().get(ONCE_STATUS, "").splitlines()
        if [w.split()[0] for w in want] != [g.split()[0] for g in got]:
            return DIVERGENT, f"{ONCE_STATUS}: {got} against {want}"
        seen: dict = {}
        for tag, key in self.ws.ledger_entries():
            seen.setdefault(tag, []).append(key)
        steps = {r["req"]["stages"][0]["argv"][1]: r["step"] for r in self.records
                 if r["kind"] == "effect.started" and r["req"].get("once")}
        for line in got:
            tag, status = line.split()
            interrupted = any(steps.get(tag) in v.started for v in self.views)
            if status == "125" and not interrupted:
                return DIVERGENT, f"`once` {tag} gave 125 but no crash interrupted it"
            if status == "0" and len(seen.get(tag, [])) != 1:
                return DIVERGENT, f"`once` {tag} succeeded but ran {len(seen.get(tag, []))} times"
            if status not in ("0", "125"):
                return DIVERGENT, f"`once` {tag} ended with {status}"
        return None

    def files(self):
        got = self.ws.files()
        got.pop(ONCE_STATUS, None)
        want = dict(self.ref.files)
        want.pop(ONCE_STATUS, None)
        if not self.records:
            return (DIVERGENT, f"files written but the job was never created: {sorted(got)}") \
                if got else None
        for name in sorted(set(got) | set(want)):
            if name not in got:
                return LOST, f"file {name} missing"
            if name not in want:
                return DIVERGENT, f"file {name} not in the reference"
            if got[name] != want[name]:
                return self.explain_file(name, got[name], want[name])
        return None

    def explain_file(self, name: str, got: str, want: str):
        """A file that differs is fine only when its extra lines repeat lines next to them and
        a crash cut off an effect that may have written them (G2); a repeated line that a
        builtin's own write cut off by a crash put there is an own-write duplicate."""
        ops = difflib.SequenceMatcher(None, want.splitlines(True), got.splitlines(True),
                                      autojunk=False).get_opcodes()
        lines = got.splitlines(True)
        extra = []
        for op, _i1, _i2, j1, j2 in ops:
            if op in ("delete", "replace"):
                what = "lost lines" if op == "delete" else "changed lines"
                return (LOST if op == "delete" else DIVERGENT), \
                    f"file {name}: {what}\n{diff(want, got)}"
            if op == "insert":
                extra += [(j, lines[j]) for j in range(j1, j2)]
        for j, line in extra:
            if not ((j > 0 and lines[j - 1] == line) or (j + 1 < len(lines) and
                                                          lines[j + 1] == line)):
                return DIVERGENT, f"file {name}: extra line {line!r}\n{diff(want, got)}"
        own = self.own_writes(name)
        if any(line in own for _, line in extra):
            return OWN_WRITE, f"file {name}: a builtin write applied twice\n{diff(want, got)}"
        if self.in_flight():
            self.reruns = True
            self.tolerated.update(line for _, line in extra)
            return None
        return DUPLICATE, f"file {name}: repeated lines, no effect in flight\n{diff(want, got)}"

    def in_flight(self) -> bool:
        """Whether any crash may have cut off an effect (or a power cut hid which)."""
        return any(v.maybe_ran() is None or v.maybe_ran() for v in self.views)

    def own_writes(self, name: str) -> set:
        """Lines that builtin writes to file `name`, possibly cut off by a crash, wrote."""
        out = set()
        for r in self.records:
            if r["kind"] != "effect.started" or r["req"].get("op") != "write":
                continue
            target = r["req"].get("target", {})
            if target.get("kind") != "file" or not target.get("path", "").endswith(name):
                continue
            if r.get("rerun") or any(v.may_rerun(r["step"]) for v in self.views):
                out.update(r["req"].get("data", "").splitlines(True))
        return out

    def stdout(self):
        """The runs' stdout in order must read as the reference, each resume starting where
        the previous run's journaled output ended or, re-running an interrupted effect, before
        it (never after: that output would be lost). Lines a re-run legitimately repeated in a
        file (see explain_file) may be repeated where the script prints that file."""
        outs = [r.stdout for r in self.runs]
        log = self.log.stdout if self.log is not None else None
        found = self.compare_stdout(outs, log)
        if found and self.tolerated:
            if not self.compare_stdout([drop_repeats(o, self.tolerated) for o in outs],
                                       None if log is None else
                                       drop_repeats(log, self.tolerated)):
                self.reruns = True
                return None
        return found

    def compare_stdout(self, outs: list, log: str | None):
        want = self.ref.stdout
        if not self.records:
            got = "".join(outs)
            return (DIVERGENT, f"output but no job: {got!r}") if got else None
        end = 0
        for i, out in enumerate(outs):
            if i == 0:
                if not want.startswith(out):
                    return classify_text(want, "".join(outs), "stdout")
                end = len(out)
                continue
            start = find_resumed(want, out, end, i == len(outs) - 1)
            if start is None:
                return classify_text(want, "".join(outs), "stdout")
            if start > end:
                return LOST, f"stdout: {want[end:start]!r} lost between run {i} and run {i + 1}"
            if start < end:
                if not self.in_flight():
                    return DUPLICATE, (f"stdout: {want[start:end]!r} printed again by run "
                                       f"{i + 1} though no effect was in flight at the crash")
                self.reruns = True
            end = start + len(out)
        if end != len(want):
            return LOST, f"stdout: the end {want[end:]!r} never came"
        if log is not None and log != want:
            return classify_text(want, log, "fm log --output")
        return None

    def status(self):
        if not self.records:
            return None
        final = self.records[-1].get("status")
        if final != self.ref.status:
            return DIVERGENT, f"status {final}, reference {self.ref.status}"
        last = self.runs[-1]
        if last.rc != final and "already finished" not in last.stderr:
            return ERROR, f"last run exited {last.rc} for a job ending {final}: " \
                f"{last_lines(last.stderr)}"
        return None


def find_resumed(want: str, out: str, end: int, last: bool) -> int | None:
    """Where in `want` a resume's output `out` starts: at or before `end` (the earlier runs'
    output), as late as possible; for the last run it must reach the end of `want`."""
    if last:
        return len(want) - len(out) if want.endswith(out) else None
    best = want.rfind(out, 0, end + len(out))
    return best if best >= 0 else want.find(out, end)


def drop_repeats(text: str, lines: Counter) -> str:
    """`text` without the second copy of each adjacent repeated line counted in `lines`."""
    budget = Counter(lines)
    out = []
    for line in text.splitlines(True):
        if out and out[-1] == line and budget[line] > 0:
            budget[line] -= 1
            continue
        out.append(line)
    return "".join(out)


def classify_text(want: str, got: str, what: str) -> tuple:
    """Lost when `got` is `want` with parts left out, else divergent."""
    sm = difflib.SequenceMatcher(None, want, got, autojunk=False)
    if all(op in ("equal", "delete") for op, *_ in sm.get_opcodes()):
        return LOST, f"{what}: parts missing\n{diff(want, got)}"
    return DIVERGENT, f"{what} differs\n{diff(want, got)}"


def diff(want: str, got: str) -> str:
    return "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                        "reference", "scenario", n=1))[:2000]


def last_lines(text: str, n: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-n:])
