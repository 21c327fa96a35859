#!/usr/bin/env python3
"""Resume cost against history length for issue 8 (G5): a job with ~100 MB of journal vs one of
10 effects.

Run from the repository root:  .venv/bin/python bench/resume.py [MB]   (default 100)

Both jobs are real fm runs: a loop of effects that each print OUT bytes (so the history is in
their effect.done records), then a last effect that waits until it is killed. Killing the whole
process group there is a crash; `fm resume` performs that last effect again (it now returns at
once) and ends the job. Every timed resume starts from the same crashed journal: the records it
appended are cut off again afterwards. The page cache is warm unless a figure says "cold" (the
journal's pages dropped with posix_fadvise first). Prints figures; nothing here is asserted.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import flowmetal
from flowmetal.journal import Journal

PY = sys.executable
FM = [PY, "-m", "flowmetal"]
OUT = 10_000          # bytes each effect prints
PER_EFFECT = OUT + 450  # journal bytes per effect: effect.started, effect.done, snapshots

SCRIPT = """\
for ((i=0; i<{n}; i++)); do /usr/bin/printf '%0{out}d\\n' 0; done
/bin/sh -c 'test -e go && exit 0; echo $$ > ready; exec sleep 600'
"""


def _env(home: Path, config: str = "/dev/null") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_")}
    env.update(FM_HOME=str(home), FM_CONFIG=config)
    return env


def crashed_job(d: Path, n: int) -> tuple[Path, str, Path]:
    """Run a job of n printing effects, kill it in its last effect; (work dir, job id, journal)."""
    work = d / f"n{n}"
    work.mkdir()
    (work / "j.fm").write_text(SCRIPT.format(n=n, out=OUT))
    # Only building the history skips fsync, to save time; the timed resumes use the defaults.
    (d / "nofsync.toml").write_text('[journal]\nfsync = "never"\n')
    proc = subprocess.Popen(FM + ["j.fm"], env=_env(work / "home", str(d / "nofsync.toml")),
                            cwd=work, stdout=subprocess.DEVNULL, start_new_session=True)
    while not (work / "ready").exists():
        if proc.poll() is not None:
            sys.exit(f"the job ended (status {proc.returncode}) before its last effect")
        time.sleep(0.05)
    time.sleep(0.1)  # let the sh write its pid
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    try:
        os.kill(int((work / "ready").read_text()), signal.SIGKILL)  # the sleep, if it survived
    except (ValueError, ProcessLookupError):
        pass
    (work / "go").touch()
    (job,) = os.listdir(work / "home" / "jobs")
    return work, job, work / "home" / "jobs" / job / "journal.jsonl"


def _evict(path: Path) -> None:
    """Drop the file's pages from the page cache, so the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def resume_once(work: Path, job: str, path: Path, cold: bool) -> float:
    """Wall time of one `fm resume` of the crashed job, whose journal is then cut back."""
    size = path.stat().st_size
    if cold:
        _evict(path)
    t0 = time.perf_counter()
    r = subprocess.run(FM + ["resume", job], env=_env(work / "home"), cwd=work,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"fm resume failed ({r.returncode}): {r.stderr}")
    os.truncate(path, size)  # back to the crashed journal for the next run
    return t


def open_once(path: Path, cold: bool) -> tuple[float, float]:
    """Times of Journal.open alone, and of open + first() + tail() (what resume reads)."""
    if cold:
        _evict(path)
    t0 = time.perf_counter()
    j = Journal.open(path, fsync=False)
    t1 = time.perf_counter()
    j.first()
    j.tail()
    t2 = time.perf_counter()
    j.close()
    return t1 - t0, t2 - t0


ROWS = ["fm resume wall time", "Journal.open", "Journal.open + first + tail",
        "fm resume wall time, cold", "Journal.open, cold", "Journal.open + first + tail, cold"]


def measure(jobs: list, rounds: int = 10) -> list[list[float]]:
    """For each job, the best of `rounds` of each figure in ROWS. The jobs take turns within a
    round, so that a load on the machine that comes and goes weighs on both alike."""
    best = [[float("inf")] * len(ROWS) for _ in jobs]
    for _ in range(rounds):
        for b, (work, job, path) in zip(best, jobs):
            figures = (resume_once(work, job, path, False), *open_once(path, False),
                       resume_once(work, job, path, True), *open_once(path, True))
            b[:] = map(min, b, figures)
    return best


def main(mb: float = 100) -> None:
    n_big = int(mb * 1e6 / PER_EFFECT)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        t0 = time.perf_counter()
        small, big = crashed_job(d, 10), crashed_job(d, n_big)
        print(f"flowmetal from {Path(flowmetal.__file__).parent}; "
              f"built the jobs in {time.perf_counter() - t0:.1f}s")
        print(f"journal: 10 effects {small[2].stat().st_size / 1e6:.2f} MB, "
              f"{n_big} effects {big[2].stat().st_size / 1e6:.2f} MB")
        s, b = measure([small, big])
    print(f"{'':34} {'10 effects':>12} {f'{mb:g} MB':>12} {'ratio':>7}")
    for name, x, y in zip(ROWS, s, b):
        print(f"{name:34} {x * 1000:10.2f}ms {y * 1000:10.2f}ms {y / x:7.2f}")
    print("target: fm resume ratio <= 1.2")


if __name__ == "__main__":
    main(*map(float, sys.argv[1:2]))
