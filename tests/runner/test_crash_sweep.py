"""G1/G2 by killing: SIGKILL the runner right after every journal write in turn, resume, and
check that the job's output equals an uncrashed run's and no journaled effect ran twice."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
mark() { sh -c 'echo "$1" >> ran.txt' mark "$1"; }
echo "start"
mark one
n=0
for i in 1 2 3; do
  mark "loop-$i"
  n=$((n + i))
done
echo "sum $n"
lines=$(printf 'b\na\nc\n' | sort | tr -d '\n')
mark "sub-$lines"
printf '%s\n' x y z | sort -r > sorted.txt
mark pipeline
echo "appended" >> notes.txt
{ echo grouped; echo more; } > group.txt
count=$(wc -l < sorted.txt)
mark "count-$count"
cd sub
mark in-sub
cd ..
while read -r line; do
  mark "read-$line"
done < sorted.txt
try {
  false
} catch {
  mark caught
}
cat group.txt notes.txt
echo "end"
"""


def fm(args, cwd, env, **kw):
    return subprocess.run([sys.executable, "-m", "flowmetal", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, **kw)


def setup_dir(root: Path) -> Path:
    work = root / "work"
    (work / "sub").mkdir(parents=True)
    (work / "s.fm").write_text(SCRIPT)
    return work


def env_for(root: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_") or k == "FM_HAND_OVER"}
    env["FM_HOME"] = str(root / "home")
    env.update(extra)
    return env


def job_ids(root: Path, work: Path) -> list:
    out = fm(["ps", "-a", "--json"], work, env_for(root))
    assert out.returncode == 0, out.stderr
    return [json.loads(line)["id"] for line in out.stdout.splitlines() if line.strip()]


def journal_len(root: Path, job: str) -> int:
    return len((root / "home" / "jobs" / job / "journal.jsonl").read_text().splitlines())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    work = setup_dir(root)
    out = fm(["s.fm"], work, env_for(root))
    assert out.returncode == 0, out.stderr
    (job,) = job_ids(root, work)
    return {"stdout": out.stdout, "ran": (work / "ran.txt").read_text(),
            "records": journal_len(root, job)}


def test_reference_has_enough_effects(reference):
    assert reference["stdout"].startswith("start\n") and reference["stdout"].endswith("end\n")
    ran = reference["ran"].splitlines()
    assert len(ran) == len(set(ran)) >= 10
    assert reference["records"] >= 40          # >= 20 effects, two records each


def test_kill_at_every_journal_write(reference, tmp_path):
    total = reference["records"]
    for n in range(total - 1):                 # the last record is job.finished
        root = tmp_path / f"n{n}"
        work = setup_dir(root)
        first = fm(["s.fm"], work, env_for(root, FM_CRASH_AT=str(n)))
        assert first.returncode == -9, (n, first.returncode, first.stderr)
        (job,) = os.listdir(root / "home" / "jobs")
        second = fm(["resume", job], work, env_for(root))
        assert second.returncode == 0, (n, second.stderr)
        assert first.stdout + second.stdout == reference["stdout"], n
        # every effect ran exactly once: none completed twice, none lost
        assert (work / "ran.txt").read_text() == reference["ran"], n
        if n % 7 == 0:
            out = fm(["log", job, "--output"], work, env_for(root))
            assert out.stdout == reference["stdout"], n
